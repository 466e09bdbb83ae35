/**
 * Messages between sites are UTF-8 JSON: the serialization SMPC and DP demand, and readable in a
 * trace. Decoding failures name what was being decoded.
 */
import type { Json } from '../computation/types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeJson(value: Json): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decodeJson(bytes: Uint8Array, what: string): Json {
  try {
    return JSON.parse(decoder.decode(bytes)) as Json;
  } catch (error) {
    throw new Error(`${what} is not valid UTF-8 JSON (${bytes.byteLength} bytes)`, { cause: error });
  }
}
