/**
 * The client machine, driven like the controller drives it: fc.setup, then data in
 * (fc.data.received) and data out (read the outbox head, then fc.data.fetched). The computation
 * is a fixture: every site contributes a number (its own number plus the previous global result),
 * the coordinator sums the contributions and calls the result final after K rounds.
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
  type OutboxItem,
  type Privacy,
  type WriteResultsInput,
} from '../machines/client.machine.ts';
import { toStatus } from '../machines/status.ts';
import type { DpOptions, SetupInfo, SmpcOptions } from '../src/protocol/types.ts';

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

type Site = Actor<ClientMachine>;
type ActorName = 'computeLocal' | 'aggregate' | 'writeResults';
type StateMatch = Parameters<ClientSnapshot['matches']>[0];

const smpc: SmpcOptions = { operation: 'add', serialization: 'json', shards: 0, exponent: 8 };
const dp: DpOptions = { serialization: 'json', noisetype: 'laplace', epsilon: 0.99999, delta: 0 };
const noPrivacy: Privacy = { smpc: null, dp: null };

const clients = ['a', 'b', 'c'];
const coordinatorA: SetupInfo = { id: 'a', coordinator: true, clients, coordinatorId: 'a' };
const participantB: SetupInfo = { id: 'b', coordinator: false, clients, coordinatorId: 'a' };

/** A participant's `done`: any non-empty body. */
const confirmation = '{"done":true}';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (payload: Uint8Array): string => new TextDecoder().decode(payload);

interface Fixture {
  /** This site's number. */
  readonly value?: number;
  /** K: the aggregate says final in round K. */
  readonly rounds?: number;
  readonly privacy?: Privacy;
  /** The named actors start only once their promise resolves, so data can arrive meanwhile. */
  readonly hold?: Partial<Record<ActorName, Promise<void>>>;
  readonly fail?: { readonly actor: ActorName; readonly round: number; readonly error: unknown };
}

/** What each injected actor was called with, in call order. */
interface Calls {
  readonly computeLocal: LocalComputeInput[];
  readonly aggregate: AggregateInput[];
  readonly writeResults: WriteResultsInput[];
}

function startSite(fixture: Fixture = {}): { site: Site; calls: Calls } {
  const { value = 1, rounds = 1, privacy = noPrivacy, hold = {}, fail } = fixture;
  const calls: Calls = { computeLocal: [], aggregate: [], writeResults: [] };
  const begin = async (actor: ActorName, round: number): Promise<void> => {
    await hold[actor];
    if (fail?.actor === actor && fail.round === round) throw fail.error;
  };
  const machine = clientMachine.provide({
    actors: {
      computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async ({ input }) => {
        calls.computeLocal.push(input);
        await begin('computeLocal', input.round);
        const previous = input.global === null ? 0 : Number(text(input.global));
        return { payload: bytes(String(value + previous)), privacy, expectedRounds: rounds };
      }),
      aggregate: fromPromise<AggregateOutput, AggregateInput>(async ({ input }) => {
        calls.aggregate.push(input);
        await begin('aggregate', input.round);
        const sum = input.contributions.reduce((total, item) => total + Number(text(item)), 0);
        return { payload: bytes(String(sum)), final: input.round >= rounds };
      }),
      writeResults: fromPromise<void, WriteResultsInput>(async ({ input }) => {
        calls.writeResults.push(input);
        await begin('writeResults', input.round);
      }),
    },
  });
  const site = createActor(machine).start();
  started.push(site);
  return { site, calls };
}

/** A promise the test resolves when it wants a held actor to go on. */
function gate(): { readonly opened: Promise<void>; readonly open: () => void } {
  let open = (): void => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open: () => open() };
}

// ---------------------------------------------------------------------------------------------
// Helpers: the controller's side of the protocol
// ---------------------------------------------------------------------------------------------

function deliver(site: Site, sender: string, memo: string, payload: string): void {
  site.send({ type: 'fc.data.received', sender, memo, payload: bytes(payload) });
}

/** GET /api/data: take the head the status described and tell the machine it left. */
function fetchHead(site: Site): OutboxItem {
  const head = site.getSnapshot().context.outbox[0];
  if (head === undefined) throw new Error('nothing to fetch: the outbox is empty');
  site.send({ type: 'fc.data.fetched', itemId: head.id });
  return head;
}

/** The head as the controller sees it, with the payload as text. */
function headOf(site: Site): (Omit<OutboxItem, 'id' | 'payload'> & { payload: string }) | null {
  const head = site.getSnapshot().context.outbox[0];
  if (head === undefined) return null;
  const { id: _id, payload, ...described } = head;
  return { ...described, payload: text(payload) };
}

const reach = (site: Site, state: StateMatch): Promise<ClientSnapshot> =>
  waitFor(site, (snapshot) => snapshot.matches(state), { timeout: 1000 });

const finish = (site: Site): Promise<ClientSnapshot> =>
  waitFor(site, (snapshot) => snapshot.status === 'done', { timeout: 1000 });

/** Lets every pending actor run, to show that nothing moves by itself. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

const valueOf = (site: Site): ClientSnapshot['value'] => site.getSnapshot().value;
const roundOf = (site: Site): number => site.getSnapshot().context.round;
const texts = (payloads: readonly Uint8Array[]): string[] => payloads.map(text);

const setUp = (site: Site, setup: SetupInfo): void => site.send({ type: 'fc.setup', setup });

/** Coordinator `a` up to the point where it waits for the participants of round 1. */
async function coordinatorCollecting(fixture: Fixture = {}): Promise<{ site: Site; calls: Calls }> {
  const started = startSite(fixture);
  setUp(started.site, coordinatorA);
  await reach(started.site, { 'awaiting-aggregate': 'collecting' });
  return started;
}

/** Coordinator `a` with round 1 aggregated (participants sent 2 and 3), the global queued. */
async function coordinatorBroadcasting(fixture: Fixture = {}): Promise<{ site: Site; calls: Calls }> {
  const started = await coordinatorCollecting(fixture);
  deliver(started.site, 'b', 'r1.local', '2');
  deliver(started.site, 'c', 'r1.local', '3');
  await reach(started.site, 'broadcast');
  return started;
}

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

// A client waiting for others holds a wait-timeout timer; stop every actor so none outlives its test.
const started: { stop(): unknown }[] = [];
test.after.each(() => {
  for (const actor of started.splice(0)) actor.stop();
});

test('before setup the client waits in initial and accepts only fc.setup', () => {
  const { site, calls } = startSite();
  const snapshot = site.getSnapshot();
  assert.is(snapshot.value, 'initial');
  assert.ok(snapshot.can({ type: 'fc.setup', setup: coordinatorA }));
  assert.not.ok(snapshot.can({ type: 'fc.data.received', sender: 'b', memo: 'r1.local', payload: bytes('2') }));
  assert.not.ok(snapshot.can({ type: 'fc.data.fetched', itemId: 1 }));

  deliver(site, 'b', 'r1.local', '2');
  site.send({ type: 'fc.data.fetched', itemId: 1 });
  assert.is(valueOf(site), 'initial');
  assert.equal(site.getSnapshot().context.inbox, {});
  assert.is(calls.computeLocal.length, 0);
});

test('setup starts the local computation of round 1 with who this client is', async () => {
  const { site, calls } = startSite();
  setUp(site, coordinatorA);
  assert.is(valueOf(site), 'local-compute');
  assert.ok(site.getSnapshot().hasTag('running'));
  await reach(site, 'awaiting-aggregate');
  assert.equal(calls.computeLocal, [{ setup: coordinatorA, round: 1, global: null }]);
});

test('a second fc.setup is not accepted and changes nothing', async () => {
  const { site } = startSite();
  setUp(site, coordinatorA);
  const again: SetupInfo = { ...coordinatorA, clients: ['a', 'b'] };
  assert.not.ok(site.getSnapshot().can({ type: 'fc.setup', setup: coordinatorA }));
  setUp(site, again);
  assert.is(site.getSnapshot().context.setup, coordinatorA);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  assert.not.ok(site.getSnapshot().can({ type: 'fc.setup', setup: coordinatorA }));
});

test('after setup every running state accepts relay events', async () => {
  const { site } = startSite();
  setUp(site, coordinatorA);
  const received = { type: 'fc.data.received', sender: 'b', memo: 'r1.local', payload: bytes('2') } as const;
  assert.ok(site.getSnapshot().can(received));
  assert.ok(site.getSnapshot().can({ type: 'fc.data.fetched', itemId: 1 }));
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  assert.ok(site.getSnapshot().can(received));
  assert.ok(site.getSnapshot().can({ type: 'fc.data.fetched', itemId: 1 }));
});

// ---------------------------------------------------------------------------------------------
// Coordinator
// ---------------------------------------------------------------------------------------------

test('coordinator keeps its own contribution locally without SMPC or DP', async () => {
  const { site } = await coordinatorCollecting();
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' });
  assert.is(headOf(site), null);
  assert.is(toStatus(site.getSnapshot()).available, false);
});

test('coordinator waits for every participant before aggregating', async () => {
  const { site, calls } = await coordinatorCollecting({ rounds: 3 });
  deliver(site, 'b', 'r1.local', '2');
  await settle();
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' });
  assert.is(calls.aggregate.length, 0);

  deliver(site, 'c', 'r1.local', '3');
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'aggregating' });
  await reach(site, 'broadcast');
  const [input] = calls.aggregate;
  assert.ok(input);
  assert.is(input.round, 1);
  assert.equal(texts(input.contributions), ['1', '2', '3'], 'its own first, then the participants');
  assert.is(input.secure, false);
  assert.is(input.previous, null);
});

test('broadcast queues the global result for everyone and waits until it is fetched', async () => {
  const { site, calls } = await coordinatorBroadcasting({ rounds: 3 });
  assert.equal(headOf(site), { memo: 'r1.global', destination: null, smpc: null, dp: null, payload: '6' });
  await settle();
  assert.equal(valueOf(site), { broadcast: 'interim' });
  assert.is(calls.computeLocal.length, 1);

  fetchHead(site);
  assert.is(valueOf(site), 'local-compute');
  assert.is(roundOf(site), 2);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  assert.equal(calls.computeLocal[1], { setup: coordinatorA, round: 2, global: bytes('6') });
});

test('coordinator runs three rounds with numbered memos and threads each global into the next', async () => {
  const { site, calls } = await coordinatorCollecting({ rounds: 3 });
  // Each participant's contribution: its number (b = 2, c = 3) plus the previous global.
  const rounds = [
    { round: 1, b: '2', c: '3', memo: 'r1.global', global: '6' },
    { round: 2, b: '8', c: '9', memo: 'r2.global', global: '24' },
    { round: 3, b: '26', c: '27', memo: 'r3.final', global: '78' },
  ];
  for (const { round, b, c, memo, global } of rounds) {
    await reach(site, { 'awaiting-aggregate': 'collecting' });
    assert.is(roundOf(site), round);
    deliver(site, 'b', `r${round}.local`, b);
    deliver(site, 'c', `r${round}.local`, c);
    await reach(site, 'broadcast');
    const sent = fetchHead(site);
    assert.equal([sent.memo, sent.destination, text(sent.payload)], [memo, null, global]);
  }
  await reach(site, { finalizing: 'confirming' });

  assert.equal(
    calls.computeLocal.map(({ round, global }) => [round, global === null ? null : text(global)]),
    [[1, null], [2, '6'], [3, '24']],
  );
  assert.equal(
    calls.aggregate.map(({ round, contributions, previous }) => [
      round,
      texts(contributions),
      previous === null ? null : text(previous),
    ]),
    [
      [1, ['1', '2', '3'], null],
      [2, ['7', '8', '9'], '6'],
      [3, ['25', '26', '27'], '24'],
    ],
  );
  assert.equal(calls.writeResults, [{ setup: coordinatorA, round: 3, final: bytes('78') }]);
});

test("coordinator's final broadcast leads to finalizing only once it is fetched", async () => {
  const { site, calls } = await coordinatorBroadcasting({ rounds: 1 });
  assert.is(headOf(site)?.memo, 'r1.final');
  await settle();
  assert.equal(valueOf(site), { broadcast: 'last' });
  assert.is(calls.writeResults.length, 0);

  fetchHead(site);
  assert.equal(valueOf(site), { finalizing: 'writing' });
  await reach(site, { finalizing: 'confirming' });
  assert.equal(calls.writeResults, [{ setup: coordinatorA, round: 1, final: bytes('6') }]);
});

test("coordinator finishes only after every participant's done", async () => {
  const { site } = await coordinatorBroadcasting({ rounds: 1 });
  fetchHead(site);
  await reach(site, { finalizing: 'confirming' });

  deliver(site, 'b', 'done', confirmation);
  await settle();
  assert.equal(valueOf(site), { finalizing: 'confirming' });
  assert.is(toStatus(site.getSnapshot()).finished, false);

  deliver(site, 'c', 'done', confirmation);
  assert.is(valueOf(site), 'finished');
  assert.is(site.getSnapshot().status, 'done');
  assert.is(toStatus(site.getSnapshot()).finished, true);
});

test('confirmations that arrive while the coordinator still writes are kept', async () => {
  const writing = gate();
  const { site } = await coordinatorBroadcasting({ rounds: 1, hold: { writeResults: writing.opened } });
  fetchHead(site);
  deliver(site, 'b', 'done', confirmation);
  deliver(site, 'c', 'done', confirmation);
  assert.equal(valueOf(site), { finalizing: 'writing' });
  writing.open();
  await finish(site);
  assert.is(valueOf(site), 'finished');
});

// ---------------------------------------------------------------------------------------------
// Coordinator with SMPC or DP
// ---------------------------------------------------------------------------------------------

test('with SMPC the coordinator queues its own contribution with smpc and no destination', async () => {
  const { site } = await coordinatorCollecting({ privacy: { smpc, dp: null } });
  assert.equal(headOf(site), { memo: 'r1.local', destination: null, smpc, dp: null, payload: '1' });
  assert.equal(toStatus(site.getSnapshot()).smpc, smpc);
});

test('with SMPC one summed package completes the round, whoever it names as sender', async () => {
  const { site, calls } = await coordinatorCollecting({ privacy: { smpc, dp: null } });
  fetchHead(site);
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' });

  deliver(site, 'c', 'r1.local', '6');
  await reach(site, 'broadcast');
  const [input] = calls.aggregate;
  assert.ok(input);
  assert.equal(texts(input.contributions), ['6']);
  assert.is(input.secure, true);
  assert.equal(headOf(site), { memo: 'r1.final', destination: null, smpc: null, dp: null, payload: '6' });
});

test('with DP only the coordinator sends its contribution to itself', async () => {
  const { site } = await coordinatorCollecting({ privacy: { smpc: null, dp } });
  assert.equal(headOf(site), { memo: 'r1.local', destination: 'a', smpc: null, dp, payload: '1' });
});

test('with DP only the coordinator needs all contributions, its own included', async () => {
  const { site, calls } = await coordinatorCollecting({ privacy: { smpc: null, dp } });
  fetchHead(site);
  deliver(site, 'b', 'r1.local', '2');
  deliver(site, 'c', 'r1.local', '3');
  await settle();
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' });

  deliver(site, 'a', 'r1.local', '1.1');
  await reach(site, 'broadcast');
  const [input] = calls.aggregate;
  assert.ok(input);
  assert.is(input.contributions.length, 3);
  assert.equal(texts(input.contributions).sort(), ['1.1', '2', '3']);
  assert.is(input.secure, false);
});

test("with DP only the coordinator's contribution still comes first, as the computation expects", async () => {
  // src/computation/types.ts: "Without SMPC, one contribution per site (the coordinator's first)".
  const coordinatorB: SetupInfo = { id: 'b', coordinator: true, clients, coordinatorId: 'b' };
  const { site, calls } = startSite({ value: 2, privacy: { smpc: null, dp } });
  setUp(site, coordinatorB);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  fetchHead(site);
  deliver(site, 'a', 'r1.local', '1');
  deliver(site, 'b', 'r1.local', '2');
  deliver(site, 'c', 'r1.local', '3');
  await reach(site, 'broadcast');
  assert.equal(texts(calls.aggregate[0]?.contributions ?? []), ['2', '1', '3']);
});

// ---------------------------------------------------------------------------------------------
// Data that arrives early, twice, late or not at all
// ---------------------------------------------------------------------------------------------

test('a contribution that arrives while the coordinator still computes is kept and used', async () => {
  const computing = gate();
  const { site, calls } = startSite({ hold: { computeLocal: computing.opened } });
  setUp(site, coordinatorA);
  deliver(site, 'b', 'r1.local', '2');
  deliver(site, 'c', 'r1.local', '3');
  await settle();
  assert.is(valueOf(site), 'local-compute');

  computing.open();
  await reach(site, 'broadcast');
  assert.equal(texts(calls.aggregate[0]?.contributions ?? []), ['1', '2', '3']);
});

test("next round's contributions that arrive before the aggregate finished are kept for that round", async () => {
  const aggregating = gate();
  const { site, calls } = await coordinatorCollecting({ rounds: 2, hold: { aggregate: aggregating.opened } });
  deliver(site, 'b', 'r1.local', '2');
  deliver(site, 'c', 'r1.local', '3');
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'aggregating' });
  deliver(site, 'b', 'r2.local', '8');
  deliver(site, 'c', 'r2.local', '9');

  aggregating.open();
  await reach(site, 'broadcast');
  assert.equal(calls.aggregate.length, 1, 'round 2 data does not start another aggregate');
  fetchHead(site);
  await reach(site, 'broadcast');
  assert.is(roundOf(site), 2);
  assert.equal(texts(calls.aggregate[1]?.contributions ?? []), ['7', '8', '9']);
});

test('the same message twice counts once', async () => {
  const { site, calls } = await coordinatorCollecting();
  deliver(site, 'b', 'r1.local', '2');
  deliver(site, 'b', 'r1.local', '2');
  await settle();
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' }, 'c is still missing');

  deliver(site, 'c', 'r1.local', '3');
  await reach(site, 'broadcast');
  assert.equal(texts(calls.aggregate[0]?.contributions ?? []), ['1', '2', '3']);
});

test('a late retry of a consumed memo is ignored', async () => {
  const { site, calls } = await coordinatorBroadcasting({ rounds: 2 });
  deliver(site, 'b', 'r1.local', '2');
  fetchHead(site);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  deliver(site, 'c', 'r1.local', '3');
  assert.not.ok('r1.local' in site.getSnapshot().context.inbox);
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' });

  deliver(site, 'b', 'r2.local', '8');
  deliver(site, 'c', 'r2.local', '9');
  await reach(site, 'broadcast');
  assert.equal(texts(calls.aggregate[1]?.contributions ?? []), ['7', '8', '9']);
});

test('a contribution from a client outside the federation does not count', async () => {
  const { site } = await coordinatorCollecting();
  deliver(site, 'b', 'r1.local', '2');
  deliver(site, 'x', 'r1.local', '100');
  await settle();
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' });
});

test('a client whose id is also an Object property name must contribute like any other', async () => {
  const setup: SetupInfo = { id: 'a', coordinator: true, clients: ['a', 'b', 'constructor'], coordinatorId: 'a' };
  const { site, calls } = startSite();
  setUp(site, setup);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  deliver(site, 'b', 'r1.local', '2');
  await settle();
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' }, "'constructor' has not sent anything yet");
  assert.is(calls.aggregate.length, 0);
});

test('fc.data.fetched with a stale itemId does nothing', async () => {
  const { site } = await coordinatorBroadcasting({ rounds: 2 });
  const first = fetchHead(site);
  deliver(site, 'b', 'r2.local', '8');
  deliver(site, 'c', 'r2.local', '9');
  await reach(site, 'broadcast');
  const queued = site.getSnapshot().context.outbox;

  site.send({ type: 'fc.data.fetched', itemId: first.id });
  site.send({ type: 'fc.data.fetched', itemId: first.id + 100 });
  assert.equal(valueOf(site), { broadcast: 'last' });
  assert.is(site.getSnapshot().context.outbox, queued);
  assert.is(headOf(site)?.memo, 'r2.final');
});

// ---------------------------------------------------------------------------------------------
// Participant
// ---------------------------------------------------------------------------------------------

/** Participant `b` (number 2) with its round-1 contribution queued. */
async function participantCollecting(fixture: Fixture = {}): Promise<{ site: Site; calls: Calls }> {
  const started = startSite({ value: 2, ...fixture });
  setUp(started.site, participantB);
  await reach(started.site, { 'awaiting-aggregate': 'collecting' });
  return started;
}

test('participant queues its contribution for the coordinator and waits for the global result', async () => {
  const { site, calls } = await participantCollecting();
  assert.equal(headOf(site), { memo: 'r1.local', destination: null, smpc: null, dp: null, payload: '2' });
  fetchHead(site);
  deliver(site, 'c', 'r1.local', '3');
  await settle();
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' });
  assert.is(calls.aggregate.length, 0, 'only the coordinator aggregates');
});

test('participant sends with SMPC or DP as its computation asks, still to the coordinator', async () => {
  const secure = await participantCollecting({ privacy: { smpc, dp } });
  assert.equal(headOf(secure.site), { memo: 'r1.local', destination: null, smpc, dp, payload: '2' });
  const noisy = await participantCollecting({ privacy: { smpc: null, dp } });
  assert.equal(headOf(noisy.site), { memo: 'r1.local', destination: null, smpc: null, dp, payload: '2' });
});

test("participant starts the next round with the coordinator's global result", async () => {
  const { site, calls } = await participantCollecting();
  fetchHead(site);
  deliver(site, 'a', 'r1.global', '6');
  assert.is(valueOf(site), 'local-compute');
  assert.is(roundOf(site), 2);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  assert.equal(calls.computeLocal[1], { setup: participantB, round: 2, global: bytes('6') });
  assert.equal(headOf(site)?.memo, 'r2.local');
  assert.equal(headOf(site)?.payload, '8');
});

test('participant takes a global result only from the coordinator', async () => {
  const { site } = await participantCollecting();
  fetchHead(site);
  deliver(site, 'c', 'r1.global', '666');
  deliver(site, 'c', 'r1.final', '666');
  await settle();
  assert.equal(valueOf(site), { 'awaiting-aggregate': 'collecting' });
  assert.is(roundOf(site), 1);
});

test('participant runs three rounds and writes the final result of round 3', async () => {
  const { site, calls } = await participantCollecting();
  const rounds = [
    { round: 1, sends: '2', memo: 'r1.global', global: '6' },
    { round: 2, sends: '8', memo: 'r2.global', global: '24' },
    { round: 3, sends: '26', memo: 'r3.final', global: '78' },
  ];
  for (const { round, sends, memo, global } of rounds) {
    await reach(site, { 'awaiting-aggregate': 'collecting' });
    assert.is(roundOf(site), round);
    const sent = fetchHead(site);
    assert.is(sent.memo, `r${round}.local`);
    assert.is(text(sent.payload), sends);
    deliver(site, 'a', memo, global);
  }
  await reach(site, { finalizing: 'confirming-to-coordinator' });
  assert.equal(calls.computeLocal.map(({ round }) => round), [1, 2, 3]);
  assert.equal(calls.writeResults, [{ setup: participantB, round: 3, final: bytes('78') }]);
  const done = headOf(site);
  assert.ok(done !== null);
  assert.equal([done.memo, done.destination, done.smpc, done.dp], ['done', null, null, null]);
  assert.ok(done.payload.length > 0, 'an empty body would mean no data');
});

test('participant finishes only after its done was fetched', async () => {
  const { site } = await participantCollecting();
  fetchHead(site);
  deliver(site, 'a', 'r1.final', '6');
  assert.equal(valueOf(site), { finalizing: 'writing' });
  await reach(site, { finalizing: 'confirming-to-coordinator' });
  await settle();
  assert.equal(valueOf(site), { finalizing: 'confirming-to-coordinator' });
  assert.is(toStatus(site.getSnapshot()).finished, false);

  assert.is(fetchHead(site).memo, 'done');
  assert.is(valueOf(site), 'finished');
  assert.is(toStatus(site.getSnapshot()).finished, true);
});

test('a late retry of a global result the participant already used is ignored', async () => {
  const { site } = await participantCollecting();
  fetchHead(site);
  deliver(site, 'a', 'r1.global', '6');
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  deliver(site, 'a', 'r1.global', '6');
  assert.not.ok('r1.global' in site.getSnapshot().context.inbox);
  assert.is(roundOf(site), 2);
});

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

test('a failing local computation ends in error, with its message, and drops queued data', async () => {
  const { site } = await participantCollecting({
    fail: { actor: 'computeLocal', round: 2, error: new Error('column age is missing') },
  });
  // Round 1's contribution is still queued when the coordinator's global comes in.
  deliver(site, 'a', 'r1.global', '6');
  await finish(site);
  const snapshot = site.getSnapshot();
  assert.is(snapshot.value, 'error');
  assert.ok(snapshot.hasTag('error'));
  assert.equal(snapshot.context.outbox, []);
  assert.equal(toStatus(snapshot), {
    available: false,
    finished: true,
    message: 'column age is missing',
    progress: 1,
    state: 'error',
    destination: null,
    smpc: null,
    dp: null,
    memo: null,
  });
});

test('a failing aggregate ends in error with its message', async () => {
  const { site } = await coordinatorCollecting({
    fail: { actor: 'aggregate', round: 1, error: new RangeError('contributions differ in length') },
  });
  deliver(site, 'b', 'r1.local', '2');
  deliver(site, 'c', 'r1.local', '3');
  await finish(site);
  assert.is(valueOf(site), 'error');
  assert.equal(site.getSnapshot().context.failure?.message, 'contributions differ in length');
  const status = toStatus(site.getSnapshot());
  assert.is(status.finished, true);
  assert.is(status.state, 'error');
  assert.is(status.message, 'contributions differ in length');
});

test('failing writeResults ends in error, for either role', async () => {
  const error = new Error('EACCES: /mnt/output');
  const coordinator = await coordinatorBroadcasting({ fail: { actor: 'writeResults', round: 1, error } });
  fetchHead(coordinator.site);
  const participant = await participantCollecting({ fail: { actor: 'writeResults', round: 1, error } });
  fetchHead(participant.site);
  deliver(participant.site, 'a', 'r1.final', '6');

  for (const { site } of [coordinator, participant]) {
    await finish(site);
    assert.is(valueOf(site), 'error');
    assert.equal(headOf(site), null);
    assert.is(toStatus(site.getSnapshot()).message, 'EACCES: /mnt/output');
    assert.is(toStatus(site.getSnapshot()).state, 'error');
  }
});

test('an error message longer than 40 characters is shortened in the status', async () => {
  const long = 'the input table has no column named "systolic_blood_pressure_mmHg"';
  const { site } = startSite({ fail: { actor: 'computeLocal', round: 1, error: new Error(long) } });
  setUp(site, coordinatorA);
  await finish(site);
  const { message } = toStatus(site.getSnapshot());
  assert.ok(message !== null && message.length <= 40, `${String(message?.length)} characters`);
  assert.ok(message?.startsWith('the input table has no column'));
  assert.equal(site.getSnapshot().context.failure?.message, long, 'the full message stays in context');
});

test('a thrown non-Error is reported as text', async () => {
  const { site } = startSite({ fail: { actor: 'computeLocal', round: 1, error: 'disk full' } });
  setUp(site, coordinatorA);
  await finish(site);
  assert.is(toStatus(site.getSnapshot()).message, 'disk full');
});

test('error and finished accept no further events', async () => {
  const failed = startSite({ fail: { actor: 'computeLocal', round: 1, error: new Error('boom') } });
  setUp(failed.site, coordinatorA);
  await finish(failed.site);

  const done = await participantCollecting();
  fetchHead(done.site);
  deliver(done.site, 'a', 'r1.final', '6');
  await reach(done.site, { finalizing: 'confirming-to-coordinator' });
  fetchHead(done.site);
  await finish(done.site);

  for (const { site } of [failed, done]) {
    const snapshot = site.getSnapshot();
    assert.not.ok(snapshot.can({ type: 'fc.setup', setup: coordinatorA }));
    assert.not.ok(snapshot.can({ type: 'fc.data.received', sender: 'a', memo: 'r2.local', payload: bytes('1') }));
    assert.not.ok(snapshot.can({ type: 'fc.data.fetched', itemId: 1 }));
  }
});

// ---------------------------------------------------------------------------------------------
// Numeric ids (the platform sends numbers; the query string carries their string form)
// ---------------------------------------------------------------------------------------------

test('numeric ids: the coordinator matches contributions by the sender as a string', async () => {
  const setup: SetupInfo = { id: 1, coordinator: true, clients: [1, 2, 3], coordinatorId: 1 };
  const { site, calls } = startSite({ rounds: 1 });
  setUp(site, setup);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  deliver(site, '2', 'r1.local', '2');
  deliver(site, '3', 'r1.local', '3');
  await reach(site, 'broadcast');
  assert.equal(texts(calls.aggregate[0]?.contributions ?? []), ['1', '2', '3']);
  fetchHead(site);
  await reach(site, { finalizing: 'confirming' });
  deliver(site, '2', 'done', confirmation);
  deliver(site, '3', 'done', confirmation);
  assert.is(valueOf(site), 'finished');
});

test('numeric ids: a participant takes the global from the coordinator id as a string', async () => {
  const setup: SetupInfo = { id: 2, coordinator: false, clients: [1, 2, 3], coordinatorId: 1 };
  const { site } = startSite({ value: 2 });
  setUp(site, setup);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  fetchHead(site);
  deliver(site, '1', 'r1.global', '6');
  assert.is(roundOf(site), 2);
});

test('numeric ids: with DP the coordinator addresses itself by its numeric id', async () => {
  const setup: SetupInfo = { id: 1, coordinator: true, clients: [1, 2, 3], coordinatorId: 1 };
  const { site } = startSite({ privacy: { smpc: null, dp } });
  setUp(site, setup);
  await reach(site, { 'awaiting-aggregate': 'collecting' });
  assert.is(toStatus(site.getSnapshot()).destination, 1);
  fetchHead(site);
  deliver(site, '2', 'r1.local', '2');
  deliver(site, '3', 'r1.local', '3');
  deliver(site, '1', 'r1.local', '1');
  await reach(site, 'broadcast');
});

// ---------------------------------------------------------------------------------------------
// A whole federation
// ---------------------------------------------------------------------------------------------

/** A minimal controller: polls every site's status, fetches the head and routes it. */
async function relay(sites: ReadonlyMap<string, Site>, coordinator: string): Promise<void> {
  for (let poll = 0; poll < 100; poll += 1) {
    if ([...sites.values()].every((site) => site.getSnapshot().status === 'done')) return;
    for (const [id, site] of sites) {
      if (!toStatus(site.getSnapshot()).available) continue;
      const item = fetchHead(site);
      const everyoneElse = [...sites.keys()].filter((other) => other !== id);
      const recipients =
        item.destination !== null ? [String(item.destination)] : id === coordinator ? everyoneElse : [coordinator];
      for (const recipient of recipients) {
        sites.get(recipient)?.send({ type: 'fc.data.received', sender: id, memo: item.memo, payload: item.payload });
      }
    }
    await settle();
  }
  throw new Error('the federation did not finish');
}

test('three sites run three rounds through a relay and all write the same final result', async () => {
  const a = startSite({ value: 1, rounds: 3 });
  const b = startSite({ value: 2 });
  const c = startSite({ value: 3 });
  setUp(a.site, coordinatorA);
  setUp(b.site, participantB);
  setUp(c.site, { id: 'c', coordinator: false, clients, coordinatorId: 'a' });

  await relay(new Map([['a', a.site], ['b', b.site], ['c', c.site]]), 'a');
  for (const { site, calls } of [a, b, c]) {
    assert.is(valueOf(site), 'finished');
    assert.equal(calls.writeResults.map(({ round, final }) => [round, text(final)]), [[3, '78']]);
  }
  assert.equal(a.calls.aggregate.map(({ contributions }) => texts(contributions)), [
    ['1', '2', '3'],
    ['7', '8', '9'],
    ['25', '26', '27'],
  ]);
});

test.run();
