/**
 * The client's settings, from the environment. Invalid values stop the process at start with a
 * message naming the variable, rather than surfacing later as a strange failure.
 */
import { z } from 'zod';
import { LOG_LEVELS, type LogLevel } from './log.ts';

export interface Settings {
  readonly host: string;
  /** The API under /api and the status under /web, as the spec says (default 5000). */
  readonly port: number;
  readonly inputDir: string;
  readonly outputDir: string;
  /** Largest accepted POST /api/data body, in bytes. Model weights are big, so the default is too. */
  readonly bodyLimit: number;
  readonly logLevel: LogLevel;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i;
const UNITS = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;

/** Parses `1048576`, `512mb`, `1.5gb`. */
export function parseSize(text: string): number | null {
  const match = SIZE.exec(text.trim());
  if (match === null) return null;
  const unit = (match[2]?.toLowerCase() ?? 'b') as keyof typeof UNITS;
  const bytes = Math.floor(Number(match[1]) * UNITS[unit]);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : null;
}

const port = z.coerce.number().int().min(0).max(65535);

const schema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(5000),
  INPUT_DIR: z.string().min(1).default('/mnt/input'),
  OUTPUT_DIR: z.string().min(1).default('/mnt/output'),
  BODY_LIMIT: z
    .string()
    .default('1gb')
    .transform((text, ctx) => {
      const bytes = parseSize(text);
      if (bytes === null) {
        ctx.addIssue({ code: 'custom', message: 'expected a size such as 1048576, 512mb or 1gb' });
        return z.NEVER;
      }
      return bytes;
    }),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
});

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new SettingsError(`invalid environment: ${problems.join('; ')}`);
  }
  const value = parsed.data;
  return {
    host: value.HOST,
    port: value.PORT,
    inputDir: value.INPUT_DIR,
    outputDir: value.OUTPUT_DIR,
    bodyLimit: value.BODY_LIMIT,
    logLevel: value.LOG_LEVEL,
  };
}
