import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readTable } from '../src/data/csv.ts';
import { parseOptions, UsageError } from '../src/simulator/options.ts';
import { PROJECT_ROOT, SAMPLE_DIR } from '../src/simulator/federation.ts';
import { simulate, type SimulationSummary } from '../src/simulator/simulate.ts';

const COLUMNS = ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g'] as const;
const SITES = ['biscoe', 'dream', 'torgersen'] as const;
const quiet = { out: { write: () => true } };

interface ColumnStats {
  column: string;
  count: number;
  missing: number;
  mean: number;
  variance: number;
  sd: number;
  min: number | null;
  max: number | null;
}

/** The statistics of all sample rows in one place, computed plainly: what federation must match. */
async function pooledStatistics(): Promise<Map<string, ColumnStats>> {
  const tables = await Promise.all(SITES.map((site) => readTable(join(SAMPLE_DIR, site, 'data.csv'))));
  const pooled = new Map<string, ColumnStats>();
  for (const column of COLUMNS) {
    const cells = tables.flatMap((table) => table.numeric(column));
    const values = cells.filter((value): value is number => value !== null);
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
    const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1);
    pooled.set(column, {
      column,
      count: values.length,
      missing: cells.length - values.length,
      mean,
      variance,
      sd: Math.sqrt(variance),
      min: Math.min(...values),
      max: Math.max(...values),
    });
  }
  return pooled;
}

function columnsOf(summary: SimulationSummary): ColumnStats[] {
  const result = summary.result as { columns?: ColumnStats[] } | null;
  assert.ok(result?.columns, `the summary has a statistics result: ${JSON.stringify(summary.result)}`);
  return result.columns;
}

function assertClose(actual: number | null, expected: number, tolerance: number, what: string) {
  assert.ok(actual !== null, `${what} is null`);
  const error = Math.abs(actual - expected) / Math.max(1, Math.abs(expected));
  assert.ok(error <= tolerance, `${what}: ${actual} vs pooled ${expected} (relative error ${error})`);
}

async function run(argv: string[]): Promise<SimulationSummary> {
  const output = await mkdtemp(join(tmpdir(), 'fc-sim-test-'));
  return simulate(parseOptions([...argv, '--output', output]), quiet);
}

/** Copies the sample sites into a temp folder, letting a test edit one site's files. */
async function sampleCopy(): Promise<{ root: string; dirs: string[] }> {
  const root = await mkdtemp(join(tmpdir(), 'fc-sites-'));
  const dirs: string[] = [];
  for (const site of SITES) {
    await cp(join(SAMPLE_DIR, site), join(root, site), { recursive: true });
    dirs.push(join(root, site));
  }
  return { root, dirs };
}

/** A fake client on loopback, for clients that break the protocol or never move. */
async function fakeClient(handler: (path: string, method: string) => { status: number; type: string; body: string }): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const answer = handler(request.url ?? '/', request.method ?? 'GET');
      response.writeHead(answer.status, { 'content-type': answer.type });
      response.end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

const IDLE_STATUS = JSON.stringify({
  available: false, finished: false, message: 'thinking', progress: 0, state: 'running',
  destination: null, smpc: null, dp: null, memo: null,
});

test('in-process federation of the sample equals the pooled statistics', async () => {
  const pooled = await pooledStatistics();
  const summary = await run(['--in-process']);
  assert.is(summary.ok, true, summary.failure ?? '');
  assert.is(summary.rounds, 2);
  assert.is(summary.clients.length, 3);
  assert.ok(summary.clients.every((client) => client.finished));
  assert.is(summary.clients.filter((client) => client.coordinator).length, 1);
  for (const column of columnsOf(summary)) {
    const expected = pooled.get(column.column);
    assert.ok(expected, column.column);
    assert.is(column.count, expected.count);
    assert.is(column.missing, expected.missing);
    assertClose(column.mean, expected.mean, 1e-12, `${column.column} mean`);
    assertClose(column.variance, expected.variance, 1e-12, `${column.column} variance`);
    assert.is(column.min, expected.min);
    assert.is(column.max, expected.max);
  }
});

test('every site writes the same result to its own output folder', async () => {
  const summary = await run(['--in-process']);
  const results = await Promise.all(
    summary.clients.map(async (client) => {
      assert.ok(client.outputDir);
      const json = JSON.parse(await readFile(join(client.outputDir, 'result.json'), 'utf8')) as { result: unknown };
      const report = await readFile(join(client.outputDir, 'report.md'), 'utf8');
      assert.match(report, 'body_mass_g');
      return JSON.stringify(json.result);
    }),
  );
  assert.is(new Set(results).size, 1);
});

test('with SMPC the numbers equal the plain run to within 1e-8, and min/max are withheld', async () => {
  const pooled = await pooledStatistics();
  const summary = await run(['--in-process', '--smpc']);
  assert.is(summary.ok, true, summary.failure ?? '');
  for (const column of columnsOf(summary)) {
    const expected = pooled.get(column.column);
    assert.ok(expected);
    assert.is(column.count, expected.count);
    assertClose(column.mean, expected.mean, 1e-8, `${column.column} mean`);
    assertClose(column.variance, expected.variance, 1e-8, `${column.column} variance`);
    assert.is(column.min, null);
  }
});

test('with DP the numbers are noisy, near the truth, and reproducible with a seed', async () => {
  const pooled = await pooledStatistics();
  const dp = ['--in-process', '--dp', '--dp-epsilon', '1', '--dp-sensitivity', '1'];
  const first = await run([...dp, '--seed', '42']);
  const again = await run([...dp, '--seed', '42']);
  const other = await run([...dp, '--seed', '43']);
  assert.is(first.ok, true, first.failure ?? '');
  assert.equal(first.result, again.result);
  assert.not.equal(first.result, other.result);
  for (const column of columnsOf(first)) {
    const expected = pooled.get(column.column);
    assert.ok(expected);
    assert.is.not(column.count, expected.count);
    // Three Laplace(b = 1) draws per count: beyond 30 is a (far) less than one-in-a-million event.
    assert.ok(Math.abs(column.count - expected.count) < 30, `${column.column} count ${column.count}`);
  }
});

test('a trace holds every relay as a JSON line and a Mermaid sequence diagram beside it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fc-trace-'));
  const file = join(dir, 'run.jsonl');
  const summary = await run(['--in-process', '--trace', file]);
  assert.is(summary.trace, join(dir, 'run.mmd'));
  const lines = (await readFile(file, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { memo: string; from: string; to: string[]; bytes: number });
  const memos = lines.map((line) => line.memo);
  assert.ok(memos.includes('r1.local') && memos.includes('r2.final') && memos.includes('done'), memos.join(','));
  assert.ok(lines.every((line) => line.bytes > 0 && line.to.length > 0));
  const diagram = await readFile(join(dir, 'run.mmd'), 'utf8');
  assert.match(diagram, /^sequenceDiagram/);
  assert.match(diagram, /->>.*r2\.final/);
});

test('--clients N splits the sample into N sites and still equals the pooled statistics', async () => {
  const pooled = await pooledStatistics();
  const summary = await run(['--in-process', '--clients', '5']);
  assert.is(summary.ok, true, summary.failure ?? '');
  assert.is(summary.clients.length, 5);
  for (const column of columnsOf(summary)) {
    const expected = pooled.get(column.column);
    assert.ok(expected);
    assert.is(column.count, expected.count);
    assertClose(column.mean, expected.mean, 1e-12, `${column.column} mean`);
  }
});

test('--client-dirs and --generic-dir lay out inputs like the testbed', async () => {
  const { root, dirs } = await sampleCopy();
  const generic = join(root, 'generic');
  await cp(join(SAMPLE_DIR, 'biscoe', 'config.yml'), join(generic, 'config.yml'));
  for (const dir of dirs) await rm(join(dir, 'config.yml'));
  const summary = await run(['--in-process', '--client-dirs', dirs.join(','), '--generic-dir', generic]);
  assert.is(summary.ok, true, summary.failure ?? '');
  assert.equal(summary.clients.map((client) => client.label), [...SITES]);
});

test('a client in error ends the run at once, naming the client and what failed', async () => {
  const { dirs } = await sampleCopy();
  const config = join(dirs[1] ?? '', 'config.yml');
  await writeFile(config, (await readFile(config, 'utf8')).replace('body_mass_g]', 'body_mass]'));
  const summary = await run(['--in-process', '--client-dirs', dirs.join(',')]);
  assert.is(summary.ok, false);
  assert.match(summary.failure ?? '', /dream/);
  assert.match(summary.failure ?? '', /body_mass/);
});

test('a run where nothing moves ends after --timeout with who waits for what', async () => {
  const stuck = await fakeClient((path) =>
    path.endsWith('/status')
      ? { status: 200, type: 'application/json', body: IDLE_STATUS }
      : { status: 200, type: 'application/json', body: '{}' },
  );
  const other = await fakeClient((path) =>
    path.endsWith('/status')
      ? { status: 200, type: 'application/json', body: IDLE_STATUS }
      : { status: 200, type: 'application/json', body: '{}' },
  );
  try {
    const started = Date.now();
    const summary = await simulate(parseOptions(['--urls', `${stuck.url},${other.url}`, '--timeout', '0.5']), quiet);
    assert.is(summary.ok, false);
    assert.match(summary.failure ?? '', /no progress for 0.5 s/);
    assert.match(summary.failure ?? '', /thinking/);
    assert.ok(Date.now() - started < 5000, 'the stall is detected within a bound');
  } finally {
    await stuck.close();
    await other.close();
  }
});

test('a client whose status is not JSON breaks the protocol: the run says so', async () => {
  const html = await fakeClient((path) =>
    path.endsWith('/api/status') || path.endsWith('/status')
      ? { status: 200, type: path.startsWith('/api') ? 'application/json' : 'text/html', body: '"frozen status string"' }
      : { status: 200, type: 'text/html', body: '' },
  );
  const ok = await fakeClient((path) =>
    path.endsWith('/status') ? { status: 200, type: 'application/json', body: IDLE_STATUS } : { status: 200, type: 'application/json', body: '{}' },
  );
  try {
    const summary = await simulate(parseOptions(['--urls', `${html.url},${ok.url}`, '--timeout', '5']), quiet);
    assert.is(summary.ok, false);
    assert.match(summary.failure ?? '', /status/);
  } finally {
    await html.close();
    await ok.close();
  }
});

test('a client that says data is available but returns none breaks the protocol', async () => {
  const liar = await fakeClient((path) =>
    path.endsWith('/status')
      ? { status: 200, type: 'application/json', body: JSON.stringify({ ...JSON.parse(IDLE_STATUS), available: true, memo: 'r1.local' }) }
      : { status: 200, type: 'application/octet-stream', body: '' },
  );
  const ok = await fakeClient((path) =>
    path.endsWith('/status') ? { status: 200, type: 'application/json', body: IDLE_STATUS } : { status: 200, type: 'application/json', body: '{}' },
  );
  try {
    const summary = await simulate(parseOptions(['--urls', `${liar.url},${ok.url}`, '--timeout', '5']), quiet);
    assert.is(summary.ok, false);
    assert.match(summary.failure ?? '', /GET \/data returned nothing/);
  } finally {
    await liar.close();
    await ok.close();
  }
});

test('a URL that does not answer is named', async () => {
  const gone = await fakeClient(() => ({ status: 200, type: 'text/plain', body: '' }));
  const url = gone.url;
  await gone.close();
  try {
    await simulate(parseOptions(['--urls', `${url},${url}`]), quiet);
    assert.unreachable('the run should not start');
  } catch (error) {
    assert.instance(error, UsageError);
    assert.match((error as Error).message, url);
  }
});

test('bad command lines are one-line errors', () => {
  const cases: [string[], RegExp][] = [
    [['--bogus'], /Unknown option '--bogus'/],
    [['--clients', '1'], /at least 2 clients/],
    [['--clients', 'three'], /--clients must be a whole number/],
    [['--query-interval', '0'], /--query-interval must be a positive number/],
    [['--timeout', 'soon'], /--timeout must be a positive number/],
    [['--client-dirs', 'a,,b'], /empty entry/],
    [['--urls', 'localhost:5000,localhost:5001'], /not an http\(s\) URL/],
    [['--urls', 'http://127.0.0.1:1,http://127.0.0.1:2', '--smpc'], /--smpc cannot be used with --urls/],
    [['--dp-epsilon', '1'], /--dp-epsilon needs --dp/],
    [['--dp', '--dp-noise', 'cauchy'], /laplace or gauss/],
  ];
  for (const [argv, message] of cases) {
    try {
      parseOptions(argv);
      assert.unreachable(argv.join(' '));
    } catch (error) {
      assert.instance(error, UsageError, argv.join(' '));
      assert.match((error as Error).message, message);
      assert.not.match((error as Error).message, /\n/);
    }
  }
});

test('missing folders, configs and data are named before any client starts', async () => {
  const { root, dirs } = await sampleCopy();
  const missing = join(root, 'nowhere');
  await assert_rejects(run(['--in-process', '--client-dirs', `${dirs[0]},${missing}`]), /nowhere does not exist/);
  await rm(join(dirs[1] ?? '', 'config.yml'));
  await assert_rejects(run(['--in-process', '--client-dirs', dirs.join(',')]), /has no config.yml/);
  const { dirs: more } = await sampleCopy();
  await rm(join(more[2] ?? '', 'data.csv'));
  await assert_rejects(run(['--in-process', '--client-dirs', more.join(',')]), /has no data file 'data.csv'/);
});

async function assert_rejects(promise: Promise<unknown>, message: RegExp) {
  try {
    await promise;
    assert.unreachable(`expected a rejection matching ${message}`);
  } catch (error) {
    assert.match((error as Error).message, message);
  }
}

test('the command line runs child-process clients and prints a JSON summary for scripts', async () => {
  const output = await mkdtemp(join(tmpdir(), 'fc-cli-'));
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'simulator', 'cli.ts'), '--json', '--output', output],
    { cwd: PROJECT_ROOT, timeout: 60_000 },
  );
  const summary = JSON.parse(stdout) as Record<string, unknown> & { clients: Record<string, unknown>[] };
  for (const key of ['ok', 'rounds', 'clients', 'result', 'messages', 'bytes', 'durationMs']) {
    assert.ok(key in summary, `the summary has ${key}`);
  }
  assert.is(summary.ok, true);
  assert.is(summary.clients.length, 3);
  for (const client of summary.clients) {
    for (const key of ['id', 'coordinator', 'state', 'finished', 'outputDir']) assert.ok(key in client, key);
    assert.match(String(client.id), /^[0-9a-f]{16}$/);
  }
});

test('the command line exits non-zero with one line on a bad option', async () => {
  try {
    await promisify(execFile)(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'simulator', 'cli.ts'), '--clients', '1'], {
      cwd: PROJECT_ROOT,
      timeout: 30_000,
    });
    assert.unreachable('it should fail');
  } catch (error) {
    const failure = error as { code?: number; stderr?: string };
    assert.is(failure.code, 2);
    assert.is(failure.stderr?.trim(), 'simulate: a federation needs at least 2 clients, not 1');
  }
});

test.run();
