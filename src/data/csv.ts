/**
 * Reads a site's CSV file into a Table. The whole file is parsed up front so that structural
 * problems (no header, no rows, ragged rows, broken quotes) surface before any computation runs;
 * cells stay text until a computation asks for a column by type.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { CsvError, parse } from 'csv-parse/sync';
import { InputError } from './errors.ts';
import type { Table } from './table.ts';

/**
 * Cells read as missing, compared after trimming surrounding spaces. pandas' `read_csv` reads
 * all of these as NA by default (R's `read.csv` reads `NA` and empty numeric cells), so a file
 * written by either tool round-trips. The match is case-sensitive, as in pandas.
 */
export const MISSING_TOKENS: ReadonlySet<string> = new Set(['', 'NA', 'NaN', 'null']);

/** A plain decimal number: no hex, no `Infinity`, no trailing junk (which `parseFloat` accepts). */
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const DECIMAL_COMMA = /^[+-]?\d+,\d+$/;

export interface ReadTableOptions {
  /** The field separator; default `,`. */
  readonly separator?: string;
}

export async function readTable(path: string, options: ReadTableOptions = {}): Promise<Table> {
  const source = basename(path);
  const text = await readText(path, source);
  return parseTable(text, source, options.separator ?? ',');
}

async function readText(path: string, source: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? String(error.code) : 'unknown error';
    if (code === 'ENOENT') throw new InputError(`${source}: file not found (${path})`, source);
    if (code === 'EISDIR') throw new InputError(`${source}: is a folder, not a file (${path})`, source);
    throw new InputError(`${source}: cannot be read (${code})`, source);
  }
}

function parseTable(text: string, source: string, separator: string): Table {
  let records: string[][];
  try {
    // Ragged rows are checked below, to report them as a spreadsheet numbers rows.
    records = parse(text, { delimiter: separator, bom: true, relax_column_count: true });
  } catch (error) {
    if (error instanceof CsvError) {
      throw new InputError(`${source}: not a valid CSV file (${error.message})`, source);
    }
    throw error;
  }

  // A record's index + 1 is its row number in a spreadsheet (the header is row 1). Blank lines
  // are skipped, as pandas does, but still counted so later row numbers match the file.
  const isBlank = (record: readonly string[]) => record.length === 1 && record[0]?.trim() === '';
  const headerIndex = records.findIndex((record) => !isBlank(record));
  const header = records[headerIndex];
  if (header === undefined) throw new InputError(`${source}: the file is empty`, source);
  // Hand-written files often have a space after the separator; a column name never needs one.
  const columns = header.map((name) => name.trim());
  checkUniqueColumns(columns, source);

  const rows: string[][] = [];
  const rowNumbers: number[] = [];
  for (let index = headerIndex + 1; index < records.length; index++) {
    const record = records[index];
    if (record === undefined || isBlank(record)) continue;
    const row = index + 1;
    if (record.length !== columns.length) {
      throw new InputError(
        `${source}: row ${row} has ${record.length} cells, the header has ${columns.length}`,
        source,
      );
    }
    rows.push(record);
    rowNumbers.push(row);
  }
  if (rows.length === 0) throw new InputError(`${source}: no data rows, only a header`, source);

  const columnIndex = (column: string): number => {
    const index = columns.indexOf(column);
    if (index < 0) {
      throw new InputError(`${source}: column '${column}' not found (have: ${listColumns(columns)})`, source, column);
    }
    return index;
  };

  const cellsOf = (column: string): string[] => {
    const index = columnIndex(column);
    return rows.map((row) => row[index] ?? '');
  };

  return {
    source,
    columns,
    rowCount: rows.length,
    text(column) {
      return cellsOf(column).map((cell) => (isMissing(cell) ? null : cell));
    },
    numeric(column) {
      return cellsOf(column).map((cell, i) => {
        if (isMissing(cell)) return null;
        const value = parseNumber(cell);
        if (value === null) {
          throw new InputError(
            `${source}: row ${rowNumbers[i]}, column '${column}': ${describeCell(cell)} is not a number${hint(cell)}`,
            source,
            column,
          );
        }
        return value;
      });
    },
  };
}

function isMissing(cell: string): boolean {
  return MISSING_TOKENS.has(cell.trim());
}

function parseNumber(cell: string): number | null {
  const trimmed = cell.trim();
  if (!NUMBER.test(trimmed)) return null;
  const value = Number(trimmed);
  // `1e999` matches the pattern but is Infinity, which no computation (nor JSON) can carry.
  return Number.isFinite(value) ? value : null;
}

function hint(cell: string): string {
  return DECIMAL_COMMA.test(cell.trim()) ? " (decimal comma? write '.')" : '';
}

function describeCell(cell: string): string {
  const shown = cell.length > 40 ? `${cell.slice(0, 37)}...` : cell;
  return `'${shown}'`;
}

function checkUniqueColumns(columns: readonly string[], source: string): void {
  const seen = new Set<string>();
  for (const column of columns) {
    // Unnamed columns (a pandas index written with to_csv) are harmless until someone asks for one.
    if (column === '') continue;
    if (seen.has(column)) {
      throw new InputError(`${source}: column '${column}' appears twice in the header`, source, column);
    }
    seen.add(column);
  }
}

function listColumns(columns: readonly string[]): string {
  const named = columns.filter((column) => column !== '');
  const shown = named.slice(0, 20).join(', ');
  return named.length > 20 ? `${shown}, ... (${named.length} in all)` : shown;
}
