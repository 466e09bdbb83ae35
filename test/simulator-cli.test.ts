import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PROJECT_ROOT, SAMPLE_DIR } from '../src/simulator/federation.ts';
import { parseOptions, SimulationInterrupted, USAGE, UsageError } from '../src/simulator/options.ts';
import { formatSummary, simulate, type SimulationSummary } from '../src/simulator/simulate.ts';
import { traceFiles } from '../src/simulator/trace.ts';

const SITES = ['biscoe', 'dream', 'torgersen'] as const;
const CLI = join(PROJECT_ROOT, 'src', 'simulator', 'cli.ts');
const quiet = { out: { write: () => true } };
const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits until `check` holds, polling; false when it did not within `ms`. */
async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await pause(50);
  }
  return check();
}

interface Cli {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code, or the signal that ended it. */
  readonly ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Cli {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...argv], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  assert.ok(child.pid !== undefined, 'the CLI started');
  return { child, pid: child.pid, stdout: () => stdout, stderr: () => stderr, ended };
}

/** `/proc/PID/stat` as [parent PID, state], or null when the process is gone. */
async function procStat(pid: number): Promise<{ ppid: number; state: string } | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: the fields after it are plain.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(ppid), state: state ?? '?' };
  } catch {
    return null;
  }
}

/** A process that ended, whether or not its parent has reaped it yet (a zombie is gone too). */
async function gone(pid: number): Promise<boolean> {
  const stat = await procStat(pid);
  return stat === null || stat.state === 'Z' || stat.state === 'X';
}

/** The clients (`src/main.ts`) the simulator with this PID started. */
async function clientPids(parent: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const stat = await procStat(pid);
    if (stat?.ppid !== parent || stat.state === 'Z') continue;
    const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (command.includes(join('src', 'main.ts'))) pids.push(pid);
  }
  return pids;
}

/** True once every site's client.log says it listens. */
async function allListening(output: string): Promise<boolean> {
  for (const site of SITES) {
    const log = await readFile(join(output, site, 'client.log'), 'utf8').catch(() => '');
    if (!log.includes('"msg":"listening"')) return false;
  }
  return true;
}

/** Starts the CLI with child-process clients kept mid-run, and waits until all of them listen. */
async function cliMidRun(): Promise<{ cli: Cli; output: string; clients: number[] }> {
  const output = await mkdtemp(join(tmpdir(), 'fc-cli-signal-'));
  const cli = startCli(['--faults', 'slow:dream:3000', '--output', output]);
  const listening = await until(() => allListening(output), 20_000);
  assert.ok(listening, `every client listens: ${cli.stderr()}`);
  const clients = await clientPids(cli.pid);
  assert.is(clients.length, SITES.length, `one child process per site: ${clients.join(', ')}`);
  return { cli, output, clients };
}

/** Ends whatever a failed test left running; only processes this test started. */
async function cleanUp(cli: Cli | null, clients: readonly number[]): Promise<void> {
  if (cli !== null && cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL');
  for (const pid of clients) {
    if (!(await gone(pid))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

test('SIGINT to the simulator stops its child clients, says so in one line and exits 130', async () => {
  let cli: Cli | null = null;
  let clients: number[] = [];
  try {
    ({ cli, clients } = await cliMidRun());
    process.kill(cli.pid, 'SIGINT');
    const ended = await Promise.race([cli.ended, pause(10_000).then(() => null)]);
    assert.ok(ended !== null, 'the simulator ends within 10 s');
    assert.is(ended.code, 130);
    const lines = cli.stderr().trim().split('\n');
    assert.equal(lines.filter((line) => line.startsWith('simulate:')), ['simulate: interrupted (SIGINT); clients stopped']);
    const stopped = await until(async () => (await Promise.all(clients.map(gone))).every(Boolean), 3000);
    assert.ok(stopped, `every child client ended: ${clients.join(', ')}`);
  } finally {
    await cleanUp(cli, clients);
  }
});

test('child clients end when their stdin closes, even when the simulator is SIGKILLed', async () => {
  let cli: Cli | null = null;
  let clients: number[] = [];
  try {
    ({ cli, clients } = await cliMidRun());
    process.kill(cli.pid, 'SIGKILL');
    const ended = await cli.ended;
    assert.is(ended.signal, 'SIGKILL');
    const stopped = await until(async () => (await Promise.all(clients.map(gone))).every(Boolean), 5000);
    assert.ok(stopped, `every orphaned child client ended: ${clients.join(', ')}`);
  } finally {
    await cleanUp(cli, clients);
  }
});

test('SIGTERM ends an in-process run with 143 and the same line', async () => {
  const output = await mkdtemp(join(tmpdir(), 'fc-cli-term-'));
  const cli = startCli(['--in-process', '--faults', 'slow:dream:3000', '--output', output]);
  try {
    assert.ok(await until(() => cli.stdout().includes('(coordinator)'), 20_000), `the run started: ${cli.stderr()}`);
    process.kill(cli.pid, 'SIGTERM');
    const ended = await Promise.race([cli.ended, pause(10_000).then(() => null)]);
    assert.ok(ended !== null, 'the simulator ends within 10 s');
    assert.is(ended.code, 143);
    assert.match(cli.stderr(), /^simulate: interrupted \(SIGTERM\); clients stopped$/m);
  } finally {
    await cleanUp(cli, []);
  }
});

test('an aborted signal ends simulate() at once with SimulationInterrupted', async () => {
  const output = await mkdtemp(join(tmpdir(), 'fc-abort-'));
  const controller = new AbortController();
  let abortedAt = 0;
  const io = {
    signal: controller.signal,
    out: {
      write: () => {
        // The first status line: the clients run, the run is under way.
        if (abortedAt === 0) {
          abortedAt = Date.now();
          controller.abort('test');
        }
        return true;
      },
    },
  };
  try {
    await simulate(parseOptions(['--in-process', '--faults', 'slow:dream:3000', '--output', output]), io);
    assert.unreachable('the run should be interrupted');
  } catch (error) {
    assert.instance(error, SimulationInterrupted);
    assert.is((error as SimulationInterrupted).reason, 'test');
    assert.is((error as Error).message, 'interrupted (test)');
  }
  assert.ok(abortedAt > 0 && Date.now() - abortedAt < 2000, `it ended ${Date.now() - abortedAt} ms after the abort`);

  const already = new AbortController();
  already.abort('SIGINT');
  try {
    await simulate(parseOptions(['--in-process', '--output', output]), { ...quiet, signal: already.signal });
    assert.unreachable('an aborted signal starts nothing');
  } catch (error) {
    assert.instance(error, SimulationInterrupted);
  }
});

/** The sample's sites in a temp folder, with dream's config asking for a column it lacks. */
async function sitesWithTypo(): Promise<string[]> {
  const root = await mkdtemp(join(tmpdir(), 'fc-typo-'));
  const dirs = SITES.map((site) => join(root, site));
  for (const [index, site] of SITES.entries()) await cp(join(SAMPLE_DIR, site), dirs[index] ?? '', { recursive: true });
  const config = join(root, 'dream', 'config.yml');
  await writeFile(config, (await readFile(config, 'utf8')).replace('bill_depth_mm', 'bill_dept_mm'));
  return dirs;
}

for (const mode of ['in-process', 'child'] as const) {
  test(`a failed ${mode} client is quoted in full from its log, which is named`, async () => {
    const dirs = await sitesWithTypo();
    const output = await mkdtemp(join(tmpdir(), 'fc-typo-run-'));
    const argv = ['--client-dirs', dirs.join(','), '--output', output, ...(mode === 'in-process' ? ['--in-process'] : [])];
    const summary = await simulate(parseOptions(argv), quiet);
    assert.is(summary.ok, false);
    const log = join(output, 'dream', 'client.log');
    const failure = summary.failure ?? '';
    assert.ok(failure.startsWith(`client dream (${summary.clients[1]?.id ?? '?'}) failed: `), failure);
    assert.ok(failure.endsWith(` — log: ${log}`), failure);
    assert.match(failure, /failed: data\.csv: column 'bill_dept_mm' not found \(have: [^)]*bill_depth_mm[^)]*\) — log: /);
    assert.not.match(failure, /…/);
    assert.not.match(failure, /\n/);
    // The table and --json say the same of every client.
    const dream = summary.clients.find((client) => client.label === 'dream');
    assert.is(dream?.state, 'error');
    const table = formatSummary(summary, parseOptions(argv));
    for (const client of summary.clients) {
      const row = table.split('\n').find((line) => line.startsWith(`${client.label} `));
      assert.ok(row?.includes(`  ${client.state ?? '-'}  `), `${client.label}: ${row ?? 'no row'} vs ${client.state}`);
    }
  });
}

test("--json's state is the table's: finished for a finished client, never null", async () => {
  const output = await mkdtemp(join(tmpdir(), 'fc-json-state-'));
  const summary = await simulate(parseOptions(['--in-process', '--output', output]), quiet);
  assert.is(summary.ok, true, summary.failure ?? '');
  assert.equal(summary.clients.map((client) => client.state), ['finished', 'finished', 'finished']);
  const json = JSON.parse(JSON.stringify(summary)) as { clients: { state: unknown }[] };
  assert.ok(json.clients.every((client) => client.state === 'finished'));
  assert.match(USAGE, /state is what the table shows: finished, error/);
});

function usageError(argv: string[]): string {
  try {
    parseOptions(argv);
  } catch (error) {
    assert.instance(error, UsageError, argv.join(' '));
    assert.not.match((error as Error).message, /\n/);
    return (error as Error).message;
  }
  assert.unreachable(`${argv.join(' ')} should be refused`);
  return '';
}

test('command-line mistakes say what to write instead', () => {
  assert.match(usageError(['--query-interval', '-1']), /ambiguous: for a value that starts with a dash write --query-interval=-1/);
  assert.match(usageError(['--dp', '--dp-epsilon', '-1']), /write --dp-epsilon=-1/);
  assert.match(usageError(['--query-interval=-1']), /--query-interval must be a positive number of seconds, not '-1'/);
  assert.match(usageError(['--dp', '--dp-epsilon', '0']), /^--dp-epsilon must be greater than 0/);
  assert.match(usageError(['--dp', '--dp-sensitivity=-2']), /^--dp-sensitivity must be greater than 0/);
  assert.match(usageError(['--dp', '--dp-delta', '1']), /^--dp-delta must be at least 0 and less than 1/);
  assert.match(usageError(['--dp', '--dp-noise', 'gauss', '--dp-delta', '0']), /^--dp-delta must be greater than 0 for gauss noise/);
  assert.is(usageError(['--clients', '3', '--client-dirs', 'a']), '--clients 3 does not match the 1 folder given');
  assert.is(usageError(['--clients', '3', '--client-dirs', 'a,b']), '--clients 3 does not match the 2 folders given');
  assert.is(usageError(['--clients', '3', '--urls', 'http://a:1']), '--clients 3 does not match the 1 URL given');
});

test('--trace FILE: the diagrams replace its extension, and FILE may not be one of them', () => {
  const files = traceFiles('/runs/v1.2/run.jsonl');
  assert.is(files.mermaid, '/runs/v1.2/run.mmd');
  assert.is(files.svg, '/runs/v1.2/run.svg');
  assert.is(files.xstate('dream'), '/runs/v1.2/run.dream.xstate.jsonl');
  assert.is(traceFiles('/runs/v1.2/run').mermaid, '/runs/v1.2/run.mmd');
  assert.is(traceFiles('/runs/.trace').svg, '/runs/.trace.svg');
  for (const file of ['run.mmd', 'out/run.svg', 'RUN.SVG']) {
    assert.match(usageError(['--trace', file]), /would overwrite it; name it e\.g\. .*\.jsonl/);
  }
  assert.is(parseOptions(['--trace', 'run.jsonl']).trace, 'run.jsonl');
  for (const text of ['run.mmd', 'run.svg', 'run.<client>.xstate.jsonl', 'must not end in .mmd or .svg']) {
    assert.ok(USAGE.includes(text), `--help mentions ${text}`);
  }
});

async function refused(argv: string[], message: RegExp): Promise<void> {
  try {
    await simulate(parseOptions(argv), quiet);
    assert.unreachable(`${argv.join(' ')} should be refused`);
  } catch (error) {
    assert.instance(error, UsageError, (error as Error).message);
    assert.match((error as Error).message, message);
  }
}

test('mistakes only the sites reveal are named before any client starts', async () => {
  await refused(['--in-process', '--clients', '400'], /--clients 400: the bundled sample has 344 data rows and every site needs at least one, so at most --clients 344/);
  await refused(['--in-process', '--faults', 'slow:nosuch:10'], /--faults slow:nosuch: there is no client 'nosuch' \(the clients are biscoe, dream, torgersen\)/);
  await refused(['--in-process', '--clients', '4', '--faults', 'slow:dream:10'], /no client 'dream' \(the clients are site-1, site-2, site-3, site-4\)/);
  // A client's id works too, when --seed makes it known in advance.
  const output = await mkdtemp(join(tmpdir(), 'fc-slow-id-'));
  const seeded = await simulate(parseOptions(['--in-process', '--seed', '5', '--output', output]), quiet);
  const id = seeded.clients[1]?.id ?? '';
  const again = await simulate(parseOptions(['--in-process', '--seed', '5', '--faults', `slow:${id}:5`, '--output', output]), quiet);
  assert.is(again.ok, true, again.failure ?? '');
});

test('a config.yml problem names the client folder, and no unnamed temporary folder is left', async () => {
  const dirs = await sitesWithTypo();
  const broken = dirs[1] ?? '';
  await writeFile(join(broken, 'config.yml'), 'fc-xstate-client: {computation: statistics, data: data.csv, colour: blue}\n');
  await refused(['--in-process', '--client-dirs', dirs.join(',')], new RegExp(`^client folder ${broken}: config\\.yml: .*colour`));

  const temp = await mkdtemp(join(tmpdir(), 'fc-cli-tmp-'));
  const cli = startCli(['--in-process', '--client-dirs', dirs.join(',')], { ...process.env, TMPDIR: temp });
  const ended = await cli.ended;
  assert.is(ended.code, 2);
  assert.match(cli.stderr().trim(), new RegExp(`^simulate: client folder ${broken}: config\\.yml: [^\\n]*$`));
  const left = (await readdir(temp)).filter((name) => name.startsWith('fc-simulation-'));
  assert.equal(left, [], 'no temporary run folder is left behind');
});

test('the summary counts in words: 1 round, 1 message', () => {
  const summary: SimulationSummary = {
    ok: true,
    failure: null,
    rounds: 1,
    clients: [
      { id: 'a', label: 'a', coordinator: true, state: 'finished', finished: true, outputDir: null },
      { id: 'b', label: 'b', coordinator: false, state: 'finished', finished: true, outputDir: null },
    ],
    result: null,
    report: null,
    messages: 1,
    bytes: 1,
    durationMs: 10,
    outputDir: null,
    trace: null,
  };
  const text = formatSummary(summary, parseOptions([]));
  assert.match(text, /Federation finished: 2 clients, 1 round, 1 message, 1 byte, 0\.01 s/);
  assert.match(formatSummary({ ...summary, rounds: 2, messages: 4, bytes: 30 }, parseOptions([])), /2 rounds, 4 messages, 30 bytes/);
});

test.run();
