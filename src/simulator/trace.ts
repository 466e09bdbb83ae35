/**
 * A run's trace: every relay as one JSON line, and the same as a Mermaid sequence diagram that
 * code hosts render, so a run can be read as a picture of who sent what to whom.
 */
import { writeFile } from 'node:fs/promises';
import type { ControlledClient, RelayRecord } from './controller.ts';

export function traceLines(records: readonly RelayRecord[]): string {
  return records.map((record) => `${JSON.stringify(record)}\n`).join('');
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/** Mermaid participant ids must be plain words; labels carry the readable names. */
export function sequenceDiagram(clients: readonly ControlledClient[], records: readonly RelayRecord[]): string {
  const alias = new Map(clients.map((client, index) => [client.id, `c${index + 1}`]));
  const lines = ['sequenceDiagram'];
  for (const client of clients) {
    const role = client.coordinator ? 'coordinator' : 'participant';
    lines.push(`  participant ${alias.get(client.id)} as ${client.label} (${role})`);
  }
  if (records.some((record) => record.smpc)) lines.push('  participant smpc as controllers (SMPC)');
  for (const record of records) {
    const from = record.from === 'smpc' ? 'smpc' : (alias.get(record.from) ?? record.from);
    const marks = [record.dp ? 'DP' : null, record.kind === 'smpc-aggregate' ? 'sum of shares' : null]
      .filter((mark) => mark !== null)
      .join(', ');
    const label = `${record.memo ?? '(no memo)'}, ${size(record.bytes)}${marks === '' ? '' : `, ${marks}`}`;
    const targets = record.kind === 'smpc-contribution' ? ['smpc'] : record.to.map((id) => alias.get(id) ?? id);
    for (const to of targets) lines.push(`  ${from}->>${to}: ${label}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Writes FILE (JSON lines) and FILE's name with `.mmd` in place of its extension. */
export async function writeTrace(
  file: string,
  clients: readonly ControlledClient[],
  records: readonly RelayRecord[],
): Promise<string> {
  const diagram = `${file.replace(/\.[^./]*$/, '')}.mmd`;
  await writeFile(file, traceLines(records));
  await writeFile(diagram, sequenceDiagram(clients, records));
  return diagram;
}
