/**
 * Every malformed call a controller or a stranger can make, as one table, tried in every state of
 * a three-site federation (before setup, computing, collecting, broadcasting, confirming,
 * finished) and in the error state. Each call must get its documented 4xx with a JSON error that
 * shows nothing of our internals, and must leave the machine exactly as it was: the federation,
 * battered at every step, still ends with the right result.
 *
 * The sites' ids are chosen to be hostile too: `__proto__`, `constructor` and an emoji with a
 * right-to-left override. Fixture sites contribute 10 × their position in `clients`; the
 * coordinator sums them and finishes in one round (10 + 20 + 30 = 60).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { fromPromise } from 'xstate';
import {
  CONFIRMATION,
  type AggregateInput,
  type AggregateOutput,
  type LocalComputeInput,
  type LocalComputeOutput,
  type WriteResultsInput,
} from '../machines/client.machine.ts';
import { statePath } from '../machines/status.ts';
import { createClient, type Client, type ClientActors } from '../src/client.ts';
import { createApp } from '../src/http/app.ts';
import type { ProblemCode } from '../src/http/errors.ts';
import { createLogger, silentLogger } from '../src/log.ts';
import { STATUS_KEYS, type SetupInfo, type Status } from '../src/protocol/types.ts';
import { listen } from '../src/server.ts';
import {
  parseResponse,
  socketTransport,
  type HttpAnswer,
  type HttpCall,
  type Transport,
} from './support/transport.ts';

const BODY_LIMIT = 1024;
/** koa-bodyparser's default limit for a JSON body. */
const JSON_LIMIT = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Fixture sites
// ---------------------------------------------------------------------------------------------

const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const decode = (bytes: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(bytes));
const position = (setup: SetupInfo): number =>
  setup.clients.findIndex((id) => String(id) === String(setup.id)) + 1;

interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

function gate(): Gate {
  let open = (): void => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

interface Site {
  readonly name: string;
  readonly client: Client;
  readonly server: Server;
  readonly url: string;
  readonly port: number;
  readonly http: Transport;
  /** Opens computeLocal: until then the site stays in local-compute. */
  readonly compute: Gate;
  readonly written: unknown[];
  /** Error-level log lines: a 500, or anything we would page someone for. */
  readonly failures: string[];
}

function fixtureActors(compute: Gate, written: unknown[], failLocal: string | null): ClientActors {
  return {
    computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async ({ input }) => {
      await compute.promise;
      if (failLocal !== null) throw new Error(failLocal);
      return {
        payload: encode(10 * position(input.setup)),
        privacy: { smpc: null, dp: null },
        expectedRounds: 1,
      };
    }),
    aggregate: fromPromise<AggregateOutput, AggregateInput>(async ({ input }) => {
      const sum = input.contributions.reduce((total, bytes) => total + Number(decode(bytes)), 0);
      return { payload: encode(sum), final: true };
    }),
    writeResults: fromPromise<void, WriteResultsInput>(async ({ input }) => {
      written.push(decode(input.final));
    }),
  };
}

const sites: Site[] = [];

async function startSite(name: string, failLocal: string | null = null): Promise<Site> {
  const compute = gate();
  const written: unknown[] = [];
  const failures: string[] = [];
  const client = createClient(fixtureActors(compute, written, failLocal), silentLogger);
  const app = createApp(client, {
    bodyLimit: BODY_LIMIT,
    logger: createLogger('error', (line) => failures.push(line)),
  });
  const server = await listen(app, '127.0.0.1', 0);
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const site: Site = {
    name,
    client,
    server,
    url,
    port,
    http: socketTransport(url),
    compute,
    written,
    failures,
  };
  sites.push(site);
  return site;
}

// The file's sites live across tests (the federation is battered step by step), so they close
// only at the end. A hook must not throw: uvu would silently drop the rest of the file.
test.after(async () => {
  for (const site of sites.splice(0)) {
    site.client.stop();
    site.http.close();
    site.server.closeAllConnections();
    await new Promise<void>((resolve) => site.server.close(() => resolve()));
  }
});

/** The machine's whole observable state: what no refused call may change. */
function fingerprint(site: Site): string {
  const { value, status, context } = site.client.snapshot();
  return JSON.stringify({ value, status, context }, (_key, item: unknown) =>
    item instanceof Uint8Array ? Buffer.from(item).toString('hex') : item,
  );
}

async function until(site: Site, what: string, accept: (client: Client) => boolean): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt += 1) {
    if (accept(site.client)) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`${site.name} never reached ${what}; it is in ${statePath(site.client.snapshot())}`);
}

const inState = (site: Site, path: string): Promise<void> =>
  until(site, path, (client) => statePath(client.snapshot()) === path);

// ---------------------------------------------------------------------------------------------
// The federation: hostile ids, one round
// ---------------------------------------------------------------------------------------------

const IDS = ['__proto__', 'constructor', '🐧\u202Eniugnep'] as const;
const [COORDINATOR, SECOND, THIRD] = IDS;
const query = (id: string): string => encodeURIComponent(id);

interface Member {
  readonly site: Site;
  readonly id: string;
  readonly coordinator: boolean;
}

interface Relayed {
  readonly from: string;
  readonly memo: string | null;
  readonly to: readonly string[];
  readonly value: unknown;
}

const json = (answer: HttpAnswer): unknown => JSON.parse(answer.body.toString('utf8'));

async function statusOf(site: Site): Promise<Status> {
  const answer = await site.http.call({ method: 'GET', path: '/api/status' });
  assert.is(answer.status, 200);
  const status = json(answer) as Status;
  assert.equal(Object.keys(status).sort(), [...STATUS_KEYS].sort());
  return status;
}

/** One controller poll of `from`: if it has data, fetch it and deliver it by the relay rules. */
async function relay(from: Member, members: readonly Member[]): Promise<Relayed | null> {
  const status = await statusOf(from.site);
  if (!status.available) return null;
  const fetched = await from.site.http.call({ method: 'GET', path: '/api/data' });
  assert.is(fetched.status, 200);
  const targets =
    status.destination !== null
      ? members.filter((member) => member.id === String(status.destination))
      : from.coordinator
        ? members.filter((member) => member !== from)
        : members.filter((member) => member.coordinator);
  const memo = status.memo === null ? '' : `&memo=${encodeURIComponent(status.memo)}`;
  for (const to of targets) {
    const delivered = await to.site.http.call({
      method: 'POST',
      path: `/api/data?client=${query(from.id)}${memo}`,
      headers: { 'content-type': 'application/octet-stream' },
      body: fetched.body,
    });
    assert.is(delivered.status, 200, delivered.body.toString());
  }
  return { from: from.id, memo: status.memo, to: targets.map((member) => member.id), value: decode(fetched.body) };
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

type Stage =
  | 'before setup'
  | 'computing'
  | 'collecting'
  | 'broadcasting'
  | 'confirming'
  | 'finished'
  | 'error';

interface Expected {
  readonly status: number;
  /** The JSON body's `error`; null when there is no body to read (HEAD, the HTTP parser). */
  readonly error: ProblemCode | null;
  /** The JSON body's `field`, when the call is wrong in one named field. */
  readonly field?: string;
}

interface Row {
  readonly name: string;
  readonly call: HttpCall;
  readonly expect: Expected | ((stage: Stage) => Expected);
}

const badRequest = (field?: string): Expected =>
  field === undefined ? { status: 400, error: 'bad_request' } : { status: 400, error: 'bad_request', field };
const CONFLICT: Expected = { status: 409, error: 'conflict' };
const TOO_LARGE: Expected = { status: 413, error: 'payload_too_large' };
const UNSUPPORTED: Expected = { status: 415, error: 'unsupported_media_type' };
const NOT_FOUND: Expected = { status: 404, error: 'not_found' };
const forbidden = (field: string): Expected => ({ status: 403, error: 'forbidden', field });
/** POST /api/data checks the form of the call first, then whether the site is set up. */
const onceSetUp =
  (expected: Expected) =>
  (stage: Stage): Expected =>
    stage === 'before setup' ? CONFLICT : expected;

const setupCall = (body: string | Uint8Array, headers: Record<string, string> = {}): HttpCall => ({
  method: 'POST',
  path: '/api/setup',
  headers: { 'content-type': 'application/json', ...headers },
  body,
});
const setupJson = (body: unknown): HttpCall => setupCall(JSON.stringify(body));
const valid = { id: SECOND, coordinator: false, clients: [...IDS] };
const deep = (open: string, inner: string, close: string, depth: number): string =>
  open.repeat(depth) + inner + close.repeat(depth);
const DEPTH = 100_000;

const malformedJson: Row[] = (
  [
    ['an unterminated object', '{"id": "a",'],
    ['a trailing comma', '{"id": "a", "coordinator": true, "clients": ["a"],}'],
    ['single quotes', "{'id': 'a'}"],
    ['a NaN literal', '{"id": NaN}'],
    ['an Infinity literal', '{"id": Infinity, "coordinator": true, "clients": [1]}'],
    ['a comment', '{/* a */ "id": "a"}'],
    ['garbage after the object', '{"id": "a", "coordinator": true, "clients": ["a"]} x'],
    ['a raw NUL inside a string', '{"id": "a\u0000", "coordinator": true, "clients": ["a\u0000"]}'],
    ['not JSON at all', 'id=a&coordinator=true'],
    ['null', 'null'],
    ['a string', '"a"'],
    ['a number', '1e400'],
    ['true', 'true'],
    ['an array', '[1, 2]'],
    ['an array holding a valid setup', JSON.stringify([valid])],
    ['100k nested arrays', deep('[', '', ']', DEPTH)],
    ['100k nested objects', deep('{"a":', '1', '}', DEPTH)],
    ['100k nested arrays as the id', `{"id":${deep('[', '', ']', DEPTH)},"coordinator":false,"clients":["a"]}`, 'id'],
    ['100k nested arrays in clients', `{"id":"a","coordinator":false,"clients":${deep('[', '', ']', DEPTH)}}`, 'clients[0]'],
    ['100k nested __proto__ keys', deep('{"__proto__":', '1', '}', DEPTH / 2)],
    ['an unclosed nesting of 100k arrays', '['.repeat(DEPTH)],
  ] as const
).map(([name, body, field]: readonly [string, string, string?]) => ({
  name: `setup: ${name}`,
  call: setupCall(body),
  expect: badRequest(field),
}));

const invalidUtf8: Row[] = [
  {
    name: 'setup: bytes that are not UTF-8',
    call: setupCall(Uint8Array.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])),
    expect: badRequest(),
  },
  {
    name: 'setup: a valid setup in UTF-16',
    call: setupCall(Buffer.from(JSON.stringify(valid), 'utf16le')),
    expect: badRequest(),
  },
];

/** Wrong types and impossible values, field by field. */
const wrongFields: Row[] = (
  [
    [{ ...valid, id: undefined }, 'id'],
    [{ ...valid, id: null }, 'id'],
    [{ ...valid, id: true }, 'id'],
    [{ ...valid, id: [] }, 'id'],
    [{ ...valid, id: {} }, 'id'],
    [{ ...valid, id: 1.5 }, 'id'],
    [{ ...valid, id: '' }, 'id'],
    [{ ...valid, id: 'x'.repeat(257) }, 'id'],
    [{ ...valid, id: '😀'.repeat(129) }, 'id'],
    [{ ...valid, id: 'not-in-clients' }, 'id'],
    [{ ...valid, id: 2 ** 64, clients: [2 ** 64] }, 'id'],
    [{ ...valid, id: Number.MAX_SAFE_INTEGER + 1 }, 'id'],
    [{ ...valid, id: -(2 ** 60) }, 'id'],
    [{ ...valid, coordinator: undefined }, 'coordinator'],
    [{ ...valid, coordinator: null }, 'coordinator'],
    [{ ...valid, coordinator: 'false' }, 'coordinator'],
    [{ ...valid, coordinator: 0 }, 'coordinator'],
    [{ ...valid, coordinator: [] }, 'coordinator'],
    [{ ...valid, coordinator: {} }, 'coordinator'],
    [{ ...valid, master: null }, 'master'],
    [{ ...valid, master: 'yes' }, 'master'],
    [{ ...valid, master: true }, 'coordinator'],
    [{ ...valid, clients: undefined }, 'clients'],
    [{ ...valid, clients: null }, 'clients'],
    [{ ...valid, clients: IDS.join(',') }, 'clients'],
    [{ ...valid, clients: { 0: COORDINATOR, 1: SECOND } }, 'clients'],
    [{ ...valid, clients: 3 }, 'clients'],
    [{ ...valid, clients: [] }, 'clients'],
    [{ ...valid, clients: [SECOND] }, 'clients'],
    [{ ...valid, clients: [...IDS, SECOND] }, 'clients'],
    [{ ...valid, clients: [SECOND, null] }, 'clients[1]'],
    [{ ...valid, clients: [SECOND, [COORDINATOR]] }, 'clients[1]'],
    [{ ...valid, clients: [SECOND, { id: COORDINATOR }] }, 'clients[1]'],
    [{ ...valid, clients: [SECOND, 2.5] }, 'clients[1]'],
    [{ ...valid, clients: [SECOND, ''] }, 'clients[1]'],
    [{ ...valid, clients: [SECOND, 'y'.repeat(257)] }, 'clients[1]'],
    [{ id: 1, coordinator: true, clients: [1, '1'] }, 'clients'],
    [{ ...valid, coordinatorID: true }, 'coordinatorID'],
    [{ ...valid, coordinatorID: [] }, 'coordinatorID'],
    [{ ...valid, coordinatorID: 1.5 }, 'coordinatorID'],
    [{ ...valid, coordinatorID: '' }, 'coordinatorID'],
    [{ ...valid, coordinatorID: 'nobody' }, 'coordinatorID'],
    [{ ...valid, coordinatorID: SECOND }, 'coordinatorID'],
    [{ ...valid, coordinatorId: SECOND }, 'coordinatorId'],
    [{ ...valid, coordinatorID: COORDINATOR, coordinatorId: THIRD }, 'coordinatorId'],
    [{ ...valid, id: COORDINATOR, coordinator: true, coordinatorID: SECOND }, 'coordinatorID'],
  ] as const
).map(([body, field]) => ({
  name: `setup: ${field} wrong in ${JSON.stringify(body).slice(0, 80)}`,
  call: setupJson(body),
  expect: badRequest(field),
}));

/** What JSON can say but a JavaScript value would not keep: written out as text. */
const literalFields: Row[] = (
  [
    ['id = 1e400', `{"id":1e400,"coordinator":true,"clients":[1e400]}`, 'id'],
    ['id = 18446744073709551616', `{"id":18446744073709551616,"coordinator":true,"clients":[1]}`, 'id'],
    ['clients[1] = -1e400', `{"id":1,"coordinator":true,"clients":[1,-1e400]}`, 'clients[1]'],
    ['coordinator = 1e400', `{"id":1,"coordinator":1e400,"clients":[1]}`, 'coordinator'],
    ['clients = [0, -0]', `{"id":0,"coordinator":true,"clients":[0,-0]}`, 'clients'],
    ['id with a lone surrogate', `{"id":"\\ud800","coordinator":true,"clients":["\\ud800"]}`, 'id'],
    ['clients[1] with a lone surrogate', `{"id":"a","coordinator":true,"clients":["a","b\\udfff"]}`, 'clients[1]'],
  ] as const
).map(([name, body, field]) => ({ name: `setup: ${name}`, call: setupCall(body), expect: badRequest(field) }));

const prototypeKeys: Row[] = (
  [
    ['a __proto__ key holding a valid setup', `{"__proto__":${JSON.stringify(valid)}}`],
    ['a __proto__ key next to a valid setup', `{"__proto__":{"admin":true},${JSON.stringify(valid).slice(1)}`],
    ['an escaped __proto__ key', `{"\\u005f_proto__":{"id":"a"}}`],
    ['a __proto__ key inside clients', `{"id":"a","coordinator":true,"clients":{"__proto__":["a"]}}`],
    ['constructor.prototype holding a valid setup', `{"constructor":{"prototype":${JSON.stringify(valid)}}}`, 'id'],
    ['a prototype key holding a valid setup', `{"prototype":${JSON.stringify(valid)}}`, 'id'],
  ] as const
).map(([name, body, field]: readonly [string, string, string?]) => ({
  name: `setup: ${name}`,
  call: setupCall(body),
  expect: badRequest(field),
}));

const contentTypes: Row[] = [
  ...(
    [
      'text/plain',
      'text/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      'application/vnd.api+json',
      'application/json-patch+json',
      'application/*',
      '*/*',
      'json',
      ';;;=',
    ] as const
  ).map((type) => ({
    name: `setup: a valid body typed ${type}`,
    call: setupCall(JSON.stringify(valid), { 'content-type': type }),
    expect: UNSUPPORTED,
  })),
  {
    name: 'setup: a valid body with no content type',
    call: { method: 'POST', path: '/api/setup', body: JSON.stringify(valid) },
    expect: UNSUPPORTED,
  },
  { name: 'setup: no body at all', call: { method: 'POST', path: '/api/setup' }, expect: badRequest() },
  { name: 'setup: an empty JSON body', call: setupCall(''), expect: badRequest() },
  {
    name: 'setup: an empty form body',
    call: setupCall('', { 'content-type': 'application/x-www-form-urlencoded' }),
    expect: badRequest(),
  },
  {
    name: 'setup: gzip that is not gzip',
    call: setupCall('not gzip', { 'content-encoding': 'gzip' }),
    expect: badRequest(),
  },
  {
    name: 'setup: an unknown content encoding',
    call: setupCall(JSON.stringify(valid), { 'content-encoding': 'x-unknown' }),
    expect: UNSUPPORTED,
  },
  {
    name: 'setup: a gzip bomb (5 KB that inflate to 5 MB)',
    call: setupCall(gzipSync(Buffer.alloc(5 * JSON_LIMIT, 0x20)), { 'content-encoding': 'gzip' }),
    expect: TOO_LARGE,
  },
  {
    name: 'setup: a JSON body over the 1 MB limit',
    call: setupJson({ ...valid, padding: 'x'.repeat(JSON_LIMIT) }),
    expect: TOO_LARGE,
  },
];

const post = (query: string, body: string | Uint8Array = '20', headers: Record<string, string> = {}): HttpCall => ({
  method: 'POST',
  path: `/api/data${query}`,
  headers,
  body,
});

const dataQueries: Row[] = [
  ['no query at all', '', badRequest('client')],
  ['no client', '?memo=r1.local', badRequest('client')],
  ['an empty client', '?client=&memo=r1.local', badRequest('client')],
  ['client without a value', '?client&memo=r1.local', badRequest('client')],
  ['client twice', `?client=${query(SECOND)}&client=${query(THIRD)}&memo=r1.local`, badRequest('client')],
  ['the same client twice', `?client=${query(SECOND)}&client=${query(SECOND)}&memo=r1.local`, badRequest('client')],
  ['client[] instead of client', `?client[]=${query(SECOND)}&memo=r1.local`, badRequest('client')],
  ['CLIENT in capitals', `?CLIENT=${query(SECOND)}&memo=r1.local`, badRequest('client')],
  ['memo twice', `?client=${query(SECOND)}&memo=r1.local&memo=r2.local`, badRequest('memo')],
  ['a memo of 257 characters', `?client=${query(SECOND)}&memo=${'m'.repeat(257)}`, badRequest('memo')],
  [
    'a memo of 129 emoji (258 UTF-16 units)',
    `?client=${query(SECOND)}&memo=${query('😀'.repeat(129))}`,
    badRequest('memo'),
  ],
].map(([name, search, expected]) => ({
  name: `data: ${String(name)}`,
  call: post(String(search)),
  expect: expected as Expected,
}));

const strangers: Row[] = [
  ['a client not in the run', 'toString'],
  ['a known id in other capitals', 'CONSTRUCTOR'],
  ['a known id with a trailing space', `${SECOND} `],
  ['a known id with a NUL appended', `${SECOND}\u0000`],
  ['a known id without its RTL override', THIRD.replace('\u202E', '')],
  ['an emoji', '😀'],
  ['an id of 300 characters', 'z'.repeat(300)],
  ['prototype', 'prototype'],
  ['hasOwnProperty', 'hasOwnProperty'],
].map(([name, sender]) => ({
  name: `data: ${name ?? ''}`,
  call: post(`?client=${query(sender ?? '')}&memo=r1.local`),
  expect: onceSetUp(forbidden('client')),
}));

const strangeEncodings: Row[] = [
  ['a lone surrogate, percent-encoded as UTF-8', '%ED%A0%80'],
  ['a lone surrogate in %u notation', '%uD800'],
  ['a truncated percent escape', '%E0%A4%A'],
  ['a bare percent sign', '%'],
  ['an encoded NUL', '%00'],
].map(([name, raw]) => ({
  name: `data: client is ${name ?? ''}`,
  call: post(`?client=${raw ?? ''}&memo=r1.local`),
  expect: onceSetUp(forbidden('client')),
}));

const tooLarge: Row[] = [
  {
    name: 'data: a body one byte over the limit',
    call: post(`?client=${query(SECOND)}&memo=r1.local`, new Uint8Array(BODY_LIMIT + 1)),
    expect: onceSetUp(TOO_LARGE),
  },
  {
    name: 'data: a body of 1 MB',
    call: post(`?client=${query(SECOND)}&memo=r1.local`, new Uint8Array(1024 * 1024)),
    expect: onceSetUp(TOO_LARGE),
  },
];

/** Every route with every method it does not take. */
const ROUTES: Readonly<Record<string, readonly string[]>> = {
  '/api/setup': ['POST'],
  '/api/status': ['GET', 'HEAD'],
  '/api/data': ['GET', 'HEAD', 'POST'],
  '/web': ['GET', 'HEAD'],
};
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'PROPFIND', 'MKCOL', 'SEARCH'];
const wrongMethods: Row[] = Object.entries(ROUTES).flatMap(([path, allowed]) =>
  METHODS.filter((method) => !allowed.includes(method)).map((method) => ({
    name: `${method} ${path}`,
    call: { method, path, ...(method === 'HEAD' || method === 'GET' ? {} : { body: '{}' }) },
    expect: { status: 405, error: method === 'HEAD' ? null : 'method_not_allowed' },
  })),
);

const unknownPaths: Row[] = [
  '/',
  '/api',
  '/api/',
  '/api/statuss',
  '/api/setup/x',
  '/api/data/1',
  '/api//status',
  '//api/status',
  '/webx',
  '/favicon.ico',
  '/api/%',
  '/api/%E0%A4%A',
  '/api/status%00',
  '/api/..%2f..%2fetc%2fpasswd',
  '/api/status;x',
  `/${'a/'.repeat(2000)}`,
].flatMap((path) =>
  ['GET', 'POST'].map((method) => ({
    name: `${method} ${path.slice(0, 40)}`,
    call: { method, path },
    expect: NOT_FOUND,
  })),
);

const TABLE: readonly Row[] = [
  ...malformedJson,
  ...invalidUtf8,
  ...wrongFields,
  ...literalFields,
  ...prototypeKeys,
  ...contentTypes,
  ...dataQueries,
  ...strangers,
  ...strangeEncodings,
  ...tooLarge,
  ...wrongMethods,
  ...unknownPaths,
];

/** Calls that are well formed but not for this state. */
function refusedInState(stage: Stage): Row[] {
  const rows: Row[] = [];
  const contribution = post(`?client=${query(SECOND)}&memo=r1.local`);
  if (stage === 'before setup' || stage === 'error') {
    const name = `data: a valid delivery ${stage === 'error' ? 'in error' : 'before setup'}`;
    rows.push({ name, call: contribution, expect: CONFLICT });
  }
  if (stage !== 'before setup') {
    rows.push(
      { name: 'setup: a different setup', call: setupJson({ ...valid, clients: [...IDS, 'late'] }), expect: CONFLICT },
      { name: 'setup: the other role', call: setupJson({ ...valid, coordinator: true }), expect: CONFLICT },
    );
  }
  return rows;
}

/** A body that leaks our internals: a stack frame, a source path, a module. */
const INTERNALS = /\n\s+at |node_modules|\/work\/|file:\/\/|\.[cm]?[jt]s:\d+|HttpProblem/;

/** The body as `{ error, detail, field? }`, or what is wrong with it. */
function problemOf(answer: HttpAnswer): Record<string, unknown> | string {
  const text = answer.body.toString('utf8');
  if (INTERNALS.test(text)) return `the body shows internals: ${text.slice(0, 200)}`;
  if (!/^application\/json/.test(answer.headers['content-type'] ?? '')) {
    return `content type ${String(answer.headers['content-type'])}: ${text.slice(0, 200)}`;
  }
  const body = JSON.parse(text) as Record<string, unknown>;
  const extra = Object.keys(body).filter((key) => !['error', 'detail', 'field'].includes(key));
  if (extra.length > 0 || typeof body.error !== 'string' || typeof body.detail !== 'string') {
    return `not a problem body: ${text.slice(0, 200)}`;
  }
  return body;
}

/** Checks one answer against its row; returns what is wrong, or null. */
function mismatch(answer: HttpAnswer, expected: Expected): string | null {
  if (answer.status !== expected.status) {
    return `status ${answer.status}, expected ${expected.status}: ${answer.body.toString('utf8').slice(0, 200)}`;
  }
  if (expected.status === 405 && answer.headers['allow'] === undefined) return 'a 405 without Allow';
  if (expected.error === null) return answer.body.byteLength === 0 ? null : 'a body where none belongs';
  const body = problemOf(answer);
  if (typeof body === 'string') return body;
  if (body.error !== expected.error) return `error ${String(body.error)}, expected ${expected.error}`;
  if (expected.field !== undefined && body.field !== expected.field) {
    return `field ${String(body.field)}, expected ${expected.field}: ${String(body.detail)}`;
  }
  return null;
}

/** Makes every call of the table at `site`; returns one line per call that went wrong. */
async function batter(site: Site, stage: Stage): Promise<string[]> {
  const wrong: string[] = [];
  for (const row of [...TABLE, ...refusedInState(stage)]) {
    const expected = typeof row.expect === 'function' ? row.expect(stage) : row.expect;
    const before = fingerprint(site);
    const answer = await site.http.call(row.call);
    const problem = mismatch(answer, expected);
    if (problem !== null) wrong.push(`${stage}, ${row.name}: ${problem}`);
    if (fingerprint(site) !== before) wrong.push(`${stage}, ${row.name}: the machine changed`);
  }
  for (const row of PARSER_ROWS) {
    const before = fingerprint(site);
    const answer = await rawCall(site, row.bytes);
    const problem = parserMismatch(answer, row);
    if (problem !== null) wrong.push(`${stage}, ${row.name}: ${problem}`);
    if (fingerprint(site) !== before) wrong.push(`${stage}, ${row.name}: the machine changed`);
  }
  wrong.push(...site.failures.splice(0).map((line) => `${stage}: logged as a failure: ${line}`));
  return wrong;
}

// ---------------------------------------------------------------------------------------------
// Calls Node's HTTP parser refuses before the app sees them
// ---------------------------------------------------------------------------------------------

interface ParserRow {
  readonly name: string;
  readonly bytes: string;
  readonly status: number;
  /** Node answers this itself with a bare status line; no hook of the server sees it. */
  readonly bare: boolean;
}

const HOST = 'Host: 127.0.0.1\r\n';
/** The start of a setup and of a data delivery, up to the headers that vary. */
const SETUP = `POST /api/setup HTTP/1.1\r\n${HOST}Content-Type: application/json\r\n`;
const DATA = `POST /api/data?client=a HTTP/1.1\r\n${HOST}`;
const PARSER_ROWS: readonly ParserRow[] = [
  ['an unknown method', `FOO /api/status HTTP/1.1\r\n${HOST}\r\n`, 400],
  ['a lower-case method', `get /api/status HTTP/1.1\r\n${HOST}\r\n`, 400],
  ['HTTP/1.2', `GET /api/status HTTP/1.2\r\n${HOST}\r\n`, 400],
  ['no Host header', 'GET /api/status HTTP/1.1\r\n\r\n', 400, 'bare'],
  ['a space in the path', `GET /api/sta tus HTTP/1.1\r\n${HOST}\r\n`, 400],
  ['a raw non-ASCII path', `GET /api/stätus HTTP/1.1\r\n${HOST}\r\n`, 400],
  ['a NUL in a header value', `GET /api/status HTTP/1.1\r\n${HOST}X-A: a\u0000b\r\n\r\n`, 400],
  ['a space before a header colon', `GET /api/status HTTP/1.1\r\n${HOST}X-A : b\r\n\r\n`, 400],
  ['a folded header line', `GET /api/status HTTP/1.1\r\n${HOST}X-A: a\r\n  b\r\n\r\n`, 400],
  ['bare LF line ends', `GET /api/status HTTP/1.1\n${HOST.replace('\r', '')}\n`, 400],
  ['a header over 16 KB', `GET /api/status HTTP/1.1\r\n${HOST}X-A: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ['Content-Length and chunked together', `${SETUP}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
  ['two different Content-Lengths', `${SETUP}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}`, 400],
  ['a negative Content-Length', `${SETUP}Content-Length: -1\r\n\r\n{}`, 400],
  ['a Content-Length beyond 2^64', `${DATA}Content-Length: 99999999999999999999\r\n\r\n{}`, 400],
  ['a hexadecimal Content-Length', `${DATA}Content-Length: 0x2\r\n\r\nab`, 400],
  ['Transfer-Encoding gzip without chunked', `${DATA}Transfer-Encoding: gzip\r\n\r\nab`, 400],
  ['an invalid chunk size', `${SETUP}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`, 400],
  ['a chunk size over 2^64', `${DATA}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nab\r\n0\r\n\r\n`, 400],
  ['an unknown Expect', `${SETUP}Expect: 200-ok\r\nContent-Length: 2\r\n\r\n{}`, 417, 'bare'],
].map(([name, bytes, status, bare]) => ({
  name: `HTTP: ${String(name)}`,
  bytes: String(bytes),
  status: Number(status),
  bare: bare === 'bare',
}));

/** Node's parser refuses these before the app sees them; `listen` still answers a JSON problem. */
function parserMismatch(answer: HttpAnswer, row: ParserRow): string | null {
  if (answer.status !== row.status) return `status ${answer.status}, expected ${row.status}`;
  if (row.bare) return answer.body.byteLength === 0 ? null : 'a body where Node sends none';
  const body = problemOf(answer);
  return typeof body === 'string' ? body : null;
}

/** Writes `bytes` on a fresh connection and reads until the server answers or closes. */
function rawCall(site: Site, ...parts: readonly (string | Uint8Array)[]): Promise<HttpAnswer> {
  return rawExchange(site.port, parts, { pauseMs: 0, close: false });
}

interface Exchange {
  /** Pause between the parts. */
  readonly pauseMs: number;
  /** Close our side after the last part (a body cut short). */
  readonly close: boolean;
  /** Give up waiting after this long; the answer is then whatever came (status 0 if nothing). */
  readonly waitMs?: number;
}

/** Bytes to write, or a step to wait for before writing the rest (a body that pauses). */
type Part = string | Uint8Array | (() => Promise<void>);

function rawExchange(port: number, parts: readonly Part[], options: Exchange): Promise<HttpAnswer> {
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    const socket = connect(port, '127.0.0.1');
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponse(Buffer.concat(received), 'POST'));
    };
    const timer = setTimeout(finish, options.waitMs ?? 2000);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      // One complete response is all a row needs (keep-alive would hold the socket open).
      const answer = parseResponse(Buffer.concat(received), 'POST');
      const length = Number(answer.headers['content-length'] ?? Number.NaN);
      if (answer.status !== 0 && answer.body.byteLength >= (Number.isNaN(length) ? 0 : length)) finish();
    });
    socket.on('error', () => {});
    socket.on('close', finish);
    socket.on('connect', async () => {
      for (const [index, part] of parts.entries()) {
        if (index > 0 && options.pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
        if (typeof part === 'function') await part();
        else if (socket.destroyed) return;
        else socket.write(part);
      }
      if (options.close) socket.end();
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The battery, state by state, on one federation that must still end right
// ---------------------------------------------------------------------------------------------

const federation: Member[] = [];
const relayed: Relayed[] = [];
const siteOf = (id: string): Site => {
  const member = federation.find((candidate) => candidate.id === id);
  if (member === undefined) throw new Error(`no site ${id}`);
  return member.site;
};

/** Relays what the sites named have queued, in that order (a controller's poll of each). */
async function relayFrom(...ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    const member = federation.find((candidate) => candidate.id === id);
    if (member === undefined) throw new Error(`no site ${id}`);
    const message = await relay(member, federation);
    if (message !== null) relayed.push(message);
  }
}

test('before setup: every bad call gets its 4xx and changes nothing', async () => {
  for (const [index, id] of IDS.entries()) {
    federation.push({ site: await startSite(id), id, coordinator: index === 0 });
  }
  assert.equal(await batter(siteOf(COORDINATOR), 'before setup'), []);
  assert.equal(await batter(siteOf(SECOND), 'before setup'), []);
});

test('computing: every bad call gets its 4xx and changes nothing', async () => {
  for (const member of federation) {
    const answer = await member.site.http.call(
      setupJson({ id: member.id, coordinator: member.coordinator, clients: [...IDS] }),
    );
    assert.is(answer.status, 200, answer.body.toString());
  }
  await inState(siteOf(COORDINATOR), 'local-compute');
  assert.equal(await batter(siteOf(COORDINATOR), 'computing'), []);
});

test('collecting, with a contribution queued: every bad call gets its 4xx and changes nothing', async () => {
  siteOf(SECOND).compute.open();
  siteOf(THIRD).compute.open();
  await until(siteOf(SECOND), 'a queued contribution', (client) => client.snapshot().context.outbox.length === 1);
  await inState(siteOf(THIRD), 'awaiting-aggregate.collecting');
  assert.equal(await batter(siteOf(SECOND), 'collecting'), []);
  // The coordinator collects while it still computes: the contributions wait in its inbox.
  await relayFrom(SECOND, THIRD);
  assert.equal(await batter(siteOf(COORDINATOR), 'computing'), []);
});

test('broadcasting: every bad call gets its 4xx and changes nothing', async () => {
  siteOf(COORDINATOR).compute.open();
  await inState(siteOf(COORDINATOR), 'broadcast.last');
  assert.equal(await batter(siteOf(COORDINATOR), 'broadcasting'), []);
});

test('confirming: every bad call gets its 4xx and changes nothing', async () => {
  await relayFrom(COORDINATOR);
  await inState(siteOf(COORDINATOR), 'finalizing.confirming');
  await inState(siteOf(SECOND), 'finalizing.confirming-to-coordinator');
  assert.equal(await batter(siteOf(COORDINATOR), 'confirming'), []);
  assert.equal(await batter(siteOf(SECOND), 'confirming'), []);
});

test('finished: every bad call gets its 4xx and changes nothing', async () => {
  await inState(siteOf(THIRD), 'finalizing.confirming-to-coordinator');
  await relayFrom(SECOND, THIRD);
  for (const member of federation) await inState(member.site, 'finished');
  assert.equal(await batter(siteOf(COORDINATOR), 'finished'), []);
  assert.equal(await batter(siteOf(THIRD), 'finished'), []);
});

test('the battered federation ends with the right result at every site', async () => {
  assert.equal(relayed, [
    { from: SECOND, memo: 'r1.local', to: [COORDINATOR], value: 20 },
    { from: THIRD, memo: 'r1.local', to: [COORDINATOR], value: 30 },
    { from: COORDINATOR, memo: 'r1.final', to: [SECOND, THIRD], value: 60 },
    { from: SECOND, memo: 'done', to: [COORDINATOR], value: decode(CONFIRMATION) },
    { from: THIRD, memo: 'done', to: [COORDINATOR], value: decode(CONFIRMATION) },
  ]);
  for (const member of federation) {
    const status = await statusOf(member.site);
    assert.equal(
      { finished: status.finished, state: status.state, available: status.available },
      { finished: true, state: null, available: false },
      member.id,
    );
    assert.equal(member.site.written, [60], member.id);
  }
});

test('error: every bad call gets its 4xx and changes nothing', async () => {
  const site = await startSite('failing', 'the site data has no numeric column');
  const answer = await site.http.call(setupJson(valid));
  assert.is(answer.status, 200);
  site.compute.open();
  await inState(site, 'error');
  assert.equal(await batter(site, 'error'), []);
});

// ---------------------------------------------------------------------------------------------
// Bodies that are cut short, slow, or never end
// ---------------------------------------------------------------------------------------------

const jsonType = { 'Content-Type': 'application/json' } as const;
const rawHead = (path: string, headers: Record<string, string>): string =>
  `POST ${path} HTTP/1.1\r\n${HOST}${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`;

test('a setup body cut short (Content-Length or chunked) changes nothing and is not our failure', async () => {
  const site = await startSite('truncated');
  const body = JSON.stringify({ id: 'a', coordinator: true, clients: ['a'] });
  const before = fingerprint(site);
  const sized = await rawExchange(
    site.port,
    [rawHead('/api/setup', { ...jsonType, 'Content-Length': String(body.length) }), body.slice(0, 20)],
    { pauseMs: 0, close: true },
  );
  assert.ok(sized.status === 0 || (sized.status >= 400 && sized.status < 500), String(sized.status));
  const chunked = await rawExchange(
    site.port,
    [rawHead('/api/setup', { ...jsonType, 'Transfer-Encoding': 'chunked' }), `${body.length.toString(16)}\r\n`, body.slice(0, 20)],
    { pauseMs: 0, close: true },
  );
  assert.ok(chunked.status === 0 || (chunked.status >= 400 && chunked.status < 500), String(chunked.status));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.is(fingerprint(site), before);
  assert.equal(site.failures, []);
  // The same setup, whole, still works.
  assert.is((await site.http.call(setupCall(body))).status, 200);
});

test('a chunked data body cut short mid-chunk changes nothing and is not our failure', async () => {
  const site = await startSite('chunks');
  assert.is((await site.http.call(setupJson({ id: 'a', coordinator: true, clients: ['a', 'b'] }))).status, 200);
  const before = fingerprint(site);
  const answer = await rawExchange(
    site.port,
    [rawHead('/api/data?client=b&memo=r1.local', { 'Transfer-Encoding': 'chunked' }), '64\r\n0123456789'],
    { pauseMs: 0, close: true },
  );
  assert.ok(answer.status === 0 || (answer.status >= 400 && answer.status < 500), String(answer.status));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.is(fingerprint(site), before);
  assert.equal(site.failures, []);
});

test('a chunked data body over the limit is a 413 as soon as the limit is passed', async () => {
  const site = await startSite('big chunks');
  assert.is((await site.http.call(setupJson({ id: 'a', coordinator: true, clients: ['a', 'b'] }))).status, 200);
  const before = fingerprint(site);
  const chunk = `${(BODY_LIMIT / 2).toString(16)}\r\n${'x'.repeat(BODY_LIMIT / 2)}\r\n`;
  // Three chunks and no terminating chunk: the answer must not wait for the end of the body.
  const answer = await rawExchange(
    site.port,
    [rawHead('/api/data?client=b&memo=r1.local', { 'Transfer-Encoding': 'chunked' }), chunk, chunk, chunk],
    { pauseMs: 5, close: false },
  );
  assert.is(mismatch(answer, TOO_LARGE), null);
  assert.is(fingerprint(site), before);
});

test('a declared Content-Length over the limit is a 413 before any of the body is read', async () => {
  const site = await startSite('declared');
  assert.is((await site.http.call(setupJson({ id: 'a', coordinator: true, clients: ['a', 'b'] }))).status, 200);
  const before = fingerprint(site);
  const tenGigabytes = String(10 * 1024 ** 3);
  const data = await rawExchange(
    site.port,
    [rawHead('/api/data?client=b&memo=r1.local', { 'Content-Length': tenGigabytes })],
    { pauseMs: 0, close: false },
  );
  assert.is(mismatch(data, TOO_LARGE), null);
  const setup = await rawExchange(
    site.port,
    [rawHead('/api/setup', { 'Content-Type': 'application/json', 'Content-Length': String(2 * JSON_LIMIT) }), '{'],
    { pauseMs: 0, close: false },
  );
  assert.is(mismatch(setup, TOO_LARGE), null);
  assert.is(fingerprint(site), before);
});

test('a slow setup body does not hold up other calls, and counts once it is complete', async () => {
  const site = await startSite('slow');
  const body = JSON.stringify({ id: 'a', coordinator: true, clients: ['a', 'b'] });
  const head = rawHead('/api/setup', { 'Content-Type': 'application/json', 'Content-Length': String(body.length) });
  const before = fingerprint(site);
  // The rest of the body waits until the status poll below has its answer.
  const polled = gate();
  const slow = rawExchange(site.port, [head, body.slice(0, 5), body.slice(5, 10), () => polled.promise, body.slice(10)], {
    pauseMs: 50,
    close: false,
  });
  await new Promise((resolve) => setTimeout(resolve, 150));
  const status = await statusOf(site);
  assert.is(status.message, 'waiting for setup', 'a status poll answers while a body trickles in');
  assert.is(fingerprint(site), before, 'nothing changes before the body is complete');
  polled.open();
  const answer = await slow;
  assert.is(answer.status, 200, answer.body.toString());
  assert.is(site.client.snapshot().context.setup?.id, 'a');
});

test('listen gives every request and every header block a finite time', async () => {
  const site = await startSite('limits');
  // A body that stalls is cut off after requestTimeout, headers that stall after headersTimeout
  // (both checked only every connectionsCheckingInterval, 30 s in Node 20).
  const { requestTimeout, headersTimeout } = site.server;
  assert.ok(requestTimeout > 0 && requestTimeout <= 300_000, `requestTimeout ${requestTimeout} ms`);
  assert.ok(headersTimeout > 0 && headersTimeout <= 60_000, `headersTimeout ${headersTimeout} ms`);
});

test('a body that stalls gets a JSON 408 once the request timeout passes, and nothing changes', async () => {
  const failures: string[] = [];
  const client = createClient(fixtureActors(gate(), [], null), silentLogger);
  const logger = createLogger('error', (line) => failures.push(line));
  const app = createApp(client, { bodyLimit: BODY_LIMIT, logger });
  const server = await listen(app, '127.0.0.1', 0, { headersMs: 200, requestMs: 200 });
  const { port } = server.address() as AddressInfo;
  try {
    const before = JSON.stringify(client.snapshot().value);
    const started = performance.now();
    const answer = await rawExchange(
      port,
      [rawHead('/api/setup', { 'Content-Type': 'application/json', 'Content-Length': '100' }), '{"id":'],
      { pauseMs: 0, close: false, waitMs: 3000 },
    );
    assert.is(mismatch(answer, { status: 408, error: 'request_timeout' }), null);
    assert.ok(performance.now() - started < 2000, 'the timeout fired in time');
    assert.is(JSON.stringify(client.snapshot().value), before);
    assert.is(client.snapshot().context.setup, null);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(failures, [], 'a timed-out upload is the peer\'s doing, not our failure');
  } finally {
    client.stop();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

// ---------------------------------------------------------------------------------------------
// Hostile but valid: accepted as they are
// ---------------------------------------------------------------------------------------------

test('a valid setup with a 100k-deep unknown field is accepted; the field is ignored', async () => {
  const site = await startSite('deep');
  const body = `{"id":"a","coordinator":true,"clients":["a"],"extra":${deep('[', '', ']', DEPTH)}}`;
  const answer = await site.http.call(setupCall(body));
  assert.is(answer.status, 200, answer.body.toString().slice(0, 200));
  const expected = { id: 'a', coordinator: true, clients: ['a'], coordinatorId: 'a' };
  assert.equal(site.client.snapshot().context.setup, expected);
});

test('a setup that starts with a byte order mark is accepted (the parser drops it)', async () => {
  const site = await startSite('bom');
  const body = JSON.stringify({ id: 'a', coordinator: true, clients: ['a'] });
  const answer = await site.http.call(setupCall(`\uFEFF${body}`));
  assert.is(answer.status, 200, answer.body.toString());
});

test('ids and memos at the edges of what is valid are accepted and kept as they came', async () => {
  const memo = '😀 \u202E\u0000'.repeat(50);
  for (const [clients, echoed, other] of [
    [`["${'x'.repeat(256)}","y"]`, ['x'.repeat(256), 'y'], 'y'],
    ['["nul\\u0000id","b"]', ['nul\u0000id', 'b'], 'b'],
    ['["\\u202Eright-to-left","\\ud83d\\udc27"]', ['\u202Eright-to-left', '🐧'], '🐧'],
    ['[-0,1]', [0, 1], '1'],
    ['[1e0,2.0]', [1, 2], '2'],
    [`[${-(2 ** 53 - 1)},${2 ** 53 - 1}]`, [-(2 ** 53 - 1), 2 ** 53 - 1], String(2 ** 53 - 1)],
  ] as const) {
    const site = await startSite(clients);
    const first = clients.slice(1, clients.indexOf(','));
    const answer = await site.http.call(setupCall(`{"id":${first},"coordinator":true,"clients":${clients}}`));
    assert.is(answer.status, 200, answer.body.toString());
    assert.equal((json(answer) as { setup: SetupInfo }).setup.clients, echoed);
    // The other client's data reaches it by its id as the query string carries it.
    const delivered = await site.http.call(post(`?client=${query(other)}&memo=${query(memo)}`));
    assert.is(delivered.status, 200, delivered.body.toString());
    assert.ok(Object.hasOwn(site.client.snapshot().context.inbox, memo));
  }
});

test('memos named like Object.prototype members are kept as messages like any other', async () => {
  const site = await startSite('prototype memos');
  assert.is((await site.http.call(setupJson({ id: 'a', coordinator: true, clients: ['a', 'b'] }))).status, 200);
  const memos = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', ''];
  for (const memo of memos) {
    const answer = await site.http.call(post(`?client=b&memo=${query(memo)}`, memo));
    assert.is(answer.status, 200, answer.body.toString());
  }
  const { inbox } = site.client.snapshot().context;
  for (const memo of memos) {
    assert.ok(Object.hasOwn(inbox, memo), memo);
    assert.is(new TextDecoder().decode(inbox[memo]?.['b']), memo);
  }
  assert.is(Object.getPrototypeOf(inbox), Object.prototype, 'the inbox kept its prototype');
  // The run is not disturbed: b's real contribution still completes the round.
  assert.is((await site.http.call(post('?client=b&memo=r1.local', '20'))).status, 200);
  site.compute.open();
  await inState(site, 'broadcast.last');
  assert.equal(decode(site.client.snapshot().context.outbox[0]?.payload ?? new Uint8Array()), 30);
});

// ---------------------------------------------------------------------------------------------
// Found by fuzzing (test/fuzz.test.ts), shrunk
// ---------------------------------------------------------------------------------------------

test('a participant that does not know its coordinator never takes a result from itself', async () => {
  const site = await startSite('self');
  assert.is((await site.http.call(setupJson({ id: 'b', coordinator: false, clients: ['a', 'b'] }))).status, 200);
  // A relay's mistake: the participant's own id named as the sender of a final result.
  assert.is((await site.http.call(post('?client=b&memo=r1.final', '99'))).status, 200);
  assert.is((await site.http.call(post('?client=a&memo=r1.final', '30'))).status, 200);
  site.compute.open();
  await inState(site, 'finalizing.confirming-to-coordinator');
  assert.equal(site.written, [30], 'the final result is the one the other client broadcast');
});

test('no call in this file was logged as our failure', () => {
  assert.equal(sites.flatMap((site) => site.failures), []);
});

test.run();
