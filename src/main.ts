/**
 * `npm start`: one FeatureCloud client, configured from the environment (see src/settings.ts).
 * Prints one JSON line `{"msg":"listening","url":...}` on stderr once it accepts calls; `url` is
 * the spec's layout (`/api`, `/web`), `api` and `web` the platform's ports when they are set.
 */
import { createLogger } from './log.ts';
import { startClient } from './server.ts';
import { readSettings, SettingsError } from './settings.ts';
import { parseWatchOptions, startWatching, WatchUsageError } from './visual/inspect.ts';

async function main(): Promise<void> {
  const settings = readSettings();
  const logger = createLogger(settings.logLevel);
  // `--inspect` (Stately inspector) and `--trace FILE` (inspection events as JSON lines).
  const watching = await startWatching(parseWatchOptions(process.argv.slice(2), process.env));
  if (watching.page !== null) {
    logger.info('inspector', { open: watching.page, needs: 'the browser to reach stately.ai/inspect' });
  }
  const running = await startClient({ ...settings, logger, ...watching.client });
  logger.info('listening', {
    url: running.url,
    ...(running.apiUrl === null ? {} : { api: running.apiUrl }),
    ...(running.webUrl === null ? {} : { web: running.webUrl }),
    input: settings.inputDir,
    output: settings.outputDir,
  });

  const stop = (signal: string) => {
    logger.info('stopping', { signal });
    void running.close().then(() => watching.close()).then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // A client the simulator started ends with it, however the simulator ended.
  if (process.env.FC_EXIT_WITH_STDIN === '1') {
    process.stdin.once('end', () => stop('stdin closed'));
    process.stdin.resume();
  }
}

/** A port taken or an address that does not exist is the user's to fix: one line, no stack. */
function describeListenError(error: NodeJS.ErrnoException & { address?: string; port?: number }): string | null {
  const where = `${error.address ?? process.env.HOST ?? '127.0.0.1'}${error.port === undefined ? '' : `:${error.port}`}`;
  switch (error.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: the port is in use (choose another with PORT, API_PORT or WEB_PORT)`;
    case 'EACCES':
      return `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`;
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return `cannot listen on ${where}: no such address on this machine (check HOST)`;
    default:
      return null;
  }
}

main().catch((error: unknown) => {
  const message =
    error instanceof SettingsError || error instanceof WatchUsageError
      ? error.message
      : error instanceof Error
        ? (describeListenError(error) ?? error.stack)
        : String(error);
  process.stderr.write(`featurecloud client: ${message}\n`);
  process.exit(1);
});
