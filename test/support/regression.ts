/**
 * Shared by the regression tests: the pooled reference fits, written
 * plainly and independently of the computations (QR least squares and a textbook IRLS over the
 * pooled design matrix, built by hand), a federation driver that runs a computation the way the
 * runtime does, and seeded data with known coefficients.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inverse, Matrix, QrDecomposition, solve } from 'ml-matrix';
import * as assert from 'uvu/assert';
import type { AggregateResult, ConfiguredComputation, Json, NumericTree, PreparedSite } from '../../src/computation/types.ts';
import { readTable } from '../../src/data/csv.ts';

export const SITES = ['biscoe', 'dream', 'torgersen'] as const;
export const repo = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

// ---- the federation, run as the runtime runs it ----

/** What the relay does to every message: JSON there and back. */
export const wire = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

export interface FederateOptions {
  /** SMPC: additive contributions are summed element-wise, after rounding to 8 decimals as its fixed point does. */
  readonly secure?: boolean;
  /** Stands in for the controllers' DP on additive contributions. */
  readonly noise?: (tree: NumericTree) => NumericTree;
  readonly maxRounds?: number;
}

export interface Run {
  readonly rounds: { additive: boolean; contributions: Json[]; aggregate: AggregateResult<Json> }[];
  readonly result: Json;
}

export function federate(computation: ConfiguredComputation, sites: readonly PreparedSite[], options: FederateOptions = {}): Run {
  const { secure = false, noise = (tree) => tree, maxRounds = 200 } = options;
  const rounds: Run['rounds'] = [];
  let previous: Json | null = null;
  for (let round = 1; round <= maxRounds; round++) {
    const additive = computation.additive(previous, round);
    let aggregate: AggregateResult<Json>;
    let contributions: Json[];
    if (additive) {
      const trees = sites.map((site) => wire(noise(computation.localStep(site, previous, round, secure))));
      contributions = trees;
      const received = secure ? [mapTree(sumTrees(trees), fixedPoint)] : trees;
      aggregate = computation.aggregate(received, previous, round, secure);
    } else {
      contributions = sites.map((site) => wire(computation.gatherStep(site, previous, round)));
      aggregate = computation.aggregateGathered(contributions, previous, round);
    }
    rounds.push({ additive, contributions, aggregate });
    previous = wire(aggregate.global);
    if (aggregate.final) return { rounds, result: wire(computation.result(aggregate.global)) };
  }
  throw new Error(`the computation did not finish within ${maxRounds} rounds`);
}

/** SMPC keeps 8 decimals (its default exponent), rounding half away from zero. */
const fixedPoint = (value: number) => Math.sign(value) * Math.round(Math.abs(value) * 1e8) / 1e8;

export function sumTrees(trees: readonly NumericTree[]): NumericTree {
  const [first, ...rest] = trees;
  if (first === undefined) throw new Error('nothing to sum');
  return rest.reduce(addTrees, first);
}

function addTrees(a: NumericTree, b: NumericTree): NumericTree {
  if (typeof a === 'number' || typeof b === 'number') {
    if (typeof a !== 'number' || typeof b !== 'number') throw new Error('shapes differ');
    return a + b;
  }
  if (Array.isArray(a) || Array.isArray(b)) throw new Error('no lists expected in a contribution');
  const left = a as { readonly [key: string]: NumericTree };
  const right = b as { readonly [key: string]: NumericTree };
  assert.equal(Object.keys(right).sort(), Object.keys(left).sort(), 'contributions must have the same keys');
  return Object.fromEntries(Object.keys(left).map((key) => [key, addTrees(left[key] ?? 0, right[key] ?? 0)]));
}

export function mapTree(tree: NumericTree, fn: (value: number) => number): NumericTree {
  if (typeof tree === 'number') return fn(tree);
  if (Array.isArray(tree)) return tree.map((item: NumericTree) => mapTree(item, fn));
  return Object.fromEntries(Object.entries(tree as { readonly [key: string]: NumericTree }).map(([key, value]) => [key, mapTree(value, fn)]));
}

export function everyNumberFinite(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(everyNumberFinite);
  if (typeof value === 'object' && value !== null) return Object.values(value).every(everyNumberFinite);
  return true;
}

// ---- sites from files ----

const folders: string[] = [];

export async function removeTempFolders(): Promise<void> {
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
}

/** Sites from CSV texts, written to a temp folder and read back like real ones (site1.csv, ...). */
export async function sitesFrom(computation: ConfiguredComputation, ...texts: string[]): Promise<PreparedSite[]> {
  const folder = await mkdtemp(join(tmpdir(), 'fc-regression-'));
  folders.push(folder);
  return Promise.all(
    texts.map(async (text, index) => {
      const path = join(folder, `site${index + 1}.csv`);
      await writeFile(path, text);
      return computation.prepare(await readTable(path));
    }),
  );
}

export async function sampleSites(computation: ConfiguredComputation): Promise<PreparedSite[]> {
  // One site after the other, so that when several sites are wrong the first one's error is the one seen.
  const prepared: PreparedSite[] = [];
  for (const site of SITES) prepared.push(computation.prepare(await readTable(repo(`sample/${site}/data.csv`))));
  return prepared;
}

export function csvOf(columns: readonly string[], rows: readonly (readonly (number | string)[])[]): string {
  return [columns.join(','), ...rows.map((row) => row.join(','))].join('\n') + '\n';
}

// ---- the pooled data, built by hand ----

export interface PooledData {
  readonly terms: string[];
  readonly x: number[][];
  readonly y: number[];
  readonly dropped: number;
}

/**
 * The pooled complete rows of the sample as a design matrix: intercept, numeric columns, and
 * for each categorical column a 0/1 column per category but the first in sorted order.
 * `target` maps the target's text to a number, or null when missing.
 */
export async function pooledSample(
  target: string,
  toNumber: (text: string) => number,
  predictors: readonly string[],
  categorical: readonly string[] = [],
): Promise<PooledData> {
  const records: Record<string, string | null>[] = [];
  for (const site of SITES) {
    const table = await readTable(repo(`sample/${site}/data.csv`));
    const columns = Object.fromEntries(table.columns.map((column) => [column, table.text(column)]));
    for (let row = 0; row < table.rowCount; row++) {
      records.push(Object.fromEntries(table.columns.map((column) => [column, columns[column]?.[row] ?? null])));
    }
  }
  const complete = records.filter((record) => [target, ...predictors].every((column) => record[column] !== null));
  const levels = Object.fromEntries(
    categorical.map((column) => [column, [...new Set(complete.map((record) => String(record[column])))].sort()]),
  );
  const terms = [
    '(Intercept)',
    ...predictors.flatMap((column) =>
      categorical.includes(column) ? (levels[column] ?? []).slice(1).map((level) => `${column}=${level}`) : [column],
    ),
  ];
  const x = complete.map((record) => [
    1,
    ...predictors.flatMap((column) =>
      categorical.includes(column)
        ? (levels[column] ?? []).slice(1).map((level) => (record[column] === level ? 1 : 0))
        : [Number(record[column])],
    ),
  ]);
  const y = complete.map((record) => toNumber(String(record[target])));
  return { terms, x, y, dropped: records.length - complete.length };
}

// ---- reference fits ----

export interface ReferenceFit {
  readonly coefficients: number[];
  readonly standardErrors: number[];
}

export interface OlsFit extends ReferenceFit {
  readonly rss: number;
  readonly df: number;
  readonly sigma: number;
  readonly rSquared: number;
  readonly adjustedRSquared: number;
}

/**
 * Least squares by QR on the design matrix itself (no normal equations). Ridge with an
 * unpenalized intercept is least squares on the design with √λ·e_j rows appended (j ≥ 1) and
 * zeros appended to y; its standard errors are σ̂² A Aᵀ for the linear map A = (XᵀX + Λ)⁻¹Xᵀ,
 * with σ̂² over n - tr(X A) degrees of freedom.
 */
export function olsFit(x: readonly number[][], y: readonly number[], ridge = 0): OlsFit {
  const n = x.length;
  const p = x[0]?.length ?? 0;
  const penaltyRows = ridge > 0 ? Array.from({ length: p - 1 }, (_, j) => Array.from({ length: p }, (_, k) => (k === j + 1 ? Math.sqrt(ridge) : 0))) : [];
  const design = new Matrix([...x.map((row) => [...row]), ...penaltyRows]);
  const target = Matrix.columnVector([...y, ...penaltyRows.map(() => 0)]);
  const qr = new QrDecomposition(design);
  const beta = qr.solve(target).getColumn(0);
  const X = new Matrix(x.map((row) => [...row]));
  const fitted = X.mmul(Matrix.columnVector(beta)).getColumn(0);
  const rss = y.reduce((sum, value, i) => sum + (value - (fitted[i] ?? 0)) ** 2, 0);
  const mean = y.reduce((sum, value) => sum + value, 0) / n;
  const tss = y.reduce((sum, value) => sum + (value - mean) ** 2, 0);
  const r = qr.upperTriangularMatrix;
  // (XᵀX + Λ)⁻¹ = (RᵀR)⁻¹ for the augmented design's R.
  const rInverse = inverse(r);
  const penalizedInverse = rInverse.mmul(rInverse.transpose());
  const map = penalizedInverse.mmul(X.transpose());
  const df = n - X.mmul(map).trace();
  const sigma2 = rss / df;
  const covariance = map.mmul(map.transpose()).mul(sigma2);
  return {
    coefficients: beta,
    standardErrors: beta.map((_, i) => Math.sqrt(covariance.get(i, i))),
    rss,
    df,
    sigma: Math.sqrt(sigma2),
    rSquared: 1 - rss / tss,
    adjustedRSquared: 1 - rss / df / (tss / (n - 1)),
  };
}

export interface LogisticFit extends ReferenceFit {
  readonly logLikelihood: number;
}

/** Textbook IRLS: β ← (XᵀWX + Λ)⁻¹ XᵀW(Xβ + W⁻¹(y - p)), run until it stops moving. */
export function logisticFit(x: readonly number[][], y: readonly number[], ridge = 0): LogisticFit {
  const p = x[0]?.length ?? 0;
  const X = new Matrix(x.map((row) => [...row]));
  const penalty = Matrix.diag(Array.from({ length: p }, (_, j) => (j === 0 ? 0 : ridge)));
  let beta = new Array<number>(p).fill(0);
  let information = Matrix.zeros(p, p);
  for (let iteration = 0; iteration < 100; iteration++) {
    const eta = X.mmul(Matrix.columnVector(beta)).getColumn(0);
    const prob = eta.map((value) => 1 / (1 + Math.exp(-value)));
    const weight = prob.map((value) => value * (1 - value));
    const working = eta.map((value, i) => value + ((y[i] ?? 0) - (prob[i] ?? 0)) / (weight[i] ?? 1));
    const weighted = X.clone();
    for (let i = 0; i < X.rows; i++) for (let j = 0; j < p; j++) weighted.set(i, j, X.get(i, j) * (weight[i] ?? 0));
    information = weighted.transpose().mmul(X);
    const next = solve(information.clone().add(penalty), weighted.transpose().mmul(Matrix.columnVector(working))).getColumn(0);
    const moved = Math.max(...next.map((value, i) => Math.abs(value - (beta[i] ?? 0)) / (1 + Math.abs(value))));
    beta = next;
    if (moved < 1e-15) break;
  }
  const eta = X.mmul(Matrix.columnVector(beta)).getColumn(0);
  const logLikelihood = eta.reduce((sum, value, i) => sum + (y[i] === 1 ? value : 0) - Math.log1p(Math.exp(value)), 0);
  const weight = eta.map((value) => {
    const prob = 1 / (1 + Math.exp(-value));
    return prob * (1 - prob);
  });
  const weighted = X.clone();
  for (let i = 0; i < X.rows; i++) for (let j = 0; j < p; j++) weighted.set(i, j, X.get(i, j) * (weight[i] ?? 0));
  information = weighted.transpose().mmul(X);
  const penalizedInverse = inverse(information.clone().add(penalty));
  const covariance = ridge > 0 ? penalizedInverse.mmul(information).mmul(penalizedInverse) : penalizedInverse;
  return { coefficients: beta, standardErrors: beta.map((_, i) => Math.sqrt(covariance.get(i, i))), logLikelihood };
}

// ---- seeded data with known coefficients ----

/** A small seeded generator (xorshift32), so generated data are the same on every run. */
export function seeded(seed: number): { uniform(): number; normal(): number } {
  let state = seed >>> 0 || 1;
  const uniform = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return (state + 0.5) / 4294967296;
  };
  return {
    uniform,
    normal: () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()),
  };
}

// ---- comparisons ----

/** |actual - expected| ≤ tolerance · max(|expected|, floor). */
export function assertClose(actual: number | null | undefined, expected: number, tolerance: number, label: string, floor = 0): void {
  assert.ok(typeof actual === 'number', `${label}: got ${String(actual)}, expected ${expected}`);
  const scale = Math.max(Math.abs(expected), floor);
  const error = scale === 0 ? Math.abs(actual) : Math.abs(actual - expected) / scale;
  assert.ok(error <= tolerance, `${label}: ${actual} vs ${expected} (relative error ${error.toExponential(2)} > ${tolerance})`);
}

/** The largest relative difference between two vectors, for reporting measured precision. */
export function largestRelativeError(actual: readonly number[], expected: readonly number[]): number {
  return Math.max(...expected.map((value, i) => Math.abs((actual[i] ?? Number.NaN) - value) / Math.abs(value)));
}
