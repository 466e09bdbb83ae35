/**
 * The design matrix shared by the regressions: which columns a model uses, how a site's rows
 * become rows of numbers, and how the sites agree on the categories of a categorical column.
 *
 * - Listwise deletion: a row with a missing value in any used column (target or predictor) is
 *   dropped and counted, as R's lm and glm do by default (na.action = na.omit).
 * - An intercept is always the first term.
 * - A categorical column becomes one 0/1 column per category except the first in sorted order
 *   (the reference level, absorbed by the intercept). The categories are the union over every
 *   site, gathered in a first round in which each site sends its own sorted list of labels: so
 *   every site encodes the same columns in the same order, also for a category it does not have.
 *   Labels are compared as text after trimming surrounding spaces; sorting is by UTF-16 code
 *   units (not the locale), so every site sorts alike.
 */
import { z } from 'zod';
import { InputError } from '../data/errors.ts';
import type { Table } from '../data/table.ts';
import { formatNumber } from './regression-report.ts';
import type { GatherRounds, Json, NumericTree } from './types.ts';

export const INTERCEPT = '(Intercept)';

export interface DesignSpec {
  readonly target: string;
  readonly predictors: readonly string[];
  readonly categorical: readonly string[];
}

/** Per categorical column, its categories in sorted order; the first is the reference. */
export type Levels = { readonly [column: string]: readonly string[] };

/** A site's complete rows. */
export interface SiteDesign {
  /** The data file, for error messages. */
  readonly source: string;
  /** Per complete row, per predictor: its number, or its label for a categorical predictor. */
  readonly rows: readonly (readonly (number | string)[])[];
  /** The target of each complete row. */
  readonly targets: readonly number[];
  /** Rows dropped for a missing value in a used column. */
  readonly dropped: number;
}

// ---- config ----

const columnList = z.array(z.string().min(1)).superRefine((columns, context) => {
  const repeated = columns.filter((column, index) => columns.indexOf(column) !== index);
  if (repeated.length > 0) {
    context.addIssue({ code: 'custom', message: `must not list a column twice ('${repeated[0]}')` });
  }
});

/** The config fields every regression has; each adds its own and calls `designIssues`. */
export const designFields = {
  target: z.string().min(1),
  predictors: columnList.min(1),
  categorical: columnList.default([]),
  ridge: z.number().min(0).default(0),
};

/** Cross-field rules: the target is no predictor, categorical columns are predictors. */
export function designIssues(spec: DesignSpec): { path: string[]; message: string }[] {
  const issues: { path: string[]; message: string }[] = [];
  if (spec.predictors.includes(spec.target)) {
    issues.push({ path: ['predictors'], message: `must not list the target '${spec.target}'` });
  }
  const stray = spec.categorical.filter((column) => !spec.predictors.includes(column));
  if (stray.length > 0) {
    issues.push({ path: ['categorical'], message: `must list only predictors ('${stray[0]}' is not one)` });
  }
  return issues;
}

// ---- a site's rows ----

/**
 * Reads the predictors and keeps the complete rows. `target` is the target column already read
 * (its reading depends on the model), null where missing. Throws an InputError naming the file
 * and the column for an unknown column, a non-numeric cell, or a site with no complete row.
 */
export function prepareDesign(table: Table, spec: DesignSpec, target: readonly (number | null)[]): SiteDesign {
  const columns = spec.predictors.map((column): readonly (number | string | null)[] =>
    spec.categorical.includes(column) ? table.text(column).map((cell) => cell?.trim() ?? null) : table.numeric(column),
  );
  const rows: (number | string)[][] = [];
  const targets: number[] = [];
  for (let row = 0; row < table.rowCount; row++) {
    const y = target[row];
    const cells = columns.map((cells) => cells[row] ?? null);
    if (y === null || y === undefined || cells.some((cell) => cell === null || cell === '')) continue;
    rows.push(cells as (number | string)[]);
    targets.push(y);
  }
  if (rows.length === 0) {
    const missing = [spec.target, ...spec.predictors]
      .map((column, index) => {
        const cells = index === 0 ? target : (columns[index - 1] ?? []);
        return { column, count: cells.filter((cell) => cell === null || cell === '').length };
      })
      .filter((entry) => entry.count > 0)
      .sort((a, b) => b.count - a.count);
    const listed = missing.map((entry) => `'${entry.column}' in ${entry.count}`).join(', ');
    throw new InputError(
      `${table.source}: no complete row: each of its ${table.rowCount} rows misses the target or a predictor (missing: ${listed})`,
      table.source,
      missing[0]?.column ?? spec.target,
    );
  }
  return { source: table.source, rows, targets, dropped: table.rowCount - rows.length };
}

// ---- the categories, gathered in a first round ----

/** Whether the model needs the categories gathered first. */
export const needsLevels = (spec: DesignSpec): boolean => spec.categorical.length > 0;

/** What each site sends in the gather round: its model's columns, for a check, and its labels. */
export type LevelsMessage = {
  readonly columns: readonly string[];
  readonly categorical: readonly string[];
  readonly levels: Levels;
};

const levelsMessageSchema = z.strictObject({
  columns: z.array(z.string()),
  categorical: z.array(z.string()),
  levels: z.record(z.string(), z.array(z.string())),
});

/** This site's gather message: its sorted labels per categorical column. */
export function levelsMessage(site: SiteDesign, spec: DesignSpec): LevelsMessage {
  const levels = Object.fromEntries(
    spec.categorical.map((column) => {
      const index = spec.predictors.indexOf(column);
      const labels = new Set(site.rows.map((row) => String(row[index])));
      return [column, [...labels].sort(byCodeUnits)];
    }),
  );
  return { columns: [spec.target, ...spec.predictors], categorical: [...spec.categorical], levels };
}

/**
 * The union of every site's categories, sorted. Checks that every site configured the same
 * model and that each categorical column has at least two categories overall.
 */
export function mergeLevels(messages: readonly Json[], spec: DesignSpec): Levels {
  const own = { columns: [spec.target, ...spec.predictors], categorical: [...spec.categorical] };
  const union = new Map<string, Set<string>>(spec.categorical.map((column) => [column, new Set<string>()]));
  messages.forEach((message, index) => {
    const parsed = levelsMessageSchema.safeParse(message);
    if (!parsed.success) throw new Error(`the category lists of site ${index + 1} are malformed`);
    const { columns, categorical, levels } = parsed.data;
    if (!sameList(columns, own.columns) || !sameList(categorical, own.categorical)) {
      throw new InputError(
        `config.yml: site ${index + 1} of ${messages.length} models ${describeModel(columns, categorical)}, ` +
          `the coordinator ${describeModel(own.columns, own.categorical)}; every site must configure the same target, predictors and categorical columns`,
        'config.yml',
        'parameters',
      );
    }
    for (const [column, labels] of union) for (const label of levels[column] ?? []) labels.add(label);
  });
  return Object.fromEntries(
    [...union].map(([column, labels]) => {
      const sorted = [...labels].sort(byCodeUnits);
      if (sorted.length < 2) {
        const found = sorted.length === 0 ? 'no category' : `one category ('${sorted[0]}')`;
        throw new InputError(
          `column '${column}' has ${found} in the complete rows of all sites; a categorical predictor needs at least two`,
          null,
          column,
        );
      }
      return [column, sorted];
    }),
  );
}

// ---- terms and rows of numbers ----

/** The model's terms: the intercept, then per predictor its column or its non-reference categories. */
export function termsOf(spec: DesignSpec, levels: Levels): string[] {
  return [
    INTERCEPT,
    ...spec.predictors.flatMap((column) =>
      spec.categorical.includes(column) ? levelsOf(levels, column).slice(1).map((label) => dummyName(column, label)) : [column],
    ),
  ];
}

export const dummyName = (column: string, label: string): string => `${column}=${label}`;

/** The reference category of each categorical column: the first in sorted order. */
export function referenceLevels(spec: DesignSpec, levels: Levels): { column: string; level: string }[] {
  return spec.categorical.map((column) => ({ column, level: levelsOf(levels, column)[0] ?? '' }));
}

/** Turns a site's complete rows into rows of numbers, one per term. */
export function encodeRows(site: SiteDesign, spec: DesignSpec, levels: Levels): number[][] {
  const encoders = spec.predictors.map((column): ((cell: number | string) => number[]) => {
    if (!spec.categorical.includes(column)) {
      return (cell) => [typeof cell === 'number' ? cell : Number.NaN];
    }
    const labels = levelsOf(levels, column);
    const position = new Map(labels.map((label, index) => [label, index]));
    return (cell) => {
      const index = position.get(String(cell));
      if (index === undefined) {
        throw new Error(`${site.source}: category '${String(cell)}' of column '${column}' is not among the gathered categories`);
      }
      return labels.slice(1).map((_, dummy) => (dummy + 1 === index ? 1 : 0));
    };
  });
  return site.rows.map((row) => [1, ...encoders.flatMap((encode, index) => encode(row[index] ?? Number.NaN))]);
}

/** A term as an error message names it: `column 'x'`, or `category 'b' of column 'g'`. */
export function describeTerm(term: string, spec: DesignSpec): string {
  if (spec.predictors.includes(term)) return `column '${term}'`;
  const column = spec.categorical.find((candidate) => term.startsWith(`${candidate}=`));
  return column === undefined ? `'${term}'` : `category '${term.slice(column.length + 1)}' of column '${column}'`;
}

/** `1 row`, `2 rows`, `341.6 rows`. */
export function countOf(count: number, noun: string): string {
  return `${Number.isInteger(count) ? count : Number(count.toPrecision(6))} ${noun}${count === 1 ? '' : 's'}`;
}

// ---- the sums a site sends, keyed by term so a site with another model is caught ----

export function byTerm(terms: readonly string[], value: (index: number) => number): { [term: string]: number } {
  // fromEntries defines own properties, so even a term named `__proto__` stays plain data.
  return Object.fromEntries(terms.map((term, index) => [term, value(index)]));
}

/** A symmetric matrix as `{ a: { a, b, c }, b: { b, c }, c: { c } }`: the upper triangle only. */
export function upperTriangle(
  terms: readonly string[],
  value: (i: number, j: number) => number,
): { [term: string]: { [term: string]: number } } {
  return Object.fromEntries(
    terms.map((term, i) => [term, Object.fromEntries(terms.slice(i).map((other, offset) => [other, value(i, i + offset)]))]),
  );
}

/** Checks that a contribution's upper triangle at `path` has exactly the terms' keys. */
export function expectUpperTriangle(tree: NumericTree, path: readonly string[], terms: readonly string[]): void {
  expectKeys(tree, path, terms);
  terms.forEach((term, i) => expectKeys(tree, [...path, term], terms.slice(i)));
}

/** The full symmetric matrix from the sum of the contributions' upper triangles at `path`. */
export function pooledMatrix(
  path: readonly string[],
  terms: readonly string[],
  total: (path: readonly string[]) => number,
): number[][] {
  return terms.map((a, i) => terms.map((b, j) => (j >= i ? total([...path, a, b]) : total([...path, b, a]))));
}

/**
 * A contribution's number at `path`, or an InputError when it is missing: a site with another
 * model (other columns, another target) sends other keys. Every key must be an own property.
 */
export function numberAt(tree: NumericTree, path: readonly string[]): number {
  let node: NumericTree | undefined = tree;
  for (const key of path) {
    node = isRecord(node) && Object.hasOwn(node, key) ? node[key] : undefined;
    if (node === undefined) throw modelMismatch(path);
  }
  if (typeof node !== 'number' || !Number.isFinite(node)) throw modelMismatch(path);
  return node;
}

/** Checks that an object in a contribution has exactly the expected keys. */
export function expectKeys(tree: NumericTree, path: readonly string[], keys: readonly string[]): void {
  let node: NumericTree | undefined = tree;
  for (const key of path) node = isRecord(node) && Object.hasOwn(node, key) ? node[key] : undefined;
  if (!isRecord(node)) throw modelMismatch(path);
  const extra = Object.keys(node).find((key) => !keys.includes(key));
  if (extra !== undefined) throw modelMismatch([...path, extra]);
  const missing = keys.find((key) => !Object.hasOwn(node, key));
  if (missing !== undefined) throw modelMismatch([...path, missing]);
}

function modelMismatch(path: readonly string[]): InputError {
  return new InputError(
    `config.yml: the sites' figures do not match at '${path.join('.')}'; every site must configure the same target, predictors and categorical columns`,
    'config.yml',
    'parameters',
  );
}

function isRecord(node: NumericTree | undefined): node is { readonly [key: string]: NumericTree } {
  return typeof node === 'object' && node !== null && !Array.isArray(node);
}

function levelsOf(levels: Levels, column: string): readonly string[] {
  const found = Object.hasOwn(levels, column) ? levels[column] : undefined;
  if (found === undefined) throw new Error(`no categories gathered for column '${column}'`);
  return found;
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, index) => item === b[index]);
}

function describeModel(columns: readonly string[], categorical: readonly string[]): string {
  const [target, ...predictors] = columns;
  const kinds = categorical.length > 0 ? `, categorical ${categorical.join(', ')}` : '';
  return `${target ?? '?'} from ${predictors.join(', ')}${kinds}`;
}

/** The gather round's global result: the categories every site then encodes. */
export type LevelsGlobal = { readonly stage: 'levels'; readonly levels: Levels };

/**
 * The gather round of a model with categorical predictors, the same for every regression: each
 * site sends its labels, the coordinator merges them, and the regression's own rounds follow.
 */
export function categoryRound<Params extends DesignSpec>(): GatherRounds<Params, SiteDesign, LevelsGlobal> {
  return {
    isGatherRound: (previous, { params }) => needsLevels(params) && previous === null,
    localStep: (site, _previous, { params }) => levelsMessage(site, params),
    aggregate: (messages, _previous, { params }) => ({
      global: { stage: 'levels', levels: mergeLevels(messages, params) },
      final: false,
    }),
  };
}

/** A fit needs more pooled complete rows than coefficients (so at least one residual degree of freedom). */
export function requireMoreRowsThanCoefficients(n: number, p: number, target: string, hint: string): void {
  if (!(n > p)) {
    throw new InputError(
      `the pooled data have ${formatNumber(n)} complete rows for ${p} coefficients; a fit needs more rows than coefficients${hint}`,
      null,
      target,
    );
  }
}
