/**
 * Federated logistic regression, equal to the maximum-likelihood fit on the pooled rows of all
 * sites, by Newton–Raphson (for the logit link the same as IRLS). After a first gather round
 * for the categories of categorical predictors (when there are any), every round is one Newton
 * iteration:
 *
 *   the coordinator broadcasts the current coefficients β; each site sends, over its complete
 *   rows, n, the positives, the log-likelihood, the gradient Xᵀ(y - p) and the Hessian XᵀWX
 *   (W = p(1 - p)); the coordinator adds them up and solves H Δ = g for the Newton step.
 *
 * Ridge (λ > 0) maximizes ℓ(β) - λ/2 · Σ β_j² over every coefficient but the intercept, in the
 * units of the columns as given.
 *
 * Standardized coordinates: from the second Newton round on, the sites work with the predictors
 * centred and scaled, z_j = (x_j - m_j)/s_j, with m and s the pooled means and SDs that the first
 * round yields (at β = 0, W = 1/4 and the Hessian is XᵀX/4), rounded because any centre and
 * scale near them will do. Raw columns in grams beside an intercept make the Hessian so
 * ill-conditioned that SMPC's fixed point (8 decimals) would cost the standard errors about
 * 7 digits; standardized, it costs about 1e-10. The coordinator maps the first round's raw
 * gradient and Hessian into these coordinates (g* = M g, H* = M H Mᵀ for z = M x) and the final
 * estimate and covariance back (β = Mᵀβ*, Cov = Mᵀ Cov* M).
 *
 * Convergence: the step in standardized coordinates, |Δ*_j| / (1 + |β*_j|), is ≤ tolerance for
 * every term: it does not depend on the units or the location of the predictors (for the
 * intercept it is the change of the linear predictor at the means). The reported coefficients
 * are β + Δ, the last Newton update, and the standard errors and log-likelihood those evaluated
 * at β in the last round, as R's glm reports them.
 *
 * Safeguards: a step that lowers the (penalized) log-likelihood is halved and retried, each
 * retry a round. Separation (the outcome perfectly predicted by a combination of predictors)
 * has no finite maximum-likelihood estimate: the coefficients grow without end, so the step
 * criterion is never met; a fit that reaches maxRounds with rows whose fitted probability is
 * numerically 0 or 1, or whose Hessian becomes singular with such rows, is an error naming
 * separation. A fit that simply reaches maxRounds is reported with `converged: false` and a
 * warning in the report (also with DP noise, which keeps every step noisy).
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
import { normalTwoSidedP } from './distributions.ts';
import { at, CompensatedSum, compensatedSum, factorize, multiply } from './linear-algebra.ts';
import {
  coefficientCsv,
  coefficientTable,
  finiteOrNull,
  formatNumber,
  markdownText,
  type CoefficientRow,
} from './regression-report.ts';
import type { Computation, NumericTree } from './types.ts';

/**
 * Small enough that the reported update β + Δ is exact to about 1e-12 (Newton converges
 * quadratically), large enough to be reached with SMPC, whose fixed point (8 decimals by default)
 * puts a floor of about 1e-8 under the step.
 */
export const DEFAULT_TOLERANCE = 1e-6;
/** As R's glm.control(maxit = 25). */
export const DEFAULT_MAX_ROUNDS = 25;

const paramsSchema = z
  .strictObject({
    ...designFields,
    positive: z.union([z.string().min(1), z.number()]).transform(String).optional(),
    tolerance: z.number().gt(0).lt(1).default(DEFAULT_TOLERANCE),
    maxRounds: z.number().int().min(1).max(1000).default(DEFAULT_MAX_ROUNDS),
  })
  .superRefine((params, context) => {
    for (const issue of designIssues(params)) context.addIssue({ code: 'custom', ...issue });
  });

export type LogisticRegressionParams = z.infer<typeof paramsSchema>;

/** A site's sums at the broadcast coefficients; `hessian` holds the upper triangle of XᵀWX. */
export type LogisticContribution = {
  readonly n: number;
  readonly dropped: number;
  readonly positives: number;
  /** Rows whose fitted probability is within 1e-8 of 0 or 1 (|η| > 18.4). */
  readonly extreme: number;
  readonly logLikelihood: number;
  readonly gradient: { readonly [term: string]: number };
  readonly hessian: { readonly [term: string]: { readonly [term: string]: number } };
};

export type LogisticCoefficient = {
  readonly term: string;
  readonly estimate: number;
  readonly standardError: number | null;
  readonly z: number | null;
  readonly p: number | null;
};

export type LogisticRegressionResult = {
  readonly computation: 'logistic-regression';
  readonly target: string;
  /** The target value counted as 1, or null when the target is 0/1 numbers. */
  readonly positive: string | null;
  readonly ridge: number;
  readonly n: number;
  readonly dropped: number;
  readonly positives: number;
  readonly coefficients: readonly LogisticCoefficient[];
  readonly converged: boolean;
  /** Newton rounds (gradient and Hessian exchanges), step halvings included. */
  readonly iterations: number;
  /** The last step's size by the convergence measure (≤ tolerance when converged). */
  readonly lastStep: number;
  readonly tolerance: number;
  /** At the coefficients of the last round; without the penalty. */
  readonly logLikelihood: number;
  readonly deviance: number;
  readonly nullDeviance: number | null;
  /** -2ℓ + 2p, without ridge only. */
  readonly aic: number | null;
  /** Rows whose fitted probability is within 1e-8 of 0 or 1 at the last round. */
  readonly extremeRows: number;
  readonly references: readonly { readonly column: string; readonly level: string }[];
  /** True when the sums came through SMPC (rounded to its fixed point). */
  readonly secure: boolean;
  /** True when the sums carried DP noise (the pooled n is not a whole number). */
  readonly noisy: boolean;
};

/** The centre m and scale s of each term (0 and 1 for the intercept): z = (x - m)/s. */
type Standardization = { readonly means: readonly number[]; readonly scales: readonly number[] };

type Point = {
  /** Standardized coefficients β*. */
  readonly coefficients: readonly number[];
  /** The penalized log-likelihood there. */
  readonly objective: number;
  /** The Newton step computed there. */
  readonly step: readonly number[];
};

export type LogisticGlobal =
  | LevelsGlobal
  | {
      readonly stage: 'newton';
      readonly levels: Levels;
      /** The Newton round the sites are asked for, from 2 (the first one is at β = 0). */
      readonly iteration: number;
      readonly standardization: Standardization;
      /** Where the sites evaluate, in standardized coordinates. */
      readonly coefficients: readonly number[];
      /** The last accepted point, from which a step that went downhill is halved. */
      readonly accepted: Point | null;
      readonly halvings: number;
    }
  | { readonly stage: 'final'; readonly result: LogisticRegressionResult };

/** |η| beyond this is a fitted probability within 1e-8 of 0 or 1. */
const EXTREME_LOGIT = -Math.log(1e-8);
const CONSTANT = 1e-10;
const MAX_HALVINGS = 30;
const DP_HINT = ' (the sums carry DP noise: a smaller noise scale may help)';

export const logisticRegression: Computation<
  LogisticRegressionParams,
  SiteDesign,
  LogisticContribution,
  LogisticGlobal,
  LogisticRegressionResult
> = {
  name: 'logistic-regression',
  params: paramsSchema,

  expectedRounds: (params) => (needsLevels(params) ? 1 : 0) + Math.min(params.maxRounds, 8),

  prepare(table: Table, params) {
    return prepareDesign(table, params, binaryTarget(table, params));
  },

  gather: categoryRound(),

  localStep(site, previous, { params }) {
    const point = evaluationPoint(previous, params);
    const terms = termsOf(params, point.levels);
    const { coefficients } = point;
    const { means, scales } = point.standardization;
    if (coefficients.length !== terms.length || means.length !== terms.length) {
      throw new Error('logistic-regression: the broadcast coefficients do not match the terms');
    }
    const rows = encodeRows(site, params, point.levels).map((x) => x.map((value, i) => (value - at(means, i)) / at(scales, i)));
    const logLikelihood = new CompensatedSum();
    const gradient = terms.map(() => new CompensatedSum());
    const hessian = terms.map((_, i) => terms.slice(i).map(() => new CompensatedSum()));
    let extreme = 0;
    rows.forEach((z, index) => {
      const y = at(site.targets, index);
      let eta = 0;
      for (let i = 0; i < z.length; i++) eta += at(z, i) * at(coefficients, i);
      if (!Number.isFinite(eta)) throw new Error('logistic-regression: a linear predictor is not finite');
      // log p = -softplus(-η), log(1 - p) = -softplus(η): finite for every finite η.
      logLikelihood.add(y === 1 ? -softplus(-eta) : -softplus(eta));
      const p = 1 / (1 + Math.exp(-eta));
      const weight = Math.exp(-softplus(eta) - softplus(-eta));
      if (Math.abs(eta) > EXTREME_LOGIT) extreme++;
      for (let i = 0; i < z.length; i++) {
        gradient[i]?.add((y - p) * at(z, i));
        for (let j = i; j < z.length; j++) hessian[i]?.[j - i]?.add(weight * at(z, i) * at(z, j));
      }
    });
    return {
      n: rows.length,
      dropped: site.dropped,
      positives: site.targets.filter((y) => y === 1).length,
      extreme,
      logLikelihood: logLikelihood.value,
      gradient: byTerm(terms, (i) => gradient[i]?.value ?? 0),
      hessian: upperTriangle(terms, (i, j) => hessian[i]?.[j - i]?.value ?? 0),
    };
  },

  aggregate(contributions, previous, { params, secure }) {
    if (contributions.length === 0) throw new Error('logistic-regression: no contributions to aggregate');
    const point = evaluationPoint(previous, params);
    const terms = termsOf(params, point.levels);
    for (const contribution of contributions) checkShape(contribution, terms);
    const total = (path: readonly string[]) =>
      compensatedSum(contributions.map((contribution) => numberAt(contribution, path)));
    const sums: PooledSums = {
      n: total(['n']),
      dropped: total(['dropped']),
      positives: total(['positives']),
      extreme: total(['extreme']),
      logLikelihood: total(['logLikelihood']),
      gradient: terms.map((term) => total(['gradient', term])),
      hessian: pooledMatrix(['hessian'], terms, total),
    };
    const global = newtonStep(sums, terms, point, params, { references: referenceLevels(params, point.levels), secure });
    return { global, final: global.stage === 'final' };
  },

  result(final) {
    if (final.stage !== 'final') throw new Error('logistic-regression: the result needs the final round');
    return final.result;
  },

  report(result) {
    const outcome = result.positive === null ? `${result.target} (1 = event)` : `${result.target} = ${result.positive}`;
    const ridge = result.ridge > 0;
    const method = ridge
      ? `Penalized maximum likelihood (ridge: ℓ(β) − λ/2·Σβⱼ² with λ = ${result.ridge}, the intercept not penalized)`
      : 'Maximum likelihood';
    const notConverged =
      `**Not converged**: after ${result.iterations} Newton rounds (maxRounds) the last step was ${formatNumber(result.lastStep)}, ` +
      `above the tolerance ${result.tolerance}. The figures below are the last iterate, not the maximum-likelihood estimate.` +
      (result.secure
        ? " With SMPC every sum is rounded to the fixed point's decimals (smpc.exponent), which bounds how small a step can get: raise the tolerance or the exponent."
        : '');
    const lines = [
      `# Logistic regression of ${markdownText(outcome)}`,
      '',
      ...(result.converged ? [] : [notConverged, '']),
      `${method} by Newton–Raphson over the pooled complete rows of all sites: n = ${formatNumber(result.n)}` +
        ` (${countOf(result.dropped, 'row')} dropped for a missing value), ${formatNumber(result.positives)} of them positive` +
        (result.converged ? `; converged after ${result.iterations} rounds.` : '.'),
      '',
      ...coefficientTable(result.coefficients.map(toRow), 'z'),
      '',
      `- Log-likelihood: ${formatNumber(result.logLikelihood)}; residual deviance: ${formatNumber(result.deviance)}; ` +
        `null deviance: ${formatNumber(result.nullDeviance)}${result.aic === null ? '' : `; AIC: ${formatNumber(result.aic)}`}`,
      '- Coefficients are log odds ratios; standard errors come from the inverse Hessian (the observed information), p values from the normal distribution (Wald tests).',
      ...result.references.map(
        (reference) =>
          `- Reference category of ${markdownText(reference.column)}: ${markdownText(reference.level)} (the first in sorted order); ` +
          `each ${markdownText(reference.column)}=… coefficient is the log odds ratio against it.`,
      ),
      ...(ridge
        ? [
            '- With ridge, the standard errors are the spread of the penalized estimate, (H + λI)⁻¹H(H + λI)⁻¹; they ignore the shrinkage bias, so no z or p values are given.',
          ]
        : []),
      ...(result.extremeRows > 0 && !result.noisy
        ? [`- ${formatNumber(result.extremeRows)} rows have a fitted probability within 1e-8 of 0 or 1.`]
        : []),
      ...(result.noisy
        ? [
            "- Every round's sums carried differential-privacy (DP) noise (the pooled n is not a whole number): the figures are approximate, and each Newton round spends the privacy budget again.",
          ]
        : []),
      '',
    ];
    return lines.join('\n');
  },

  csv(result) {
    return coefficientCsv(result.coefficients.map(toRow), 'z');
  },
};

function toRow(c: LogisticCoefficient): CoefficientRow {
  return { term: c.term, estimate: c.estimate, standardError: c.standardError, statistic: c.z, p: c.p };
}

/** The target as 1 (positive), 0, or null (missing), checked at the site. */
function binaryTarget(table: Table, params: LogisticRegressionParams): (number | null)[] {
  const column = params.target;
  const positive = params.positive;
  if (positive === undefined) {
    const values = table.numeric(column);
    const wrong = values.filter((value) => value !== null && value !== 0 && value !== 1);
    if (wrong.length > 0) {
      throw new InputError(
        `${table.source}: column '${column}' must hold 0 or 1 (or name its positive value in parameters.positive); ` +
          `found ${wrong[0]}${wrong.length > 1 ? ` and ${wrong.length - 1} more values that are neither` : ''}`,
        table.source,
        column,
      );
    }
    return [...values];
  }
  const labels = table.text(column).map((cell) => cell?.trim() ?? null);
  const distinct = [...new Set(labels.filter((label): label is string => label !== null && label !== ''))];
  if (distinct.length > 2) {
    const shown = distinct.slice(0, 5).map((label) => `'${label}'`).join(', ');
    throw new InputError(
      `${table.source}: column '${column}' has ${distinct.length} different values (${shown}${distinct.length > 5 ? ', ...' : ''}); a binary target has two`,
      table.source,
      column,
    );
  }
  return labels.map((label) => (label === null || label === '' ? null : label === positive ? 1 : 0));
}

interface EvaluationPoint {
  readonly levels: Levels;
  readonly standardization: Standardization;
  readonly coefficients: readonly number[];
  readonly state: Extract<LogisticGlobal, { stage: 'newton' }> | null;
}

/** Where this round evaluates: β = 0 on the raw columns first, then the broadcast point. */
function evaluationPoint(previous: LogisticGlobal | null, params: LogisticRegressionParams): EvaluationPoint {
  if (previous?.stage === 'final') throw new Error('logistic-regression: no round after the final result');
  if (previous?.stage === 'newton') {
    return { levels: previous.levels, standardization: previous.standardization, coefficients: previous.coefficients, state: previous };
  }
  if (previous === null && needsLevels(params)) throw new Error('logistic-regression: the categories have not been gathered');
  const levels = previous?.stage === 'levels' ? previous.levels : {};
  const zeros = termsOf(params, levels).map(() => 0);
  return { levels, standardization: { means: zeros, scales: zeros.map(() => 1) }, coefficients: zeros, state: null };
}

interface PooledSums {
  readonly n: number;
  readonly dropped: number;
  readonly positives: number;
  readonly extreme: number;
  readonly logLikelihood: number;
  readonly gradient: readonly number[];
  readonly hessian: readonly (readonly number[])[];
}

/** One Newton iteration at the coordinator: the next point to evaluate, or the final result. */
function newtonStep(
  raw: PooledSums,
  terms: readonly string[],
  point: EvaluationPoint,
  params: LogisticRegressionParams,
  about: Pick<LogisticRegressionResult, 'references' | 'secure'>,
): LogisticGlobal {
  const iteration = point.state?.iteration ?? 1;
  const noisy = !Number.isInteger(raw.n) || !Number.isInteger(raw.positives);
  const dpHint = noisy ? DP_HINT : '';
  const separated = !noisy && params.ridge === 0 && raw.extreme >= 1;

  // The first round is on the raw columns; its checks also give the standardization.
  const standardization = point.state?.standardization ?? firstRoundChecks(raw, terms, params, noisy);
  const transform = standardizing(standardization);
  const sums = point.state === null ? toStandardized(raw, transform) : raw;
  const beta = point.coefficients;

  // Ridge on the raw slopes, λ/2 Σ β_j², is λ/(2 s_j²) Σ β*_j² in standardized coordinates.
  const penalty = (i: number) => (i === 0 ? 0 : params.ridge / at(standardization.scales, i) ** 2);
  const objective = sums.logLikelihood - 0.5 * beta.reduce((sum, b, i) => sum + penalty(i) * b * b, 0);
  const accepted = point.state?.accepted ?? null;
  const halvings = point.state?.halvings ?? 0;
  const next = { stage: 'newton', levels: point.levels, iteration: iteration + 1, standardization } as const;

  if (point.state === null && noisy && iteration < params.maxRounds) {
    // DP noise on the raw sums is blown up by the change of coordinates (the intercept's noise
    // times the squared mean); start again at β = 0 with sums made in standardized coordinates.
    return { ...next, coefficients: beta, accepted: null, halvings: 0 };
  }

  const downhill = accepted !== null && !noisy && objective < accepted.objective - 1e-12 * (1 + Math.abs(accepted.objective));
  if (downhill && iteration < params.maxRounds) {
    if (halvings + 1 > MAX_HALVINGS) {
      throw new Error(`logistic-regression: the log-likelihood does not increase along the Newton step, even halved ${MAX_HALVINGS} times`);
    }
    const factor = 0.5 ** (halvings + 1);
    const coefficients = accepted.coefficients.map((b, i) => b + factor * at(accepted.step, i));
    return { ...next, coefficients, accepted, halvings: halvings + 1 };
  }

  const penalized = sums.hessian.map((row, i) => row.map((value, j) => (i === j ? value + penalty(i) : value)));
  const factor = factorize(penalized);
  if (factor.kind === 'singular') {
    if (separated) throw separation(raw.extreme, iteration, params);
    const term = terms[factor.index] ?? '?';
    throw new InputError(
      `the Hessian is singular at Newton round ${iteration} (${describeTerm(term, params)} carries no information beside the terms before it)${dpHint}`,
      null,
      term,
    );
  }
  const step = factor.solve(sums.gradient.map((g, i) => g - penalty(i) * at(beta, i)));
  if (!step.every(Number.isFinite)) throw new Error(`logistic-regression: the Newton step is not finite${dpHint}`);
  const size = Math.max(...step.map((delta, i) => Math.abs(delta) / (1 + Math.abs(at(beta, i)))));
  const converged = size <= params.tolerance;

  if (!converged && iteration < params.maxRounds) {
    const coefficients = beta.map((b, i) => b + at(step, i));
    return { ...next, coefficients, accepted: { coefficients: beta, objective, step }, halvings: 0 };
  }
  if (!converged && separated) throw separation(raw.extreme, iteration, params);

  const inverse = factor.inverse();
  const standardizedCovariance = params.ridge > 0 ? multiply(multiply(inverse, sums.hessian), inverse) : inverse;
  const estimates = transform.toRaw(beta.map((b, i) => b + at(step, i)));
  const covariance = transform.covarianceToRaw(standardizedCovariance);
  const coefficients = terms.map((term, i): LogisticCoefficient => {
    const estimate = at(estimates, i);
    const standardError = finiteOrNull(Math.sqrt(Math.max(0, at(covariance[i] ?? [], i))));
    const z = params.ridge === 0 && standardError !== null && standardError > 0 ? finiteOrNull(estimate / standardError) : null;
    return { term, estimate, standardError, z, p: z === null ? null : finiteOrNull(normalTwoSidedP(z)) };
  });
  const { n, positives } = raw;
  const negatives = n - positives;
  const nullLogLikelihood =
    positives > 0 && negatives > 0 ? positives * Math.log(positives / n) + negatives * Math.log(negatives / n) : Number.NaN;
  return {
    stage: 'final',
    result: {
      computation: 'logistic-regression',
      target: params.target,
      positive: params.positive ?? null,
      ridge: params.ridge,
      n,
      dropped: raw.dropped,
      positives,
      coefficients,
      converged,
      iterations: iteration,
      lastStep: size,
      tolerance: params.tolerance,
      logLikelihood: raw.logLikelihood,
      deviance: -2 * raw.logLikelihood,
      nullDeviance: finiteOrNull(-2 * nullLogLikelihood),
      aic: params.ridge === 0 ? -2 * raw.logLikelihood + 2 * terms.length : null,
      extremeRows: raw.extreme,
      ...about,
      noisy,
    },
  };
}

/**
 * z = M x with M's row 0 = e₀ and row j = (e_j - m_j e₀)/s_j. A site's η = xᵀβ = zᵀβ*, so
 * β = Mᵀβ*, g* = M g, H* = M H Mᵀ and Cov(β) = Mᵀ Cov(β*) M.
 */
function standardizing({ means, scales }: Standardization) {
  const size = means.length;
  const m = Array.from({ length: size }, (_, j) =>
    Array.from({ length: size }, (_, k) => {
      if (j === 0) return k === 0 ? 1 : 0;
      if (k === j) return 1 / at(scales, j);
      return k === 0 ? -at(means, j) / at(scales, j) : 0;
    }),
  );
  const mt = m.map((_, j) => m.map((row) => at(row, j)));
  const apply = (matrix: number[][], vector: readonly number[]) => matrix.map((row) => row.reduce((sum, value, k) => sum + value * at(vector, k), 0));
  return {
    toStandardizedGradient: (gradient: readonly number[]) => apply(m, gradient),
    toStandardizedHessian: (hessian: readonly (readonly number[])[]) => multiply(multiply(m, hessian), mt),
    toRaw: (coefficients: readonly number[]) => apply(mt, coefficients),
    covarianceToRaw: (covariance: readonly (readonly number[])[]) => multiply(multiply(mt, covariance), m),
  };
}

function toStandardized(raw: PooledSums, transform: ReturnType<typeof standardizing>): PooledSums {
  return { ...raw, gradient: transform.toStandardizedGradient(raw.gradient), hessian: transform.toStandardizedHessian(raw.hessian) };
}

/**
 * The checks the first Newton round allows (β = 0, so W = 1/4 and the Hessian is XᵀX/4): enough
 * rows, both outcomes present, no constant or aliased predictor. Returns the standardization:
 * the pooled means and SDs, rounded (to 1/100 of an SD, and 3 significant digits), since the
 * sites need only a centre and scale near them and rounding tells them less about the data.
 */
function firstRoundChecks(
  sums: PooledSums,
  terms: readonly string[],
  params: LogisticRegressionParams,
  noisy: boolean,
): Standardization {
  const { n, positives, hessian } = sums;
  const dpHint = noisy ? DP_HINT : '';
  const p = terms.length;
  requireMoreRowsThanCoefficients(n, p, params.target, dpHint);
  const outcome = params.positive === undefined ? `${params.target} = 1` : `${params.target} = '${params.positive}'`;
  if (!(positives >= 0.5)) {
    throw new InputError(`no complete row at any site has ${outcome}; check parameters.positive and the target${dpHint}`, null, params.target);
  }
  if (!(n - positives >= 0.5)) {
    throw new InputError(`every complete row at every site has ${outcome}; a binary target needs both outcomes${dpHint}`, null, params.target);
  }

  const first = hessian[0] ?? [];
  const h00 = at(first, 0);
  const mean = (i: number) => at(first, i) / h00;
  const variance = (i: number) => at(hessian[i] ?? [], i) / h00 - mean(i) ** 2;
  const square = (i: number) => at(hessian[i] ?? [], i) / h00;
  // With DP noise these exactness checks would fire on noise; a real problem shows up later
  // as a singular Hessian.
  terms.forEach((term, i) => {
    if (i > 0 && !noisy && !(variance(i) > CONSTANT * square(i))) {
      throw new InputError(
        `${describeTerm(term, params)} is constant (${formatNumber(mean(i))}) over the complete rows of all sites; it cannot be a predictor beside the intercept${dpHint}`,
        null,
        term,
      );
    }
  });
  if (params.ridge === 0 && p > 1 && !noisy) {
    // Centring on the intercept (a Schur complement) leaves the predictors' own cross-products.
    const slopes = terms.slice(1);
    const centred = slopes.map((_, i) =>
      slopes.map((_, j) => at(hessian[i + 1] ?? [], j + 1) - (at(first, i + 1) * at(first, j + 1)) / h00),
    );
    const factor = factorize(centred);
    if (factor.kind === 'singular') {
      const term = terms[factor.index + 1] ?? '?';
      const before = terms.slice(0, factor.index + 1).map((name) => `'${name}'`).join(', ');
      throw new InputError(
        `${describeTerm(term, params)} is (almost) a linear combination of ${before}: the Hessian is singular; remove one of them${dpHint}`,
        null,
        term,
      );
    }
  }
  // Noise can make a variance tiny or negative; any positive scale keeps the algebra exact.
  const scales = terms.map((_, i) => (i === 0 ? 1 : Number(Math.sqrt(Math.max(variance(i), 1e-4 * square(i))).toPrecision(3))));
  const means = terms.map((_, i) => (i === 0 ? 0 : Math.round(mean(i) / (at(scales, i) / 100)) * (at(scales, i) / 100)));
  return { means, scales };
}

function separation(extreme: number, iteration: number, params: LogisticRegressionParams): InputError {
  return new InputError(
    `separation: after ${iteration} Newton rounds ${formatNumber(extreme)} rows have fitted probabilities of (numerically) 0 or 1 and the coefficients keep growing; ` +
      `the predictors perfectly predict ${params.target} for them, so no finite maximum-likelihood estimate exists. ` +
      'Remove or merge the predictors that separate the outcome, or set a ridge penalty (parameters.ridge)',
    null,
    params.target,
  );
}

function checkShape(contribution: NumericTree, terms: readonly string[]): void {
  expectKeys(contribution, [], ['n', 'dropped', 'positives', 'extreme', 'logLikelihood', 'gradient', 'hessian']);
  expectKeys(contribution, ['gradient'], terms);
  expectUpperTriangle(contribution, ['hessian'], terms);
}

function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}
