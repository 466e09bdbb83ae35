import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor, fromPromise, SimulatedClock, waitFor } from 'xstate';
import {
  clientMachine,
  type AggregateInput,
  type AggregateOutput,
  type LocalComputeInput,
  type LocalComputeOutput,
  type WriteResultsInput,
} from '../machines/client.machine.ts';
import type { ClientActors } from '../src/client.ts';
import { toStatus } from '../machines/status.ts';
import { silentLogger } from '../src/log.ts';
import { startClient, type RunningClient } from '../src/server.ts';
import { runFederation, type ControlledClient } from '../src/simulator/controller.ts';
import { SAMPLE_DIR } from '../src/simulator/federation.ts';
import { parseFaults, parseOptions, UsageError } from '../src/simulator/options.ts';
import { simulate, type SimulationSummary } from '../src/simulator/simulate.ts';

const quiet = { out: { write: () => true } };

async function run(argv: string[]): Promise<SimulationSummary> {
  const output = await mkdtemp(join(tmpdir(), 'fc-faults-'));
  return simulate(parseOptions(['--in-process', ...argv, '--output', output]), quiet);
}

let faultFree: string | null = null;
async function expectedResult(): Promise<string> {
  faultFree ??= JSON.stringify((await run([])).result);
  return faultFree;
}

for (const [fault, description] of [
  ['duplicate', 'every message delivered twice'],
  ['reorder:30', 'deliveries overtaking each other'],
  ['drop-data:2', 'every second GET /data response lost and fetched again'],
  ['slow:dream:15', 'a slow client'],
  ['duplicate,reorder:20,drop-data:3', 'all of these at once'],
] as const) {
  test(`the result is identical to a fault-free run with ${description} (${fault})`, async () => {
    const summary = await run(['--faults', fault, '--seed', '1']);
    assert.is(summary.ok, true, summary.failure ?? '');
    assert.is(JSON.stringify(summary.result), await expectedResult());
  });
}

test('with SMPC, duplicated and reordered deliveries still give the plain result', async () => {
  const plain = JSON.parse(await expectedResult()) as { columns: { mean: number }[] };
  const summary = await run(['--smpc', '--faults', 'duplicate,reorder:20']);
  assert.is(summary.ok, true, summary.failure ?? '');
  const secure = summary.result as { columns: { mean: number }[] };
  secure.columns.forEach((column, index) => {
    const expected = plain.columns[index]?.mean ?? Number.NaN;
    assert.ok(Math.abs(column.mean - expected) <= 1e-8 * Math.abs(expected), `${column.mean} vs ${expected}`);
  });
});

test('fault specifications are checked', () => {
  assert.equal(parseFaults('duplicate,reorder:5,drop-data:2,slow:a:10'), {
    duplicate: true,
    reorderMs: 5,
    dropDataResponseEvery: 2,
    slow: new Map([['a', 10]]),
  });
  for (const bad of ['explode', 'reorder', 'reorder:-1', 'drop-data:0', 'slow:a', 'slow::5']) {
    assert.throws(() => parseFaults(bad), (error: unknown) => error instanceof UsageError, bad);
  }
});

async function sampleClients(): Promise<{ running: RunningClient[]; clients: ControlledClient[] }> {
  const root = await mkdtemp(join(tmpdir(), 'fc-killed-'));
  const sites = ['biscoe', 'dream', 'torgersen'];
  const running = await Promise.all(
    sites.map((site) =>
      startClient({
        host: '127.0.0.1',
        port: 0,
        inputDir: join(SAMPLE_DIR, site),
        outputDir: join(root, site),
        bodyLimit: 1024 ** 2,
        logger: silentLogger,
      }),
    ),
  );
  const clients = running.map((client, index) => ({
    id: `site${index + 1}`,
    label: sites[index] ?? 'site',
    api: `${client.url}/api`,
    coordinator: index === 0,
  }));
  return { running, clients };
}

test('a client killed mid-run ends the run with an error naming it, within a bound', async () => {
  const { running, clients } = await sampleClients();
  const victim = running[2];
  assert.ok(victim);
  let killed = false;
  const started = Date.now();
  const report = await runFederation(clients, {
    queryIntervalMs: 5,
    timeoutMs: 10_000,
    requestTimeoutMs: 2_000,
    seed: null,
    onRelay: (record) => {
      // Right after the first round's first contribution has been relayed.
      if (!killed && record.memo === 'r1.local') {
        killed = true;
        void victim.close();
      }
    },
  });
  await Promise.all(running.map((client) => client.close()));
  assert.is(report.ok, false);
  assert.match(report.failure ?? '', /torgersen/);
  assert.ok(Date.now() - started < 10_000, `ended after ${Date.now() - started} ms`);
});

test('a coordinator that never answers ends the run with an error naming it', async () => {
  const silent: Server = createServer(() => {
    // Accepts the request and never answers.
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as AddressInfo;
  const { running, clients } = await sampleClients();
  const coordinator: ControlledClient = { id: 'dead', label: 'dead-coordinator', api: `http://127.0.0.1:${port}/api`, coordinator: true };
  const participants = clients.slice(1).map((client) => ({ ...client, coordinator: false }));
  try {
    const started = Date.now();
    const report = await runFederation([coordinator, ...participants], {
      queryIntervalMs: 5,
      timeoutMs: 10_000,
      requestTimeoutMs: 300,
      seed: null,
    });
    assert.is(report.ok, false);
    assert.match(report.failure ?? '', /dead-coordinator/);
    assert.match(report.failure ?? '', /does not answer/);
    assert.ok(Date.now() - started < 5_000, `ended after ${Date.now() - started} ms`);
  } finally {
    silent.closeAllConnections();
    silent.close();
    await Promise.all(running.map((client) => client.close()));
  }
});

/** A one-round computation whose steps answer at once: only the waiting is under test. */
const oneRound: ClientActors = {
  computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async () => ({
    payload: new TextEncoder().encode('1'),
    privacy: { smpc: null, dp: null },
    expectedRounds: 1,
  })),
  aggregate: fromPromise<AggregateOutput, AggregateInput>(async () => ({ payload: new TextEncoder().encode('2'), final: true })),
  writeResults: fromPromise<void, WriteResultsInput>(async () => {}),
};

test('a coordinator waiting for a dead participant reports an error naming it after its wait timeout', async () => {
  const clock = new SimulatedClock();
  const machine = clientMachine.provide({
    actors: oneRound,
    delays: { waitTimeout: 60_000 },
  });
  const actor = createActor(machine, { clock }).start();
  actor.send({ type: 'fc.setup', setup: { id: 'a', coordinator: true, clients: ['a', 'b', 'c'], coordinatorId: 'a' } });
  await new Promise((resolve) => setTimeout(resolve, 0));
  actor.send({ type: 'fc.data.received', sender: 'b', memo: 'r1.local', payload: new TextEncoder().encode('1') });
  assert.equal(actor.getSnapshot().value, { 'awaiting-aggregate': 'collecting' });
  clock.increment(59_999);
  assert.equal(actor.getSnapshot().value, { 'awaiting-aggregate': 'collecting' });
  clock.increment(1);
  const status = toStatus(actor.getSnapshot());
  assert.is(actor.getSnapshot().value, 'error');
  assert.is(status.state, 'error');
  assert.is(status.finished, true);
  assert.match(status.message ?? '', /timed out/);
  assert.match(actor.getSnapshot().context.failure?.message ?? '', /round 1 data from c$/);
});

test('a participant waiting for the coordinator gives up after its wait timeout too', async () => {
  const clock = new SimulatedClock();
  const machine = clientMachine.provide({
    actors: oneRound,
    delays: { waitTimeout: 1_000 },
  });
  const actor = createActor(machine, { clock }).start();
  actor.send({ type: 'fc.setup', setup: { id: 'b', coordinator: false, clients: ['a', 'b'], coordinatorId: 'a' } });
  await new Promise((resolve) => setTimeout(resolve, 0));
  clock.increment(1_000);
  assert.is(actor.getSnapshot().value, 'error');
  assert.match(actor.getSnapshot().context.failure?.message ?? '', /coordinator's result/);
});

test('a coordinator waiting for confirmations gives up after its wait timeout, naming who did not confirm', async () => {
  const clock = new SimulatedClock();
  const actor = createActor(clientMachine.provide({ actors: oneRound, delays: { waitTimeout: 5_000 } }), { clock }).start();
  actor.send({ type: 'fc.setup', setup: { id: 'a', coordinator: true, clients: ['a', 'b', 'c'], coordinatorId: 'a' } });
  await new Promise((resolve) => setTimeout(resolve, 0));
  for (const sender of ['b', 'c']) {
    actor.send({ type: 'fc.data.received', sender, memo: 'r1.local', payload: new TextEncoder().encode('1') });
  }
  await waitFor(actor, (snapshot) => snapshot.matches('broadcast'));
  const head = actor.getSnapshot().context.outbox[0];
  assert.ok(head);
  actor.send({ type: 'fc.data.fetched', itemId: head.id });
  await waitFor(actor, (snapshot) => snapshot.matches({ finalizing: 'confirming' }));
  actor.send({ type: 'fc.data.received', sender: 'b', memo: 'done', payload: new TextEncoder().encode('{"done":true}') });
  clock.increment(4_999);
  assert.equal(actor.getSnapshot().value, { finalizing: 'confirming' });
  clock.increment(1);
  assert.is(actor.getSnapshot().value, 'error');
  assert.match(actor.getSnapshot().context.failure?.message ?? '', /confirmations from c$/);
  actor.stop();
});

test('sites that configure SMPC differently end the run with an error, not a partial sum', async () => {
  const root = await mkdtemp(join(tmpdir(), 'fc-mixed-smpc-'));
  const dirs: string[] = [];
  for (const site of ['biscoe', 'dream', 'torgersen']) {
    await cp(join(SAMPLE_DIR, site), join(root, site), { recursive: true });
    if (site !== 'torgersen') {
      const config = join(root, site, 'config.yml');
      await writeFile(config, `${await readFile(config, 'utf8')}  smpc: true\n`);
    }
    dirs.push(join(root, site));
  }
  const summary = await run(['--client-dirs', dirs.join(','), '--timeout', '10']);
  assert.is(summary.ok, false);
  assert.match(summary.failure ?? '', /smpc/);
});

test('an SMPC coordinator refuses a package that does not count every site', async () => {
  const root = await mkdtemp(join(tmpdir(), 'fc-stray-'));
  await cp(join(SAMPLE_DIR, 'biscoe'), join(root, 'in'), { recursive: true });
  const config = join(root, 'in', 'config.yml');
  await writeFile(config, `${await readFile(config, 'utf8')}  smpc: true\n`);
  const running = await startClient({
    host: '127.0.0.1',
    port: 0,
    inputDir: join(root, 'in'),
    outputDir: join(root, 'out'),
    bodyLimit: 1024 ** 2,
    logger: silentLogger,
  });
  try {
    const api = `${running.url}/api`;
    const setup = { id: 'a', coordinator: true, clients: ['a', 'b', 'c'] };
    await fetch(`${api}/setup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(setup) });
    await waitFor(running.client.actor, (snapshot) => snapshot.context.privacy.smpc !== null);
    // One site's contribution (counted once), posing as the controllers' sum over three.
    const stray = JSON.stringify({ contributors: 1, value: { n: 1 } });
    await fetch(`${api}/data?client=a&memo=r1.local`, { method: 'POST', body: stray });
    const snapshot = await waitFor(running.client.actor, (current) => current.status === 'done');
    assert.is(snapshot.value, 'error');
    assert.match(snapshot.context.failure?.message ?? '', /holds 1 of 3 contributions/);
  } finally {
    await running.close();
  }
});

test("a client configured for SMPC 'multiply' stops with an error naming smpc.operation", async () => {
  const root = await mkdtemp(join(tmpdir(), 'fc-multiply-'));
  const dirs: string[] = [];
  for (const site of ['biscoe', 'dream']) {
    await cp(join(SAMPLE_DIR, site), join(root, site), { recursive: true });
    const config = join(root, site, 'config.yml');
    await writeFile(config, `${await readFile(config, 'utf8')}  smpc: { operation: multiply }\n`);
    dirs.push(join(root, site));
  }
  const summary = await run(['--client-dirs', dirs.join(','), '--timeout', '10']);
  assert.is(summary.ok, false);
  assert.match(summary.failure ?? '', /smpc\.operation 'multiply'/);
});

test.run();
