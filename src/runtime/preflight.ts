/**
 * Reads the site's input once at start, as the first round will, so a mistake in config.yml or
 * the data shows in the log when the container starts, in full, not only as a 40-character
 * status message after the controller's setup.
 */
import { configureComputation } from '../computation/registry.ts';
import { loadConfig } from '../data/config.ts';
import { readTable } from '../data/csv.ts';

export interface InputCheck {
  readonly ok: boolean;
  /** What is wrong, naming the file and field; or what was found. */
  readonly message: string;
}

export async function checkInput(inputDir: string): Promise<InputCheck> {
  try {
    const config = await loadConfig(inputDir);
    const computation = configureComputation(config.computation, config.parameters, 'config.yml');
    const table = await readTable(config.dataFile, { separator: config.separator });
    computation.prepare(table);
    return { ok: true, message: `${config.computation} on ${config.dataName} (${table.rowCount} rows)` };
  } catch (error) {
    return { ok: false, message: error instanceof Error ? error.message : String(error) };
  }
}
