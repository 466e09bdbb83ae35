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

/** A white outline behind a label, so lifelines it crosses do not cut through the text. */
const HALO = ' stroke="#ffffff" stroke-width="4" stroke-linejoin="round" paint-order="stroke"';

const xml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Coordinates with at most one decimal, written the same way on every run. */
const n = (value: number): string => String(Math.round(value * 10) / 10);

function arrowColour(arrow: Arrow): string {
  if (arrow.smpc) return ARROW.smpc;
  if (arrow.dp) return ARROW.dp;
  return ARROW.plain;
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

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${n(width)}" height="${n(height)}" viewBox="0 0 ${n(width)} ${n(height)}" font-family="${FONT}" font-size="11">`,
    '<defs>',
    ...Object.entries(ARROW).map(
      ([name, colour]) =>
        `<marker id="head-${name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="${colour}"/></marker>`,
    ),
    '</defs>',
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
  ];

  const laneBox = (lane: Lane, top: number) => {
    const centre = x.get(lane.key) ?? 0;
    const colours = COLOURS[lane.kind];
    out.push(
      `<rect x="${n(centre - boxWidth / 2)}" y="${n(top)}" width="${n(boxWidth)}" height="${HEADER - 8}" rx="7" fill="${colours.fill}" stroke="${colours.line}" stroke-width="1.2"/>`,
      `<text x="${n(centre)}" y="${n(top + 16)}" text-anchor="middle" font-weight="bold" fill="${colours.text}">${xml(lane.title)}</text>`,
      `<text x="${n(centre)}" y="${n(top + 30)}" text-anchor="middle" font-size="10" fill="${colours.text}">${lane.kind}</text>`,
    );
  };
  for (const lane of lanes) {
    const centre = x.get(lane.key) ?? 0;
    out.push(
      `<line x1="${n(centre)}" y1="${n(TOP + HEADER - 8)}" x2="${n(centre)}" y2="${n(bodyBottom)}" stroke="#94a3b8" stroke-dasharray="4 4"/>`,
    );
    laneBox(lane, TOP);
    laneBox(lane, bodyBottom);
  }

  rows.forEach((row, index) => {
    const y = bodyTop + index * ROW + ROW / 2;
    if (row.kind === 'round') {
      out.push(
        `<line x1="8" y1="${n(y)}" x2="${n(width - 8)}" y2="${n(y)}" stroke="#cbd5e1"/>`,
        `<rect x="${n(width / 2 - 38)}" y="${n(y - 9)}" width="76" height="18" rx="9" fill="#f1f5f9" stroke="#cbd5e1"/>`,
        `<text x="${n(width / 2)}" y="${n(y + 4)}" text-anchor="middle" font-size="10" font-weight="bold" fill="#475569">round ${row.round}</text>`,
      );
      return;
    }
    const { arrow } = row;
    const from = x.get(arrow.from) ?? 0;
    const to = x.get(arrow.to) ?? 0;
    const colour = arrowColour(arrow);
    const marker = arrow.smpc ? 'smpc' : arrow.dp ? 'dp' : 'plain';
    if (arrow.time !== null) {
      out.push(`<text x="10" y="${n(y + 4)}" font-size="10" fill="#64748b">+${arrow.time} ms</text>`);
    }
    if (from === to) {
      out.push(
        `<path class="message" d="M${n(from)},${n(y - 4)} h${SELF_LOOP} v12 h-${SELF_LOOP - 2}" fill="none" stroke="${colour}" stroke-width="1.4" marker-end="url(#head-${marker})"/>`,
        `<text x="${n(from + SELF_LOOP + 6)}" y="${n(y + 4)}" fill="${colour}"${HALO}>${xml(arrow.label)}</text>`,
      );
      return;
    }
    const direction = to > from ? 1 : -1;
    out.push(
      `<line class="message" x1="${n(from)}" y1="${n(y + 6)}" x2="${n(to - direction * 2)}" y2="${n(y + 6)}" stroke="${colour}" stroke-width="1.4" marker-end="url(#head-${marker})"/>`,
      `<text x="${n((from + to) / 2)}" y="${n(y)}" text-anchor="middle" fill="${colour}"${HALO}>${xml(arrow.label)}</text>`,
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
      `<line x1="${n(keyX)}" y1="${n(legendY)}" x2="${n(keyX + 26)}" y2="${n(legendY)}" stroke="${ARROW[kind]}" stroke-width="1.4" marker-end="url(#head-${kind})"/>`,
      `<text x="${n(keyX + 32)}" y="${n(legendY + 4)}" font-size="10" fill="#475569">${text}</text>`,
    );
    keyX += 32 + text.length * 5.6 + 24;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
