/**
 * A small seeded pseudo-random generator, so that the simulator's DP noise can be replayed from a
 * seed. It is xoshiro128** (Blackman and Vigna) with its four state words expanded from the seed
 * by splitmix32.
 *
 * It is NOT a cryptographic generator: never use it for SMPC shares or anything that must stay
 * secret (those take node:crypto). DP noise in a simulator only has to have the right
 * distribution and be reproducible.
 */
import { randomBytes } from 'node:crypto';

export interface Random {
  /** The seed this generator started from; `createRandom(random.seed)` replays the same stream. */
  readonly seed: number | string;
  /** Uniform in [0, 1), with 53 random bits. */
  next(): number;
  /** A draw from Laplace(0, scale): density exp(-|x|/scale) / (2·scale), mean |x| = scale. */
  laplace(scale: number): number;
  /** A draw from Normal(0, sigma²). */
  gaussian(sigma: number): number;
}

const GOLDEN_GAMMA = 0x9e3779b9;
const TWO_POW_26 = 2 ** 26;
const TWO_POW_53 = 2 ** 53;

/** A splitmix32 step: advances `state` and returns a well-mixed 32-bit word. */
function splitmix32(state: { value: number }): number {
  state.value = (state.value + GOLDEN_GAMMA) | 0;
  let z = state.value;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * The seed as 32-bit words. Numbers go through their float64 bits, so every distinct number
 * (1, 1.5, 2^40) gives a distinct stream; strings go through their UTF-8 bytes. A tag word keeps
 * the number 1 and the string "1" apart.
 */
function seedWords(seed: number | string): number[] {
  if (typeof seed === 'number') {
    if (!Number.isFinite(seed)) throw new RangeError(`A random seed must be a finite number, got ${seed}`);
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, seed === 0 ? 0 : seed); // -0 and 0 are the same seed
    return [1, view.getUint32(0), view.getUint32(4)];
  }
  const bytes = new TextEncoder().encode(seed);
  const words = [2, bytes.length];
  for (let i = 0; i < bytes.length; i += 4) {
    words.push(((bytes[i] ?? 0) | ((bytes[i + 1] ?? 0) << 8) | ((bytes[i + 2] ?? 0) << 16) | ((bytes[i + 3] ?? 0) << 24)) >>> 0);
  }
  return words;
}

/** Folds the seed words into four xoshiro state words (never all zero: splitmix32 output words). */
function initialState(seed: number | string): Uint32Array {
  const mixer = { value: 0 };
  for (const word of seedWords(seed)) {
    mixer.value ^= word;
    mixer.value = splitmix32(mixer);
  }
  const state = new Uint32Array(4);
  for (let i = 0; i < 4; i += 1) state[i] = splitmix32(mixer);
  if (state.every((word) => word === 0)) state[0] = GOLDEN_GAMMA;
  return state;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * A generator seeded with `seed`, or, without one, with a fresh seed from node:crypto (readable
 * back as `random.seed`, so a run can be replayed).
 */
export function createRandom(seed?: number | string): Random {
  const actualSeed = seed ?? randomBytes(4).readUInt32BE(0);
  const s = initialState(actualSeed);

  const nextUint32 = (): number => {
    const s0 = s[0] ?? 0;
    const s1 = s[1] ?? 0;
    const s2 = s[2] ?? 0;
    const s3 = s[3] ?? 0;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    const n2 = s2 ^ s0;
    const n3 = s3 ^ s1;
    s[1] = s1 ^ n2;
    s[0] = s0 ^ n3;
    s[2] = n2 ^ t;
    s[3] = rotl(n3, 11);
    return result;
  };

  const next = (): number => {
    const high = nextUint32() >>> 5; // 27 bits
    const low = nextUint32() >>> 6; // 26 bits
    return (high * TWO_POW_26 + low) / TWO_POW_53;
  };

  const checkScale = (name: string, scale: number): void => {
    if (!(Number.isFinite(scale) && scale >= 0)) {
      throw new RangeError(`The ${name} of a noise distribution must be a finite number >= 0, got ${scale}`);
    }
  };

  return {
    seed: actualSeed,
    next,
    laplace(scale) {
      checkScale('Laplace scale', scale);
      // A random sign times an Exp(1/scale) magnitude; 1 - next() is in (0, 1], so the log is finite.
      const negative = next() < 0.5;
      const magnitude = -scale * Math.log(1 - next());
      return negative ? -magnitude : magnitude;
    },
    gaussian(sigma) {
      checkScale('Gaussian sigma', sigma);
      // Box–Muller; u1 in (0, 1] keeps the log finite.
      const u1 = 1 - next();
      const u2 = next();
      return sigma * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    },
  };
}
