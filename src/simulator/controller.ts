/**
 * The platform's controller, played for every client at once, over HTTP only: set each client
 * up, poll its status, fetch its data when it has some, and deliver it by the relay rules,
 * doing SMPC and DP on the way as the controllers do.
 *
 * Each client has its own poll loop. A client that just said something, or was just sent
 * something, is polled again at once; an idle one is polled less and less often, up to the
 * query interval. So a round costs a few HTTP calls, not a few poll intervals.
 *
 * A message is fetched once, whatever the number of receivers. A large one that needs no SMPC
 * or DP is streamed: its chunks go on to every receiver as they arrive from the sender.
 */
import type { ClientRequest } from 'node:http';
import { STATUS_KEYS, type ClientId, type Status } from '../protocol/types.ts';
import { applyDp } from './dp.ts';
import { parseNumericJson, serializeJson } from '../protocol/payload.ts';
import { decodeJson, isBinaryMessage } from '../runtime/codec.ts';
import { createHttpClient, readAll, type Answer, type CallOptions, type HttpClient, type Opened } from './http.ts';
import { createRandom } from './random.ts';
import { route } from './relay.ts';
import { secureAggregate } from './smpc.ts';
import type { NumericTree } from '../computation/types.ts';

export interface ControlledClient {
  /** The id this client is given at setup. */
  readonly id: string;
  /** A name for people: the input folder's name, or the URL. */
  readonly label: string;
  /** Base URL of the API: `http://host:port/api`, or the root on the platform's port 9000. */
  readonly api: string;
  readonly coordinator: boolean;
}

export interface RelayRecord {
  /** Milliseconds since the run started. */
  readonly time: number;
  readonly from: string;
  readonly to: readonly string[];
  readonly memo: string | null;
  readonly bytes: number;
  readonly smpc: boolean;
  readonly dp: boolean;
  /** `smpc-aggregate` for the controllers' summed package; otherwise `relay`. */
  readonly kind: 'relay' | 'smpc-contribution' | 'smpc-aggregate';
}

/**
 * Faults the controller can inject, to show that a client survives what networks and relays do.
 * Each is something a real platform may do: retry a delivery, deliver out of order, lose a
 * response, talk to a slow site.
 */
export interface Faults {
  /** Deliver every message twice (a relay retry). */
  readonly duplicate?: boolean;
  /** Hold each delivery for a random 0..N ms, so later messages overtake earlier ones. */
  readonly reorderMs?: number;
  /** Lose the response to every Nth GET /data; the controller then fetches again. */
  readonly dropDataResponseEvery?: number;
  /** Delay every call to these clients (by label or id) by this many ms. */
  readonly slow?: ReadonlyMap<string, number>;
}

export interface ControllerOptions {
  readonly queryIntervalMs: number;
  /** The run ends when nothing changes for this long. */
  readonly timeoutMs: number;
  /** A single HTTP call that takes longer than this fails. */
  readonly requestTimeoutMs?: number;
  /** Seeds the DP noise, so a run can be reproduced. */
  readonly seed: string | null;
  readonly faults?: Faults;
  readonly onStatus?: (client: ControlledClient, status: Status) => void;
  readonly onRelay?: (record: RelayRecord) => void;
}

export interface RunReport {
  readonly ok: boolean;
  /** One line saying why the run failed; null when it succeeded. */
  readonly failure: string | null;
  readonly rounds: number;
  readonly messages: number;
  readonly bytes: number;
  readonly durationMs: number;
  /** Each client's last status, by id. */
  readonly statuses: ReadonlyMap<string, Status>;
  /**
   * The coordinator's last broadcast (the final global result), decoded; null when it could not
   * be decoded, or was too large to be fetched whole (it was streamed to the sites).
   */
  readonly finalBroadcast: unknown;
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

const ROUND_MEMO = /^r(\d+)\./;
const FINAL_MEMO = /^r\d+\.final$/;
/** Bodies at least this large are relayed as they arrive rather than fetched whole first. */
const STREAM_FROM = 1024 * 1024;

function describe(client: ControlledClient): string {
  return client.label === client.id ? `client ${client.id}` : `client ${client.label} (${client.id})`;
}

function isStatus(value: unknown): value is Status {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const record = value as Record<string, unknown>;
  return (
    STATUS_KEYS.every((key) => key in record) &&
    typeof record.available === 'boolean' &&
    typeof record.finished === 'boolean'
  );
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * One HTTP exchange with a client. Connection failures are retried briefly (a container may
 * still be starting); HTTP answers are final.
 */
async function attempt<T>(
  client: ControlledClient,
  what: string,
  url: string,
  exchange: () => Promise<T>,
  delayMs = 0,
): Promise<T> {
  if (delayMs > 0) await pause(delayMs);
  const attempts = 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await exchange();
    } catch (error) {
      if (attempt >= attempts) throw unanswered(client, what, url, error);
      await pause(50 * attempt);
    }
  }
}

function unanswered(client: ControlledClient, what: string, url: string, error: unknown): ProtocolError {
  const cause = error instanceof Error ? error.message : String(error);
  return new ProtocolError(`${describe(client)} does not answer ${what} at ${url}: ${cause}`);
}

function call(http: HttpClient, client: ControlledClient, what: string, url: string, options: CallOptions, delayMs = 0): Promise<Answer> {
  return attempt(client, what, url, () => http.call(url, options), delayMs);
}

/** A GET /data answer's payload; an empty one breaks the protocol, since the status said there was data. */
function dataOf(client: ControlledClient, status: Status, answer: Answer): Uint8Array {
  expectOk(client, 'GET /data', answer);
  if (answer.body.byteLength === 0) {
    throw new ProtocolError(
      `${describe(client)} said data was available (memo ${status.memo ?? 'none'}), but GET /data returned nothing`,
    );
  }
  return answer.body;
}

/** Resolves when `request` takes more data, or is gone (its failure is reported by its answer). */
function drained(request: ClientRequest): Promise<void> {
  return new Promise<void>((resolve) => {
    if (request.destroyed) {
      resolve();
      return;
    }
    const done = () => {
      request.off('drain', done);
      request.off('close', done);
      resolve();
    };
    request.once('drain', done);
    request.once('close', done);
  });
}

function expectOk(client: ControlledClient, what: string, answer: Answer): void {
  if (answer.status >= 200 && answer.status < 300) return;
  const text = answer.body.toString('utf8', 0, Math.min(answer.body.byteLength, 800)).slice(0, 200);
  throw new ProtocolError(`${describe(client)} answered ${what} with HTTP ${answer.status}: ${text}`);
}

export async function runFederation(
  clients: readonly ControlledClient[],
  options: ControllerOptions,
): Promise<RunReport> {
  const started = performance.now();
  const requestTimeoutMs = options.requestTimeoutMs ?? Math.max(10_000, options.timeoutMs);
  const coordinator = clients.find((client) => client.coordinator);
  if (coordinator === undefined) throw new Error('one client must be the coordinator');
  const ids: ClientId[] = clients.map((client) => client.id);
  const byId = new Map(clients.map((client) => [client.id, client]));
  const statuses = new Map<string, Status>();
  const faults = options.faults ?? {};
  const faultRandom = createRandom(`${options.seed ?? Math.random()}/faults`);
  const delayOf = (client: ControlledClient) => faults.slow?.get(client.label) ?? faults.slow?.get(client.id) ?? 0;
  let dataFetches = 0;
  const http = createHttpClient();
  // Faults act on whole messages (duplicates, delays, lost responses): with any, nothing is streamed.
  const injectsFaults = Object.values(faults).some((fault) => fault !== undefined && fault !== false);

  let ended: { ok: boolean; failure: string | null } | null = null;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const end = (ok: boolean, failure: string | null) => {
    if (ended !== null) return;
    ended = { ok, failure };
    for (const waker of wakers.values()) waker();
    finish();
  };

  let messages = 0;
  let bytes = 0;
  let rounds = 0;
  let finalBroadcast: unknown = null;
  let lastProgress = performance.now();
  const progressed = () => {
    lastProgress = performance.now();
  };

  // Poll loops sleep on a timer that a delivery to the client can cut short. Resolves true when
  // it was cut short: the client got something new and is likely to answer soon.
  const wakers = new Map<string, () => void>();
  const sleep = (client: ControlledClient, ms: number) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        wakers.delete(client.id);
        resolve(false);
      }, ms);
      wakers.set(client.id, () => {
        clearTimeout(timer);
        wakers.delete(client.id);
        resolve(true);
      });
    });
  const wake = (id: string) => wakers.get(id)?.();

  const record = (entry: Omit<RelayRecord, 'time'>) => {
    options.onRelay?.({ time: Math.round(performance.now() - started), ...entry });
  };

  const deliver = async (sender: string, receiver: ControlledClient, memo: string | null, body: Uint8Array) => {
    const query = new URLSearchParams({ client: sender });
    if (memo !== null) query.set('memo', memo);
    const what = `POST /data?${query}`;
    if (faults.reorderMs !== undefined) await pause(faultRandom.next() * faults.reorderMs);
    for (let copy = 0; copy < (faults.duplicate === true ? 2 : 1); copy++) {
      const answer = await call(
        http,
        receiver,
        what,
        `${receiver.api}/data?${query}`,
        { method: 'POST', body, timeoutMs: requestTimeoutMs },
        delayOf(receiver),
      );
      expectOk(receiver, what, answer);
    }
    messages += 1;
    bytes += body.byteLength;
    progressed();
    wake(receiver.id);
  };

  // SMPC: contributions wait here, per memo, until every client's is in; then one package.
  const gathering = new Map<string, Map<string, NumericTree>>();
  // Memos sent to the coordinator in the clear; the same memo through SMPC means the sites are
  // configured differently, and the coordinator's one package would not be the sum of all.
  const plainToCoordinator = new Set<string>();
  const mixedPrivacy = (where: string, memo: string) =>
    new ProtocolError(
      `${where} and other sites' data under memo ${memo} reach the coordinator one through SMPC, the other in the clear: every site must configure smpc alike`,
    );

  /** Where a message goes, and the round it belongs to (noted for the report). */
  const routeOf = (sender: ControlledClient, status: Status) => {
    const memo = status.memo;
    const round = memo === null ? null : ROUND_MEMO.exec(memo);
    if (round?.[1] !== undefined) rounds = Math.max(rounds, Number(round[1]));
    const where = `data from ${describe(sender)} (memo ${memo ?? 'none'})`;
    const path = route(sender.id, status, ids, coordinator.id);
    const receivers = path.to.map((id) => {
      const receiver = byId.get(String(id));
      if (receiver === undefined) throw new ProtocolError(`${where} is addressed to unknown client ${id}`);
      return receiver;
    });
    const final = sender.coordinator && memo !== null && FINAL_MEMO.test(memo);
    return { memo, where, path, to: receivers.map((receiver) => receiver.id), receivers, final };
  };

  const relay = async (sender: ControlledClient, status: Status, payload: Uint8Array) => {
    const { memo, where, path, to, receivers, final } = routeOf(sender, status);

    if ((status.dp !== null || status.smpc !== null) && isBinaryMessage(payload)) {
      throw new ProtocolError(`${where} is binary, but SMPC and DP need JSON (serialization "json")`);
    }
    let body = payload;
    if (status.dp !== null) {
      const random = createRandom(
        options.seed === null ? undefined : `${options.seed}/${clients.indexOf(sender)}/${memo ?? ''}`,
      );
      body = serializeJson(applyDp(parseNumericJson(payload, where), status.dp, random));
    }

    if (path.kind === 'smpc') {
      if (status.smpc === null) throw new Error('an SMPC route without SMPC options');
      const key = memo ?? '';
      if (plainToCoordinator.has(key)) throw mixedPrivacy(where, key);
      const pieces = gathering.get(key) ?? new Map<string, NumericTree>();
      gathering.set(key, pieces);
      pieces.set(sender.id, parseNumericJson(body, where));
      record({ kind: 'smpc-contribution', from: sender.id, to, memo, bytes: body.byteLength, smpc: true, dp: status.dp !== null });
      progressed();
      if (pieces.size < clients.length) return;
      gathering.delete(key);
      const sum = serializeJson(secureAggregate([...pieces.values()], status.smpc, clients.length));
      record({ kind: 'smpc-aggregate', from: 'smpc', to: [coordinator.id], memo, bytes: sum.byteLength, smpc: true, dp: false });
      await deliver(coordinator.id, coordinator, memo, sum);
      return;
    }

    if (receivers.includes(coordinator)) {
      if (gathering.has(memo ?? '')) throw mixedPrivacy(where, memo ?? '');
      plainToCoordinator.add(memo ?? '');
    }
    record({ kind: 'relay', from: sender.id, to, memo, bytes: body.byteLength, smpc: false, dp: status.dp !== null });
    if (final) keepFinal(body);
    await Promise.all(receivers.map((receiver) => deliver(sender.id, receiver, memo, body)));
  };

  const keepFinal = (body: Uint8Array) => {
    try {
      finalBroadcast = decodeJson(body, 'the final result');
    } catch {
      finalBroadcast = null;
    }
  };

  /**
   * A large message that needs no SMPC or DP goes on as it arrives: one GET from the sender, its
   * chunks written to a POST per receiver, so the transfers overlap and the controller never
   * holds the whole body (a broadcast of 64 MB to 100 clients is not 64 MB x 100 in flight,
   * only what the slowest receiver has not taken yet).
   */
  const relayStream = async (sender: ControlledClient, status: Status, source: Opened, length: number) => {
    const { memo, receivers, to, final } = routeOf(sender, status);
    record({ kind: 'relay', from: sender.id, to, memo, bytes: length, smpc: false, dp: false });
    const query = new URLSearchParams({ client: sender.id });
    if (memo !== null) query.set('memo', memo);
    const what = `POST /data?${query}`;
    const uploads = receivers.map((receiver) => {
      const url = `${receiver.api}/data?${query}`;
      return { receiver, url, ...http.upload(url, length, requestTimeoutMs) };
    });
    try {
      for await (const chunk of source.body as AsyncIterable<Buffer>) {
        // A receiver that failed is skipped; its answer says why once the body is through.
        const open = uploads.filter(({ request }) => !request.destroyed);
        const waits = open.filter(({ request }) => !request.write(chunk)).map(({ request }) => drained(request));
        if (waits.length > 0) await Promise.all(waits);
      }
    } catch (error) {
      for (const { request } of uploads) request.destroy();
      await Promise.allSettled(uploads.map(({ answer }) => answer));
      throw unanswered(sender, 'GET /data', `${sender.api}/data`, error);
    }
    for (const { request } of uploads) request.end();
    const answers = await Promise.allSettled(uploads.map(({ answer }) => answer));
    const lost: ControlledClient[] = [];
    answers.forEach((outcome, index) => {
      const upload = uploads[index];
      if (upload === undefined) return;
      // A broken connection is retried below; an answer is final.
      if (outcome.status === 'rejected') lost.push(upload.receiver);
      else expectOk(upload.receiver, what, outcome.value);
    });
    // A final result this large (a model) is not decoded here: the sites have it in their outputs.
    if (final) finalBroadcast = null;
    const delivered = uploads.length - lost.length;
    messages += delivered;
    bytes += length * delivered;
    progressed();
    for (const { receiver } of uploads) if (!lost.includes(receiver)) wake(receiver.id);
    if (lost.length > 0) {
      // A stream cannot be replayed, but the sender can: a second GET /data with no status read
      // in between gets the same item again. Those receivers get it whole, with retries.
      const url = `${sender.api}/data`;
      const again = dataOf(sender, status, await call(http, sender, 'GET /data', url, { timeoutMs: requestTimeoutMs }));
      if (again.byteLength !== length) {
        throw new ProtocolError(`${describe(sender)} gave ${again.byteLength} bytes when fetched again, not the ${length} it streamed`);
      }
      await Promise.all(lost.map((receiver) => deliver(sender.id, receiver, memo, again)));
    }
  };

  /** Fetches the head of a client's outbox and relays it, streamed when it is large and plain. */
  const forward = async (client: ControlledClient, status: Status) => {
    const plain = status.smpc === null && status.dp === null && !injectsFaults;
    if (!plain) {
      await relay(client, status, await fetchData(client, status));
      return;
    }
    dataFetches += 1;
    const url = `${client.api}/data`;
    const source = await attempt(client, 'GET /data', url, () => http.open(url, requestTimeoutMs));
    if (source.status >= 200 && source.status < 300 && source.length !== null && source.length >= STREAM_FROM) {
      await relayStream(client, status, source, source.length);
      return;
    }
    const answer = await readAll(source.body).then(
      (body) => ({ status: source.status, body }),
      (error: unknown) => {
        throw unanswered(client, 'GET /data', url, error);
      },
    );
    await relay(client, status, dataOf(client, status, answer));
  };

  // Each client's last status as it came, so an unchanged one is neither parsed nor compared again.
  const statusTexts = new Map<string, string>();
  const poll = async (client: ControlledClient): Promise<Status> => {
    const answer = await call(http, client, 'GET /status', `${client.api}/status`, { timeoutMs: requestTimeoutMs }, delayOf(client));
    expectOk(client, 'GET /status', answer);
    const text = answer.body.toString('utf8');
    const previous = statuses.get(client.id);
    if (previous !== undefined && statusTexts.get(client.id) === text) {
      options.onStatus?.(client, previous);
      return previous;
    }
    let status: unknown;
    try {
      status = JSON.parse(text);
    } catch {
      throw new ProtocolError(`${describe(client)} answered GET /status with something that is not JSON: ${text.slice(0, 80)}`);
    }
    if (!isStatus(status)) {
      throw new ProtocolError(`${describe(client)} answered GET /status without the status keys: ${text.slice(0, 120)}`);
    }
    if (previous === undefined || JSON.stringify(previous) !== JSON.stringify(status)) progressed();
    statuses.set(client.id, status);
    statusTexts.set(client.id, text);
    options.onStatus?.(client, status);
    return status;
  };

  const fetchData = async (client: ControlledClient, status: Status): Promise<Uint8Array> => {
    dataFetches += 1;
    const every = faults.dropDataResponseEvery;
    if (every !== undefined && dataFetches % every === 0) {
      // The response is lost on the way back; the client has served it, we never saw it.
      await call(http, client, 'GET /data', `${client.api}/data`, { timeoutMs: requestTimeoutMs }, delayOf(client));
    }
    const answer = await call(http, client, 'GET /data', `${client.api}/data`, { timeoutMs: requestTimeoutMs }, delayOf(client));
    return dataOf(client, status, answer);
  };

  const loop = async (client: ControlledClient) => {
    let idle = 0;
    while (ended === null) {
      const status = await poll(client);
      if (ended !== null) return;
      if (status.state === 'error') {
        end(false, `${describe(client)} failed: ${status.message ?? 'no message'}`);
        return;
      }
      if (status.available) {
        await forward(client, status);
        idle = 0;
        continue;
      }
      if (client.coordinator && status.finished) {
        end(true, null);
        return;
      }
      // Back off while idle: 2, 4, 8, ... ms, up to the query interval; from the start again
      // after a delivery, which gives the client something to work on.
      idle += 1;
      if (await sleep(client, Math.min(options.queryIntervalMs, 2 ** Math.min(idle, 20)))) idle = 0;
    }
  };

  const watchdog = setInterval(() => {
    if (performance.now() - lastProgress < options.timeoutMs) return;
    const waiting = clients.map((client) => {
      const status = statuses.get(client.id);
      const what = status === undefined ? 'no status yet' : `${status.state ?? 'not running'}: ${status.message ?? ''}`;
      return `${client.label}: ${what}`;
    });
    end(false, `no progress for ${options.timeoutMs / 1000} s; ${waiting.join('; ')}`);
  }, Math.min(1000, Math.max(10, options.timeoutMs / 10)));

  try {
    await Promise.all(
      clients.map(async (client) => {
        const body = JSON.stringify({
          id: client.id,
          coordinator: client.coordinator,
          clients: ids,
          coordinatorID: coordinator.id,
        });
        const answer = await call(http, client, 'POST /setup', `${client.api}/setup`, {
          method: 'POST',
          body: Buffer.from(body),
          contentType: 'application/json',
          timeoutMs: requestTimeoutMs,
        });
        expectOk(client, 'POST /setup', answer);
      }),
    );
    progressed();
    const loops = clients.map((client) =>
      loop(client).catch((error: unknown) => end(false, error instanceof Error ? error.message : String(error))),
    );
    await done;
    await Promise.allSettled(loops);
    // Every client's last word, for the summary and the exit code.
    await Promise.all(
      clients.map((client) => poll(client).catch(() => undefined)),
    );
  } catch (error) {
    end(false, error instanceof Error ? error.message : String(error));
  } finally {
    clearInterval(watchdog);
    http.close();
  }

  const outcome = ended ?? { ok: false, failure: 'the run ended without an outcome' };
  const unfinished = clients.filter((client) => statuses.get(client.id)?.finished !== true);
  const ok = outcome.ok && unfinished.length === 0;
  return {
    ok,
    failure: ok
      ? null
      : (outcome.failure ?? `not every client finished: ${unfinished.map((client) => client.label).join(', ')}`),
    rounds,
    messages,
    bytes,
    durationMs: Math.round(performance.now() - started),
    statuses,
    finalBroadcast,
  };
}
