import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NumericTree } from '../src/computation/types.ts';
import { applyDp, clip, norm, resolveDp } from '../src/simulator/dp.ts';
import { leaves } from '../src/protocol/payload.ts';
import { createRandom } from '../src/simulator/random.ts';

const DRAWS = 20_000;
const zeros = (count: number): NumericTree => new Array<number>(count).fill(0);
const close = (actual: number, expected: number, relative = 1e-12) =>
  Math.abs(actual - expected) <= relative * Math.abs(expected);

function meanAbsolute(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + Math.abs(value), 0) / values.length;
}

function standardDeviation(values: readonly number[]): number {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  return Math.sqrt(values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1));
}

// --- options ---------------------------------------------------------------------------------------

test('defaults: epsilon 0.99999, Laplace delta 0, clipping at 10 and sensitivity 2·10', () => {
  const dp = resolveDp({ noisetype: 'laplace' });
  assert.equal(dp, { noisetype: 'laplace', epsilon: 0.99999, delta: 0, clippingVal: 10, sensitivity: 20, scale: 20 / 0.99999 });
  assert.is(resolveDp({}).noisetype, 'laplace');
});

test('defaults: Gauss delta 0.01, sigma = sensitivity · sqrt(2 ln(1.25/delta)) / epsilon', () => {
  const dp = resolveDp({ noisetype: 'gauss' });
  assert.is(dp.delta, 0.01);
  assert.is(dp.clippingVal, 10);
  assert.is(dp.sensitivity, 20);
  assert.ok(close(dp.scale, (20 * Math.sqrt(2 * Math.log(125))) / 0.99999));
});

test('clipping gives sensitivity 2C; an explicit sensitivity wins and alone disables clipping', () => {
  const clipped = resolveDp({ noisetype: 'laplace', epsilon: 0.5, clippingVal: 3 });
  assert.is(clipped.clippingVal, 3);
  assert.is(clipped.sensitivity, 6);
  assert.is(clipped.scale, 12);

  const explicit = resolveDp({ noisetype: 'laplace', epsilon: 2, sensitivity: 1 });
  assert.is(explicit.clippingVal, null);
  assert.is(explicit.sensitivity, 1);
  assert.is(explicit.scale, 0.5);

  const both = resolveDp({ noisetype: 'gauss', epsilon: 0.5, delta: 1e-5, sensitivity: 1, clippingVal: 4 });
  assert.is(both.clippingVal, 4);
  assert.is(both.sensitivity, 1);
  assert.ok(close(both.scale, Math.sqrt(2 * Math.log(1.25e5)) / 0.5));
});

test('null fields from a status count as absent', () => {
  assert.equal(
    resolveDp({ noisetype: 'gauss', epsilon: null, delta: null, sensitivity: null, clippingVal: null }),
    resolveDp({ noisetype: 'gauss' }),
  );
});

test('validation: epsilon > 0; Laplace delta may be 0; Gauss needs 0 < delta < 1', () => {
  assert.throws(() => resolveDp({ noisetype: 'laplace', epsilon: 0 }), /epsilon must be a finite number > 0, got 0/);
  assert.throws(() => resolveDp({ noisetype: 'gauss', epsilon: -1 }), /epsilon/);
  assert.throws(() => resolveDp({ epsilon: Number.NaN }), /epsilon/);
  assert.is(resolveDp({ noisetype: 'laplace', delta: 0 }).delta, 0);
  assert.throws(() => resolveDp({ noisetype: 'laplace', delta: -0.1 }), /delta for Laplace/);
  assert.throws(() => resolveDp({ noisetype: 'gauss', delta: 0 }), /delta for Gauss noise must be in \(0, 1\), got 0/);
  assert.throws(() => resolveDp({ noisetype: 'gauss', delta: 1 }), /delta for Gauss/);
  assert.throws(() => resolveDp({ sensitivity: 0 }), /sensitivity must be/);
  assert.throws(() => resolveDp({ clippingVal: -2 }), /clippingVal must be/);
  const unknown = { noisetype: 'uniform' } as unknown as Parameters<typeof resolveDp>[0];
  assert.throws(() => resolveDp(unknown), /noisetype must be 'laplace' or 'gauss', got 'uniform'/);
});

// --- clipping --------------------------------------------------------------------------------------

test('clip with p = 1 scales by C / L1 norm over all leaves', () => {
  const tree = { a: [3, -4], b: { c: 1 } }; // L1 = 8
  assert.is(norm(tree, 1), 8);
  assert.equal(clip(tree, 4, 1), { a: [1.5, -2], b: { c: 0.5 } });
  assert.equal(clip(tree, 8, 1), tree);
  assert.equal(clip(tree, 100, 1), tree);
});

test('clip with p = 2 scales by C / L2 norm over all leaves', () => {
  const tree = { a: [3], b: [[-4]] }; // L2 = 5
  assert.is(norm(tree, 2), 5);
  assert.equal(clip(tree, 2.5, 2), { a: [1.5], b: [[-2]] });
  assert.equal(clip(tree, 5, 2), tree);
  assert.ok(close(norm(clip([1e200, 1e200], 1, 2), 2), 1));
  assert.equal(clip([0, 0], 1, 2), [0, 0]);
});

test('applyDp clips before adding noise: Laplace by L1, Gauss by L2', () => {
  // A huge epsilon makes the noise negligible, so the clipped values show through.
  const quiet = 1e12;
  const laplace = leaves<number>(applyDp([30, -10], { noisetype: 'laplace', epsilon: quiet, clippingVal: 4 }, createRandom(1)));
  assert.ok(Math.abs((laplace[0] ?? 0) - 3) < 1e-6 && Math.abs((laplace[1] ?? 0) + 1) < 1e-6, String(laplace));
  const gauss = leaves<number>(applyDp([30, -40], { noisetype: 'gauss', epsilon: quiet, delta: 0.01, clippingVal: 5 }, createRandom(1)));
  assert.ok(Math.abs((gauss[0] ?? 0) - 3) < 1e-6 && Math.abs((gauss[1] ?? 0) + 4) < 1e-6, String(gauss));
});

test('applyDp keeps the shape and does not change its input', () => {
  const tree = { w: [1, 2, 3], b: 0.5 };
  const noisy = applyDp(tree, { noisetype: 'gauss' }, createRandom('shape'));
  assert.equal(tree, { w: [1, 2, 3], b: 0.5 });
  assert.equal(Object.keys(noisy), ['w', 'b']);
  assert.is(leaves(noisy).length, 4);
  assert.ok(leaves<number>(noisy).every((value, index) => value !== leaves<number>(tree)[index]));
});

// --- noise -----------------------------------------------------------------------------------------

test('Laplace noise: mean absolute deviation matches b = sensitivity / epsilon', () => {
  for (const epsilon of [0.1, 0.5, 0.99999, 3]) {
    const options = { noisetype: 'laplace', epsilon, sensitivity: 1 } as const;
    const noise = leaves<number>(applyDp(zeros(DRAWS), options, createRandom(`laplace-${epsilon}`)));
    const b = 1 / epsilon;
    assert.ok(close(meanAbsolute(noise), b, 0.03), `epsilon ${epsilon}: MAD ${meanAbsolute(noise)} vs b ${b}`);
    // The epsilon an observer would estimate from the noise.
    assert.ok(close(1 / meanAbsolute(noise), epsilon, 0.03));
    // Laplace shape: P(|x| > b) = 1/e.
    const beyond = noise.filter((value) => Math.abs(value) > b).length / DRAWS;
    assert.ok(Math.abs(beyond - Math.exp(-1)) < 0.015, `P(|x| > b) = ${beyond}`);
    assert.ok(Math.abs(noise.reduce((sum, value) => sum + value, 0) / DRAWS) < 0.05 * b);
  }
});

test('Laplace noise with default clipping has b = 2·10 / 0.99999', () => {
  const noise = leaves<number>(applyDp(zeros(DRAWS), { noisetype: 'laplace' }, createRandom('laplace-default')));
  assert.ok(close(meanAbsolute(noise), 20 / 0.99999, 0.03), String(meanAbsolute(noise)));
});

test('Gauss noise: standard deviation matches sigma', () => {
  for (const [epsilon, delta] of [
    [0.5, 1e-5],
    [0.99999, 0.01],
  ] as const) {
    const options = { noisetype: 'gauss', epsilon, delta, sensitivity: 2 } as const;
    const sigma = resolveDp(options).scale;
    assert.ok(close(sigma, (2 * Math.sqrt(2 * Math.log(1.25 / delta))) / epsilon));
    const noise = leaves<number>(applyDp(zeros(DRAWS), options, createRandom(`gauss-${epsilon}`)));
    assert.ok(close(standardDeviation(noise), sigma, 0.03), `sd ${standardDeviation(noise)} vs sigma ${sigma}`);
    // Normal shape: P(|x| < sigma) ≈ 0.6827.
    const within = noise.filter((value) => Math.abs(value) < sigma).length / DRAWS;
    assert.ok(Math.abs(within - 0.6827) < 0.015, `P(|x| < sigma) = ${within}`);
  }
});

test('same seed, same noise; different seed, different noise', () => {
  const options = { noisetype: 'laplace', epsilon: 1, sensitivity: 1 } as const;
  const run = (seed: number | string) => applyDp(zeros(50), options, createRandom(seed));
  assert.equal(run('site-1/r1'), run('site-1/r1'));
  assert.equal(run(7), run(7));
  assert.not.equal(run('site-1/r1'), run('site-2/r1'));
  assert.not.equal(run(7), run(8));
  assert.not.equal(run(1), run('1'));
});

test('the generator is uniform in [0, 1) and an unseeded one reports a seed that replays it', () => {
  const random = createRandom('uniform');
  const values = Array.from({ length: DRAWS }, () => random.next());
  assert.ok(values.every((value) => value >= 0 && value < 1));
  const counts = new Array<number>(10).fill(0);
  for (const value of values) counts[Math.floor(value * 10)] = (counts[Math.floor(value * 10)] ?? 0) + 1;
  const expected = DRAWS / 10;
  const chiSquare = counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
  assert.ok(chiSquare < 27.9, `chi² ${chiSquare} over ${counts}`); // 9 degrees of freedom, p = 0.001

  const fresh = createRandom();
  const replay = createRandom(fresh.seed);
  const first = Array.from({ length: 5 }, () => fresh.next());
  assert.equal(Array.from({ length: 5 }, () => replay.next()), first);
  assert.not.equal(Array.from({ length: 5 }, () => createRandom().next()), first);
});

test.run();
