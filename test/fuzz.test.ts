/**
 * Model-based fuzzing of one client: thousands of random call sequences, valid and invalid, as a
 * controller, its peers and strangers could make them, against a live client, each checked
 * against a small model of what the API promises:
 *
 * - no call gets a 5xx, and every 4xx is a JSON problem that shows nothing of our internals;
 * - the status always has its nine keys, with valid types, and reading it twice in a row gives
 *   the same answer;
 * - `available` means the next GET /api/data returns exactly the item the model predicts (memo,
 *   destination and bytes), and a second GET without a status in between is a retry of it;
 * - every accepted message is kept exactly once (the model's inbox equals the machine's), and
 *   each aggregate gets exactly the contributions the model expects, in order.
 *
 * The computations are fixtures that wait for the fuzzer to release them, so every run is
 * deterministic: the fuzzer decides when a computation ends, and whether it fails. Most runs go
 * through `app.callback()` in memory (several times faster); a share goes over a real socket.
 * The seed is fixed; set FUZZ_SEED (and FUZZ_RUNS) to explore further.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import type { AddressInfo } from 'node:net';
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
import { createClient, type Client } from '../src/client.ts';
import { createApp } from '../src/http/app.ts';
import { createLogger, silentLogger } from '../src/log.ts';
import {
  MAX_STATUS_MESSAGE,
  STATUS_KEYS,
  type ClientId,
  type DpOptions,
  type SetupInfo,
  type SmpcOptions,
} from '../src/protocol/types.ts';
import { listen } from '../src/server.ts';
import {
  memoryTransport,
  socketTransport,
  type HttpAnswer,
  type HttpCall,
  type Transport,
} from './support/transport.ts';

/** The round of a memo such as `r3.local`, or null for others; written apart from the machine's. */
function roundOfMemo(memo: string): number | null {
  const match = /^r(\d+)\.(local|global|final)$/.exec(memo);
  return match === null ? null : Number(match[1]);
}

const SEED = Number(process.env['FUZZ_SEED'] ?? 20_240_611);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 1);
const MEMORY_RUNS = 1000 * RUNS;
const SOCKET_RUNS = 60 * RUNS;
const MAX_COMMANDS = 35;
const CALLS_AFTER_THE_END = 4;
const BODY_LIMIT = 64;
/** The fixture computation asks for two rounds: r1.global, then r2.final. */
const ROUNDS = 2;

// ---------------------------------------------------------------------------------------------
// The scenario: who this client is in which federation
// ---------------------------------------------------------------------------------------------

type PrivacyMode = 'none' | 'dp' | 'smpc';

interface Scenario {
  /** The federation; the first id is the coordinator. */
  readonly ids: readonly ClientId[];
  /** This client's position in `ids`. */
  readonly self: number;
  /** Whether a participant's setup names the coordinator (coordinatorID). */
  readonly declareCoordinator: boolean;
  readonly privacy: PrivacyMode;
}

const ID_SETS: readonly (readonly ClientId[])[] = [
  ['a', 'b', 'c'],
  ['a', 'b'],
  [1, 2, 3],
  [0, 10],
  ['__proto__', 'constructor', 'toString'],
  ['😀', '\u202Eb', 'n\u0000l'],
];

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    ids: fc.constantFrom(...ID_SETS),
    self: fc.nat(2),
    declareCoordinator: fc.boolean(),
    privacy: fc.constantFrom<PrivacyMode>('none', 'none', 'dp', 'smpc'),
  })
  .map((scenario) => ({ ...scenario, self: scenario.self % scenario.ids.length }));

const key = (id: ClientId): string => String(id);
const selfId = (scenario: Scenario): ClientId => scenario.ids[scenario.self] ?? 'unreachable';
const isCoordinator = (scenario: Scenario): boolean => scenario.self === 0;

function setupBody(scenario: Scenario): Record<string, unknown> {
  const body: Record<string, unknown> = {
    id: selfId(scenario),
    coordinator: isCoordinator(scenario),
    clients: scenario.ids,
  };
  if (scenario.declareCoordinator) body['coordinatorID'] = scenario.ids[0];
  return body;
}

// ---------------------------------------------------------------------------------------------
// The fixture computation, shared by the real client and the model
// ---------------------------------------------------------------------------------------------

const DP: DpOptions = { serialization: 'json', noisetype: 'laplace', epsilon: 1, delta: 0 };
const SMPC: SmpcOptions = { operation: 'add', serialization: 'json', shards: 0, exponent: 8 };
const privacyOf = (mode: PrivacyMode) => ({
  smpc: mode === 'smpc' ? SMPC : null,
  dp: mode === 'dp' ? DP : null,
});

const hex = (bytes: Uint8Array | null): string | null =>
  bytes === null ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const bytesOf = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');

/** A site's contribution names the site, the round and the global result it started from. */
const localPayload = (id: ClientId, round: number, global: Uint8Array | null): Buffer =>
  bytesOf({ site: key(id), round, global: hex(global) });
/** An aggregate lists exactly the contributions it was given, in order. */
const aggregatePayload = (round: number, contributions: readonly Uint8Array[]): Buffer =>
  bytesOf({ round, of: contributions.map(hex) });

type ActorKind = 'computeLocal' | 'aggregate' | 'writeResults';

type Started =
  | { readonly kind: 'computeLocal'; readonly input: LocalComputeInput }
  | { readonly kind: 'aggregate'; readonly input: AggregateInput }
  | { readonly kind: 'writeResults'; readonly input: WriteResultsInput };

/** A computation that has started and waits for the fuzzer to end it. */
type Pending = Started & { end(fail: boolean): void };

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

type Phase =
  | 'initial'
  | 'computing'
  | 'collecting'
  | 'aggregating'
  | 'broadcast'
  | 'writing'
  | 'confirming'
  | 'confirming-to-coordinator'
  | 'finished'
  | 'error';

/** The machine's state path for each phase of the model. */
const PATH: Record<Phase, string> = {
  initial: 'initial',
  computing: 'local-compute',
  collecting: 'awaiting-aggregate.collecting',
  aggregating: 'awaiting-aggregate.aggregating',
  broadcast: 'broadcast',
  writing: 'finalizing.writing',
  confirming: 'finalizing.confirming',
  'confirming-to-coordinator': 'finalizing.confirming-to-coordinator',
  finished: 'finished',
  error: 'error',
};

interface Item {
  readonly memo: string;
  readonly destination: ClientId | null;
  readonly smpc: SmpcOptions | null;
  readonly dp: DpOptions | null;
  readonly payload: Buffer;
}

/** What the API promises, written plainly: one field per thing a controller can observe. */
class Model {
  phase: Phase = 'initial';
  round = 1;
  /** The machine learns the privacy settings from its first local computation. */
  privacyKnown = false;
  /** memo → sender → bytes, in the order they were accepted. */
  readonly inbox = new Map<string, Map<string, Buffer>>();
  readonly consumed = new Set<string>();
  outbox: Item[] = [];
  own: Buffer | null = null;
  global: Buffer | null = null;
  /** The item the last GET /api/data carried away; a GET before the next status repeats it. */
  lastFetched: Item | null = null;
  /** Calls made since the run ended (finished or error): a few are worth it, many are not. */
  afterTheEnd = 0;
  /**
   * Where the API leaves the choice open, the machine's choice is checked and then adopted
   * (`adoptChoices`). A participant that does not know its coordinator takes the global result
   * of whoever broadcast it, never its own: these are the candidates. A coordinator with SMPC takes one summed
   * package, whoever it names as sender: this is the one it took.
   */
  globalChoices: Buffer[] | null = null;
  smpcPick: Buffer | null = null;

  constructor(readonly scenario: Scenario) {}

  get coordinator(): boolean {
    return isCoordinator(this.scenario);
  }

  get self(): string {
    return key(selfId(this.scenario));
  }

  get others(): string[] {
    return this.scenario.ids.map(key).filter((id) => id !== this.self);
  }

  pending(): ActorKind | null {
    if (this.phase === 'computing') return 'computeLocal';
    if (this.phase === 'aggregating') return 'aggregate';
    if (this.phase === 'writing') return 'writeResults';
    return null;
  }

  /** The setup this client was given, as the machine keeps it. */
  setup(): SetupInfo {
    const { ids } = this.scenario;
    const coordinatorId = this.coordinator
      ? selfId(this.scenario)
      : this.scenario.declareCoordinator
        ? (ids[0] ?? null)
        : null;
    return { id: selfId(this.scenario), coordinator: this.coordinator, clients: ids, coordinatorId };
  }

  private enqueue(item: Omit<Item, 'smpc' | 'dp'> & Partial<Pick<Item, 'smpc' | 'dp'>>): void {
    this.outbox.push({ smpc: null, dp: null, ...item });
  }

  /** A new round: past rounds' leftovers go, and the used-up memos start anew (as the machine does). */
  private nextRound(): void {
    this.round += 1;
    for (const memo of [...this.inbox.keys()]) {
      const round = roundOfMemo(memo);
      if (round !== null && round < this.round) this.inbox.delete(memo);
    }
    this.consumed.clear();
  }

  private consume(memo: string): void {
    this.inbox.delete(memo);
    this.consumed.add(memo);
    this.smpcPick = null;
  }

  private messages(memo: string): Map<string, Buffer> {
    return this.inbox.get(memo) ?? new Map<string, Buffer>();
  }

  /** Who must send this round's contribution through the controller. */
  private contributors(): string[] {
    return this.own === null ? [this.self, ...this.others] : this.others;
  }

  /** What the aggregate of this round must be given, in order. */
  contributions(): Buffer[] {
    const messages = this.messages(`r${this.round}.local`);
    if (this.scenario.privacy === 'smpc') {
      return this.smpcPick === null ? [...messages.values()].slice(0, 1) : [this.smpcPick];
    }
    const received = this.contributors().flatMap((sender) => {
      const payload = messages.get(sender);
      return payload === undefined ? [] : [payload];
    });
    return this.own === null ? received : [this.own, ...received];
  }

  private hasAllContributions(): boolean {
    const messages = this.messages(`r${this.round}.local`);
    if (this.scenario.privacy === 'smpc') return messages.size > 0;
    return this.contributors().every((sender) => messages.has(sender));
  }

  /** The coordinator's result for this round, if it is in: the final one first. */
  private globalMessage(): { choices: Buffer[]; final: boolean; memo: string } | null {
    const coordinator = this.setup().coordinatorId;
    for (const [suffix, final] of [['final', true], ['global', false]] as const) {
      const memo = `r${this.round}.${suffix}`;
      const messages = this.messages(memo);
      const broadcast = [...messages].filter(([sender]) => sender !== this.self).map(([, payload]) => payload);
      const candidates = coordinator === null ? broadcast : [messages.get(key(coordinator))];
      const choices = candidates.filter((payload): payload is Buffer => payload !== undefined);
      if (choices.length > 0) return { choices, final, memo };
    }
    return null;
  }

  /** Eventless steps: what the machine does on its own once a call or a computation changed it. */
  settle(): void {
    for (;;) {
      const before = `${this.phase}/${this.round}`;
      if (this.phase === 'collecting') {
        if (this.coordinator && this.hasAllContributions()) {
          this.phase = 'aggregating';
        } else if (!this.coordinator) {
          const message = this.globalMessage();
          if (message !== null) {
            this.global = message.choices[0] ?? null;
            if (message.choices.length > 1) this.globalChoices = message.choices;
            this.consume(message.memo);
            if (message.final) {
              this.phase = 'writing';
            } else {
              this.nextRound();
              this.phase = 'computing';
            }
          }
        }
      } else if (this.phase === 'broadcast' && this.outbox.length === 0) {
        if (this.round >= ROUNDS) {
          this.phase = 'writing';
        } else {
          this.nextRound();
          this.phase = 'computing';
        }
      } else if (this.phase === 'confirming') {
        if (this.others.every((sender) => this.messages('done').has(sender))) this.phase = 'finished';
      } else if (this.phase === 'confirming-to-coordinator' && this.outbox.length === 0) {
        this.phase = 'finished';
      }
      if (`${this.phase}/${this.round}` === before) return;
    }
  }

  setUp(): void {
    this.phase = 'computing';
  }

  /** A computation ended (or failed). */
  ended(fail: boolean): void {
    const kind = this.pending();
    if (kind === null) return;
    if (fail) {
      this.phase = 'error';
      this.outbox = [];
      return;
    }
    const { smpc, dp } = privacyOf(this.scenario.privacy);
    if (kind === 'computeLocal') {
      this.privacyKnown = true;
      const payload = localPayload(selfId(this.scenario), this.round, this.global);
      if (this.coordinator && smpc === null && dp === null) {
        this.own = payload;
      } else {
        this.own = null;
        const destination = this.coordinator && smpc === null ? selfId(this.scenario) : null;
        this.enqueue({ memo: `r${this.round}.local`, destination, smpc, dp, payload });
      }
      this.phase = 'collecting';
    } else if (kind === 'aggregate') {
      this.global = aggregatePayload(this.round, this.contributions());
      this.own = null;
      this.consume(`r${this.round}.local`);
      const memo = this.round >= ROUNDS ? `r${this.round}.final` : `r${this.round}.global`;
      this.enqueue({ memo, destination: null, payload: this.global });
      this.phase = 'broadcast';
    } else if (this.coordinator) {
      this.phase = 'confirming';
    } else {
      this.enqueue({ memo: 'done', destination: null, payload: Buffer.from(CONFIRMATION) });
      this.phase = 'confirming-to-coordinator';
    }
    this.settle();
  }

  /** POST /api/data from `sender` under `memo` with a body the size limit allows. */
  received(sender: string, memo: string, payload: Buffer): void {
    const messages = this.messages(memo);
    const round = roundOfMemo(memo);
    if ((round !== null && round < this.round) || this.consumed.has(memo) || messages.has(sender)) return;
    this.inbox.set(memo, new Map([...messages, [sender, payload]]));
    this.settle();
  }

  /** GET /api/data: the item it returns, popped from the outbox unless it is a retry. */
  fetched(): Item | null {
    const item = this.lastFetched ?? (this.phase === 'error' ? undefined : this.outbox[0]);
    if (item === undefined) return null;
    if (item !== this.lastFetched) {
      this.outbox.shift();
      this.lastFetched = item;
      this.settle();
    }
    return item;
  }

  /** The head item a status describes; none in error. */
  head(): Item | null {
    return this.phase === 'error' ? null : (this.outbox[0] ?? null);
  }

  /** A data call's answer, by the order the API checks things. */
  dataStatus(call: DataCall): number {
    if (call.sender.kind === 'twice') return 400;
    if (call.memo.kind === 'twice') return 400;
    if (call.sender.kind === 'missing' || call.sender.kind === 'empty') return 400;
    if (memoOf(call.memo, this).length > 256) return 400;
    if (this.phase === 'initial') return 409;
    const anySender = this.coordinator && this.privacyKnown && this.scenario.privacy === 'smpc';
    if (!anySender && !this.scenario.ids.map(key).includes(senderOf(call.sender, this))) return 403;
    if (call.oversize) return 413;
    if (this.phase === 'error') return 409;
    return 200;
  }
}

// ---------------------------------------------------------------------------------------------
// The real client
// ---------------------------------------------------------------------------------------------

interface Real {
  readonly client: Client;
  readonly http: Transport;
  pending: Pending | null;
  /** Error-level log lines: every 500 leaves one. */
  readonly failures: string[];
  close(): Promise<void>;
}

async function startReal(scenario: Scenario, over: 'memory' | 'socket'): Promise<Real> {
  const failures: string[] = [];
  const real: { pending: Pending | null } = { pending: null };
  const wait = <T,>(started: Started, value: () => T): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      real.pending = {
        ...started,
        end: (fail) => {
          real.pending = null;
          if (fail) reject(new Error(`${started.kind} failed (fuzz)`));
          else resolve(value());
        },
      };
    });
  const client = createClient(
    {
      computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(({ input }) =>
        wait({ kind: 'computeLocal', input }, () => ({
          payload: localPayload(input.setup.id, input.round, input.global),
          privacy: privacyOf(scenario.privacy),
          expectedRounds: ROUNDS,
        })),
      ),
      aggregate: fromPromise<AggregateOutput, AggregateInput>(({ input }) =>
        wait({ kind: 'aggregate', input }, () => ({
          payload: aggregatePayload(input.round, input.contributions),
          final: input.round >= ROUNDS,
        })),
      ),
      writeResults: fromPromise<void, WriteResultsInput>(({ input }) =>
        wait({ kind: 'writeResults', input }, () => undefined),
      ),
    },
    silentLogger,
  );
  const logger = createLogger('error', (line) => failures.push(line));
  const app = createApp(client, { bodyLimit: BODY_LIMIT, logger });
  if (over === 'memory') {
    return Object.assign(real, {
      client,
      http: memoryTransport(app.callback()),
      failures,
      close: async () => client.stop(),
    });
  }
  const server = await listen(app, '127.0.0.1', 0);
  const http = socketTransport(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  return Object.assign(real, {
    client,
    http,
    failures,
    close: async () => {
      client.stop();
      http.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

/** Lets a released computation's result reach the machine (promise callbacks, then its events). */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---------------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------------

/** A body that shows our internals: a stack frame, a source path, a module. */
const INTERNALS = /\n\s+at |node_modules|\/work\/|file:\/\/|\.[cm]?[jt]s:\d+|HttpProblem/;

/** Every answer: never a 5xx; a 4xx is `{ error, detail, field? }` as JSON, and nothing else. */
async function call(real: Real, request: HttpCall, expected: number | null): Promise<HttpAnswer> {
  const answer = await real.http.call(request);
  const text = answer.body.toString('utf8');
  const what = `${request.method} ${request.path}`;
  assert.ok(answer.status < 500, `${what}: ${answer.status} ${text}`);
  if (expected !== null) assert.is(answer.status, expected, `${what}: ${text}`);
  if (answer.status >= 400 && request.method !== 'HEAD') {
    assert.match(answer.headers['content-type'] ?? '', /^application\/json/, what);
    const body = JSON.parse(text) as Record<string, unknown>;
    assert.type(body['error'], 'string', what);
    assert.type(body['detail'], 'string', what);
    assert.ok(Object.keys(body).every((name) => ['error', 'detail', 'field'].includes(name)), text);
    assert.not.match(text, INTERNALS, what);
  }
  assert.equal(real.failures, [], `${what}: nothing is logged as our failure`);
  return answer;
}

const inboxOf = (inbox: Readonly<Record<string, Readonly<Record<string, Uint8Array>>>>): string =>
  JSON.stringify(
    Object.entries(inbox)
      .map(([memo, messages]) => [memo, Object.entries(messages).map(([sender, bytes]) => [sender, hex(bytes)]).sort()])
      .sort(),
  );

const modelInbox = (model: Model): string =>
  JSON.stringify(
    [...model.inbox.entries()]
      .map(([memo, messages]) => [memo, [...messages.entries()].map(([sender, bytes]) => [sender, hex(bytes)]).sort()])
      .sort(),
  );

const itemView = (item: Pick<Item, 'memo' | 'destination' | 'smpc' | 'dp'> & { payload: Uint8Array }) => ({
  memo: item.memo,
  destination: item.destination,
  smpc: item.smpc,
  dp: item.dp,
  payload: hex(item.payload),
});

/** How often each phase was seen: a fuzzer that never gets far into a run tests little. */
const visited = new Map<Phase, number>();

/** Where the API leaves a choice open, the machine's choice must be one allowed; the model adopts it. */
function adoptChoices(model: Model, real: Real): void {
  const { context } = real.client.snapshot();
  const allowed = (choices: readonly Buffer[], chosen: Uint8Array | null | undefined, what: string): Buffer => {
    const match = choices.find((choice) => hex(choice) === hex(chosen ?? null));
    assert.ok(match !== undefined, `${what}: ${hex(chosen ?? null)} is none of ${choices.map(hex).join(', ')}`);
    return match;
  };
  if (model.globalChoices !== null) {
    model.global = allowed(model.globalChoices, context.global, 'the global result');
    model.globalChoices = null;
  }
  const pending = real.pending;
  const packages = model.scenario.privacy === 'smpc' && model.phase === 'aggregating' && model.smpcPick === null;
  if (packages && pending?.kind === 'aggregate') {
    const choices = [...(model.inbox.get(`r${model.round}.local`)?.values() ?? [])];
    const { contributions } = pending.input;
    assert.is(contributions.length, 1, 'with SMPC the aggregate gets one package');
    model.smpcPick = allowed(choices, contributions[0], 'the SMPC package');
  }
}

/** The machine holds exactly what the model says: state, round, inbox, outbox, computations. */
function agree(model: Model, real: Real): void {
  visited.set(model.phase, (visited.get(model.phase) ?? 0) + 1);
  if (model.phase === 'finished' || model.phase === 'error') model.afterTheEnd += 1;
  adoptChoices(model, real);
  const snapshot = real.client.snapshot();
  const { context } = snapshot;
  const expected =
    model.phase === 'broadcast' ? `broadcast.${model.round >= ROUNDS ? 'last' : 'interim'}` : PATH[model.phase];
  assert.is(statePath(snapshot), expected, 'state');
  assert.is(context.round, model.round, 'round');
  assert.is(inboxOf(context.inbox), modelInbox(model), 'every accepted message is kept, once');
  assert.equal([...new Set(context.consumed)].sort(), [...model.consumed].sort(), 'consumed memos');
  assert.equal(context.outbox.map(itemView), model.outbox.map(itemView), 'outbox');
  assert.is(real.pending?.kind ?? null, model.pending(), 'the computation that runs');
  const pending = real.pending;
  if (pending?.kind === 'aggregate') {
    const contributions = pending.input.contributions.map(hex);
    assert.equal(contributions, model.contributions().map(hex), 'the aggregate gets each contribution once');
  }
  if (pending?.kind === 'computeLocal') {
    assert.is(hex(pending.input.global), hex(model.global), 'the local step starts from the last global result');
  }
  if (pending?.kind === 'writeResults') {
    assert.is(hex(pending.input.final), hex(model.global), 'the final result is written');
  }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

type Command = fc.AsyncCommand<Model, Real>;

/** Any call at any time, until a few calls after the end of the run. */
const always = (model: Readonly<Model>): boolean => model.afterTheEnd < CALLS_AFTER_THE_END;

const SETUP_VARIANTS = [
  'valid',
  'legacy master',
  'different',
  'invalid',
  'text/plain',
  'not JSON',
  'lone surrogate',
] as const;
type SetupVariant = (typeof SETUP_VARIANTS)[number];

class SetupCommand implements Command {
  constructor(readonly variant: SetupVariant) {}
  // A different setup before the first one would only be another federation, so it comes later.
  check = (model: Readonly<Model>): boolean =>
    always(model) && (this.variant !== 'different' || model.phase !== 'initial');
  async run(model: Model, real: Real): Promise<void> {
    const body = setupBody(model.scenario);
    const { variant } = this;
    const json = (value: unknown): HttpCall => ({
      method: 'POST',
      path: '/api/setup',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(value),
    });
    let request: HttpCall;
    let expected: number;
    if (variant === 'valid' || variant === 'legacy master') {
      const { coordinator, ...rest } = body;
      request = json(variant === 'valid' ? body : { ...rest, master: coordinator });
      expected = 200;
    } else if (variant === 'different') {
      request = json({ ...body, clients: [...model.scenario.ids, 'late'] });
      expected = 409;
    } else if (variant === 'invalid') {
      request = json({ ...body, clients: [] });
      expected = 400;
    } else if (variant === 'lone surrogate') {
      request = { ...json(body), body: JSON.stringify(body).replace('"clients":[', '"clients":["\\udc00",') };
      expected = 400;
    } else if (variant === 'text/plain') {
      request = { ...json(body), headers: { 'content-type': 'text/plain' } };
      expected = 415;
    } else {
      request = { ...json(body), body: '{"id":' };
      expected = 400;
    }
    const answer = await call(real, request, expected);
    if (expected === 200) {
      assert.equal((JSON.parse(answer.body.toString()) as { setup: SetupInfo }).setup, model.setup());
      if (model.phase === 'initial') model.setUp();
    }
    agree(model, real);
  }
  toString = (): string => `setup(${this.variant})`;
}

class StatusCommand implements Command {
  check = always;
  async run(model: Model, real: Real): Promise<void> {
    const first = await call(real, { method: 'GET', path: '/api/status' }, 200);
    const second = await call(real, { method: 'GET', path: '/api/status' }, 200);
    model.lastFetched = null;
    assert.match(first.headers['content-type'] ?? '', /^application\/json/);
    const status = JSON.parse(first.body.toString()) as Record<string, unknown>;
    assert.equal(status, JSON.parse(second.body.toString()), 'two reads with no call between are equal');
    assert.equal(Object.keys(status).sort(), [...STATUS_KEYS].sort());
    const { available, finished, message, progress, state } = status;
    assert.type(available, 'boolean');
    assert.type(finished, 'boolean');
    assert.ok(typeof message === 'string' && message.length <= MAX_STATUS_MESSAGE, String(message));
    assert.ok(
      progress === null ? model.phase === 'initial' : typeof progress === 'number' && progress >= 0 && progress <= 1,
      String(progress),
    );
    const head = model.head();
    const idle = model.phase === 'initial' || model.phase === 'finished';
    const { destination, smpc, dp, memo } = status;
    assert.equal(
      { available, finished, state, destination, smpc, dp, memo },
      {
        available: head !== null,
        finished: model.phase === 'finished' || model.phase === 'error',
        state: model.phase === 'error' ? 'error' : idle ? null : 'running',
        destination: head?.destination ?? null,
        smpc: head?.smpc ?? null,
        dp: head?.dp ?? null,
        memo: head?.memo ?? null,
      },
    );
    if (model.phase === 'finished') assert.is(progress, 1);
    agree(model, real);
  }
  toString = (): string => 'status';
}

class DataCommand implements Command {
  constructor(readonly method: 'GET' | 'HEAD') {}
  check = always;
  async run(model: Model, real: Real): Promise<void> {
    const answer = await call(real, { method: this.method, path: '/api/data' }, 200);
    assert.match(answer.headers['content-type'] ?? '', /^application\/octet-stream/);
    if (this.method === 'HEAD') {
      const item = model.lastFetched ?? model.head();
      const length = Number(answer.headers['content-length']);
      assert.is(length, item?.payload.byteLength ?? 0, 'HEAD describes the item a GET would return');
    } else {
      const item = model.fetched();
      await settled();
      const expected = item === null ? '' : hex(item.payload);
      assert.is(answer.body.toString('hex'), expected, 'data returns the item the status described');
    }
    agree(model, real);
  }
  toString = (): string => `${this.method} data`;
}

type SenderChoice =
  | { readonly kind: 'member'; readonly index: number }
  | { readonly kind: 'stranger' | 'missing' | 'empty' | 'twice' };

type MemoChoice =
  | { readonly kind: 'round'; readonly offset: number; readonly suffix: 'local' | 'global' | 'final' }
  | { readonly kind: 'done' | 'none' | 'long' | 'twice' }
  | { readonly kind: 'text'; readonly text: string };

interface DataCall {
  readonly sender: SenderChoice;
  readonly memo: MemoChoice;
  readonly body: Uint8Array;
  readonly oversize: boolean;
}

function senderOf(choice: SenderChoice, model: Readonly<Model>): string {
  if (choice.kind === 'member') return key(model.scenario.ids[choice.index % model.scenario.ids.length] ?? 'x');
  return choice.kind === 'stranger' ? 'stranger' : '';
}

function memoOf(choice: MemoChoice, model: Readonly<Model>): string {
  switch (choice.kind) {
    case 'round':
      return `r${Math.max(1, model.round + choice.offset)}.${choice.suffix}`;
    case 'done':
      return 'done';
    case 'long':
      return 'm'.repeat(257);
    case 'text':
      return choice.text;
    default:
      return '';
  }
}

function dataQuery(data: DataCall, model: Readonly<Model>): string {
  const sender = senderOf(data.sender, model);
  const memo = memoOf(data.memo, model);
  const parts: string[] = [];
  const first = encodeURIComponent(key(model.scenario.ids[0] ?? 'a'));
  if (data.sender.kind === 'twice') parts.push(`client=${first}`, 'client=x');
  else if (data.sender.kind !== 'missing') parts.push(`client=${encodeURIComponent(sender)}`);
  if (data.memo.kind === 'twice') parts.push('memo=r1.local', 'memo=r2.local');
  else if (data.memo.kind !== 'none') parts.push(`memo=${encodeURIComponent(memo)}`);
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

/** Delivers one message, as a controller relays it (or a stranger makes it up). */
async function deliver(model: Model, real: Real, data: DataCall): Promise<void> {
  const expected = model.dataStatus(data);
  const payload = Buffer.from(data.oversize ? new Uint8Array(BODY_LIMIT + 1) : data.body);
  await call(real, { method: 'POST', path: `/api/data${dataQuery(data, model)}`, body: payload }, expected);
  // A finished client answers a late delivery with a 200 and ignores it.
  if (expected === 200 && model.phase !== 'finished') {
    model.received(senderOf(data.sender, model), memoOf(data.memo, model), payload);
  }
  agree(model, real);
}

class PostDataCommand implements Command {
  constructor(readonly data: DataCall) {}
  check = always;
  run = (model: Model, real: Real): Promise<void> => deliver(model, real, this.data);
  toString = (): string => {
    const { sender, memo, body, oversize } = this.data;
    const bytes = oversize ? 'oversize' : Buffer.from(body).toString('hex') || 'empty';
    return `post(${JSON.stringify(sender)}, ${JSON.stringify(memo)}, ${bytes})`;
  };
}

class EndComputationCommand implements Command {
  constructor(readonly fail: boolean) {}
  check = always;
  async run(model: Model, real: Real): Promise<void> {
    assert.is(real.pending?.kind ?? null, model.pending(), 'the computation that runs');
    real.pending?.end(this.fail);
    model.ended(this.fail);
    await settled();
    agree(model, real);
  }
  toString = (): string => (this.fail ? 'fail computation' : 'end computation');
}

/** Calls no route takes: the wrong method, or a path that does not exist. */
const JUNK: readonly (readonly [string, string, number])[] = [
  ['DELETE', '/api/status', 405],
  ['PUT', '/api/setup', 405],
  ['PATCH', '/api/data', 405],
  ['POST', '/web', 405],
  ['GET', '/api/nothing', 404],
  ['POST', '/api', 404],
];

class JunkCommand implements Command {
  constructor(readonly index: number) {}
  check = always;
  async run(model: Model, real: Real): Promise<void> {
    const [method, path, status] = JUNK[this.index % JUNK.length] ?? ['GET', '/', 404];
    await call(real, { method, path, body: '{}' }, status);
    agree(model, real);
  }
  toString = (): string => `junk(${(JUNK[this.index % JUNK.length] ?? []).slice(0, 2).join(' ')})`;
}

/**
 * The next step of a correct run, chosen from the model: end the running computation, fetch
 * what is queued (status, then data), or deliver the message the client waits for. Random calls
 * alone rarely get far into a run; this gets every run through its rounds to the end.
 */
class StepCommand implements Command {
  check = always;
  async run(model: Model, real: Real): Promise<void> {
    if (model.pending() !== null) return new EndComputationCommand(false).run(model, real);
    if (model.phase === 'initial') return new SetupCommand('valid').run(model, real);
    if (model.head() !== null) {
      await new StatusCommand().run(model, real);
      return new DataCommand('GET').run(model, real);
    }
    const awaited = this.awaited(model);
    if (awaited === null) return new StatusCommand().run(model, real);
    return deliver(model, real, awaited);
  }

  private awaited(model: Model): DataCall | null {
    const body = Uint8Array.of(model.round, model.inbox.size);
    const from = (sender: string, memo: MemoChoice): DataCall => ({
      sender: { kind: 'member', index: model.scenario.ids.map(key).indexOf(sender) },
      memo,
      body,
      oversize: false,
    });
    if (model.phase === 'collecting' && model.coordinator) {
      const messages = model.inbox.get(`r${model.round}.local`);
      const candidates = model.scenario.privacy === 'dp' ? [model.self, ...model.others] : model.others;
      const missing = candidates.find((sender) => messages?.has(sender) !== true) ?? model.self;
      return from(missing, { kind: 'round', offset: 0, suffix: 'local' });
    }
    if (model.phase === 'collecting') {
      const suffix = model.round >= ROUNDS ? 'final' : 'global';
      return from(key(model.scenario.ids[0] ?? 'a'), { kind: 'round', offset: 0, suffix });
    }
    if (model.phase === 'confirming') {
      const missing = model.others.find((sender) => model.inbox.get('done')?.has(sender) !== true);
      return missing === undefined ? null : from(missing, { kind: 'done' });
    }
    return null;
  }
  toString = (): string => 'step';
}

const WEIRD_MEMOS = [
  ...['', '__proto__', 'constructor', 'toString', '😀'],
  ...['\u202Er1.local', 'r1.local\u0000', 'R1.LOCAL', ' done', 'x'.repeat(256)],
];

const senderArb: fc.Arbitrary<SenderChoice> = fc.oneof(
  { weight: 8, arbitrary: fc.nat(2).map((index) => ({ kind: 'member' as const, index })) },
  { weight: 1, arbitrary: fc.constantFrom('stranger', 'missing', 'empty', 'twice').map((kind) => ({ kind })) },
);

const memoArb: fc.Arbitrary<MemoChoice> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('round' as const),
      offset: fc.constantFrom(0, 0, 0, 1, -1),
      suffix: fc.constantFrom('local' as const, 'global' as const, 'final' as const),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'done' as const }) },
  { weight: 1, arbitrary: fc.constantFrom('none', 'long', 'twice').map((kind) => ({ kind })) },
  { weight: 1, arbitrary: fc.constantFrom(...WEIRD_MEMOS).map((text) => ({ kind: 'text' as const, text })) },
);

const dataArb: fc.Arbitrary<DataCall> = fc.record({
  sender: senderArb,
  memo: memoArb,
  body: fc.uint8Array({ maxLength: 6 }),
  oversize: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

/** Half of the calls follow a correct run; the other half are anything at any time. */
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 10, arbitrary: fc.constant(new StepCommand()) },
  { weight: 2, arbitrary: fc.constant(new StatusCommand()) },
  { weight: 2, arbitrary: fc.constantFrom(new DataCommand('GET'), new DataCommand('GET'), new DataCommand('HEAD')) },
  { weight: 3, arbitrary: dataArb.map((data) => new PostDataCommand(data)) },
  { weight: 1, arbitrary: fc.constantFrom(false, false, true).map((fail) => new EndComputationCommand(fail)) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<SetupVariant>(...SETUP_VARIANTS)
      .map((variant) => new SetupCommand(variant)),
  },
  { weight: 1, arbitrary: fc.nat(JUNK.length - 1).map((index) => new JunkCommand(index)) },
);

// ---------------------------------------------------------------------------------------------
// The runs
// ---------------------------------------------------------------------------------------------

async function fuzz(over: 'memory' | 'socket', numRuns: number, seed: number): Promise<void> {
  const property = fc.asyncProperty(
    scenarioArb,
    fc.commands([commandArb], { maxCommands: MAX_COMMANDS, size: 'max' }),
    async (scenario, commands) => {
      const real = await startReal(scenario, over);
      try {
        await fc.asyncModelRun(() => ({ model: new Model(scenario), real }), commands);
      } finally {
        await real.close();
      }
    },
  );
  const result = await fc.check(property, { seed, numRuns });
  if (result.failed) {
    const cause = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
    throw new Error(
      `fuzz over ${over} failed with seed ${seed} ` +
        `(replay: FUZZ_SEED=${seed}; fast-check path ${result.counterexamplePath ?? '?'})\n` +
        `${cause}\n${fc.defaultReportMessage(result)}`,
    );
  }
}

test(`${MEMORY_RUNS} random call sequences in memory keep every promise of the API`, async () => {
  await fuzz('memory', MEMORY_RUNS, SEED);
});

test(`${SOCKET_RUNS} random call sequences over a socket keep every promise of the API`, async () => {
  await fuzz('socket', SOCKET_RUNS, SEED + 1);
});

test('the runs reach every phase of both roles, the end of a run and the error state included', () => {
  for (const phase of Object.keys(PATH) as Phase[]) {
    assert.ok((visited.get(phase) ?? 0) > 0, `no run reached ${phase}: ${JSON.stringify([...visited])}`);
  }
});

test.run();
