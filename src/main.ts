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
}

main().catch((error: unknown) => {
  const message =
    error instanceof SettingsError || error instanceof WatchUsageError
      ? error.message
      : error instanceof Error
        ? error.stack
        : String(error);
  process.stderr.write(`featurecloud client: ${message}\n`);
  process.exit(1);
});
