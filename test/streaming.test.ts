import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromPromise } from 'xstate';
import type {
  AggregateInput,
  AggregateOutput,
  LocalComputeInput,
  LocalComputeOutput,
  WriteResultsInput,
} from '../machines/client.machine.ts';
import type { ClientActors } from '../src/client.ts';
import { silentLogger } from '../src/log.ts';
import { decodeMessage, encodeBinary, VectorWriter } from '../src/runtime/codec.ts';
import { startClient, type RunningClient } from '../src/server.ts';
import { runFederation, type ControlledClient, type RelayRecord } from '../src/simulator/controller.ts';

/** Large enough for the controller to relay it as it arrives rather than fetch it whole. */
const LENGTH = 300_000; // 2.4 MB of doubles

/** Each site sends [site + i] for i < LENGTH; the coordinator broadcasts the element-wise sum. */
function vectorSum(results: Map<number, Float64Array>): ClientActors {
  const siteOf = (input: { readonly setup: LocalComputeInput['setup'] }) =>
    input.setup.clients.findIndex((id) => String(id) === String(input.setup.id));
  const vector = (bytes: Uint8Array): Float64Array => {
    const message = decodeMessage(bytes, 'a message') as { readonly v?: unknown };
    if (!(message.v instanceof Float64Array)) throw new Error('no vector');
    return message.v;
  };
  return {
    computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async ({ input }) => {
      const site = siteOf(input);
      const v = new VectorWriter(LENGTH, (into) => into.forEach((_, i) => (into[i] = site + i)));
      return { payload: encodeBinary({ v }), privacy: { smpc: null, dp: null }, expectedRounds: 1 };
    }),
    aggregate: fromPromise<AggregateOutput, AggregateInput>(async ({ input }) => {
      const vectors = input.contributions.map(vector);
      const v = new VectorWriter(LENGTH, (into) => {
        for (const each of vectors) each.forEach((value, i) => (into[i] = (into[i] ?? 0) + value));
      });
      return { payload: encodeBinary({ v }), final: true };
    }),
    writeResults: fromPromise<void, WriteResultsInput>(async ({ input }) => {
      results.set(siteOf(input), vector(input.final));
    }),
  };
}

async function federation(count: number, results: Map<number, Float64Array>): Promise<{ running: RunningClient[]; clients: ControlledClient[] }> {
  const running = await Promise.all(
    Array.from({ length: count }, () =>
      startClient({
        host: '127.0.0.1',
        port: 0,
        inputDir: '.',
        outputDir: '.',
        bodyLimit: 64 * 1024 ** 2,
        logger: silentLogger,
        actors: vectorSum(results),
      }),
    ),
  );
  const clients = running.map((client, index) => ({
    id: `site${index}`,
    label: `site-${index}`,
    api: `${client.url}/api`,
    coordinator: index === 0,
  }));
  return { running, clients };
}

test('large messages are relayed as they arrive, and every site gets the exact sum', async () => {
  const results = new Map<number, Float64Array>();
  const { running, clients } = await federation(4, results);
  const relays: RelayRecord[] = [];
  try {
    const report = await runFederation(clients, {
      queryIntervalMs: 5,
      timeoutMs: 20_000,
      seed: null,
      onRelay: (record) => relays.push(record),
    });
    assert.is(report.ok, true, report.failure ?? '');
    const broadcast = relays.find((record) => record.memo === 'r1.final');
    assert.ok(broadcast && broadcast.bytes > 2_000_000 && broadcast.to.length === 3);
    // Three contributions and three copies of the broadcast, plus three small confirmations.
    assert.is(report.messages, 9);
    assert.is(report.finalBroadcast, null, 'a streamed final result is not decoded by the controller');
    assert.equal([...results.keys()].sort(), [0, 1, 2, 3]);
    for (const sum of results.values()) {
      assert.is(sum.length, LENGTH);
      assert.ok(sum.every((value, i) => value === 6 + 4 * i), 'sum of [site + i] over sites 0..3');
    }
  } finally {
    await Promise.all(running.map((client) => client.close()));
  }
});

test('a receiver that is gone when a large message is relayed ends the run, naming it', async () => {
  const results = new Map<number, Float64Array>();
  const { running, clients } = await federation(3, results);
  const victim = running[2];
  assert.ok(victim);
  let closed = false;
  try {
    const report = await runFederation(clients, {
      queryIntervalMs: 5,
      timeoutMs: 20_000,
      requestTimeoutMs: 5_000,
      seed: null,
      onRelay: (record) => {
        // The broadcast's relay starts right after this record: its third receiver is gone.
        if (!closed && record.memo === 'r1.final') {
          closed = true;
          void victim.close();
        }
      },
    });
    assert.is(report.ok, false);
    assert.match(report.failure ?? '', /site-2/);
  } finally {
    await Promise.all(running.map((client) => client.close()));
  }
});

/** A loopback proxy to `target` that breaks the connection of the first large POST it sees. */
async function flakyProxy(target: string): Promise<{ url: string; broken: () => number; close(): Promise<void> }> {
  let broken = 0;
  const server = createServer((request, response) => {
    const large = Number(request.headers['content-length'] ?? 0) > 1024 ** 2;
    if (request.method === 'POST' && large && broken === 0) {
      broken += 1;
      request.socket.destroy();
      return;
    }
    const forward = httpRequest(`${target}${request.url ?? '/'}`, { method: request.method, headers: request.headers }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
    forward.on('error', () => response.destroy());
    request.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    broken: () => broken,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

test('a receiver whose connection breaks during a streamed relay gets the message again, whole', async () => {
  const results = new Map<number, Float64Array>();
  const { running, clients } = await federation(3, results);
  const participant = running[2];
  assert.ok(participant);
  const proxy = await flakyProxy(participant.url);
  const viaProxy = clients.map((client, index) => (index === 2 ? { ...client, api: `${proxy.url}/api` } : client));
  try {
    const report = await runFederation(viaProxy, { queryIntervalMs: 5, timeoutMs: 20_000, requestTimeoutMs: 5_000, seed: null });
    assert.is(report.ok, true, report.failure ?? '');
    assert.is(proxy.broken(), 1, 'one streamed upload was broken');
    const expected = results.get(0);
    assert.ok(expected);
    assert.equal(results.get(2), expected);
  } finally {
    await proxy.close();
    await Promise.all(running.map((client) => client.close()));
  }
});

test.run();
