/**
 * What a person watching a simulation sees: on a terminal, one live line per client (state,
 * round, progress bar, message) redrawn in place; elsewhere (CI, a pipe), one plain line each
 * time a client's state or message changes.
 */
import type { Status } from '../protocol/types.ts';
import type { ControlledClient } from './controller.ts';

export interface ProgressView {
  update(client: ControlledClient, status: Status): void;
  close(): void;
}

const BAR_WIDTH = 20;

function bar(progress: number | null): string {
  const filled = Math.round(Math.min(1, Math.max(0, progress ?? 0)) * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
}

function describe(status: Status): string {
  const state = status.finished ? (status.state === 'error' ? 'error' : 'finished') : (status.state ?? 'waiting');
  return `${state.padEnd(8)} ${bar(status.progress)} ${status.message ?? ''}`;
}

export function createView(
  clients: readonly ControlledClient[],
  out: NodeJS.WriteStream | { write(text: string): unknown; isTTY?: boolean },
): ProgressView {
  const width = Math.max(...clients.map((client) => client.label.length), 6);
  const name = (client: ControlledClient) =>
    `${client.label.padEnd(width)} ${client.coordinator ? '(coordinator)' : '(participant)'}`;
  const last = new Map<string, string>();

  if (out.isTTY !== true) {
    return {
      update(client, status) {
        const line = describe(status);
        const key = `${status.state}|${status.finished}|${status.message}`;
        if (last.get(client.id) === key) return;
        last.set(client.id, key);
        out.write(`${name(client)} ${line}\n`);
      },
      close() {},
    };
  }

  let drawn = false;
  let scheduled: NodeJS.Timeout | null = null;
  const draw = () => {
    scheduled = null;
    // Move up over the previous frame and rewrite it, one line per client.
    if (drawn) out.write(`\x1b[${clients.length}A`);
    for (const client of clients) out.write(`\x1b[2K${name(client)} ${last.get(client.id) ?? 'starting'}\n`);
    drawn = true;
  };
  return {
    update(client, status) {
      last.set(client.id, describe(status));
      // At most ~30 frames a second, however fast the clients poll.
      scheduled ??= setTimeout(draw, 33);
    },
    close() {
      if (scheduled !== null) clearTimeout(scheduled);
      draw();
    },
  };
}
