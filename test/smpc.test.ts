import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NumericTree } from '../src/computation/types.ts';
import { leaves, parseNumericJson, sameShape, serializeJson, zipLeaves } from '../src/protocol/payload.ts';
import { createRandom, type Random } from '../src/simulator/random.ts';
import {
  FIELD_PRIME,
  combineProductShares,
  decodeFixed,
  encodeFixed,
  encodeTree,
  resolveHolders,
  secureAggregate,
  shareProductTree,
  shareTree,
  sumShares,
  toField,
  type EncodedTree,
} from '../src/simulator/smpc.ts';

const bytes = (text: string) => new TextEncoder().encode(text);
const add = (shards: number, exponent = 8) => ({ operation: 'add', serialization: 'json', shards, exponent }) as const;
const multiply = (shards: number, exponent = 8) =>
  ({ operation: 'multiply', serialization: 'json', shards, exponent }) as const;

/** A model-like tree with `seed`-determined values in (-scale, scale). */
function randomModel(random: Random, scale: number): NumericTree {
  const value = () => (random.next() * 2 - 1) * scale;
  return { weights: [value(), value(), value(), value()], bias: value(), layers: [[value(), value()], [value()]] };
}

function plainSum(trees: readonly NumericTree[]): NumericTree {
  return zipLeaves<number, number>(trees, (values) => values.reduce((sum, value) => sum + value, 0));
}

function maxDifference(a: NumericTree, b: NumericTree): number {
  const left = leaves<number>(a);
  const right = leaves<number>(b);
  return Math.max(...left.map((value, index) => Math.abs(value - (right[index] ?? Number.NaN))));
}

// --- fixed point -------------------------------------------------------------------------------

test('fixed point keeps exactly `exponent` decimal digits, also for negatives and zero', () => {
  assert.is(encodeFixed(0, 8), 0n);
  assert.is(encodeFixed(-0, 8), 0n);
  assert.is(encodeFixed(1, 8), 100_000_000n);
  assert.is(encodeFixed(-1.5, 8), -150_000_000n);
  assert.is(encodeFixed(0.1 + 0.2, 8), 30_000_000n);
  assert.is(encodeFixed(123456.12345678, 8), 12345612345678n);
  assert.is(encodeFixed(-987654.87654321, 8), -98765487654321n);
  assert.is(decodeFixed(-98765487654321n, 8), -987654.87654321);
  assert.is(decodeFixed(5n, 8), 5e-8);
  assert.is(decodeFixed(-5n, 8), -5e-8);
  assert.is(decodeFixed(0n, 8), 0);
});

test('fixed point rounds half away from zero on the decimal digits', () => {
  assert.is(encodeFixed(1.005, 2), 101n); // 1.005 is 1.00499… in binary; its decimal form decides
  assert.is(encodeFixed(-1.005, 2), -101n);
  assert.is(encodeFixed(5e-9, 8), 1n);
  assert.is(encodeFixed(-5e-9, 8), -1n);
  assert.is(encodeFixed(4.9e-9, 8), 0n);
  assert.is(encodeFixed(1e-9, 8), 0n);
});

test('fixed point with exponent 0 rounds to integers', () => {
  assert.is(encodeFixed(2.5, 0), 3n);
  assert.is(encodeFixed(-2.5, 0), -3n);
  assert.is(encodeFixed(2.4, 0), 2n);
  assert.is(encodeFixed(-2.4, 0), -2n);
  assert.is(decodeFixed(-3n, 0), -3);
  assert.is(decodeFixed(encodeFixed(123456789, 0), 0), 123456789);
});

test('fixed point is exact for large values and values in exponent notation', () => {
  assert.is(encodeFixed(1e21, 8), 10n ** 29n);
  assert.is(encodeFixed(1.5e300, 8), 15n * 10n ** 307n);
  // 2^60 prints as 1152921504606847000: the decimal form is what gets encoded, and it decodes back to 2^60.
  assert.is(encodeFixed(-(2 ** 60), 8), -1152921504606847000n * 10n ** 8n);
  assert.is(encodeFixed(1.5e-7, 8), 15n);
  for (const value of [1e21, 1.5e300, -(2 ** 60), Number.MAX_SAFE_INTEGER, 1e-7, -3.25e-5]) {
    assert.is(decodeFixed(encodeFixed(value, 8), 8), value);
  }
});

test('fixed point round trip stays within half a unit of the last digit', () => {
  const random = createRandom('round-trip');
  for (const exponent of [0, 1, 3, 8, 12]) {
    for (let i = 0; i < 500; i += 1) {
      const value = (random.next() * 2 - 1) * 10 ** Math.floor(random.next() * 8);
      const back = decodeFixed(encodeFixed(value, exponent), exponent);
      const unit = 10 ** -exponent;
      assert.ok(Math.abs(back - value) <= unit / 2 + Math.abs(value) * 1e-15, `${value} at ${exponent}: ${back}`);
    }
  }
});

test('fixed point rejects non-finite numbers and bad exponents', () => {
  assert.throws(() => encodeFixed(Number.NaN, 8), /NaN/);
  assert.throws(() => encodeFixed(Number.POSITIVE_INFINITY, 8), /Infinity/);
  assert.throws(() => encodeFixed(1, -1), /exponent/);
  assert.throws(() => encodeFixed(1, 2.5), /exponent/);
  assert.throws(() => encodeTree({ a: [1, Number.NaN] }, 8), /\$\.a\[1\]/);
});

// --- payloads ------------------------------------------------------------------------------------

test('numeric JSON: numbers, arrays and objects of numbers parse; serialize round-trips', () => {
  const tree = parseNumericJson(bytes('{"a":[1,2.5,-3e-4],"b":{"c":[[0]]},"d":7}'), 'data');
  assert.equal(tree, { a: [1, 2.5, -3e-4], b: { c: [[0]] }, d: 7 });
  assert.equal(parseNumericJson(serializeJson(tree), 'data'), tree);
  assert.equal(parseNumericJson(bytes('[]'), 'data'), []);
  assert.is(parseNumericJson(bytes(' 42 '), 'data'), 42);
});

test('numeric JSON: a string, boolean or null is rejected with what and where', () => {
  const what = 'SMPC data from client 3 (memo r1.local)';
  assert.throws(
    () => parseNumericJson(bytes('{"a":[1,2,"x"]}'), what),
    (error: Error) =>
      error.message === 'SMPC data from client 3 (memo r1.local) has a string at $.a[2]; only numbers are allowed',
  );
  assert.throws(() => parseNumericJson(bytes('{"a":{"b c":true}}'), what), /a boolean at \$\.a\["b c"\]/);
  assert.throws(() => parseNumericJson(bytes('[1,[2,null]]'), what), /a null at \$\[1\]\[1\]/);
  assert.throws(() => parseNumericJson(bytes('"7"'), what), /a string at \$;/);
  assert.throws(() => parseNumericJson(bytes('[1e999]'), what), /too large for a double at \$\[0\]/);
});

test('numeric JSON: malformed, empty or non-UTF-8 bytes are rejected naming the data', () => {
  assert.throws(() => parseNumericJson(bytes('{"a":[1,2'), 'DP data from client 1'), /DP data from client 1 is not valid JSON/);
  assert.throws(() => parseNumericJson(bytes(''), 'DP data from client 1'), /DP data from client 1 is empty/);
  assert.throws(() => parseNumericJson(new Uint8Array([0x5b, 0xff, 0x5d]), 'DP data'), /DP data is not valid UTF-8/);
  assert.throws(() => parseNumericJson(bytes('['.repeat(1000) + ']'.repeat(1000)), 'DP data'), /nested deeper/);
});

test('a __proto__ key stays plain data', () => {
  const tree = parseNumericJson(bytes('{"__proto__":[1,2]}'), 'data');
  const sum = secureAggregate([tree, tree], add(0), 2);
  assert.ok(Object.hasOwn(sum as object, '__proto__'));
  assert.equal(JSON.parse(new TextDecoder().decode(serializeJson(sum))), JSON.parse('{"__proto__":[2,4]}'));
});

test('sameShape compares leaves, lengths and keys, not key order', () => {
  assert.ok(sameShape({ a: [1, 2], b: 3 }, { b: 0, a: [5, 6] }));
  assert.not.ok(sameShape({ a: [1, 2] }, { a: [1] }));
  assert.not.ok(sameShape({ a: 1 }, { b: 1 }));
  assert.not.ok(sameShape([1], { 0: 1 }));
  assert.not.ok(sameShape(1, [1]));
});

// --- secure aggregation: add ---------------------------------------------------------------------

test('shares summed per holder and combined decode to the plain sum (many client and shard counts)', () => {
  const random = createRandom('smpc-add');
  for (const clientCount of [1, 2, 3, 5, 8]) {
    for (const shards of new Set([0, 1, 2, clientCount].filter((n) => n <= clientCount))) {
      for (const exponent of [0, 3, 8]) {
        const contributions = Array.from({ length: clientCount }, () => randomModel(random, 1000));
        const result = secureAggregate(contributions, add(shards, exponent), clientCount);
        assert.ok(sameShape(result, contributions[0] as NumericTree));
        // Exactly the sum of the rounded contributions...
        const expected = zipLeaves<number, number>(contributions, (values) =>
          decodeFixed(values.reduce((sum, value) => sum + encodeFixed(value, exponent), 0n), exponent),
        );
        assert.equal(result, expected, `clients ${clientCount}, shards ${shards}, exponent ${exponent}`);
        // ...so within half a unit per contribution of the plain float sum.
        const tolerance = clientCount * 0.5 * 10 ** -exponent + 1e-9;
        assert.ok(maxDifference(result, plainSum(contributions)) <= tolerance);
      }
    }
  }
});

test('with up to two contributions the secure sum is within 10^-exponent of the plain sum', () => {
  // Each contribution is rounded once, by at most half a unit: n contributions, n/2 units at most.
  const random = createRandom('smpc-precision');
  for (const exponent of [0, 4, 8]) {
    for (let run = 0; run < 50; run += 1) {
      const contributions = [randomModel(random, 100), randomModel(random, 100)];
      const difference = maxDifference(secureAggregate(contributions, add(0, exponent), 2), plainSum(contributions));
      assert.ok(difference <= 10 ** -exponent + 1e-12, `${difference} at exponent ${exponent}`);
    }
  }
});

test('large values and negatives sum exactly', () => {
  const contributions = [{ x: [1e100, -5] }, { x: [2e100, 2.25] }, { x: [-1e100, 0] }];
  assert.equal(secureAggregate(contributions, add(0), 3), { x: [2e100, -2.75] });
});

test('shards: 0 means every client; more than the clients is an error', () => {
  assert.is(resolveHolders(0, 4), 4);
  assert.is(resolveHolders(undefined, 4), 4);
  assert.is(resolveHolders(2, 4), 2);
  assert.throws(() => resolveHolders(5, 4), /shards \(5\) exceeds the number of clients \(4\)/);
  assert.throws(() => secureAggregate([1, 2], add(3), 2), /shards \(3\) exceeds/);
  assert.throws(() => resolveHolders(-1, 4), /shards/);
  assert.throws(() => resolveHolders(1.5, 4), /shards/);
});

test('contributions of different shapes are rejected with the first differing path', () => {
  assert.throws(
    () => secureAggregate([{ w: [1, 2, 3] }, { w: [1, 2, 3] }, { w: [1, 2] }], add(0), 3),
    (error: Error) =>
      error.message ===
      'SMPC contributions differ in shape at $.w: contribution 1 has an array of 3, contribution 3 has an array of 2',
  );
  assert.throws(() => secureAggregate([{ a: 1, b: 2 }, { a: 1 }], add(0), 2), /at \$\.b: contribution 1 has a number, contribution 2 has nothing/);
  assert.throws(() => secureAggregate([{ a: [[1]] }, { a: [1] }], add(0), 2), /at \$\.a\[0\]/);
  assert.throws(() => secureAggregate([], add(0), 2), /at least one contribution/);
});

test('a sum that could overflow the field is refused, naming the contribution and path', () => {
  assert.throws(() => secureAggregate([{ a: [0, 1e300] }, { a: [0, 1] }], add(0), 2), /contribution 1 has 1e\+300 at \$\.a\[1\], too large/);
});

// --- what a holder sees --------------------------------------------------------------------------

test('additive shares sum back to the encoded value, and the same input shares differently each time', () => {
  const encoded = encodeTree({ a: [1.5, -2], b: 0 }, 8);
  const first = shareTree(encoded, 3);
  const second = shareTree(encoded, 3);
  assert.equal(sumShares(first), { a: [toField(150_000_000n), toField(-200_000_000n)], b: 0n });
  assert.equal(sumShares(second), sumShares(first));
  for (let holder = 0; holder < 3; holder += 1) {
    assert.not.equal(first[holder], second[holder], `holder ${holder} got the same share twice`);
  }
});

/** Where a field element falls among 16 equal buckets of [0, p). */
const bucket = (element: bigint) => Number((element * 16n) / FIELD_PRIME);

function chiSquare(counts: readonly number[]): number {
  const total = counts.reduce((sum, count) => sum + count, 0);
  const expected = total / counts.length;
  return counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
}

// chi² with 15 degrees of freedom exceeds 60 with probability below 1e-6 for uniform data.
const CHI_SQUARE_LIMIT = 60;

test('no share, and no set of fewer than all shares, reveals the input: uniform over the field', () => {
  const holders = 4;
  const draws = 3000;
  for (const value of [0, 42, -1e6]) {
    const encoded = toField(encodeFixed(value, 8));
    const single = new Array<number>(16).fill(0);
    const partialSum = new Array<number>(16).fill(0);
    let revealing = 0;
    for (let i = 0; i < draws; i += 1) {
      const shares = shareTree(encodeFixed(value, 8), holders) as bigint[];
      const [s0 = 0n, s1 = 0n, s2 = 0n] = shares;
      const threeOfFour = toField(s0 + s1 + s2);
      for (const share of [...shares, threeOfFour]) if (share === encoded) revealing += 1;
      single[bucket(s0)] = (single[bucket(s0)] ?? 0) + 1;
      partialSum[bucket(threeOfFour)] = (partialSum[bucket(threeOfFour)] ?? 0) + 1;
    }
    assert.is(revealing, 0, `a share of ${value} equalled its encoding`);
    assert.ok(chiSquare(single) < CHI_SQUARE_LIMIT, `holder 0's share of ${value} is not uniform: ${single}`);
    assert.ok(chiSquare(partialSum) < CHI_SQUARE_LIMIT, `3 of 4 shares of ${value} are not uniform: ${partialSum}`);
  }
});

test('shares of two different inputs are indistinguishable in distribution', () => {
  const draws = 3000;
  const histogram = (value: number) => {
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < draws; i += 1) {
      const [share = 0n] = shareTree(encodeFixed(value, 8), 2) as bigint[];
      counts[bucket(share)] = (counts[bucket(share)] ?? 0) + 1;
    }
    return counts;
  };
  const small = histogram(0);
  const large = histogram(1e9);
  // Two-sample chi² over 16 buckets (15 degrees of freedom).
  const statistic = small.reduce((sum, a, index) => {
    const b = large[index] ?? 0;
    return a + b === 0 ? sum : sum + (a - b) ** 2 / (a + b);
  }, 0);
  assert.ok(statistic < CHI_SQUARE_LIMIT, `${small} vs ${large}`);
});

// --- secure aggregation: multiply ----------------------------------------------------------------

test('multiply gives the element-wise product, negatives included', () => {
  const contributions = [{ a: [1.5, -2, 3] }, { a: [2, 4, -0.5] }, { a: [-1, 0.25, -2] }];
  for (const shards of [0, 1, 2]) {
    assert.equal(secureAggregate(contributions, multiply(shards), 3), { a: [-3, -2, 3] });
  }
});

test('multiply is the exact product of the rounded contributions', () => {
  const random = createRandom('smpc-multiply');
  for (const exponent of [0, 2, 8]) {
    const contributions = Array.from({ length: 4 }, () => randomModel(random, 10));
    const expected = zipLeaves<number, number>(contributions, (values) =>
      decodeFixed(values.reduce((product, value) => product * encodeFixed(value, exponent), 1n), exponent * 4),
    );
    assert.equal(secureAggregate(contributions, multiply(0, exponent), 4), expected);
  }
});

test('multiply: a zero anywhere gives 0, and no factor share reveals the zero', () => {
  assert.equal(secureAggregate([[0, 2, 3], [5, 0, 3], [5, 2, 3]], multiply(0), 3), [0, 0, 27]);
  assert.equal(secureAggregate([[1e-9], [5]], multiply(0), 2), [0]); // rounds to 0 at 8 digits
  for (let i = 0; i < 200; i += 1) {
    const shares = shareProductTree(encodeTree([0], 8), 3);
    for (const share of shares) {
      const [factor = 0n] = share.factors as bigint[];
      const [mask = 0n] = share.zeroMask as bigint[];
      assert.ok(factor !== 0n && mask !== 0n);
    }
    assert.not.equal((combineProductShares(shares).zeroMask as bigint[])[0], 0n);
  }
});

test('multiply shares of a non-zero value are fresh each time and combine to it', () => {
  const encoded: EncodedTree = encodeTree([2.5], 8);
  const first = shareProductTree(encoded, 3);
  const second = shareProductTree(encoded, 3);
  assert.equal(combineProductShares(first), combineProductShares(second));
  assert.equal(combineProductShares(first).factors, [250_000_000n]);
  assert.equal(combineProductShares(first).zeroMask, [0n]);
  first.forEach((share, holder) => assert.not.equal(share.factors, second[holder]?.factors));
});

test('multiply refuses factors whose product could overflow the field', () => {
  const many = Array.from({ length: 10 }, () => [1e8]);
  assert.throws(() => secureAggregate(many, multiply(0), 10), /too large to multiply securely over 10 contributions/);
});

test('an unknown operation is a clear error', () => {
  const options = { operation: 'max', serialization: 'json', shards: 0, exponent: 8 } as unknown as Parameters<
    typeof secureAggregate
  >[1];
  assert.throws(() => secureAggregate([1, 2], options, 2), /SMPC operation 'max' is not supported/);
});

test.run();
