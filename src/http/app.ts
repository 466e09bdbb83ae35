/**
 * The FeatureCloud API as a thin Koa adapter over a client: each handler validates the call,
 * turns it into one machine event, and answers from the machine's snapshot.
 *
 * Routes are built for a prefix, because the platform's images serve the same API at `/api/...`
 * (port 5000, as the spec says) and at the root (port 9000), and the status string at `/web`
 * and at the root of port 9001.
 */
import Router from '@koa/router';
import Koa from 'koa';
import bodyParser from 'koa-bodyparser';
import { stateName, toStatus, toWebStatus } from '../../machines/status.ts';
import type { ClientSnapshot, OutboxItem } from '../../machines/client.machine.ts';
import type { Client } from '../client.ts';
import type { Logger } from '../log.ts';
import { readBody } from './body.ts';
import { badRequest, conflict, forbidden, HttpProblem } from './errors.ts';
import { parseSetup, sameSetup } from './setup-body.ts';
import { WEB_PAGE_CSP, WEB_STATE_FILE, webPage } from './web-page.ts';
import { toWebView } from '../visual/web-view.ts';

export interface AppOptions {
  /** Largest accepted POST /api/data body, in bytes. */
  readonly bodyLimit: number;
  readonly logger: Logger;
}

/** Where each part is served: the spec's layout, or the platform's port-per-part layout. */
export interface Layout {
  /** Prefix of the API routes: `/api` or `` (root). Null: no API on this app. */
  readonly api: string | null;
  /** Path of the status page: `/web` or `/`. Null: no status page on this app. */
  readonly web: string | null;
}

export const SPEC_LAYOUT: Layout = { api: '/api', web: '/web' };

/** Memos are free text on the platform; we bound their size, not their alphabet. */
const MAX_MEMO_LENGTH = 256;

type Context = Koa.ParameterizedContext;

/** A query parameter that must appear at most once. */
function single(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw badRequest(`query parameter '${name}' is given more than once`, name);
  return value;
}

/**
 * A request no route answered: the router leaves 404, 405 (with Allow) or, for a method it does
 * not know at all, 501 with an empty body. All three are the client's mistake and get a JSON body;
 * an unknown method on a known path is a 405 like any other wrong method.
 */
function unanswered(ctx: Context): HttpProblem | null {
  // Koa 3's `response.get` returns undefined for an unset header, whatever its types say.
  const header = ctx.response.headers['allow'];
  const allow = typeof header === 'string' ? header : '';
  const wrongMethod = ctx.status === 405 || (ctx.status === 501 && allow !== '');
  if (wrongMethod) {
    return new HttpProblem(
      'method_not_allowed',
      `${ctx.method} is not allowed on ${ctx.path}; allowed: ${allow}`,
    );
  }
  if (ctx.status === 404 || ctx.status === 501) {
    ctx.remove('Allow');
    return new HttpProblem('not_found', `no route for ${ctx.method} ${ctx.path}`);
  }
  return null;
}

function problems(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.body === undefined || ctx.body === null) {
        const problem = unanswered(ctx);
        if (problem !== null) throw problem;
      }
    } catch (error) {
      // Headers the router set (Allow on a 405) are kept: nothing here clears them.
      if (error instanceof HttpProblem) {
        ctx.status = error.status;
        ctx.body = error.toJSON();
        logger.debug('rejected', { method: ctx.method, path: ctx.path, status: error.status, detail: error.detail });
      } else if (isHttpError(error) && error.status < 500) {
        ctx.status = error.status;
        ctx.body = { error: 'bad_request', detail: error.expose ? error.message : 'the request is malformed' };
      } else {
        ctx.status = 500;
        ctx.body = { error: 'internal', detail: 'the client failed to answer; see its log' };
        ctx.app.emit('error', error, ctx);
      }
    }
  };
}

function isHttpError(error: unknown): error is { status: number; expose: boolean; message: string } {
  return (
    typeof error === 'object' &&
    error !== null &&
    'status' in error &&
    typeof error.status === 'number' &&
    'expose' in error
  );
}

/**
 * Errors of the connection rather than of this client: a body cut short before its
 * Content-Length (Node's parser reports `HPE_*` codes), a socket reset or closed mid-request.
 * Koa still emits them, but they are the peer's doing, so they are not logged as our failures.
 */
function isBrokenConnection(error: unknown): error is { code: string } {
  if (typeof error !== 'object' || error === null || !('code' in error)) return false;
  const { code } = error;
  return (
    typeof code === 'string' &&
    (code.startsWith('HPE_') ||
      // The server's own request or headers timeout ends a request the peer sent too slowly.
      ['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ERR_HTTP_REQUEST_TIMEOUT'].includes(code))
  );
}

/** The declared Content-Length (Node's parser has checked it is digits), or null for a chunked body. */
function declaredLength(ctx: Context): number | null {
  const header = ctx.get('Content-Length');
  if (header === '') return null;
  const length = Number(header);
  return Number.isSafeInteger(length) ? length : Number.POSITIVE_INFINITY;
}

const peek = (item: OutboxItem | null) => (item === null ? null : { item, retry: false });

function apiRouter(client: Client, prefix: string, options: AppOptions): Router {
  const { logger } = options;
  const router = new Router({ prefix });
  const jsonBody = bodyParser({
    enableTypes: ['json'],
    strict: true,
    // The parser also fails for a body over its size limit or in an unknown charset: those are
    // not syntax errors, and keep their own status.
    onerror: (error) => {
      const status = 'status' in error ? error.status : null;
      if (status === 413) throw new HttpProblem('payload_too_large', 'the setup body is too large');
      if (status === 415) throw new HttpProblem('unsupported_media_type', error.message);
      throw badRequest(`the body is not valid JSON: ${error.message}`);
    },
  });

  router.post('/setup', async (ctx, next) => {
    // No body at all is a malformed setup whatever the type says: a 400, not a 415 that would
    // tell a caller who did send application/json to send application/json.
    if (ctx.is('application/json') === null || ctx.request.length === 0) {
      throw badRequest('the body is missing: POST /setup takes a JSON object');
    }
    if (!ctx.is('application/json')) {
      throw new HttpProblem('unsupported_media_type', 'POST /setup takes application/json');
    }
    await next();
  }, jsonBody, (ctx) => {
    const setup = parseSetup(ctx.request.body);
    const current = client.snapshot().context.setup;
    if (current !== null) {
      if (!sameSetup(current, setup)) throw conflict('this client is already set up with a different payload');
      ctx.body = { setup: current };
      return;
    }
    client.send({ type: 'fc.setup', setup });
    logger.info('setup', { id: setup.id, coordinator: setup.coordinator, clients: setup.clients.length });
    ctx.body = { setup };
  });

  // The platform polls every client all the time: a status is serialized once per snapshot.
  let status: { readonly snapshot: ClientSnapshot; readonly json: string } | null = null;
  router.get('/status', (ctx) => {
    client.statusRead();
    const snapshot = client.snapshot();
    if (status?.snapshot !== snapshot) status = { snapshot, json: JSON.stringify(toStatus(snapshot)) };
    ctx.type = 'application/json';
    ctx.body = status.json;
  });

  router.get('/data', (ctx) => {
    ctx.type = 'application/octet-stream';
    // The router answers HEAD with this GET handler; a HEAD carries no bytes away, so it must
    // not take the item, or the message would be lost.
    const taken = ctx.method === 'HEAD' ? peek(client.peekData()) : client.takeData();
    if (taken === null) {
      ctx.body = Buffer.alloc(0);
      return;
    }
    const { item, retry } = taken;
    ctx.body = Buffer.from(item.payload.buffer, item.payload.byteOffset, item.payload.byteLength);
    if (ctx.method === 'HEAD') return;
    if (retry) logger.warn('data fetched again (a retry)', { memo: item.memo, bytes: item.payload.byteLength });
    else logger.info('data fetched', { memo: item.memo, bytes: item.payload.byteLength, destination: item.destination });
  });

  router.post('/data', async (ctx) => {
    const sender = single(ctx, 'client');
    const memo = single(ctx, 'memo') ?? '';
    if (sender === undefined || sender === '') throw badRequest("query parameter 'client' is required", 'client');
    if (memo.length > MAX_MEMO_LENGTH) throw badRequest(`memo is longer than ${MAX_MEMO_LENGTH} characters`, 'memo');
    const setup = client.snapshot().context.setup;
    if (setup === null) throw conflict('this client is not set up yet (POST /setup first)');
    // With SMPC the controllers deliver one summed package whose `client` value means nothing
    // (PROTOCOL.md), so a coordinator that asked for SMPC takes it from any sender.
    const expectsAggregate = setup.coordinator && client.snapshot().context.privacy.smpc !== null;
    if (!expectsAggregate && !setup.clients.some((id) => String(id) === sender)) {
      throw forbidden(`client ${JSON.stringify(sender)} is not one of this run's clients`, 'client');
    }
    const payload = await readBody(ctx.req, options.bodyLimit, declaredLength(ctx));
    const accepted = client.send({ type: 'fc.data.received', sender, memo, payload });
    if (!accepted) {
      const snapshot = client.snapshot();
      if (snapshot.status === 'done' && !snapshot.hasTag('error')) {
        // A relay's late retry (a second `done`, say): everything this client needed is in.
        logger.info('data ignored (finished)', { from: sender, memo, bytes: payload.byteLength });
        ctx.body = { received: payload.byteLength, ignored: 'this client has finished' };
        return;
      }
      throw conflict(`this client no longer accepts data (state ${stateName(snapshot)})`);
    }
    logger.info('data received', { from: sender, memo, bytes: payload.byteLength });
    ctx.body = { received: payload.byteLength };
  });

  return router;
}

/**
 * The status page: the spec's plain string for tools (no Accept header, any type, text/plain),
 * and for a browser that asks for HTML a page with the machine diagram, which polls `state.json`
 * beside it.
 */
function webRouter(client: Client, path: string): Router {
  const router = new Router();
  router.get(path, (ctx) => {
    ctx.vary('Accept');
    const snapshot = client.snapshot();
    if (ctx.accepts('text/plain', 'text/html') === 'text/html') {
      ctx.type = 'text/html; charset=utf-8';
      ctx.set('Content-Security-Policy', WEB_PAGE_CSP);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = webPage(toWebView(snapshot));
      return;
    }
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = toWebStatus(snapshot);
  });
  router.get(`${path.replace(/\/+$/, '')}/${WEB_STATE_FILE}`, (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = toWebView(client.snapshot());
  });
  return router;
}

export function createApp(client: Client, options: AppOptions, layout: Layout = SPEC_LAYOUT): Koa {
  const app = new Koa();
  app.silent = true;
  app.on('error', (error: unknown) => {
    if (isBrokenConnection(error)) {
      options.logger.warn('connection broken by the client', { code: error.code });
      return;
    }
    options.logger.error('request failed', { error: error instanceof Error ? error.stack : String(error) });
  });
  app.use(problems(options.logger));
  const routers = [
    layout.api === null ? null : apiRouter(client, layout.api, options),
    layout.web === null ? null : webRouter(client, layout.web),
  ];
  for (const router of routers) {
    if (router === null) continue;
    app.use(router.routes());
    app.use(router.allowedMethods());
  }
  return app;
}
