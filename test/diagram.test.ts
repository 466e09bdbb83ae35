/**
 * The machine's diagrams are generated from its definition, so they cannot drift from it: the
 * committed files must equal what `npm run diagrams` gives for the machine as it is now.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { and, createMachine, not, or, setup, type AnyStateNode } from 'xstate';
import { clientMachine } from '../machines/client.machine.ts';
import {
  guardExpression,
  guardText,
  machineGraph,
  toDot,
  toMermaid,
  transitionLabel,
  type DiagramTransition,
  type MachineGraph,
} from '../src/visual/diagram.ts';
import { diagramFiles, README_MARKERS, renderSvg, withReadmeDiagram } from '../src/visual/render.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const graph = machineGraph(clientMachine);

const rolesOf = (path: string): readonly string[] | undefined =>
  graph.states.find((state) => state.path === path)?.roles;

const edges = (from: string, to: string): DiagramTransition[] =>
  graph.transitions.filter((transition) => transition.source === from && transition.target === to);

test('the committed diagrams are what the machine generates (else run `npm run diagrams`)', async () => {
  for (const [path, expected] of await diagramFiles()) {
    const committed = await readFile(join(ROOT, path), 'utf8').catch(() => null);
    assert.ok(committed !== null, `${path} is missing: run \`npm run diagrams\``);
    // Not assert.is: a diff of a whole SVG says less than the file's name.
    assert.ok(committed === expected, `${path} differs from the machine: run \`npm run diagrams\` and commit it`);
  }
});

test('the README shows the generated diagram between its markers (else run `npm run diagrams`)', async () => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  assert.ok(readme.includes(README_MARKERS.start) && readme.includes(README_MARKERS.end), 'README.md lost its diagram markers');
  // The README shows exactly the generated .mmd file, as `npm run diagrams` puts it there.
  const mermaid = (await diagramFiles()).get('diagrams/client-machine.mmd');
  assert.ok(mermaid !== undefined);
  assert.ok(withReadmeDiagram(readme, mermaid) === readme, 'README.md shows an old diagram: run `npm run diagrams`');

  const { start, end } = README_MARKERS;
  const stale = `# Title\n\n${start}\n\n\`\`\`mermaid\nold\n\`\`\`\n\n${end}\n\nMore.\n`;
  assert.is(withReadmeDiagram(stale, 'new\n'), `# Title\n\n${start}\n\n\`\`\`mermaid\nnew\n\`\`\`\n\n${end}\n\nMore.\n`);
  assert.is(withReadmeDiagram('# No markers\n', 'new\n'), '# No markers\n');
});

test('generation is deterministic: the same bytes twice', async () => {
  const again = machineGraph(clientMachine);
  assert.is(toMermaid(again), toMermaid(graph));
  assert.is(toDot(again), toDot(graph));
  assert.is(await renderSvg(toDot(again)), await renderSvg(toDot(graph)));
});

test('every state of the machine is drawn, with an SVG id the /web page can find', async () => {
  const svg = await renderSvg(toDot(graph));
  const mermaid = toMermaid(graph);
  const below = (node: AnyStateNode): string[] =>
    Object.values(node.states).flatMap((child) => [child.path.join('.'), ...below(child)]);
  const paths = below(clientMachine.root);
  assert.equal(
    graph.states.map((state) => state.path),
    paths,
  );
  for (const path of paths) {
    assert.ok(svg.includes(`id="state:${path.replace(/-/g, '&#45;')}"`), `the SVG has an element for ${path}`);
    assert.ok(mermaid.includes(`state "${path.split('.').at(-1)}" as`), `the Mermaid text names ${path}`);
  }
});

test('roles: which states only the coordinator or only a participant reaches', () => {
  assert.equal(rolesOf('awaiting-aggregate.aggregating'), ['coordinator']);
  assert.equal(rolesOf('broadcast'), ['coordinator']);
  assert.equal(rolesOf('finalizing.confirming'), ['coordinator']);
  assert.equal(rolesOf('finalizing.confirming-to-coordinator'), ['participant']);
  for (const shared of ['initial', 'local-compute', 'awaiting-aggregate.collecting', 'finalizing.writing', 'finished', 'error']) {
    assert.equal(rolesOf(shared), ['coordinator', 'participant'], shared);
  }
});

test('transitions read event [guard] / actions, with the role that takes them', () => {
  const [aggregate] = edges('awaiting-aggregate.collecting', 'awaiting-aggregate.aggregating');
  assert.is(aggregate && transitionLabel(aggregate), 'always [isCoordinator and hasAllContributions]');
  assert.equal(aggregate?.roles, ['coordinator']);

  const [nextRound] = edges('awaiting-aggregate.collecting', 'local-compute');
  assert.match(nextRound ? transitionLabel(nextRound) : '', /^always \[not isCoordinator and hasGlobalResult\] \/ acceptGlobal/);
  assert.equal(nextRound?.roles, ['participant']);

  // An unguarded transition after a guarded one is its `else`: here, every participant.
  const [confirm] = edges('finalizing.writing', 'finalizing.confirming-to-coordinator');
  assert.is(confirm && transitionLabel(confirm), 'done.writeResults [else] / queueConfirmation');
  assert.equal(confirm?.roles, ['participant']);

  const [setUp] = edges('initial', 'local-compute');
  assert.is(setUp && transitionLabel(setUp), 'fc.setup / acceptSetup');
  assert.equal(setUp?.roles, ['coordinator', 'participant']);
});

test('the relay events are handled without leaving the state, and say so', () => {
  const computing = graph.states.find((state) => state.path === 'local-compute');
  assert.equal(computing?.internal, [
    { event: 'fc.data.received', actions: ['storeMessage'] },
    { event: 'fc.data.fetched', actions: ['dequeue'] },
  ]);
  assert.equal(computing?.invoke, ['computeLocal']);
});

test('guards: names, objects and xstate combinators', () => {
  assert.is(guardText(guardExpression('isFinal')), 'isFinal');
  assert.is(guardText(guardExpression({ type: 'isFinal', params: { x: 1 } })), 'isFinal');
  assert.is(guardText(guardExpression(and(['a', not('b')]))), 'a and not b');
  assert.is(guardText(guardExpression(not(and(['a', 'b'])))), 'not (a and b)');
  assert.is(guardText(guardExpression(or(['a', and(['b', 'c'])]))), 'a or (b and c)');
});

test('a small machine: delays, parents, final states and roles by isCoordinator', async () => {
  const machine = setup({
    guards: { isCoordinator: () => true, ready: () => true },
    actions: { reply: () => {} },
    delays: { patience: 100 },
  }).createMachine({
    id: 'small',
    initial: 'waiting',
    states: {
      waiting: {
        after: { 500: 'late', patience: 'late' },
        on: { go: [{ guard: 'isCoordinator', target: 'leading' }, { target: 'following' }] },
      },
      leading: { always: { guard: 'ready', target: 'done' } },
      following: { on: { ping: { actions: 'reply' } }, always: 'done' },
      late: { type: 'final' },
      done: { type: 'final' },
    },
  });
  const small: MachineGraph = machineGraph(machine);
  assert.equal(
    small.transitions.map((transition) => [transition.source, transition.target, transitionLabel(transition), transition.roles]),
    [
      ['waiting', 'leading', 'go [isCoordinator]', ['coordinator']],
      ['waiting', 'following', 'go [else]', ['participant']],
      ['waiting', 'late', 'after 500 ms', ['coordinator', 'participant']],
      ['waiting', 'late', 'after patience', ['coordinator', 'participant']],
      ['leading', 'done', 'always [ready]', ['coordinator']],
      ['following', 'done', 'always', ['participant']],
    ],
  );
  assert.equal(small.states.find((state) => state.path === 'waiting')?.entry, [], 'the delay timers are xstate’s, not ours');
  assert.equal(small.states.find((state) => state.path === 'following')?.internal, [{ event: 'ping', actions: ['reply'] }]);
  assert.match(await renderSvg(toDot(small)), /<svg/);
  assert.match(toMermaid(small), /late --> \[\*\]/);
  // A machine without `setup` works the same.
  assert.equal(machineGraph(createMachine({ id: 'one', initial: 'only', states: { only: {} } })).states.length, 1);
});

test.run();
