/**
 * `npm start`: one FeatureCloud client, configured from the environment (see src/settings.ts).
 * Prints one JSON line `{"msg":"listening","url":...}` on stderr once it accepts calls.
 */
import { createLogger } from './log.ts';
import { startClient } from './server.ts';
import { readSettings, SettingsError } from './settings.ts';

async function main(): Promise<void> {
  const settings = readSettings();
  const logger = createLogger(settings.logLevel);
  const running = await startClient({ ...settings, logger });
  logger.info('listening', { url: running.url, input: settings.inputDir, output: settings.outputDir });

  const stop = (signal: string) => {
    logger.info('stopping', { signal });
    void running.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  const message = error instanceof SettingsError ? error.message : error instanceof Error ? error.stack : String(error);
  process.stderr.write(`featurecloud client: ${message}\n`);
  process.exit(1);
});
