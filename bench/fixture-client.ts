/**
 * One client in a process of its own, running the fixture computation (fixtures.ts), for the
 * benchmarks that measure a client process: its peak memory, its answers under load.
 *
 * Environment: BENCH_LENGTH (numbers per contribution), BENCH_ROUNDS, BENCH_SMPC (1 or 0).
 * Prints `{"msg":"listening","url":...}` on stderr once it listens, like `npm start`. On SIGTERM
 * it prints one JSON line on stdout, `{"maxRssKb", "checked"}`, and exits; when its stdin closes
 * (the benchmark is gone), it exits at once.
 */
import { createLogger } from '../src/log.ts';
import { startClient } from '../src/server.ts';
import { vectorActors, type Checked } from './fixtures.ts';

const number = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a whole number`);
  return value;
};

const checked: Checked[] = [];
const running = await startClient({
  host: '127.0.0.1',
  port: 0,
  inputDir: '.',
  outputDir: '.',
  bodyLimit: 2 * 1024 ** 3,
  logger: createLogger('warn'),
  actors: vectorActors(
    { length: number('BENCH_LENGTH', 1000), rounds: number('BENCH_ROUNDS', 1), smpc: process.env['BENCH_SMPC'] === '1' },
    (result) => checked.push(result),
  ),
});
process.stderr.write(`${JSON.stringify({ msg: 'listening', url: running.url })}\n`);

// A benchmark that dies must not leave its clients behind: they end when their stdin closes.
process.stdin.once('end', () => process.exit(1));
process.stdin.resume();

process.once('SIGTERM', () => {
  void running.close().then(() => {
    process.stdout.write(`${JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS, checked })}\n`);
    process.exit(0);
  });
});
