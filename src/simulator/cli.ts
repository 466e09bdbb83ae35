/**
 * `npm run simulate`: a whole federation on this machine. Exit code 0 only when every client
 * finished, 1 when the run failed, 2 for a usage or input mistake; any failure is one line on
 * stderr that names its cause.
 */
import { parseOptions, USAGE, UsageError } from './options.ts';
import { formatSummary, simulate } from './simulate.ts';

async function main(argv: readonly string[]): Promise<number> {
  const options = parseOptions(argv);
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const summary = await simulate(options, { out: process.stdout, in: process.stdin });
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
