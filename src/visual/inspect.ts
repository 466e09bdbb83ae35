/**
 * Watching the machine run, two ways:
 *
 * - `--inspect`: every client's actor reports to the Stately inspector through a local relay
 *   (`@statelyai/inspect`'s WebSocket inspector and its relay server). The relay's page embeds
 *   the inspector from stately.ai, so the browser that opens it needs to reach stately.ai.
 * - `--trace FILE`: the same inspection events as JSON lines, which needs nothing at all.
 *
 * Payloads (contributions, results) are bytes of any size: both show their length, not their
 * content. `@statelyai/inspect` is a dev dependency, loaded only when `--inspect` is asked for.
 */
import { createWriteStream } from 'node:fs';
import { createServer, connect } from 'node:net';
import { parseArgs } from 'node:util';
import type { StatelyInspectionEvent } from '@statelyai/inspect';
import type { InspectionEvent } from 'xstate';

/** What `createActor(..., { inspect })` takes. */
export type Inspect = (event: InspectionEvent) => void;

/** The relay's default port, as `@statelyai/inspect` has it. */
export const DEFAULT_INSPECT_PORT = 8080;

/** A mistake in how watching was asked for (an option, a port, a missing dev dependency). */
export class WatchUsageError extends Error {
  override readonly name = 'WatchUsageError';
}

// ---------------------------------------------------------------------------------------------
// Inspection events as plain data
// ---------------------------------------------------------------------------------------------

/**
 * A copy fit for JSON: byte arrays become `{ bytes: N }`, errors their name and message, an
 * actor its id, other class instances (a machine, a state node) their class name, and functions
 * are left out. Only plain data is copied, so a reference into the machine cannot blow up.
 */
export function plain(value: unknown, depth = 0): unknown {
  if (value instanceof Uint8Array) return { bytes: value.byteLength };
  if (value instanceof Error) return { error: value.name, message: value.message };
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (typeof value !== 'object' || value === null) return value;
  if (depth > 12) return '…';
  if (Array.isArray(value)) return value.map((item) => plain(item, depth + 1) ?? null);
  if (value instanceof Map) return plain(Object.fromEntries(value), depth);
  if ('sessionId' in value && typeof value.sessionId === 'string') return { actor: actorName(value) ?? value.sessionId };
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    const name = typeof value.constructor === 'function' ? value.constructor.name : 'object';
    return `[${name}]`;
  }
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const converted = plain(item, depth + 1);
    if (converted !== undefined) copy[key] = converted;
  }
  return copy;
}

const actorName = (actor: unknown): string | null =>
  typeof actor === 'object' && actor !== null && 'id' in actor && typeof actor.id === 'string' ? actor.id : null;

/** The parts of a snapshot that tell what happened; `machine`, `children` and `_nodes` do not. */
function snapshotRecord(snapshot: unknown): Record<string, unknown> {
  if (typeof snapshot !== 'object' || snapshot === null) return {};
  const record: Record<string, unknown> = {};
  for (const key of ['status', 'value', 'context', 'output', 'error', 'input'] as const) {
    if (key in snapshot) {
      const value = plain((snapshot as Record<string, unknown>)[key]);
      if (value !== undefined) record[key] = value;
    }
  }
  return record;
}

export interface TraceRecord {
  readonly time: string;
  /** The client, when several write to one place. */
  readonly client?: string;
  readonly type: InspectionEvent['type'];
  /** The actor's id (`client`, or an invoked actor's id such as `computeLocal`) and session. */
  readonly actor: string | null;
  readonly session: string;
  readonly [field: string]: unknown;
}

/** One inspection event as one JSON-able record. */
export function traceRecord(event: InspectionEvent, client: string | null, time = new Date()): TraceRecord {
  const base = {
    time: time.toISOString(),
    ...(client === null ? {} : { client }),
    type: event.type,
    actor: actorName(event.actorRef),
    session: event.actorRef.sessionId,
  };
  switch (event.type) {
    case '@xstate.event':
      return {
        ...base,
        source: event.sourceRef === undefined ? null : (actorName(event.sourceRef) ?? event.sourceRef.sessionId),
        event: plain(event.event),
      };
    case '@xstate.snapshot':
    case '@xstate.transition':
      return { ...base, event: plain(event.event), snapshot: snapshotRecord(event.snapshot) };
    case '@xstate.microstep':
      return {
        ...base,
        event: plain(event.event),
        transitions: event._transitions.map((transition) => ({
          source: transition.source.id,
          targets: (transition.target ?? []).map((target) => target.id),
        })),
        value: snapshotRecord(event.snapshot).value ?? null,
      };
    case '@xstate.action':
      return { ...base, action: { type: event.action.type, params: plain(event.action.params) ?? null } };
    case '@xstate.actor':
      return base;
  }
}

export function traceLine(event: InspectionEvent, client: string | null): string {
  return `${JSON.stringify(traceRecord(event, client))}\n`;
}

// ---------------------------------------------------------------------------------------------
// Sinks
// ---------------------------------------------------------------------------------------------

export interface InspectionSink {
  readonly inspect: Inspect;
  close(): Promise<void>;
}

/** Writes every inspection event to FILE as a JSON line (the file is replaced). */
export function traceToFile(file: string, client: string | null = null): InspectionSink {
  const stream = createWriteStream(file, { flags: 'w' });
  let failure: Error | null = null;
  stream.on('error', (error) => {
    failure = error;
  });
  return {
    inspect: (event) => {
      if (failure === null) stream.write(traceLine(event, client));
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        stream.end(() => (failure === null ? resolve() : reject(failure)));
      }),
  };
}

/** Several sinks as one; null when there is none, so `inspect` can stay unset. */
export function combine(sinks: readonly InspectionSink[]): InspectionSink | null {
  if (sinks.length === 0) return null;
  return {
    inspect: (event) => {
      for (const sink of sinks) sink.inspect(event);
    },
    close: async () => {
      await Promise.all(sinks.map((sink) => sink.close()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The Stately inspector relay
// ---------------------------------------------------------------------------------------------

const DEV_DEPENDENCY =
  "--inspect needs the dev dependency @statelyai/inspect (run from the source tree after 'npm ci'; a production build leaves it out)";

async function importOrExplain<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : null;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new WatchUsageError(DEV_DEPENDENCY);
    throw error;
  }
}

/** Whether nothing listens on this port yet (the relay binds every interface, so we check those). */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, () => probe.close(() => resolve(true)));
  });
}

async function waitUntilListening(port: number, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`the inspector relay did not start on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface InspectorRelay {
  /** The page to open in a browser: it embeds the Stately inspector and shows every actor. */
  readonly page: string;
  /** Where actors send their events. */
  readonly socket: string;
  close(): void;
}

/** Starts the relay between this machine's actors and the inspector page in a browser. */
export async function startInspectorRelay(port: number): Promise<InspectorRelay> {
  if (!(await portIsFree(port))) {
    throw new WatchUsageError(`the inspector relay's port ${port} is in use; choose another with INSPECT_PORT`);
  }
  const { createInspectorServer } = await importOrExplain(() => import('@statelyai/inspect/server'));
  const server = createInspectorServer({ port, autoOpen: false });
  await waitUntilListening(port);
  return { page: `http://localhost:${port}`, socket: `ws://localhost:${port}`, close: () => server.stop() };
}

/**
 * Actors of different processes all start at session `x:0`, and the inspector would take them
 * for one: each client's ids are put in its own namespace, `<scope>/x:0`.
 */
function scoped(event: StatelyInspectionEvent, scope: string): StatelyInspectionEvent {
  // The adapter serializes events it held back a second time: scope an id once only.
  const id = <T extends string | undefined>(value: T): T =>
    (value === undefined || value.startsWith(`${scope}/`) ? value : `${scope}/${value}`) as T;
  switch (event.type) {
    case '@xstate.actor':
      return { ...event, sessionId: id(event.sessionId), rootId: id(event.rootId), parentId: id(event.parentId) };
    case '@xstate.event':
      return { ...event, sessionId: id(event.sessionId), rootId: id(event.rootId), sourceId: id(event.sourceId) };
    case '@xstate.snapshot':
      return { ...event, sessionId: id(event.sessionId), rootId: id(event.rootId) };
  }
}

/** An inspector that sends to a relay at `socket` (`ws://host:port`), with payloads as sizes. */
export async function inspectorClient(socket: string, scope: string): Promise<InspectionSink> {
  const { createWebSocketInspector } = await importOrExplain(() => import('@statelyai/inspect'));
  const inspector = createWebSocketInspector({
    url: socket,
    sanitizeContext: (context) => plain(context) as typeof context,
    sanitizeEvent: (event) => plain(event) as typeof event,
    serialize: (event) => scoped(event, scope),
  });
  return {
    inspect: (event) => inspector.inspect.next?.(event),
    close: async () => {
      // Events are handed on a tick later; give the last ones that tick before closing.
      await new Promise((resolve) => setTimeout(resolve, 20));
      inspector.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// `npm start -- --inspect --trace FILE`
// ---------------------------------------------------------------------------------------------

export interface WatchOptions {
  /** Start a relay and send to it (`--inspect`). */
  readonly inspect: boolean;
  /** Send to a relay that already runs (`INSPECT_URL`, set by the simulator for its clients). */
  readonly inspectUrl: string | null;
  readonly inspectPort: number;
  /** Write the inspection events here (`--trace FILE`). */
  readonly trace: string | null;
  /** The client's name in the inspector and the trace (`INSPECT_NAME`; the simulator sets it). */
  readonly name: string | null;
}

/** `--inspect` and `--trace FILE` from the command line; `INSPECT_URL`, `INSPECT_PORT` and `INSPECT_NAME` from the environment. */
export function parseWatchOptions(argv: readonly string[], env: NodeJS.ProcessEnv): WatchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: { inspect: { type: 'boolean', default: false }, trace: { type: 'string' } },
    }));
  } catch (error) {
    const message = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
    throw new WatchUsageError(`${message} (options: --inspect, --trace FILE)`);
  }
  const portText = env['INSPECT_PORT'];
  const port = portText === undefined || portText === '' ? DEFAULT_INSPECT_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new WatchUsageError(`INSPECT_PORT must be a port number, not '${portText ?? ''}'`);
  }
  const url = env['INSPECT_URL'];
  if (url !== undefined && url !== '' && !/^wss?:\/\/[^\s/]+/.test(url)) {
    throw new WatchUsageError(`INSPECT_URL must be a ws:// address, not '${url}'`);
  }
  return {
    inspect: values.inspect,
    inspectUrl: url === undefined || url === '' ? null : url,
    inspectPort: port,
    trace: values.trace ?? null,
    name: env['INSPECT_NAME'] === undefined || env['INSPECT_NAME'] === '' ? null : env['INSPECT_NAME'],
  };
}

export interface Watching {
  /** What `startClient` takes to be watched: the inspection sink and the actor's name. */
  readonly client: { readonly inspect?: Inspect; readonly name?: string };
  /** The inspector page to open, when this process started the relay. */
  readonly page: string | null;
  close(): Promise<void>;
}

/** Starts what the options ask for: a relay, a connection to one, a trace file. */
export async function startWatching(options: WatchOptions): Promise<Watching> {
  const scope = options.name ?? `pid-${process.pid}`;
  const sinks: InspectionSink[] = [];
  let relay: InspectorRelay | null = null;
  if (options.inspectUrl !== null) sinks.push(await inspectorClient(options.inspectUrl, scope));
  else if (options.inspect) {
    relay = await startInspectorRelay(options.inspectPort);
    sinks.push(await inspectorClient(relay.socket, scope));
  }
  if (options.trace !== null) sinks.push(traceToFile(options.trace));
  const sink = combine(sinks);
  return {
    client: {
      ...(sink === null ? {} : { inspect: sink.inspect }),
      ...(options.name === null ? {} : { name: options.name }),
    },
    page: relay?.page ?? null,
    close: async () => {
      await sink?.close();
      relay?.close();
    },
  };
}
