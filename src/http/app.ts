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
import getRawBody from 'raw-body';
import { stateName, toStatus, toWebStatus } from '../../machines/status.ts';
import type { Client } from '../client.ts';
import type { Logger } from '../log.ts';
import { badRequest, conflict, forbidden, HttpProblem } from './errors.ts';
import { parseSetup, sameSetup } from './setup-body.ts';

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
    (code.startsWith('HPE_') || ['ECONNRESET', 'ECONNABORTED', 'EPIPE'].includes(code))
  );
}

/** Reads the raw body of POST /api/data (any content type) with a size limit. */
async function readBody(ctx: Context, limit: number): Promise<Buffer> {
  try {
    return await getRawBody(ctx.req, { limit, length: ctx.get('Content-Length') || null });
  } catch (error) {
    const type = typeof error === 'object' && error !== null && 'type' in error ? error.type : null;
    if (type === 'entity.too.large') {
      throw new HttpProblem('payload_too_large', `the body is larger than the limit of ${limit} bytes`);
    }
    if (type === 'request.aborted') throw badRequest('the request was aborted before its body was complete');
    throw badRequest('the body could not be read (its length does not match Content-Length)');
  }
}

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

  router.get('/status', (ctx) => {
    ctx.body = toStatus(client.snapshot());
  });

  router.get('/data', (ctx) => {
    const snapshot = client.snapshot();
    const head = snapshot.hasTag('error') ? undefined : snapshot.context.outbox[0];
    ctx.type = 'application/octet-stream';
    if (head === undefined) {
      ctx.body = Buffer.alloc(0);
      return;
    }
    ctx.body = Buffer.from(head.payload.buffer, head.payload.byteOffset, head.payload.byteLength);
    // The router answers HEAD with this GET handler; a HEAD carries no bytes away, so it must
    // not pop the item, or the message would be lost.
    if (ctx.method === 'HEAD') return;
    client.send({ type: 'fc.data.fetched', itemId: head.id });
    logger.info('data fetched', { memo: head.memo, bytes: head.payload.byteLength, destination: head.destination });
  });

  router.post('/data', async (ctx) => {
    const sender = single(ctx, 'client');
    const memo = single(ctx, 'memo') ?? '';
    if (sender === undefined || sender === '') throw badRequest("query parameter 'client' is required", 'client');
    if (memo.length > MAX_MEMO_LENGTH) throw badRequest(`memo is longer than ${MAX_MEMO_LENGTH} characters`, 'memo');
    const setup = client.snapshot().context.setup;
    if (setup === null) throw conflict('this client is not set up yet (POST /setup first)');
    if (!setup.clients.some((id) => String(id) === sender)) {
      throw forbidden(`client ${JSON.stringify(sender)} is not one of this run's clients`, 'client');
    }
    const payload = await readBody(ctx, options.bodyLimit);
    const accepted = client.send({ type: 'fc.data.received', sender, memo, payload });
    if (!accepted) throw conflict(`this client no longer accepts data (state ${stateName(client.snapshot())})`);
    logger.info('data received', { from: sender, memo, bytes: payload.byteLength });
    ctx.body = { received: payload.byteLength };
  });

  return router;
}

function webRouter(client: Client, path: string): Router {
  const router = new Router();
  router.get(path, (ctx) => {
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = toWebStatus(client.snapshot());
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
