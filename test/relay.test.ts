import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ClientId, DpOptions, SmpcOptions, Status } from '../src/protocol/types.ts';
import { route } from '../src/simulator/relay.ts';

const smpc: SmpcOptions = { operation: 'add', serialization: 'json', shards: 0, exponent: 8 };
const dp: DpOptions = { serialization: 'json', noisetype: 'laplace', epsilon: 1, delta: 0 };

function status(fields: Partial<Pick<Status, 'destination' | 'smpc' | 'dp'>> = {}): Status {
  return {
    available: true,
    finished: false,
    message: null,
    progress: null,
    state: 'running',
    destination: null,
    smpc: null,
    dp: null,
    memo: 'r1.local',
    ...fields,
  };
}

const clients: readonly ClientId[] = ['a', 'b', 'c'];

test('coordinator without destination broadcasts to every other client', () => {
  assert.equal(route('a', status(), clients, 'a'), { kind: 'broadcast', to: ['b', 'c'], dp: null });
});

test('a broadcast from a lone coordinator reaches nobody', () => {
  assert.equal(route('a', status(), ['a'], 'a'), { kind: 'broadcast', to: [], dp: null });
});

test('participant without destination sends to the coordinator', () => {
  assert.equal(route('c', status(), clients, 'a'), { kind: 'to-coordinator', to: ['a'], dp: null });
});

test('a destination is point to point, participant to participant too', () => {
  assert.equal(route('b', status({ destination: 'c' }), clients, 'a'), { kind: 'point', to: ['c'], dp: null });
  assert.equal(route('a', status({ destination: 'b' }), clients, 'a'), { kind: 'point', to: ['b'], dp: null });
  assert.equal(route('c', status({ destination: 'a' }), clients, 'a'), { kind: 'point', to: ['a'], dp: null });
});

test('the coordinator can send to itself (how it puts its own contribution through DP)', () => {
  assert.equal(route('a', status({ destination: 'a', dp }), clients, 'a'), { kind: 'point', to: ['a'], dp });
});

test('smpc gathers into one package for the coordinator, from participants and the coordinator', () => {
  const expected = { kind: 'smpc', to: ['a'], smpc, dp: null };
  assert.equal(route('b', status({ smpc }), clients, 'a'), expected);
  assert.equal(route('a', status({ smpc }), clients, 'a'), expected);
  assert.equal(route('c', status({ smpc, destination: 'a' }), clients, 'a'), expected);
});

test('smpc towards anyone but the coordinator is an error', () => {
  assert.throws(
    () => route('b', status({ smpc, destination: 'c' }), clients, 'a'),
    /SMPC data can only go to the coordinator "a", but client "b" set destination "c"/,
  );
});

test('dp never changes the route, it marks the payload for noise', () => {
  assert.equal(route('a', status({ dp }), clients, 'a'), { kind: 'broadcast', to: ['b', 'c'], dp });
  assert.equal(route('b', status({ dp }), clients, 'a'), { kind: 'to-coordinator', to: ['a'], dp });
  assert.equal(route('b', status({ dp, destination: 'c' }), clients, 'a'), { kind: 'point', to: ['c'], dp });
  assert.equal(route('b', status({ dp, smpc }), clients, 'a'), { kind: 'smpc', to: ['a'], smpc, dp });
});

test('ids compare by String(), and routes use the ids as the clients list has them', () => {
  const numeric: readonly ClientId[] = [1, 2, 3];
  assert.equal(route('1', status(), numeric, 1), { kind: 'broadcast', to: [2, 3], dp: null });
  assert.equal(route(2, status(), numeric, '1'), { kind: 'to-coordinator', to: [1], dp: null });
  assert.equal(route(2, status({ destination: '3' }), numeric, 1), { kind: 'point', to: [3], dp: null });
  const mixed: readonly ClientId[] = ['1', 2];
  assert.equal(route(1, status({ smpc }), mixed, 2), { kind: 'smpc', to: [2], smpc, dp: null });
});

test('an unknown destination, sender or coordinator is an error naming it', () => {
  assert.throws(() => route('a', status({ destination: 'z' }), clients, 'a'), /The destination "z" is not among the clients \("a", "b", "c"\)/);
  assert.throws(() => route(1, status({ destination: 4 }), [1, 2], 1), /The destination 4 is not among the clients/);
  assert.throws(() => route('x', status(), clients, 'a'), /The sender "x"/);
  assert.throws(() => route('a', status(), clients, 'q'), /The coordinator "q"/);
});

test.run();
