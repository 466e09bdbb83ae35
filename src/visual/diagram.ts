/**
 * The client machine as a picture, drawn from the machine definition itself: a walk over
 * `machine.root` collects states, transitions, guards and invoked actors, and works out which
 * role (coordinator or participant) can take each path by evaluating `isCoordinator` both ways.
 * From that one graph come a Mermaid state diagram (code hosts render it) and Graphviz DOT (the
 * SVG). Everything here is pure and ordered by the definition, so the output is the same bytes on
 * every run and a test can compare it with the committed files.
 */
import type { AnyStateMachine } from 'xstate';

export type Role = 'coordinator' | 'participant';
export const ROLES: readonly Role[] = ['coordinator', 'participant'];

/** The guard that tells the roles apart: true for the coordinator, false for a participant. */
export const ROLE_GUARD = 'isCoordinator';

export type GuardExpression =
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'and' | 'or'; readonly of: readonly GuardExpression[] }
  | { readonly kind: 'not'; readonly of: GuardExpression };

export interface DiagramState {
  /** The dotted path below the root, e.g. `awaiting-aggregate.collecting`: the state's id here. */
  readonly path: string;
  readonly key: string;
  readonly parent: string | null;
  readonly kind: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Path of the initial child, for a compound state. */
  readonly initial: string | null;
  readonly description: string | null;
  readonly tags: readonly string[];
  /** Ids of the invoked actors. */
  readonly invoke: readonly string[];
  readonly entry: readonly string[];
  readonly exit: readonly string[];
  /** Transitions without a target: the state stays, only actions run (e.g. the relay events). */
  readonly internal: readonly { readonly event: string; readonly actions: readonly string[] }[];
  /** The roles that can be in this state. */
  readonly roles: readonly Role[];
}

export interface DiagramTransition {
  readonly index: number;
  readonly source: string;
  readonly target: string;
  /** `fc.setup`, `always`, `done.computeLocal`, `error.aggregate`, ... */
  readonly event: string;
  readonly guard: GuardExpression | null;
  /** True for a transition without a guard that follows guarded ones for the same event. */
  readonly otherwise: boolean;
  readonly actions: readonly string[];
  /** The roles that can take this transition. */
  readonly roles: readonly Role[];
}

export interface MachineGraph {
  readonly id: string;
  readonly description: string | null;
  /** Path of the root's initial state. */
  readonly initial: string;
  /** Every state below the root, parents before children, in definition order. */
  readonly states: readonly DiagramState[];
  readonly transitions: readonly DiagramTransition[];
}

// ---------------------------------------------------------------------------------------------
// Reading the definition
// ---------------------------------------------------------------------------------------------

/** The parts of xstate's StateNode that the walk reads. */
interface StateNodeView {
  readonly key: string;
  readonly path: readonly string[];
  readonly type: DiagramState['kind'];
  readonly description?: string | undefined;
  readonly states: Readonly<Record<string, StateNodeView>>;
  readonly transitions: ReadonlyMap<string, readonly TransitionView[]>;
  readonly always?: readonly TransitionView[] | undefined;
  readonly invoke: readonly { readonly id: string }[];
  readonly entry: readonly unknown[];
  readonly exit: readonly unknown[];
  readonly tags: readonly string[];
  readonly initial: { readonly target: readonly StateNodeView[] };
}

interface TransitionView {
  readonly target: readonly StateNodeView[] | undefined;
  readonly actions: readonly unknown[];
  readonly guard?: unknown;
}

const pathOf = (node: StateNodeView): string => node.path.join('.');

function nameOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && 'type' in value && typeof value.type === 'string') {
    return value.type;
  }
  if (typeof value === 'function' && value.name !== '') return value.name;
  return 'inline';
}

/** The timer xstate adds to a state's entry and exit for each `after` transition. */
function isDelayTimer(action: unknown): boolean {
  if (typeof action !== 'function') return false;
  const id = 'id' in action ? action.id : 'sendId' in action ? action.sendId : undefined;
  return typeof id === 'string' && id.startsWith('xstate.after.');
}

const actionNames = (actions: readonly unknown[]): string[] =>
  actions.filter((action) => !isDelayTimer(action)).map(nameOf);

/** Named guards, objects `{ type }`, and xstate's `and([...])`, `or([...])`, `not(...)`. */
export function guardExpression(guard: unknown): GuardExpression {
  if (typeof guard === 'function' && 'guards' in guard && Array.isArray(guard.guards)) {
    const parts = (guard.guards as unknown[]).map(guardExpression);
    if (guard.name === 'not' && parts[0] !== undefined) return { kind: 'not', of: parts[0] };
    if (guard.name === 'and' || guard.name === 'or') return { kind: guard.name, of: parts };
  }
  return { kind: 'name', name: nameOf(guard) };
}

export function guardText(guard: GuardExpression, nested = false): string {
  switch (guard.kind) {
    case 'name':
      return guard.name;
    case 'not':
      return `not ${guardText(guard.of, true)}`;
    case 'and':
    case 'or': {
      const text = guard.of.map((part) => guardText(part, true)).join(` ${guard.kind} `);
      return nested ? `(${text})` : text;
    }
  }
}

/** `xstate.done.actor.computeLocal` reads as `done.computeLocal`; eventless ones as `always`. */
export function eventLabel(type: string): string {
  const invoked = /^xstate\.(done|error)\.actor\.(.+)$/.exec(type);
  if (invoked !== null) return `${invoked[1]}.${invoked[2]}`;
  const delayed = /^xstate\.after\.([^.]+)\./.exec(type);
  if (delayed?.[1] !== undefined) return /^\d+$/.test(delayed[1]) ? `after ${delayed[1]} ms` : `after ${delayed[1]}`;
  return type === '' ? 'always' : type;
}

/** Three-valued: what a guard says for a role, or null when it depends on more than the role. */
function evaluate(guard: GuardExpression, role: Role): boolean | null {
  switch (guard.kind) {
    case 'name':
      return guard.name === ROLE_GUARD ? role === 'coordinator' : null;
    case 'not': {
      const value = evaluate(guard.of, role);
      return value === null ? null : !value;
    }
    case 'and': {
      const values = guard.of.map((part) => evaluate(part, role));
      if (values.includes(false)) return false;
      return values.every((value) => value === true) ? true : null;
    }
    case 'or': {
      const values = guard.of.map((part) => evaluate(part, role));
      if (values.includes(true)) return true;
      return values.every((value) => value === false) ? false : null;
    }
  }
}

interface Candidate {
  readonly index: number;
  readonly source: string;
  readonly targets: readonly string[];
  readonly guard: GuardExpression | null;
}

/** Transition groups per state: each group is one event's transitions, tried in order. */
function groupsOf(node: StateNodeView): { event: string; transitions: readonly TransitionView[] }[] {
  const groups = [...node.transitions].map(([event, transitions]) => ({ event, transitions }));
  if (node.always !== undefined) groups.push({ event: '', transitions: node.always });
  return groups;
}

export function machineGraph(machine: AnyStateMachine): MachineGraph {
  const root: StateNodeView = machine.root;
  const nodes = new Map<string, StateNodeView>();
  const visit = (node: StateNodeView) => {
    for (const child of Object.values(node.states)) {
      nodes.set(pathOf(child), child);
      visit(child);
    }
  };
  visit(root);

  const transitions: Omit<DiagramTransition, 'roles'>[] = [];
  const internal = new Map<string, { event: string; actions: string[] }[]>();
  const groups = new Map<string, Candidate[][]>();
  const walkTransitions = (node: StateNodeView) => {
    const source = pathOf(node);
    const own: Candidate[][] = [];
    for (const { event, transitions: list } of groupsOf(node)) {
      const group: Candidate[] = [];
      let guardedBefore = false;
      for (const transition of list) {
        const guard = transition.guard === undefined ? null : guardExpression(transition.guard);
        const actions = actionNames(transition.actions);
        const targets = (transition.target ?? []).map(pathOf);
        if (targets.length === 0) {
          const entries = internal.get(source) ?? [];
          entries.push({ event: eventLabel(event), actions });
          internal.set(source, entries);
          group.push({ index: -1, source, targets, guard });
        } else {
          for (const target of targets) {
            const index = transitions.length;
            transitions.push({
              index,
              source,
              target,
              event: eventLabel(event),
              guard,
              otherwise: guard === null && guardedBefore,
              actions,
            });
            group.push({ index, source, targets: [target], guard });
          }
        }
        guardedBefore ||= guard !== null;
      }
      own.push(group);
    }
    groups.set(source, own);
    for (const child of Object.values(node.states)) walkTransitions(child);
  };
  // The root's own transitions (none in the client machine) would have no box to start from.
  for (const child of Object.values(root.states)) walkTransitions(child);

  const reach = (role: Role) => {
    const states = new Set<string>();
    const taken = new Set<number>();
    const pending: string[] = [];
    const enter = (path: string) => {
      const parts = path.split('.');
      for (let depth = 1; depth <= parts.length; depth++) {
        const ancestor = parts.slice(0, depth).join('.');
        if (!states.has(ancestor)) {
          states.add(ancestor);
          pending.push(ancestor);
        }
      }
      const node = nodes.get(path);
      if (node?.type === 'parallel') for (const region of Object.values(node.states)) enter(pathOf(region));
      const initial = node?.type === 'compound' ? node.initial.target[0] : undefined;
      if (initial !== undefined) enter(pathOf(initial));
    };
    const first = root.initial.target[0];
    if (first !== undefined) enter(pathOf(first));
    for (let path = pending.shift(); path !== undefined; path = pending.shift()) {
      for (const group of groups.get(path) ?? []) {
        for (const candidate of group) {
          const value = candidate.guard === null ? true : evaluate(candidate.guard, role);
          if (value === false) continue;
          if (candidate.index >= 0) taken.add(candidate.index);
          for (const target of candidate.targets) enter(target);
          // A transition certain to be taken hides the ones after it for this role.
          if (value === true) break;
        }
      }
    }
    return { states, taken };
  };
  const reached = new Map(ROLES.map((role) => [role, reach(role)] as const));
  const rolesWhere = (test: (found: ReturnType<typeof reach>) => boolean): Role[] =>
    ROLES.filter((role) => {
      const found = reached.get(role);
      return found !== undefined && test(found);
    });

  const states: DiagramState[] = [...nodes].map(([path, node]) => {
    const initial = node.type === 'compound' ? node.initial.target[0] : undefined;
    return {
      path,
      key: node.key,
      parent: node.path.length > 1 ? node.path.slice(0, -1).join('.') : null,
      kind: node.type,
      initial: initial === undefined ? null : pathOf(initial),
      description: node.description ?? null,
      tags: [...node.tags],
      invoke: node.invoke.map((invocation) => invocation.id),
      entry: actionNames(node.entry),
      exit: actionNames(node.exit),
      internal: internal.get(path) ?? [],
      roles: rolesWhere((found) => found.states.has(path)),
    };
  });
  const first = root.initial.target[0];
  return {
    id: machine.id,
    description: root.description ?? null,
    initial: first === undefined ? '' : pathOf(first),
    states,
    transitions: transitions.map((transition) => ({
      ...transition,
      roles: rolesWhere((found) => found.taken.has(transition.index)),
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// Labels shared by both formats
// ---------------------------------------------------------------------------------------------

/** `event [guard] / actions`, the statechart convention. */
export function transitionLabel(transition: DiagramTransition): string {
  const guard =
    transition.guard !== null ? ` [${guardText(transition.guard)}]` : transition.otherwise ? ' [else]' : '';
  const actions = transition.actions.length === 0 ? '' : ` / ${transition.actions.join(', ')}`;
  return `${transition.event}${guard}${actions}`;
}

/** The one role that alone takes a path or is in a state; null when both do (or neither). */
export function onlyRole(roles: readonly Role[]): Role | null {
  return roles.length === 1 ? (roles[0] ?? null) : null;
}

function stateDetails(state: DiagramState): string[] {
  return [
    ...state.invoke.map((id) => `invoke ${id}`),
    ...state.entry.map((name) => `entry / ${name}`),
    ...state.exit.map((name) => `exit / ${name}`),
  ];
}

/** The relay events are handled the same way in many states; one line says so. */
function internalSummary(state: DiagramState): string | null {
  if (state.internal.length === 0) return null;
  return state.internal.map(({ event, actions }) => `${event} / ${actions.join(', ')}`).join(', ');
}

// ---------------------------------------------------------------------------------------------
// Mermaid
// ---------------------------------------------------------------------------------------------

function mermaidId(path: string): string {
  return path.replace(/\./g, '__').replace(/[^A-Za-z0-9_]/g, '_');
}

/** Mermaid reads `;`, `#` and `:` specially inside labels; the machine's names never need them. */
function mermaidText(text: string): string {
  return text.replace(/[;#:]/g, ',');
}

export function toMermaid(graph: MachineGraph): string {
  const lines = ['stateDiagram-v2', '  direction TB'];
  const byParent = new Map<string | null, DiagramState[]>();
  for (const state of graph.states) {
    const siblings = byParent.get(state.parent) ?? [];
    siblings.push(state);
    byParent.set(state.parent, siblings);
  }
  const parentOf = new Map(graph.states.map((state) => [state.path, state.parent]));
  // An edge goes into the innermost composite that holds both ends, so Mermaid draws it there.
  const commonParent = (a: string, b: string): string | null => {
    const ancestors = (path: string) => {
      const chain: string[] = [];
      for (let at = parentOf.get(path) ?? null; at !== null; at = parentOf.get(at) ?? null) chain.push(at);
      return chain;
    };
    const ofB = new Set(ancestors(b));
    return ancestors(a).find((ancestor) => ofB.has(ancestor)) ?? null;
  };
  const edgesIn = new Map<string | null, DiagramTransition[]>();
  for (const transition of graph.transitions) {
    const scope = commonParent(transition.source, transition.target);
    const list = edgesIn.get(scope) ?? [];
    list.push(transition);
    edgesIn.set(scope, list);
  }

  const emit = (parent: string | null, indent: string) => {
    const children = byParent.get(parent) ?? [];
    const initial = parent === null ? graph.initial : graph.states.find((state) => state.path === parent)?.initial;
    if (initial !== undefined && initial !== null && initial !== '') lines.push(`${indent}[*] --> ${mermaidId(initial)}`);
    for (const state of children) {
      const id = mermaidId(state.path);
      if (state.kind === 'compound' || state.kind === 'parallel') {
        lines.push(`${indent}state "${state.key}" as ${id} {`);
        emit(state.path, `${indent}  `);
        lines.push(`${indent}}`);
      } else {
        lines.push(`${indent}state "${state.key}" as ${id}`);
      }
      if (state.kind !== 'compound' && state.kind !== 'parallel') {
        for (const detail of stateDetails(state)) lines.push(`${indent}${id} : ${mermaidText(detail)}`);
      }
      if (state.kind === 'final') lines.push(`${indent}${id} --> [*]`);
    }
    for (const transition of edgesIn.get(parent) ?? []) {
      const role = onlyRole(transition.roles);
      const label = `${role === null ? '' : `(${role}) `}${transitionLabel(transition)}`;
      lines.push(`${indent}${mermaidId(transition.source)} --> ${mermaidId(transition.target)} : ${mermaidText(label)}`);
    }
  };
  emit(null, '  ');

  // What a state does without leaving it (the relay events) cannot be an arrow: one note per
  // kind of handling, on the first state that has it, naming every state that does.
  const handling = new Map<string, DiagramState[]>();
  for (const state of graph.states) {
    const summary = internalSummary(state);
    if (summary === null) continue;
    handling.set(summary, [...(handling.get(summary) ?? []), state]);
  }
  for (const [summary, states] of handling) {
    const first = states[0];
    if (first === undefined) continue;
    const where = states.map((state) => state.path).join(', ');
    lines.push(`  note left of ${mermaidId(first.path)} : ${mermaidText(`in ${where} - ${summary}`)}`);
  }
  lines.push('  classDef coordinator fill:#dbeafe,stroke:#2563eb,color:#1e3a8a');
  lines.push('  classDef participant fill:#dcfce7,stroke:#16a34a,color:#14532d');
  lines.push('  classDef failure fill:#fee2e2,stroke:#dc2626,color:#7f1d1d');
  for (const role of ROLES) {
    const only = graph.states.filter(
      (state) => onlyRole(state.roles) === role && state.kind !== 'compound' && state.kind !== 'parallel',
    );
    if (only.length > 0) lines.push(`  class ${only.map((state) => mermaidId(state.path)).join(', ')} ${role}`);
  }
  const failures = graph.states.filter((state) => state.tags.includes('error'));
  if (failures.length > 0) lines.push(`  class ${failures.map((state) => mermaidId(state.path)).join(', ')} failure`);
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Graphviz DOT
// ---------------------------------------------------------------------------------------------

/** Id of a state's SVG element (node or cluster): the page finds the active state by it. */
export const svgStateId = (path: string): string => `state:${path}`;

const COLOURS = {
  coordinator: { fill: '#dbeafe', line: '#2563eb', text: '#1e3a8a' },
  participant: { fill: '#dcfce7', line: '#16a34a', text: '#14532d' },
  both: { fill: '#ffffff', line: '#475569', text: '#0f172a' },
  failure: { fill: '#fee2e2', line: '#dc2626', text: '#7f1d1d' },
} as const;

const quote = (text: string): string => `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
const html = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function attributes(entries: Readonly<Record<string, string | number>>): string {
  return Object.entries(entries)
    .map(([key, value]) => `${key}=${typeof value === 'number' ? String(value) : quote(value)}`)
    .join(', ');
}

function paletteOf(state: DiagramState) {
  if (state.tags.includes('error')) return COLOURS.failure;
  return COLOURS[onlyRole(state.roles) ?? 'both'];
}

function stateClasses(state: DiagramState): string {
  const role = onlyRole(state.roles);
  return ['state', state.kind, role === null ? 'both-roles' : `${role}-only`, ...state.tags.map((tag) => `tag-${tag}`)].join(' ');
}

function stateLabel(state: DiagramState, palette: (typeof COLOURS)[keyof typeof COLOURS]): string {
  const lines = [`<b>${html(state.key)}</b>`];
  for (const detail of stateDetails(state)) lines.push(`<font point-size="9">${html(detail)}</font>`);
  const summary = internalSummary(state);
  if (summary !== null) lines.push(`<font point-size="8" color="#64748b">${html(summary)}</font>`);
  return `<<font color="${palette.text}">${lines.join('<br/>')}</font>>`;
}

/** The key to the colours, as the graph's label under the drawing. */
function legend(): string {
  const cell = (colours: (typeof COLOURS)[keyof typeof COLOURS], text: string) =>
    `<td bgcolor="${colours.fill}" color="${colours.line}" border="1" style="rounded">` +
    `<font color="${colours.text}" point-size="9"> ${html(text)} </font></td>`;
  return [
    '<<table border="0" cellspacing="6" cellpadding="3"><tr>',
    cell(COLOURS.coordinator, 'coordinator only'),
    cell(COLOURS.participant, 'participant only'),
    cell(COLOURS.both, 'both roles'),
    cell(COLOURS.failure, 'error'),
    '<td><font point-size="9" color="#475569">event [guard] / actions</font></td>',
    '</tr></table>>',
  ].join('');
}

const NODE = { shape: 'box', style: 'rounded,filled', fontname: 'Helvetica', fontsize: 11, margin: '0.14,0.07', penwidth: 1.2 };
const EDGE = { fontname: 'Helvetica', fontsize: 9, arrowsize: 0.7, penwidth: 1.1 };
const CLUSTER = { style: 'rounded,filled', fillcolor: '#f8fafc', penwidth: 1.2, margin: 12, labelloc: 't' };
/** The black dot a state chart starts from. */
const INITIAL = {
  shape: 'circle',
  label: '',
  width: 0.16,
  height: 0.16,
  style: 'filled',
  fillcolor: '#0f172a',
  color: '#0f172a',
  class: 'initial',
};

/** A node to aim edges at for a compound state: its initial pseudo-state. */
const initialNode = (path: string): string => `${path}#initial`;

export function toDot(graph: MachineGraph): string {
  const lines = [
    `digraph ${quote(graph.id)} {`,
    `  graph [${attributes({
      id: 'machine',
      rankdir: 'TB',
      compound: 'true',
      newrank: 'true',
      fontname: 'Helvetica',
      fontsize: 11,
      nodesep: 0.35,
      ranksep: 0.45,
      pad: 0.2,
      bgcolor: 'transparent',
      labelloc: 'b',
    })}]`,
    `  node [${attributes(NODE)}]`,
    `  edge [${attributes(EDGE)}]`,
  ];
  const byPath = new Map(graph.states.map((state) => [state.path, state]));
  const endpoint = (path: string): string => {
    const state = byPath.get(path);
    return state !== undefined && state.kind === 'compound' ? initialNode(path) : path;
  };
  const pseudoStart = (name: string, indent: string) =>
    lines.push(
      `${indent}${quote(name)} [${attributes(INITIAL)}]`,
    );

  const emit = (parent: string | null, indent: string) => {
    for (const state of graph.states.filter((candidate) => candidate.parent === parent)) {
      const palette = paletteOf(state);
      const tooltip = state.description ?? state.key;
      if (state.kind === 'compound' || state.kind === 'parallel') {
        lines.push(`${indent}subgraph ${quote(`cluster_${state.path}`)} {`);
        const cluster = { ...CLUSTER, id: svgStateId(state.path), class: stateClasses(state), color: palette.line, tooltip };
        lines.push(`${indent}  graph [${attributes(cluster)}]`);
        lines.push(`${indent}  label = ${stateLabel(state, palette)}`);
        if (state.initial !== null) {
          pseudoStart(initialNode(state.path), `${indent}  `);
          const arrow = `${quote(initialNode(state.path))} -> ${quote(endpoint(state.initial))}`;
          lines.push(`${indent}  ${arrow} [${attributes({ color: INITIAL.color })}]`);
        }
        emit(state.path, `${indent}  `);
        lines.push(`${indent}}`);
        continue;
      }
      lines.push(
        `${indent}${quote(state.path)} [${attributes({
          id: svgStateId(state.path),
          class: stateClasses(state),
          fillcolor: palette.fill,
          color: palette.line,
          peripheries: state.kind === 'final' ? 2 : 1,
          tooltip,
        })}, label=${stateLabel(state, palette)}]`,
      );
    }
  };
  lines.push(`  label = ${legend()}`);
  pseudoStart('#initial', '  ');
  lines.push(`  ${quote('#initial')} -> ${quote(endpoint(graph.initial))} [${attributes({ color: INITIAL.color })}]`);
  emit(null, '  ');

  for (const transition of graph.transitions) {
    const role = onlyRole(transition.roles);
    const colour = role === null ? COLOURS.both.line : COLOURS[role].line;
    const entries: Record<string, string | number> = {
      id: `transition:${transition.index}`,
      class: ['transition', role === null ? 'both-roles' : `${role}-only`].join(' '),
      label: transitionLabel(transition),
      color: colour,
      fontcolor: role === null ? '#334155' : colour,
    };
    const source = byPath.get(transition.source);
    const target = byPath.get(transition.target);
    if (source?.kind === 'compound') entries.ltail = `cluster_${source.path}`;
    if (target?.kind === 'compound') entries.lhead = `cluster_${target.path}`;
    if (transition.roles.length === 0) entries.style = 'dashed';
    lines.push(`  ${quote(endpoint(transition.source))} -> ${quote(endpoint(transition.target))} [${attributes(entries)}]`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
