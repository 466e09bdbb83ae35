/**
 * The FeatureCloud client as one explicit state machine.
 *
 * The controller drives the client with three kinds of call, which the HTTP layer turns into the
 * events below. Everything the machine does besides bookkeeping (reading data, the computation,
 * writing results) is an invoked actor that the runtime provides with `machine.provide(...)`, so
 * this file depends on nothing but xstate and types, and tests swap the actors for fixtures.
 *
 * Payloads are opaque bytes here: encoding belongs to the computation side, routing to the
 * controller. The machine only decides *when* something is computed, queued or consumed.
 */
import { and, assign, fromPromise, not, setup, type SnapshotFrom } from 'xstate';
import type { ClientId, DpOptions, SetupInfo, SmpcOptions } from '../src/protocol/types.ts';

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/** Every event the client machine accepts. HTTP input is validated into one of these first. */
export type ClientEvent =
  | { readonly type: 'fc.setup'; readonly setup: SetupInfo }
  | {
      readonly type: 'fc.data.received';
      readonly sender: string;
      readonly memo: string;
      readonly payload: Uint8Array;
    }
  | { readonly type: 'fc.data.fetched'; readonly itemId: number };

// ---------------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------------

/** A message waiting for the controller to fetch it; the status describes the head item. */
export interface OutboxItem {
  readonly id: number;
  readonly memo: string;
  readonly destination: ClientId | null;
  readonly smpc: SmpcOptions | null;
  readonly dp: DpOptions | null;
  readonly payload: Uint8Array;
}

export interface Privacy {
  readonly smpc: SmpcOptions | null;
  readonly dp: DpOptions | null;
}

export interface Failure {
  /** What failed, short enough for a status message once trimmed. */
  readonly message: string;
  /** Everything known about it, for the log. */
  readonly detail: string;
}

/** memo → sender → payload. A sender's second message under the same memo is a relay retry. */
export type Inbox = Readonly<Record<string, Readonly<Record<string, Uint8Array>>>>;

export interface ClientContext {
  readonly setup: SetupInfo | null;
  /** The current round, from 1. */
  readonly round: number;
  /** The computation's estimate of its rounds, for progress; known after the first local step. */
  readonly expectedRounds: number | null;
  readonly privacy: Privacy;
  /** The coordinator's own contribution, when it needs no trip through the controller. */
  readonly ownContribution: Uint8Array | null;
  /** The latest global result (the aggregate of the last round). */
  readonly global: Uint8Array | null;
  readonly inbox: Inbox;
  /**
   * Memos of the current round already used up; late retries under them are dropped instead of
   * piling up. Messages of past rounds are dropped by their memo's round number, so this list
   * starts empty every round and never grows with the number of rounds.
   */
  readonly consumed: readonly string[];
  readonly outbox: readonly OutboxItem[];
  readonly nextItemId: number;
  readonly failure: Failure | null;
}

// ---------------------------------------------------------------------------------------------
// Injected actors (their contracts)
// ---------------------------------------------------------------------------------------------

export interface LocalComputeInput {
  readonly setup: SetupInfo;
  readonly round: number;
  /** The previous round's global result; null in round 1. */
  readonly global: Uint8Array | null;
}

export interface LocalComputeOutput {
  readonly payload: Uint8Array;
  readonly privacy: Privacy;
  readonly expectedRounds: number;
}

export interface AggregateInput {
  readonly setup: SetupInfo;
  readonly round: number;
  /** With SMPC exactly one item: the controllers' element-wise sum over every client. */
  readonly contributions: readonly Uint8Array[];
  readonly secure: boolean;
  readonly previous: Uint8Array | null;
}

export interface AggregateOutput {
  readonly payload: Uint8Array;
  /** True when no further round is needed. */
  readonly final: boolean;
}

export interface WriteResultsInput {
  readonly setup: SetupInfo;
  readonly round: number;
  readonly final: Uint8Array;
}

function notProvided(name: string): never {
  throw new Error(`the '${name}' actor was not provided; use machine.provide({ actors })`);
}

// ---------------------------------------------------------------------------------------------
// Pure helpers over context (no side effects)
// ---------------------------------------------------------------------------------------------

/** Messages are keyed by the sender as the query string carries it: always a string. */
export const senderKey = (id: ClientId): string => String(id);

// Own keys only: an id or a memo such as `constructor` must not find Object.prototype's members.
const messagesFor = (context: ClientContext, memo: string): Readonly<Record<string, Uint8Array>> =>
  (Object.hasOwn(context.inbox, memo) ? context.inbox[memo] : undefined) ?? {};

const messageFrom = (
  messages: Readonly<Record<string, Uint8Array>>,
  sender: string,
): Uint8Array | undefined => (Object.hasOwn(messages, sender) ? messages[sender] : undefined);

export const memoOf = {
  local: (round: number) => `r${round}.local`,
  global: (round: number) => `r${round}.global`,
  final: (round: number) => `r${round}.final`,
  done: 'done',
} as const;

/** The body of a participant's `done`: never empty, since an empty body means "no data". */
export const CONFIRMATION: Uint8Array = new TextEncoder().encode('{"done":true}');

function requireSetup(context: ClientContext): SetupInfo {
  if (context.setup === null) throw new Error('the client is not set up');
  return context.setup;
}

/** Who must contribute to this round's aggregate through the controller. */
function expectedContributors(context: ClientContext): readonly string[] {
  const { id, clients } = requireSetup(context);
  const own = senderKey(id);
  const others = clients.map(senderKey).filter((client) => client !== own);
  // The computation gets the coordinator's contribution first, whether kept or relayed (DP).
  return context.ownContribution === null ? [own, ...others] : others;
}

function coordinatorKey(setup: SetupInfo): string | null {
  if (setup.coordinatorId !== null) return senderKey(setup.coordinatorId);
  return null;
}

/** The global result for the current round, if the coordinator's broadcast is in. */
function globalMessage(context: ClientContext): { payload: Uint8Array; final: boolean } | null {
  const setupInfo = requireSetup(context);
  const fromCoordinator = (memo: string): Uint8Array | null => {
    const messages = messagesFor(context, memo);
    const coordinator = coordinatorKey(setupInfo);
    if (coordinator !== null) return messageFrom(messages, coordinator) ?? null;
    // Without a known coordinator id, the only legitimate global sender is whoever broadcast it,
    // and that is never this client: a message under its own id is a relay's mistake.
    const own = senderKey(setupInfo.id);
    return Object.entries(messages).find(([sender]) => sender !== own)?.[1] ?? null;
  };
  const final = fromCoordinator(memoOf.final(context.round));
  if (final !== null) return { payload: final, final: true };
  const global = fromCoordinator(memoOf.global(context.round));
  return global === null ? null : { payload: global, final: false };
}

/** Who the current wait is for, in words, for the message of a timeout. */
function awaited(context: ClientContext): string {
  const setupInfo = requireSetup(context);
  if (!setupInfo.coordinator) return "the coordinator's result";
  const round = context.round;
  if (context.privacy.smpc !== null) return `the SMPC aggregate of round ${round}`;
  const messages = messagesFor(context, memoOf.local(round));
  const missing = expectedContributors(context).filter((sender) => messageFrom(messages, sender) === undefined);
  return `round ${round} data from ${missing.join(', ')}`;
}

function unconfirmed(context: ClientContext): string {
  const { id, clients } = requireSetup(context);
  const confirmations = messagesFor(context, memoOf.done);
  const missing = clients
    .map(senderKey)
    .filter((client) => client !== senderKey(id) && messageFrom(confirmations, client) === undefined);
  return `confirmations from ${missing.join(', ')}`;
}

function errorDetail(error: unknown): Failure {
  if (error instanceof Error) {
    // Like the reference engine, fall back to the exception's name when it says nothing else.
    const message = error.message === '' ? error.name : error.message;
    return { message, detail: error.stack ?? `${error.name}: ${error.message}` };
  }
  return { message: String(error), detail: String(error) };
}

function enqueue(
  context: ClientContext,
  item: Omit<OutboxItem, 'id'>,
): Pick<ClientContext, 'outbox' | 'nextItemId'> {
  return {
    outbox: [...context.outbox, { ...item, id: context.nextItemId }],
    nextItemId: context.nextItemId + 1,
  };
}

const ROUND_MEMO = /^r(\d+)\.(?:local|global|final)$/;

/** The round a memo belongs to (`r3.local` → 3), or null for other memos (`done`). */
function roundOf(memo: string): number | null {
  const match = ROUND_MEMO.exec(memo);
  return match === null ? null : Number(match[1]);
}

/** Whether messages under this memo can no longer be of use: used up, or of a round that is over. */
function isSpent(context: ClientContext, memo: string): boolean {
  const round = roundOf(memo);
  return (round !== null && round < context.round) || context.consumed.includes(memo);
}

function consume(context: ClientContext, memo: string): Pick<ClientContext, 'inbox' | 'consumed'> {
  const { [memo]: _used, ...rest } = context.inbox;
  return { inbox: rest, consumed: [...context.consumed, memo] };
}

// ---------------------------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------------------------

/** Status metadata per state: the message a controller shows, and how far a round has come. */
export interface StateMeta {
  readonly message: string;
  /** Fraction of a round done on entering this state (0..1). */
  readonly phase: number;
}

/** Relay events are accepted in every state after setup, whatever else the state waits for. */
const relay = {
  'fc.data.received': { actions: 'storeMessage' },
  'fc.data.fetched': { actions: 'dequeue' },
} as const;

const initialContext: ClientContext = {
  setup: null,
  round: 1,
  expectedRounds: null,
  privacy: { smpc: null, dp: null },
  ownContribution: null,
  global: null,
  inbox: {},
  consumed: [],
  outbox: [],
  nextItemId: 1,
  failure: null,
};

export const clientMachine = setup({
  types: {
    context: {} as ClientContext,
    events: {} as ClientEvent,
    tags: {} as 'running' | 'error' | 'action_required',
    meta: {} as StateMeta,
  },
  actors: {
    computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async () =>
      notProvided('computeLocal'),
    ),
    aggregate: fromPromise<AggregateOutput, AggregateInput>(async () => notProvided('aggregate')),
    writeResults: fromPromise<void, WriteResultsInput>(async () => notProvided('writeResults')),
  },
  delays: {
    // How long a client waits for others before it gives up and reports an error, so a dead
    // site ends the run with a message instead of a silent hang. The runtime sets it.
    waitTimeout: 60 * 60 * 1000,
  },
  guards: {
    isCoordinator: ({ context }) => context.setup?.coordinator === true,
    hasAllContributions: ({ context }) => {
      const messages = messagesFor(context, memoOf.local(context.round));
      // SMPC: the controllers deliver one package holding the sum over all clients.
      if (context.privacy.smpc !== null) return Object.keys(messages).length > 0;
      return expectedContributors(context).every((sender) => messageFrom(messages, sender) !== undefined);
    },
    hasGlobalResult: ({ context }) => globalMessage(context)?.final === false,
    hasFinalResult: ({ context }) => globalMessage(context)?.final === true,
    // The computation says, with each aggregate, whether it was the last one.
    isLastAggregate: (_, params: { readonly final: boolean }) => params.final,
    isOutboxEmpty: ({ context }) => context.outbox.length === 0,
    hasAllConfirmations: ({ context }) => {
      const { id, clients } = requireSetup(context);
      const confirmations = messagesFor(context, memoOf.done);
      return clients
        .filter((client) => senderKey(client) !== senderKey(id))
        .every((client) => messageFrom(confirmations, senderKey(client)) !== undefined);
    },
  },
  actions: {
    acceptSetup: assign(({ event }) => {
      if (event.type !== 'fc.setup') return {};
      return { setup: event.setup };
    }),
    storeMessage: assign(({ context, event }) => {
      if (event.type !== 'fc.data.received') return {};
      const existing = messagesFor(context, event.memo);
      if (isSpent(context, event.memo) || messageFrom(existing, event.sender) !== undefined) {
        return {};
      }
      return {
        inbox: { ...context.inbox, [event.memo]: { ...existing, [event.sender]: event.payload } },
      };
    }),
    dequeue: assign(({ context, event }) => {
      if (event.type !== 'fc.data.fetched') return {};
      const [head, ...rest] = context.outbox;
      return head !== undefined && head.id === event.itemId ? { outbox: rest } : {};
    }),
    queueContribution: assign(({ context }, output: LocalComputeOutput) => {
      const setupInfo = requireSetup(context);
      const base = { privacy: output.privacy, expectedRounds: output.expectedRounds };
      const { smpc, dp } = output.privacy;
      if (setupInfo.coordinator && smpc === null && dp === null) {
        return { ...base, ownContribution: output.payload };
      }
      // With DP the coordinator's own share also travels through the controller, addressed to
      // itself, because no destination would mean a broadcast.
      const destination = setupInfo.coordinator && smpc === null ? setupInfo.id : null;
      return {
        ...base,
        ownContribution: null,
        ...enqueue(context, {
          memo: memoOf.local(context.round),
          destination,
          smpc,
          dp,
          payload: output.payload,
        }),
      };
    }),
    recordAggregate: assign(({ context }, output: AggregateOutput) => ({
      global: output.payload,
      ownContribution: null,
      ...consume(context, memoOf.local(context.round)),
    })),
    queueGlobal: assign(({ context }, params: { readonly final: boolean }) => {
      if (context.global === null) return {};
      return enqueue(context, {
        memo: params.final ? memoOf.final(context.round) : memoOf.global(context.round),
        destination: null,
        smpc: null,
        dp: null,
        payload: context.global,
      });
    }),
    acceptGlobal: assign(({ context }) => {
      const message = globalMessage(context);
      if (message === null) return {};
      const memo = message.final ? memoOf.final(context.round) : memoOf.global(context.round);
      return { global: message.payload, ...consume(context, memo) };
    }),
    startNextRound: assign(({ context }) => {
      const round = context.round + 1;
      // What is left of past rounds (strays, never used) goes, and the used-up list starts anew.
      const inbox = Object.fromEntries(
        Object.entries(context.inbox).filter(([memo]) => (roundOf(memo) ?? round) >= round),
      );
      return { round, inbox, consumed: [] };
    }),
    queueConfirmation: assign(({ context }) =>
      enqueue(context, {
        memo: memoOf.done,
        destination: null,
        smpc: null,
        dp: null,
        payload: CONFIRMATION,
      }),
    ),
    recordFailure: assign((_, params: { readonly error: unknown }) => ({
      failure: errorDetail(params.error),
    })),
    // The platform drops queued data on error; nothing half-computed must leave the site.
    dropOutbox: assign({ outbox: [] }),
    recordTimeout: assign((_, params: { readonly waitingFor: string }) => ({
      failure: {
        message: `timed out: ${params.waitingFor}`,
        detail: `gave up waiting for ${params.waitingFor} (see WAIT_TIMEOUT)`,
      },
    })),
  },
}).createMachine({
  id: 'client',
  description:
    'A FeatureCloud client: one local step per round, a coordinator that aggregates, and a last confirmation so no site loses the final result.',
  context: initialContext,
  initial: 'initial',
  states: {
    initial: {
      description: 'Waiting for the controller to say who this client is (POST /api/setup).',
      meta: { message: 'waiting for setup', phase: 0 },
      on: {
        'fc.setup': { target: 'local-compute', actions: 'acceptSetup' },
      },
    },
    'local-compute': {
      description:
        "Computing this site's contribution for the current round from its local data and the previous global result.",
      tags: ['running'],
      meta: { message: 'computing locally', phase: 0 },
      on: relay,
      invoke: {
        id: 'computeLocal',
        src: 'computeLocal',
        input: ({ context }) => ({
          setup: requireSetup(context),
          round: context.round,
          global: context.global,
        }),
        onDone: {
          target: 'awaiting-aggregate',
          actions: { type: 'queueContribution', params: ({ event }) => event.output },
        },
        onError: {
          target: 'error',
          actions: { type: 'recordFailure', params: ({ event }) => ({ error: event.error }) },
        },
      },
    },
    'awaiting-aggregate': {
      description:
        "Coordinator: waiting until every client's contribution for this round is in, then aggregating. Participant: waiting for the coordinator's global result.",
      tags: ['running'],
      meta: { message: 'waiting for the aggregate', phase: 0.4 },
      on: relay,
      initial: 'collecting',
      states: {
        collecting: {
          description:
            'Contributions and results are kept per memo as they arrive, also those of later rounds.',
          meta: { message: 'waiting for the aggregate', phase: 0.4 },
          after: {
            waitTimeout: {
              target: '#client.error',
              actions: { type: 'recordTimeout', params: ({ context }) => ({ waitingFor: awaited(context) }) },
            },
          },
          always: [
            {
              guard: and(['isCoordinator', 'hasAllContributions']),
              target: 'aggregating',
            },
            {
              guard: and([not('isCoordinator'), 'hasFinalResult']),
              target: '#client.finalizing',
              actions: 'acceptGlobal',
            },
            {
              guard: and([not('isCoordinator'), 'hasGlobalResult']),
              target: '#client.local-compute',
              actions: ['acceptGlobal', 'startNextRound'],
            },
          ],
        },
        aggregating: {
          description:
            "The coordinator combines this round's contributions and decides whether another round is needed.",
          meta: { message: 'aggregating', phase: 0.6 },
          invoke: {
            id: 'aggregate',
            src: 'aggregate',
            input: ({ context }) => {
              const messages = messagesFor(context, memoOf.local(context.round));
              const received =
                context.privacy.smpc !== null
                  ? Object.values(messages).slice(0, 1)
                  : expectedContributors(context).flatMap((sender) => {
                      const payload = messageFrom(messages, sender);
                      return payload === undefined ? [] : [payload];
                    });
              return {
                setup: requireSetup(context),
                round: context.round,
                contributions:
                  context.ownContribution === null
                    ? received
                    : [context.ownContribution, ...received],
                secure: context.privacy.smpc !== null,
                previous: context.global,
              };
            },
            onDone: [
              {
                guard: { type: 'isLastAggregate', params: ({ event }) => ({ final: event.output.final }) },
                target: '#client.broadcast.last',
                actions: { type: 'recordAggregate', params: ({ event }) => event.output },
              },
              {
                target: '#client.broadcast.interim',
                actions: { type: 'recordAggregate', params: ({ event }) => event.output },
              },
            ],
            onError: {
              target: '#client.error',
              actions: { type: 'recordFailure', params: ({ event }) => ({ error: event.error }) },
            },
          },
        },
      },
    },
    broadcast: {
      description:
        'Coordinator: the global result is queued for every participant; once the controller has fetched it, the next round starts, or after the last one the results are written.',
      tags: ['running'],
      meta: { message: 'broadcasting the result', phase: 0.8 },
      on: relay,
      initial: 'interim',
      states: {
        interim: {
          description: "This round's result, for the next round's local step (memo rN.global).",
          meta: { message: 'broadcasting the result', phase: 0.8 },
          entry: { type: 'queueGlobal', params: { final: false } },
          always: { guard: 'isOutboxEmpty', target: '#client.local-compute', actions: 'startNextRound' },
        },
        last: {
          description: 'The final result (memo rN.final).',
          meta: { message: 'broadcasting the final result', phase: 0.8 },
          entry: { type: 'queueGlobal', params: { final: true } },
          always: { guard: 'isOutboxEmpty', target: '#client.finalizing' },
        },
      },
    },
    finalizing: {
      description:
        'Writing the final result; then a participant confirms it to the coordinator, and the coordinator waits for every confirmation, because its finishing stops every site.',
      tags: ['running'],
      meta: { message: 'writing results', phase: 0.9 },
      on: relay,
      initial: 'writing',
      states: {
        writing: {
          description: 'Writing the final result to the output folder.',
          meta: { message: 'writing results', phase: 0.9 },
          invoke: {
            id: 'writeResults',
            src: 'writeResults',
            input: ({ context }) => {
              if (context.global === null) throw new Error('no final result to write');
              return { setup: requireSetup(context), round: context.round, final: context.global };
            },
            onDone: [
              { guard: 'isCoordinator', target: 'confirming' },
              { target: 'confirming-to-coordinator', actions: 'queueConfirmation' },
            ],
            onError: {
              target: '#client.error',
              actions: { type: 'recordFailure', params: ({ event }) => ({ error: event.error }) },
            },
          },
        },
        confirming: {
          description: "Coordinator: waiting for every participant's confirmation ('done').",
          meta: { message: 'waiting for confirmations', phase: 0.95 },
          always: { guard: 'hasAllConfirmations', target: '#client.finished' },
          after: {
            waitTimeout: {
              target: '#client.error',
              actions: {
                type: 'recordTimeout',
                params: ({ context }) => ({ waitingFor: unconfirmed(context) }),
              },
            },
          },
        },
        'confirming-to-coordinator': {
          description: "Participant: its confirmation ('done') is queued for the coordinator.",
          meta: { message: 'confirming the result', phase: 0.95 },
          always: { guard: 'isOutboxEmpty', target: '#client.finished' },
        },
      },
    },
    finished: {
      description: 'The final result is written at this site and every message has left it.',
      type: 'final',
      meta: { message: 'finished', phase: 1 },
    },
    error: {
      description:
        'A computation or I/O step failed. Queued data is dropped; the status names what failed.',
      type: 'final',
      tags: ['error'],
      meta: { message: 'error', phase: 1 },
      entry: 'dropOutbox',
    },
  },
});

export type ClientMachine = typeof clientMachine;
export type ClientSnapshot = SnapshotFrom<ClientMachine>;
