/**
 * POST /api/setup's body, validated into SetupInfo. Each rule names the field it checks, since
 * the person reading a 400 is debugging a controller or a script, not this code.
 */
import type { ClientId, SetupInfo } from '../protocol/types.ts';
import { badRequest } from './errors.ts';

/** Longest id we accept; the platform's ids are short hex strings or small numbers. */
export const MAX_ID_LENGTH = 256;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A lone UTF-16 surrogate: JSON can carry it (`"\ud800"`), a query string cannot. */
const LONE_SURROGATE = /\p{Cs}/u;

function clientId(value: unknown, field: string): ClientId {
  if (typeof value === 'string') {
    if (value.length === 0) throw badRequest(`${field} must not be empty`, field);
    if (value.length > MAX_ID_LENGTH) {
      throw badRequest(`${field} is longer than ${MAX_ID_LENGTH} characters`, field);
    }
    // Such an id cannot be percent-encoded, so `?client=` could never name it: the client's
    // data would be refused for the whole run.
    if (LONE_SURROGATE.test(value)) {
      throw badRequest(`${field} is not valid Unicode (it has a lone surrogate)`, field);
    }
    return value;
  }
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  throw badRequest(`${field} must be a string or an integer`, field);
}

function role(body: Record<string, unknown>): boolean {
  const { coordinator, master } = body;
  if (coordinator !== undefined && typeof coordinator !== 'boolean') {
    throw badRequest('coordinator must be true or false', 'coordinator');
  }
  if (master !== undefined && typeof master !== 'boolean') {
    throw badRequest('master must be true or false', 'master');
  }
  if (coordinator === undefined && master === undefined) {
    throw badRequest('coordinator is required (true or false)', 'coordinator');
  }
  if (coordinator !== undefined && master !== undefined && coordinator !== master) {
    throw badRequest('coordinator and its legacy name master disagree', 'coordinator');
  }
  return (coordinator ?? master) as boolean;
}

const same = (a: ClientId, b: ClientId) => String(a) === String(b);

export function parseSetup(body: unknown): SetupInfo {
  if (!isRecord(body)) throw badRequest('the body must be a JSON object', null);
  if (body.id === undefined) throw badRequest('id is required', 'id');
  const id = clientId(body.id, 'id');
  const coordinator = role(body);

  if (!Array.isArray(body.clients)) throw badRequest('clients must be an array of ids', 'clients');
  if (body.clients.length === 0) throw badRequest('clients must not be empty', 'clients');
  const clients = body.clients.map((client: unknown, index) => clientId(client, `clients[${index}]`));
  const seen = new Set<string>();
  for (const client of clients) {
    if (seen.has(String(client))) {
      throw badRequest(`clients lists ${JSON.stringify(client)} more than once`, 'clients');
    }
    seen.add(String(client));
  }
  if (!clients.some((client) => same(client, id))) {
    throw badRequest(`id ${JSON.stringify(id)} is not in clients`, 'id');
  }
  // A participant alone would wait for a coordinator that does not exist.
  if (!coordinator && clients.length < 2) {
    throw badRequest('clients must name a coordinator besides this participant', 'clients');
  }

  let coordinatorId: ClientId | null = coordinator ? id : null;
  const spellings = (['coordinatorID', 'coordinatorId'] as const).filter(
    (name) => body[name] !== undefined && body[name] !== null,
  );
  const [field, other] = spellings;
  if (field !== undefined) {
    const value = clientId(body[field], field);
    if (other !== undefined && !same(value, clientId(body[other], other))) {
      throw badRequest(`${field} and ${other} disagree`, other);
    }
    if (!clients.some((client) => same(client, value))) {
      throw badRequest(`${field} ${JSON.stringify(value)} is not in clients`, field);
    }
    if (coordinator !== same(value, id)) {
      throw badRequest(
        coordinator
          ? `${field} names another client, but this client is the coordinator`
          : `${field} names this client, but coordinator is false`,
        field,
      );
    }
    coordinatorId = value;
  }
  return { id, coordinator, clients, coordinatorId };
}

export function sameSetup(a: SetupInfo, b: SetupInfo): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
