/**
 * GET /api/status and GET /web as pure functions of the client machine's snapshot: no handler
 * keeps a status of its own, so what the controller sees cannot drift from what the machine is.
 */
import { MAX_STATUS_MESSAGE, type RunState, type Status } from '../src/protocol/types.ts';
import type { ClientSnapshot, StateMeta } from './client.machine.ts';

/** The innermost active state's meta: a child's message is more precise than its parent's. */
function activeMeta(snapshot: ClientSnapshot): StateMeta | null {
  const metas = Object.entries(snapshot.getMeta()) as [string, StateMeta | undefined][];
  let deepest: { depth: number; meta: StateMeta } | null = null;
  for (const [path, meta] of metas) {
    if (meta === undefined) continue;
    const depth = path.split('.').length;
    if (deepest === null || depth > deepest.depth) deepest = { depth, meta };
  }
  return deepest?.meta ?? null;
}

/** The top-level state's name (`local-compute`, `awaiting-aggregate`, ...). */
export function stateName(snapshot: ClientSnapshot): string {
  const value = snapshot.value;
  return typeof value === 'string' ? value : (Object.keys(value)[0] ?? 'unknown');
}

/** The full path of the active leaf state, e.g. `awaiting-aggregate.collecting`. */
export function statePath(snapshot: ClientSnapshot): string {
  const parts: string[] = [];
  let value: unknown = snapshot.value;
  while (typeof value === 'object' && value !== null) {
    const [key, child] = Object.entries(value)[0] ?? [];
    if (key === undefined) break;
    parts.push(key);
    value = child;
  }
  if (typeof value === 'string') parts.push(value);
  return parts.join('.');
}

export function shorten(message: string, max = MAX_STATUS_MESSAGE): string {
  const line = message.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

function runState(snapshot: ClientSnapshot): RunState | null {
  if (snapshot.hasTag('error')) return 'error';
  if (snapshot.hasTag('action_required')) return 'action_required';
  if (snapshot.hasTag('running')) return 'running';
  return null;
}

/** The highest phase of a state that still runs (`confirming`); only a finished client is at 1. */
const LAST_RUNNING_PHASE = 0.95;

function progress(snapshot: ClientSnapshot, meta: StateMeta | null): number | null {
  const { setup, round, expectedRounds } = snapshot.context;
  if (setup === null) return null;
  if (snapshot.status === 'done') return 1;
  const rounds = expectedRounds ?? round;
  // The estimate may be too low; past it, progress holds just below 1 rather than going back.
  const done = Math.min(round - 1 + (meta?.phase ?? 0), rounds - 1 + LAST_RUNNING_PHASE);
  return Math.min(1, Math.max(0, done / rounds));
}

function message(snapshot: ClientSnapshot, meta: StateMeta | null): string {
  const { failure, setup, round } = snapshot.context;
  if (snapshot.hasTag('error') && failure !== null) return shorten(failure.message);
  const text = meta?.message ?? stateName(snapshot);
  return shorten(setup === null || snapshot.status === 'done' ? text : `${text} (round ${round})`);
}

export function toStatus(snapshot: ClientSnapshot): Status {
  const meta = activeMeta(snapshot);
  const head = snapshot.hasTag('error') ? undefined : snapshot.context.outbox[0];
  return {
    available: head !== undefined,
    finished: snapshot.status === 'done',
    message: message(snapshot, meta),
    progress: progress(snapshot, meta),
    state: runState(snapshot),
    destination: head?.destination ?? null,
    smpc: head?.smpc ?? null,
    dp: head?.dp ?? null,
    memo: head?.memo ?? null,
  };
}

/** GET /web: the spec's plain status string, with role and round once known. */
export function toWebStatus(snapshot: ClientSnapshot): string {
  const { setup, round } = snapshot.context;
  const state = `State: ${stateName(snapshot)}`;
  if (setup === null) return state;
  const role = setup.coordinator ? 'coordinator' : 'participant';
  return `${state} (${role} ${String(setup.id)}, round ${round})`;
}
