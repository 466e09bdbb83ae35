import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  encodeRows,
  expectKeys,
  levelsMessage,
  mergeLevels,
  numberAt,
  prepareDesign,
  referenceLevels,
  termsOf,
  type DesignSpec,
  type SiteDesign,
} from '../src/computation/design.ts';
import { factorize } from '../src/computation/linear-algebra.ts';
import { readTable } from '../src/data/csv.ts';
import { InputError } from '../src/data/errors.ts';
import type { Table } from '../src/data/table.ts';
import { removeTempFolders } from './support/regression.ts';

test.after(removeTempFolders);

const SPEC: DesignSpec = { target: 'y', predictors: ['a', 'g'], categorical: ['g'] };

async function table(text: string, name = 'site.csv'): Promise<Table> {
  const folder = await mkdtemp(join(tmpdir(), 'fc-design-'));
  await writeFile(join(folder, name), text);
  return readTable(join(folder, name));
}

async function site(text: string, spec: DesignSpec = SPEC): Promise<SiteDesign> {
  const data = await table(text);
  return prepareDesign(data, spec, data.numeric(spec.target));
}

function inputError(run: () => unknown): InputError {
  try {
    run();
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error('expected an InputError');
}

test('rows with a missing value in any used column are dropped and counted (listwise deletion)', async () => {
  // Unused column z may be missing; NA, empty and NaN are missing values.
  const prepared = await site('a,g,y,z\n1,u,10,NA\nNA,v,11,1\n2,,12,1\n3,v,NaN,1\n4, w ,14,\n');
  assert.equal(prepared.rows, [[1, 'u'], [4, 'w']]);
  assert.equal(prepared.targets, [10, 14]);
  assert.is(prepared.dropped, 3);
  assert.is(prepared.source, 'site.csv');
});

test('a site with no complete row names its file and the columns that miss values', async () => {
  const data = await table('a,g,y\nNA,u,1\n2,v,NA\nNA,NA,NA\n', 'clinic.csv');
  const error = inputError(() => prepareDesign(data, SPEC, data.numeric('y')));
  assert.is(
    error.message,
    "clinic.csv: no complete row: each of its 3 rows misses the target or a predictor (missing: 'y' in 2, 'a' in 2, 'g' in 1)",
  );
  assert.is(error.file, 'clinic.csv');
});

test("each site's categories are sorted by code units; the union is too, and its first is the reference", async () => {
  const one = await site('a,g,y\n1,beta,1\n2,Alpha,2\n3,beta,3\n');
  const two = await site('a,g,y\n1,alpha,1\n2,Beta,2\n');
  const messages = [levelsMessage(one, SPEC), levelsMessage(two, SPEC)];
  assert.equal(messages[0], { columns: ['y', 'a', 'g'], categorical: ['g'], levels: { g: ['Alpha', 'beta'] } });
  const levels = mergeLevels(JSON.parse(JSON.stringify(messages)), SPEC);
  // Upper case sorts before lower case, whatever the locale.
  assert.equal(levels, { g: ['Alpha', 'Beta', 'alpha', 'beta'] });
  assert.equal(referenceLevels(SPEC, levels), [{ column: 'g', level: 'Alpha' }]);
  assert.equal(termsOf(SPEC, levels), ['(Intercept)', 'a', 'g=Beta', 'g=alpha', 'g=beta']);
});

test('rows become numbers: intercept, numeric columns, one 0/1 column per non-reference category', async () => {
  const prepared = await site('a,g,y\n1.5,v,1\n2,u,2\n-3,w,3\n');
  const levels = { g: ['u', 'v', 'w', 'x'] };
  assert.equal(encodeRows(prepared, SPEC, levels), [
    [1, 1.5, 1, 0, 0],
    [1, 2, 0, 0, 0],
    [1, -3, 0, 1, 0],
  ]);
  const unknown = { g: ['u', 'v'] };
  assert.throws(() => encodeRows(prepared, SPEC, unknown), /category 'w' of column 'g' is not among the gathered categories/);
});

test('the gather round catches a site with another model and a column with one category', async () => {
  const one = await site('a,g,y\n1,u,1\n');
  const other: DesignSpec = { target: 'y', predictors: ['a', 'g', 'b'], categorical: ['g'] };
  const mismatch = inputError(() => mergeLevels([levelsMessage(one, SPEC), levelsMessage(one, other)], SPEC));
  assert.match(mismatch.message, /^config\.yml: site 2 of 2 models y from a, g, b, categorical g, the coordinator y from a, g, categorical g;/);
  const single = inputError(() => mergeLevels([levelsMessage(one, SPEC), levelsMessage(one, SPEC)], SPEC));
  assert.is(single.message, "column 'g' has one category ('u') in the complete rows of all sites; a categorical predictor needs at least two");
  assert.throws(() => mergeLevels([{ levels: 'no' }], SPEC), /category lists of site 1 are malformed/);
});

test('reading sums: a missing, extra or non-numeric key is a model mismatch', () => {
  const tree = { n: 3, x: { a: 1, b: 2 } };
  assert.is(numberAt(tree, ['x', 'b']), 2);
  assert.throws(() => numberAt(tree, ['x', 'c']), /do not match at 'x\.c'/);
  assert.throws(() => numberAt(tree, ['x']), /do not match at 'x'/);
  assert.throws(() => numberAt({ __proto__: 1 } as never, ['constructor']), /do not match/);
  expectKeys(tree, ['x'], ['a', 'b']);
  assert.throws(() => expectKeys(tree, ['x'], ['a']), /do not match at 'x\.b'/);
  assert.throws(() => expectKeys(tree, ['x'], ['a', 'b', 'c']), /do not match at 'x\.c'/);
});

test('factorize solves a symmetric positive definite system on very different scales', () => {
  // Columns in units a million apart: scaling to a unit diagonal keeps the digits.
  const matrix = [
    [4e12, 2e6, 1e6],
    [2e6, 3, 0.5],
    [1e6, 0.5, 2],
  ];
  const factor = factorize(matrix);
  if (factor.kind !== 'positive-definite') throw new Error('expected positive definite');
  const solution = [1e-6, 2, -3];
  const right = matrix.map((row) => row.reduce((sum, value, j) => sum + value * (solution[j] ?? 0), 0));
  factor.solve(right).forEach((value, i) => assert.ok(Math.abs(value - (solution[i] ?? 0)) <= 1e-12 * Math.abs(solution[i] ?? 1), `x${i}`));
  const inverse = factor.inverse();
  inverse.forEach((row, i) => {
    const value = row.reduce((sum, entry, k) => sum + entry * (right[k] ?? 0), 0);
    assert.ok(Math.abs(value - (solution[i] ?? 0)) <= 1e-12 * Math.abs(solution[i] ?? 1), `A⁻¹·b at ${i}`);
    row.forEach((entry, j) => assert.is(entry, inverse[j]?.[i], 'the inverse is symmetric'));
  });
});

test('factorize names the first column that is a combination of the earlier ones', () => {
  // Column 2 = column 0 + column 1.
  const x = [[1, 2, 3], [2, 0, 2], [0, 1, 1], [3, 3, 6]];
  const gram = [0, 1, 2].map((i) => [0, 1, 2].map((j) => x.reduce((sum, row) => sum + (row[i] ?? 0) * (row[j] ?? 0), 0)));
  assert.equal(factorize(gram), { kind: 'singular', index: 2 });
  assert.equal(factorize([[1, 0], [0, 0]]), { kind: 'singular', index: 1 });
  assert.equal(factorize([[1, 2], [2, 1]]), { kind: 'singular', index: 1 });
});

test.run();
