/**
 * Federated linear regression, exactly equal to ordinary least squares (or ridge regression) on
 * the pooled rows of all sites. One round of sums (plus a first gather round for the categories
 * of categorical predictors):
 *
 *   each site sends n, Σy, Σy², and for its predictor columns x (the design without the
 *   intercept) Σx, Xᵀy and XᵀX (upper triangle); the coordinator adds them up and solves.
 *
 * The coordinator centres the sums algebraically (Sxx = XᵀX - Σx Σxᵀ/n, and so on), which
 * takes the intercept out of the system, and solves (Sxx + λI) β = Sxy by Cholesky on the
 * scaled matrix; the intercept is then ȳ - x̄ᵀβ. With λ = 0 that is OLS; with λ > 0 it is ridge
 * regression with an unpenalized intercept, minimizing Σ(y - β₀ - xᵀβ)² + λ‖β‖² in the units of
 * the columns as given.
 *
 * Standard errors: with λ = 0 the usual σ̂² (XᵀX)⁻¹ with σ̂² = RSS/(n - p), t values and two-sided
 * p values from t with n - p degrees of freedom, as R's summary.lm. With λ > 0 they are the
 * spread of the ridge estimate over samples with the same predictors, σ̂² W Sxx W with
 * W = (Sxx + λI)⁻¹, σ̂² = RSS/(n - 1 - edf) and edf = tr(Sxx W): the estimate is biased, so no t or
 * p values are given.
 *
 * With SMPC the coordinator only sees the sums; with DP every sum is noisy (n too), the fit is
 * approximate and may fail when noise makes Sxx indefinite.
 */
import { z } from 'zod';
import { InputError } from '../data/errors.ts';
import type { Table } from '../data/table.ts';
import {
  byTerm,
  countOf,
  describeTerm,
  designFields,
  designIssues,
  encodeRows,
  expectKeys,
  expectUpperTriangle,
  INTERCEPT,
  needsLevels,
  numberAt,
  pooledMatrix,
  prepareDesign,
  referenceLevels,
  termsOf,
  upperTriangle,
  type Levels,
  type LevelsGlobal,
  type SiteDesign,
  categoryRound,
  requireMoreRowsThanCoefficients,
} from './design.ts';
import { tTwoSidedP } from './distributions.ts';
import { at, CompensatedSum, compensatedSum, dot, factorize, multiply } from './linear-algebra.ts';
import {
  coefficientCsv,
  coefficientTable,
  finiteOrNull,
  formatNumber,
  markdownText,
  type CoefficientRow,
} from './regression-report.ts';
import type { Computation, NumericTree } from './types.ts';

const paramsSchema = z.strictObject(designFields).superRefine((params, context) => {
  for (const issue of designIssues(params)) context.addIssue({ code: 'custom', ...issue });
});

export type LinearRegressionParams = z.infer<typeof paramsSchema>;

/** A site's sums; `x` keys are the terms without the intercept, `xtx` holds the upper triangle. */
export type LinearContribution = {
  readonly n: number;
  readonly dropped: number;
  readonly sumY: number;
  readonly sumY2: number;
  readonly sumX: { readonly [term: string]: number };
  readonly xty: { readonly [term: string]: number };
  readonly xtx: { readonly [term: string]: { readonly [term: string]: number } };
};

export type LinearCoefficient = {
  readonly term: string;
  readonly estimate: number;
  readonly standardError: number | null;
  readonly t: number | null;
  readonly p: number | null;
};

export type LinearRegressionResult = {
  readonly computation: 'linear-regression';
  readonly target: string;
  readonly ridge: number;
  /** Complete rows pooled over all sites, and rows dropped for a missing value. */
  readonly n: number;
  readonly dropped: number;
  readonly coefficients: readonly LinearCoefficient[];
  /** Residual degrees of freedom: n - p, or n - 1 - edf with ridge. */
  readonly degreesOfFreedom: number;
  /** With ridge: tr(Sxx (Sxx + λI)⁻¹), the effective number of slopes; else null. */
  readonly effectiveSlopes: number | null;
  readonly residualStandardError: number | null;
  readonly rSquared: number | null;
  readonly adjustedRSquared: number | null;
  /** The reference category of each categorical predictor (the first in sorted order). */
  readonly references: readonly { readonly column: string; readonly level: string }[];
  /** True when the sums carried DP noise (the pooled n is not a whole number). */
  readonly noisy: boolean;
  /** True when the residuals are all 0 (up to rounding): no standard errors can be estimated. */
  readonly perfectFit: boolean;
};

export type LinearGlobal =
  | LevelsGlobal
  | { readonly stage: 'final'; readonly result: LinearRegressionResult };

/** Below this share of its raw sum of squares, a centred column counts as constant. */
const CONSTANT = 1e-10;
/** Residuals this small against the target's spread are rounding: the fit is exact. */
const PERFECT_FIT = 1e-12;

export const linearRegression: Computation<
  LinearRegressionParams,
  SiteDesign,
  LinearContribution,
  LinearGlobal,
  LinearRegressionResult
> = {
  name: 'linear-regression',
  params: paramsSchema,

  expectedRounds: (params) => (needsLevels(params) ? 2 : 1),

  prepare(table: Table, params) {
    return prepareDesign(table, params, table.numeric(params.target));
  },

  gather: categoryRound(),

  localStep(site, previous, { params }) {
    const levels = levelsFrom(previous, params);
    const slopes = termsOf(params, levels).slice(1);
    const rows = encodeRows(site, params, levels).map((row) => row.slice(1));
    const sumOver = (value: (row: number[], index: number) => number): number =>
      compensatedSum(rows.map((row, index) => value(row, index)));
    const y = (index: number) => at(site.targets, index);
    return {
      n: rows.length,
      dropped: site.dropped,
      sumY: compensatedSum(site.targets),
      sumY2: compensatedSum(site.targets.map((value) => value * value)),
      sumX: byTerm(slopes, (i) => sumOver((row) => at(row, i))),
      xty: byTerm(slopes, (i) => sumOver((row, index) => at(row, i) * y(index))),
      xtx: upperTriangle(slopes, (i, j) => sumOver((row) => at(row, i) * at(row, j))),
    };
  },

  aggregate(contributions, previous, { params }) {
    if (contributions.length === 0) throw new Error('linear-regression: no contributions to aggregate');
    if (previous?.stage === 'final') throw new Error('linear-regression: no round after the final result');
    const levels = levelsFrom(previous, params);
    const terms = termsOf(params, levels);
    const slopes = terms.slice(1);
    for (const contribution of contributions) checkShape(contribution, slopes);
    const total = (path: readonly string[]) =>
      compensatedSum(contributions.map((contribution) => numberAt(contribution, path)));
    const sums: PooledSums = {
      n: total(['n']),
      dropped: total(['dropped']),
      sumY: total(['sumY']),
      sumY2: total(['sumY2']),
      sumX: slopes.map((term) => total(['sumX', term])),
      xty: slopes.map((term) => total(['xty', term])),
      xtx: pooledMatrix(['xtx'], slopes, total),
    };
    const result = fitLinear(sums, terms, params, referenceLevels(params, levels));
    return { global: { stage: 'final', result }, final: true };
  },

  result(final) {
    if (final.stage !== 'final') throw new Error('linear-regression: the result needs the final round');
    return final.result;
  },

  report(result) {
    const rows = result.coefficients.map(
      (c): CoefficientRow => ({ term: c.term, estimate: c.estimate, standardError: c.standardError, statistic: c.t, p: c.p }),
    );
    const ridge = result.ridge > 0;
    const method = ridge
      ? `Ridge regression (penalty λ = ${result.ridge} on every coefficient but the intercept)`
      : 'Ordinary least squares';
    const lines = [
      `# Linear regression of ${markdownText(result.target)}`,
      '',
      `${method} over the pooled complete rows of all sites: n = ${formatNumber(result.n)}` +
        ` (${countOf(result.dropped, 'row')} dropped for a missing value).`,
      '',
      ...coefficientTable(rows, 't'),
      '',
      `- Residual standard error: ${formatNumber(result.residualStandardError)} on ${formatNumber(result.degreesOfFreedom)} degrees of freedom`,
      `- R²: ${formatNumber(result.rSquared)}; adjusted R²: ${formatNumber(result.adjustedRSquared)}`,
      ...result.references.map(
        (reference) =>
          `- Reference category of ${markdownText(reference.column)}: ${markdownText(reference.level)} (the first in sorted order); ` +
          `each ${markdownText(reference.column)}=… coefficient is the difference from it.`,
      ),
      ...(ridge
        ? [
            `- With ridge, the standard errors are the spread of the ridge estimate for these predictors, σ̂²(Sxx + λI)⁻¹Sxx(Sxx + λI)⁻¹, ` +
              `with σ̂² over n − 1 − ${formatNumber(result.effectiveSlopes)} effective degrees of freedom; they ignore the shrinkage bias, so no t or p values are given.`,
          ]
        : []),
      ...(result.perfectFit
        ? ['- The target is an exact linear function of the predictors (all residuals are 0): no standard errors, t or p values.']
        : []),
      ...(result.noisy
        ? ['- The sums carried differential-privacy (DP) noise (the pooled n is not a whole number): every figure is approximate.']
        : []),
      '',
    ];
    return lines.join('\n');
  },

  csv(result) {
    return coefficientCsv(
      result.coefficients.map((c) => ({ term: c.term, estimate: c.estimate, standardError: c.standardError, statistic: c.t, p: c.p })),
      't',
    );
  },
};

/** The pooled sums, as vectors and a full symmetric matrix over the slope terms. */
interface PooledSums {
  readonly n: number;
  readonly dropped: number;
  readonly sumY: number;
  readonly sumY2: number;
  readonly sumX: readonly number[];
  readonly xty: readonly number[];
  readonly xtx: readonly (readonly number[])[];
}

/** Solves the centred normal equations; every problem with the pooled data is an InputError. */
function fitLinear(
  sums: PooledSums,
  terms: readonly string[],
  params: LinearRegressionParams,
  references: LinearRegressionResult['references'],
): LinearRegressionResult {
  const { n, sumY, sumY2, sumX, xty, xtx } = sums;
  const slopes = terms.slice(1);
  const k = slopes.length;
  const p = k + 1;
  const noisy = !Number.isInteger(n) || !Number.isInteger(sums.dropped);
  const dpHint = noisy ? ' (the sums carry DP noise: a smaller noise scale may help)' : '';
  requireMoreRowsThanCoefficients(n, p, params.target, dpHint);

  const mean = sumX.map((sum) => sum / n);
  const meanY = sumY / n;
  const sxx = xtx.map((row, i) => row.map((value, j) => value - (at(sumX, i) * at(sumX, j)) / n));
  const sxy = xty.map((value, i) => value - (at(sumX, i) * sumY) / n);
  const syy = sumY2 - (sumY * sumY) / n;

  if (!(syy > CONSTANT * sumY2)) {
    throw new InputError(`the target '${params.target}' is constant over the complete rows of all sites${dpHint}`, null, params.target);
  }
  slopes.forEach((term, i) => {
    const raw = at(xtx[i] ?? [], i);
    if (!(at(sxx[i] ?? [], i) > CONSTANT * raw)) {
      const value = formatNumber(at(mean, i));
      throw new InputError(
        `${describeTerm(term, params)} is constant (${value}) over the complete rows of all sites; it cannot be a predictor beside the intercept${dpHint}`,
        null,
        term,
      );
    }
  });

  const penalized = sxx.map((row, i) => row.map((value, j) => (i === j ? value + params.ridge : value)));
  const factor = factorize(penalized);
  if (factor.kind === 'singular') {
    const term = slopes[factor.index] ?? '?';
    const before = [INTERCEPT, ...slopes.slice(0, factor.index)].map((name) => `'${name}'`).join(', ');
    throw new InputError(
      `${describeTerm(term, params)} is (almost) a linear combination of ${before}: XᵀX is singular; remove one of them${dpHint}`,
      null,
      term,
    );
  }
  const beta = factor.solve(sxy);
  const intercept = meanY - dot(mean, beta);
  if (![intercept, ...beta].every(Number.isFinite)) {
    throw new Error(`linear-regression: the solution is not finite${dpHint}`);
  }

  // Σ(y - ŷ)² = Syy - 2βᵀSxy + βᵀSxxβ, valid with and without the penalty.
  const fittedSpread = compensatedSum(sxx.flatMap((row, i) => row.map((value, j) => at(beta, i) * value * at(beta, j))));
  const rss = Math.max(0, syy - 2 * dot(beta, sxy) + fittedSpread);
  const perfectFit = rss <= PERFECT_FIT * syy;

  const inverse = factor.inverse();
  // With ridge, W Sxx W; without, W = Sxx⁻¹ already is the covariance up to σ².
  const ridge = params.ridge > 0;
  const shape = ridge ? multiply(multiply(inverse, sxx), inverse) : inverse;
  const effectiveSlopes = ridge ? trace(multiply(sxx, inverse)) : null;
  const df = ridge ? n - 1 - (effectiveSlopes ?? k) : n - p;
  const sigma2 = perfectFit ? 0 : rss / df;

  const slopeVariance = slopes.map((_, i) => sigma2 * at(shape[i] ?? [], i));
  // Var(β₀) = σ²/n + x̄ᵀ Cov(β) x̄: ȳ is uncorrelated with the centred slopes.
  let interceptVariance = sigma2 / n;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) interceptVariance += at(mean, i) * sigma2 * at(shape[i] ?? [], j) * at(mean, j);
  }

  const estimates = [intercept, ...beta];
  const variances = [interceptVariance, ...slopeVariance];
  const coefficients = terms.map((term, i): LinearCoefficient => {
    const estimate = at(estimates, i);
    const standardError = df > 0 ? finiteOrNull(Math.sqrt(Math.max(0, at(variances, i)))) : null;
    const testable = !ridge && !perfectFit && standardError !== null && standardError > 0;
    const t = testable ? finiteOrNull(estimate / standardError) : null;
    return { term, estimate, standardError, t, p: t === null ? null : finiteOrNull(tTwoSidedP(t, df)) };
  });

  return {
    computation: 'linear-regression',
    target: params.target,
    ridge: params.ridge,
    n,
    dropped: sums.dropped,
    coefficients,
    degreesOfFreedom: df,
    effectiveSlopes,
    residualStandardError: df > 0 ? finiteOrNull(Math.sqrt(sigma2)) : null,
    rSquared: finiteOrNull(1 - rss / syy),
    adjustedRSquared: df > 0 ? finiteOrNull(1 - rss / df / (syy / (n - 1))) : null,
    references,
    noisy,
    perfectFit,
  };
}

function checkShape(contribution: NumericTree, slopes: readonly string[]): void {
  expectKeys(contribution, [], ['n', 'dropped', 'sumY', 'sumY2', 'sumX', 'xty', 'xtx']);
  expectKeys(contribution, ['sumX'], slopes);
  expectKeys(contribution, ['xty'], slopes);
  expectUpperTriangle(contribution, ['xtx'], slopes);
}

function levelsFrom(previous: LinearGlobal | null, params: LinearRegressionParams): Levels {
  if (previous?.stage === 'levels') return previous.levels;
  if (needsLevels(params)) throw new Error('linear-regression: the categories have not been gathered');
  return {};
}

function trace(matrix: readonly (readonly number[])[]): number {
  const sum = new CompensatedSum();
  matrix.forEach((row, i) => sum.add(at(row, i)));
  return sum.value;
}
