/**
 * The container test's controller side (run.sh starts the containers, this drives them): waits
 * until every container answers, checks the platform's ports, runs a whole federation over them
 * with `npm run simulate -- --urls`, and compares what each container wrote to its mounted output
 * folder with the result of the same federation simulated in-process.
 *
 *   tsx test/container/drive.ts --work DIR NAME=API_PORT,WEB_PORT,OUTPUT_DIR ...
 *
 * Sites are given in the order of the in-process run (the first is the coordinator in both).
 * Every request goes to 127.0.0.1. Exit code 0 when all checks pass; otherwise one line per
 * failed check on stderr and exit code 1.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const RELATIVE_TOLERANCE = 1e-12;
const OUTPUT_FILES = ['result.json', 'report.md', 'result.csv'] as const;

interface Site {
  readonly name: string;
  readonly api: string;
  readonly web: string;
  readonly outputDir: string;
}

class CheckFailed extends Error {
  override readonly name = 'CheckFailed';
}

function parseSite(text: string): Site {
  const match = /^([\w.-]+)=(\d+),(\d+),(.+)$/.exec(text);
  if (match === null || match[1] === undefined || match[4] === undefined) {
    throw new CheckFailed(`a site is NAME=API_PORT,WEB_PORT,OUTPUT_DIR, not '${text}'`);
  }
  return {
    name: match[1],
    api: `http://127.0.0.1:${match[2]}`,
    web: `http://127.0.0.1:${match[3]}`,
    outputDir: resolve(match[4]),
  };
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

async function get(url: string): Promise<{ status: number; type: string; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, type: response.headers.get('content-type') ?? '', body: await response.text() };
}

/** A container's process needs a moment after `podman run` before it listens. */
async function waitUntilReady(site: Site): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const answer = await get(`${site.api}/status`);
      if (answer.status === 200 && answer.type.startsWith('application/json')) return;
      last = `HTTP ${answer.status}`;
    } catch (error) {
      last = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    }
    await sleep(250);
  }
  throw new CheckFailed(`${site.name}: ${site.api}/status did not answer within ${READY_TIMEOUT_MS / 1000} s (${last})`);
}

async function expectWeb(site: Site, pattern: RegExp): Promise<void> {
  const answer = await get(`${site.web}/`);
  if (answer.status !== 200 || !answer.type.startsWith('text/plain') || !pattern.test(answer.body)) {
    throw new CheckFailed(
      `${site.name}: ${site.web}/ answered HTTP ${answer.status} (${answer.type}) '${answer.body.slice(0, 80)}', expected ${pattern}`,
    );
  }
}

/** `npm run simulate -- ARGS --json`: its parsed summary, or the reason it failed. */
function simulate(args: readonly string[]): Promise<Record<string, unknown>> {
  return new Promise((done, fail) => {
    const child = spawn('npm', ['run', '--silent', 'simulate', '--', ...args, '--json'], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', fail);
    child.once('close', (code) => {
      const reason = `npm run simulate -- ${args.join(' ')} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      if (code !== 0) return fail(new CheckFailed(reason));
      try {
        const summary = JSON.parse(stdout) as unknown;
        if (typeof summary !== 'object' || summary === null || Array.isArray(summary)) throw new Error('not an object');
        done(summary as Record<string, unknown>);
      } catch (error) {
        fail(new CheckFailed(`${reason}; its output is not a JSON summary (${String(error)})`));
      }
    });
  });
}

/** Where two results differ, numbers compared to a relative tolerance; empty when they agree. */
function differences(actual: unknown, expected: unknown, path = 'result'): string[] {
  if (typeof actual === 'number' && typeof expected === 'number') {
    const scale = Math.max(Math.abs(actual), Math.abs(expected));
    return actual === expected || Math.abs(actual - expected) <= RELATIVE_TOLERANCE * scale
      ? []
      : [`${path}: ${actual} != ${expected}`];
  }
  if (Array.isArray(actual) && Array.isArray(expected)) {
    if (actual.length !== expected.length) return [`${path}: ${actual.length} items != ${expected.length}`];
    return actual.flatMap((item: unknown, index) => differences(item, expected[index], `${path}[${index}]`));
  }
  if (isRecord(actual) && isRecord(expected)) {
    const keys = [...new Set([...Object.keys(actual), ...Object.keys(expected)])].sort();
    return keys.flatMap((key) =>
      key in actual && key in expected
        ? differences(actual[key], expected[key], `${path}.${key}`)
        : [`${path}.${key}: only in the ${key in actual ? 'container' : 'in-process'} result`],
    );
  }
  return Object.is(actual, expected) ? [] : [`${path}: ${JSON.stringify(actual)} != ${JSON.stringify(expected)}`];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readResultFile(site: Site): Promise<Record<string, unknown>> {
  for (const file of OUTPUT_FILES) {
    await readFile(join(site.outputDir, file)).catch(() => {
      throw new CheckFailed(`${site.name}: the container wrote no ${file} to its mounted output ${site.outputDir}`);
    });
  }
  const parsed = JSON.parse(await readFile(join(site.outputDir, 'result.json'), 'utf8')) as unknown;
  if (!isRecord(parsed)) throw new CheckFailed(`${site.name}: result.json is not a JSON object`);
  return parsed;
}

async function main(argv: readonly string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: [...argv], options: { work: { type: 'string' } }, allowPositionals: true });
  if (values.work === undefined || positionals.length === 0) {
    throw new CheckFailed('usage: drive.ts --work DIR NAME=API_PORT,WEB_PORT,OUTPUT_DIR ...');
  }
  const sites = positionals.map(parseSite);
  const step = (text: string) => process.stdout.write(`   ${text}\n`);

  const reference = await simulate(['--in-process', '--output', join(values.work, 'in-process')]);
  if (reference['ok'] !== true || !isRecord(reference['result'])) {
    throw new CheckFailed(`the in-process simulation failed: ${String(reference['failure'])}`);
  }
  step('in-process reference run: finished');

  await Promise.all(sites.map(waitUntilReady));
  await Promise.all(sites.map((site) => expectWeb(site, /^State: initial\b/)));
  step(`${sites.length} containers answer on :9000/status and :9001/ (State: initial)`);

  const run = await simulate(['--urls', sites.map((site) => site.api).join(','), '--timeout', '60']);
  if (run['ok'] !== true) throw new CheckFailed(`the federation over the containers failed: ${String(run['failure'])}`);
  step(`federation over the containers: finished in ${String(run['rounds'])} rounds, ${String(run['messages'])} messages`);

  await Promise.all(sites.map((site) => expectWeb(site, /^State: finished\b/)));
  const problems: string[] = [];
  let coordinators = 0;
  for (const site of sites) {
    const written = await readResultFile(site);
    if (written['coordinator'] === true) coordinators++;
    if (written['clients'] !== sites.length) problems.push(`${site.name}: result.json counts ${String(written['clients'])} clients`);
    problems.push(...differences(written['result'], reference['result']).map((line) => `${site.name}: ${line}`));
  }
  if (coordinators !== 1) problems.push(`${coordinators} containers wrote a coordinator's result, expected 1`);
  if (problems.length > 0) throw new CheckFailed(`the containers' results differ from the in-process run:\n${problems.join('\n')}`);
  step(`every container wrote result.json, report.md and result.csv; results equal the in-process run's (to ${RELATIVE_TOLERANCE})`);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof CheckFailed ? error.message : error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
