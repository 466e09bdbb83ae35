import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MISSING_TOKENS, readTable } from '../src/data/csv.ts';
import { InputError } from '../src/data/errors.ts';

const sample = (site: string) => fileURLToPath(new URL(`../sample/${site}/data.csv`, import.meta.url));
const folders: string[] = [];

async function csvFile(content: string, name = 'data.csv'): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), 'fc-csv-'));
  folders.push(folder);
  const path = join(folder, name);
  await writeFile(path, content);
  return path;
}

/** Runs `action` and returns the InputError it must throw. */
async function inputError(action: () => unknown): Promise<InputError> {
  try {
    await action();
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error('expected an InputError, but nothing was thrown');
}

test.after(async () => {
  await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
});

test('reads a bundled sample site, NA as missing', async () => {
  const table = await readTable(sample('torgersen'));
  assert.is(table.source, 'data.csv');
  assert.equal(table.columns, ['species', 'island', 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex']);
  assert.is(table.rowCount, 52);
  const mass = table.numeric('body_mass_g');
  assert.equal(mass.slice(0, 4), [3750, 3800, 3250, null]);
  assert.is(table.text('species')[0], 'Adelie');
  assert.is(table.text('sex')[3], null);
});

test('empty cells, NA, NaN and null are missing (pandas reads all four as NA); case matters', async () => {
  assert.equal([...MISSING_TOKENS].sort(), ['', 'NA', 'NaN', 'null']);
  const table = await readTable(await csvFile('x,label\n1,a\n,b\nNA,NA\n NaN ,c\nnull,null\n2,na\n'));
  assert.equal(table.numeric('x'), [1, null, null, null, null, 2]);
  assert.equal(table.text('label'), ['a', 'b', null, 'c', null, 'na']);
});

test('numbers: plain decimal forms are accepted', async () => {
  const table = await readTable(await csvFile('x\n-1.5e3\n.5\n5.\n+2\n 7 \n0\n1E-2\n'));
  assert.equal(table.numeric('x'), [-1500, 0.5, 5, 2, 7, 0, 0.01]);
});

for (const junk of ['12abc', '0x1A', 'Infinity', '1e999', '1.2.3', 'na', '--1', '1 000']) {
  test(`numbers: '${junk}' is rejected with file, row and column`, async () => {
    const table = await readTable(await csvFile(`id,x\n1,3\n2,4\n3,${junk}\n`));
    const error = await inputError(() => table.numeric('x'));
    assert.is(error.message, `data.csv: row 4, column 'x': '${junk}' is not a number`);
    assert.is(error.file, 'data.csv');
    assert.is(error.field, 'x');
  });
}

test('a decimal comma gets a hint', async () => {
  const table = await readTable(await csvFile('id;x\n1;2,5\n'), { separator: ';' });
  const error = await inputError(() => table.numeric('x'));
  assert.is(error.message, "data.csv: row 2, column 'x': '2,5' is not a number (decimal comma? write '.')");
});

test('row numbers are those a spreadsheet shows: blank lines count, a quoted line break does not', async () => {
  const table = await readTable(await csvFile('note,x\n"two\nlines",1\n\nok,oops\n'));
  assert.is(table.rowCount, 2);
  const error = await inputError(() => table.numeric('x'));
  assert.match(error.message, /^data\.csv: row 4, column 'x'/);
  assert.is(table.text('note')[0], 'two\nlines');
});

test('an unknown column lists the available ones', async () => {
  const table = await readTable(sample('dream'));
  const error = await inputError(() => table.numeric('bill_len'));
  assert.is(
    error.message,
    "data.csv: column 'bill_len' not found (have: species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex)",
  );
  assert.is(error.field, 'bill_len');
  assert.instance(await inputError(() => table.text('Species')), InputError);
});

test('a missing file is named, with its path', async () => {
  const folder = await mkdtemp(join(tmpdir(), 'fc-csv-'));
  folders.push(folder);
  const error = await inputError(() => readTable(join(folder, 'data.csv')));
  assert.is(error.message, `data.csv: file not found (${join(folder, 'data.csv')})`);
  assert.is(error.file, 'data.csv');
});

test('a folder instead of a file is named', async () => {
  const folder = await mkdtemp(join(tmpdir(), 'fc-csv-'));
  folders.push(folder);
  const error = await inputError(() => readTable(folder));
  assert.match(error.message, /is a folder, not a file/);
});

test('an empty file (or only blank lines) is an error naming the file', async () => {
  for (const content of ['', '\n\n', '  \n']) {
    const error = await inputError(async () => readTable(await csvFile(content, 'site.csv')));
    assert.is(error.message, 'site.csv: the file is empty');
  }
});

test('a header without rows is an error naming the file', async () => {
  const error = await inputError(async () => readTable(await csvFile('a,b\n\n')));
  assert.is(error.message, 'data.csv: no data rows, only a header');
});

test('a ragged row is an error naming the file and row', async () => {
  const error = await inputError(async () => readTable(await csvFile('a,b,c\n1,2,3\n4,5\n')));
  assert.is(error.message, 'data.csv: row 3 has 2 cells, the header has 3');
  const longer = await inputError(async () => readTable(await csvFile('a,b\n1,2\n3,4\n5,6,7\n')));
  assert.is(longer.message, 'data.csv: row 4 has 3 cells, the header has 2');
});

test('broken quoting is an error naming the file', async () => {
  const error = await inputError(async () => readTable(await csvFile('a,b\n1,"2\n')));
  assert.match(error.message, /^data\.csv: not a valid CSV file \(/);
});

test('a column name given twice is an error', async () => {
  const error = await inputError(async () => readTable(await csvFile('a,b,a\n1,2,3\n')));
  assert.is(error.message, "data.csv: column 'a' appears twice in the header");
});

test('separator, byte-order mark, CRLF and spaces around header names', async () => {
  const table = await readTable(await csvFile('\uFEFFa\t b \r\n1\t2\r\n'), { separator: '\t' });
  assert.equal(table.columns, ['a', 'b']);
  assert.equal(table.numeric('b'), [2]);
  const semicolons = await readTable(await csvFile('a;b\n1;2\n'), { separator: ';' });
  assert.equal(semicolons.numeric('a'), [1]);
});

test('an unnamed first column (a pandas index) is allowed', async () => {
  const table = await readTable(await csvFile(',x\n0,1.5\n1,2.5\n'));
  assert.equal(table.numeric('x'), [1.5, 2.5]);
});

test.run();
