/**
 * Federated descriptive statistics of numeric columns, equal to the statistics of the pooled
 * rows of all sites. Two rounds, the corrected two-pass algorithm (stable where the textbook
 * `sum of squares - n * mean^2` cancels catastrophically):
 *
 *   1. each site sends per column its count, sum and missing count (and its min/max unless the
 *      round is secure: SMPC can only sum); the coordinator pools counts and means;
 *   2. each site sends per column the sum of squared deviations from the pooled mean (and the
 *      plain sum of deviations, which corrects the rounding error of that mean); the coordinator
 *      adds them up into the sample variance (n - 1, as pandas and R compute it).
 *
 * Every contribution has the same shape at every site, because SMPC sums them element-wise.
 * With DP the numbers arrive noisy (a count may be 341.6 or even negative), so every derived
 * figure is guarded: counts are clamped at 0, a mean needs a count of at least 1, a variance at
 * least 2, and nothing that is not a finite number is ever produced (JSON cannot hold it).
 */
import { z } from 'zod';
import { InputError } from '../data/errors.ts';
import type { Table } from '../data/table.ts';
import type { Computation } from './types.ts';

const paramsSchema = z.strictObject({
  columns: z
    .array(z.string().min(1))
    .min(1)
    .superRefine((columns, context) => {
      const repeated = columns.filter((column, index) => columns.indexOf(column) !== index);
      if (repeated.length > 0) {
        context.addIssue({ code: 'custom', message: `must not list a column twice ('${repeated[0]}')` });
      }
    }),
});

export type StatisticsParams = z.infer<typeof paramsSchema>;

interface ColumnValues {
  readonly values: readonly number[];
  readonly missing: number;
}

/** A site's non-missing values per column, in the order of `params.columns`. */
export type StatisticsData = readonly ColumnValues[];

/**
 * Per column (keyed by name, so a site configured with other columns is caught), named sums:
 * round 1 `n, sum, missing` (+ `min, max` when not secure); round 2 `squares, deviation`.
 */
export type StatisticsContribution = { readonly [column: string]: { readonly [quantity: string]: number } };

export type ColumnMeans = {
  readonly column: string;
  readonly count: number;
  readonly missing: number;
  readonly mean: number | null;
  readonly min: number | null;
  readonly max: number | null;
};

export type ColumnStatistics = {
  readonly column: string;
  readonly count: number;
  readonly missing: number;
  readonly mean: number | null;
  readonly variance: number | null;
  readonly sd: number | null;
  readonly min: number | null;
  readonly max: number | null;
};

export type StatisticsGlobal =
  | { readonly stage: 'means'; readonly columns: readonly ColumnMeans[] }
  | { readonly stage: 'final'; readonly columns: readonly ColumnStatistics[] };

export type StatisticsResult = {
  readonly computation: 'statistics';
  readonly columns: readonly ColumnStatistics[];
};

const FIELDS = ['column', 'count', 'missing', 'mean', 'variance', 'sd', 'min', 'max'] as const;

export const statistics: Computation<
  StatisticsParams,
  StatisticsData,
  StatisticsContribution,
  StatisticsGlobal,
  StatisticsResult
> = {
  name: 'statistics',
  params: paramsSchema,

  expectedRounds: () => 2,

  prepare(table: Table, params) {
    return params.columns.map((column) => {
      const cells = table.numeric(column);
      const values = cells.filter((value) => value !== null);
      return { values, missing: cells.length - values.length };
    });
  },

  localStep(data, previous, { params, secure }) {
    if (previous === null) {
      return byColumn(params.columns, (column, index) => {
        const { values, missing } = valuesAt(data, index, column);
        const sums = { n: values.length, sum: checkedSum(values, column), missing };
        if (secure) return sums;
        // Placeholders keep the shape identical at every site; the coordinator ignores them for n = 0.
        return values.length === 0
          ? { ...sums, min: 0, max: 0 }
          : { ...sums, min: values.reduce(lesser), max: values.reduce(greater) };
      });
    }
    if (previous.stage !== 'means') throw new Error('statistics: no round after the final result');
    const means = previous.columns;
    return byColumn(params.columns, (column, index) => {
      const { values } = valuesAt(data, index, column);
      const mean = means.find((entry) => entry.column === column)?.mean;
      if (mean === undefined) throw columnMismatch(column);
      if (mean === null) return { squares: 0, deviation: 0 };
      const deviations = values.map((value) => value - mean);
      return {
        squares: checkedSum(deviations.map((d) => d * d), column),
        deviation: checkedSum(deviations, column),
      };
    });
  },

  aggregate(contributions, previous, { params, secure }) {
    if (contributions.length === 0) throw new Error('statistics: no contributions to aggregate');
    if (previous === null) {
      const columns = params.columns.map((column): ColumnMeans => {
        const total = (quantity: string) => sumOver(contributions, column, quantity);
        const count = Math.max(0, total('n'));
        const extremes = secure ? { min: null, max: null } : extremesOver(contributions, column);
        return { column, count, missing: Math.max(0, total('missing')), mean: meanOf(total('sum'), count), ...extremes };
      });
      return { global: { stage: 'means', columns }, final: false };
    }
    if (previous.stage !== 'means') throw new Error('statistics: no round after the final result');
    const columns = params.columns.map((column): ColumnStatistics => {
      const pooled = previous.columns.find((entry) => entry.column === column);
      if (pooled === undefined) throw columnMismatch(column);
      const variance = varianceOf(
        sumOver(contributions, column, 'squares'),
        sumOver(contributions, column, 'deviation'),
        pooled.count,
      );
      return {
        column,
        count: pooled.count,
        missing: pooled.missing,
        mean: pooled.mean,
        variance,
        sd: variance === null ? null : finiteOrNull(Math.sqrt(variance)),
        min: pooled.min,
        max: pooled.max,
      };
    });
    return { global: { stage: 'final', columns }, final: true };
  },

  result(final) {
    if (final.stage !== 'final') throw new Error('statistics: the result needs the final round');
    return { computation: 'statistics', columns: final.columns };
  },

  report(result) {
    const rows = result.columns.map((entry) => FIELDS.map((field) => formatCell(entry[field])));
    const table = [
      `| ${FIELDS.join(' | ')} |`,
      `|${FIELDS.map((field) => (field === 'column' ? ' --- ' : ' ---: ')).join('|')}|`,
      ...rows.map((cells) => `| ${cells.join(' | ')} |`),
    ];
    const notes = reportNotes(result.columns);
    return [
      '# Descriptive statistics',
      '',
      'Pooled over all sites; the variance is the sample variance (n - 1), sd its square root.',
      '',
      ...table,
      ...(notes.length > 0 ? ['', ...notes.map((note) => `- ${note}`)] : []),
      '',
    ].join('\n');
  },

  csv(result) {
    const lines = result.columns.map((entry) =>
      FIELDS.map((field) => {
        const value = entry[field];
        if (typeof value === 'string') return csvText(value);
        // NA is what our own reader, pandas and R read back as missing.
        return value === null ? 'NA' : String(value);
      }).join(','),
    );
    return [FIELDS.join(','), ...lines].join('\n') + '\n';
  },
};

function byColumn(
  columns: readonly string[],
  sums: (column: string, index: number) => { readonly [quantity: string]: number },
): StatisticsContribution {
  // fromEntries defines own properties, so even a column named `__proto__` stays plain data.
  return Object.fromEntries(columns.map((column, index) => [column, sums(column, index)]));
}

function valuesAt(data: StatisticsData, index: number, column: string): ColumnValues {
  const entry = data[index];
  if (entry === undefined) throw new Error(`statistics: no prepared values for column '${column}'`);
  return entry;
}

/** Neumaier's compensated sum: keeps the pooled sums exact to the last digit or so. */
function checkedSum(values: readonly number[], column: string): number {
  let sum = 0;
  let compensation = 0;
  for (const value of values) {
    const next = sum + value;
    compensation += Math.abs(sum) >= Math.abs(value) ? sum - next + value : value - next + sum;
    sum = next;
  }
  const total = sum + compensation;
  if (!Number.isFinite(total)) {
    throw new InputError(`statistics: the values of column '${column}' are too large to add up`, null, column);
  }
  return total;
}

/** One quantity of one column, summed over the contributions (which must all carry it). */
function sumOver(contributions: readonly StatisticsContribution[], column: string, quantity: string): number {
  return checkedSum(
    contributions.map((contribution) => quantityOf(contribution, column, quantity)),
    column,
  );
}

function extremesOver(
  contributions: readonly StatisticsContribution[],
  column: string,
): { min: number | null; max: number | null } {
  // Under DP a count arrives noisy: a site whose count rounds to 0 had (almost surely) no values.
  const withValues = contributions.filter((contribution) => quantityOf(contribution, column, 'n') >= 0.5);
  if (withValues.length === 0) return { min: null, max: null };
  return {
    min: withValues.map((contribution) => quantityOf(contribution, column, 'min')).reduce(lesser),
    max: withValues.map((contribution) => quantityOf(contribution, column, 'max')).reduce(greater),
  };
}

// Not Math.min(...values): spreading a large column overflows the call stack.
const lesser = (a: number, b: number) => (b < a ? b : a);
const greater = (a: number, b: number) => (b > a ? b : a);

function quantityOf(contribution: StatisticsContribution, column: string, quantity: string): number {
  const sums = Object.hasOwn(contribution, column) ? contribution[column] : undefined;
  if (typeof sums !== 'object' || sums === null) throw columnMismatch(column);
  const value = Object.hasOwn(sums, quantity) ? sums[quantity] : undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Error(`statistics: a contribution's '${quantity}' for column '${column}' is not a finite number`);
  }
  return value;
}

function columnMismatch(column: string): InputError {
  return new InputError(
    `config.yml: a site sent no figures for column '${column}'; every site must list the same parameters.columns`,
    'config.yml',
    'parameters.columns',
  );
}

function meanOf(sum: number, count: number): number | null {
  return count >= 1 ? finiteOrNull(sum / count) : null;
}

/** Corrected two-pass: sum((x - m)^2) - (sum(x - m))^2 / n, which is exact even when m is slightly off. */
function varianceOf(squares: number, deviation: number, count: number): number | null {
  if (count < 2) return null;
  // Noise (DP) can push the corrected sum below zero; a variance never is.
  const corrected = Math.max(0, squares - (deviation * deviation) / count);
  return finiteOrNull(corrected / (count - 1));
}

function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}

function formatCell(value: string | number | null): string {
  if (value === null) return 'n/a';
  if (typeof value === 'string') return value.replaceAll('|', '\\|');
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(6)));
}

function reportNotes(columns: readonly ColumnStatistics[]): string[] {
  const notes: string[] = [];
  if (columns.some((entry) => entry.count >= 1 && entry.min === null)) {
    notes.push(
      'min and max are not available: with secure aggregation (SMPC) the coordinator only receives sums, and a minimum is not a sum.',
    );
  }
  if (columns.some((entry) => !Number.isInteger(entry.count) || !Number.isInteger(entry.missing))) {
    notes.push(
      'Counts are not whole numbers: the figures carry differential-privacy (DP) noise, so every value is approximate.',
    );
  }
  if (columns.some((entry) => entry.count < 2)) {
    notes.push('n/a: too few values (a mean needs at least one, a variance at least two).');
  }
  return notes;
}

function csvText(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
