/**
 * The simulator's trace: every relay as JSON lines, the run as a sequence diagram (Mermaid and
 * SVG), each client's XState inspection events beside it; and `--inspect`, which sends every
 * client's events to an inspector relay.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { ControlledClient, RelayRecord } from '../src/simulator/controller.ts';
import { parseOptions } from '../src/simulator/options.ts';
import { simulate } from '../src/simulator/simulate.ts';
import { sequence, sequenceDiagram, traceFiles } from '../src/simulator/trace.ts';
import { sequenceSvg } from '../src/visual/sequence.ts';

const quiet = { out: { write: () => true } };
const SITES = ['biscoe', 'dream', 'torgersen'] as const;

const clients: ControlledClient[] = [
  { id: 'a1', label: 'north', api: 'http://127.0.0.1:1/api', coordinator: true },
  { id: 'b2', label: 'south', api: 'http://127.0.0.1:2/api', coordinator: false },
];

const record = (entry: Partial<RelayRecord> & Pick<RelayRecord, 'from' | 'to' | 'memo'>): RelayRecord => ({
  time: 0,
  bytes: 100,
  smpc: false,
  dp: false,
  kind: 'relay',
  ...entry,
});

const smpcRun: RelayRecord[] = [
  record({ time: 5, from: 'b2', to: ['a1'], memo: 'r1.local', smpc: true, kind: 'smpc-contribution' }),
  record({ time: 6, from: 'a1', to: ['a1'], memo: 'r1.local', smpc: true, kind: 'smpc-contribution' }),
  record({ time: 7, from: 'smpc', to: ['a1'], memo: 'r1.local', smpc: true, kind: 'smpc-aggregate' }),
  record({ time: 9, from: 'a1', to: ['b2'], memo: 'r1.global', bytes: 2048 }),
  record({ time: 12, from: 'b2', to: ['a1'], memo: 'r2.local', dp: true }),
  record({ time: 14, from: 'a1', to: ['a1'], memo: 'r2.local', dp: true }),
  record({ time: 20, from: 'b2', to: ['a1'], memo: 'done' }),
];

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

test('the sequence has a lane per client, the controllers for SMPC, and an arrow per delivery', () => {
  const { lanes, arrows } = sequence(clients, smpcRun);
  assert.equal(
    lanes.map((lane) => [lane.key, lane.title, lane.kind]),
    [
      ['c1', 'north', 'coordinator'],
      ['c2', 'south', 'participant'],
      ['smpc', 'controllers (SMPC)', 'controller'],
    ],
  );
  assert.equal(
    arrows.map((arrow) => `${arrow.from}->${arrow.to} ${arrow.label}`),
    [
      'c2->smpc r1.local, 100 B',
      'c1->smpc r1.local, 100 B',
      'smpc->c1 r1.local, 100 B, sum of shares',
      'c1->c2 r1.global, 2.0 KiB',
      'c2->c1 r2.local, 100 B, DP',
      'c1->c1 r2.local, 100 B, DP',
      'c2->c1 done, 100 B',
    ],
  );
  assert.match(sequenceDiagram(clients, smpcRun), /^sequenceDiagram\n {2}participant c1 as north \(coordinator\)\n/);
});

test('the sequence SVG draws lanes, arrows, self-messages and a separator per round, the same every time', () => {
  const { lanes, arrows } = sequence(clients, smpcRun);
  const svg = sequenceSvg(lanes, arrows);
  assert.is(sequenceSvg(lanes, arrows), svg, 'deterministic');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.is(svg.match(/class="message"/g)?.length, arrows.length, 'an arrow per delivery');
  assert.is(svg.match(/<path class="message" d="M[^"]*h34/g)?.length, 1, 'the coordinator sending to itself is a loop');
  assert.is(svg.match(/>round \d+</g)?.length, 2, 'a separator for rounds 1 and 2');
  for (const text of ['north', 'south', 'controllers (SMPC)', 'r1.global, 2.0 KiB', 'sum of shares', '+20 ms']) {
    assert.ok(svg.includes(text), `the SVG shows ${text}`);
  }
  assert.ok(svg.includes('stroke="#7c3aed"'), 'SMPC arrows have their colour');
  assert.ok(svg.includes('stroke="#d97706"'), 'DP arrows have their colour');
  const escaped = sequenceSvg([{ key: 'x', title: '<a&b>', kind: 'participant' }], []);
  assert.ok(escaped.includes('&lt;a&amp;b&gt;'), 'labels are escaped');
});

test('an in-process run with --trace writes the relays, both diagrams and every client\'s XState trace', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fc-trace-'));
  const file = join(dir, 'run.jsonl');
  const summary = await simulate(parseOptions(['--in-process', '--trace', file, '--output', join(dir, 'sites')]), quiet);
  assert.ok(summary.ok, summary.failure ?? '');
  const files = traceFiles(file);
  const relays = (await readFile(files.relays, 'utf8')).trimEnd().split('\n').map((line) => JSON.parse(line) as RelayRecord);
  assert.ok(relays.length > 0 && relays.every((relay) => relay.to.length > 0), 'every relay names its receivers');
  const svg = await readFile(files.svg, 'utf8');
  for (const site of SITES) assert.ok(svg.includes(`>${site}<`), `the SVG has a lane for ${site}`);
  assert.is(svg.match(/class="message"/g)?.length, (await readFile(files.mermaid, 'utf8')).match(/->>/g)?.length);
  for (const site of SITES) {
    const lines = (await readFile(files.xstate(site), 'utf8')).trimEnd().split('\n');
    const events = lines.map((line) => JSON.parse(line) as { type: string; actor: string | null; snapshot?: { value?: unknown; status?: string } });
    assert.ok(events.some((event) => event.type === '@xstate.event' && event.actor === site), `${site}: its events`);
    const last = events.filter((event) => event.type === '@xstate.snapshot' && event.actor === site).at(-1);
    assert.is(last?.snapshot?.value, 'finished', `${site} ends finished`);
  }
});

test('child-process clients write their XState traces too', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fc-trace-child-'));
  const file = join(dir, 'run.jsonl');
  const summary = await simulate(parseOptions(['--clients', '2', '--trace', file, '--output', join(dir, 'sites')]), quiet);
  assert.ok(summary.ok, summary.failure ?? '');
  for (const client of summary.clients) {
    const text = await readFile(traceFiles(file).xstate(client.label), 'utf8');
    assert.match(text, /"type":"@xstate\.snapshot"/);
    assert.match(text, /"value":"finished"/);
  }
});

for (const mode of ['in-process', 'child'] as const) {
  test(`--inspect sends every ${mode} client's machine to the inspector relay`, async () => {
    const port = await freePort();
    const previous = process.env['INSPECT_PORT'];
    process.env['INSPECT_PORT'] = String(port);
    const actors = new Map<string, string>();
    let receiver: WebSocket | null = null;
    const printed: string[] = [];
    try {
      const dir = await mkdtemp(join(tmpdir(), 'fc-inspect-run-'));
      const argv = ['--inspect', '--clients', '3', '--output', dir, ...(mode === 'in-process' ? ['--in-process'] : [])];
      const summary = await simulate(parseOptions(argv), {
        out: {
          write: (text: string) => {
            printed.push(text);
            // The relay is up once its address is printed: listen before the clients start.
            if (text.includes(`http://localhost:${port}`) && receiver === null) {
              receiver = new WebSocket(`ws://localhost:${port}`);
              receiver.on('message', (data: WebSocket.RawData) => {
                const event = JSON.parse(data.toString()) as { type?: string; name?: string; sessionId?: string };
                if (event.type === '@xstate.actor' && event.name !== undefined && event.sessionId !== undefined) {
                  actors.set(event.sessionId, event.name);
                }
              });
            }
            return true;
          },
        },
      });
      assert.ok(summary.ok, summary.failure ?? '');
      assert.ok(printed.some((text) => /Stately inspector: open http:\/\/localhost:\d+/.test(text)), 'the URL to open is printed');
      const names = new Set(actors.values());
      for (const site of SITES) assert.ok(names.has(site), `the relay passed on ${site}'s actor (${[...names].join(', ')})`);
      for (const [session, name] of actors) {
        if (SITES.includes(name as (typeof SITES)[number])) {
          assert.ok(session.startsWith(`${name}/`), `${name}'s machine has a session of its own (${session})`);
        }
      }
    } finally {
      (receiver as WebSocket | null)?.close();
      if (previous === undefined) delete process.env['INSPECT_PORT'];
      else process.env['INSPECT_PORT'] = previous;
    }
  });
}

test('--inspect and --urls do not go together', () => {
  assert.throws(() => parseOptions(['--urls', 'http://127.0.0.1:1,http://127.0.0.1:2', '--inspect']), /--inspect/);
});

test.run();
