/**
 * The platform's controller, played for every client at once, over HTTP only: set each client
 * up, poll its status, fetch its data when it has some, and deliver it by the relay rules,
 * doing SMPC and DP on the way as the controllers do.
 *
 * Each client has its own poll loop. A client that just said something, or was just sent
 * something, is polled again at once; an idle one is polled less and less often, up to the
 * query interval. So a round costs a few HTTP calls, not a few poll intervals.
 */
import { STATUS_KEYS, type ClientId, type Status } from '../protocol/types.ts';
import { applyDp } from './dp.ts';
import { parseNumericJson, serializeJson } from '../protocol/payload.ts';
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
  /** The coordinator's last broadcast (the final global result), decoded, when it was JSON. */
  readonly finalBroadcast: unknown;
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

const ROUND_MEMO = /^r(\d+)\./;

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

async function call(
  client: ControlledClient,
  what: string,
  url: string,
  init: RequestInit,
  timeoutMs: number,
  delayMs = 0,
): Promise<Response> {
  if (delayMs > 0) await pause(delayMs);
  // Connection failures are retried briefly (a container may still be starting); HTTP answers
  // are final.
  const attempts = 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
      if (attempt >= attempts) {
        throw new ProtocolError(`${describe(client)} does not answer ${what} at ${url}: ${cause}`);
      }
      await pause(50 * attempt);
    }
  }
}

async function expectOk(client: ControlledClient, what: string, response: Response): Promise<void> {
  if (response.ok) return;
  const text = (await response.text()).slice(0, 200);
  throw new ProtocolError(`${describe(client)} answered ${what} with HTTP ${response.status}: ${text}`);
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

  // Poll loops sleep on a timer that a delivery to the client can cut short.
  const wakers = new Map<string, () => void>();
  const sleep = (client: ControlledClient, ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(wake, ms);
      function wake() {
        clearTimeout(timer);
        wakers.delete(client.id);
        resolve();
      }
      wakers.set(client.id, wake);
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
      const response = await call(
        receiver,
        what,
        `${receiver.api}/data?${query}`,
        { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } },
        requestTimeoutMs,
        delayOf(receiver),
      );
      await expectOk(receiver, what, response);
      await response.arrayBuffer();
    }
    messages += 1;
    bytes += body.byteLength;
    progressed();
    wake(receiver.id);
  };

  // SMPC: contributions wait here, per memo, until every client's is in; then one package.
  const gathering = new Map<string, Map<string, NumericTree>>();

  const relay = async (sender: ControlledClient, status: Status, payload: Uint8Array) => {
    const memo = status.memo;
    const round = memo === null ? null : ROUND_MEMO.exec(memo);
    if (round?.[1] !== undefined) rounds = Math.max(rounds, Number(round[1]));
    const where = `data from ${describe(sender)} (memo ${memo ?? 'none'})`;
    const path = route(sender.id, status, ids, coordinator.id);
    const to = path.to.map(String);

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

    record({ kind: 'relay', from: sender.id, to, memo, bytes: body.byteLength, smpc: false, dp: status.dp !== null });
    if (sender.coordinator && memo !== null && /^r\d+\.final$/.test(memo)) {
      try {
        finalBroadcast = JSON.parse(new TextDecoder().decode(body));
      } catch {
        finalBroadcast = null;
      }
    }
    await Promise.all(
      to.map((id) => {
        const receiver = byId.get(id);
        if (receiver === undefined) throw new ProtocolError(`${where} is addressed to unknown client ${id}`);
        return deliver(sender.id, receiver, memo, body);
      }),
    );
  };

  const poll = async (client: ControlledClient): Promise<Status> => {
    const response = await call(client, 'GET /status', `${client.api}/status`, {}, requestTimeoutMs, delayOf(client));
    await expectOk(client, 'GET /status', response);
    const text = await response.text();
    let status: unknown;
    try {
      status = JSON.parse(text);
    } catch {
      throw new ProtocolError(`${describe(client)} answered GET /status with something that is not JSON: ${text.slice(0, 80)}`);
    }
    if (!isStatus(status)) {
      throw new ProtocolError(`${describe(client)} answered GET /status without the status keys: ${text.slice(0, 120)}`);
    }
    const previous = statuses.get(client.id);
    if (previous === undefined || JSON.stringify(previous) !== JSON.stringify(status)) progressed();
    statuses.set(client.id, status);
    options.onStatus?.(client, status);
    return status;
  };

  const fetchData = async (client: ControlledClient, status: Status): Promise<Uint8Array> => {
    dataFetches += 1;
    const every = faults.dropDataResponseEvery;
    if (every !== undefined && dataFetches % every === 0) {
      // The response is lost on the way back; the client has served it, we never saw it.
      const lost = await call(client, 'GET /data', `${client.api}/data`, {}, requestTimeoutMs, delayOf(client));
      await lost.arrayBuffer();
    }
    const response = await call(client, 'GET /data', `${client.api}/data`, {}, requestTimeoutMs, delayOf(client));
    await expectOk(client, 'GET /data', response);
    const payload = new Uint8Array(await response.arrayBuffer());
    if (payload.byteLength === 0) {
      throw new ProtocolError(
        `${describe(client)} said data was available (memo ${status.memo ?? 'none'}), but GET /data returned nothing`,
      );
    }
    return payload;
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
        const payload = await fetchData(client, status);
        await relay(client, status, payload);
        idle = 0;
        continue;
      }
      if (client.coordinator && status.finished) {
        end(true, null);
        return;
      }
      // Back off while idle: 1, 2, 4, ... ms, up to the query interval.
      idle += 1;
      await sleep(client, Math.min(options.queryIntervalMs, 2 ** Math.min(idle, 20)));
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
        const response = await call(
          client,
          'POST /setup',
          `${client.api}/setup`,
          { method: 'POST', body, headers: { 'content-type': 'application/json' } },
          requestTimeoutMs,
        );
        await expectOk(client, 'POST /setup', response);
        await response.arrayBuffer();
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
