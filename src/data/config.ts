/**
 * Reads a site's config.yml. As on the platform, the file is keyed by the app name so one input
 * folder can serve several apps:
 *
 *   fc-xstate-client:
 *     computation: statistics
 *     data: data.csv
 *     separator: ","          # optional
 *     parameters: {...}       # validated by the computation (see the registry)
 *     smpc: true              # optional: true, false or {operation, shards, exponent}
 *     dp: true                # optional: true, false or {noisetype, epsilon, delta, sensitivity, clippingVal}
 *
 * Every problem becomes an InputError naming config.yml and the field's path.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import type { DpOptions, SmpcOptions } from '../protocol/types.ts';
import { InputError } from './errors.ts';

export const APP_NAME = 'fc-xstate-client';
export const CONFIG_FILE = 'config.yml';

export interface SiteConfig {
  /** Absolute path of config.yml. */
  readonly configFile: string;
  readonly computation: string;
  /** Absolute path of the data file, inside the input folder. */
  readonly dataFile: string;
  /** The data file as written in config.yml. */
  readonly dataName: string;
  readonly separator: string;
  /** The computation's own parameters, not yet validated (the registry does that). */
  readonly parameters: unknown;
  readonly smpc: SmpcOptions | null;
  readonly dp: DpOptions | null;
}

// The platform's defaults (see PROTOCOL.md).
const SMPC_DEFAULTS = { operation: 'add', serialization: 'json', shards: 0, exponent: 8 } as const;
const DP_DEFAULT_EPSILON = 0.99999;
const DP_DEFAULT_DELTA = { laplace: 0, gauss: 0.01 } as const;
const DP_DEFAULT_CLIPPING = 10;

/** `true` asks for the defaults; `false`, null or absent turns the feature off. */
const switchable = (value: unknown): unknown => (value === true ? {} : value === false ? null : value);
const optionsMapping = { error: 'must be true, false or a mapping of options' };

const smpcSchema = z.preprocess(
  switchable,
  z
    .strictObject(
      {
        operation: z.enum(['add', 'multiply']).default(SMPC_DEFAULTS.operation),
        serialization: z.literal('json').default(SMPC_DEFAULTS.serialization),
        shards: z.number().int().min(0).default(SMPC_DEFAULTS.shards),
        exponent: z.number().int().min(0).max(15).default(SMPC_DEFAULTS.exponent),
      },
      optionsMapping,
    )
    .nullish(),
);

const dpSchema = z.preprocess(
  switchable,
  z
    .strictObject(
      {
        serialization: z.literal('json').default('json'),
        noisetype: z.enum(['laplace', 'gauss']).default('laplace'),
        epsilon: z.number().gt(0).default(DP_DEFAULT_EPSILON),
        delta: z.number().min(0).lt(1).optional(),
        sensitivity: z.number().gt(0).optional(),
        clippingVal: z.number().gt(0).optional(),
      },
      optionsMapping,
    )
    .superRefine((dp, context) => {
      // The Gaussian mechanism is only (epsilon, delta)-private for delta > 0.
      if (dp.noisetype === 'gauss' && dp.delta === 0) {
        context.addIssue({ code: 'custom', path: ['delta'], message: 'must be greater than 0 for gauss noise' });
      }
    })
    .nullish(),
);

const sectionSchema = z.strictObject({
  computation: z.string().trim().min(1),
  data: z.string().min(1),
  separator: z
    .string()
    .refine((value) => value.length === 1 && !/["\r\n]/.test(value), {
      message: `must be a single character such as "," or ";" (a tab is "\\t", in double quotes)`,
    })
    .default(','),
  parameters: z.unknown().optional(),
  smpc: smpcSchema,
  dp: dpSchema,
});

export async function loadConfig(inputDir: string): Promise<SiteConfig> {
  const folder = resolve(inputDir);
  const configFile = resolve(folder, CONFIG_FILE);
  const document = parseYaml(await readConfigText(configFile, folder));

  if (!isMapping(document)) {
    throw new InputError(`${CONFIG_FILE}: must be a mapping with a '${APP_NAME}' key`, CONFIG_FILE);
  }
  if (!Object.hasOwn(document, APP_NAME)) {
    const found = Object.keys(document);
    const have = found.length > 0 ? found.map((key) => `'${key}'`).join(', ') : 'none';
    throw new InputError(`${CONFIG_FILE}: no '${APP_NAME}' section (top-level keys: ${have})`, CONFIG_FILE, APP_NAME);
  }

  const section = parseConfigPart(sectionSchema, document[APP_NAME], [APP_NAME]);
  const dataFile = resolveDataFile(folder, section.data);

  return {
    configFile,
    computation: section.computation,
    dataFile,
    dataName: section.data,
    separator: section.separator,
    parameters: section.parameters ?? {},
    smpc: section.smpc ?? null,
    dp: section.dp ? completeDp(section.dp) : null,
  };
}

/**
 * Validates one part of config.yml with zod and throws an InputError naming the file and the
 * field paths, e.g. `config.yml: fc-xstate-client.dp.epsilon must be greater than 0`. The
 * registry uses it for a computation's parameters, so all config errors read alike.
 */
export function parseConfigPart<T>(
  schema: z.ZodType<T>,
  value: unknown,
  path: readonly string[],
  file: string = CONFIG_FILE,
): T {
  const parsed = schema.safeParse(value, { error: describeIssue, reportInput: true });
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.flatMap((issue) => {
    const where = [...path, ...issue.path.map(String)];
    // One line per unknown key, so a typo reads like any other field error.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: formatPath([...where, key]), text: 'is not a known field' }));
    }
    return [{ field: formatPath(where), text: issue.message }];
  });
  const message = problems.map((problem) => `${problem.field} ${problem.text}`).join('; ');
  throw new InputError(`${file}: ${message}`, file, problems[0]?.field ?? null);
}

async function readConfigText(configFile: string, folder: string): Promise<string> {
  try {
    return await readFile(configFile, 'utf8');
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? String(error.code) : 'unknown error';
    if (code === 'ENOENT') throw new InputError(`${CONFIG_FILE}: not found in ${folder}`, CONFIG_FILE);
    throw new InputError(`${CONFIG_FILE}: cannot be read (${code})`, CONFIG_FILE);
  }
}

function parseYaml(text: string): unknown {
  // uniqueKeys (the default) rejects a key given twice instead of silently keeping one.
  const document = parseDocument(text);
  const error = document.errors[0];
  if (error) {
    const line = error.linePos?.[0]?.line;
    const where = line === undefined ? '' : ` (line ${line})`;
    // yaml's message repeats the position and draws the line; the first clause is enough.
    const reason = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new InputError(`${CONFIG_FILE}: not valid YAML${where}: ${reason}`, CONFIG_FILE);
  }
  return document.toJS();
}

function resolveDataFile(folder: string, data: string): string {
  const field = `${APP_NAME}.data`;
  if (isAbsolute(data)) {
    throw new InputError(`${CONFIG_FILE}: ${field} must be relative to the input folder (got '${data}')`, CONFIG_FILE, field);
  }
  const dataFile = resolve(folder, data);
  const inside = relative(folder, dataFile);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
    throw new InputError(`${CONFIG_FILE}: ${field} must name a file inside the input folder (got '${data}')`, CONFIG_FILE, field);
  }
  return dataFile;
}

function completeDp(dp: {
  serialization: 'json';
  noisetype: 'laplace' | 'gauss';
  epsilon: number;
  delta?: number | undefined;
  sensitivity?: number | undefined;
  clippingVal?: number | undefined;
}): DpOptions {
  const base = {
    serialization: dp.serialization,
    noisetype: dp.noisetype,
    epsilon: dp.epsilon,
    delta: dp.delta ?? DP_DEFAULT_DELTA[dp.noisetype],
  };
  if (dp.sensitivity === undefined && dp.clippingVal === undefined) {
    return { ...base, clippingVal: DP_DEFAULT_CLIPPING };
  }
  return {
    ...base,
    ...(dp.sensitivity === undefined ? {} : { sensitivity: dp.sensitivity }),
    ...(dp.clippingVal === undefined ? {} : { clippingVal: dp.clippingVal }),
  };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function formatPath(path: readonly string[]): string {
  return path.reduce((text, key) => (/^\d+$/.test(key) ? `${text}[${key}]` : text ? `${text}.${key}` : key), '');
}

/** Our wording for zod's issues: says what the value must be, in YAML's terms. */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `must be ${TYPE_NAMES[issue.expected] ?? issue.expected} (got ${describeValue(issue.input)})`;
    case 'too_small':
      return describeBound(issue.origin, issue.minimum, issue.inclusive ?? false, 'small');
    case 'too_big':
      return describeBound(issue.origin, issue.maximum, issue.inclusive ?? false, 'big');
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${JSON.stringify(issue.values[0])}`
        : `must be one of ${issue.values.map((value) => JSON.stringify(value)).join(', ')} (got ${describeValue(issue.input)})`;
    default:
      return undefined;
  }
}

const TYPE_NAMES: Partial<Record<string, string>> = {
  number: 'a number',
  int: 'a whole number',
  string: 'text',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
};

function describeBound(origin: string, bound: number | bigint, inclusive: boolean, side: 'small' | 'big'): string {
  if (origin === 'array' || origin === 'set') {
    return side === 'small' ? `must list at least ${bound} ${bound === 1 ? 'entry' : 'entries'}` : `must list at most ${bound} entries`;
  }
  if (origin === 'string') {
    if (side === 'small') return bound === 1 ? 'must not be empty' : `must be at least ${bound} characters long`;
    return `must be at most ${bound} characters long`;
  }
  if (side === 'small') return inclusive ? `must be at least ${bound}` : `must be greater than ${bound}`;
  return inclusive ? `must be at most ${bound}` : `must be less than ${bound}`;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = typeof value === 'string' ? `'${value}'` : String(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
