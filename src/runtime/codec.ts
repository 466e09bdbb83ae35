/**
 * The two forms a message between sites takes on the wire, and telling them apart.
 *
 * - JSON (UTF-8 text): what SMPC and DP demand, since the controllers parse and rewrite those
 *   payloads; also used for gather rounds. A vector of doubles as text is about 2.5 times its
 *   binary size, and slow to write and parse, so nothing else uses it.
 * - Binary: a short magic prefix, the value's structure as MessagePack (msgpackr), then every
 *   Float64Array leaf as raw little-endian doubles, each 8-byte aligned. A receiver gets those
 *   leaves as views on the received bytes, not as copies, so a large vector costs its size once.
 *   Such a view shares memory with the message the machine keeps: read it, never write to it.
 *
 * The magic starts with a NUL byte, which no JSON text can start with, so either form is
 * recognised from its first bytes. Decoding never trusts the bytes: anything malformed is an
 * Error that names `what` was being decoded and why, never a crash or a silently odd value.
 */
import { addExtension, Packr, Unpackr } from 'msgpackr';
import type { Json, NumericTree } from '../computation/types.ts';
import { indexPath, keyPath, MAX_DEPTH, parseNumericJson } from '../protocol/payload.ts';

/** What a binary message can hold: JSON values, and Float64Array leaves for large vectors. */
export type Message =
  | Json
  | Float64Array
  | readonly Message[]
  | { readonly [key: string]: Message };

/**
 * A vector that is written straight into the message being encoded, so a large result exists
 * once (in the message) instead of twice (computed, then copied in). It decodes as a Float64Array.
 */
export class VectorWriter {
  constructor(
    readonly length: number,
    readonly write: (into: Float64Array) => void,
  ) {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`a vector cannot have ${length} numbers`);
  }
}

/** What encodeBinary takes: a message, whose vectors may also be written in place. */
export type Outgoing =
  | Message
  | VectorWriter
  | readonly Outgoing[]
  | { readonly [key: string]: Outgoing };

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

const encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function encodeJson(value: Json): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function parseJsonText(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch (error) {
    throw new Error(`${what} is not valid UTF-8 JSON (${bytes.byteLength} bytes)`, { cause: error });
  }
}

// ---------------------------------------------------------------------------------------------
// Binary layout
//
//   0   4  magic: 00 'F' 'C' 'B'
//   4   1  version (1)
//   5   3  zero
//   8   4  length S of the structure, unsigned little-endian
//   12  4  zero
//   16  S  the structure: MessagePack, with each Float64Array as extension VECTOR_TYPE whose
//          8 data bytes are its element count (a little-endian double)
//   then zero padding to a multiple of 8, then the vectors' doubles, in the order the
//   structure names them, back to back; nothing after the last one.
// ---------------------------------------------------------------------------------------------

const MAGIC = [0x00, 0x46, 0x43, 0x42] as const;
const VERSION = 1;
const HEADER_BYTES = 16;
/** MessagePack extension type of a vector reference (an application type: 0..127). */
const VECTOR_TYPE = 0x46;

const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

const align8 = (offset: number) => Math.ceil(offset / 8) * 8;

/** True when `bytes` carry the binary form (by its magic prefix); false for anything else. */
export function isBinaryMessage(bytes: Uint8Array): boolean {
  return bytes.byteLength >= MAGIC.length && MAGIC.every((byte, index) => bytes[index] === byte);
}

/**
 * msgpackr calls an extension's pack/unpack synchronously while it encodes or decodes, so the
 * one encode or decode in progress is kept here (JavaScript runs one at a time).
 */
let packing: (Float64Array | VectorWriter)[] | null = null;
let unpacking: { readonly bytes: Uint8Array; next: number } | null = null;

function packVector(vector: Float64Array | VectorWriter): Uint8Array {
  if (packing === null) throw new Error('vectors are packed by encodeBinary only');
  packing.push(vector);
  const count = new Uint8Array(8);
  new DataView(count.buffer).setFloat64(0, vector.length, true);
  return count;
}

addExtension({ Class: VectorWriter, type: VECTOR_TYPE, pack: packVector });
addExtension({
  Class: Float64Array,
  type: VECTOR_TYPE,
  pack: packVector,
  unpack(data: Uint8Array): Float64Array {
    if (unpacking === null) throw new Error('a vector outside a binary message');
    if (data.byteLength !== 8) throw new Error(`a vector reference of ${data.byteLength} bytes instead of 8`);
    const count = new DataView(data.buffer, data.byteOffset, 8).getFloat64(0, true);
    const { bytes, next } = unpacking;
    const size = count * 8;
    if (!Number.isSafeInteger(count) || count < 0 || next + size > bytes.byteLength) {
      throw new Error(`a vector of ${count} numbers does not fit in the ${bytes.byteLength - next} bytes left`);
    }
    unpacking.next = next + size;
    const start = bytes.byteOffset + next;
    if (LITTLE_ENDIAN && start % 8 === 0) return new Float64Array(bytes.buffer, start, count);
    // Not aligned in memory (or a big-endian host): a copy is the only way to read it.
    const view = new DataView(bytes.buffer, start, size);
    return Float64Array.from({ length: count }, (_, index) => view.getFloat64(index * 8, true));
  },
});

// Records and other msgpackr-only forms are off: plain MessagePack maps, arrays and scalars.
const packr = new Packr({ useRecords: false, moreTypes: false });
// Maps decode as Map, so a key such as `__proto__` is kept as it is and made an own property below.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType: 'number' });

/**
 * Encodes a message in the binary form. Numbers in plain arrays and objects are MessagePack
 * numbers; a Float64Array is copied once, as raw doubles, into the result.
 */
export function encodeBinary(value: Outgoing): Uint8Array {
  const vectors: (Float64Array | VectorWriter)[] = [];
  let structure: Uint8Array;
  packing = vectors;
  try {
    structure = packr.pack(value);
  } finally {
    packing = null;
  }
  const vectorsStart = align8(HEADER_BYTES + structure.byteLength);
  const total = vectorsStart + vectors.reduce((sum, vector) => sum + vector.length * 8, 0);
  // Its own ArrayBuffer (offset 0), so the vectors in it are aligned for whoever reads it here.
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  new DataView(out.buffer).setUint32(8, structure.byteLength, true);
  out.set(structure, HEADER_BYTES);
  let offset = vectorsStart;
  for (const vector of vectors) {
    if (LITTLE_ENDIAN && vector instanceof VectorWriter) {
      vector.write(new Float64Array(out.buffer, offset, vector.length));
    } else if (LITTLE_ENDIAN && vector instanceof Float64Array) {
      out.set(new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength), offset);
    } else {
      const numbers = vector instanceof Float64Array ? vector : writtenOut(vector);
      const view = new DataView(out.buffer, offset, numbers.byteLength);
      numbers.forEach((number, index) => view.setFloat64(index * 8, number, true));
    }
    offset += vector.length * 8;
  }
  return out;
}

function writtenOut(writer: VectorWriter): Float64Array {
  const numbers = new Float64Array(writer.length);
  writer.write(numbers);
  return numbers;
}

/** What the decoded tree may hold, and how to report what it may not. */
interface Rules {
  readonly vectors: boolean;
  /** Numeric trees: finite numbers, arrays and objects only. */
  readonly numeric: boolean;
}

class Malformed extends Error {}

function kindOf(value: unknown): string {
  if (value === null) return 'a null';
  if (typeof value === 'number') return 'a number that is not finite';
  if (value instanceof Float64Array) return 'a vector';
  if (typeof value === 'object') return `a ${value.constructor?.name ?? 'null-prototype object'}`;
  return `a ${typeof value}`;
}

/**
 * Checks a decoded structure and turns its Maps into plain objects (own properties, so a key
 * such as `__proto__` stays data). What JSON.stringify would have changed is changed the same
 * way, so both forms of a message decode alike: a non-finite number or an undefined array item
 * becomes null (an error in a numeric tree, as null is there), a key whose value is undefined
 * is left out.
 */
function toTree(value: unknown, rules: Rules, path: string, depth: number): Message {
  if (depth > MAX_DEPTH) throw new Malformed(`it is nested deeper than ${MAX_DEPTH} levels at ${path}`);
  if (value === undefined) return toTree(null, rules, path, depth);
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value;
    if (rules.numeric) throw new Malformed(`it has ${kindOf(value)} at ${path}; only finite numbers are allowed`);
    return null;
  }
  if (Array.isArray(value)) {
    const items: unknown[] = value;
    for (let index = 0; index < items.length; index++) {
      items[index] = toTree(items[index], rules, indexPath(path, index), depth + 1);
    }
    return items as Message[];
  }
  if (value instanceof Map) {
    const entries: [string, Message][] = [];
    for (const [key, item] of value as Map<unknown, unknown>) {
      if (typeof key !== 'string') throw new Malformed(`it has a key that is not a string at ${path}`);
      if (item === undefined) continue;
      entries.push([key, toTree(item, rules, keyPath(path, key), depth + 1)]);
    }
    return Object.fromEntries(entries);
  }
  if (value instanceof Float64Array && rules.vectors) return value;
  if (!rules.numeric && (value === null || typeof value === 'boolean' || typeof value === 'string')) return value;
  throw new Malformed(`it has ${kindOf(value)} at ${path}; only ${rules.numeric ? 'numbers' : 'JSON values'} are allowed`);
}

function decodeBinary(bytes: Uint8Array, what: string, rules: Rules): Message {
  const fail = (reason: string): never => {
    throw new Error(`${what} is not a valid binary message (${bytes.byteLength} bytes): ${reason}`);
  };
  if (bytes.byteLength < HEADER_BYTES) fail('it is shorter than its header');
  const header = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  if (header.getUint8(4) !== VERSION) fail(`version ${header.getUint8(4)} is not known (known: ${VERSION})`);
  const structureEnd = HEADER_BYTES + header.getUint32(8, true);
  if (structureEnd > bytes.byteLength) fail('its structure runs past its end');
  const vectorsStart = align8(structureEnd);
  if (vectorsStart > bytes.byteLength) fail('its padding is cut short');
  const state = { bytes, next: vectorsStart };
  let decoded: unknown;
  unpacking = state;
  try {
    decoded = unpackr.unpack(bytes.subarray(HEADER_BYTES, structureEnd));
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  } finally {
    unpacking = null;
  }
  if (state.next !== bytes.byteLength) fail(`${bytes.byteLength - state.next} bytes follow its last value`);
  try {
    return toTree(decoded, rules, '$', 0);
  } catch (error) {
    if (error instanceof Malformed) return fail(error.message);
    // A stack overflow on absurd nesting, say: still the message's fault, not ours.
    return fail(error instanceof Error ? error.message : String(error));
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding either form
// ---------------------------------------------------------------------------------------------

/** A message of either form holding JSON values only (a global result, a gather message). */
export function decodeJson(bytes: Uint8Array, what: string): Json {
  if (isBinaryMessage(bytes)) return decodeBinary(bytes, what, { vectors: false, numeric: false }) as Json;
  return parseJsonText(bytes, what) as Json;
}

/** A message of either form; Float64Array leaves are allowed. */
export function decodeMessage(bytes: Uint8Array, what: string): Message {
  if (isBinaryMessage(bytes)) return decodeBinary(bytes, what, { vectors: true, numeric: false });
  return parseJsonText(bytes, what) as Json;
}

/** A contribution of either form: finite numbers, arrays and objects only. */
export function decodeNumeric(bytes: Uint8Array, what: string): NumericTree {
  if (isBinaryMessage(bytes)) return decodeBinary(bytes, what, { vectors: false, numeric: true }) as NumericTree;
  return parseNumericJson(bytes, what);
}
