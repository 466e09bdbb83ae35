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
  /**
   * The API again, at the root of this port, where the platform's controller calls it (9000 in
   * the image). Null: not served (the default outside the image).
   */
  readonly apiPort: number | null;
  /** The status string again, at `/` of this port, as the platform shows it (9001 in the image). */
  readonly webPort: number | null;
  readonly inputDir: string;
  readonly outputDir: string;
  /** Largest accepted POST /api/data body, in bytes. Model weights are big, so the default is too. */
  readonly bodyLimit: number;
  readonly logLevel: LogLevel;
  /** How long the client waits for other sites before reporting an error; null: no limit. */
  readonly waitTimeoutMs: number | null;
  /** Limits on one HTTP request: its headers, and the whole request with its body. */
  readonly timeouts: RequestTimeouts;
}

export interface RequestTimeouts {
  readonly headersMs: number;
  readonly requestMs: number;
}

export const DEFAULT_TIMEOUTS: RequestTimeouts = { headersMs: 15_000, requestMs: 300_000 };

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
/** Unset or empty: the port is not served. */
const optionalPort = z.preprocess(
  (value) => (typeof value === 'string' && value.trim() === '' ? undefined : value),
  port.optional(),
);

/** A number of seconds, fractions allowed; 0 turns the limit off. */
const seconds = z.coerce.number().min(0).max(24 * 60 * 60 * 24);

const schema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(5000),
  API_PORT: optionalPort,
  WEB_PORT: optionalPort,
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
  WAIT_TIMEOUT: seconds.default(3600),
  HEADERS_TIMEOUT: seconds.default(DEFAULT_TIMEOUTS.headersMs / 1000),
  REQUEST_TIMEOUT: seconds.default(DEFAULT_TIMEOUTS.requestMs / 1000),
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
  const ports = { PORT: value.PORT, API_PORT: value.API_PORT, WEB_PORT: value.WEB_PORT };
  const taken = new Map<number, string>();
  for (const [name, number] of Object.entries(ports)) {
    // Port 0 asks the system for a free port, so zeros never clash.
    if (number === undefined || number === 0) continue;
    const other = taken.get(number);
    if (other !== undefined) throw new SettingsError(`invalid environment: ${name}: port ${number} is already used by ${other}`);
    taken.set(number, name);
  }
  return {
    host: value.HOST,
    port: value.PORT,
    apiPort: value.API_PORT ?? null,
    webPort: value.WEB_PORT ?? null,
    inputDir: value.INPUT_DIR,
    outputDir: value.OUTPUT_DIR,
    bodyLimit: value.BODY_LIMIT,
    logLevel: value.LOG_LEVEL,
    waitTimeoutMs: value.WAIT_TIMEOUT === 0 ? null : value.WAIT_TIMEOUT * 1000,
    timeouts: { headersMs: value.HEADERS_TIMEOUT * 1000, requestMs: value.REQUEST_TIMEOUT * 1000 },
  };
}
