/**
 * The simulator's command line, parsed and checked up front: every mistake is one line that
 * names the option, before any client starts.
 */
import { extname } from 'node:path';
import { parseArgs } from 'node:util';
import type { DpOptions } from '../protocol/types.ts';
import type { Faults } from './controller.ts';

export type ClientMode = 'child' | 'in-process' | 'remote';

export interface SimulationOptions {
  readonly mode: ClientMode;
  /** Number of clients (also with --urls: the number of URLs). */
  readonly clients: number;
  /** One input folder per client (--client-dirs), or null for the bundled sample. */
  readonly clientDirs: readonly string[] | null;
  readonly genericDir: string | null;
  readonly urls: readonly string[] | null;
  /** Null: a fresh temporary folder, named at the end. */
  readonly output: string | null;
  readonly queryIntervalMs: number;
  readonly timeoutMs: number;
  /** A single HTTP call to a client that takes longer than this fails the run. */
  readonly requestTimeoutMs: number;
  readonly faults: Faults;
  readonly smpc: boolean;
  /** DP settings to put in every client's config (--dp and --dp-*), or null. */
  readonly dp: Partial<DpOptions> | null;
  readonly seed: string | null;
  readonly json: boolean;
  readonly trace: string | null;
  /** Send every client's inspection events to a Stately inspector relay started for the run. */
  readonly inspect: boolean;
  readonly help: boolean;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A run ended from outside (SIGINT, SIGTERM, an aborted signal): every local client was stopped. */
export class SimulationInterrupted extends Error {
  override readonly name = 'SimulationInterrupted';
  constructor(readonly reason: string) {
    super(`interrupted (${reason})`);
  }

  /** The signal's reason when it is a word (`SIGINT`), else `aborted`. */
  static from(signal: AbortSignal): SimulationInterrupted {
    const reason: unknown = signal.reason;
    return new SimulationInterrupted(typeof reason === 'string' && reason !== '' ? reason : 'aborted');
  }
}

/** `1 round`, `2 rounds`. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

export const USAGE = `Usage: npm run simulate -- [options]

Runs a whole FeatureCloud federation on this machine: starts the clients, plays the platform's
controller for them over HTTP, and prints the federated result.

Clients
  --clients N            number of clients on the bundled penguin sample (default 3)
  --client-dirs a,b,c    one client per input folder (each with config.yml and its data)
  --generic-dir DIR      copied into every client's input folder
  --urls URL,URL,...     drive clients that already run (e.g. containers); the first is the coordinator
  --in-process           run the clients inside the simulator (default: one child process each)

Privacy (written into every client's config.yml)
  --smpc                 secure aggregation (sum of secret shares)
  --dp                   differential privacy; tune with
  --dp-noise laplace|gauss  --dp-epsilon E  --dp-delta D  --dp-sensitivity S  --dp-clip C
  --seed S               make DP noise and client ids reproducible

Run
  --query-interval SEC   seconds between polls of an idle client (default 0.02)
  --timeout SEC          end the run when nothing happens for this long (default 60)
  --request-timeout SEC  fail when one call to a client takes longer (default 30)
  --faults LIST          inject faults: duplicate, reorder:MS, drop-data:N, slow:CLIENT:MS
  --output DIR           where each client's input, output and log go (default: a new temp folder)
  --trace FILE           write every relay as a JSON line to FILE, and beside it FILE with its
                         extension replaced; for --trace run.jsonl:
                           run.mmd                    the run as a Mermaid sequence diagram
                           run.svg                    the same diagram drawn as an SVG
                           run.<client>.xstate.jsonl  each client's XState inspection events
                                                      (not with --urls: those clients are not ours)
                         FILE itself must not end in .mmd or .svg
  --inspect              show every client's machine live in the Stately inspector (a relay on
                         INSPECT_PORT, default 8080; the page needs stately.ai in the browser)
  --json                 print one JSON summary instead of the table, with the keys ok, failure,
                         rounds, clients (each: id, label, coordinator, state, finished,
                         outputDir; state is what the table shows: finished, error, or the
                         state of its last status), result, messages, bytes, durationMs,
                         outputDir, trace (the .mmd file, or null)
  --help                 this text

Exit code: 0 when every client finished, 1 when the run failed, 2 for a usage or input mistake,
130 / 143 when stopped by SIGINT / SIGTERM (the clients it started are stopped first).`;

function positiveNumber(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0) {
    throw new UsageError(`--${name} must be a positive number of seconds, not '${value}'`);
  }
  return number;
}

function list(value: string | undefined, name: string): string[] | null {
  if (value === undefined) return null;
  const items = value.split(',').map((item) => item.trim());
  if (items.some((item) => item === '')) throw new UsageError(`--${name} has an empty entry in '${value}'`);
  return items;
}

function dpNumber(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number)) throw new UsageError(`--${name} must be a number, not '${value}'`);
  return number;
}

/** `duplicate,reorder:20,drop-data:3,slow:dream:50` → Faults. */
export function parseFaults(text: string | undefined): Faults {
  if (text === undefined) return {};
  const faults: { -readonly [K in keyof Faults]: Faults[K] } = {};
  const slow = new Map<string, number>();
  const count = (value: string | undefined, what: string) => {
    const number = Number(value);
    if (value === undefined || value.trim() === '' || !Number.isInteger(number) || number < 1) {
      throw new UsageError(`--faults: ${what} needs a whole number ≥ 1, not '${value ?? ''}'`);
    }
    return number;
  };
  for (const item of list(text, 'faults') ?? []) {
    const [name, ...args] = item.split(':');
    if (name === 'duplicate' && args.length === 0) faults.duplicate = true;
    else if (name === 'reorder' && args.length === 1) faults.reorderMs = count(args[0], 'reorder:MS');
    else if (name === 'drop-data' && args.length === 1) faults.dropDataResponseEvery = count(args[0], 'drop-data:N');
    else if (name === 'slow' && args.length === 2 && args[0] !== '') slow.set(args[0] ?? '', count(args[1], 'slow:CLIENT:MS'));
    else throw new UsageError(`--faults: unknown fault '${item}' (duplicate, reorder:MS, drop-data:N, slow:CLIENT:MS)`);
  }
  if (slow.size > 0) faults.slow = slow;
  return faults;
}

export function parseOptions(argv: readonly string[]): SimulationOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        clients: { type: 'string' },
        'client-dirs': { type: 'string' },
        'generic-dir': { type: 'string' },
        urls: { type: 'string' },
        'in-process': { type: 'boolean', default: false },
        output: { type: 'string' },
        'query-interval': { type: 'string' },
        timeout: { type: 'string' },
        'request-timeout': { type: 'string' },
        faults: { type: 'string' },
        smpc: { type: 'boolean', default: false },
        dp: { type: 'boolean', default: false },
        'dp-noise': { type: 'string' },
        'dp-epsilon': { type: 'string' },
        'dp-delta': { type: 'string' },
        'dp-sensitivity': { type: 'string' },
        'dp-clip': { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'boolean', default: false },
        trace: { type: 'string' },
        inspect: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    // parseArgs explains unknown options and missing values well; keep its first line.
    const message = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
    // `--timeout -1`: parseArgs takes -1 for an option; `--timeout=-1` says it is the value.
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(message);
    if (ambiguous !== null) {
      const flag = ambiguous[1] ?? '';
      const value = argv[argv.indexOf(flag) + 1] ?? '-1';
      throw new UsageError(`${message.replace(/\.$/, '')}: for a value that starts with a dash write ${flag}=${value} (see --help)`);
    }
    throw new UsageError(`${message} (see --help)`);
  }
  const values = parsed.values;

  const clientDirs = list(values['client-dirs'], 'client-dirs');
  const urls = list(values.urls, 'urls');
  if (clientDirs !== null && urls !== null) throw new UsageError('--client-dirs and --urls cannot be combined');
  if (urls !== null) {
    for (const [flag, given] of [
      ['--generic-dir', values['generic-dir'] !== undefined],
      ['--in-process', values['in-process']],
      ['--smpc', values.smpc],
      ['--dp', values.dp],
      ['--output', values.output !== undefined],
    ] as const) {
      if (given) throw new UsageError(`${flag} cannot be used with --urls: those clients have their own input and output`);
    }
    if (values.inspect) {
      throw new UsageError('--inspect cannot be used with --urls: start those clients with `npm start -- --inspect` instead');
    }
    for (const url of urls) {
      if (!/^https?:\/\/[^/\s]+/.test(url)) throw new UsageError(`--urls: '${url}' is not an http(s) URL`);
    }
  }

  let clients: number;
  if (urls !== null) clients = urls.length;
  else if (clientDirs !== null) clients = clientDirs.length;
  else {
    const text = values.clients ?? '3';
    clients = Number(text);
    if (!Number.isInteger(clients)) throw new UsageError(`--clients must be a whole number, not '${text}'`);
  }
  if (values.clients !== undefined && (clientDirs !== null || urls !== null) && Number(values.clients) !== clients) {
    const given = clientDirs !== null ? plural(clients, 'folder') : plural(clients, 'URL');
    throw new UsageError(`--clients ${values.clients} does not match the ${given} given`);
  }
  if (clients < 2) throw new UsageError(`a federation needs at least 2 clients, not ${clients}`);

  const dpGiven = ['dp-noise', 'dp-epsilon', 'dp-delta', 'dp-sensitivity', 'dp-clip'].filter(
    (name) => values[name as 'dp-noise'] !== undefined,
  );
  if (!values.dp && dpGiven.length > 0) throw new UsageError(`--${dpGiven[0]} needs --dp`);
  let dp: Partial<DpOptions> | null = null;
  if (values.dp) {
    const noise = values['dp-noise'];
    if (noise !== undefined && noise !== 'laplace' && noise !== 'gauss') {
      throw new UsageError(`--dp-noise must be laplace or gauss, not '${noise}'`);
    }
    const entries = {
      noisetype: noise,
      epsilon: dpNumber(values['dp-epsilon'], 'dp-epsilon'),
      delta: dpNumber(values['dp-delta'], 'dp-delta'),
      sensitivity: dpNumber(values['dp-sensitivity'], 'dp-sensitivity'),
      clippingVal: dpNumber(values['dp-clip'], 'dp-clip'),
    };
    // The same bounds as config.yml's, said in the command line's words.
    const bounds: [number | undefined, string, (value: number) => boolean, string][] = [
      [entries.epsilon, 'dp-epsilon', (value) => value > 0, 'must be greater than 0'],
      [entries.delta, 'dp-delta', (value) => value >= 0 && value < 1, 'must be at least 0 and less than 1'],
      [entries.sensitivity, 'dp-sensitivity', (value) => value > 0, 'must be greater than 0'],
      [entries.clippingVal, 'dp-clip', (value) => value > 0, 'must be greater than 0'],
    ];
    for (const [value, name, ok, rule] of bounds) {
      if (value !== undefined && !ok(value)) throw new UsageError(`--${name} ${rule}, not ${value}`);
    }
    if (noise === 'gauss' && entries.delta === 0) {
      throw new UsageError('--dp-delta must be greater than 0 for gauss noise');
    }
    dp = Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== undefined)) as Partial<DpOptions>;
  }

  const trace = values.trace ?? null;
  const traceExtension = trace === null ? '' : extname(trace).toLowerCase();
  if (trace !== null && (traceExtension === '.mmd' || traceExtension === '.svg')) {
    throw new UsageError(
      `--trace ${trace}: FILE gets the relays as JSON lines and the diagrams go beside it with its extension ` +
        `replaced by .mmd and .svg, which would overwrite it; name it e.g. ${trace.slice(0, -traceExtension.length)}.jsonl`,
    );
  }

  return {
    mode: urls !== null ? 'remote' : values['in-process'] ? 'in-process' : 'child',
    clients,
    clientDirs,
    genericDir: values['generic-dir'] ?? null,
    urls,
    output: values.output ?? null,
    queryIntervalMs: positiveNumber(values['query-interval'], 'query-interval', 0.02) * 1000,
    timeoutMs: positiveNumber(values.timeout, 'timeout', 60) * 1000,
    requestTimeoutMs: positiveNumber(values['request-timeout'], 'request-timeout', 30) * 1000,
    faults: parseFaults(values.faults),
    smpc: values.smpc,
    dp,
    seed: values.seed ?? null,
    json: values.json,
    trace,
    inspect: values.inspect,
    help: values.help,
  };
}
