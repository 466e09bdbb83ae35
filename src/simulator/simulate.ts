/**
 * A whole federation on this machine: lay out the sites, start their clients, play the
 * controller, and sum up. The command line (cli.ts) and the tests both call `simulate`.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Status } from '../protocol/types.ts';
import { RESULT_FILES } from '../runtime/results.ts';
import { runFederation, type ControlledClient, type RelayRecord, type RunReport } from './controller.ts';
import { plannedLabels, prepareSites, startSites, type RunningSite, type Site, type SiteWatch } from './federation.ts';
import { plural, SimulationInterrupted, UsageError, type SimulationOptions } from './options.ts';
import { createRandom } from './random.ts';
import { traceFiles, writeTrace } from './trace.ts';
import { parseWatchOptions, startInspectorRelay, WatchUsageError, type InspectorRelay } from '../visual/inspect.ts';
import { createView } from './view.ts';

/** What `--json` prints: all of this but `report`. */
export interface SimulationSummary {
  readonly ok: boolean;
  /**
   * One line saying why the run failed; null when it succeeded. A client in error whose log is
   * here (child and in-process clients) is quoted in full from its log, which is named.
   */
  readonly failure: string | null;
  readonly rounds: number;
  readonly clients: readonly {
    readonly id: string;
    readonly label: string;
    readonly coordinator: boolean;
    /**
     * What the table shows: `finished`, `error`, or the state of the client's last status (null
     * when there was none, or the status had no state).
     */
    readonly state: string | null;
    readonly finished: boolean;
    readonly outputDir: string | null;
  }[];
  /** The coordinator's result.json `result`, or with --urls the final broadcast. */
  readonly result: unknown;
  /** The coordinator's report.md, when its output folder is here. */
  readonly report: string | null;
  readonly messages: number;
  readonly bytes: number;
  readonly durationMs: number;
  readonly outputDir: string | null;
  readonly trace: string | null;
}

/** Hex ids like the platform's; reproducible with --seed. */
function clientIds(count: number, seed: string | null): string[] {
  const random = seed === null ? null : createRandom(`${seed}/ids`);
  const ids = new Set<string>();
  while (ids.size < count) {
    const hex =
      random === null
        ? randomBytes(8).toString('hex')
        : Array.from({ length: 4 }, () => Math.floor(random.next() * 0x10000).toString(16).padStart(4, '0')).join('');
    ids.add(hex);
  }
  return [...ids];
}

async function readResult(outputDir: string | null): Promise<{ result: unknown; report: string | null }> {
  if (outputDir === null) return { result: null, report: null };
  try {
    const json = JSON.parse(await readFile(join(outputDir, RESULT_FILES.json), 'utf8')) as { result?: unknown };
    const report = await readFile(join(outputDir, RESULT_FILES.markdown), 'utf8').catch(() => null);
    return { result: json.result ?? null, report };
  } catch {
    return { result: null, report: null };
  }
}

export interface SimulationIo {
  readonly out: { write(text: string): unknown; isTTY?: boolean };
  /** With --inspect on a terminal, the run waits for Enter here, so the inspector page can be opened first. */
  readonly in?: NodeJS.ReadableStream & { isTTY?: boolean };
  /**
   * Aborting it ends the run at once: every client started for it is stopped, and `simulate`
   * rejects with SimulationInterrupted (its reason is the abort reason when that is a string,
   * e.g. `SIGINT`). Its output folder stays, with the logs.
   */
  readonly signal?: AbortSignal;
}

/** Rejects once `signal` aborts; `dispose` lets go of the signal. */
function whenAborted(signal: AbortSignal | undefined): { promise: Promise<never>; dispose(): void } {
  if (signal === undefined) return { promise: new Promise<never>(() => {}), dispose: () => {} };
  let onAbort = () => {};
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(SimulationInterrupted.from(signal));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/** Starts the inspector relay for --inspect and says where to look. */
async function startInspector(io: SimulationIo): Promise<InspectorRelay> {
  let relay: InspectorRelay;
  try {
    relay = await startInspectorRelay(parseWatchOptions([], process.env).inspectPort);
  } catch (error) {
    // A taken port or a missing dev dependency is the user's to fix, like any usage mistake.
    if (error instanceof WatchUsageError) throw new UsageError(error.message);
    throw error;
  }
  io.out.write(`Stately inspector: open ${relay.page} (it loads stately.ai/inspect: the browser needs to reach it)\n`);
  if (io.in?.isTTY === true) {
    const prompt = createInterface({ input: io.in, output: process.stdout });
    const interrupted = whenAborted(io.signal);
    try {
      await Promise.race([
        new Promise<void>((resolve) => prompt.question('Press Enter to start the run once the page is open. ', () => resolve())),
        interrupted.promise,
      ]);
    } catch (error) {
      relay.close();
      throw error;
    } finally {
      interrupted.dispose();
      prompt.close();
    }
  }
  return relay;
}

/** `--faults slow:CLIENT:MS` must name a client of this run: by its label, or its id (with --seed). */
function checkSlowClients(options: SimulationOptions, labels: readonly string[], ids: readonly string[]): void {
  for (const name of options.faults.slow?.keys() ?? []) {
    if (labels.includes(name) || ids.includes(name)) continue;
    throw new UsageError(`--faults slow:${name}: there is no client '${name}' (the clients are ${labels.join(', ')})`);
  }
}

/** Runs a simulation; used by the command line and by the tests. */
export async function simulate(options: SimulationOptions, io: SimulationIo): Promise<SimulationSummary> {
  // What can be checked before anything starts or is written is checked now.
  const labels = await plannedLabels(options);
  const ids = clientIds(labels.length, options.seed);
  checkSlowClients(options, labels, ids);
  if (io.signal?.aborted === true) throw SimulationInterrupted.from(io.signal);

  const relay = options.inspect ? await startInspector(io) : null;
  try {
    const watch: SiteWatch = {
      inspectUrl: relay?.socket ?? null,
      traceFile: (site) => (options.trace === null ? null : traceFiles(options.trace).xstate(site.label)),
    };
    return await simulateWatched(options, io, watch, ids);
  } finally {
    relay?.close();
  }
}

/** The controller's name for a client in its messages. */
function describeClient(client: ControlledClient): string {
  return client.label === client.id ? `client ${client.id}` : `client ${client.label} (${client.id})`;
}

/** The `error` of the last error line of a client's log (JSON lines): its failure in full. */
async function lastLoggedError(logFile: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(logFile, 'utf8');
  } catch {
    return null;
  }
  let found: string | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: unknown; error?: unknown };
      if (entry.level === 'error' && typeof entry.error === 'string') found = entry.error;
    } catch {
      // Not a log line of ours (e.g. a Node warning).
    }
  }
  return found === null ? null : found.replace(/\s+/g, ' ').trim();
}

/**
 * The run's failure, with a failed client's message in full: its status carries only 40
 * characters (the platform's limit), its log the whole message. Read once the log is complete.
 */
async function fullFailure(
  report: RunReport,
  clients: readonly ControlledClient[],
  running: readonly RunningSite[],
): Promise<string | null> {
  const failure = report.failure;
  if (failure === null) return null;
  for (const [index, client] of clients.entries()) {
    const status = report.statuses.get(client.id);
    const logFile = running[index]?.logFile ?? null;
    const prefix = `${describeClient(client)} failed: `;
    if (status?.state !== 'error' || logFile === null || !failure.startsWith(prefix)) continue;
    const message = await lastLoggedError(logFile);
    // The status's message is the start of the logged one (cut to 40 characters with "…").
    const start = (status.message ?? '').replace(/…$/, '');
    if (message === null || !message.startsWith(start)) continue;
    return `${prefix}${message} — log: ${logFile}`;
  }
  return failure;
}

/** What the table shows for a client, and --json's `state`. */
function shownState(status: Status | undefined): string | null {
  if (status?.state === 'error') return 'error';
  if (status?.finished === true) return 'finished';
  return status?.state ?? null;
}

async function simulateWatched(
  options: SimulationOptions,
  io: SimulationIo,
  watch: SiteWatch,
  ids: readonly string[],
): Promise<SimulationSummary> {
  let sites: Site[] = [];
  let root: string | null = null;
  if (options.urls === null) ({ root, sites } = await prepareSites(options));
  const running: RunningSite[] = await startSites(options, sites, watch, io.signal);
  let stopping: Promise<void> | null = null;
  const stopAll = () => (stopping ??= Promise.all(running.map((site) => site.stop())).then(() => {}));
  try {
    const clients: ControlledClient[] = running.map((site, index) => ({
      id: ids[index] ?? String(index),
      label: site.label,
      api: site.api,
      coordinator: index === 0,
    }));
    const view = options.json ? null : createView(clients, io.out);
    const records: RelayRecord[] = [];
    let live = true;
    const interrupted = whenAborted(io.signal);
    let report: RunReport;
    try {
      const federation = runFederation(clients, {
        queryIntervalMs: options.queryIntervalMs,
        timeoutMs: options.timeoutMs,
        requestTimeoutMs: options.requestTimeoutMs,
        faults: options.faults,
        seed: options.seed,
        onStatus: (client, status) => {
          if (live) view?.update(client, status);
        },
        onRelay: (record) => records.push(record),
      });
      // Interrupted, the run is left to fail on its stopped clients; nobody waits for it.
      federation.catch(() => {});
      report = await Promise.race([federation, interrupted.promise]);
    } finally {
      live = false;
      interrupted.dispose();
      view?.close();
    }
    // Stopped clients have written their logs to the end, which the failure may quote.
    await stopAll();
    const failure = await fullFailure(report, clients, running);
    const trace = options.trace === null ? null : await writeTrace(options.trace, clients, records);
    const coordinatorSite = running[0];
    const fromFiles = await readResult(report.ok ? (coordinatorSite?.outputDir ?? null) : null);
    return {
      ok: report.ok,
      failure,
      rounds: report.rounds,
      clients: clients.map((client, index) => {
        const status = report.statuses.get(client.id);
        return {
          id: client.id,
          label: client.label,
          coordinator: client.coordinator,
          state: shownState(status),
          finished: status?.finished ?? false,
          outputDir: running[index]?.outputDir ?? null,
        };
      }),
      result: fromFiles.result ?? (report.ok ? report.finalBroadcast : null),
      report: fromFiles.report,
      messages: report.messages,
      bytes: report.bytes,
      durationMs: report.durationMs,
      outputDir: root,
      trace,
    };
  } finally {
    await stopAll();
  }
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()).join('\n');
}

export function formatSummary(summary: SimulationSummary, options: SimulationOptions): string {
  const privacy = [options.smpc ? 'SMPC' : null, options.dp !== null ? 'DP' : null].filter(Boolean).join(' + ');
  const lines = [
    '',
    `Federation ${summary.ok ? 'finished' : 'FAILED'}: ${plural(summary.clients.length, 'client')}, ` +
      `${plural(summary.rounds, 'round')}, ${plural(summary.messages, 'message')}, ${plural(summary.bytes, 'byte')}, ` +
      `${(summary.durationMs / 1000).toFixed(2)} s` +
      (privacy === '' ? '' : `, ${privacy}`),
    '',
    table([
      ['client', 'id', 'role', 'state', 'output'],
      ...summary.clients.map((client) => [
        client.label,
        client.id,
        client.coordinator ? 'coordinator' : 'participant',
        client.state ?? '-',
        client.outputDir ?? '-',
      ]),
    ]),
  ];
  if (summary.report !== null) lines.push('', summary.report.trimEnd());
  else if (summary.result !== null) lines.push('', 'Result:', JSON.stringify(summary.result, null, 2));
  if (summary.trace !== null && options.trace !== null) {
    const files = traceFiles(options.trace);
    const xstate = options.mode === 'remote' ? '' : `, ${files.xstate('<client>')}`;
    lines.push('', `Trace: ${files.relays}, ${files.mermaid}, ${files.svg}${xstate}`);
  }
  if (summary.outputDir !== null) lines.push('', `Inputs, outputs and logs: ${summary.outputDir}`);
  return `${lines.join('\n')}\n`;
}
