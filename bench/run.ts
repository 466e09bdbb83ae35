/**
 * `npm run bench`: how fast and lean a federation is, on this machine. A benchmark, not a test:
 * it prints a table and writes bench/results.json, and never fails on a figure.
 *
 *   round    3 in-process clients on the sample data: ms per round (statistics; logistic
 *            regression held to 20 Newton rounds)
 *   scale    10, 50, 100, 200 in-process clients x 10 rounds: total time, ms per client-round
 *   payload  3 child-process clients, each contributing 64 MB of doubles, and a 64 MB broadcast:
 *            MB/s end to end, and each client process's peak RSS
 *   smpc     10 clients x 100,000 numbers with SMPC, against the same run without it
 *   status   GET /api/status of one client process under load (autocannon, 50 connections)
 *
 * Options: --only NAME[,NAME] (a partial run writes no results file unless --out is given),
 * --quick (fewer repetitions, shorter load), --out FILE, --profile DIR (child processes write
 * CPU profiles there; profile this process with `node --cpu-prof --import tsx bench/run.ts`).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { createLogger } from '../src/log.ts';
import { startClient, type RunningClient } from '../src/server.ts';
import { runFederation, type ControlledClient, type RunReport } from '../src/simulator/controller.ts';
import { PROJECT_ROOT, prepareSites, SAMPLE_DIR, startSites } from '../src/simulator/federation.ts';
import { parseOptions } from '../src/simulator/options.ts';
import { vectorActors, type Checked, type VectorJob } from './fixtures.ts';

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const SCENARIOS = ['round', 'scale', 'payload', 'smpc', 'status'] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    profile: { type: 'string' },
  },
});
const only = values.only?.split(',').map((name) => name.trim()) ?? null;
for (const name of only ?? []) {
  if (!(SCENARIOS as readonly string[]).includes(name)) {
    console.error(`bench: unknown scenario '${name}' (known: ${SCENARIOS.join(', ')})`);
    process.exit(2);
  }
}
const quick = values.quick;
const outFile = values.out ?? (only === null && !quick ? join(PROJECT_ROOT, 'bench', 'results.json') : null);
const wanted = (scenario: Scenario) => only === null || only.includes(scenario);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const MB = 1024 * 1024;
const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? Number.NaN) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};
const round = (value: number, digits = 2) => Number(value.toFixed(digits));
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
/** The logger an in-process client of the simulator has: info lines, formatted, then dropped. */
const droppedLog = () => createLogger('info', () => {});

const hexId = (index: number) => `c${index.toString(16).padStart(15, '0')}`;
const controlled = (urls: readonly string[]): ControlledClient[] =>
  urls.map((url, index) => ({ id: hexId(index), label: `site-${index + 1}`, api: `${url}/api`, coordinator: index === 0 }));

function federate(clients: readonly ControlledClient[], onRelay?: (memo: string | null, from: string) => void): Promise<RunReport> {
  return runFederation(clients, {
    queryIntervalMs: 20, // the simulator's default --query-interval
    timeoutMs: 120_000,
    requestTimeoutMs: 120_000,
    seed: '1',
    ...(onRelay === undefined ? {} : { onRelay: (record) => onRelay(record.memo, record.from) }),
  });
}

function assertOk(report: RunReport, what: string): void {
  if (!report.ok) throw new Error(`${what}: the federation failed: ${report.failure ?? 'no reason'}`);
}

async function inProcessClients(count: number, job: VectorJob, checked: Checked[]): Promise<RunningClient[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      startClient({
        host: '127.0.0.1',
        port: 0,
        inputDir: '.',
        outputDir: '.',
        bodyLimit: 1024 ** 3,
        logger: droppedLog(),
        actors: vectorActors(job, (result) => checked.push(result)),
      }),
    ),
  );
}

interface ChildClient {
  readonly url: string;
  readonly pid: number;
  /** Resident memory now, from /proc (Linux), in KB. */
  rssKb(): Promise<number | null>;
  stop(): Promise<{ maxRssKb: number; checked: Checked[] }>;
}

/**
 * A client process runs compiled JavaScript, as the container does: the TypeScript loader would
 * add its own memory and start-up work to what is measured. Compiled once per bench run, into dist/.
 */
let compiled: Promise<string> | null = null;
function compiledFixtureClient(): Promise<string> {
  compiled ??= new Promise<string>((resolve, reject) => {
    const tsc = spawn(process.execPath, [join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(PROJECT_ROOT, 'bench', 'tsconfig.json')], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    tsc.once('exit', (code) => {
      if (code === 0) resolve(join(PROJECT_ROOT, 'dist', 'bench', 'fixture-client.js'));
      else reject(new Error(`compiling the fixture client failed (tsc exited with ${code})`));
    });
  });
  return compiled;
}

async function childClient(job: VectorJob): Promise<ChildClient> {
  const profile = values.profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values.profile];
  const child = spawn(process.execPath, [...profile, await compiledFixtureClient()], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, BENCH_LENGTH: String(job.length), BENCH_ROUNDS: String(job.rounds), BENCH_SMPC: job.smpc ? '1' : '0' },
    // Its stdin stays open while this process lives; the client exits when it closes.
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stderr.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /"msg":"listening","url":"([^"]+)"/.exec(buffered);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`a fixture client exited with ${code}: ${buffered.slice(-500)}`)));
  });
  const pid = child.pid ?? -1;
  return {
    url,
    pid,
    rssKb: async () => {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
      return match?.[1] === undefined ? null : Number(match[1]);
    },
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { maxRssKb: number; checked: Checked[] };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/** A real federation of in-process clients on the sample; ms per round from the coordinator's broadcasts. */
async function sampleRounds(argv: readonly string[]): Promise<{ rounds: number[]; totalMs: number }> {
  const output = await mkdtemp(join(tmpdir(), 'fc-bench-'));
  try {
    const options = parseOptions(['--in-process', '--output', output, ...argv]);
    const { sites } = await prepareSites(options);
    const running = await startSites(options, sites);
    try {
      const clients = controlled(running.map((site) => site.api.replace(/\/api$/, '')));
      const coordinator = clients[0]?.id;
      const ends: number[] = [];
      const started = performance.now();
      const report = await federate(clients, (memo, from) => {
        if (from === coordinator && memo !== null && /^r\d+\.(global|final)$/.test(memo)) ends.push(performance.now());
      });
      assertOk(report, `the sample (${argv.join(' ')})`);
      const rounds = ends.map((end, index) => end - (index === 0 ? started : (ends[index - 1] ?? started)));
      return { rounds, totalMs: performance.now() - started };
    } finally {
      await Promise.all(running.map((site) => site.stop()));
    }
  } finally {
    await rm(output, { recursive: true, force: true });
  }
}

async function roundScenario() {
  // Statistics has two rounds: ten runs make twenty rounds.
  const statistics: number[] = [];
  const runs = quick ? 3 : 10;
  for (let run = 0; run < runs; run++) statistics.push(...(await sampleRounds([])).rounds);

  // An iterative computation: logistic regression, its tolerance out of reach, so it does 20 Newton rounds.
  const config = (await readFile(join(SAMPLE_DIR, 'configs', 'logistic-regression', 'config.yml'), 'utf8'))
    .replace(/tolerance: [^\s#]+/, 'tolerance: 1.0e-300')
    .replace(/maxRounds: [^\s#]+/, 'maxRounds: 20');
  const generic = await mkdtemp(join(tmpdir(), 'fc-bench-generic-'));
  await writeFile(join(generic, 'config.yml'), config);
  const logistic: number[] = [];
  const logisticTotals: number[] = [];
  try {
    for (let run = 0; run < (quick ? 1 : 3); run++) {
      const { rounds, totalMs } = await sampleRounds(['--generic-dir', generic]);
      if (rounds.length !== 20) throw new Error(`logistic regression ran ${rounds.length} rounds, not 20`);
      logistic.push(...rounds);
      logisticTotals.push(totalMs);
    }
  } finally {
    await rm(generic, { recursive: true, force: true });
  }
  // A run's first round also holds the setup and each site reading its config and data.
  const firsts = (rounds: readonly number[], per: number) => rounds.filter((_, index) => index % per === 0);
  const laters = (rounds: readonly number[], per: number) => rounds.filter((_, index) => index % per !== 0);
  return {
    statistics: {
      runs,
      rounds: statistics.length,
      medianMsPerRound: round(median(statistics)),
      medianFirstRoundMs: round(median(firsts(statistics, 2))),
      medianLaterRoundMs: round(median(laters(statistics, 2))),
    },
    logisticRegression: {
      runs: logisticTotals.length,
      rounds: logistic.length,
      medianMsPerRound: round(median(logistic)),
      medianFirstRoundMs: round(median(firsts(logistic, 20))),
      medianLaterRoundMs: round(median(laters(logistic, 20))),
      medianTotalMs: round(median(logisticTotals)),
    },
  };
}

async function scaleScenario() {
  const rounds = 10;
  const rows: { clients: number; rounds: number; totalMs: number; msPerClientRound: number; messages: number }[] = [];
  for (const count of quick ? [10, 50, 100] : [10, 50, 100, 200]) {
    const checked: Checked[] = [];
    const job = { length: 16, rounds, smpc: false };
    const running = await inProcessClients(count, job, checked);
    try {
      const started = performance.now();
      const report = await federate(controlled(running.map((client) => client.url)));
      const totalMs = performance.now() - started;
      assertOk(report, `${count} clients`);
      if (checked.length !== count || !checked.every((result) => result.ok && result.round === rounds)) {
        throw new Error(`${count} clients: a site's final sum is wrong`);
      }
      rows.push({ clients: count, rounds, totalMs: round(totalMs), msPerClientRound: round(totalMs / (count * rounds), 3), messages: report.messages });
      log(`scale: ${count} clients x ${rounds} rounds in ${round(totalMs)} ms`);
    } finally {
      await Promise.all(running.map((client) => client.close()));
    }
  }
  const perClientRound = rows.map((row) => row.msPerClientRound);
  return { rows, spread: round(Math.max(...perClientRound) / Math.min(...perClientRound)) };
}

async function payloadScenario() {
  const length = 8 * MB; // doubles: 64 MB
  const payloadMb = (length * 8) / MB;
  interface PayloadRun {
    readonly seconds: number;
    readonly mbPerSecond: number;
    readonly relayedMb: number;
    readonly coordinatorPeakMb: number;
    readonly participantPeakMb: number;
    readonly idleMb: number;
  }
  const runs: PayloadRun[] = [];
  for (let run = 0; run < (quick ? 1 : 3); run++) {
    const job = { length, rounds: 1, smpc: false };
    const children = await Promise.all([0, 1, 2].map(() => childClient(job)));
    const idleRssKb = await Promise.all(children.map((child) => child.rssKb()));
    const started = performance.now();
    const outcome = await federate(controlled(children.map((child) => child.url))).then(
      (report) => ({ report, seconds: (performance.now() - started) / 1000 }),
      (error: unknown) => ({ error }),
    );
    const stopped = await Promise.all(children.map((child) => child.stop()));
    if ('error' in outcome) throw outcome.error;
    const { report, seconds } = outcome;
    assertOk(report, 'the large payload');
    if (!stopped.every((child) => child.checked.length === 1 && child.checked[0]?.ok === true)) {
      throw new Error('the large payload: a site did not get the right sum');
    }
    // Relayed payload: two contributions to the coordinator, the sum to each of two participants.
    const relayedMb = report.bytes / MB;
    runs.push({
      seconds,
      mbPerSecond: relayedMb / seconds,
      relayedMb,
      coordinatorPeakMb: (stopped[0]?.maxRssKb ?? 0) / 1024,
      participantPeakMb: Math.max(...stopped.slice(1).map((child) => child.maxRssKb)) / 1024,
      idleMb: Math.max(...idleRssKb.map((kb) => kb ?? 0)) / 1024,
    });
    log(`payload: ${round(relayedMb)} MB relayed in ${round(seconds, 3)} s`);
  }
  const pick = (key: keyof PayloadRun) => round(median(runs.map((run) => run[key])));
  return {
    payloadMb,
    runs: runs.length,
    seconds: pick('seconds'),
    relayedMb: pick('relayedMb'),
    mbPerSecond: pick('mbPerSecond'),
    participantPeakRssMb: pick('participantPeakMb'),
    coordinatorPeakRssMb: pick('coordinatorPeakMb'),
    idleRssMb: pick('idleMb'),
    participantPeakOverPayload: round(pick('participantPeakMb') / payloadMb),
    coordinatorPeakOverPayload: round(pick('coordinatorPeakMb') / payloadMb),
  };
}

async function smpcScenario() {
  const clients = 10;
  const length = 100_000;
  const time = async (smpc: boolean) => {
    const checked: Checked[] = [];
    const running = await inProcessClients(clients, { length, rounds: 1, smpc }, checked);
    try {
      const started = performance.now();
      const report = await federate(controlled(running.map((client) => client.url)));
      const ms = performance.now() - started;
      assertOk(report, `SMPC ${smpc}`);
      if (!checked.every((result) => result.ok)) throw new Error(`SMPC ${smpc}: a site's sum is wrong`);
      return ms;
    } finally {
      await Promise.all(running.map((client) => client.close()));
    }
  };
  const repetitions = quick ? 1 : 3;
  const plain: number[] = [];
  const secure: number[] = [];
  for (let run = 0; run < repetitions; run++) {
    plain.push(await time(false));
    secure.push(await time(true));
    log(`smpc: run ${run + 1}: ${round(secure.at(-1) ?? 0)} ms with SMPC, ${round(plain.at(-1) ?? 0)} ms without`);
  }
  return {
    clients,
    numbers: length,
    plainMs: round(median(plain)),
    smpcMs: round(median(secure)),
    ratio: round(median(secure) / median(plain), 1),
  };
}

async function statusScenario() {
  const child = await childClient({ length: 16, rounds: 1, smpc: false });
  try {
    // Set up as a participant whose coordinator never answers: a client waiting, as most are.
    const setup = await fetch(`${child.url}/api/setup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'b', coordinator: false, clients: ['a', 'b'], coordinatorID: 'a' }),
    });
    await setup.arrayBuffer();
    const result = await autocannon({
      url: `${child.url}/api/status`,
      connections: 50,
      duration: quick ? 3 : 10,
    });
    return {
      connections: 50,
      seconds: quick ? 3 : 10,
      requestsPerSecond: round(result.requests.average, 0),
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      errors: result.errors + result.non2xx,
    };
  } finally {
    await child.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

const results: Record<string, unknown> = {};
const table: [string, string, string, string][] = [];
const verdict = (met: boolean) => (met ? 'met' : 'missed');

if (wanted('round')) {
  log('round: 3 in-process clients on the sample');
  const figures = await roundScenario();
  results['round'] = figures;
  const { statistics, logisticRegression } = figures;
  const split = (rounds: typeof statistics) => `first ${rounds.medianFirstRoundMs} ms, later ${rounds.medianLaterRoundMs} ms`;
  table.push([`1 round: statistics, 3 clients, ${statistics.rounds} rounds (${statistics.runs} runs of 2)`, `${statistics.medianMsPerRound} ms per round (median; ${split(statistics)})`, '≤ 20 ms', verdict(statistics.medianMsPerRound <= 20)]);
  table.push([`1 round: logistic regression, 3 clients, 20 rounds`, `${logisticRegression.medianMsPerRound} ms per round (median; ${split(logisticRegression)})`, '≤ 20 ms', verdict(logisticRegression.medianMsPerRound <= 20)]);
}
if (wanted('scale')) {
  log('scale: in-process clients x 10 rounds');
  const figures = await scaleScenario();
  results['scale'] = figures;
  for (const row of figures.rows) {
    const target = row.clients === 100 ? '≤ 10 s' : '';
    const met = row.clients === 100 ? verdict(row.totalMs <= 10_000) : '';
    table.push([`2 scale: ${row.clients} clients x 10 rounds`, `${round(row.totalMs / 1000)} s, ${row.msPerClientRound} ms per client-round`, target, met]);
  }
  table.push(['2 scale: per client-round, largest / smallest', `${figures.spread}x`, '≤ 2x', verdict(figures.spread <= 2)]);
}
if (wanted('payload')) {
  log('payload: 3 child-process clients, 64 MB each');
  const figures = await payloadScenario();
  results['payload'] = figures;
  table.push(['3 large payload: end to end', `${figures.mbPerSecond} MB/s (${figures.relayedMb} MB in ${figures.seconds} s)`, '≥ 300 MB/s', verdict(figures.mbPerSecond >= 300)]);
  table.push(['3 large payload: participant peak RSS', `${figures.participantPeakRssMb} MB (${figures.participantPeakOverPayload}x payload; idle ${figures.idleRssMb} MB)`, '≤ 3x', verdict(figures.participantPeakOverPayload <= 3)]);
  table.push(['3 large payload: coordinator peak RSS', `${figures.coordinatorPeakRssMb} MB (${figures.coordinatorPeakOverPayload}x payload)`, '≤ 3x', verdict(figures.coordinatorPeakOverPayload <= 3)]);
}
if (wanted('smpc')) {
  log('smpc: 10 clients x 100,000 numbers');
  const figures = await smpcScenario();
  results['smpc'] = figures;
  table.push(['4 SMPC: 10 clients x 100,000 numbers', `${round(figures.smpcMs / 1000)} s vs ${round(figures.plainMs / 1000, 3)} s without (${figures.ratio}x)`, '(report)', '']);
}
if (wanted('status')) {
  log('status: autocannon, 50 connections');
  const figures = await statusScenario();
  results['status'] = figures;
  table.push(['5 /api/status under load', `${figures.requestsPerSecond} req/s, p99 ${figures.p99Ms} ms`, '≥ 10,000 req/s, p99 ≤ 20 ms', verdict(figures.requestsPerSecond >= 10_000 && figures.p99Ms <= 20)]);
}

const header: [string, string, string, string] = ['scenario', 'measured', 'target', ''];
const widths = header.map((_, column) => Math.max(...[header, ...table].map((row) => row[column]?.length ?? 0)));
const line = (row: readonly string[]) => `| ${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
console.log([line(header), line(widths.map((width) => '-'.repeat(width))), ...table.map(line)].join('\n'));

if (outFile !== null) {
  const document = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGb: round(totalmem() / 1024 ** 3, 1), node: process.version, platform: process.platform },
    quick,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    results,
  };
  await writeFile(outFile, `${JSON.stringify(document, null, 2)}\n`);
  log(`results written to ${outFile}`);
}
