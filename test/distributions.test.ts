import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { erfc, logGamma, normalTwoSidedP, tTwoSidedP } from '../src/computation/distributions.ts';

function assertRelative(actual: number, expected: number, tolerance: number, label: string): void {
  const error = Math.abs(actual - expected) / Math.abs(expected);
  assert.ok(error <= tolerance, `${label}: ${actual} vs ${expected} (relative error ${error.toExponential(2)})`);
}

const T_VALUES = [0.01, 0.5, 1, 2, 3.5, 10, 100, 1e4];

test('t with 1 degree of freedom (Cauchy): p = 2/π · atan(1/|t|)', () => {
  for (const t of T_VALUES) assertRelative(tTwoSidedP(t, 1), (2 / Math.PI) * Math.atan(1 / t), 1e-13, `t = ${t}`);
});

test('t with 2 degrees of freedom: p = 2 / (s (s + |t|)), s = √(2 + t²)', () => {
  for (const t of T_VALUES) {
    const s = Math.sqrt(2 + t * t);
    assertRelative(tTwoSidedP(-t, 2), 2 / (s * (s + t)), 1e-13, `t = ${t}`);
  }
});

test('t with 3 degrees of freedom: p = 1 - 2/π (u/(1 + u²) + atan u), u = |t|/√3', () => {
  for (const t of [0.01, 0.5, 1, 2, 3.5]) {
    const u = t / Math.sqrt(3);
    assertRelative(tTwoSidedP(t, 3), 1 - (2 / Math.PI) * (u / (1 + u * u) + Math.atan(u)), 1e-12, `t = ${t}`);
  }
});

test("t quantiles as published: qt(0.975, 10) = 2.228139, qt(0.995, 30) = 2.749996", () => {
  assertRelative(tTwoSidedP(2.228138851986274, 10), 0.05, 1e-12, 'df 10');
  assertRelative(tTwoSidedP(2.749996, 30), 0.01, 1e-5, 'df 30');
});

test('t approaches the normal for many degrees of freedom, and p = 1 at t = 0', () => {
  for (const z of [0.5, 2, 4]) assertRelative(tTwoSidedP(z, 1e7), normalTwoSidedP(z), 1e-5, `z = ${z}`);
  assert.is(tTwoSidedP(0, 5), 1);
  assert.ok(Number.isNaN(tTwoSidedP(1, 0)));
  assert.ok(Number.isNaN(tTwoSidedP(Number.NaN, 3)));
});

test('normal two-sided p values as published', () => {
  assertRelative(normalTwoSidedP(1.959963984540054), 0.05, 1e-14, 'z = 1.96');
  assertRelative(normalTwoSidedP(-1), 0.31731050786291415, 1e-14, 'z = 1');
  assertRelative(normalTwoSidedP(3), 0.0026997960632601866, 1e-13, 'z = 3');
  assertRelative(normalTwoSidedP(10), 2 * 7.619853024160527e-24, 1e-13, 'z = 10');
  assert.is(normalTwoSidedP(0), 1);
});

test('erfc is continuous where the series hands over to the continued fraction', () => {
  const below = erfc(1.5 - 1e-12);
  const above = erfc(1.5);
  assertRelative(below, above, 1e-11, 'erfc at 1.5');
  assertRelative(erfc(-0.5), 2 - erfc(0.5), 1e-15, 'erfc(-x) = 2 - erfc(x)');
});

test('ln Γ at integers and halves', () => {
  let factorial = 1;
  for (let n = 1; n <= 20; n++) {
    assert.ok(Math.abs(logGamma(n) - Math.log(factorial)) < 1e-13 * Math.max(1, Math.log(factorial)), `ln Γ(${n})`);
    factorial *= n;
  }
  assert.ok(Math.abs(logGamma(0.5) - 0.5 * Math.log(Math.PI)) < 1e-14);
  assertRelative(logGamma(1000.5), 1000 * Math.log(1000.5) - 1000.5 + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * 1000.5), 1e-14, 'Stirling at 1000.5');
});

test.run();
