/**
 * Starting and stopping a client's HTTP server. Used by `npm start` and by the simulator, which
 * runs clients in-process or as child processes.
 */
import { createServer, type Server } from 'node:http';
import type Koa from 'koa';
import type { AddressInfo } from 'node:net';
import { createClient, type Client } from './client.ts';
import { createApp, SPEC_LAYOUT } from './http/app.ts';
import type { Logger } from './log.ts';
import { createWorkload } from './runtime/workload.ts';

export interface ServerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly inputDir: string;
  readonly outputDir: string;
  readonly bodyLimit: number;
  readonly logger: Logger;
}

export interface RunningClient {
  readonly client: Client;
  readonly url: string;
  close(): Promise<void>;
}

export function listen(app: Koa, host: string, port: number): Promise<Server> {
  return new Promise<Server>((resolve, reject) => {
    const server = createServer(app.callback());
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export async function startClient(options: ServerOptions): Promise<RunningClient> {
  const { logger } = options;
  const client = createClient(
    createWorkload({ inputDir: options.inputDir, outputDir: options.outputDir, logger }),
    logger,
  );
  const app = createApp(client, { bodyLimit: options.bodyLimit, logger });
  const server = await listen(app, options.host, options.port);
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    client,
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        client.stop();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
