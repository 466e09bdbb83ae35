/**
 * The payloads the controllers compute on (SMPC sums, DP noise): JSON made only of numbers,
 * arrays and objects of numbers. Parsing checks that strictly and names the JSON path of the first
 * offending value, because the app author has to find it in their own code.
 */
import type { NumericTree } from '../computation/types.ts';

/** A nested structure of arrays and objects whose leaves are all of one type. */
export type Tree<Leaf> = Leaf | readonly Tree<Leaf>[] | { readonly [key: string]: Tree<Leaf> };

/** Deeper nesting than any model needs; past it, a clear error instead of a stack overflow. */
export const MAX_DEPTH = 256;

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

export function keyPath(path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

export function indexPath(path: string, index: number): string {
  return `${path}[${index}]`;
}

function isArray<Leaf>(node: Tree<Leaf>): node is readonly Tree<Leaf>[] {
  return Array.isArray(node);
}

function isRecord<Leaf>(node: Tree<Leaf>): node is { readonly [key: string]: Tree<Leaf> } {
  return typeof node === 'object' && node !== null && !Array.isArray(node);
}

function kindOf(value: unknown): string {
  if (value === null) return 'a null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'boolean':
      return 'a boolean';
    case 'number':
      return Number.isFinite(value) ? 'a number' : 'a number too large for a double';
    case 'object':
      return 'an object';
    default:
      return `a ${typeof value}`;
  }
}

/**
 * Parses `bytes` as UTF-8 JSON made only of finite numbers, arrays and objects (nested). `what`
 * names the data in the error, e.g. `SMPC data from client 3 (memo r1.local)`.
 */
export function parseNumericJson(bytes: Uint8Array, what: string): NumericTree {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${what} is not valid UTF-8; only JSON of numbers is allowed`);
  }
  if (text.trim() === '') throw new Error(`${what} is empty; expected JSON of numbers`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`${what} is not valid JSON (${reason})`);
  }
  checkNumeric(parsed, '$', 0, what);
  return parsed as NumericTree;
}

function checkNumeric(value: unknown, path: string, depth: number, what: string): void {
  if (depth > MAX_DEPTH) throw new Error(`${what} is nested deeper than ${MAX_DEPTH} levels at ${path}`);
  if (typeof value === 'number' && Number.isFinite(value)) return;
  if (Array.isArray(value)) {
    value.forEach((item: unknown, index) => checkNumeric(item, indexPath(path, index), depth + 1, what));
    return;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) checkNumeric(item, keyPath(path, key), depth + 1, what);
    return;
  }
  throw new Error(`${what} has ${kindOf(value)} at ${path}; only numbers are allowed`);
}

export function serializeJson(tree: NumericTree): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(tree));
}

/** Where two trees first differ in shape, and what each side has there. */
export interface ShapeMismatch {
  readonly path: string;
  readonly left: string;
  readonly right: string;
}

function describeNode<Leaf>(node: Tree<Leaf> | undefined): string {
  if (node === undefined) return 'nothing';
  if (isArray(node)) return `an array of ${node.length}`;
  if (isRecord(node)) return 'an object';
  return 'a number';
}

/**
 * The first place where `a` and `b` differ in shape (leaves, array lengths, object keys; object
 * key order does not matter), or null when they have the same shape.
 */
export function findShapeMismatch<A, B>(a: Tree<A>, b: Tree<B>, path = '$'): ShapeMismatch | null {
  const mismatch = (): ShapeMismatch => ({ path, left: describeNode(a), right: describeNode(b) });
  if (isArray(a) || isArray(b)) {
    if (!isArray(a) || !isArray(b) || a.length !== b.length) return mismatch();
    for (let i = 0; i < a.length; i += 1) {
      const found = findShapeMismatch(a[i] as Tree<A>, b[i] as Tree<B>, indexPath(path, i));
      if (found !== null) return found;
    }
    return null;
  }
  if (isRecord(a) || isRecord(b)) {
    if (!isRecord(a) || !isRecord(b)) return mismatch();
    for (const key of Object.keys(a)) {
      const childPath = keyPath(path, key);
      if (!Object.hasOwn(b, key)) return { path: childPath, left: describeNode(a[key]), right: 'nothing' };
      const found = findShapeMismatch(a[key] as Tree<A>, b[key] as Tree<B>, childPath);
      if (found !== null) return found;
    }
    for (const key of Object.keys(b)) {
      if (!Object.hasOwn(a, key)) return { path: keyPath(path, key), left: 'nothing', right: describeNode(b[key]) };
    }
    return null;
  }
  return null;
}

export function sameShape<A, B>(a: Tree<A>, b: Tree<B>): boolean {
  return findShapeMismatch(a, b) === null;
}

/**
 * Throws when the trees differ in shape, e.g.
 * `SMPC contributions differ in shape at $.w: contribution 1 has an array of 3, contribution 2 has an array of 2`.
 */
export function assertSameShape<A, B>(
  a: Tree<A>,
  b: Tree<B>,
  what: string,
  leftName = 'the first',
  rightName = 'the second',
): void {
  const found = findShapeMismatch(a, b);
  if (found === null) return;
  throw new Error(`${what} differ in shape at ${found.path}: ${leftName} has ${found.left}, ${rightName} has ${found.right}`);
}

/** A tree of the same shape with every leaf replaced by `fn(leaf, path)`; leaves in document order. */
export function mapLeaves<A, B>(tree: Tree<A>, fn: (leaf: A, path: string) => B, path = '$'): Tree<B> {
  if (isArray(tree)) return tree.map((item, index) => mapLeaves(item, fn, indexPath(path, index)));
  if (isRecord(tree)) {
    // fromEntries defines own properties, so a `__proto__` key stays an ordinary key.
    return Object.fromEntries(Object.entries(tree).map(([key, item]) => [key, mapLeaves(item, fn, keyPath(path, key))]));
  }
  return fn(tree as A, path);
}

/**
 * Combines trees of the same shape leaf by leaf: `fn(leaves, path)` gets the leaves at one path,
 * one per tree. The result has the first tree's key order. Throws if the shapes differ.
 */
export function zipLeaves<A, B>(trees: readonly Tree<A>[], fn: (leaves: readonly A[], path: string) => B): Tree<B> {
  const [first, ...rest] = trees;
  if (first === undefined) throw new Error('zipLeaves needs at least one tree');
  rest.forEach((tree, index) => assertSameShape(first, tree, 'Trees', 'tree 1', `tree ${index + 2}`));
  return zipShaped(first, trees, fn, '$');
}

function zipShaped<A, B>(
  first: Tree<A>,
  trees: readonly Tree<A>[],
  fn: (leaves: readonly A[], path: string) => B,
  path: string,
): Tree<B> {
  if (isArray(first)) {
    return first.map((_, index) =>
      zipShaped(first[index] as Tree<A>, trees.map((tree) => (tree as readonly Tree<A>[])[index] as Tree<A>), fn, indexPath(path, index)),
    );
  }
  if (isRecord(first)) {
    return Object.fromEntries(
      Object.keys(first).map((key) => [
        key,
        zipShaped(
          first[key] as Tree<A>,
          trees.map((tree) => (tree as { readonly [key: string]: Tree<A> })[key] as Tree<A>),
          fn,
          keyPath(path, key),
        ),
      ]),
    );
  }
  return fn(trees as readonly A[], path);
}

/** The leaves in document order. */
export function leaves<A>(tree: Tree<A>): A[] {
  const out: A[] = [];
  mapLeaves(tree, (leaf) => {
    out.push(leaf);
    return leaf;
  });
  return out;
}
