import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LinearRegressionResult } from '../src/computation/linear-regression.ts';
import type { LogisticRegressionResult } from '../src/computation/logistic-regression.ts';
import { parseOptions } from '../src/simulator/options.ts';
import { simulate, type SimulationSummary } from '../src/simulator/simulate.ts';
import { assertClose, logisticFit, olsFit, pooledSample, repo } from './support/regression.ts';

const quiet = { out: { write: () => true } };
const LINEAR = repo('sample/configs/linear-regression');
const LOGISTIC = repo('sample/configs/logistic-regression');

async function run(argv: string[]): Promise<SimulationSummary> {
  const output = await mkdtemp(join(tmpdir(), 'fc-regression-sim-'));
  const summary = await simulate(parseOptions(['--in-process', ...argv, '--output', output]), quiet);
  assert.is(summary.ok, true, summary.failure ?? '');
  return summary;
}

/** Every site wrote the same result, report and CSV. */
async function assertSameOutputEverywhere(summary: SimulationSummary, heading: RegExp): Promise<void> {
  const outputs = await Promise.all(
    summary.clients.map(async (client) => {
      assert.ok(client.outputDir);
      const json = JSON.parse(await readFile(join(client.outputDir, 'result.json'), 'utf8')) as { result: unknown };
      const report = await readFile(join(client.outputDir, 'report.md'), 'utf8');
      const csv = await readFile(join(client.outputDir, 'result.csv'), 'utf8');
      assert.match(report, heading);
      assert.match(csv, /^term,estimate,std_error,[tz]_value,p_value\n/);
      return JSON.stringify([json.result, report, csv]);
    }),
  );
  assert.is(new Set(outputs).size, 1);
}

const LINEAR_PREDICTORS = ['flipper_length_mm', 'bill_length_mm', 'species'];
const MEASUREMENTS = ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g'];

for (const smpc of [false, true]) {
  const flag = smpc ? ['--smpc'] : [];
  const label = smpc ? ' with --smpc' : '';

  test(`simulate --generic-dir sample/configs/linear-regression${label} equals the pooled OLS`, async () => {
    const summary = await run(['--generic-dir', LINEAR, ...flag]);
    // A gather round for the species, then one round of sums.
    assert.is(summary.rounds, 2);
    const result = summary.result as LinearRegressionResult;
    const pooled = await pooledSample('body_mass_g', Number, LINEAR_PREDICTORS, ['species']);
    const expected = olsFit(pooled.x, pooled.y);
    assert.equal(result.coefficients.map((c) => c.term), pooled.terms);
    result.coefficients.forEach((c, i) => {
      assertClose(c.estimate, expected.coefficients[i] ?? Number.NaN, 1e-9, `${c.term} estimate`);
      assertClose(c.standardError, expected.standardErrors[i] ?? Number.NaN, 1e-9, `${c.term} standard error`);
    });
    assertClose(result.rSquared, expected.rSquared, 1e-9, 'R²');
    assert.is(result.n, 342);
    await assertSameOutputEverywhere(summary, /^# Linear regression of body_mass_g/);
  });

  test(`simulate --generic-dir sample/configs/logistic-regression${label} equals the pooled maximum-likelihood fit`, async () => {
    const summary = await run(['--generic-dir', LOGISTIC, ...flag]);
    const result = summary.result as LogisticRegressionResult;
    assert.is(result.converged, true);
    assert.is(summary.rounds, result.iterations);
    const pooled = await pooledSample('sex', (text) => (text === 'male' ? 1 : 0), MEASUREMENTS);
    const expected = logisticFit(pooled.x, pooled.y);
    assert.equal(result.coefficients.map((c) => c.term), pooled.terms);
    result.coefficients.forEach((c, i) => {
      assertClose(c.estimate, expected.coefficients[i] ?? Number.NaN, 1e-6, `${c.term} estimate`);
      assertClose(c.standardError, expected.standardErrors[i] ?? Number.NaN, 1e-6, `${c.term} standard error`);
    });
    assertClose(result.logLikelihood, expected.logLikelihood, 1e-6, 'log-likelihood');
    await assertSameOutputEverywhere(summary, /^# Logistic regression of sex = male/);
  });
}

test('with DP the linear fit runs and says its figures are noisy', async () => {
  const summary = await run(['--generic-dir', LINEAR, '--dp', '--dp-epsilon', '1', '--dp-sensitivity', '0.001', '--seed', '5']);
  const result = summary.result as LinearRegressionResult;
  assert.is(result.noisy, true);
  assert.ok(!Number.isInteger(result.n));
  assert.ok(result.coefficients.every((c) => Number.isFinite(c.estimate)));
  const client = summary.clients[0];
  assert.ok(client?.outputDir);
  assert.match(await readFile(join(client.outputDir, 'report.md'), 'utf8'), /differential-privacy \(DP\) noise/);
});

test('a bad site ends the run in its error state, naming the site, file and column', async () => {
  const output = await mkdtemp(join(tmpdir(), 'fc-regression-sim-'));
  // The generic config asks every site for a column the data do not have.
  const generic = join(output, 'generic');
  await cp(LINEAR, generic, { recursive: true });
  const config = join(generic, 'config.yml');
  await writeFile(config, (await readFile(config, 'utf8')).replace('target: body_mass_g', 'target: body_mass'));
  const summary = await simulate(parseOptions(['--in-process', '--generic-dir', generic, '--output', join(output, 'run')]), quiet);
  assert.is(summary.ok, false);
  assert.match(summary.failure ?? '', /^client \w+ \(\w+\) failed: data\.csv: column 'body_mass' not found/);
});

test.run();
