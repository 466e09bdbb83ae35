import { mkdtemp, readFile, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor, toPromise } from 'xstate';
import type { Json } from '../src/computation/types.ts';
import { silentLogger } from '../src/log.ts';
import {
  decodeJson,
  decodeMessage,
  decodeNumeric,
  encodeBinary,
  encodeJson,
  isBinaryMessage,
  VectorWriter,
  type Message,
} from '../src/runtime/codec.ts';
import { createWorkload } from '../src/runtime/workload.ts';
import { SAMPLE_DIR } from '../src/simulator/federation.ts';

const text = (value: string) => new TextEncoder().encode(value);

/** `bytes` moved to an odd address, as a receiver may hold them inside a larger buffer. */
function misaligned(bytes: Uint8Array): Uint8Array {
  const shifted = new Uint8Array(bytes.byteLength + 1).subarray(1);
  shifted.set(bytes);
  return shifted;
}

function rejects(decode: () => unknown, message: RegExp) {
  assert.throws(decode, (error: unknown) => error instanceof Error && message.test(error.message));
}

test('JSON values round trip through the binary form unchanged', () => {
  const value: Json = {
    stage: 'means',
    columns: [{ column: 'bill_length_mm', count: 342, mean: 43.92192982456142, min: null, ok: true }],
    big: 2 ** 53 - 1,
    negative: -1.5e-300,
    unicode: 'Pinguin 🐧 \u202e',
    empty: { list: [], object: {} },
  };
  const bytes = encodeBinary(value);
  assert.ok(isBinaryMessage(bytes));
  assert.equal(decodeJson(bytes, 'the result'), value);
  assert.equal(decodeMessage(bytes, 'the result'), value);
});

test('a __proto__ key stays an ordinary key, and the object keeps its prototype', () => {
  const value = Object.fromEntries([['__proto__', 1], ['constructor', { prototype: 2 }]]) as Json;
  const decoded = decodeJson(encodeBinary(value), 'data') as Record<string, Json>;
  assert.ok(Object.hasOwn(decoded, '__proto__'));
  assert.is(decoded['__proto__'], 1);
  assert.is(Object.getPrototypeOf(decoded), Object.prototype);
  assert.equal(decoded['constructor'], { prototype: 2 });
});

test('Float64Array leaves come back as Float64Arrays, as views on the received bytes', () => {
  const weights = Float64Array.from({ length: 1000 }, (_, index) => Math.sin(index) * 1e6);
  const message = { layer: [weights, new Float64Array(0)], bias: new Float64Array([-0, Number.NaN, Infinity]), round: 3 };
  const bytes = encodeBinary(message);
  // Raw doubles, not one number at a time: little more than the vectors' own size.
  assert.ok(bytes.byteLength < weights.byteLength + 24 + 200, `${bytes.byteLength} bytes`);
  const decoded = decodeMessage(bytes, 'the model') as { layer: Float64Array[]; bias: Float64Array; round: number };
  const [first, second] = decoded.layer;
  assert.instance(first, Float64Array);
  assert.equal(Array.from(first ?? []), Array.from(weights));
  assert.is(first?.buffer, bytes.buffer, 'no copy');
  assert.is(second?.length, 0);
  assert.ok(Object.is(decoded.bias[0], -0) && Number.isNaN(decoded.bias[1]) && decoded.bias[2] === Infinity);
  assert.is(decoded.round, 3);
});

test('a VectorWriter fills its numbers straight into the message', () => {
  const bytes = encodeBinary({ sum: new VectorWriter(4, (into) => into.set([1, 2, 3, 4])), n: 2 });
  const decoded = decodeMessage(bytes, 'data') as { sum: Float64Array; n: number };
  assert.instance(decoded.sum, Float64Array);
  assert.equal(Array.from(decoded.sum), [1, 2, 3, 4]);
  assert.is(decoded.n, 2);
});

test('vectors at a misaligned address are copied and still read right', () => {
  const vector = Float64Array.from([1.25, -2.5, 1e-300]);
  const decoded = decodeMessage(misaligned(encodeBinary({ v: vector })), 'data') as { v: Float64Array };
  assert.instance(decoded.v, Float64Array);
  assert.equal(Array.from(decoded.v), Array.from(vector));
});

test('plain number arrays stay arrays; non-finite numbers become null as in JSON', () => {
  const decoded = decodeJson(encodeBinary([1, 2.5, Number.NaN, -Infinity] as Json), 'data');
  assert.equal(decoded, [1, 2.5, null, null]);
  assert.equal(JSON.parse(new TextDecoder().decode(encodeJson([1, 2.5, Number.NaN, -Infinity]))), decoded);
});

test('undefined values decode as JSON.stringify writes them: keys left out, array items null', () => {
  const value = { a: undefined, b: [1, undefined, 3], c: 2 } as unknown as Json;
  const viaJson = JSON.parse(new TextDecoder().decode(encodeJson(value))) as Json;
  assert.equal(decodeJson(encodeBinary(value), 'data'), viaJson);
  rejects(() => decodeNumeric(encodeBinary(value), 'data'), /a null at \$\.b\[1\]/);
});

test('either form decodes: JSON text is recognised by the absence of the magic prefix', () => {
  const value = { n: [1, 2, 3], sum: 6.5 };
  assert.is(isBinaryMessage(encodeJson(value)), false);
  assert.is(isBinaryMessage(text('')), false);
  assert.equal(decodeJson(encodeJson(value), 'data'), value);
  assert.equal(decodeNumeric(encodeJson(value), 'data'), value);
  assert.equal(decodeNumeric(encodeBinary(value), 'data'), value);
});

test('a numeric tree refuses what SMPC could not sum, naming the path', () => {
  const what = 'contribution 2 of round 1';
  rejects(() => decodeNumeric(encodeBinary({ a: [1, 'x'] }), what), /contribution 2 of round 1 .*a string at \$\.a\[1\]/);
  rejects(() => decodeNumeric(encodeBinary({ a: { 'b c': null } }), what), /a null at \$\.a\["b c"\]/);
  rejects(() => decodeNumeric(encodeBinary([Number.NaN]), what), /not finite at \$\[0\]/);
  rejects(() => decodeNumeric(encodeBinary({ v: new Float64Array(2) }), what), /a vector at \$\.v/);
  rejects(() => decodeJson(encodeBinary({ v: new Float64Array(2) }), what), /a vector at \$\.v/);
});

test('garbage after the magic prefix is refused with a clear error', () => {
  const valid = encodeBinary({ weights: Float64Array.from([1, 2, 3]), name: 'model' });
  const header = valid.subarray(0, 16);
  const cases: [Uint8Array, RegExp][] = [
    [valid.subarray(0, 4), /shorter than its header/],
    [Uint8Array.from([...header.subarray(0, 4), 9, ...header.subarray(5)]), /version 9 is not known/],
    [Uint8Array.from([...valid, 0, 0, 0, 0, 0, 0, 0, 0]), /8 bytes follow its last value/],
    [valid.subarray(0, valid.byteLength - 8), /does not fit/],
    [valid.subarray(0, 20), /runs past its end/],
    // An array header claiming 2^32 - 1 items in a 5-byte structure.
    [frame(Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff])), /not a valid binary message/],
    // 0xc1 is "never used" in MessagePack; msgpackr yields a marker object for it.
    [frame(Uint8Array.from([0xc1])), /only JSON values are allowed/],
    // A map with a number as key.
    [frame(Uint8Array.from([0x81, 0x01, 0x02])), /key that is not a string/],
    // A timestamp extension (a Date).
    [frame(Uint8Array.from([0xd6, 0xff, 0, 0, 0, 1])), /a Date at \$/],
    // 100 000 nested arrays.
    [frame(new Uint8Array(100_000).fill(0x91)), /not a valid binary message/],
  ];
  for (const [bytes, message] of cases) rejects(() => decodeMessage(bytes, 'the global result'), message);
  for (let length = 4; length < valid.byteLength; length++) {
    rejects(() => decodeMessage(valid.subarray(0, length), 'a prefix'), /a prefix is not a valid binary message/);
  }
});

/** A structure in the binary frame, for hand-made MessagePack. */
function frame(structure: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(Math.ceil((16 + structure.byteLength) / 8) * 8);
  bytes.set([0x00, 0x46, 0x43, 0x42, 1]);
  new DataView(bytes.buffer).setUint32(8, structure.byteLength, true);
  bytes.set(structure, 16);
  return bytes;
}

test('random bytes behind the magic prefix are refused, never a crash or a hang', () => {
  const magic = [0x00, 0x46, 0x43, 0x42, 1, 0, 0, 0];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(80), (tail, length) => {
      const bytes = Uint8Array.from([...magic, length, 0, 0, 0, 0, 0, 0, 0, ...tail]);
      try {
        decodeMessage(bytes, 'fuzz');
      } catch (error) {
        return error instanceof Error && /^fuzz is not a valid binary message/.test(error.message);
      }
      return true;
    }),
    { numRuns: 2000, seed: 7 },
  );
});

test('random messages round trip', () => {
  const leaf: fc.Arbitrary<Message> = fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
    fc.integer(),
    fc.string(),
    fc.boolean(),
    fc.constant(null),
    fc.float64Array({ maxLength: 20 }),
  );
  const tree = fc.letrec<{ node: Message }>((self) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      leaf,
      fc.array(self('node'), { maxLength: 4 }),
      fc.dictionary(fc.string(), self('node'), { maxKeys: 4 }),
    ),
  })).node;
  fc.assert(
    fc.property(tree, (value) => {
      const decoded = decodeMessage(encodeBinary(value), 'data');
      assert.equal(normalise(decoded), normalise(value));
    }),
    { numRuns: 300, seed: 11 },
  );
});

/** Float64Arrays as tagged number lists (NaN as a string), so uvu's equality can compare them. */
function normalise(value: Message): unknown {
  if (value instanceof Float64Array) return { vector: Array.from(value, (n) => (Number.isNaN(n) ? 'NaN' : n)) };
  if (Array.isArray(value)) return value.map(normalise);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, normalise(item as Message)]));
  }
  return value;
}

// --- which form the client sends -------------------------------------------------------------

async function siteWith(privacy: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fc-codec-'));
  await cp(join(SAMPLE_DIR, 'biscoe'), dir, { recursive: true });
  const config = join(dir, 'config.yml');
  await writeFile(config, `${await readFile(config, 'utf8')}\n${privacy}`);
  return dir;
}

async function firstContribution(privacy: string): Promise<Uint8Array> {
  const inputDir = await siteWith(privacy);
  const workload = createWorkload({ inputDir, outputDir: join(inputDir, 'out'), logger: silentLogger });
  const setup = { id: 'a', coordinator: false, clients: ['a', 'b'], coordinatorId: 'b' };
  const actor = createActor(workload.computeLocal, { input: { setup, round: 1, global: null } }).start();
  return (await toPromise(actor)).payload;
}

test('a contribution is binary without SMPC or DP, and JSON with either', async () => {
  assert.is(isBinaryMessage(await firstContribution('')), true);
  for (const privacy of ['  smpc: true', '  dp: {noisetype: laplace, epsilon: 1, sensitivity: 1}']) {
    const payload = await firstContribution(privacy);
    assert.is(isBinaryMessage(payload), false, privacy);
    assert.ok(typeof JSON.parse(new TextDecoder().decode(payload)) === 'object', privacy);
  }
});

test.run();
