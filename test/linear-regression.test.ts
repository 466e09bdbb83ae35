import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LinearRegressionResult } from '../src/computation/linear-regression.ts';
import { COMPUTATION_NAMES, configureComputation } from '../src/computation/registry.ts';
import type { ConfiguredComputation, NumericTree } from '../src/computation/types.ts';
import { tTwoSidedP } from '../src/computation/distributions.ts';
import { readTable } from '../src/data/csv.ts';
import { loadConfig } from '../src/data/config.ts';
import { InputError } from '../src/data/errors.ts';
import {
  assertClose,
  csvOf,
  everyNumberFinite,
  federate,
  largestRelativeError,
  mapTree,
  olsFit,
  pooledSample,
  removeTempFolders,
  repo,
  sampleSites,
  seeded,
  sitesFrom,
  sumTrees,
  type OlsFit,
} from './support/regression.ts';

test.after(removeTempFolders);

const PENGUINS = {
  target: 'body_mass_g',
  predictors: ['flipper_length_mm', 'bill_length_mm', 'species'],
  categorical: ['species'],
};

const linear = (parameters: object): ConfiguredComputation => configureComputation('linear-regression', parameters);

function resultOf(result: unknown): LinearRegressionResult {
  return result as LinearRegressionResult;
}

/** Every figure of a federated fit against the pooled QR fit. */
function assertMatches(result: LinearRegressionResult, expected: OlsFit, terms: readonly string[], tolerance: number, ridge = false): void {
  assert.equal(result.coefficients.map((c) => c.term), terms);
  result.coefficients.forEach((c, i) => {
    assertClose(c.estimate, expected.coefficients[i] ?? Number.NaN, tolerance, `${c.term} estimate`);
    assertClose(c.standardError, expected.standardErrors[i] ?? Number.NaN, tolerance, `${c.term} standard error`);
    if (ridge) {
      assert.is(c.t, null, 'no t value with ridge');
      assert.is(c.p, null, 'no p value with ridge');
    } else {
      const t = (expected.coefficients[i] ?? Number.NaN) / (expected.standardErrors[i] ?? Number.NaN);
      assertClose(c.t, t, tolerance, `${c.term} t`);
      assertClose(c.p, tTwoSidedP(t, expected.df), 1e-6, `${c.term} p`);
    }
  });
  assertClose(result.degreesOfFreedom, expected.df, tolerance, 'degrees of freedom');
  assertClose(result.residualStandardError, expected.sigma, tolerance, 'residual standard error');
  assertClose(result.rSquared, expected.rSquared, tolerance, 'R²');
  assertClose(result.adjustedRSquared, expected.adjustedRSquared, tolerance, 'adjusted R²');
}

// ---- the sample ----

test('registered as linear-regression; two rounds with a categorical predictor, one without', async () => {
  assert.ok(COMPUTATION_NAMES.includes('linear-regression'));
  assert.is(linear(PENGUINS).expectedRounds, 2);
  assert.is(linear({ target: 'body_mass_g', predictors: ['flipper_length_mm'] }).expectedRounds, 1);
  const config = await loadConfig(repo('sample/configs/linear-regression'));
  assert.is(config.computation, 'linear-regression');
  assert.equal(configureComputation(config.computation, config.parameters).name, 'linear-regression');
});

test('penguins: body mass from flipper, bill and species equals the pooled OLS to 1e-9', async () => {
  const computation = linear(PENGUINS);
  const run = federate(computation, await sampleSites(computation));
  assert.equal(run.rounds.map((round) => round.additive), [false, true], 'a gather round for the categories, then the sums');
  const result = resultOf(run.result);
  const pooled = await pooledSample('body_mass_g', Number, PENGUINS.predictors, PENGUINS.categorical);
  assert.equal(pooled.terms, ['(Intercept)', 'flipper_length_mm', 'bill_length_mm', 'species=Chinstrap', 'species=Gentoo']);
  assert.is(result.n, 342);
  assert.is(result.dropped, 2);
  assert.is(result.noisy, false);
  assert.equal(result.references, [{ column: 'species', level: 'Adelie' }]);
  assertMatches(result, olsFit(pooled.x, pooled.y), pooled.terms, 1e-9);
});

test('penguins with SMPC-style sums (added, rounded to 8 decimals) still equal the pooled OLS to 1e-9', async () => {
  const computation = linear(PENGUINS);
  const run = federate(computation, await sampleSites(computation), { secure: true });
  const pooled = await pooledSample('body_mass_g', Number, PENGUINS.predictors, PENGUINS.categorical);
  assertMatches(resultOf(run.result), olsFit(pooled.x, pooled.y), pooled.terms, 1e-9);
});

test('numeric predictors only: one round, no gather', async () => {
  const computation = linear({ target: 'body_mass_g', predictors: ['flipper_length_mm', 'bill_depth_mm'] });
  const run = federate(computation, await sampleSites(computation));
  assert.equal(run.rounds.map((round) => round.additive), [true]);
  const pooled = await pooledSample('body_mass_g', Number, ['flipper_length_mm', 'bill_depth_mm']);
  assertMatches(resultOf(run.result), olsFit(pooled.x, pooled.y), pooled.terms, 1e-9);
});

// ---- generated data with known coefficients ----

const TRUE = { intercept: 3, x1: 2, x2: -0.5, b: 1.5, c: -2 };

/** y = 3 + 2·x1 - 0.5·x2 + 1.5·[g = b] - 2·[g = c] + N(0, 1); site 4 has just two rows. */
function generatedSites(seed: number): string[] {
  const random = seeded(seed);
  const sizes = [900, 600, 497, 2];
  return sizes.map((size, site) => {
    const rows = Array.from({ length: size }, () => {
      const x1 = random.normal() * 3 + site;
      const x2 = random.uniform() * 100 + 1000;
      const g = ['a', 'b', 'c'][Math.floor(random.uniform() * 3)] ?? 'a';
      const y = TRUE.intercept + TRUE.x1 * x1 + TRUE.x2 * x2 + (g === 'b' ? TRUE.b : 0) + (g === 'c' ? TRUE.c : 0) + random.normal();
      return [x1, x2, g, y];
    });
    return csvOf(['x1', 'x2', 'g', 'y'], rows);
  });
}

function pooledGenerated(texts: readonly string[]): { x: number[][]; y: number[] } {
  const rows = texts.flatMap((text) => text.trim().split('\n').slice(1).map((line) => line.split(',')));
  return {
    x: rows.map(([x1, x2, g]) => [1, Number(x1), Number(x2), g === 'b' ? 1 : 0, g === 'c' ? 1 : 0]),
    y: rows.map((row) => Number(row[3])),
  };
}

const GENERATED = { target: 'y', predictors: ['x1', 'x2', 'g'], categorical: ['g'] };

test('generated data: recovers the known coefficients and equals the pooled OLS, plain and SMPC-style', async () => {
  const texts = generatedSites(7);
  const computation = linear(GENERATED);
  const sites = await sitesFrom(computation, ...texts);
  const pooled = pooledGenerated(texts);
  const expected = olsFit(pooled.x, pooled.y);
  const terms = ['(Intercept)', 'x1', 'x2', 'g=b', 'g=c'];
  for (const secure of [false, true]) {
    const result = resultOf(federate(computation, sites, { secure }).result);
    // SMPC rounds Σx2 (about 2e6) to 1e-8, i.e. 5e-15 relative; centring (x2's mean is 36 SDs
    // from 0) and the intercept (ȳ - x̄ᵀβ, a 175-fold cancellation) magnify that to about 2e-9.
    assertMatches(result, expected, terms, secure ? 1e-8 : 1e-9);
    assert.is(result.n, 1999);
    const truth = [TRUE.intercept, TRUE.x1, TRUE.x2, TRUE.b, TRUE.c];
    result.coefficients.forEach((c, i) => {
      const distance = Math.abs(c.estimate - (truth[i] ?? 0)) / (c.standardError ?? Number.NaN);
      assert.ok(distance < 4, `${c.term}: ${c.estimate} is ${distance.toFixed(1)} standard errors from ${truth[i]}`);
    });
    assertClose(result.residualStandardError, 1, 0.05, 'the noise SD is 1');
  }
});

test('a site with fewer rows than coefficients is fine: only sums travel', async () => {
  const computation = linear({ target: 'y', predictors: ['x1', 'x2'] });
  const random = seeded(3);
  const rows = (count: number) =>
    Array.from({ length: count }, () => {
      const x1 = random.normal();
      const x2 = random.normal();
      return [x1, x2, 1 + x1 - x2 + random.normal()];
    });
  const texts = [csvOf(['x1', 'x2', 'y'], rows(1)), csvOf(['x1', 'x2', 'y'], rows(40)), csvOf(['x1', 'x2', 'y'], rows(2))];
  const result = resultOf(federate(computation, await sitesFrom(computation, ...texts)).result);
  const pooled = texts.flatMap((text) => text.trim().split('\n').slice(1).map((line) => line.split(',').map(Number)));
  const expected = olsFit(pooled.map(([x1, x2]) => [1, x1 ?? 0, x2 ?? 0]), pooled.map((row) => row[2] ?? 0));
  assertMatches(result, expected, ['(Intercept)', 'x1', 'x2'], 1e-9);
  assert.is(result.n, 43);
});

test('the reference category is the first in sorted order, also when a site lacks it', async () => {
  const computation = linear({ target: 'y', predictors: ['g'], categorical: ['g'] });
  // Site 1 has no 'apple': the union decides the columns, and the reference is still 'apple'.
  const sites = await sitesFrom(computation, 'g,y\npear,5\nfig,3\npear,6\n', 'g,y\napple,1\n apple ,2\nfig,4\n');
  const run = federate(computation, sites);
  const result = resultOf(run.result);
  assert.equal(result.coefficients.map((c) => c.term), ['(Intercept)', 'g=fig', 'g=pear']);
  assert.equal(result.references, [{ column: 'g', level: 'apple' }]);
  // Group means: apple 1.5, fig 3.5, pear 5.5.
  assertClose(result.coefficients[0]?.estimate, 1.5, 1e-12, 'intercept = mean of apple');
  assertClose(result.coefficients[1]?.estimate, 2, 1e-12, 'fig - apple');
  assertClose(result.coefficients[2]?.estimate, 4, 1e-12, 'pear - apple');
  // The gather round sent sorted labels; the summed round has the same shape at every site.
  assert.equal(run.rounds[0]?.contributions.map((message) => (message as { levels: { g: string[] } }).levels.g), [['fig', 'pear'], ['apple', 'fig']]);
  sumTrees((run.rounds[1]?.contributions ?? []) as NumericTree[]);
});

test('an exact linear relation: zero residuals, standard errors 0, no t or p values, a note', async () => {
  const computation = linear({ target: 'y', predictors: ['x'] });
  const sites = await sitesFrom(computation, 'x,y\n1,3\n2,5\n', 'x,y\n3,7\n4,9\n5,11\n');
  const result = resultOf(federate(computation, sites).result);
  assert.is(result.perfectFit, true);
  assertClose(result.coefficients[0]?.estimate, 1, 1e-12, 'intercept', 1);
  assertClose(result.coefficients[1]?.estimate, 2, 1e-12, 'slope');
  assert.equal(result.coefficients.map((c) => [c.standardError, c.t, c.p]), [[0, null, null], [0, null, null]]);
  assert.is(result.rSquared, 1);
  assert.match(computation.report(result), /exact linear function of the predictors/);
});

// ---- ridge ----

test('ridge: equals the pooled ridge fit (intercept not penalized), no t or p values', async () => {
  const texts = generatedSites(11);
  const pooled = pooledGenerated(texts);
  for (const ridge of [0.5, 50, 5000]) {
    const computation = linear({ ...GENERATED, ridge });
    const result = resultOf(federate(computation, await sitesFrom(computation, ...texts), { secure: ridge === 50 }).result);
    const expected = olsFit(pooled.x, pooled.y, ridge);
    assertMatches(result, expected, ['(Intercept)', 'x1', 'x2', 'g=b', 'g=c'], 1e-9, true);
    assert.ok(result.effectiveSlopes !== null && result.effectiveSlopes < 4 && result.effectiveSlopes > 0);
  }
  // λ = 0 through the ridge path is plain OLS; a huge λ shrinks every slope towards 0.
  const zero = resultOf(federate(linear({ ...GENERATED, ridge: 0 }), await sitesFrom(linear(GENERATED), ...texts)).result);
  assertMatches(zero, olsFit(pooled.x, pooled.y), ['(Intercept)', 'x1', 'x2', 'g=b', 'g=c'], 1e-9);
  const huge = resultOf(federate(linear({ ...GENERATED, ridge: 1e12 }), await sitesFrom(linear(GENERATED), ...texts)).result);
  assert.ok(huge.coefficients.slice(1).every((c) => Math.abs(c.estimate) < 1e-4));
  const report = linear({ ...GENERATED, ridge: 50 }).report(huge);
  assert.match(report, /Ridge regression \(penalty λ = 1000000000000/);
  assert.match(report, /no t or p values/);
});

// ---- DP-like noise ----

test('DP-like noisy sums never give NaN or Infinity; the report says the figures are noisy', async () => {
  const computation = linear(PENGUINS);
  const sites = await sampleSites(computation);
  const random = seeded(99);
  const noisy = (tree: NumericTree) => mapTree(tree, (value) => value + (random.uniform() - 0.5) * 2);
  let results = 0;
  for (let trial = 0; trial < 30; trial++) {
    try {
      const result = resultOf(federate(computation, sites, { noise: noisy }).result);
      assert.ok(everyNumberFinite(result));
      assert.is(result.noisy, true);
      assert.match(computation.report(result), /differential-privacy \(DP\) noise/);
      assert.not.match(computation.report(result) + (computation.csv(result) ?? ''), /NaN|Infinity/);
      results++;
    } catch (error) {
      // Noise may make the centred cross-products indefinite: then a clear error, naming DP.
      assert.instance(error, InputError);
      assert.match((error as Error).message, /DP noise/);
    }
  }
  assert.ok(results > 0);
});

// ---- report and CSV ----

test('the report is a Markdown coefficient table; the CSV reads back with our reader', async () => {
  const computation = linear(PENGUINS);
  const result = resultOf(federate(computation, await sampleSites(computation)).result);
  const report = computation.report(result);
  assert.match(report, /^# Linear regression of body_mass_g\n/);
  assert.match(report, /n = 342 \(2 rows dropped for a missing value\)/);
  assert.match(report, /\| term \| estimate \| std\. error \| t value \| p value \|\n\| --- \| ---: \| ---: \| ---: \| ---: \|/);
  assert.match(report, /\| \(Intercept\) \| -?\d/);
  assert.match(report, /\| species=Gentoo \| /);
  assert.match(report, /Residual standard error: [\d.]+ on 337 degrees of freedom/);
  assert.match(report, /Reference category of species: Adelie \(the first in sorted order\)/);

  const folder = await mkdtemp(join(tmpdir(), 'fc-regression-csv-'));
  await writeFile(join(folder, 'result.csv'), computation.csv(result) ?? '');
  const table = await readTable(join(folder, 'result.csv'));
  assert.equal(table.columns, ['term', 'estimate', 'std_error', 't_value', 'p_value']);
  assert.equal(table.text('term'), result.coefficients.map((c) => c.term));
  assert.equal(table.numeric('estimate'), result.coefficients.map((c) => c.estimate));
  assert.equal(table.numeric('p_value'), result.coefficients.map((c) => c.p));
});

// ---- bad input ----

async function failure(promise: Promise<unknown> | (() => unknown)): Promise<InputError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error('expected an InputError, but nothing was thrown');
}

test('pooled rows must outnumber the coefficients', async () => {
  const computation = linear({ target: 'y', predictors: ['a', 'b'] });
  const sites = await sitesFrom(computation, 'a,b,y\n1,2,3\n', 'a,b,y\n2,1,5\n4,NA,1\n3,3,2\n');
  const error = await failure(() => federate(computation, sites));
  assert.is(error.message, 'the pooled data have 3 complete rows for 3 coefficients; a fit needs more rows than coefficients');
});

test('a site without a complete row is an error naming its file and the missing columns', async () => {
  const computation = linear({ target: 'y', predictors: ['a'] });
  const error = await failure(sitesFrom(computation, 'a,y\n1,2\n2,3\n3,5\n', 'a,y\n1,NA\nNA,2\n2,NA\n'));
  assert.is(error.message, "site2.csv: no complete row: each of its 3 rows misses the target or a predictor (missing: 'y' in 2, 'a' in 1)");
  assert.is(error.file, 'site2.csv');
  assert.is(error.field, 'y');
});

test('a constant predictor is named', async () => {
  const computation = linear({ target: 'y', predictors: ['a', 'k'] });
  const sites = await sitesFrom(computation, 'a,k,y\n1,7,2\n2,7,3\n3,7,5\n', 'a,k,y\n4,7,4\n5,7,6\n');
  const error = await failure(() => federate(computation, sites));
  assert.is(error.message, "column 'k' is constant (7) over the complete rows of all sites; it cannot be a predictor beside the intercept");
  assert.is(error.field, 'k');
});

test('a predictor that is a combination of others is named (singular XᵀX)', async () => {
  const computation = linear({ target: 'y', predictors: ['a', 'b', 'c'] });
  // c = 2a - b at every site.
  const rows = [[1, 2, 0, 3], [2, 1, 3, 4], [3, 5, 1, 2], [4, 4, 4, 7], [5, 1, 9, 6]];
  const sites = await sitesFrom(computation, csvOf(['a', 'b', 'c', 'y'], rows.slice(0, 2)), csvOf(['a', 'b', 'c', 'y'], rows.slice(2)));
  const error = await failure(() => federate(computation, sites));
  assert.is(error.message, "column 'c' is (almost) a linear combination of '(Intercept)', 'a', 'b': XᵀX is singular; remove one of them");
  assert.is(error.field, 'c');
});

test('an aliased category is named as the category of its column', async () => {
  const computation = linear({ target: 'y', predictors: ['h', 'g'], categorical: ['g'] });
  // h is 1 exactly where g = b.
  const sites = await sitesFrom(computation, 'h,g,y\n1,b,2\n0,a,3\n0,a,5\n', 'h,g,y\n1,b,4\n0,a,6\n');
  const error = await failure(() => federate(computation, sites));
  assert.is(error.message, "category 'b' of column 'g' is (almost) a linear combination of '(Intercept)', 'h': XᵀX is singular; remove one of them");
  assert.is(error.field, 'g=b');
});

test('a constant target is named', async () => {
  const computation = linear({ target: 'y', predictors: ['a'] });
  const sites = await sitesFrom(computation, 'a,y\n1,4\n2,4\n', 'a,y\n3,4\n');
  const error = await failure(() => federate(computation, sites));
  assert.is(error.message, "the target 'y' is constant over the complete rows of all sites");
});

test('a missing target column, or a missing predictor column, names the file and column', async () => {
  const noTarget = await failure(sitesFrom(linear({ target: 'mass', predictors: ['a'] }), 'a,y\n1,2\n'));
  assert.is(noTarget.message, "site1.csv: column 'mass' not found (have: a, y)");
  assert.is(noTarget.field, 'mass');
  const noPredictor = await failure(sampleSites(linear({ target: 'body_mass_g', predictors: ['flipper'] })));
  assert.match(noPredictor.message, /^data\.csv: column 'flipper' not found \(have: species, /);
});

test('a non-numeric value names the file, row and column', async () => {
  const computation = linear({ target: 'y', predictors: ['a'] });
  const predictor = await failure(sitesFrom(computation, 'a,y\n1,2\n2 cm,3\n'));
  assert.is(predictor.message, "site1.csv: row 3, column 'a': '2 cm' is not a number");
  const target = await failure(sitesFrom(computation, 'a,y\n1,2\n2,heavy\n'));
  assert.is(target.message, "site1.csv: row 3, column 'y': 'heavy' is not a number");
  // A categorical column reads text: a label is fine there, but not in a numeric predictor.
  const species = await failure(sampleSites(linear({ target: 'body_mass_g', predictors: ['species'] })));
  assert.match(species.message, /^data\.csv: row 2, column 'species': 'Adelie' is not a number/);
});

test('sites configured with other columns are caught at the coordinator', async () => {
  const mine = linear({ target: 'y', predictors: ['a', 'b'] });
  const theirs = linear({ target: 'y', predictors: ['a'] });
  const [own] = await sitesFrom(mine, 'a,b,y\n1,2,3\n2,2,4\n3,1,1\n');
  const [other] = await sitesFrom(theirs, 'a,b,y\n4,2,3\n5,5,4\n');
  if (own === undefined || other === undefined) throw new Error('no sites');
  const contributions = [mine.localStep(own, null, 1, false), theirs.localStep(other, null, 1, false)];
  const error = await failure(() => mine.aggregate(contributions, null, 1, false));
  assert.match(error.message, /^config\.yml: the sites' figures do not match at 'sumX\.b'; every site must configure the same target, predictors and categorical columns$/);
  // With SMPC the coordinator sees only the sum, whose keys must be exactly its own.
  const summed = [{ ...(mine.localStep(own, null, 1, true) as object), extra: 1 }];
  const secure = await failure(() => mine.aggregate(summed, null, 1, true));
  assert.match(secure.message, /do not match at 'extra'/);
});

test('a site with another categorical model is caught in the gather round', async () => {
  const mine = linear({ target: 'y', predictors: ['a', 'g'], categorical: ['g'] });
  const theirs = linear({ target: 'y', predictors: ['g', 'a'], categorical: ['g'] });
  const [own] = await sitesFrom(mine, 'a,g,y\n1,u,3\n2,v,4\n');
  const [other] = await sitesFrom(theirs, 'a,g,y\n4,u,3\n5,v,4\n');
  if (own === undefined || other === undefined) throw new Error('no sites');
  const messages = [mine.gatherStep(own, null, 1), theirs.gatherStep(other, null, 1)];
  const error = await failure(() => mine.aggregateGathered(messages, null, 1));
  assert.is(
    error.message,
    'config.yml: site 2 of 2 models y from g, a, categorical g, the coordinator y from a, g, categorical g; every site must configure the same target, predictors and categorical columns',
  );
});

test('a categorical column with one category over all sites is an error', async () => {
  const computation = linear({ target: 'y', predictors: ['a', 'g'], categorical: ['g'] });
  const sites = await sitesFrom(computation, 'a,g,y\n1,u,3\n2,u,4\n', 'a,g,y\n3,u,1\n4,NA,2\n');
  const error = await failure(() => federate(computation, sites));
  assert.is(error.message, "column 'g' has one category ('u') in the complete rows of all sites; a categorical predictor needs at least two");
});

const badParameters: [unknown, string][] = [
  [{ predictors: ['a'] }, 'config.yml: fc-xstate-client.parameters.target is required'],
  [{ target: 'y' }, 'config.yml: fc-xstate-client.parameters.predictors is required'],
  [{ target: 'y', predictors: [] }, 'config.yml: fc-xstate-client.parameters.predictors must list at least 1 entry'],
  [{ target: 'y', predictors: ['a', 'a'] }, "config.yml: fc-xstate-client.parameters.predictors must not list a column twice ('a')"],
  [{ target: 'y', predictors: ['a', 'y'] }, "config.yml: fc-xstate-client.parameters.predictors must not list the target 'y'"],
  [{ target: 'y', predictors: ['a'], categorical: ['g'] }, "config.yml: fc-xstate-client.parameters.categorical must list only predictors ('g' is not one)"],
  [{ target: 'y', predictors: ['a'], ridge: -1 }, 'config.yml: fc-xstate-client.parameters.ridge must be at least 0'],
  [{ target: 'y', predictors: ['a'], ridge: 'big' }, "config.yml: fc-xstate-client.parameters.ridge must be a number (got 'big')"],
  [{ target: 'y', predictors: ['a'], tolerance: 1e-6 }, 'config.yml: fc-xstate-client.parameters.tolerance is not a known field'],
];

for (const [parameters, message] of badParameters) {
  test(`invalid parameters ${JSON.stringify(parameters)} name config.yml and the field`, () => {
    try {
      linear(parameters as object);
      assert.unreachable('configure should throw');
    } catch (error) {
      assert.instance(error, InputError);
      assert.is((error as Error).message, message);
    }
  });
}

test('an unknown computation name lists the regressions among the known ones', async () => {
  const error = await failure(() => configureComputation('linear-regresion', {}));
  assert.is(
    error.message,
    "config.yml: fc-xstate-client.computation 'linear-regresion' is not known (known: statistics, linear-regression, logistic-regression)",
  );
});

test('measured: the sample fit differs from the pooled QR fit by less than 1e-12 (plain) and 1e-10 (SMPC-style)', async () => {
  const computation = linear(PENGUINS);
  const sites = await sampleSites(computation);
  const pooled = await pooledSample('body_mass_g', Number, PENGUINS.predictors, PENGUINS.categorical);
  const expected = olsFit(pooled.x, pooled.y);
  const plain = resultOf(federate(computation, sites).result).coefficients;
  const secure = resultOf(federate(computation, sites, { secure: true }).result).coefficients;
  const estimates = (rows: typeof plain) => rows.map((c) => c.estimate);
  const errors = (rows: typeof plain) => rows.map((c) => c.standardError ?? Number.NaN);
  assert.ok(largestRelativeError(estimates(plain), expected.coefficients) < 1e-12);
  assert.ok(largestRelativeError(errors(plain), expected.standardErrors) < 1e-12);
  assert.ok(largestRelativeError(estimates(secure), expected.coefficients) < 1e-10);
  assert.ok(largestRelativeError(errors(secure), expected.standardErrors) < 1e-10);
});

test.run();
