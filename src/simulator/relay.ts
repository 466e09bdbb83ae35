/**
 * The controller's routing rules as a pure function: given who sent the head of its outbox and the
 * status that described it, where does the data go?
 *
 * - `smpc` set: every contributor's data is gathered, securely summed and delivered as ONE package
 *   to the coordinator (also when the coordinator itself contributes). SMPC only aggregates
 *   towards the coordinator, so an smpc status naming any other destination is an error rather
 *   than a silent, non-secure point-to-point send.
 * - a destination: point to point, any client to any client, the coordinator to itself included.
 * - no destination: the coordinator broadcasts to every OTHER client; a participant sends to the
 *   coordinator.
 *
 * Ids are compared by String() (the platform sends numbers where the schema says strings), and
 * the routes name clients as they appear in `clients`, with their original type. `dp` never
 * changes the route: it only says the payload must be noised before it is relayed.
 */
import type { ClientId, DpOptions, SmpcOptions, Status } from '../protocol/types.ts';

interface RouteBase {
  /** Set when the payload must be noised (clipped, then noise added) before it is relayed. */
  readonly dp: DpOptions | null;
}

export type Route =
  | (RouteBase & { readonly kind: 'broadcast'; readonly to: readonly ClientId[] })
  | (RouteBase & { readonly kind: 'to-coordinator'; readonly to: readonly [ClientId] })
  | (RouteBase & { readonly kind: 'point'; readonly to: readonly [ClientId] })
  | (RouteBase & { readonly kind: 'smpc'; readonly to: readonly [ClientId]; readonly smpc: SmpcOptions });

export type RouteKind = Route['kind'];

function sameId(a: ClientId, b: ClientId): boolean {
  return String(a) === String(b);
}

function findClient(clients: readonly ClientId[], id: ClientId, role: string): ClientId {
  const found = clients.find((client) => sameId(client, id));
  if (found === undefined) {
    throw new Error(`The ${role} ${JSON.stringify(id)} is not among the clients (${clients.map((c) => JSON.stringify(c)).join(', ')})`);
  }
  return found;
}

export function route(
  sender: ClientId,
  status: Pick<Status, 'destination' | 'smpc' | 'dp'>,
  clients: readonly ClientId[],
  coordinator: ClientId,
): Route {
  const from = findClient(clients, sender, 'sender');
  const head = findClient(clients, coordinator, 'coordinator');
  const destination = status.destination === null ? null : findClient(clients, status.destination, 'destination');
  const dp = status.dp;

  if (status.smpc !== null) {
    if (destination !== null && !sameId(destination, head)) {
      throw new Error(
        `SMPC data can only go to the coordinator ${JSON.stringify(head)}, but client ${JSON.stringify(from)} ` +
          `set destination ${JSON.stringify(destination)}`,
      );
    }
    return { kind: 'smpc', to: [head], smpc: status.smpc, dp };
  }
  if (destination !== null) return { kind: 'point', to: [destination], dp };
  if (sameId(from, head)) return { kind: 'broadcast', to: clients.filter((client) => !sameId(client, from)), dp };
  return { kind: 'to-coordinator', to: [head], dp };
}
