import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { COMPUTATION_NAMES, configureComputation } from '../src/computation/registry.ts';
import type { ColumnStatistics, StatisticsGlobal, StatisticsResult } from '../src/computation/statistics.ts';
import type { AggregateResult, ConfiguredComputation, Json, NumericTree, PreparedSite } from '../src/computation/types.ts';
import { readTable } from '../src/data/csv.ts';
import { loadConfig } from '../src/data/config.ts';
import { InputError } from '../src/data/errors.ts';

const SITES = ['torgersen', 'biscoe', 'dream'];
const SOURCE_KEYS = {
  bill_length_mm: 'Beak Length (mm)',
  bill_depth_mm: 'Beak Depth (mm)',
  flipper_length_mm: 'Flipper Length (mm)',
  body_mass_g: 'Body Mass (g)',
} as const;
const COLUMNS = Object.keys(SOURCE_KEYS) as (keyof typeof SOURCE_KEYS)[];

const repo = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const folders: string[] = [];

test.after(async () => {
  await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
});

// ---- helpers: a federation, run the way the runtime runs one ----

/** What the relay does to every message: JSON there and back. */
const wire = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/** What SMPC does: the element-wise sum of contributions that must have the same shape. */
function sumTrees(trees: readonly NumericTree[]): NumericTree {
  const [first, ...rest] = trees;
  if (first === undefined) throw new Error('nothing to sum');
  return rest.reduce(addTrees, first);
}

function addTrees(a: NumericTree, b: NumericTree): NumericTree {
  if (typeof a === 'number' || typeof b === 'number') {
    if (typeof a !== 'number' || typeof b !== 'number') throw new Error('shapes differ');
    return a + b;
  }
  if (isList(a) || isList(b)) throw new Error('no lists expected here');
  assert.equal(Object.keys(b).sort(), Object.keys(a).sort(), 'contributions must have the same keys');
  return Object.fromEntries(
    Object.keys(a).map((key) => {
      const left = a[key];
      const right = b[key];
      if (left === undefined || right === undefined) throw new Error(`missing ${key}`);
      return [key, addTrees(left, right)];
    }),
  );
}

function isList(tree: NumericTree): tree is readonly NumericTree[] {
  return Array.isArray(tree);
}

interface Run {
  readonly rounds: { contributions: NumericTree[]; aggregate: AggregateResult<Json> }[];
  readonly result: StatisticsResult;
}

/**
 * Round 1 over all sites, then round 2 with the global result, as a federation would: every
 * message crosses the wire, and with `secure` the coordinator only sees the element-wise sum.
 * `noise` stands in for the controllers' DP.
 */
function federate(
  computation: ConfiguredComputation,
  sites: readonly PreparedSite[],
  secure = false,
  noise: (tree: NumericTree) => NumericTree = (tree) => tree,
): Run {
  const rounds: Run['rounds'] = [];
  let previous: Json | null = null;
  for (let round = 1; round <= computation.expectedRounds; round++) {
    const contributions = sites.map((site) => wire(noise(computation.localStep(site, previous, round, secure))));
    const received = secure ? [sumTrees(contributions)] : contributions;
    const aggregate = computation.aggregate(received, previous, round, secure);
    rounds.push({ contributions, aggregate });
    previous = wire(aggregate.global);
    if (aggregate.final) break;
  }
  const last = rounds.at(-1);
  if (last === undefined || !last.aggregate.final) throw new Error('the computation never finished');
  return { rounds, result: wire(computation.result(last.aggregate.global)) as StatisticsResult };
}

async function sampleSites(computation: ConfiguredComputation): Promise<PreparedSite[]> {
  return Promise.all(SITES.map(async (site) => computation.prepare(await readTable(repo(`sample/${site}/data.csv`)))));
}

async function sampleComputation(): Promise<ConfiguredComputation> {
  const config = await loadConfig(repo('sample/torgersen'));
  return configureComputation(config.computation, config.parameters);
}

/** Sites from CSV texts, written to a temp folder and read back like real ones. */
async function sitesFrom(computation: ConfiguredComputation, ...texts: string[]): Promise<PreparedSite[]> {
  const folder = await mkdtemp(join(tmpdir(), 'fc-stats-'));
  folders.push(folder);
  return Promise.all(
    texts.map(async (text, index) => {
      const path = join(folder, `site${index}.csv`);
      await writeFile(path, text);
      return computation.prepare(await readTable(path));
    }),
  );
}

function columnOf(result: StatisticsResult, column: string): ColumnStatistics {
  const entry = result.columns.find((candidate) => candidate.column === column);
  if (entry === undefined) throw new Error(`no column ${column}`);
  return entry;
}

function assertClose(actual: number | null, expected: number, label: string, tolerance = 1e-12): void {
  if (actual === null) throw new assert.Assertion({ message: `${label}: got null, expected ${expected}`, generated: false, operator: 'close', expects: expected, actual });
  const error = expected === 0 ? Math.abs(actual) : Math.abs(actual - expected) / Math.abs(expected);
  assert.ok(error <= tolerance, `${label}: ${actual} vs ${expected} (relative error ${error})`);
}

function everyNumberFinite(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(everyNumberFinite);
  if (typeof value === 'object' && value !== null) return Object.values(value).every(everyNumberFinite);
  return true;
}

function statistics(columns: string[]): ConfiguredComputation {
  return configureComputation('statistics', { columns });
}

// ---- the pooled reference, written plainly over the source's 344 rows ----

interface Pooled {
  count: number;
  missing: number;
  mean: number;
  variance: number;
  min: number;
  max: number;
}

async function pooledFromSource(): Promise<Map<string, Pooled>> {
  const rows = JSON.parse(await readFile(repo('node_modules/vega-datasets/data/penguins.json'), 'utf8')) as Record<string, number | null>[];
  const pooled = new Map<string, Pooled>();
  for (const column of COLUMNS) {
    const values: number[] = [];
    for (const row of rows) {
      const value = row[SOURCE_KEYS[column]];
      if (typeof value === 'number') values.push(value);
    }
    let sum = 0;
    for (const value of values) sum += value;
    const mean = sum / values.length;
    let squares = 0;
    for (const value of values) squares += (value - mean) ** 2;
    pooled.set(column, {
      count: values.length,
      missing: rows.length - values.length,
      mean,
      variance: squares / (values.length - 1),
      min: Math.min(...values),
      max: Math.max(...values),
    });
  }
  return pooled;
}

function assertMatchesPooled(result: StatisticsResult, pooled: Map<string, Pooled>, secure: boolean): void {
  assert.equal(result.columns.map((entry) => entry.column), COLUMNS);
  for (const column of COLUMNS) {
    const expected = pooled.get(column);
    if (expected === undefined) throw new Error(column);
    const actual = columnOf(result, column);
    assert.is(actual.count, expected.count, `${column} count`);
    assert.is(actual.missing, expected.missing, `${column} missing`);
    assertClose(actual.mean, expected.mean, `${column} mean`);
    assertClose(actual.variance, expected.variance, `${column} variance`);
    assertClose(actual.sd, Math.sqrt(expected.variance), `${column} sd`);
    assert.is(actual.min, secure ? null : expected.min, `${column} min`);
    assert.is(actual.max, secure ? null : expected.max, `${column} max`);
  }
}

// ---- tests ----

test('registered as statistics, two rounds', async () => {
  const computation = await sampleComputation();
  assert.is(computation.name, 'statistics');
  assert.is(computation.expectedRounds, 2);
  assert.ok(COMPUTATION_NAMES.includes('statistics'));
});

test('federated statistics over the three sample sites equal the pooled ones', async () => {
  const computation = await sampleComputation();
  const run = federate(computation, await sampleSites(computation));
  assert.is(run.rounds.length, 2);
  assert.is(run.result.computation, 'statistics');
  assertMatchesPooled(run.result, await pooledFromSource(), false);
});

test('known values: 342 body masses summing to 1437000 g, flippers to 68713 mm', async () => {
  const computation = await sampleComputation();
  const { result } = federate(computation, await sampleSites(computation));
  const mass = columnOf(result, 'body_mass_g');
  assert.is(mass.count, 342);
  assert.is(mass.missing, 2);
  assertClose(mass.mean, 1437000 / 342, 'body mass mean');
  assert.is(mass.min, 2700);
  assert.is(mass.max, 6300);
  // As published for palmerpenguins (R: sd(penguins$body_mass_g, na.rm = TRUE)), to its 7 digits.
  assertClose(mass.sd, 801.9545, 'body mass sd', 1e-7);
  assertClose(columnOf(result, 'flipper_length_mm').mean, 68713 / 342, 'flipper mean');
});

test('round 1 gives the pooled counts and means, not yet final', async () => {
  const computation = await sampleComputation();
  const [first] = federate(computation, await sampleSites(computation)).rounds;
  if (first === undefined) throw new Error('no round');
  assert.is(first.aggregate.final, false);
  const global = first.aggregate.global as StatisticsGlobal;
  assert.is(global.stage, 'means');
  const mass = global.columns.find((entry) => entry.column === 'body_mass_g');
  assert.is(mass?.count, 342);
  assertClose(mass?.mean ?? null, 1437000 / 342, 'round-1 mean');
});

test('with SMPC (contributions summed first) the result is the same, min/max null', async () => {
  const computation = await sampleComputation();
  const run = federate(computation, await sampleSites(computation), true);
  assertMatchesPooled(run.result, await pooledFromSource(), true);
  const report = computation.report(run.result);
  assert.match(report, /SMPC/);
  assert.match(report, /min and max are not available/);
});

test('contributions have the same shape at every site and hold only finite numbers', async () => {
  const computation = statistics(['x', 'y']);
  // Site 2 has no x at all, site 3 a single row.
  const sites = await sitesFrom(computation, 'x,y\n1,2\n3,4\n', 'x,y\nNA,5\n,6\n', 'x,y\n7,NA\n');
  for (const secure of [false, true]) {
    for (const { contributions } of federate(computation, sites, secure).rounds) {
      for (const contribution of contributions) {
        assert.ok(everyNumberFinite(contribution));
        // Summing throws when shapes differ.
        sumTrees([contribution, contributions[0] ?? 0]);
      }
    }
  }
});

test('a column with no values at one site counts as n = 0 there', async () => {
  const computation = statistics(['x', 'y']);
  const sites = await sitesFrom(computation, 'x,y\n1,10\n2,20\n', 'x,y\nNA,30\nNA,NA\n', 'x,y\n6,40\n');
  for (const secure of [false, true]) {
    const x = columnOf(federate(computation, sites, secure).result, 'x');
    // Pooled x: 1, 2, 6 -> mean 3, squared deviations 4 + 1 + 9 = 14, variance 14 / 2.
    assert.is(x.count, 3);
    assert.is(x.missing, 2);
    assertClose(x.mean, 3, 'mean');
    assertClose(x.variance, 7, 'variance');
    assertClose(x.sd, Math.sqrt(7), 'sd');
    // The empty site's placeholders must not become the minimum.
    assert.is(x.min, secure ? null : 1);
    assert.is(x.max, secure ? null : 6);
    const y = columnOf(federate(computation, sites, secure).result, 'y');
    assert.is(y.count, 4);
    assert.is(y.missing, 1);
    assertClose(y.mean, 25, 'y mean');
  }
});

test('a column missing everywhere, or with one value, gives nulls and no NaN', async () => {
  const computation = statistics(['empty', 'single']);
  const sites = await sitesFrom(computation, 'empty,single\nNA,5\n', 'empty,single\n,NA\nNaN,null\n');
  const { result } = federate(computation, sites);
  assert.equal(columnOf(result, 'empty'), {
    column: 'empty', count: 0, missing: 3, mean: null, variance: null, sd: null, min: null, max: null,
  });
  assert.equal(columnOf(result, 'single'), {
    column: 'single', count: 1, missing: 2, mean: 5, variance: null, sd: null, min: 5, max: 5,
  });
  const report = computation.report(result);
  assert.match(report, /\| empty \| 0 \| 3 \| n\/a \| n\/a \| n\/a \| n\/a \| n\/a \|/);
  assert.not.match(report, /SMPC/);
});

test('stable where sum of squares minus n * mean^2 would cancel', async () => {
  const computation = statistics(['x']);
  // Values 1e9 + 1, + 2, + 3 spread over sites: variance exactly 1.
  const sites = await sitesFrom(computation, 'x\n1000000001\n', 'x\n1000000002\n1000000003\n');
  const x = columnOf(federate(computation, sites).result, 'x');
  assertClose(x.mean, 1000000002, 'mean');
  assertClose(x.variance, 1, 'variance');
});

test('DP-like noisy contributions (fractional and negative counts) never produce NaN or Infinity', async () => {
  const computation = statistics(['x', 'y']);
  const sites = await sitesFrom(computation, 'x,y\n1,NA\n', 'x,y\nNA,NA\n', 'x,y\n2,3\n4,NA\n');
  // A small deterministic generator: noise of scale up to 3 on every number sent.
  let state = 12345;
  const uniform = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const noisy = (tree: NumericTree): NumericTree => {
    if (typeof tree === 'number') return tree + (uniform() - 0.5) * 6;
    if (isList(tree)) return tree.map(noisy);
    return Object.fromEntries(Object.entries(tree).map(([key, value]) => [key, noisy(value)]));
  };
  let fractional = 0;
  for (let trial = 0; trial < 300; trial++) {
    for (const secure of [false, true]) {
      const run = federate(computation, sites, secure, noisy);
      for (const { aggregate } of run.rounds) assert.ok(everyNumberFinite(aggregate.global), JSON.stringify(aggregate.global));
      assert.ok(everyNumberFinite(run.result));
      for (const entry of run.result.columns) {
        assert.ok(entry.count >= 0 && entry.missing >= 0, 'counts are clamped at 0');
        if (entry.variance !== null) assert.ok(entry.variance >= 0 && entry.count >= 2);
        if (entry.mean !== null) assert.ok(entry.count >= 1);
        if (!Number.isInteger(entry.count)) fractional++;
      }
      assert.not.match(computation.report(run.result), /NaN|Infinity/);
      assert.not.match(computation.csv(run.result) ?? '', /NaN|Infinity/);
    }
  }
  assert.ok(fractional > 0);
});

test('the report notes DP noise when counts are not whole numbers', () => {
  const computation = statistics(['x']);
  const report = computation.report({
    computation: 'statistics',
    columns: [{ column: 'x', count: 341.6, missing: 2.2, mean: 4, variance: 2, sd: Math.SQRT2, min: 1, max: 7 }],
  });
  assert.match(report, /differential-privacy/);
  assert.match(report, /\| x \| 341\.6 \| 2\.2 \| 4 \| 2 \| 1\.41421 \| 1 \| 7 \|/);
});

test('report is a Markdown table; csv is read back by our reader with NA for null', async () => {
  const computation = await sampleComputation();
  const { result } = federate(computation, await sampleSites(computation), true);
  const report = computation.report(result);
  assert.match(report, /\| column \| count \| missing \| mean \| variance \| sd \| min \| max \|/);
  assert.match(report, /\| body_mass_g \| 342 \| 2 \| 4201\.75 \|/);

  const folder = await mkdtemp(join(tmpdir(), 'fc-stats-'));
  folders.push(folder);
  await writeFile(join(folder, 'result.csv'), computation.csv(result) ?? '');
  const table = await readTable(join(folder, 'result.csv'));
  assert.equal(table.columns, ['column', 'count', 'missing', 'mean', 'variance', 'sd', 'min', 'max']);
  assert.equal(table.text('column'), COLUMNS);
  assert.equal(table.numeric('mean'), result.columns.map((entry) => entry.mean));
  assert.equal(table.numeric('min'), [null, null, null, null]);
});

test('an unknown column in the data is an InputError naming file and column', async () => {
  const computation = statistics(['bill_len']);
  try {
    computation.prepare(await readTable(repo('sample/dream/data.csv')));
    assert.unreachable('prepare should throw');
  } catch (error) {
    assert.instance(error, InputError);
    assert.match((error as InputError).message, /^data\.csv: column 'bill_len' not found \(have: species, /);
  }
});

test('a non-numeric cell is an InputError naming file, row and column', async () => {
  const computation = statistics(['x']);
  try {
    await sitesFrom(computation, 'x\n1\n2kg\n');
    assert.unreachable('prepare should throw');
  } catch (error) {
    assert.instance(error, InputError);
    assert.is((error as InputError).message, "site0.csv: row 3, column 'x': '2kg' is not a number");
  }
});

test('sites configured with different columns are caught by the coordinator', async () => {
  const coordinator = statistics(['x', 'y']);
  const other = statistics(['x']);
  const [mine] = await sitesFrom(coordinator, 'x,y\n1,2\n');
  const [theirs] = await sitesFrom(other, 'x\n3\n');
  if (mine === undefined || theirs === undefined) throw new Error('no sites');
  const contributions = [coordinator.localStep(mine, null, 1, false), other.localStep(theirs, null, 1, false)];
  try {
    coordinator.aggregate(contributions, null, 1, false);
    assert.unreachable('aggregate should throw');
  } catch (error) {
    assert.instance(error, InputError);
    assert.match((error as InputError).message, /column 'y'.*parameters\.columns/);
  }
});

test('data prepared by another computation is refused', () => {
  const computation = statistics(['x']);
  assert.throws(() => computation.localStep({ computation: 'other', data: [] }, null, 1, false), /prepared for 'other'/);
});

// ---- the registry's config errors ----

function configureError(name: string, parameters: unknown, configFile?: string): InputError {
  try {
    configureComputation(name, parameters, configFile);
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error('expected an InputError, but nothing was thrown');
}

test('an unknown computation names config.yml, the field and the known names', () => {
  const error = configureError('statistic', { columns: ['x'] });
  assert.is(error.message, "config.yml: fc-xstate-client.computation 'statistic' is not known (known: statistics, linear-regression, logistic-regression)");
  assert.is(error.file, 'config.yml');
  assert.is(error.field, 'fc-xstate-client.computation');
});

const badParameters: [unknown, string][] = [
  [{}, 'config.yml: fc-xstate-client.parameters.columns is required'],
  [{ columns: [] }, 'config.yml: fc-xstate-client.parameters.columns must list at least 1 entry'],
  [{ columns: 'x' }, "config.yml: fc-xstate-client.parameters.columns must be a list (got 'x')"],
  [{ columns: ['x', 'x'] }, "config.yml: fc-xstate-client.parameters.columns must not list a column twice ('x')"],
  [{ columns: ['x', 3] }, 'config.yml: fc-xstate-client.parameters.columns[1] must be text (got 3)'],
  [{ columns: ['x', ''] }, 'config.yml: fc-xstate-client.parameters.columns[1] must not be empty'],
  [{ columns: ['x'], colums: ['y'] }, 'config.yml: fc-xstate-client.parameters.colums is not a known field'],
  [null, 'config.yml: fc-xstate-client.parameters must be a mapping (got null)'],
];

for (const [parameters, message] of badParameters) {
  test(`invalid parameters ${JSON.stringify(parameters)} name config.yml and the field`, () => {
    const error = configureError('statistics', parameters);
    assert.is(error.message, message);
    assert.is(error.file, 'config.yml');
  });
}

test('an absolute config path is named by its file name', () => {
  const unknown = configureError('nope', {}, '/mnt/input/config.yml');
  assert.match(unknown.message, /^config\.yml: fc-xstate-client\.computation 'nope'/);
  const invalid = configureError('statistics', { columns: [] }, '/mnt/input/config.yml');
  assert.match(invalid.message, /^config\.yml: fc-xstate-client\.parameters\.columns /);
});

test.run();
