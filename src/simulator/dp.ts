/**
 * What the controllers do with `dp` data: clip, then add noise to every number before relaying.
 *
 * The standard mechanisms (Dwork & Roth, "The Algorithmic Foundations of Differential Privacy"):
 * - Laplace, pure ε-DP: noise Lap(b) with b = Δ₁ / ε, where Δ₁ is the L1 sensitivity.
 * - Gauss, (ε, δ)-DP: noise N(0, σ²) with σ = Δ₂ · sqrt(2 · ln(1.25 / δ)) / ε, where Δ₂ is the L2
 *   sensitivity. That classic bound is proven for ε < 1, which is why the default ε is 0.99999.
 * - Clipping to C scales the whole vector w by min(1, C / ‖w‖p) (p = 1 for Laplace, 2 for Gauss),
 *   so ‖w‖p <= C. Two clipped vectors then differ by at most 2C in that norm (the triangle
 *   inequality, for neighbouring inputs where one site's vector is replaced), hence Δ = 2C.
 *
 * Defaults follow the platform: ε = 0.99999, δ = 0 (Laplace) or 0.01 (Gauss), and C = 10 when
 * neither a sensitivity nor a clipping value is given. An explicit sensitivity always wins; with
 * only a sensitivity nothing is clipped, so the app vouches for that bound itself.
 *
 * The noise comes from an injected seeded generator so runs can be replayed. Like any textbook
 * float implementation it is fit for simulation, not a hardened production DP library (floating
 * point noise leaks through its low bits; see Mironov, CCS 2012).
 */
import type { NumericTree } from '../computation/types.ts';
import type { DpOptions } from '../protocol/types.ts';
import { leaves, mapLeaves } from '../protocol/payload.ts';
import type { Random } from './random.ts';

export const DEFAULT_EPSILON = 0.99999;
export const DEFAULT_DELTA = { laplace: 0, gauss: 0.01 } as const;
export const DEFAULT_CLIPPING = 10;

export type NoiseType = DpOptions['noisetype'];

/** The DP options as they may come from a status: everything but the data may be absent or null. */
export interface DpRequest {
  readonly serialization?: DpOptions['serialization'];
  readonly noisetype?: NoiseType;
  readonly epsilon?: number | null;
  readonly delta?: number | null;
  readonly sensitivity?: number | null;
  readonly clippingVal?: number | null;
}

export interface ResolvedDp {
  readonly noisetype: NoiseType;
  readonly epsilon: number;
  readonly delta: number;
  /** Null when nothing is clipped (an explicit sensitivity without a clipping value). */
  readonly clippingVal: number | null;
  readonly sensitivity: number;
  /** The Laplace b, or the Gauss σ. */
  readonly scale: number;
}

function isSet(value: number | null | undefined): value is number {
  return value !== undefined && value !== null;
}

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`DP ${name} must be a finite number > 0, got ${value}`);
  return value;
}

/** Applies the defaults and checks the options; throws a RangeError naming the bad field. */
export function resolveDp(options: DpOptions | DpRequest): ResolvedDp {
  const noisetype: string = options.noisetype ?? 'laplace';
  if (noisetype !== 'laplace' && noisetype !== 'gauss') {
    throw new RangeError(`DP noisetype must be 'laplace' or 'gauss', got '${noisetype}'`);
  }
  if (options.serialization !== undefined && options.serialization !== 'json') {
    throw new RangeError(`DP serialization must be 'json', got '${String(options.serialization)}'`);
  }
  const epsilon = positive('epsilon', isSet(options.epsilon) ? options.epsilon : DEFAULT_EPSILON);
  const delta = isSet(options.delta) ? options.delta : DEFAULT_DELTA[noisetype];
  if (noisetype === 'laplace' && !(delta >= 0 && delta < 1)) {
    throw new RangeError(`DP delta for Laplace noise must be in [0, 1) (it is not used), got ${delta}`);
  }
  if (noisetype === 'gauss' && !(delta > 0 && delta < 1)) {
    throw new RangeError(`DP delta for Gauss noise must be in (0, 1), got ${delta}`);
  }
  const explicitSensitivity = isSet(options.sensitivity) ? positive('sensitivity', options.sensitivity) : null;
  const clippingVal = isSet(options.clippingVal)
    ? positive('clippingVal', options.clippingVal)
    : explicitSensitivity === null
      ? DEFAULT_CLIPPING
      : null;
  const sensitivity = explicitSensitivity ?? 2 * (clippingVal ?? DEFAULT_CLIPPING);
  const scale =
    noisetype === 'laplace'
      ? sensitivity / epsilon
      : (sensitivity * Math.sqrt(2 * Math.log(1.25 / delta))) / epsilon;
  return { noisetype, epsilon, delta, clippingVal, sensitivity, scale };
}

/** The Lp norm (p = 1 or 2) over all numbers of the tree. */
export function norm(tree: NumericTree, p: 1 | 2): number {
  const values = leaves<number>(tree);
  if (p === 1) return values.reduce((sum, value) => sum + Math.abs(value), 0);
  // Scaled by the largest magnitude so that squaring cannot overflow.
  const largest = values.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
  if (largest === 0) return 0;
  return largest * Math.sqrt(values.reduce((sum, value) => sum + (value / largest) ** 2, 0));
}

/** Scales every number by min(1, clippingVal / ‖tree‖p), so the clipped tree's Lp norm is at most clippingVal. */
export function clip(tree: NumericTree, clippingVal: number, p: 1 | 2): NumericTree {
  positive('clippingVal', clippingVal);
  const length = norm(tree, p);
  const factor = length > clippingVal ? clippingVal / length : 1;
  return factor === 1 ? tree : mapLeaves<number, number>(tree, (value) => value * factor);
}

/** Clips (when the options clip) and adds independent noise of the resolved scale to every number. */
export function applyDp(tree: NumericTree, options: DpOptions | DpRequest, random: Random): NumericTree {
  const dp = resolveDp(options);
  const clipped = dp.clippingVal === null ? tree : clip(tree, dp.clippingVal, dp.noisetype === 'laplace' ? 1 : 2);
  const noise = dp.noisetype === 'laplace' ? () => random.laplace(dp.scale) : () => random.gaussian(dp.scale);
  return mapLeaves<number, number>(clipped, (value) => value + noise());
}
