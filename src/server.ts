/**
 * Starting and stopping a client's HTTP servers. Used by `npm start` and by the simulator, which
 * runs clients in-process or as child processes.
 *
 * One client can be served on up to three ports at once: the spec's layout (`/api`, `/web`) on
 * `port`, and the layout of the platform's images, where the controller calls the API at the root
 * of port 9000 and shows the root of port 9001. The reference images put nginx in front of the
 * app for that; here the same process listens on each port, so every port sees the same machine.
 */
import { createServer, type Server } from 'node:http';
import type Koa from 'koa';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createClient, type Client, type ClientActors, type ClientOptions } from './client.ts';
import { createApp, SPEC_LAYOUT, type Layout } from './http/app.ts';
import type { Logger } from './log.ts';
import { DEFAULT_TIMEOUTS, type RequestTimeouts } from './settings.ts';
import { createWorkload } from './runtime/workload.ts';

export interface ServerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Also serve the API at the root of this port (the platform's 9000). Null or absent: not. */
  readonly apiPort?: number | null;
  /** Also serve the status string at `/` of this port (the platform's 9001). Null or absent: not. */
  readonly webPort?: number | null;
  readonly inputDir: string;
  readonly outputDir: string;
  readonly bodyLimit: number;
  readonly logger: Logger;
  /** XState's inspection events, for the inspector or a trace (src/visual/inspect.ts). */
  readonly inspect?: ClientOptions['inspect'];
  /** The client's name in the inspector. */
  readonly name?: string;
  /** How long to wait for other sites before reporting an error; null or absent: no limit. */
  readonly waitTimeoutMs?: number | null;
  readonly timeouts?: RequestTimeouts;
  /** The machine's actors; absent: the workload of `inputDir` (config, data, computation). */
  readonly actors?: ClientActors;
}

export interface RunningClient {
  readonly client: Client;
  /** Base URL of the spec's layout: the API under `/api`, the status under `/web`. */
  readonly url: string;
  /** Base URL of the API at the root, when `apiPort` was given. */
  readonly apiUrl: string | null;
  /** Base URL of the status string at the root, when `webPort` was given. */
  readonly webUrl: string | null;
  close(): Promise<void>;
}

const PLATFORM_API_LAYOUT: Layout = { api: '', web: null };
const PLATFORM_WEB_LAYOUT: Layout = { api: null, web: '/' };

const CLIENT_ERROR_STATUS: Readonly<Record<string, [number, string]>> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
};

/**
 * A request Node cannot even parse (or that is too slow) never reaches Koa; answer it in the
 * same JSON shape as every other error instead of Node's bare text.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason] = CLIENT_ERROR_STATUS[error.code ?? ''] ?? [400, 'Bad Request'];
  const body = JSON.stringify({
    error: status === 408 ? 'request_timeout' : 'bad_request',
    detail: status === 408 ? 'the request took too long to arrive' : 'the request is not valid HTTP',
  });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * How often Node looks for requests past their timeouts: a quarter of the shortest one, at most
 * Node's default of 30 s. It can only be set when the server is created; with the default, a
 * 5 s timeout would still hold a stalled connection for up to 35 s.
 */
function checkingInterval({ headersMs, requestMs }: RequestTimeouts): number {
  const shortest = Math.min(...[headersMs, requestMs].filter((ms) => ms > 0));
  return Number.isFinite(shortest) ? Math.min(30_000, Math.max(10, Math.floor(shortest / 4))) : 30_000;
}

export function listen(app: Koa, host: string, port: number, timeouts: RequestTimeouts = DEFAULT_TIMEOUTS): Promise<Server> {
  return new Promise<Server>((resolve, reject) => {
    const server = createServer({ connectionsCheckingInterval: checkingInterval(timeouts) }, app.callback());
    // A caller that sends its headers or body slowly (or never) must not hold a connection forever.
    server.headersTimeout = timeouts.headersMs;
    server.requestTimeout = timeouts.requestMs;
    server.on('clientError', answerClientError);
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function urlOf(server: Server, listenHost: string): string {
  const { port } = server.address() as AddressInfo;
  const host = listenHost.includes(':') ? `[${listenHost}]` : listenHost;
  return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export async function startClient(options: ServerOptions): Promise<RunningClient> {
  const { logger } = options;
  const client = createClient(
    options.actors ?? createWorkload({ inputDir: options.inputDir, outputDir: options.outputDir, logger }),
    logger,
    {
      waitTimeoutMs: options.waitTimeoutMs ?? null,
      ...(options.inspect === undefined ? {} : { inspect: options.inspect }),
      ...(options.name === undefined ? {} : { name: options.name }),
    },
  );
  const servers: Server[] = [];
  const open = async (layout: Layout, port: number): Promise<Server> => {
    const app = createApp(client, { bodyLimit: options.bodyLimit, logger }, layout);
    const server = await listen(app, options.host, port, options.timeouts);
    servers.push(server);
    return server;
  };
  const closeAll = async (): Promise<void> => {
    client.stop();
    await Promise.all(servers.map(closeServer));
  };

  const apiPort = options.apiPort ?? null;
  const webPort = options.webPort ?? null;
  let main: Server;
  let api: Server | null;
  let web: Server | null;
  try {
    main = await open(SPEC_LAYOUT, options.port);
    api = apiPort === null ? null : await open(PLATFORM_API_LAYOUT, apiPort);
    web = webPort === null ? null : await open(PLATFORM_WEB_LAYOUT, webPort);
  } catch (error) {
    // A port that is taken must not leave the other ports (or the machine) running.
    await closeAll();
    throw error;
  }
  return {
    client,
    url: urlOf(main, options.host),
    apiUrl: api === null ? null : urlOf(api, options.host),
    webUrl: web === null ? null : urlOf(web, options.host),
    close: closeAll,
  };
}
