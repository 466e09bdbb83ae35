/**
 * Writes a site's result files. Each file is written to a temporary name and renamed into
 * place, so a crash never leaves a half-written result for the platform to zip up.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Json } from '../computation/types.ts';

export interface ResultFiles {
  readonly json: Json;
  readonly markdown: string;
  readonly csv: string | null;
}

export const RESULT_FILES = { json: 'result.json', markdown: 'report.md', csv: 'result.csv' } as const;

export async function writeAtomically(path: string, content: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content);
  await rename(temporary, path);
}

/** Returns the names of the files written. */
export async function writeResultFiles(outputDir: string, files: ResultFiles): Promise<string[]> {
  await mkdir(outputDir, { recursive: true });
  const written: [string, string][] = [
    [RESULT_FILES.json, `${JSON.stringify(files.json, null, 2)}\n`],
    [RESULT_FILES.markdown, files.markdown],
  ];
  if (files.csv !== null) written.push([RESULT_FILES.csv, files.csv]);
  for (const [name, content] of written) await writeAtomically(join(outputDir, name), content);
  return written.map(([name]) => name);
}
