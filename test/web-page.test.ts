/**
 * GET /web: the plain status string for tools, and for a browser a live page with the machine
 * diagram. The page is opened in real headless Chromium (Debian's, at /usr/bin/chromium) while a
 * two-site federation runs in this process; the coordinator's actors wait on gates, so the test
 * can hold it in a state, see that state highlighted, let it go on and see the highlight move.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { mkdtemp, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { fromPromise } from 'xstate';
import type {
  AggregateInput,
  AggregateOutput,
  LocalComputeInput,
  LocalComputeOutput,
  WriteResultsInput,
} from '../machines/client.machine.ts';
import { createClient, type Client, type ClientActors } from '../src/client.ts';
import { createApp, type Layout } from '../src/http/app.ts';
import { silentLogger } from '../src/log.ts';
import { runFederation, type RunReport } from '../src/simulator/controller.ts';
import type { WebView } from '../src/visual/web-view.ts';

const CHROMIUM = '/usr/bin/chromium';

// ---------------------------------------------------------------------------------------------
// Fixture sites: each contributes its position in `clients` (1, 2, ...); the sum is final.
// ---------------------------------------------------------------------------------------------

interface Gate {
  readonly opened: Promise<void>;
  open(): void;
}

function gate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

const OPEN: Gate = { opened: Promise.resolve(), open: () => {} };
const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const decode = (bytes: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(bytes));

function fixtureActors(gates: { computeLocal?: Gate; aggregate?: Gate } = {}): ClientActors {
  return {
    computeLocal: fromPromise<LocalComputeOutput, LocalComputeInput>(async ({ input }) => {
      await (gates.computeLocal ?? OPEN).opened;
      const position = input.setup.clients.findIndex((id) => String(id) === String(input.setup.id)) + 1;
      return { payload: encode(position), privacy: { smpc: null, dp: null }, expectedRounds: 1 };
    }),
    aggregate: fromPromise<AggregateOutput, AggregateInput>(async ({ input }) => {
      await (gates.aggregate ?? OPEN).opened;
      const sum = input.contributions.reduce((total, bytes) => total + Number(decode(bytes)), 0);
      return { payload: encode(sum), final: true };
    }),
    writeResults: fromPromise<void, WriteResultsInput>(async () => {}),
  };
}

interface Site {
  readonly client: Client;
  readonly url: string;
  close(): Promise<void>;
}

async function startSite(actors: ClientActors, layout?: Layout): Promise<Site> {
  const client = createClient(actors, silentLogger);
  const app = createApp(client, { bodyLimit: 1024 * 1024, logger: silentLogger }, layout);
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    client,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        client.stop();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------------

async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Debian's chromium is not installed (${CHROMIUM} is missing). .ci/run installs it; by hand: ` +
        'apt-get update && apt-get install -y chromium. This test needs a real browser and does not skip.',
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}

/** The ids of the diagram elements the page marks, as `state:<path>`. */
async function marked(page: Page, mark: 'current' | 'active'): Promise<string[]> {
  const elements = await page.locator(`#diagram .${mark}`).all();
  const ids = await Promise.all(elements.map((element) => element.getAttribute('id')));
  return ids.map((id) => id ?? '').sort();
}

async function waitForCurrent(page: Page, id: string): Promise<void> {
  try {
    await page.locator(`#diagram [id="${id}"].current`).waitFor({ state: 'attached', timeout: 10_000 });
  } catch {
    assert.unreachable(`the page never highlighted ${id}; it shows ${(await marked(page, 'current')).join(', ')}`);
  }
}

const text = async (page: Page, field: string): Promise<string> =>
  ((await page.textContent(`[data-field="${field}"]`)) ?? '').trim();

// ---------------------------------------------------------------------------------------------
// Content negotiation and the JSON, without a browser
// ---------------------------------------------------------------------------------------------

test('tools get the plain status string; a browser asking for HTML gets the page', async () => {
  const site = await startSite(fixtureActors());
  try {
    for (const accept of [null, '*/*', 'text/plain', 'application/json']) {
      const response = await fetch(`${site.url}/web`, accept === null ? {} : { headers: { accept } });
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/, `Accept: ${accept}`);
      assert.is(await response.text(), 'State: initial');
    }
    const browserAccept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
    const page = await fetch(`${site.url}/web`, { headers: { accept: browserAccept } });
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('vary') ?? '', /Accept/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await page.text();
    assert.match(html, /<svg[^>]*>/);
    assert.match(html, /id="state:awaiting&#45;aggregate\.collecting"/);
    assert.not.match(html, /(src|href)="https?:/, 'no external assets');
  } finally {
    await site.close();
  }
});

test('state.json is the view model of the snapshot', async () => {
  const computing = gate();
  const site = await startSite(fixtureActors({ computeLocal: computing }));
  try {
    site.client.send({ type: 'fc.setup', setup: { id: 'a', coordinator: true, clients: ['a', 'b'], coordinatorId: 'a' } });
    const response = await fetch(`${site.url}/web/state.json`);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const view = (await response.json()) as WebView;
    assert.equal(view, {
      state: 'local-compute',
      active: ['local-compute'],
      description: site.client.snapshot().machine.getStateNodeById('client.local-compute').description ?? null,
      run: 'running',
      finished: false,
      role: 'coordinator',
      id: 'a',
      clients: 2,
      round: 1,
      progress: 0,
      message: 'computing locally (round 1)',
      inbox: 0,
      outbox: 0,
      next: null,
    });
  } finally {
    computing.open();
    await site.close();
  }
});

test("on the platform's web port the page is the root and polls /state.json", async () => {
  const site = await startSite(fixtureActors(), { api: null, web: '/' });
  try {
    const plain = await fetch(`${site.url}/`);
    assert.is(await plain.text(), 'State: initial');
    const page = await fetch(`${site.url}/`, { headers: { accept: 'text/html' } });
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const view = (await (await fetch(`${site.url}/state.json`)).json()) as WebView;
    assert.is(view.state, 'initial');
    assert.is(view.role, null);
  } finally {
    await site.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The page in Chromium during a run
// ---------------------------------------------------------------------------------------------

test('in Chromium the page follows the coordinator through a run, highlighting its state', async () => {
  const computing = gate();
  const aggregating = gate();
  const coordinator = await startSite(fixtureActors({ computeLocal: computing, aggregate: aggregating }));
  const participant = await startSite(fixtureActors());
  const browser = await launchChromium();
  const folder = await mkdtemp(join(tmpdir(), 'fc-web-page-'));
  let run: Promise<RunReport> | null = null;
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const problems: string[] = [];
    const foreign: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    page.on('request', (request) => {
      if (!request.url().startsWith(coordinator.url) && !request.url().startsWith('data:')) foreign.push(request.url());
    });

    run = runFederation(
      [
        { id: 'a', label: 'coordinator', api: `${coordinator.url}/api`, coordinator: true },
        { id: 'b', label: 'participant', api: `${participant.url}/api`, coordinator: false },
      ],
      { queryIntervalMs: 20, timeoutMs: 20_000, seed: null },
    );

    // Held in local-compute by its gate, with the participant's contribution already kept.
    await page.goto(`${coordinator.url}/web`);
    await waitForCurrent(page, 'state:local-compute');
    await page.locator('[data-field="inbox"]', { hasText: /^1$/ }).waitFor({ timeout: 10_000 });
    assert.is(await text(page, 'role'), 'coordinator');
    assert.is(await text(page, 'id'), 'a');
    assert.is(await text(page, 'round'), '1');
    assert.is(await text(page, 'message'), 'computing locally (round 1)');
    assert.is(await text(page, 'run'), 'running');
    assert.equal(await marked(page, 'active'), ['state:local-compute']);
    await page.screenshot({ path: join(folder, 'local-compute.png'), fullPage: true, animations: 'disabled' });

    // Let it compute: it collects, then aggregates, a state inside awaiting-aggregate.
    computing.open();
    await waitForCurrent(page, 'state:awaiting-aggregate.aggregating');
    assert.equal(await marked(page, 'active'), ['state:awaiting-aggregate', 'state:awaiting-aggregate.aggregating']);
    assert.is(await text(page, 'message'), 'aggregating (round 1)');
    assert.is(await text(page, 'state'), 'awaiting-aggregate.aggregating');
    await page.screenshot({ path: join(folder, 'aggregating.png'), fullPage: true, animations: 'disabled' });

    // Let it finish: the highlight ends on `finished`.
    aggregating.open();
    await waitForCurrent(page, 'state:finished');
    assert.is(await text(page, 'run'), 'finished');
    assert.is(await text(page, 'progress'), '100%');
    assert.is(await text(page, 'message'), 'finished');
    assert.is(await text(page, 'outbox'), '0');
    const screenshot = join(folder, 'finished.png');
    await page.screenshot({ path: screenshot, fullPage: true, animations: 'disabled' });
    assert.ok((await stat(screenshot)).size > 10_000, 'the screenshot holds a picture');

    const report = await run;
    assert.ok(report.ok, report.failure ?? '');
    assert.equal(problems, [], 'no script errors and no CSP violations');
    assert.equal(foreign, [], 'the page loads nothing from elsewhere');
  } finally {
    computing.open();
    aggregating.open();
    await run?.catch(() => undefined);
    await browser.close();
    await Promise.all([coordinator.close(), participant.close()]);
  }
});

test.run();
