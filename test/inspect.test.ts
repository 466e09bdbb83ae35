/**
 * Watching a client's machine: XState's inspection events written as JSON lines (`--trace`), and
 * sent through the Stately inspector relay (`--inspect`), which must work offline on this machine.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { fromPromise, waitFor } from 'xstate';
import type {
  AggregateInput,
  AggregateOutput,
  LocalComputeInput,
  LocalComputeOutput,
  WriteResultsInput,
} from '../machines/client.machine.ts';
import { createClient, type ClientActors } from '../src/client.ts';
import { silentLogger } from '../src/log.ts';
import {
  DEFAULT_INSPECT_PORT,
  inspectorClient,
  parseWatchOptions,
  plain,
  startInspectorRelay,
  traceToFile,
  WatchUsageError,
  type TraceRecord,
} from '../src/visual/inspect.ts';

const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

const actors: ClientActors = {
  computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async () => ({
    payload: encode([1, 2, 3, 4]),
    privacy: { smpc: null, dp: null },
    expectedRounds: 1,
  })),
  aggregate: fromPromise<AggregateOutput, AggregateInput>(async () => ({ payload: encode(10), final: true })),
  writeResults: fromPromise<void, WriteResultsInput>(async () => {}),
};

const participant = { id: 'b', coordinator: false, clients: ['a', 'b'], coordinatorId: 'a' } as const;

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

test('a trace holds every inspection event as a JSON line, payloads as their size', async () => {
  const file = join(await mkdtemp(join(tmpdir(), 'fc-inspect-')), 'client.xstate.jsonl');
  const trace = traceToFile(file);
  const client = createClient(actors, silentLogger, { inspect: trace.inspect, name: 'site-b' });
  client.send({ type: 'fc.setup', setup: participant });
  await waitFor(client.actor, (snapshot) => snapshot.matches('awaiting-aggregate'));
  client.stop();
  await trace.close();

  const records = (await readFile(file, 'utf8'))
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as TraceRecord);
  const types = new Set(records.map((record) => record.type));
  for (const type of ['@xstate.actor', '@xstate.event', '@xstate.snapshot', '@xstate.microstep', '@xstate.action']) {
    assert.ok(types.has(type as TraceRecord['type']), `the trace has ${type}`);
  }
  const events = records.filter((record) => record.type === '@xstate.event' && record.actor === 'site-b');
  const setup = events.find((record) => (record.event as { type?: string }).type === 'fc.setup');
  assert.equal(setup?.event, { type: 'fc.setup', setup: participant });
  const queued = records.find(
    (record) =>
      record.type === '@xstate.snapshot' &&
      record.actor === 'site-b' &&
      (record.snapshot as { value?: unknown }).value !== undefined &&
      JSON.stringify((record.snapshot as { value: unknown }).value) === '{"awaiting-aggregate":"collecting"}',
  );
  assert.ok(queued, 'a snapshot in awaiting-aggregate.collecting');
  const outbox = (queued.snapshot as { context: { outbox: { memo: string; payload: unknown }[] } }).context.outbox;
  assert.equal(outbox[0]?.memo, 'r1.local');
  assert.equal(outbox[0]?.payload, { bytes: encode([1, 2, 3, 4]).byteLength }, 'bytes are shown as their size');
  assert.ok(records.some((record) => record.actor === 'computeLocal'), 'the invoked actor is traced too');
});

test('plain copies: bytes, errors, functions, maps', () => {
  assert.equal(plain({ a: new Uint8Array(3), f: () => 1, e: new RangeError('no'), m: new Map([['k', 1]]) }), {
    a: { bytes: 3 },
    e: { error: 'RangeError', message: 'no' },
    m: { k: 1 },
  });
});

test('the inspector relay passes every event on, offline on this machine', async () => {
  const relay = await startInspectorRelay(await freePort());
  const received: { type?: string; name?: string; sessionId?: string; snapshot?: { value?: unknown } }[] = [];
  const receiver = new WebSocket(relay.socket);
  receiver.on('message', (data: WebSocket.RawData) => received.push(JSON.parse(data.toString()) as (typeof received)[number]));
  await new Promise<void>((resolve, reject) => {
    receiver.once('open', () => resolve());
    receiver.once('error', reject);
  });
  const inspector = await inspectorClient(relay.socket, 'site-b');
  const client = createClient(actors, silentLogger, { inspect: inspector.inspect, name: 'site-b' });
  try {
    client.send({ type: 'fc.setup', setup: participant });
    const deadline = Date.now() + 5000;
    const seen = () =>
      received.some((event) => event.type === '@xstate.actor' && event.name === 'site-b') &&
      received.some(
        (event) =>
          event.type === '@xstate.snapshot' &&
          JSON.stringify(event.snapshot?.value) === '{"awaiting-aggregate":"collecting"}',
      );
    while (!seen() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(seen(), `the receiver got the client's actor and its snapshots (${received.length} events)`);
    assert.ok(
      received.every((event) => event.sessionId?.startsWith('site-b/') === true),
      'sessions are named by client, so clients in different processes stay apart',
    );
    const page = await fetch(relay.page);
    assert.match(await page.text(), /stately\.ai\/inspect/, 'the relay serves the page that embeds the inspector');
  } finally {
    client.stop();
    await inspector.close();
    receiver.close();
    relay.close();
  }
});

test('a relay port in use is a usage mistake that names INSPECT_PORT', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, resolve));
  const { port } = taken.address() as AddressInfo;
  try {
    await startInspectorRelay(port).then(
      () => assert.unreachable('the relay started on a taken port'),
      (error: unknown) => {
        assert.instance(error, WatchUsageError);
        assert.match(String(error), /INSPECT_PORT/);
      },
    );
  } finally {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
  }
});

test('npm start options: --inspect, --trace FILE, INSPECT_URL and INSPECT_PORT', () => {
  assert.equal(parseWatchOptions([], {}), {
    inspect: false,
    inspectUrl: null,
    inspectPort: DEFAULT_INSPECT_PORT,
    trace: null,
    name: null,
  });
  assert.equal(parseWatchOptions(['--inspect', '--trace', 'run.jsonl'], { INSPECT_PORT: '9100', INSPECT_NAME: 'dream' }), {
    inspect: true,
    inspectUrl: null,
    inspectPort: 9100,
    trace: 'run.jsonl',
    name: 'dream',
  });
  assert.is(parseWatchOptions([], { INSPECT_URL: 'ws://localhost:9100' }).inspectUrl, 'ws://localhost:9100');
  for (const [argv, env, message] of [
    [['--inspekt'], {}, /inspekt/],
    [['--trace'], {}, /trace/],
    [[], { INSPECT_PORT: 'many' }, /INSPECT_PORT/],
    [[], { INSPECT_URL: 'http://localhost:8080' }, /INSPECT_URL/],
  ] as const) {
    assert.throws(() => parseWatchOptions(argv, env), (error: unknown) => error instanceof WatchUsageError && message.test(String(error)));
  }
});

test.run();
