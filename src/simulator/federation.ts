/**
 * The sites of a simulated federation: each one's input folder (laid out like the platform's
 * testbed lays them out), its output folder and log, and a running client for it, as a child
 * process, inside this process, or already running elsewhere.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { access, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { APP_NAME, loadConfig } from '../data/config.ts';
import type { DpOptions } from '../protocol/types.ts';
import { createLogger } from '../log.ts';
import { startClient } from '../server.ts';
import { combine, inspectorClient, traceToFile } from '../visual/inspect.ts';
import { plural, SimulationInterrupted, UsageError, type SimulationOptions } from './options.ts';

export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SAMPLE_DIR = join(PROJECT_ROOT, 'sample');

export interface Site {
  readonly label: string;
  readonly inputDir: string;
  readonly outputDir: string;
  readonly logFile: string;
}

export interface RunningSite {
  readonly label: string;
  /** Base URL of the API. */
  readonly api: string;
  readonly outputDir: string | null;
  readonly logFile: string | null;
  stop(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function sampleSites(): Promise<string[]> {
  const entries = await readdir(SAMPLE_DIR, { withFileTypes: true });
  const folders = entries.filter((entry) => entry.isDirectory()).map((entry) => join(SAMPLE_DIR, entry.name));
  // A site is a folder with its config.yml; sample/configs/ holds generic folders, not a site.
  const sites: string[] = [];
  for (const folder of folders) if (await exists(join(folder, 'config.yml'))) sites.push(folder);
  return sites.sort();
}

interface Sample {
  /** The sample's own site folders. */
  readonly sites: readonly string[];
  readonly config: string;
  readonly dataName: string;
  readonly header: string;
  /** Every data row of every site (the sample's CSV has no quoted line breaks, so lines are rows). */
  readonly rows: readonly string[];
}

async function readSample(): Promise<Sample> {
  const sites = await sampleSites();
  const first = sites[0];
  if (first === undefined) throw new UsageError(`the bundled sample in ${SAMPLE_DIR} is missing`);
  const config = await readFile(join(first, 'config.yml'), 'utf8');
  const dataName = (await loadConfig(first)).dataName;
  let header = '';
  const rows: string[] = [];
  for (const site of sites) {
    const lines = (await readFile(join(site, dataName), 'utf8')).split(/\r?\n/).filter((line) => line !== '');
    header = lines[0] ?? header;
    rows.push(...lines.slice(1));
  }
  return { sites, config, dataName, header, rows };
}

/** The sample's own split for as many sites as it has; otherwise its rows dealt out to N sites. */
function splitsSample(sample: Sample, count: number): boolean {
  return count !== sample.sites.length;
}

/**
 * The bundled sample for N sites: its own split by island for 3, otherwise all rows dealt out
 * round-robin into N files.
 */
async function writeSampleSplit(sample: Sample, count: number, root: string): Promise<string[]> {
  if (!splitsSample(sample, count)) return [...sample.sites];
  const dirs: string[] = [];
  for (let index = 0; index < count; index++) {
    const dir = join(root, 'sample-split', `site-${index + 1}`);
    await mkdir(dir, { recursive: true });
    const mine = sample.rows.filter((_, row) => row % count === index);
    await writeFile(join(dir, sample.dataName), `${sample.header}\n${mine.join('\n')}\n`);
    await writeFile(join(dir, 'config.yml'), sample.config);
    dirs.push(dir);
  }
  return dirs;
}

/**
 * The sites' labels, known before anything is written: the folders' names, the sample's sites
 * (`site-1`... when it is split), or the URLs. Checks that a split sample gives every site a row.
 */
export async function plannedLabels(options: SimulationOptions): Promise<string[]> {
  if (options.urls !== null) return [...options.urls];
  if (options.clientDirs !== null) return uniqueLabels(options.clientDirs);
  const sample = await readSample();
  if (!splitsSample(sample, options.clients)) return uniqueLabels(sample.sites);
  if (options.clients > sample.rows.length) {
    throw new UsageError(
      `--clients ${options.clients}: the bundled sample has ${plural(sample.rows.length, 'data row')} and every site ` +
        `needs at least one, so at most --clients ${sample.rows.length}`,
    );
  }
  return Array.from({ length: options.clients }, (_, index) => `site-${index + 1}`);
}

/** Writes the simulator's privacy options into a client's config.yml, keeping the rest. */
async function applyPrivacy(inputDir: string, smpc: boolean, dp: Partial<DpOptions> | null): Promise<void> {
  if (!smpc && dp === null) return;
  const file = join(inputDir, 'config.yml');
  const document = parseDocument(await readFile(file, 'utf8'));
  // A config.yml that is not YAML is left as it is: reading it names the problem.
  if (document.errors.length > 0) return;
  if (smpc) document.setIn([APP_NAME, 'smpc'], true);
  if (dp !== null) document.setIn([APP_NAME, 'dp'], Object.keys(dp).length === 0 ? true : dp);
  await writeFile(file, document.toString());
}

function uniqueLabels(dirs: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return dirs.map((dir) => {
    const name = basename(resolve(dir)) || 'site';
    const count = (seen.get(name) ?? 0) + 1;
    seen.set(name, count);
    return count === 1 ? name : `${name}-${count}`;
  });
}

/**
 * Lays out every site's input, output and log under the run's output folder. A mistake found
 * here leaves no unnamed temporary folder behind.
 */
export async function prepareSites(options: SimulationOptions): Promise<{ root: string; sites: Site[] }> {
  for (const dir of options.clientDirs ?? []) {
    if (!(await exists(dir))) throw new UsageError(`client folder ${dir} does not exist`);
  }
  if (options.genericDir !== null && !(await exists(options.genericDir))) {
    throw new UsageError(`generic folder ${options.genericDir} does not exist`);
  }
  const sample = options.clientDirs === null ? await readSample() : null;

  const temporary = options.output === null;
  const root = temporary ? await mkdtemp(join(tmpdir(), 'fc-simulation-')) : resolve(options.output ?? '.');
  try {
    await mkdir(root, { recursive: true });
    const sources = options.clientDirs ?? (sample === null ? [] : await writeSampleSplit(sample, options.clients, root));
    return { root, sites: await layOutSites(options, sources, root) };
  } catch (error) {
    if (temporary) await rm(root, { recursive: true, force: true });
    throw error;
  }
}

async function layOutSites(options: SimulationOptions, sources: readonly string[], root: string): Promise<Site[]> {
  const labels = uniqueLabels(sources);
  const sites: Site[] = [];
  for (const [index, source] of sources.entries()) {
    const label = labels[index] ?? `site-${index + 1}`;
    const site = {
      label,
      inputDir: join(root, label, 'input'),
      outputDir: join(root, label, 'output'),
      logFile: join(root, label, 'client.log'),
    };
    await mkdir(site.outputDir, { recursive: true });
    await cp(resolve(source), site.inputDir, { recursive: true });
    if (options.genericDir !== null) await cp(resolve(options.genericDir), site.inputDir, { recursive: true });
    if (!(await exists(join(site.inputDir, 'config.yml')))) {
      throw new UsageError(`client folder ${source} has no config.yml (nor does the generic folder)`);
    }
    // A folder the client would reject at its first step is better named now, before any run.
    let config;
    try {
      await applyPrivacy(site.inputDir, options.smpc, options.dp);
      config = await loadConfig(site.inputDir);
    } catch (error) {
      if (error instanceof Error && error.name === 'InputError') throw new UsageError(`client folder ${source}: ${error.message}`);
      throw error;
    }
    if (!(await exists(config.dataFile))) {
      throw new UsageError(`client folder ${source} has no data file '${config.dataName}' (named in config.yml)`);
    }
    sites.push(site);
  }
  return sites;
}

/** Who watches the clients' machines: an inspector relay, a trace file per client. */
export interface SiteWatch {
  /** The Stately inspector relay (`ws://...`) every client reports to, or null. */
  readonly inspectUrl: string | null;
  /** Where a client writes its XState inspection events, or null. */
  traceFile(site: Site): string | null;
}

export const UNWATCHED: SiteWatch = { inspectUrl: null, traceFile: () => null };

async function startInProcess(site: Site, watch: SiteWatch): Promise<RunningSite> {
  const log = createWriteStream(site.logFile, { flags: 'a' });
  const logger = createLogger('info', (line) => log.write(`${line}\n`), { site: site.label });
  const trace = watch.traceFile(site);
  const watching = combine([
    ...(watch.inspectUrl === null ? [] : [await inspectorClient(watch.inspectUrl, site.label)]),
    ...(trace === null ? [] : [traceToFile(trace)]),
  ]);
  const running = await startClient({
    host: '127.0.0.1',
    port: 0,
    inputDir: site.inputDir,
    outputDir: site.outputDir,
    bodyLimit: 1024 ** 3,
    logger,
    name: site.label,
    ...(watching === null ? {} : { inspect: watching.inspect }),
  });
  return {
    label: site.label,
    api: `${running.url}/api`,
    outputDir: site.outputDir,
    logFile: site.logFile,
    stop: async () => {
      await running.close();
      await watching?.close();
      await new Promise<void>((done) => log.end(done));
    },
  };
}

const CHILD_START_TIMEOUT_MS = 30_000;
/** A child that has not ended this long after SIGTERM is killed. */
const CHILD_STOP_TIMEOUT_MS = 5_000;

/**
 * Starts `src/main.ts` in a child process on a free loopback port and waits until it listens.
 * The child's stdin is a pipe nobody writes to: it closes when this process ends, however it
 * ends (even SIGKILL), and the child then stops (FC_EXIT_WITH_STDIN).
 */
async function startChild(site: Site, watch: SiteWatch, signal?: AbortSignal): Promise<RunningSite> {
  if (signal?.aborted === true) throw SimulationInterrupted.from(signal);
  const log = createWriteStream(site.logFile, { flags: 'a' });
  const trace = watch.traceFile(site);
  const args = ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'main.ts'), ...(trace === null ? [] : ['--trace', trace])];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      // Inherited platform ports would make every child claim the same one.
      API_PORT: '',
      WEB_PORT: '',
      INPUT_DIR: site.inputDir,
      OUTPUT_DIR: site.outputDir,
      LOG_LEVEL: 'info',
      INSPECT_NAME: site.label,
      FC_EXIT_WITH_STDIN: '1',
      ...(watch.inspectUrl === null ? {} : { INSPECT_URL: watch.inspectUrl }),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // Never written to; a child that is gone must not make it an unhandled error.
  child.stdin?.on('error', () => {});
  child.stdout?.pipe(log, { end: false });
  // 'close' comes after the child's output has been read to its end, so the log is complete.
  const closed = new Promise<void>((done) => child.once('close', () => done()));
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (running()) {
      child.kill('SIGTERM');
      const stubborn = setTimeout(() => {
        if (running()) child.kill('SIGKILL');
      }, CHILD_STOP_TIMEOUT_MS);
      await closed;
      clearTimeout(stubborn);
    } else {
      await closed;
    }
    await new Promise<void>((done) => log.end(done));
  };

  let onAbort = () => {};
  const url = await new Promise<string>((resolveUrl, reject) => {
    let buffered = '';
    let tail: string[] = [];
    const timer = setTimeout(() => {
      reject(new UsageError(`client ${site.label} did not start within ${CHILD_START_TIMEOUT_MS / 1000} s; see ${site.logFile}`));
    }, CHILD_START_TIMEOUT_MS);
    onAbort = () => {
      clearTimeout(timer);
      if (signal !== undefined) reject(SimulationInterrupted.from(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stderr?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      tail = [...tail, ...lines].slice(-5);
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as { msg?: unknown; url?: unknown };
          if (entry.msg === 'listening' && typeof entry.url === 'string') {
            clearTimeout(timer);
            resolveUrl(entry.url);
          }
        } catch {
          // Not a log line of ours (e.g. a Node warning): it stays in the log file.
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new UsageError(`client ${site.label} exited with code ${code} before it listened: ${tail.join(' | ')}`));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new UsageError(`client ${site.label} could not be started: ${error.message}`));
    });
  }).catch(async (error: unknown) => {
    // Not started (too slow, failed, or the run was interrupted meanwhile): it must not linger.
    await stop();
    throw error;
  }).finally(() => signal?.removeEventListener('abort', onAbort));

  return {
    label: site.label,
    api: `${url}/api`,
    outputDir: site.outputDir,
    logFile: site.logFile,
    stop,
  };
}

/** Finds where a running client serves the API: under /api (port 5000) or at the root (port 9000). */
async function locateApi(url: string): Promise<string> {
  const base = url.replace(/\/+$/, '');
  let lastError = 'no answer';
  for (const candidate of [`${base}/api`, base]) {
    try {
      const response = await fetch(`${candidate}/status`, { signal: AbortSignal.timeout(5000) });
      await response.arrayBuffer();
      if (response.ok && (response.headers.get('content-type') ?? '').includes('json')) return candidate;
      lastError = `GET ${candidate}/status answered HTTP ${response.status}`;
    } catch (error) {
      lastError = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    }
  }
  throw new UsageError(`${url} does not answer as a FeatureCloud client (${lastError})`);
}

/**
 * Starts a client for every site (or finds the running ones of --urls). When one fails to start,
 * or `signal` aborts meanwhile, the others are stopped and the promise rejects.
 */
export async function startSites(
  options: SimulationOptions,
  sites: readonly Site[],
  watch: SiteWatch = UNWATCHED,
  signal?: AbortSignal,
): Promise<RunningSite[]> {
  if (options.urls !== null) {
    return Promise.all(
      options.urls.map(async (url) => ({
        label: url,
        api: await locateApi(url),
        outputDir: null,
        logFile: null,
        stop: async () => {},
      })),
    );
  }
  const start = options.mode === 'in-process' ? startInProcess : startChild;
  const started = await Promise.allSettled(sites.map((site) => start(site, watch, signal)));
  const running = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed !== undefined || signal?.aborted === true) {
    await Promise.all(running.map((site) => site.stop()));
    throw signal?.aborted === true ? SimulationInterrupted.from(signal) : failed?.reason;
  }
  return running;
}
