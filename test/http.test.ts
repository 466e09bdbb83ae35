/**
 * The FeatureCloud HTTP contract, over a real socket: every route, every bad input, and a whole
 * two-site run in which this test plays the controller. Fixture sites contribute a small JSON
 * number (10 × their position in `clients`); the coordinator sums them and finishes in one round.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { fromPromise } from 'xstate';
import {
  CONFIRMATION,
  type AggregateInput,
  type AggregateOutput,
  type LocalComputeInput,
  type LocalComputeOutput,
  type Privacy,
  type WriteResultsInput,
} from '../machines/client.machine.ts';
import { createClient, type Client, type ClientActors } from '../src/client.ts';
import { createApp } from '../src/http/app.ts';
import { createLogger, silentLogger } from '../src/log.ts';
import {
  MAX_STATUS_MESSAGE,
  STATUS_KEYS,
  type ClientId,
  type SetupInfo,
  type Status,
} from '../src/protocol/types.ts';
import { listen } from '../src/server.ts';

const BODY_LIMIT = 1024;

// ---------------------------------------------------------------------------------------------
// Fixture sites
// ---------------------------------------------------------------------------------------------

const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const decode = (bytes: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(bytes));
const contributionOf = (setup: SetupInfo): number =>
  10 * (setup.clients.findIndex((id) => String(id) === String(setup.id)) + 1);
const noPrivacy: Privacy = { smpc: null, dp: null };
/** A gate never opened: the site stays in local-compute, a stable state to probe. */
const computingForever = new Promise<void>(() => {});

interface FixtureOptions {
  /** computeLocal waits for this before answering: "the site is still computing". */
  readonly gate?: Promise<void>;
  readonly privacy?: Privacy;
  readonly failLocal?: string;
  readonly failAggregate?: string;
}

/** What a site's fixture actors were called with. */
interface Recorded {
  readonly aggregated: AggregateInput[];
  readonly written: unknown[];
}

function fixtureActors(options: FixtureOptions, record: Recorded): ClientActors {
  return {
    computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async ({ input }) => {
      await options.gate;
      if (options.failLocal !== undefined) throw new Error(options.failLocal);
      return {
        payload: encode(contributionOf(input.setup)),
        privacy: options.privacy ?? noPrivacy,
        expectedRounds: 1,
      };
    }),
    aggregate: fromPromise<AggregateOutput, AggregateInput>(async ({ input }) => {
      record.aggregated.push(input);
      if (options.failAggregate !== undefined) throw new Error(options.failAggregate);
      const sum = input.contributions.reduce((total, bytes) => total + Number(decode(bytes)), 0);
      return { payload: encode(sum), final: true };
    }),
    writeResults: fromPromise<void, WriteResultsInput>(async ({ input }) => {
      record.written.push(decode(input.final));
    }),
  };
}

interface Site extends Recorded {
  readonly client: Client;
  readonly url: string;
  /** Lines the app logged at error level: a 500 always leaves one here. */
  readonly failures: string[];
}

const open: { site: Site; server: Server }[] = [];

async function startSite(options: FixtureOptions = {}): Promise<Site> {
  const failures: string[] = [];
  const record: Recorded = { aggregated: [], written: [] };
  const client = createClient(fixtureActors(options, record), silentLogger);
  const app = createApp(client, {
    bodyLimit: BODY_LIMIT,
    logger: createLogger('error', (line) => failures.push(line)),
  });
  const server = await listen(app, '127.0.0.1', 0);
  const { port } = server.address() as AddressInfo;
  const site: Site = { ...record, client, url: `http://127.0.0.1:${port}`, failures };
  open.push({ site, server });
  return site;
}

/** Error-level log lines of sites already closed; the last test asserts there are none. */
const unexpectedFailures: string[] = [];

// A hook must not throw (uvu would abort the whole file), so it only closes and collects.
test.after.each(async () => {
  for (const { site, server } of open.splice(0)) {
    site.client.stop();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    unexpectedFailures.push(...site.failures);
  }
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

// ---------------------------------------------------------------------------------------------
// Calls, as a controller makes them
// ---------------------------------------------------------------------------------------------

const json = (value: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(value),
});

const postSetup = (site: Site, body: unknown): Promise<Response> =>
  fetch(`${site.url}/api/setup`, json(body));

async function setUp(site: Site, body: unknown): Promise<void> {
  const response = await postSetup(site, body);
  assert.is(response.status, 200, await response.text());
}

async function getStatus(site: Site): Promise<Status> {
  const response = await fetch(`${site.url}/api/status`);
  assert.is(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await response.json()) as Record<string, unknown>;
  assert.equal(Object.keys(body).sort(), [...STATUS_KEYS].sort());
  return body as unknown as Status;
}

async function getData(site: Site): Promise<Uint8Array> {
  const response = await fetch(`${site.url}/api/data`);
  assert.is(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^application\/octet-stream/);
  return new Uint8Array(await response.arrayBuffer());
}

const dataUrl = (site: Site, query: string): string => `${site.url}/api/data${query}`;

async function postData(site: Site, query: string, payload: Uint8Array): Promise<void> {
  const response = await fetch(dataUrl(site, query), {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: payload,
  });
  assert.is(response.status, 200, await response.text());
}

async function waitForStatus(site: Site, accept: (status: Status) => boolean): Promise<Status> {
  for (let attempt = 0; attempt < 400; attempt += 1) {
    const status = await getStatus(site);
    if (accept(status)) return status;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error('the status never reached the expected value');
}

/** The machine's observable state: what no client mistake may change. */
function fingerprint(site: Site): string {
  const { value, context } = site.client.snapshot();
  const { setup, round, inbox, outbox, consumed } = context;
  return JSON.stringify({ value, setup, round, inbox, outbox, consumed });
}

interface Problem {
  readonly error: string;
  readonly detail: string;
  readonly field?: string;
}

async function problemOf(response: Response, status: number): Promise<Problem> {
  const text = await response.text();
  assert.is(response.status, status, text);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(text) as Record<string, unknown>;
  assert.type(body.error, 'string');
  assert.type(body.detail, 'string');
  for (const key of Object.keys(body)) assert.ok(['error', 'detail', 'field'].includes(key), key);
  return body as unknown as Problem;
}

/** The call is refused with `status` (naming `field`, when given) and changes nothing. */
async function refused(
  site: Site,
  call: () => Promise<Response>,
  status: number,
  field?: string,
): Promise<Problem> {
  const before = fingerprint(site);
  const problem = await problemOf(await call(), status);
  if (field !== undefined) assert.is(problem.field, field, problem.detail);
  assert.is(fingerprint(site), before, 'the machine is unchanged');
  return problem;
}

interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** node:http, for what fetch cannot express: a body streamed in chunks without Content-Length. */
function rawPost(site: Site, path: string, chunks: readonly Uint8Array[]): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(`${site.url}${path}`, { method: 'POST' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    // The server may answer and stop reading before the whole body is sent.
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

/** A raw socket that sends `head` and `body`, then closes its side: returns whatever came back. */
function rawExchange(site: Site, head: string, body: Uint8Array): Promise<string> {
  const { port } = new URL(site.url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(head);
      socket.end(body);
    });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
  });
}

// ---------------------------------------------------------------------------------------------
// POST /api/setup
// ---------------------------------------------------------------------------------------------

const coordinatorA = { id: 'a', coordinator: true, clients: ['a', 'b'] };
const participantB = { id: 'b', coordinator: false, clients: ['a', 'b'] };

test('setup answers 200 at once and starts local execution in the background', async () => {
  const gate = deferred();
  const site = await startSite({ gate: gate.promise });
  const response = await postSetup(site, participantB);
  assert.is(response.status, 200);
  assert.equal(await response.json(), {
    setup: { id: 'b', coordinator: false, clients: ['a', 'b'], coordinatorId: null },
  });
  assert.is(site.client.snapshot().value, 'local-compute');
  const status = await getStatus(site);
  assert.is(status.state, 'running');
  assert.is(status.available, false);
  gate.resolve();
  const ready = await waitForStatus(site, (s) => s.available);
  assert.is(ready.memo, 'r1.local');
});

test('setup accepts numeric ids and echoes them as numbers', async () => {
  const site = await startSite({ gate: computingForever });
  const response = await postSetup(site, { id: 1, coordinator: true, clients: [1, 2] });
  assert.is(response.status, 200);
  assert.equal(await response.json(), {
    setup: { id: 1, coordinator: true, clients: [1, 2], coordinatorId: 1 },
  });
});

test('setup accepts the legacy master flag for coordinator', async () => {
  const coordinator = await startSite({ gate: computingForever });
  await setUp(coordinator, { id: 'a', master: true, clients: ['a', 'b'] });
  assert.is(coordinator.client.snapshot().context.setup?.coordinator, true);
  const participant = await startSite({ gate: computingForever });
  await setUp(participant, { id: 'b', master: false, clients: ['a', 'b'] });
  assert.is(participant.client.snapshot().context.setup?.coordinator, false);
  const agreeing = await startSite({ gate: computingForever });
  await setUp(agreeing, { id: 'a', master: true, coordinator: true, clients: ['a', 'b'] });
});

test('setup accepts a consistent coordinatorID', async () => {
  const site = await startSite({ gate: computingForever });
  await setUp(site, { ...participantB, coordinatorID: 'a' });
  assert.is(site.client.snapshot().context.setup?.coordinatorId, 'a');
});

test('setup with malformed JSON is a 400 and changes nothing', async () => {
  const site = await startSite();
  const call = (body: string) => () =>
    fetch(`${site.url}/api/setup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
  await refused(site, call('{"id": "a",'), 400);
  await refused(site, call('not json'), 400);
  await refused(site, call('null'), 400);
  await refused(site, call('"a"'), 400);
  await refused(site, call('[1, 2]'), 400);
  await refused(site, call(''), 400);
  assert.is(site.client.snapshot().value, 'initial');
});

test('setup with a missing or wrong-typed field is a 400 naming the field', async () => {
  const site = await startSite();
  const bad = async (body: unknown, field: string) =>
    refused(site, () => postSetup(site, body), 400, field);
  await bad({ coordinator: true, clients: ['a'] }, 'id');
  await bad({ id: true, coordinator: true, clients: ['a'] }, 'id');
  await bad({ id: '', coordinator: true, clients: ['a'] }, 'id');
  await bad({ id: 1.5, coordinator: true, clients: [1.5] }, 'id');
  await bad({ id: null, coordinator: true, clients: ['a'] }, 'id');
  await bad({ id: 'x'.repeat(257), coordinator: true, clients: ['a'] }, 'id');
  await bad({ id: 'a', clients: ['a'] }, 'coordinator');
  await bad({ id: 'a', coordinator: 'yes', clients: ['a'] }, 'coordinator');
  await bad({ id: 'a', coordinator: null, clients: ['a'] }, 'coordinator');
  await bad({ id: 'a', master: 1, clients: ['a'] }, 'master');
  await bad({ id: 'a', coordinator: true, master: false, clients: ['a', 'b'] }, 'coordinator');
  await bad({ id: 'a', coordinator: true }, 'clients');
  await bad({ id: 'a', coordinator: true, clients: 'a,b' }, 'clients');
  await bad({ id: 'a', coordinator: true, clients: { a: 1 } }, 'clients');
  await bad({ id: 'a', coordinator: true, clients: ['a', true] }, 'clients[1]');
  await bad({ id: 'a', coordinator: true, clients: ['a', ''] }, 'clients[1]');
  await bad({ id: 'a', coordinator: true, clients: ['a'], coordinatorID: false }, 'coordinatorID');
  assert.is(site.client.snapshot().value, 'initial');
});

test('setup with id not in clients, empty or duplicate clients is a 400 naming the field', async () => {
  const site = await startSite();
  const bad = async (body: unknown, field: string) =>
    refused(site, () => postSetup(site, body), 400, field);
  await bad({ id: 'c', coordinator: true, clients: ['a', 'b'] }, 'id');
  await bad({ id: 3, coordinator: true, clients: [1, 2] }, 'id');
  await bad({ id: 'a', coordinator: true, clients: [] }, 'clients');
  await bad({ id: 'a', coordinator: true, clients: ['a', 'b', 'a'] }, 'clients');
  // The query string cannot tell 1 from "1", so they are the same client.
  await bad({ id: 1, coordinator: true, clients: [1, '1'] }, 'clients');
});

test('setup with an inconsistent coordinatorID is a 400 naming coordinatorID', async () => {
  const site = await startSite();
  const bad = async (body: unknown) =>
    refused(site, () => postSetup(site, body), 400, 'coordinatorID');
  await bad({ ...coordinatorA, coordinatorID: 'b' });
  await bad({ ...participantB, coordinatorID: 'b' });
  await bad({ ...participantB, coordinatorID: 'z' });
});

test('setup with a non-JSON content type is a 415', async () => {
  const site = await startSite();
  const post = (contentType: string, body: string) => () =>
    fetch(`${site.url}/api/setup`, { method: 'POST', headers: { 'content-type': contentType }, body });
  await refused(site, post('text/plain', JSON.stringify(coordinatorA)), 415);
  await refused(site, post('application/x-www-form-urlencoded', 'id=a&coordinator=true'), 415);
  await refused(site, post('application/octet-stream', JSON.stringify(coordinatorA)), 415);
  assert.is(site.client.snapshot().value, 'initial');
});

test('setup with a body larger than the JSON limit is a 413', async () => {
  const site = await startSite();
  const clients = Array.from({ length: 120_000 }, (_, index) => `client-${index}`);
  await refused(site, () => postSetup(site, { id: 'client-0', coordinator: true, clients }), 413);
});

test('the same setup again is a 200; a different one after setup is a 409', async () => {
  const site = await startSite({ gate: computingForever });
  await setUp(site, coordinatorA);
  await setUp(site, coordinatorA);
  await setUp(site, { id: 'a', master: true, clients: ['a', 'b'] });
  const withCharset = await fetch(`${site.url}/api/setup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: JSON.stringify(coordinatorA),
  });
  assert.is(withCharset.status, 200);
  await refused(site, () => postSetup(site, participantB), 409);
  await refused(site, () => postSetup(site, { ...coordinatorA, clients: ['a', 'b', 'c'] }), 409);
  await refused(site, () => postSetup(site, { id: 'a', coordinator: false, clients: ['a', 'b'] }), 409);
  // Validation still comes first: a broken retry is a 400, not a 409.
  await refused(site, () => postSetup(site, { id: 'a' }), 400, 'coordinator');
  assert.is(site.client.snapshot().context.setup?.id, 'a');
});

// ---------------------------------------------------------------------------------------------
// GET /api/status, GET /api/data
// ---------------------------------------------------------------------------------------------

test('status before setup has all nine keys, null when unset', async () => {
  const site = await startSite();
  const status = await getStatus(site);
  assert.equal(status, {
    available: false,
    finished: false,
    message: 'waiting for setup',
    progress: null,
    state: null,
    destination: null,
    smpc: null,
    dp: null,
    memo: null,
  });
});

test('HEAD on status answers 200 with the JSON headers and no body', async () => {
  const site = await startSite();
  const response = await fetch(`${site.url}/api/status`, { method: 'HEAD' });
  assert.is(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  assert.is(await response.text(), '');
});

test('status peeks at the head of the outbox; data pops exactly that item', async () => {
  const site = await startSite();
  await setUp(site, participantB);
  const first = await waitForStatus(site, (status) => status.available);
  const again = await getStatus(site);
  assert.equal(again, first, 'a second status is the same peek');
  assert.is(first.memo, 'r1.local');
  assert.is(first.destination, null);
  assert.is(first.finished, false);
  assert.is(first.state, 'running');
  assert.is(site.client.snapshot().context.outbox.length, 1);

  const bytes = await getData(site);
  assert.equal(decode(bytes), 20, "the bytes are the participant's r1.local contribution");
  assert.is(site.client.snapshot().context.outbox.length, 0);
  const after = await getStatus(site);
  assert.is(after.available, false);
  assert.is(after.memo, null);
  assert.is((await getData(site)).byteLength, 0, 'an empty outbox gives an empty body');
});

test('HEAD on data describes the head item without popping it', async () => {
  const site = await startSite();
  await setUp(site, participantB);
  await waitForStatus(site, (status) => status.available);
  const before = fingerprint(site);
  const response = await fetch(`${site.url}/api/data`, { method: 'HEAD' });
  assert.is(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^application\/octet-stream/);
  assert.is(response.headers.get('content-length'), String(encode(20).byteLength));
  assert.is(await response.text(), '');
  assert.is(fingerprint(site), before, 'the item is still queued');
  assert.equal(decode(await getData(site)), 20);
});

test('data with an empty outbox is a 200 with an empty body, before setup too', async () => {
  const site = await startSite();
  const before = fingerprint(site);
  assert.is((await getData(site)).byteLength, 0);
  assert.is(fingerprint(site), before);
});

test('status carries the head item\'s dp options and echoes a numeric destination as a number', async () => {
  const dp = { serialization: 'json', noisetype: 'laplace', epsilon: 1, delta: 0 } as const;
  const site = await startSite({ privacy: { smpc: null, dp } });
  await setUp(site, { id: 1, coordinator: true, clients: [1, 2] });
  const status = await waitForStatus(site, (s) => s.available);
  assert.is(status.destination, 1, 'the coordinator sends its own DP share to itself');
  assert.equal(status.dp, dp);
  assert.is(status.smpc, null);
  assert.is(status.memo, 'r1.local');
});

// ---------------------------------------------------------------------------------------------
// POST /api/data
// ---------------------------------------------------------------------------------------------

test('data before setup is a 409', async () => {
  const site = await startSite();
  await refused(site, () => fetch(dataUrl(site, '?client=a&memo=r1.local'), { method: 'POST', body: '1' }), 409);
  assert.is(site.client.snapshot().value, 'initial');
});

test('data without a client, or with it repeated, is a 400 naming client', async () => {
  const site = await startSite({ gate: computingForever });
  await setUp(site, coordinatorA);
  const post = (query: string) => () =>
    fetch(dataUrl(site, query), { method: 'POST', body: '20' });
  await refused(site, post(''), 400, 'client');
  await refused(site, post('?memo=r1.local'), 400, 'client');
  await refused(site, post('?client=&memo=r1.local'), 400, 'client');
  await refused(site, post('?client=a&client=b&memo=r1.local'), 400, 'client');
  await refused(site, post('?client=b&memo=r1.local&memo=r2.local'), 400, 'memo');
  await refused(site, post(`?client=b&memo=${'m'.repeat(257)}`), 400, 'memo');
});

test('data from a client not in the setup is a 403 naming client', async () => {
  const site = await startSite({ gate: computingForever });
  await setUp(site, { id: 1, coordinator: true, clients: [1, 2] });
  const post = (query: string) => () =>
    fetch(dataUrl(site, query), { method: 'POST', body: '20' });
  await refused(site, post('?client=3&memo=r1.local'), 403, 'client');
  await refused(site, post('?client=02&memo=r1.local'), 403, 'client');
  await refused(site, post('?client=c&memo=r1.local'), 403, 'client');
});

test('data over the size limit is a 413, with or without Content-Length', async () => {
  const site = await startSite({ gate: computingForever });
  await setUp(site, coordinatorA);
  const tooLarge = new Uint8Array(BODY_LIMIT + 1);
  await refused(
    site,
    () => fetch(dataUrl(site, '?client=b&memo=r1.local'), { method: 'POST', body: tooLarge }),
    413,
  );

  const before = fingerprint(site);
  const chunk = new Uint8Array(BODY_LIMIT / 2);
  const streamed = await rawPost(site, '/api/data?client=b&memo=r1.local', [chunk, chunk, chunk, chunk]);
  assert.is(streamed.status, 413, streamed.body);
  assert.match(String(streamed.headers['content-type']), /^application\/json/);
  assert.is((JSON.parse(streamed.body) as Problem).error, 'payload_too_large');
  assert.is(fingerprint(site), before);

  // Exactly at the limit is fine.
  await postData(site, '?client=b&memo=r1.local', new Uint8Array(BODY_LIMIT));
});

test('a truncated data body (Content-Length larger than what is sent) changes nothing', async () => {
  const site = await startSite({ gate: computingForever });
  await setUp(site, coordinatorA);
  const before = fingerprint(site);
  const head =
    'POST /api/data?client=b&memo=r1.local HTTP/1.1\r\n' +
    'Host: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n';
  const answer = await rawExchange(site, head, new Uint8Array(10));
  assert.not.match(answer, /^HTTP\/1\.1 5/);
  assert.is(fingerprint(site), before);
  assert.equal(site.failures, [], 'a cut-short upload is not logged as our failure');
  // The site still answers, and still takes the complete message.
  await postData(site, '?client=b&memo=r1.local', encode(20));
  assert.ok('b' in (site.client.snapshot().context.inbox['r1.local'] ?? {}));
});

test('data of any content type is kept as its raw bytes', async () => {
  const site = await startSite({ gate: computingForever });
  await setUp(site, { id: 'a', coordinator: true, clients: ['a', 'b', 'c'] });
  const post = (client: string, contentType: string, body: string) =>
    fetch(dataUrl(site, `?client=${client}&memo=r1.local`), {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    });
  assert.is((await post('b', 'application/json', '{"sum": 20}')).status, 200);
  assert.is((await post('c', 'application/x-www-form-urlencoded', 'sum=30')).status, 200);
  const messages = site.client.snapshot().context.inbox['r1.local'] ?? {};
  assert.is(new TextDecoder().decode(messages['b']), '{"sum": 20}');
  assert.is(new TextDecoder().decode(messages['c']), 'sum=30');
});

test('data that arrives early is kept until the site is ready for it', async () => {
  const gate = deferred();
  const site = await startSite({ gate: gate.promise });
  await setUp(site, coordinatorA);
  assert.is(site.client.snapshot().value, 'local-compute');
  await postData(site, '?client=b&memo=r1.local', encode(20));
  assert.is(site.client.snapshot().value, 'local-compute', 'the coordinator is still computing');
  gate.resolve();
  const status = await waitForStatus(site, (s) => s.available);
  assert.is(status.memo, 'r1.final');
  assert.equal(decode(await getData(site)), 30, 'own 10 + early 20');
});

test('the same message delivered twice counts once', async () => {
  const site = await startSite();
  await setUp(site, { id: 'a', coordinator: true, clients: ['a', 'b', 'c'] });
  await waitForStatus(site, (s) => s.message?.startsWith('waiting for the aggregate') === true);
  await postData(site, '?client=b&memo=r1.local', encode(20));
  await postData(site, '?client=b&memo=r1.local', encode(20));
  assert.equal(site.client.snapshot().value, { 'awaiting-aggregate': 'collecting' });
  assert.equal(Object.keys(site.client.snapshot().context.inbox['r1.local'] ?? {}), ['b']);
  assert.is(site.aggregated.length, 0, 'no aggregate with one of two participants in');

  await postData(site, '?client=c&memo=r1.local', encode(30));
  const status = await waitForStatus(site, (s) => s.available);
  assert.is(site.aggregated.length, 1);
  assert.is(site.aggregated[0]?.contributions.length, 3);
  assert.equal(decode(await getData(site)), 60);
  assert.is(status.memo, 'r1.final');
});

test('numeric ids: a participant posting ?client=2 is matched to client 2', async () => {
  const site = await startSite();
  await setUp(site, { id: 1, coordinator: true, clients: [1, 2] });
  await postData(site, '?client=2&memo=r1.local', encode(20));
  const status = await waitForStatus(site, (s) => s.available);
  assert.is(status.memo, 'r1.final');
  assert.is(status.destination, null, 'the final result is a broadcast');
  assert.equal(decode(await getData(site)), 30);
  assert.equal(site.client.snapshot().value, { finalizing: 'confirming' });
  await postData(site, '?client=2&memo=done', CONFIRMATION);
  const finished = await waitForStatus(site, (s) => s.finished);
  assert.is(finished.state, null);
  assert.is(finished.progress, 1);
});

// ---------------------------------------------------------------------------------------------
// GET /web, unknown routes and methods
// ---------------------------------------------------------------------------------------------

test('web answers a plain status string, before setup too', async () => {
  const site = await startSite({ gate: computingForever });
  const before = await fetch(`${site.url}/web`);
  assert.is(before.status, 200);
  assert.match(before.headers.get('content-type') ?? '', /^text\/plain/);
  assert.is(await before.text(), 'State: initial');
  await setUp(site, coordinatorA);
  const after = await fetch(`${site.url}/web`);
  assert.is(await after.text(), 'State: local-compute (coordinator a, round 1)');
});

test('an unknown path is a 404 with a JSON error', async () => {
  const site = await startSite();
  for (const [method, path] of [
    ['GET', '/'],
    ['GET', '/api'],
    ['GET', '/api/nothing'],
    ['POST', '/api/status/extra'],
    ['DELETE', '/status'],
  ] as const) {
    const problem = await refused(site, () => fetch(`${site.url}${path}`, { method }), 404);
    assert.is(problem.error, 'not_found');
  }
});

test('a wrong method is a 405 with a JSON error and Allow', async () => {
  const site = await startSite();
  const cases = [
    ['DELETE', '/api/status', 'GET, HEAD'],
    ['POST', '/api/status', 'GET, HEAD'],
    ['PUT', '/api/setup', 'POST'],
    ['GET', '/api/setup', 'POST'],
    ['PATCH', '/api/data', 'GET, HEAD, POST'],
    ['POST', '/web', 'GET, HEAD'],
    // A method the router does not implement at all is still the client's mistake: no 501.
    ['PROPFIND', '/api/status', 'GET, HEAD'],
  ] as const;
  for (const [method, path, allow] of cases) {
    const response = await fetch(`${site.url}${path}`, { method });
    const allowed = (response.headers.get('allow') ?? '').split(/,\s*/).sort().join(', ');
    const problem = await refused(site, async () => response, 405);
    assert.is(problem.error, 'method_not_allowed');
    assert.is(allowed, allow, `${method} ${path}`);
  }
});

test('a method the router does not implement on an unknown path is a 404', async () => {
  const site = await startSite();
  await refused(site, () => fetch(`${site.url}/nothing`, { method: 'PROPFIND' }), 404);
});

// ---------------------------------------------------------------------------------------------
// Failures and the whole run
// ---------------------------------------------------------------------------------------------

test('a failing local computation puts the site in its error state', async () => {
  const site = await startSite({ failLocal: 'the site data has no numeric column named "age"' });
  await setUp(site, participantB);
  const status = await waitForStatus(site, (s) => s.finished);
  assert.is(status.state, 'error');
  assert.is(status.available, false);
  assert.ok(status.message !== null && status.message.length <= MAX_STATUS_MESSAGE, status.message ?? '');
  assert.ok(status.message?.startsWith('the site data has no numeric column'), status.message ?? '');
  assert.is(site.client.snapshot().value, 'error');
  assert.is((await getData(site)).byteLength, 0, 'nothing is queued');
  await refused(site, () => fetch(dataUrl(site, '?client=a&memo=r1.global'), { method: 'POST', body: '1' }), 409);
  assert.match(await (await fetch(`${site.url}/web`)).text(), /^State: error/);
});

test('a failing aggregate puts the coordinator in its error state and queues nothing', async () => {
  const site = await startSite({ failAggregate: 'sum overflowed' });
  await setUp(site, coordinatorA);
  await postData(site, '?client=b&memo=r1.local', encode(20));
  const status = await waitForStatus(site, (s) => s.finished);
  assert.equal(
    { finished: status.finished, state: status.state, message: status.message, available: status.available },
    { finished: true, state: 'error', message: 'sum overflowed', available: false },
  );
  assert.is((await getData(site)).byteLength, 0);
});

interface Member {
  readonly site: Site;
  readonly id: ClientId;
  readonly coordinator: boolean;
}

interface Relayed {
  readonly from: ClientId;
  readonly memo: string | null;
  readonly to: readonly ClientId[];
  readonly value: unknown;
}

/** One controller poll of `from`: if it has data, fetch it and deliver it by the relay rules. */
async function relayFrom(from: Member, members: readonly Member[]): Promise<Relayed | null> {
  const status = await getStatus(from.site);
  if (!status.available) return null;
  const payload = await getData(from.site);
  const targets =
    status.destination !== null
      ? members.filter((member) => String(member.id) === String(status.destination))
      : from.coordinator
        ? members.filter((member) => member !== from)
        : members.filter((member) => member.coordinator);
  const memo = status.memo === null ? '' : `&memo=${encodeURIComponent(status.memo)}`;
  for (const to of targets) {
    await postData(to.site, `?client=${encodeURIComponent(String(from.id))}${memo}`, payload);
  }
  return {
    from: from.id,
    memo: status.memo,
    to: targets.map((member) => member.id),
    value: decode(payload),
  };
}

test('a full two-client run over HTTP ends with both sites finished', async () => {
  const a = await startSite();
  const b = await startSite();
  await setUp(a, { id: 1, coordinator: true, clients: [1, 2] });
  await setUp(b, { id: 2, coordinator: false, clients: [1, 2] });
  const members: Member[] = [
    { site: a, id: 1, coordinator: true },
    { site: b, id: 2, coordinator: false },
  ];

  const relayed: Relayed[] = [];
  for (let poll = 0; poll < 400; poll += 1) {
    for (const member of members) {
      const message = await relayFrom(member, members);
      if (message !== null) relayed.push(message);
    }
    const statuses = await Promise.all(members.map((member) => getStatus(member.site)));
    if (statuses.every((status) => status.finished)) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }

  assert.equal(relayed, [
    { from: 2, memo: 'r1.local', to: [1], value: 20 },
    { from: 1, memo: 'r1.final', to: [2], value: 30 },
    { from: 2, memo: 'done', to: [1], value: decode(CONFIRMATION) },
  ]);
  for (const site of [a, b]) {
    const status = await getStatus(site);
    assert.is(status.finished, true);
    assert.is(status.state, null);
    assert.is(status.available, false);
    assert.equal(site.written, [30]);
    assert.is(site.client.snapshot().value, 'finished');
  }
  assert.is(await (await fetch(`${a.url}/web`)).text(), 'State: finished (coordinator 1, round 1)');
});

test('no request in this file ended in a 500', () => {
  assert.equal(unexpectedFailures, []);
});

test.run();
