/**
 * A run's trace: every relay as one JSON line, and the same as a sequence diagram of who sent
 * what to whom, in Mermaid (code hosts render it) and as an SVG (any browser shows it). Clients
 * add their XState inspection events beside it, one file per client.
 */
import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { sequenceSvg, type Arrow, type Lane } from '../visual/sequence.ts';
import type { ControlledClient, RelayRecord } from './controller.ts';

/**
 * The files of a trace named FILE: FILE itself, and FILE with its extension replaced by other
 * endings beside it (`run.jsonl`: `run.mmd`, `run.svg`, `run.<client>.xstate.jsonl`).
 */
export function traceFiles(file: string) {
  const extension = extname(file);
  const base = extension === '' ? file : file.slice(0, -extension.length);
  return {
    relays: file,
    mermaid: `${base}.mmd`,
    svg: `${base}.svg`,
    /** A client's XState inspection events (JSON lines). */
    xstate: (label: string) => `${base}.${label}.xstate.jsonl`,
  };
}

export function traceLines(records: readonly RelayRecord[]): string {
  return records.map((record) => `${JSON.stringify(record)}\n`).join('');
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

const SMPC_LANE = 'smpc';
const ROUND_MEMO = /^r(\d+)\./;

/** The run as lanes and arrows, which both diagrams draw. */
export function sequence(
  clients: readonly ControlledClient[],
  records: readonly RelayRecord[],
): { lanes: Lane[]; arrows: Arrow[] } {
  const alias = new Map(clients.map((client, index) => [client.id, `c${index + 1}`]));
  const lanes: Lane[] = clients.map((client) => ({
    key: alias.get(client.id) ?? client.id,
    title: client.label,
    kind: client.coordinator ? 'coordinator' : 'participant',
  }));
  if (records.some((record) => record.smpc)) lanes.push({ key: SMPC_LANE, title: 'controllers (SMPC)', kind: 'controller' });
  const arrows: Arrow[] = [];
  for (const record of records) {
    const from = record.from === 'smpc' ? SMPC_LANE : (alias.get(record.from) ?? record.from);
    const marks = [record.dp ? 'DP' : null, record.kind === 'smpc-aggregate' ? 'sum of shares' : null]
      .filter((mark) => mark !== null)
      .join(', ');
    const label = `${record.memo ?? '(no memo)'}, ${size(record.bytes)}${marks === '' ? '' : `, ${marks}`}`;
    const targets = record.kind === 'smpc-contribution' ? [SMPC_LANE] : record.to.map((id) => alias.get(id) ?? id);
    const round = ROUND_MEMO.exec(record.memo ?? '')?.[1];
    for (const to of targets) {
      arrows.push({
        from,
        to,
        label,
        time: record.time,
        round: round === undefined ? null : Number(round),
        smpc: record.smpc,
        dp: record.dp,
      });
    }
  }
  return { lanes, arrows };
}

/** Mermaid participant ids must be plain words; labels carry the readable names. */
export function sequenceDiagram(clients: readonly ControlledClient[], records: readonly RelayRecord[]): string {
  const { lanes, arrows } = sequence(clients, records);
  const lines = ['sequenceDiagram'];
  for (const lane of lanes) {
    lines.push(
      lane.kind === 'controller'
        ? `  participant ${lane.key} as ${lane.title}`
        : `  participant ${lane.key} as ${lane.title} (${lane.kind})`,
    );
  }
  for (const arrow of arrows) lines.push(`  ${arrow.from}->>${arrow.to}: ${arrow.label}`);
  return `${lines.join('\n')}\n`;
}

/** Writes FILE (JSON lines), and the sequence diagram beside it: FILE with .mmd and with .svg for its extension. */
export async function writeTrace(
  file: string,
  clients: readonly ControlledClient[],
  records: readonly RelayRecord[],
): Promise<string> {
  const files = traceFiles(file);
  const { lanes, arrows } = sequence(clients, records);
  await writeFile(files.relays, traceLines(records));
  await writeFile(files.mermaid, sequenceDiagram(clients, records));
  await writeFile(files.svg, sequenceSvg(lanes, arrows));
  return files.mermaid;
}
