/**
 * The coefficient table both regressions write: Markdown for report.md and CSV for result.csv,
 * with the numbers formatted alike.
 */

export interface CoefficientRow {
  readonly term: string;
  readonly estimate: number;
  readonly standardError: number | null;
  /** The t value (linear) or z value (logistic); null where no test is made. */
  readonly statistic: number | null;
  readonly p: number | null;
}

/** R's threshold for showing a p value: below it a double cannot tell the difference from 0. */
const SMALLEST_P = 2.2e-16;

export function coefficientTable(rows: readonly CoefficientRow[], statistic: 't' | 'z'): string[] {
  return [
    `| term | estimate | std. error | ${statistic} value | p value |`,
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (row) =>
        `| ${markdownText(row.term)} | ${formatNumber(row.estimate)} | ${formatNumber(row.standardError)} | ` +
        `${formatNumber(row.statistic)} | ${formatP(row.p)} |`,
    ),
  ];
}

export function coefficientCsv(rows: readonly CoefficientRow[], statistic: 't' | 'z'): string {
  const header = ['term', 'estimate', 'std_error', `${statistic}_value`, 'p_value'];
  // NA is what our own reader, pandas and R read back as missing.
  const cell = (value: number | null) => (value === null ? 'NA' : String(value));
  const lines = rows.map((row) =>
    [csvText(row.term), cell(row.estimate), cell(row.standardError), cell(row.statistic), cell(row.p)].join(','),
  );
  return [header.join(','), ...lines].join('\n') + '\n';
}

/** Six significant digits, whole numbers as they are, null as n/a. */
export function formatNumber(value: number | null): string {
  if (value === null) return 'n/a';
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(6)));
}

export function formatP(p: number | null): string {
  if (p === null) return 'n/a';
  if (p < SMALLEST_P) return `< ${SMALLEST_P}`;
  return String(Number(p.toPrecision(3)));
}

export function markdownText(text: string): string {
  return text.replaceAll('|', '\\|');
}

function csvText(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}
