/**
 * GET /api/status and GET /web as pure functions of the machine's snapshot. The machine runs with
 * a fixture computation (every site contributes a number, the coordinator sums them and calls the
 * result final after K rounds); the tests play the controller.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor, fromPromise, waitFor, type Actor } from 'xstate';
import {
  clientMachine,
  type AggregateInput,
  type AggregateOutput,
  type ClientMachine,
  type ClientSnapshot,
  type LocalComputeInput,
  type LocalComputeOutput,
  type Privacy,
  type WriteResultsInput,
} from '../machines/client.machine.ts';
import { toStatus, toWebStatus } from '../machines/status.ts';
import {
  MAX_STATUS_MESSAGE,
  STATUS_KEYS,
  type DpOptions,
  type SetupInfo,
  type SmpcOptions,
  type Status,
} from '../src/protocol/types.ts';

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers
// ---------------------------------------------------------------------------------------------

type Site = Actor<ClientMachine>;
type StateMatch = Parameters<ClientSnapshot['matches']>[0];

const smpc: SmpcOptions = { operation: 'add', serialization: 'json', shards: 0, exponent: 8 };
const dp: DpOptions = { serialization: 'json', noisetype: 'gauss', epsilon: 0.99999, delta: 0.01 };

const clients = ['a', 'b', 'c'];
const coordinatorA: SetupInfo = { id: 'a', coordinator: true, clients, coordinatorId: 'a' };
const participantB: SetupInfo = { id: 'b', coordinator: false, clients, coordinatorId: 'a' };

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (payload: Uint8Array): string => new TextDecoder().decode(payload);

interface Fixture {
  readonly value?: number;
  /** K: the aggregate says final in round K. */
  readonly rounds?: number;
  /** What the computation tells the machine to expect, for progress; K unless set. */
  readonly expectedRounds?: number;
  readonly privacy?: Privacy;
  readonly failIn?: 'computeLocal' | 'aggregate' | 'writeResults';
  /** The failure's message; `<actor> failed in the fixture` unless set. */
  readonly failure?: string;
}

function startSite(fixture: Fixture = {}): Site {
  const { value = 1, rounds = 1, privacy = { smpc: null, dp: null }, failIn, failure } = fixture;
  const failIf = (actor: NonNullable<Fixture['failIn']>): void => {
    if (failIn === actor) throw new Error(failure ?? `${actor} failed in the fixture`);
  };
  const machine = clientMachine.provide({
    actors: {
      computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async ({ input }) => {
        failIf('computeLocal');
        const previous = input.global === null ? 0 : Number(text(input.global));
        const expectedRounds = fixture.expectedRounds ?? rounds;
        return { payload: bytes(String(value + previous)), privacy, expectedRounds };
      }),
      aggregate: fromPromise<AggregateOutput, AggregateInput>(async ({ input }) => {
        failIf('aggregate');
        const sum = input.contributions.reduce((total, item) => total + Number(text(item)), 0);
        return { payload: bytes(String(sum)), final: input.round >= rounds };
      }),
      writeResults: fromPromise<void, WriteResultsInput>(async () => failIf('writeResults')),
    },
  });
  const site = createActor(machine).start();
  started.push(site);
  return site;
}

const setUp = (site: Site, setup: SetupInfo): void => site.send({ type: 'fc.setup', setup });

function deliver(site: Site, sender: string, memo: string, payload: string): void {
  site.send({ type: 'fc.data.received', sender, memo, payload: bytes(payload) });
}

/** GET /api/data: take the head the status described and tell the machine it left. */
function fetchHead(site: Site): void {
  const head = site.getSnapshot().context.outbox[0];
  if (head === undefined) throw new Error('nothing to fetch: the outbox is empty');
  site.send({ type: 'fc.data.fetched', itemId: head.id });
}

const reach = (site: Site, state: StateMatch): Promise<ClientSnapshot> =>
  waitFor(site, (snapshot) => snapshot.matches(state), { timeout: 1000 });

const finish = (site: Site): Promise<ClientSnapshot> =>
  waitFor(site, (snapshot) => snapshot.status === 'done', { timeout: 1000 });

const statusOf = (site: Site): Status => toStatus(site.getSnapshot());

/** A status with nothing queued: the head keys are all null. */
const idle = {
  available: false,
  destination: null,
  smpc: null,
  dp: null,
  memo: null,
} as const;

/** Every status a site shows over its run, one per snapshot. */
function record(site: Site): Status[] {
  const statuses = [statusOf(site)];
  site.subscribe((snapshot) => statuses.push(toStatus(snapshot)));
  return statuses;
}

/** Coordinator `a` through K rounds, the participants `b` (2) and `c` (3) answering by hand. */
async function runCoordinator(site: Site, rounds: number): Promise<void> {
  setUp(site, coordinatorA);
  let global = 0;
  for (let round = 1; round <= rounds; round += 1) {
    await reach(site, { 'awaiting-aggregate': 'collecting' });
    deliver(site, 'b', `r${round}.local`, String(2 + global));
    deliver(site, 'c', `r${round}.local`, String(3 + global));
    await reach(site, 'broadcast');
    global = Number(text(site.getSnapshot().context.global ?? bytes('')));
    fetchHead(site);
  }
  await reach(site, { finalizing: 'confirming' });
  deliver(site, 'b', 'done', '{"done":true}');
  deliver(site, 'c', 'done', '{"done":true}');
  await finish(site);
}

function assertMonotonic(progress: readonly (number | null)[]): void {
  const values = progress.filter((value): value is number => value !== null);
  assert.ok(values.length > 0);
  values.forEach((value, index) => {
    assert.ok(value >= 0 && value <= 1, `progress ${value} is outside 0..1`);
    const before = values[index - 1];
    if (before !== undefined) assert.ok(value >= before, `progress went back from ${before} to ${value}`);
  });
}

// ---------------------------------------------------------------------------------------------
// toStatus, state by state
// ---------------------------------------------------------------------------------------------

// A client waiting for others holds a wait-timeout timer; stop every actor so none outlives its test.
const started: { stop(): unknown }[] = [];
test.after.each(() => {
  for (const actor of started.splice(0)) actor.stop();
});

test('every status has exactly the nine keys of the API', () => {
  assert.equal(Object.keys(statusOf(startSite())).sort(), [...STATUS_KEYS].sort());
});

test('before setup the status is null except for its message', () => {
  assert.equal(statusOf(startSite()), {
    ...idle,
    finished: false,
    message: 'waiting for setup',
    progress: null,
    state: null,
  });
});

test('coordinator status in every state of a one-round run', async () => {
  const site = startSite({ rounds: 1 });
  setUp(site, coordinatorA);
  assert.equal(statusOf(site), {
    ...idle,
    finished: false,
    message: 'computing locally (round 1)',
    progress: 0,
    state: 'running',
  });

  await reach(site, { 'awaiting-aggregate': 'collecting' });
  assert.equal(statusOf(site), {
    ...idle,
    finished: false,
    message: 'waiting for the aggregate (round 1)',
    progress: 0.4,
    state: 'running',
  });

  deliver(site, 'b', 'r1.local', '2');
  deliver(site, 'c', 'r1.local', '3');
  assert.equal(site.getSnapshot().value, { 'awaiting-aggregate': 'aggregating' });
  assert.equal(statusOf(site), {
    ...idle,
    finished: false,
    message: 'aggregating (round 1)',
    progress: 0.6,
    state: 'running',
  });

  await reach(site, 'broadcast');
  assert.equal(statusOf(site), {
    available: true,
    finished: false,
    message: 'broadcasting the final result (round 1)',
    progress: 0.8,
    state: 'running',
    destination: null,
    smpc: null,
    dp: null,
    memo: 'r1.final',
  });

  fetchHead(site);
  assert.equal(site.getSnapshot().value, { finalizing: 'writing' });
  assert.equal(statusOf(site), {
    ...idle,
    finished: false,
    message: 'writing results (round 1)',
    progress: 0.9,
    state: 'running',
  });

  await reach(site, { finalizing: 'confirming' });
  assert.equal(statusOf(site), {
    ...idle,
    finished: false,
    message: 'waiting for confirmations (round 1)',
    progress: 0.95,
    state: 'running',
  });

  deliver(site, 'b', 'done', '{"done":true}');
  deliver(site, 'c', 'done', '{"done":true}');
  const { state, ...finished } = statusOf(site);
  assert.equal(finished, { ...idle, finished: true, message: 'finished', progress: 1 });
  assert.is.not(state, 'error');
});

test('participant status in every state of a one-round run', async () => {
  const site = startSite({ value: 2 });
  setUp(site, participantB);
  assert.equal(statusOf(site), {
    ...idle,
    finished: false,
    message: 'computing locally (round 1)',
    progress: 0,
    state: 'running',
  });

  await reach(site, { 'awaiting-aggregate': 'collecting' });
  assert.equal(statusOf(site), {
    available: true,
    finished: false,
    message: 'waiting for the aggregate (round 1)',
    progress: 0.4,
    state: 'running',
    destination: null,
    smpc: null,
    dp: null,
    memo: 'r1.local',
  });
  fetchHead(site);
  assert.is(statusOf(site).available, false);
  assert.is(statusOf(site).memo, null);

  deliver(site, 'a', 'r1.final', '6');
  assert.equal(statusOf(site), {
    ...idle,
    finished: false,
    message: 'writing results (round 1)',
    progress: 0.9,
    state: 'running',
  });

  await reach(site, { finalizing: 'confirming-to-coordinator' });
  assert.equal(statusOf(site), {
    available: true,
    finished: false,
    message: 'confirming the result (round 1)',
    progress: 0.95,
    state: 'running',
    destination: null,
    smpc: null,
    dp: null,
    memo: 'done',
  });

  fetchHead(site);
  const { state, ...finished } = statusOf(site);
  assert.equal(finished, { ...idle, finished: true, message: 'finished', progress: 1 });
  assert.is.not(state, 'error');
});

test('error status: finished, state error, the failure as message, nothing available', async () => {
  const site = startSite({ failIn: 'aggregate' });
  setUp(site, coordinatorA);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  deliver(site, 'b', 'r1.local', '2');
  deliver(site, 'c', 'r1.local', '3');
  await finish(site);
  assert.is(site.getSnapshot().value, 'error');
  assert.equal(statusOf(site), {
    ...idle,
    finished: true,
    message: 'aggregate failed in the fixture',
    progress: 1,
    state: 'error',
  });
});

test('a long failure message is cut to 40 characters', async () => {
  const failure = 'could not parse /mnt/input/data.csv: line 12 has 7 fields, the header has 6';
  const site = startSite({ failIn: 'computeLocal', failure });
  setUp(site, coordinatorA);
  await finish(site);
  const { message } = statusOf(site);
  assert.ok(message !== null && message.length <= MAX_STATUS_MESSAGE, `${String(message?.length)} characters`);
  assert.ok(message?.startsWith('could not parse /mnt/input/data.csv'));
});

// ---------------------------------------------------------------------------------------------
// The outbox head in the status
// ---------------------------------------------------------------------------------------------

test('with SMPC the status carries the smpc options of the queued contribution', async () => {
  const site = startSite({ value: 2, privacy: { smpc, dp: null } });
  setUp(site, participantB);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  assert.equal(statusOf(site), {
    ...statusOf(site),
    available: true,
    destination: null,
    smpc,
    dp: null,
    memo: 'r1.local',
  });
});

test("with DP only the coordinator's status names itself as destination", async () => {
  const site = startSite({ privacy: { smpc: null, dp } });
  setUp(site, coordinatorA);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  const { available, destination, smpc: secure, dp: noise, memo } = statusOf(site);
  assert.equal({ available, destination, smpc: secure, dp: noise, memo }, {
    available: true,
    destination: 'a',
    smpc: null,
    dp,
    memo: 'r1.local',
  });
});

test('numeric ids: the destination keeps the type the id came in', async () => {
  const site = startSite({ privacy: { smpc: null, dp } });
  setUp(site, { id: 7, coordinator: true, clients: [7, 8], coordinatorId: 7 });
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  assert.is(statusOf(site).destination, 7);
});

test('the status peeks at the head; only fc.data.fetched removes it', async () => {
  const site = startSite({ value: 2 });
  setUp(site, participantB);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  const first = statusOf(site);
  assert.equal(statusOf(site), first);
  assert.is(first.memo, 'r1.local');

  site.send({ type: 'fc.data.fetched', itemId: 999 });
  assert.equal(statusOf(site), first);
  fetchHead(site);
  assert.equal(statusOf(site), { ...first, ...idle });
});

// ---------------------------------------------------------------------------------------------
// Progress and messages over whole runs
// ---------------------------------------------------------------------------------------------

test('progress rises monotonically within 0..1 over a three-round run, round by round', async () => {
  const site = startSite({ rounds: 3 });
  const statuses = record(site);
  await runCoordinator(site, 3);

  assertMonotonic(statuses.map(({ progress }) => progress));
  const progressIn = (message: string): number | null | undefined =>
    statuses.find((status) => status.message === message)?.progress;
  assert.is(progressIn('computing locally (round 2)'), 1 / 3);
  assert.is(progressIn('waiting for the aggregate (round 2)'), 1.4 / 3);
  assert.is(progressIn('computing locally (round 3)'), 2 / 3);
  assert.is(statuses.at(-1)?.progress, 1);
});

test('a participant sees its progress rise monotonically too', async () => {
  const site = startSite({ value: 2, rounds: 3 });
  const statuses = record(site);
  setUp(site, participantB);
  const globals = ['r1.global', 'r2.global', 'r3.final'];
  for (const memo of globals) {
    await reach(site, { 'awaiting-aggregate': 'collecting' });
    fetchHead(site);
    deliver(site, 'a', memo, '0');
  }
  await reach(site, { finalizing: 'confirming-to-coordinator' });
  fetchHead(site);
  await finish(site);
  assertMonotonic(statuses.map(({ progress }) => progress));
});

test('progress never goes back when the computation needs more rounds than it expected', async () => {
  // src/computation/types.ts: expectedRounds is "for progress only; it may end earlier or later".
  const site = startSite({ rounds: 3, expectedRounds: 1 });
  const statuses = record(site);
  await runCoordinator(site, 3);
  assertMonotonic(statuses.map(({ progress }) => progress));
  assert.ok(statuses.slice(0, -1).every(({ progress }) => progress === null || progress < 1), 'only a finished run is at 1');
});

test('every status message fits in 40 characters', async () => {
  const site = startSite({ rounds: 3 });
  const statuses = record(site);
  await runCoordinator(site, 3);
  for (const { message } of statuses) {
    assert.ok(message !== null && message.length <= MAX_STATUS_MESSAGE, String(message));
  }
});

// ---------------------------------------------------------------------------------------------
// toWebStatus
// ---------------------------------------------------------------------------------------------

test('web status before setup names the state only', () => {
  assert.is(toWebStatus(startSite().getSnapshot()), 'State: initial');
});

test('web status after setup adds role, id and round', async () => {
  const coordinator = startSite({ rounds: 2 });
  setUp(coordinator, coordinatorA);
  assert.is(toWebStatus(coordinator.getSnapshot()), 'State: local-compute (coordinator a, round 1)');

  const participant = startSite({ value: 2 });
  setUp(participant, { id: 2, coordinator: false, clients: [1, 2, 3], coordinatorId: 1 });
  await reach(participant, { 'awaiting-aggregate': 'collecting' });
  assert.is(toWebStatus(participant.getSnapshot()), 'State: awaiting-aggregate (participant 2, round 1)');
  fetchHead(participant);
  deliver(participant, '1', 'r1.global', '6');
  assert.is(toWebStatus(participant.getSnapshot()), 'State: local-compute (participant 2, round 2)');
});

test.run();
