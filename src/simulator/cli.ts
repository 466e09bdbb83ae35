/**
 * `npm run simulate`: a whole federation on this machine. Exit code 0 only when every client
 * finished, 1 when the run failed, 2 for a usage or input mistake, 130 / 143 when interrupted by
 * SIGINT / SIGTERM (every client it started is stopped first); any failure is one line on stderr
 * that names its cause.
 */
import { parseOptions, SimulationInterrupted, USAGE, UsageError, type SimulationOptions } from './options.ts';
import { formatSummary, simulate } from './simulate.ts';

const SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;
type StopSignal = keyof typeof SIGNALS;
/** After a signal, the clients are given this long to stop; their stdin closing stops them anyway. */
const STOP_GRACE_MS = 10_000;

const interruption = new AbortController();
let received: StopSignal | null = null;
let remote = false;

function interrupted(signal: StopSignal, stopped: boolean): never {
  const clients = remote ? 'the clients at --urls keep running' : stopped ? 'clients stopped' : 'clients told to stop';
  process.stderr.write(`simulate: interrupted (${signal}); ${clients}\n`);
  process.exit(SIGNALS[signal]);
}

for (const signal of Object.keys(SIGNALS) as StopSignal[]) {
  process.on(signal, () => {
    // A second signal does not wait: the clients still end when their stdin closes with us.
    if (received !== null) interrupted(received, false);
    received = signal;
    interruption.abort(signal);
    setTimeout(() => interrupted(signal, false), STOP_GRACE_MS).unref();
  });
}

async function main(argv: readonly string[]): Promise<number> {
  const options: SimulationOptions = parseOptions(argv);
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  remote = options.mode === 'remote';
  const summary = await simulate(options, { out: process.stdout, in: process.stdin, signal: interruption.signal });
  // A signal during the run's last moments: the run is over, but the user asked to stop.
  if (received !== null) interrupted(received, true);
  if (options.json) {
    const { report: _report, ...json } = summary;
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    process.stdout.write(formatSummary(summary, options));
  }
  if (!summary.ok) process.stderr.write(`simulate: ${summary.failure ?? 'the run failed'}\n`);
  return summary.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof SimulationInterrupted && received !== null) interrupted(received, true);
    const message =
      error instanceof UsageError || (error instanceof Error && error.name === 'InputError')
        ? error.message
        : error instanceof Error
          ? (error.stack ?? error.message)
          : String(error);
    process.stderr.write(`simulate: ${message}\n`);
    process.exit(2);
  },
);
