import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { normalTwoSidedP } from '../src/computation/distributions.ts';
import type { LogisticGlobal, LogisticRegressionResult } from '../src/computation/logistic-regression.ts';
import { COMPUTATION_NAMES, configureComputation } from '../src/computation/registry.ts';
import type { ConfiguredComputation, Json, NumericTree } from '../src/computation/types.ts';
import { readTable } from '../src/data/csv.ts';
import { loadConfig } from '../src/data/config.ts';
import { InputError } from '../src/data/errors.ts';
import {
  assertClose,
  csvOf,
  everyNumberFinite,
  federate,
  largestRelativeError,
  logisticFit,
  mapTree,
  pooledSample,
  removeTempFolders,
  repo,
  sampleSites,
  seeded,
  sitesFrom,
  type LogisticFit,
} from './support/regression.ts';

test.after(removeTempFolders);

const MEASUREMENTS = ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g'];
const PENGUINS = { target: 'sex', positive: 'male', predictors: MEASUREMENTS };
const isMale = (text: string) => (text === 'male' ? 1 : 0);

const logistic = (parameters: object): ConfiguredComputation => configureComputation('logistic-regression', parameters);
const resultOf = (result: unknown) => result as LogisticRegressionResult;

function assertMatches(result: LogisticRegressionResult, expected: LogisticFit, terms: readonly string[], tolerance: number, ridge = false): void {
  assert.equal(result.coefficients.map((c) => c.term), terms);
  result.coefficients.forEach((c, i) => {
    const standardError = expected.standardErrors[i] ?? Number.NaN;
    // Relative to the estimate, or to its standard error for an estimate near 0.
    assertClose(c.estimate, expected.coefficients[i] ?? Number.NaN, tolerance, `${c.term} estimate`, standardError);
    assertClose(c.standardError, standardError, tolerance, `${c.term} standard error`);
    if (ridge) {
      assert.is(c.z, null);
      assert.is(c.p, null);
    } else {
      const z = (expected.coefficients[i] ?? Number.NaN) / standardError;
      assertClose(c.z, z, tolerance, `${c.term} z`, 1);
      assertClose(c.p, normalTwoSidedP(z), 1e-4, `${c.term} p`);
    }
  });
  assertClose(result.logLikelihood, expected.logLikelihood, tolerance, 'log-likelihood');
}

// ---- the sample ----

test('registered as logistic-regression, with the sample config', async () => {
  assert.ok(COMPUTATION_NAMES.includes('logistic-regression'));
  const config = await loadConfig(repo('sample/configs/logistic-regression'));
  const computation = configureComputation(config.computation, config.parameters);
  assert.is(computation.name, 'logistic-regression');
  assert.is(computation.additive(null, 1), true, 'no categorical predictor: no gather round');
});

test('penguins: sex from the four measurements equals the pooled maximum-likelihood fit to 1e-6', async () => {
  const computation = logistic(PENGUINS);
  const run = federate(computation, await sampleSites(computation));
  const result = resultOf(run.result);
  const pooled = await pooledSample('sex', isMale, MEASUREMENTS);
  assert.is(result.n, 333);
  assert.is(result.dropped, 11);
  assert.is(result.positives, 168);
  assert.is(result.converged, true);
  assert.is(result.iterations, run.rounds.length);
  assert.ok(result.iterations <= 10, `${result.iterations} Newton rounds`);
  assertMatches(result, logisticFit(pooled.x, pooled.y), pooled.terms, 1e-6);
  assertClose(result.deviance, -2 * result.logLikelihood, 1e-15, 'deviance');
  assertClose(result.aic, -2 * result.logLikelihood + 10, 1e-15, 'AIC');
  assertClose(result.nullDeviance, -2 * (168 * Math.log(168 / 333) + 165 * Math.log(165 / 333)), 1e-14, 'null deviance');
});

test('penguins with species (one-hot, gathered first) and SMPC-style sums equal the pooled fit to 1e-6', async () => {
  const computation = logistic({ ...PENGUINS, predictors: [...MEASUREMENTS, 'species'], categorical: ['species'] });
  const sites = await sampleSites(computation);
  const pooled = await pooledSample('sex', isMale, [...MEASUREMENTS, 'species'], ['species']);
  const expected = logisticFit(pooled.x, pooled.y);
  for (const secure of [false, true]) {
    const run = federate(computation, sites, { secure });
    assert.is(run.rounds[0]?.additive, false, 'the categories are gathered in round 1');
    assert.ok(run.rounds.slice(1).every((round) => round.additive));
    const result = resultOf(run.result);
    assert.is(result.converged, true);
    assert.is(result.secure, secure);
    assert.equal(result.references, [{ column: 'species', level: 'Adelie' }]);
    assertMatches(result, expected, pooled.terms, 1e-6);
  }
});

test('measured: plain within 1e-9 of the pooled fit, SMPC-style within 1e-7', async () => {
  const computation = logistic(PENGUINS);
  const sites = await sampleSites(computation);
  const pooled = await pooledSample('sex', isMale, MEASUREMENTS);
  const expected = logisticFit(pooled.x, pooled.y);
  for (const [secure, bound] of [[false, 1e-9], [true, 1e-7]] as const) {
    const result = resultOf(federate(computation, sites, { secure }).result);
    const estimates = largestRelativeError(result.coefficients.map((c) => c.estimate), expected.coefficients);
    const errors = largestRelativeError(result.coefficients.map((c) => c.standardError ?? Number.NaN), expected.standardErrors);
    assert.ok(estimates < bound && errors < bound, `secure ${secure}: estimates ${estimates}, standard errors ${errors}`);
  }
});

// ---- generated data with known coefficients ----

/** logit P(y = 1) = -1 + 0.8·x1 - 0.02·(x2 - 500) + 0.7·[g = b]; x2 in grams-like units. */
function generatedSites(seed: number, sizes: readonly number[]): string[] {
  const random = seeded(seed);
  return sizes.map((size) =>
    csvOf(
      ['x1', 'x2', 'g', 'y'],
      Array.from({ length: size }, () => {
        const x1 = random.normal();
        const x2 = 500 + 30 * random.normal();
        const g = random.uniform() < 0.4 ? 'b' : 'a';
        const eta = -1 + 0.8 * x1 - 0.02 * (x2 - 500) + (g === 'b' ? 0.7 : 0);
        return [x1, x2, g, random.uniform() < 1 / (1 + Math.exp(-eta)) ? 1 : 0];
      }),
    ),
  );
}

function pooledGenerated(texts: readonly string[]): { x: number[][]; y: number[] } {
  const rows = texts.flatMap((text) => text.trim().split('\n').slice(1).map((line) => line.split(',')));
  return { x: rows.map(([x1, x2, g]) => [1, Number(x1), Number(x2), g === 'b' ? 1 : 0]), y: rows.map((row) => Number(row[3])) };
}

const GENERATED = { target: 'y', predictors: ['x1', 'x2', 'g'], categorical: ['g'] };

test('generated data (0/1 target): recovers the known coefficients and equals the pooled fit, plain and SMPC-style', async () => {
  const texts = generatedSites(5, [2500, 1500, 3]);
  const computation = logistic(GENERATED);
  const sites = await sitesFrom(computation, ...texts);
  const pooled = pooledGenerated(texts);
  const expected = logisticFit(pooled.x, pooled.y);
  const truth = [-1 + 0.02 * 500, 0.8, -0.02, 0.7];
  for (const secure of [false, true]) {
    const result = resultOf(federate(computation, sites, { secure }).result);
    assert.is(result.positive, null);
    assertMatches(result, expected, ['(Intercept)', 'x1', 'x2', 'g=b'], 1e-6);
    result.coefficients.forEach((c, i) => {
      const distance = Math.abs(c.estimate - (truth[i] ?? 0)) / (c.standardError ?? Number.NaN);
      assert.ok(distance < 4, `${c.term}: ${c.estimate} is ${distance.toFixed(1)} standard errors from ${truth[i]}`);
    });
  }
});

test('ridge: equals the pooled penalized fit (intercept not penalized), with sandwich standard errors and no z', async () => {
  const texts = generatedSites(8, [400, 300]);
  const pooled = pooledGenerated(texts);
  for (const ridge of [0.1, 10, 1000]) {
    const computation = logistic({ ...GENERATED, ridge });
    const result = resultOf(federate(computation, await sitesFrom(computation, ...texts), { secure: ridge === 10 }).result);
    assert.is(result.converged, true);
    assert.is(result.aic, null);
    assertMatches(result, logisticFit(pooled.x, pooled.y, ridge), ['(Intercept)', 'x1', 'x2', 'g=b'], 1e-6, true);
  }
});

// ---- separation, convergence, safeguards ----

async function failure(run: () => unknown): Promise<Error> {
  try {
    await run();
  } catch (error) {
    if (error instanceof Error) return error;
    throw error;
  }
  throw new Error('expected an error, but nothing was thrown');
}

const SEPARATED = ['x,y\n1,0\n2,0\n3,0\n', 'x,y\n4,0\n5,0\n6,1\n7,1\n', 'x,y\n8,1\n9,1\n10,1\n'];

test('complete separation is a clear error, not NaN or huge coefficients', async () => {
  const computation = logistic({ target: 'y', predictors: ['x'] });
  const error = await failure(async () => federate(computation, await sitesFrom(computation, ...SEPARATED)));
  assert.instance(error, InputError);
  assert.match(error.message, /^separation: after 25 Newton rounds 10 rows have fitted probabilities of \(numerically\) 0 or 1/);
  assert.match(error.message, /no finite maximum-likelihood estimate exists\. Remove or merge the predictors that separate the outcome, or set a ridge penalty/);
});

test('quasi-complete separation (one group all positive) is an error too', async () => {
  const computation = logistic({ target: 'y', predictors: ['x', 'g'], categorical: ['g'] });
  const sites = await sitesFrom(computation, 'x,g,y\n1,a,0\n2,b,1\n3,a,1\n4,b,1\n', 'x,g,y\n5,a,0\n6,b,1\n7,a,1\n8,b,1\n9,a,0\n10,b,1\n');
  const error = await failure(() => federate(computation, sites));
  assert.match(error.message, /^separation: /);
});

test('with a ridge penalty, separated data have a finite, converged fit', async () => {
  const computation = logistic({ target: 'y', predictors: ['x'], ridge: 1 });
  const result = resultOf(federate(computation, await sitesFrom(computation, ...SEPARATED)).result);
  assert.is(result.converged, true);
  assert.ok(everyNumberFinite(result));
  const pooled = SEPARATED.flatMap((text) => text.trim().split('\n').slice(1).map((line) => line.split(',').map(Number)));
  const expected = logisticFit(pooled.map(([x]) => [1, x ?? 0]), pooled.map((row) => row[1] ?? 0), 1);
  assertMatches(result, expected, ['(Intercept)', 'x'], 1e-6, true);
});

test('not converged within maxRounds: a result flagged converged: false, with a warning in the report', async () => {
  const computation = logistic({ ...PENGUINS, maxRounds: 3 });
  const run = federate(computation, await sampleSites(computation));
  const result = resultOf(run.result);
  assert.is(run.rounds.length, 3);
  assert.is(result.converged, false);
  assert.is(result.iterations, 3);
  assert.ok(result.lastStep > 1e-6);
  const report = computation.report(result);
  assert.match(report, /\*\*Not converged\*\*: after 3 Newton rounds \(maxRounds\)/);
  assert.not.match(report, /SMPC/);
  assert.match(computation.report({ ...result, secure: true }), /With SMPC every sum is rounded/);
});

test('a step that lowers the log-likelihood is halved and retried', async () => {
  const computation = logistic(PENGUINS);
  const sites = await sampleSites(computation);
  // Two rounds as usual, then pretend the second step had overshot tenfold.
  const first = federate(computation, sites, { maxRounds: 200 }).rounds;
  const state = first[1]?.aggregate.global as Extract<LogisticGlobal, { stage: 'newton' }>;
  const accepted = state.accepted;
  if (accepted === null) throw new Error('no accepted point');
  const overshoot: Json = { ...state, coefficients: accepted.coefficients.map((b, i) => b + 10 * (accepted.step[i] ?? 0)) };
  const contributions = sites.map((site) => computation.localStep(site, overshoot, 3, false));
  const next = computation.aggregate(contributions, overshoot, 3, false).global as Extract<LogisticGlobal, { stage: 'newton' }>;
  assert.is(next.halvings, 1);
  assert.equal(next.accepted, accepted);
  next.coefficients.forEach((b, i) => assertClose(b, (accepted.coefficients[i] ?? 0) + 0.5 * (accepted.step[i] ?? 0), 1e-15, `β${i}`, 1));
});

// ---- DP-like noise ----

test('DP-like noise: a flagged result or an error naming DP, never NaN', async () => {
  const computation = logistic(PENGUINS);
  const sites = await sampleSites(computation);
  for (const scale of [0.01, 1]) {
    const random = seeded(17);
    const noisy = (tree: NumericTree) => mapTree(tree, (value) => value + (random.uniform() - 0.5) * 2 * scale);
    try {
      const result = resultOf(federate(computation, sites, { noise: noisy }).result);
      assert.is(result.noisy, true);
      assert.ok(everyNumberFinite(result));
      const report = computation.report(result);
      assert.match(report, /differential-privacy \(DP\) noise/);
      assert.not.match(report, /NaN|Infinity/);
    } catch (error) {
      assert.instance(error, InputError);
      assert.match((error as Error).message, /DP noise/);
    }
  }
});

// ---- report and CSV ----

test('the report is a Markdown coefficient table; the CSV reads back with our reader', async () => {
  const computation = logistic(PENGUINS);
  const result = resultOf(federate(computation, await sampleSites(computation)).result);
  const report = computation.report(result);
  assert.match(report, /^# Logistic regression of sex = male\n/);
  assert.match(report, /n = 333 \(11 rows dropped for a missing value\), 168 of them positive; converged after \d+ rounds\./);
  assert.match(report, /\| term \| estimate \| std\. error \| z value \| p value \|/);
  assert.match(report, /\| bill_depth_mm \| 2\.0315\d+ \|/);
  assert.match(report, /Log-likelihood: -79\.50\d*; residual deviance: 159\.00\d*; null deviance: 461\.6\d*; AIC: 169\.00\d*/);
  const folder = await mkdtemp(join(tmpdir(), 'fc-logistic-csv-'));
  await writeFile(join(folder, 'result.csv'), computation.csv(result) ?? '');
  const table = await readTable(join(folder, 'result.csv'));
  assert.equal(table.columns, ['term', 'estimate', 'std_error', 'z_value', 'p_value']);
  assert.equal(table.numeric('z_value'), result.coefficients.map((c) => c.z));
});

// ---- bad input ----

test('the positive value never occurs, or always: an error naming the target', async () => {
  const typo = logistic({ ...PENGUINS, positive: 'Male' });
  const none = await failure(async () => federate(typo, await sampleSites(typo)));
  assert.is(none.message, "no complete row at any site has sex = 'Male'; check parameters.positive and the target");
  const computation = logistic({ target: 'y', predictors: ['x'] });
  const all = await failure(async () => federate(computation, await sitesFrom(computation, 'x,y\n1,1\n2,1\n', 'x,y\n3,1\n')));
  assert.is(all.message, 'every complete row at every site has y = 1; a binary target needs both outcomes');
});

test('a target with three values, or numbers other than 0/1, names the file and column', async () => {
  // Each site checks its own values (the sample's islands hold at most two species each).
  const species = logistic({ target: 'species', positive: 'Adelie', predictors: ['x'] });
  const three = await failure(() => sitesFrom(species, 'x,species\n1,Adelie\n2,Gentoo\n3,NA\n4, Chinstrap\n'));
  assert.is(three.message, "site1.csv: column 'species' has 3 different values ('Adelie', 'Gentoo', 'Chinstrap'); a binary target has two");
  const numeric = logistic({ target: 'y', predictors: ['x'] });
  const two = await failure(() => sitesFrom(numeric, 'x,y\n1,0\n2,2\n3,1\n4,-1\n'));
  assert.is(two.message, "site1.csv: column 'y' must hold 0 or 1 (or name its positive value in parameters.positive); found 2 and 1 more values that are neither");
  assert.is((two as InputError).field, 'y');
  const text = await failure(() => sampleSites(logistic({ target: 'sex', predictors: ['body_mass_g'] })));
  assert.match(text.message, /^data\.csv: row 2, column 'sex': 'female' is not a number/);
});

test('a constant or an aliased predictor is named; too few pooled rows is an error', async () => {
  const constant = logistic({ target: 'y', predictors: ['x', 'k'] });
  const k = await failure(async () => federate(constant, await sitesFrom(constant, 'x,k,y\n1,5,0\n2,5,1\n3,5,0\n', 'x,k,y\n4,5,1\n')));
  assert.is(k.message, "column 'k' is constant (5) over the complete rows of all sites; it cannot be a predictor beside the intercept");
  const aliased = logistic({ target: 'y', predictors: ['a', 'b', 'c'] });
  const rows = [[1, 2, 3, 0], [2, 1, 3, 1], [3, 5, 8, 0], [4, 4, 8, 1], [5, 1, 6, 1], [6, 2, 8, 0]];
  const c = await failure(async () => federate(aliased, await sitesFrom(aliased, csvOf(['a', 'b', 'c', 'y'], rows))));
  assert.is(c.message, "column 'c' is (almost) a linear combination of '(Intercept)', 'a', 'b': the Hessian is singular; remove one of them");
  const few = logistic({ target: 'y', predictors: ['a', 'b'] });
  const small = await failure(async () => federate(few, await sitesFrom(few, 'a,b,y\n1,2,0\n', 'a,b,y\n2,1,1\n3,3,0\n')));
  assert.is(small.message, 'the pooled data have 3 complete rows for 3 coefficients; a fit needs more rows than coefficients');
});

test('sites configured with other predictors are caught at the coordinator', async () => {
  const mine = logistic({ target: 'y', predictors: ['a', 'b'] });
  const theirs = logistic({ target: 'y', predictors: ['b', 'a'] });
  const [own] = await sitesFrom(mine, 'a,b,y\n1,2,0\n2,2,1\n');
  const [other] = await sitesFrom(theirs, 'a,b,y\n4,2,1\n5,5,0\n');
  if (own === undefined || other === undefined) throw new Error('no sites');
  const contributions = [mine.localStep(own, null, 1, false), theirs.localStep(other, null, 1, false)];
  // The same predictors in another order: the terms (and the coefficients' order) differ.
  const error = await failure(() => mine.aggregate(contributions, null, 1, false));
  assert.match(error.message, /^config\.yml: the sites' figures do not match at 'hessian\.a\.b'/);
  const fewer = logistic({ target: 'y', predictors: ['a'] });
  const [third] = await sitesFrom(fewer, 'a,y\n4,1\n5,0\n');
  if (third === undefined) throw new Error('no site');
  const missing = await failure(() => mine.aggregate([contributions[0] ?? 0, fewer.localStep(third, null, 1, false)], null, 1, false));
  assert.match(missing.message, /do not match at 'gradient\.b'/);
});

const badParameters: [unknown, string][] = [
  [{ ...PENGUINS, tolerance: 0 }, 'config.yml: fc-xstate-client.parameters.tolerance must be greater than 0'],
  [{ ...PENGUINS, tolerance: 2 }, 'config.yml: fc-xstate-client.parameters.tolerance must be less than 1'],
  [{ ...PENGUINS, maxRounds: 0 }, 'config.yml: fc-xstate-client.parameters.maxRounds must be at least 1'],
  [{ ...PENGUINS, maxRounds: 2.5 }, 'config.yml: fc-xstate-client.parameters.maxRounds must be a whole number (got 2.5)'],
  [{ ...PENGUINS, positive: '' }, 'config.yml: fc-xstate-client.parameters.positive must not be empty'],
  [{ ...PENGUINS, ridge: -0.1 }, 'config.yml: fc-xstate-client.parameters.ridge must be at least 0'],
  [{ ...PENGUINS, predictors: ['sex'] }, "config.yml: fc-xstate-client.parameters.predictors must not list the target 'sex'"],
];

for (const [parameters, message] of badParameters) {
  test(`invalid parameters ${JSON.stringify(parameters)} name config.yml and the field`, () => {
    try {
      logistic(parameters as object);
      assert.unreachable('configure should throw');
    } catch (error) {
      assert.instance(error, InputError);
      assert.is((error as Error).message, message);
    }
  });
}

test('a positive value given as a number is compared as text', async () => {
  const computation = logistic({ target: 'y', positive: 1, predictors: ['x'] });
  const sites = await sitesFrom(computation, 'x,y\n1,0\n2,1\n3,0\n4,1\n5,1\n6,0\n7,1\n');
  assert.is(resultOf(federate(computation, sites).result).positive, '1');
});

test.run();
