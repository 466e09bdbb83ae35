/**
 * What the /web page shows, as a pure function of the machine's snapshot (like toStatus): the
 * page polls it as JSON and highlights `active` in the machine diagram.
 */
import type { ClientSnapshot } from '../../machines/client.machine.ts';
import { statePath, toStatus } from '../../machines/status.ts';
import type { ClientId, RunState } from '../protocol/types.ts';
import type { Role } from './diagram.ts';

export interface WebView {
  /** The active leaf state's path, e.g. `awaiting-aggregate.collecting`. */
  readonly state: string;
  /** The active states from the top down: the leaf and its parents, as the diagram names them. */
  readonly active: readonly string[];
  /** The leaf state's description from the machine definition. */
  readonly description: string | null;
  readonly run: RunState | null;
  readonly finished: boolean;
  /** Null until setup. */
  readonly role: Role | null;
  readonly id: ClientId | null;
  readonly clients: number | null;
  readonly round: number;
  /** 0..1 as in the status; null until setup. */
  readonly progress: number | null;
  readonly message: string;
  /** Messages kept in the inbox, over every memo. */
  readonly inbox: number;
  /** Items waiting for the controller to fetch them. */
  readonly outbox: number;
  /** The outbox head, as the status describes it. */
  readonly next: { readonly memo: string; readonly destination: ClientId | null } | null;
}

export function toWebView(snapshot: ClientSnapshot): WebView {
  const { setup, round, inbox, outbox } = snapshot.context;
  const status = toStatus(snapshot);
  const state = statePath(snapshot);
  const parts = state.split('.');
  const active = parts.map((_, index) => parts.slice(0, index + 1).join('.'));
  const node = snapshot.machine.getStateNodeById(`${snapshot.machine.id}.${state}`);
  return {
    state,
    active,
    description: node.description ?? null,
    run: status.state,
    finished: status.finished,
    role: setup === null ? null : setup.coordinator ? 'coordinator' : 'participant',
    id: setup?.id ?? null,
    clients: setup?.clients.length ?? null,
    round,
    progress: status.progress,
    message: status.message ?? state,
    inbox: Object.values(inbox).reduce((count, messages) => count + Object.keys(messages).length, 0),
    outbox: snapshot.hasTag('error') ? 0 : outbox.length,
    next: status.memo === null ? null : { memo: status.memo, destination: status.destination },
  };
}
