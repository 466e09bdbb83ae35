/**
 * A run of the federation as a sequence diagram in SVG: a lane per client (and one for the
 * controllers' SMPC), an arrow per delivered message, in the order they happened. Drawn here
 * rather than by Mermaid, which needs a browser; the output depends only on its input, so the same
 * run gives the same bytes.
 */

export interface Lane {
  readonly key: string;
  readonly title: string;
  readonly kind: 'coordinator' | 'participant' | 'controller';
}

export interface Arrow {
  readonly from: string;
  readonly to: string;
  readonly label: string;
  /** Milliseconds since the run started, when known. */
  readonly time: number | null;
  /** Round of the message (from its memo), for the separators between rounds. */
  readonly round: number | null;
  readonly smpc: boolean;
  readonly dp: boolean;
}

const FONT = 'Helvetica, Arial, sans-serif';
const TOP = 24;
const HEADER = 46;
const ROW = 34;
const GUTTER = 78;
const SELF_LOOP = 34;
/** Rough width of a character at 11 px in a sans-serif font: enough to keep labels apart. */
const CHAR = 6.1;

const COLOURS = {
  coordinator: { fill: '#dbeafe', line: '#2563eb', text: '#1e3a8a' },
  participant: { fill: '#dcfce7', line: '#16a34a', text: '#14532d' },
  controller: { fill: '#ede9fe', line: '#7c3aed', text: '#4c1d95' },
} as const;

const ARROW = { plain: '#334155', smpc: '#7c3aed', dp: '#d97706' } as const;
const MARKER = { markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' } as const;

/** A white outline behind a label, so lifelines it crosses do not cut through the text. */
const HALO = { stroke: '#ffffff', 'stroke-width': 4, 'stroke-linejoin': 'round', 'paint-order': 'stroke' } as const;

const xml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Coordinates with at most one decimal, written the same way on every run. */
const n = (value: number): string => String(Math.round(value * 10) / 10);

type Attributes = Readonly<Record<string, string | number>>;

const attributeList = (attributes: Attributes): string =>
  Object.entries(attributes)
    .map(([key, value]) => ` ${key}="${typeof value === 'number' ? n(value) : xml(value)}"`)
    .join('');

/** An opening tag, for an element with children. */
const open = (name: string, attributes: Attributes): string => `<${name}${attributeList(attributes)}>`;

/** One SVG element; numbers are coordinates, text is escaped. */
function element(name: string, attributes: Attributes, text?: string): string {
  return text === undefined ? `<${name}${attributeList(attributes)}/>` : `${open(name, attributes)}${xml(text)}</${name}>`;
}

function arrowKind(arrow: Arrow): keyof typeof ARROW {
  if (arrow.smpc) return 'smpc';
  if (arrow.dp) return 'dp';
  return 'plain';
}

export function sequenceSvg(lanes: readonly Lane[], arrows: readonly Arrow[]): string {
  const longestLabel = Math.max(0, ...arrows.map((arrow) => arrow.label.length));
  const longestTitle = Math.max(0, ...lanes.map((lane) => lane.title.length));
  const spacing = Math.max(170, longestLabel * CHAR + 40, longestTitle * CHAR + 40);
  const boxWidth = Math.min(spacing - 20, longestTitle * CHAR + 28);
  const x = new Map(lanes.map((lane, index) => [lane.key, GUTTER + spacing / 2 + index * spacing]));
  const width = GUTTER + lanes.length * spacing + SELF_LOOP;

  // Rows: one per arrow, plus a separator row whenever the round changes.
  const rows: ({ kind: 'round'; round: number } | { kind: 'arrow'; arrow: Arrow })[] = [];
  let round: number | null = null;
  for (const arrow of arrows) {
    if (arrow.round !== null && arrow.round !== round) {
      round = arrow.round;
      rows.push({ kind: 'round', round });
    }
    rows.push({ kind: 'arrow', arrow });
  }
  const bodyTop = TOP + HEADER + 18;
  const bodyBottom = bodyTop + rows.length * ROW + 8;
  const legendY = bodyBottom + HEADER + 14;
  const height = legendY + TOP;

  const svg = { xmlns: 'http://www.w3.org/2000/svg', width, height, viewBox: `0 0 ${n(width)} ${n(height)}` };
  const out: string[] = [
    open('svg', { ...svg, 'font-family': FONT, 'font-size': 11 }),
    '<defs>',
    ...Object.entries(ARROW).map(
      ([name, colour]) =>
        open('marker', { id: `head-${name}`, viewBox: '0 0 10 10', refX: 9, refY: 5, ...MARKER }) +
        `${element('path', { d: 'M0,0 L10,5 L0,10 z', fill: colour })}</marker>`,
    ),
    '</defs>',
    element('rect', { width: '100%', height: '100%', fill: '#ffffff' }),
  ];
  const arrowLine = (x1: number, x2: number, y: number, kind: keyof typeof ARROW, extra: Attributes = {}) =>
    element('line', {
      ...extra,
      x1,
      y1: y,
      x2,
      y2: y,
      stroke: ARROW[kind],
      'stroke-width': 1.4,
      'marker-end': `url(#head-${kind})`,
    });

  const laneBox = (lane: Lane, top: number) => {
    const centre = x.get(lane.key) ?? 0;
    const colours = COLOURS[lane.kind];
    const text = { x: centre, 'text-anchor': 'middle', fill: colours.text };
    out.push(
      element('rect', {
        x: centre - boxWidth / 2,
        y: top,
        width: boxWidth,
        height: HEADER - 8,
        rx: 7,
        fill: colours.fill,
        stroke: colours.line,
        'stroke-width': 1.2,
      }),
      element('text', { ...text, y: top + 16, 'font-weight': 'bold' }, lane.title),
      element('text', { ...text, y: top + 30, 'font-size': 10 }, lane.kind),
    );
  };
  for (const lane of lanes) {
    const centre = x.get(lane.key) ?? 0;
    const lifeline = { x1: centre, y1: TOP + HEADER - 8, x2: centre, y2: bodyBottom };
    out.push(element('line', { ...lifeline, stroke: '#94a3b8', 'stroke-dasharray': '4 4' }));
    laneBox(lane, TOP);
    laneBox(lane, bodyBottom);
  }

  rows.forEach((row, index) => {
    const y = bodyTop + index * ROW + ROW / 2;
    if (row.kind === 'round') {
      out.push(
        element('line', { x1: 8, y1: y, x2: width - 8, y2: y, stroke: '#cbd5e1' }),
        element('rect', { x: width / 2 - 38, y: y - 9, width: 76, height: 18, rx: 9, fill: '#f1f5f9', stroke: '#cbd5e1' }),
        element(
          'text',
          { x: width / 2, y: y + 4, 'text-anchor': 'middle', 'font-size': 10, 'font-weight': 'bold', fill: '#475569' },
          `round ${row.round}`,
        ),
      );
      return;
    }
    const { arrow } = row;
    const from = x.get(arrow.from) ?? 0;
    const to = x.get(arrow.to) ?? 0;
    const kind = arrowKind(arrow);
    const label = { fill: ARROW[kind], ...HALO };
    if (arrow.time !== null) {
      out.push(element('text', { x: 10, y: y + 4, 'font-size': 10, fill: '#64748b' }, `+${arrow.time} ms`));
    }
    if (from === to) {
      out.push(
        element('path', {
          class: 'message',
          d: `M${n(from)},${n(y - 4)} h${SELF_LOOP} v12 h-${SELF_LOOP - 2}`,
          fill: 'none',
          stroke: ARROW[kind],
          'stroke-width': 1.4,
          'marker-end': `url(#head-${kind})`,
        }),
        element('text', { x: from + SELF_LOOP + 6, y: y + 4, ...label }, arrow.label),
      );
      return;
    }
    const direction = to > from ? 1 : -1;
    out.push(
      arrowLine(from, to - direction * 2, y + 6, kind, { class: 'message' }),
      element('text', { x: (from + to) / 2, y, 'text-anchor': 'middle', ...label }, arrow.label),
    );
  });

  // The key to the arrow colours.
  const keys = [
    ['plain', 'relayed as sent'],
    ['smpc', 'SMPC (secret shares, summed)'],
    ['dp', 'DP (noised by the controller)'],
  ] as const;
  let keyX = GUTTER;
  for (const [kind, text] of keys) {
    out.push(
      arrowLine(keyX, keyX + 26, legendY, kind),
      element('text', { x: keyX + 32, y: legendY + 4, 'font-size': 10, fill: '#475569' }, text),
    );
    keyX += 32 + text.length * 5.6 + 24;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
