/**
 * A whole federation on this machine: lay out the sites, start their clients, play the
 * controller, and sum up. The command line (cli.ts) and the tests both call `simulate`.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RESULT_FILES } from '../runtime/results.ts';
import { runFederation, type ControlledClient, type RelayRecord, type RunReport } from './controller.ts';
import { prepareSites, startSites, type RunningSite, type Site, type SiteWatch } from './federation.ts';
import { UsageError, type SimulationOptions } from './options.ts';
import { createRandom } from './random.ts';
import { traceFiles, writeTrace } from './trace.ts';
import { parseWatchOptions, startInspectorRelay, WatchUsageError, type InspectorRelay } from '../visual/inspect.ts';
import { createView } from './view.ts';

export interface SimulationSummary {
  readonly ok: boolean;
  readonly failure: string | null;
  readonly rounds: number;
  readonly clients: readonly {
    readonly id: string;
    readonly label: string;
    readonly coordinator: boolean;
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
    await new Promise<void>((resolve) => prompt.question('Press Enter to start the run once the page is open. ', () => resolve()));
    prompt.close();
  }
  return relay;
}

/** Runs a simulation; used by the command line and by the tests. */
export async function simulate(options: SimulationOptions, io: SimulationIo): Promise<SimulationSummary> {
  const relay = options.inspect ? await startInspector(io) : null;
  try {
    const watch: SiteWatch = {
      inspectUrl: relay?.socket ?? null,
      traceFile: (site) => (options.trace === null ? null : traceFiles(options.trace).xstate(site.label)),
    };
    return await simulateWatched(options, io, watch);
  } finally {
    relay?.close();
  }
}

async function simulateWatched(options: SimulationOptions, io: SimulationIo, watch: SiteWatch): Promise<SimulationSummary> {
  let sites: Site[] = [];
  let root: string | null = null;
  if (options.urls === null) ({ root, sites } = await prepareSites(options));
  const running: RunningSite[] = await startSites(options, sites, watch);
  try {
    const ids = clientIds(running.length, options.seed);
    const clients: ControlledClient[] = running.map((site, index) => ({
      id: ids[index] ?? String(index),
      label: site.label,
      api: site.api,
      coordinator: index === 0,
    }));
    const view = options.json ? null : createView(clients, io.out);
    const records: RelayRecord[] = [];
    let report: RunReport;
    try {
      report = await runFederation(clients, {
        queryIntervalMs: options.queryIntervalMs,
        timeoutMs: options.timeoutMs,
        requestTimeoutMs: options.requestTimeoutMs,
        faults: options.faults,
        seed: options.seed,
        onStatus: (client, status) => view?.update(client, status),
        onRelay: (record) => records.push(record),
      });
    } finally {
      view?.close();
    }
    const trace = options.trace === null ? null : await writeTrace(options.trace, clients, records);
    const coordinatorSite = running[0];
    const fromFiles = await readResult(report.ok ? (coordinatorSite?.outputDir ?? null) : null);
    return {
      ok: report.ok,
      failure: report.failure,
      rounds: report.rounds,
      clients: clients.map((client, index) => {
        const status = report.statuses.get(client.id);
        return {
          id: client.id,
          label: client.label,
          coordinator: client.coordinator,
          state: status?.state ?? null,
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
    await Promise.all(running.map((site) => site.stop()));
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
    `Federation ${summary.ok ? 'finished' : 'FAILED'}: ${summary.clients.length} clients, ${summary.rounds} rounds, ` +
      `${summary.messages} messages, ${summary.bytes} bytes, ${(summary.durationMs / 1000).toFixed(2)} s` +
      (privacy === '' ? '' : `, ${privacy}`),
    '',
    table([
      ['client', 'id', 'role', 'state', 'output'],
      ...summary.clients.map((client) => [
        client.label,
        client.id,
        client.coordinator ? 'coordinator' : 'participant',
        client.state === 'error' ? 'error' : client.finished ? 'finished' : (client.state ?? '-'),
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
