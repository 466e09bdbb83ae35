/**
 * What the controllers do with `smpc` contributions: secure aggregation by secret sharing.
 *
 * 1. Each contribution's numbers become fixed-point integers keeping `exponent` decimal digits
 *    (exact, in BigInt), mapped into the prime field F_p with p = 2^521 − 1 (negatives as p − |x|).
 * 2. Each number is split into one share per holder (`shards` holders; 0 or absent = every client).
 *    Any set of fewer than all of a number's shares is uniformly distributed, whatever the number:
 *    a holder, or a coalition short of all holders, learns nothing from what it holds.
 * 3. Each holder combines, element-wise, the shares it holds (one per contribution).
 * 4. The holders' results are combined and decoded: only the aggregate is ever revealed.
 *
 * The shares use node:crypto randomness, never the seeded generator of `random.ts`.
 *
 * Why 2^521 − 1: a Mersenne prime comfortably larger than any realistic sum (about 6.9e156, i.e.
 * numbers up to ~1e148 at 8 digits). Sums and products are checked against it before sharing, so
 * a result never silently wraps around the field.
 *
 * Precision: every number is rounded once, half away from zero, to `exponent` digits; the field
 * arithmetic after that is exact. So the result is exactly the sum of the rounded contributions
 * and differs from the plain float sum by at most n · 0.5 · 10^-exponent for n contributions.
 *
 * `multiply` (experimental upstream) is supported: the element-wise product over contributions.
 * Non-zero numbers are shared multiplicatively in F_p* (h − 1 uniform non-zero factors and the
 * one that completes the product), each holder multiplies the factors it holds, and the product
 * of the holders' products is decoded by 10^(exponent · k) for k contributions. A zero has no
 * multiplicative sharing that hides it (some factor would have to be 0), so a zero is shared as
 * a random non-zero stand-in plus a *zero mask*: every number also carries an additively shared
 * mask, 0 for a non-zero number and a uniform non-zero field element for a zero. The holders sum
 * the masks; the sum is 0 when no contribution was 0 there, and otherwise non-zero except with
 * probability below 2^-520. So the result reveals that the product is 0, as it must, but not how
 * many or which contributors had a 0. Numbers that round to 0 at `exponent` digits count as 0,
 * and every factor is bounded so that the product of k of them stays inside the field.
 */
import { randomBytes } from 'node:crypto';
import type { NumericTree } from '../computation/types.ts';
import type { SmpcOptions } from '../protocol/types.ts';
import { assertSameShape, leaves, mapLeaves, zipLeaves, type Tree } from '../protocol/payload.ts';

/** The Mersenne prime 2^521 − 1. */
export const FIELD_PRIME = (1n << 521n) - 1n;
/** Field elements above this stand for negative numbers. */
const HALF_FIELD = (FIELD_PRIME - 1n) / 2n;
const FIELD_BITS = 521;
const FIELD_BYTES = Math.ceil(FIELD_BITS / 8);

export const DEFAULT_EXPONENT = 8;
/** More digits than a double holds are pointless; the cap keeps 10^exponent cheap. */
export const MAX_EXPONENT = 100;

/** A numeric tree after encoding: fixed-point integers, or field elements (shares, sums). */
export type EncodedTree = Tree<bigint>;

/** The SMPC options as they may come from a status: defaults allowed to be absent. */
export interface SmpcRequest {
  readonly operation: SmpcOptions['operation'];
  readonly serialization?: SmpcOptions['serialization'];
  readonly shards?: number | null;
  readonly exponent?: number | null;
}

// ---------------------------------------------------------------------------------------------
// Fixed-point encoding

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/;

function checkExponent(exponent: number): void {
  if (!Number.isSafeInteger(exponent) || exponent < 0 || exponent > MAX_EXPONENT) {
    throw new RangeError(`SMPC exponent must be an integer from 0 to ${MAX_EXPONENT}, got ${exponent}`);
  }
}

/**
 * `value` · 10^exponent as an exact integer, rounded half away from zero. The rounding works on
 * the number's shortest decimal form (what JSON shows), so 1.005 at 2 digits gives 101.
 */
export function encodeFixed(value: number, exponent: number): bigint {
  checkExponent(exponent);
  if (!Number.isFinite(value)) throw new RangeError(`Cannot encode ${value} as a fixed-point number`);
  const match = DECIMAL.exec(String(value));
  if (match === null) throw new RangeError(`Cannot read ${value} as a decimal number`);
  const [, sign = '', whole = '0', fraction = '', power = '0'] = match;
  const digits = BigInt(whole + fraction);
  const shift = Number(power) - fraction.length + exponent;
  let magnitude: bigint;
  if (shift >= 0) {
    magnitude = digits * 10n ** BigInt(shift);
  } else {
    const divisor = 10n ** BigInt(-shift);
    magnitude = digits / divisor;
    if (2n * (digits % divisor) >= divisor) magnitude += 1n;
  }
  return sign === '-' ? -magnitude : magnitude;
}

/** `value` / 10^exponent as the nearest double. */
export function decodeFixed(value: bigint, exponent: number): number {
  if (!Number.isSafeInteger(exponent) || exponent < 0) {
    throw new RangeError(`A fixed-point exponent must be an integer >= 0, got ${exponent}`);
  }
  if (value === 0n) return 0;
  if (exponent === 0) return Number(value);
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(exponent + 1, '0');
  const decimal = `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
  return Number(negative ? `-${decimal}` : decimal);
}

/** Encodes every number of the tree; `what` names the data in errors. */
export function encodeTree(tree: NumericTree, exponent: number, what = 'SMPC data'): EncodedTree {
  return mapLeaves<number, bigint>(tree, (value, path) => {
    if (!Number.isFinite(value)) throw new RangeError(`${what} has a non-finite number (${value}) at ${path}`);
    return encodeFixed(value, exponent);
  });
}

// ---------------------------------------------------------------------------------------------
// The field

/** A signed integer as a field element. */
export function toField(value: bigint): bigint {
  const reduced = value % FIELD_PRIME;
  return reduced < 0n ? reduced + FIELD_PRIME : reduced;
}

/** A field element back to the signed integer it stands for. */
export function fromField(element: bigint): bigint {
  return element > HALF_FIELD ? element - FIELD_PRIME : element;
}

/**
 * Random bytes are drawn from node:crypto in blocks: one call per field element cost more than
 * all the field arithmetic of a large aggregate. Each block's bytes are used once.
 */
const RANDOM_BLOCK = FIELD_BYTES * 1024;
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/** Uniform in [0, p), from node:crypto, by rejection (no modulo bias). */
export function randomFieldElement(): bigint {
  for (;;) {
    if (randomOffset + FIELD_BYTES > randomPool.byteLength) {
      randomPool = randomBytes(RANDOM_BLOCK);
      randomOffset = 0;
    }
    const start = randomOffset;
    randomOffset += FIELD_BYTES;
    randomPool[start] = (randomPool[start] ?? 0) & ((1 << (FIELD_BITS % 8 || 8)) - 1);
    const candidate = BigInt(`0x${randomPool.toString('hex', start, start + FIELD_BYTES)}`);
    if (candidate < FIELD_PRIME) return candidate;
  }
}

/** Uniform in [1, p). */
export function randomNonZeroFieldElement(): bigint {
  for (;;) {
    const candidate = randomFieldElement();
    if (candidate !== 0n) return candidate;
  }
}

/** The multiplicative inverse of a non-zero element (extended Euclid). */
function inverse(element: bigint): bigint {
  let [oldRemainder, remainder] = [toField(element), FIELD_PRIME];
  let [oldCoefficient, coefficient] = [1n, 0n];
  while (remainder !== 0n) {
    const quotient = oldRemainder / remainder;
    [oldRemainder, remainder] = [remainder, oldRemainder - quotient * remainder];
    [oldCoefficient, coefficient] = [coefficient, oldCoefficient - quotient * coefficient];
  }
  if (oldRemainder !== 1n) throw new RangeError('0 has no multiplicative inverse');
  return toField(oldCoefficient);
}

// ---------------------------------------------------------------------------------------------
// Holders

/**
 * How many holders the shares go to: `shards`, or every client when it is 0 or absent. One holder
 * is accepted, as the platform accepts it, but that holder then sees every number in the clear.
 */
export function resolveHolders(shards: number | null | undefined, clientCount: number): number {
  if (!Number.isSafeInteger(clientCount) || clientCount < 1) {
    throw new RangeError(`SMPC needs at least one client, got a client count of ${clientCount}`);
  }
  if (shards === undefined || shards === null || shards === 0) return clientCount;
  if (!Number.isSafeInteger(shards) || shards < 0) {
    throw new RangeError(`SMPC shards must be a whole number >= 0 (0 = every client), got ${shards}`);
  }
  if (shards > clientCount) {
    throw new RangeError(`SMPC shards (${shards}) exceeds the number of clients (${clientCount})`);
  }
  return shards;
}

function checkHolders(holders: number): void {
  if (!Number.isSafeInteger(holders) || holders < 1) {
    throw new RangeError(`Secret sharing needs at least one holder, got ${holders}`);
  }
}

/** `count` trees of `encoded`'s shape filled with fresh draws. */
function randomTrees(encoded: EncodedTree, count: number, draw: () => bigint): EncodedTree[] {
  return Array.from({ length: count }, () => mapLeaves<bigint, bigint>(encoded, draw));
}

/**
 * Additive sharing: one tree per holder, whose field elements sum (mod p) to the encoded tree.
 * Any fewer than `holders` of them are independent and uniform in F_p, whatever the input.
 */
export function shareTree(encoded: EncodedTree, holders: number): EncodedTree[] {
  checkHolders(holders);
  const random = randomTrees(encoded, holders - 1, randomFieldElement);
  const completing = zipLeaves<bigint, bigint>([encoded, ...random], ([value = 0n, ...shares]) =>
    toField(shares.reduce((rest, share) => rest - share, value)),
  );
  return [...random, completing];
}

/** Element-wise sum mod p of trees of the same shape: a holder's work, and the final combination. */
export function sumShares(trees: readonly EncodedTree[]): EncodedTree {
  return zipLeaves<bigint, bigint>(trees, (values) => toField(values.reduce((sum, value) => sum + value, 0n)));
}

/** What one holder holds of a multiplicatively shared tree. */
export interface ProductShare {
  /** Multiplicative shares in F_p* (a zero's are shares of a random non-zero stand-in). */
  readonly factors: EncodedTree;
  /** Additive shares of the zero mask: 0 for a non-zero number, random non-zero for a zero. */
  readonly zeroMask: EncodedTree;
}

/**
 * Multiplicative sharing (see the module comment): one share per holder; the factors multiply
 * (mod p) to the encoded number when it is non-zero, and the zero masks sum to 0 exactly then.
 */
export function shareProductTree(encoded: EncodedTree, holders: number): ProductShare[] {
  checkHolders(holders);
  const targets = mapLeaves<bigint, bigint>(encoded, (value) => (value === 0n ? randomNonZeroFieldElement() : toField(value)));
  const random = randomTrees(encoded, holders - 1, randomNonZeroFieldElement);
  const completing = zipLeaves<bigint, bigint>([targets, ...random], ([target = 1n, ...shares]) => {
    const product = shares.reduce((acc, share) => (acc * share) % FIELD_PRIME, 1n);
    return (target * inverse(product)) % FIELD_PRIME;
  });
  const factors = [...random, completing];
  const masks = shareTree(
    mapLeaves<bigint, bigint>(encoded, (value) => (value === 0n ? randomNonZeroFieldElement() : 0n)),
    holders,
  );
  return masks.map((zeroMask, holder) => ({ factors: factors[holder] as EncodedTree, zeroMask }));
}

/** Element-wise product of the factors and sum of the zero masks: a holder's work, and the final combination. */
export function combineProductShares(shares: readonly ProductShare[]): ProductShare {
  return {
    factors: zipLeaves<bigint, bigint>(
      shares.map((share) => share.factors),
      (values) => values.reduce((product, value) => (product * value) % FIELD_PRIME, 1n),
    ),
    zeroMask: sumShares(shares.map((share) => share.zeroMask)),
  };
}

/** The combined sums of all holders, decoded to numbers. */
export function decodeSum(combined: EncodedTree, exponent: number): NumericTree {
  return mapLeaves<bigint, number>(combined, (element) => decodeFixed(fromField(element), exponent));
}

/** The combined products of all holders over `count` contributions, decoded to numbers. */
export function decodeProduct(combined: ProductShare, exponent: number, count: number): NumericTree {
  return zipLeaves<bigint, number>([combined.factors, combined.zeroMask], ([factor = 0n, mask = 0n]) =>
    mask === 0n ? decodeFixed(fromField(factor), exponent * count) : 0,
  );
}

// ---------------------------------------------------------------------------------------------
// The whole aggregation

/**
 * What shareTree and sumShares do, number by number over the trees' leaves (shapes are checked
 * once, up front): each contribution's number is split into one additive share per holder, each
 * holder adds up the shares it holds, and the holders' sums are combined. No share outlives the
 * number it belongs to, so a large aggregate needs no tree of shares per holder.
 */
function secureSum(encoded: readonly EncodedTree[], holders: number): EncodedTree {
  checkHolders(holders);
  const [first] = encoded;
  if (first === undefined) throw new Error('SMPC needs at least one contribution');
  const numbers = encoded.map((tree) => leaves(tree));
  const combined = new Array<bigint>(numbers[0]?.length ?? 0);
  const held = new Array<bigint>(holders);
  for (let index = 0; index < combined.length; index++) {
    held.fill(0n);
    for (const contribution of numbers) {
      let rest = contribution[index] ?? 0n;
      for (let holder = 0; holder < holders - 1; holder++) {
        const share = randomFieldElement();
        held[holder] = (held[holder] ?? 0n) + share;
        rest -= share;
      }
      held[holders - 1] = (held[holders - 1] ?? 0n) + toField(rest);
    }
    let total = 0n;
    for (const sum of held) total += toField(sum ?? 0n);
    combined[index] = toField(total);
  }
  let next = 0;
  return mapLeaves<bigint, bigint>(first, () => combined[next++] ?? 0n);
}

function limitText(limit: bigint, exponent: number): string {
  return decodeFixed(limit, exponent).toPrecision(3);
}

/** Every encoded number must satisfy |x| <= limit, so that the combined result cannot wrap. */
function checkMagnitudes(encoded: readonly EncodedTree[], limit: bigint, exponent: number, why: string): void {
  encoded.forEach((tree, index) => {
    mapLeaves<bigint, bigint>(tree, (value, path) => {
      if (value > limit || -value > limit) {
        throw new RangeError(
          `SMPC contribution ${index + 1} has ${decodeFixed(value, exponent)} at ${path}, too large to ${why}: ` +
            `the magnitude must stay at or below ${limitText(limit, exponent)}`,
        );
      }
      return value;
    });
  });
}

/**
 * The element-wise sum (or, for `multiply`, product) of the contributions, computed the way the
 * controllers do it: encode, share over the holders, combine per holder, combine the holders,
 * decode. `clientCount` is the number of clients in the run (the default number of holders).
 */
export function secureAggregate(
  contributions: readonly NumericTree[],
  options: SmpcOptions | SmpcRequest,
  clientCount: number,
): NumericTree {
  const operation: string = options.operation;
  if (operation !== 'add' && operation !== 'multiply') {
    throw new Error(`SMPC operation '${operation}' is not supported: expected 'add' or 'multiply'`);
  }
  if (options.serialization !== undefined && options.serialization !== 'json') {
    throw new Error(`SMPC serialization '${String(options.serialization)}' is not supported: expected 'json'`);
  }
  const exponent = options.exponent ?? DEFAULT_EXPONENT;
  checkExponent(exponent);
  const holders = resolveHolders(options.shards, clientCount);

  const [first] = contributions;
  if (first === undefined) throw new Error('SMPC needs at least one contribution');
  contributions.forEach((contribution, index) => {
    if (index > 0) assertSameShape(first, contribution, 'SMPC contributions', 'contribution 1', `contribution ${index + 1}`);
  });
  const encoded = contributions.map((contribution, index) =>
    encodeTree(contribution, exponent, `SMPC contribution ${index + 1}`),
  );
  const count = BigInt(encoded.length);

  if (operation === 'add') {
    checkMagnitudes(encoded, HALF_FIELD / count, exponent, 'sum securely');
    return decodeSum(secureSum(encoded, holders), exponent);
  }

  // (2^b − 1)^k <= 2^520 − 1 = HALF_FIELD when b·k <= 520.
  const bits = BigInt(Math.floor((FIELD_BITS - 1) / encoded.length));
  checkMagnitudes(encoded, (1n << bits) - 1n, exponent, `multiply securely over ${encoded.length} contributions`);
  const shares = encoded.map((tree) => shareProductTree(tree, holders));
  const perHolder = Array.from({ length: holders }, (_, holder) =>
    combineProductShares(shares.map((ofContribution) => ofContribution[holder] as ProductShare)),
  );
  return decodeProduct(combineProductShares(perHolder), exponent, encoded.length);
}

