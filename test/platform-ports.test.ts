/**
 * The platform's layout: besides the spec's `/api` and `/web` on its main port, one client serves
 * the API at the root of a second port (the controller's `:9000/status`) and the status string at
 * the root of a third (`:9001/`), as the platform's images do. All three talk to the same machine.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/log.ts';
import { STATUS_KEYS, type Status } from '../src/protocol/types.ts';
import { startClient, type RunningClient } from '../src/server.ts';
import { readSettings, SettingsError } from '../src/settings.ts';

const SITE = fileURLToPath(new URL('../sample/biscoe', import.meta.url));
const participant = { id: 'b', coordinator: false, clients: ['a', 'b'] };

const started: RunningClient[] = [];
const outputs: string[] = [];

async function start(ports: { apiPort?: number; webPort?: number; port?: number } = { apiPort: 0, webPort: 0 }) {
  const outputDir = await mkdtemp(join(tmpdir(), 'fc-platform-ports-'));
  outputs.push(outputDir);
  const running = await startClient({
    host: '127.0.0.1',
    port: 0,
    ...ports,
    inputDir: SITE,
    outputDir,
    bodyLimit: 1024 * 1024,
    logger: silentLogger,
  });
  started.push(running);
  return running;
}

function required(url: string | null, what: string): string {
  if (url === null) throw new Error(`${what} is not served`);
  return url;
}

async function status(url: string): Promise<Status> {
  const response = await fetch(url);
  assert.is(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  return (await response.json()) as Status;
}

async function text(url: string): Promise<string> {
  const response = await fetch(url);
  assert.is(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  return response.text();
}

function postSetup(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function waitFor<T>(probe: () => Promise<T | null>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function occupy(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

test.after.each(async () => {
  await Promise.all(started.splice(0).map((running) => running.close()));
  await Promise.all(outputs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

test('the API answers at the root of its port, the status string at / of its own', async () => {
  const running = await start();
  const api = required(running.apiUrl, 'the API port');
  const web = required(running.webUrl, 'the web port');
  const rootStatus = await status(`${api}/status`);
  assert.equal(Object.keys(rootStatus).sort(), [...STATUS_KEYS].sort());
  assert.equal(rootStatus, await status(`${running.url}/api/status`));
  assert.is(await text(`${web}/`), 'State: initial');
  assert.is(await text(`${running.url}/web`), 'State: initial');
});

test('each port serves only its own layout', async () => {
  const running = await start();
  const api = required(running.apiUrl, 'the API port');
  const web = required(running.webUrl, 'the web port');
  for (const url of [`${api}/api/status`, `${api}/web`, `${api}/`, `${web}/status`, `${web}/web`, `${web}/api/status`, `${running.url}/status`, `${running.url}/`]) {
    const response = await fetch(url);
    await response.arrayBuffer();
    assert.is(response.status, 404, url);
  }
});

test('a setup on the API port is the same client on every port', async () => {
  const running = await start();
  const api = required(running.apiUrl, 'the API port');
  const web = required(running.webUrl, 'the web port');

  assert.is((await postSetup(`${api}/setup`, participant)).status, 200);
  assert.is(running.client.snapshot().context.setup?.id, 'b');
  assert.match(await text(`${web}/`), /\(participant b, round 1\)$/);
  assert.match(await text(`${running.url}/web`), /\(participant b, round 1\)$/);
  // The main port knows the setup: the same payload is a retry, another one a conflict.
  assert.is((await postSetup(`${running.url}/api/setup`, participant)).status, 200);
  assert.is((await postSetup(`${running.url}/api/setup`, { ...participant, id: 'a' })).status, 409);

  // The participant's contribution, announced on one port, is fetched through the other.
  const ready = await waitFor(async () => {
    const current = await status(`${running.url}/api/status`);
    return current.available === true ? current : null;
  }, 'the contribution');
  assert.equal(await status(`${api}/status`), ready);
  const data = await fetch(`${api}/data`);
  assert.is(data.status, 200);
  assert.ok((await data.arrayBuffer()).byteLength > 0);
  assert.is(running.client.snapshot().context.outbox.length, 0);
  assert.is((await status(`${running.url}/api/status`)).available, false);
});

test('a retried GET /data is recognised on any port: it gets the same item, not the next', async () => {
  const running = await start();
  const api = required(running.apiUrl, 'the API port');
  assert.is((await postSetup(`${api}/setup`, participant)).status, 200);
  await waitFor(async () => ((await status(`${api}/status`)).available ? true : null), 'the contribution');
  const first = new Uint8Array(await (await fetch(`${api}/data`)).arrayBuffer());
  // The response was lost; the controller fetches again, through the other port.
  const again = new Uint8Array(await (await fetch(`${running.url}/api/data`)).arrayBuffer());
  assert.ok(first.byteLength > 0);
  assert.equal(again, first);
  assert.is(running.client.snapshot().context.outbox.length, 0);
  // A status read ends the retry window: the next fetch finds the (empty) outbox.
  await status(`${running.url}/api/status`);
  assert.is((await (await fetch(`${api}/data`)).arrayBuffer()).byteLength, 0);
});

test('without the platform ports only the spec layout is served, as the simulator needs', async () => {
  const running = await start({});
  assert.is(running.apiUrl, null);
  assert.is(running.webUrl, null);
  assert.is((await status(`${running.url}/api/status`)).state, null);
});

test('a taken platform port fails the start and releases the ports already opened', async () => {
  const taken = await occupy();
  try {
    const mainPort = await freePort();
    const { port: busy } = taken.address() as AddressInfo;
    const outputDir = await mkdtemp(join(tmpdir(), 'fc-platform-ports-'));
    outputs.push(outputDir);
    const options = { host: '127.0.0.1', port: mainPort, apiPort: 0, webPort: busy, inputDir: SITE, outputDir, bodyLimit: 1024, logger: silentLogger };
    try {
      await startClient(options);
      assert.unreachable('the start should fail');
    } catch (error) {
      assert.is((error as NodeJS.ErrnoException).code, 'EADDRINUSE');
    }
    // The main port was opened before the failure; it is free again.
    started.push(await startClient({ ...options, webPort: null }));
  } finally {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
  }
});

test('API_PORT and WEB_PORT: unset or empty serve nothing, set serve that port', () => {
  const unset = readSettings({});
  assert.is(unset.port, 5000);
  assert.is(unset.apiPort, null);
  assert.is(unset.webPort, null);
  const empty = readSettings({ API_PORT: '', WEB_PORT: ' ' });
  assert.is(empty.apiPort, null);
  assert.is(empty.webPort, null);
  const platform = readSettings({ API_PORT: '9000', WEB_PORT: '9001' });
  assert.is(platform.apiPort, 9000);
  assert.is(platform.webPort, 9001);
  const anyFree = readSettings({ PORT: '0', API_PORT: '0', WEB_PORT: '0' });
  assert.equal([anyFree.port, anyFree.apiPort, anyFree.webPort], [0, 0, 0]);
});

test('API_PORT and WEB_PORT: a bad or clashing port stops the start, naming the variable', () => {
  assert.throws(() => readSettings({ API_PORT: 'ninety' }), (error: unknown) => error instanceof SettingsError && /API_PORT/.test(error.message));
  assert.throws(() => readSettings({ WEB_PORT: '65536' }), (error: unknown) => error instanceof SettingsError && /WEB_PORT/.test(error.message));
  assert.throws(
    () => readSettings({ API_PORT: '9000', WEB_PORT: '9000' }),
    (error: unknown) => error instanceof SettingsError && error.message.includes('WEB_PORT: port 9000 is already used by API_PORT'),
  );
  assert.throws(
    () => readSettings({ API_PORT: '5000' }),
    (error: unknown) => error instanceof SettingsError && error.message.includes('API_PORT: port 5000 is already used by PORT'),
  );
});

test.run();
