import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { APP_NAME, loadConfig } from '../src/data/config.ts';
import { InputError } from '../src/data/errors.ts';

const folders: string[] = [];

async function inputFolder(configText: string | null): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), 'fc-config-'));
  folders.push(folder);
  if (configText !== null) await writeFile(join(folder, 'config.yml'), configText);
  return folder;
}

/** A config.yml with the app section's lines (indented by the helper). */
function section(...lines: string[]): string {
  return `${APP_NAME}:\n${lines.map((line) => `  ${line}`).join('\n')}\n`;
}

const BASE = ['computation: statistics', 'data: data.csv'];

async function inputError(action: () => unknown): Promise<InputError> {
  try {
    await action();
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error('expected an InputError, but nothing was thrown');
}

async function configError(configText: string): Promise<InputError> {
  const folder = await inputFolder(configText);
  return inputError(() => loadConfig(folder));
}

test.after(async () => {
  await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
});

test('the app name is the platform key', () => {
  assert.is(APP_NAME, 'fc-xstate-client');
});

test('reads a bundled sample config: absolute paths, defaults, SMPC and DP off', async () => {
  const folder = fileURLToPath(new URL('../sample/biscoe/', import.meta.url));
  const config = await loadConfig(folder);
  assert.equal(config, {
    configFile: join(folder, 'config.yml'),
    computation: 'statistics',
    dataFile: join(folder, 'data.csv'),
    dataName: 'data.csv',
    separator: ',',
    parameters: { columns: ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g'] },
    smpc: null,
    dp: null,
  });
});

test('the documented example: smpc true takes the defaults, dp keeps what is given', async () => {
  const folder = await inputFolder(
    section(
      'computation: statistics',
      'data: data.csv',
      'separator: ","',
      'parameters:',
      '  columns: [bill_length_mm, body_mass_g]',
      'smpc: true',
      'dp:',
      '  noisetype: laplace',
      '  epsilon: 1',
      '  sensitivity: 1',
    ),
  );
  const config = await loadConfig(folder);
  assert.equal(config.parameters, { columns: ['bill_length_mm', 'body_mass_g'] });
  assert.equal(config.smpc, { operation: 'add', serialization: 'json', shards: 0, exponent: 8 });
  // Sensitivity given, so no default clipping.
  assert.equal(config.dp, { serialization: 'json', noisetype: 'laplace', epsilon: 1, delta: 0, sensitivity: 1 });
});

test('dp: true takes every default, clipping 10 included', async () => {
  const folder = await inputFolder(section(...BASE, 'dp: true', 'smpc: false'));
  const config = await loadConfig(folder);
  assert.equal(config.dp, { serialization: 'json', noisetype: 'laplace', epsilon: 0.99999, delta: 0, clippingVal: 10 });
  assert.is(config.smpc, null);
});

test('gauss noise defaults delta to 0.01; a given clippingVal is kept', async () => {
  const folder = await inputFolder(section(...BASE, 'dp: {noisetype: gauss, clippingVal: 3}'));
  const config = await loadConfig(folder);
  assert.equal(config.dp, { serialization: 'json', noisetype: 'gauss', epsilon: 0.99999, delta: 0.01, clippingVal: 3 });
});

test('delta = 0 is valid for laplace (the reference engine wrongly rejects it)', async () => {
  const folder = await inputFolder(section(...BASE, 'dp: {noisetype: laplace, delta: 0}'));
  assert.is((await loadConfig(folder)).dp?.delta, 0);
});

test('partial smpc options are completed', async () => {
  const folder = await inputFolder(section(...BASE, 'smpc: {shards: 2, exponent: 0}'));
  assert.equal((await loadConfig(folder)).smpc, { operation: 'add', serialization: 'json', shards: 2, exponent: 0 });
});

test('absent parameters become an empty mapping (the computation reports what it misses)', async () => {
  const folder = await inputFolder(section(...BASE));
  assert.equal((await loadConfig(folder)).parameters, {});
});

test('a data file in a subfolder is fine; a tab separator is read', async () => {
  const folder = await inputFolder(section('computation: statistics', 'data: site/data.tsv', 'separator: "\\t"'));
  const config = await loadConfig(folder);
  assert.is(config.dataFile, join(folder, 'site', 'data.tsv'));
  assert.is(config.dataName, 'site/data.tsv');
  assert.is(config.separator, '\t');
});

const invalid: [string, string, string][] = [
  ['dp: {epsilon: 0}', 'config.yml: fc-xstate-client.dp.epsilon must be greater than 0', 'fc-xstate-client.dp.epsilon'],
  ['dp: {epsilon: -1}', 'config.yml: fc-xstate-client.dp.epsilon must be greater than 0', 'fc-xstate-client.dp.epsilon'],
  ["dp: {epsilon: '1'}", "config.yml: fc-xstate-client.dp.epsilon must be a number (got '1')", 'fc-xstate-client.dp.epsilon'],
  ['dp: {noisetype: gauss, delta: 0}', 'config.yml: fc-xstate-client.dp.delta must be greater than 0 for gauss noise', 'fc-xstate-client.dp.delta'],
  ['dp: {noisetype: gauss, delta: 1}', 'config.yml: fc-xstate-client.dp.delta must be less than 1', 'fc-xstate-client.dp.delta'],
  ['dp: {delta: -0.1}', 'config.yml: fc-xstate-client.dp.delta must be at least 0', 'fc-xstate-client.dp.delta'],
  ['dp: {noisetype: gaussian}', `config.yml: fc-xstate-client.dp.noisetype must be one of "laplace", "gauss" (got 'gaussian')`, 'fc-xstate-client.dp.noisetype'],
  ['dp: {sensitivity: 0}', 'config.yml: fc-xstate-client.dp.sensitivity must be greater than 0', 'fc-xstate-client.dp.sensitivity'],
  ['dp: {clippingVal: -2}', 'config.yml: fc-xstate-client.dp.clippingVal must be greater than 0', 'fc-xstate-client.dp.clippingVal'],
  ['dp: {serialization: pickle}', 'config.yml: fc-xstate-client.dp.serialization must be "json"', 'fc-xstate-client.dp.serialization'],
  ['dp: yes', 'config.yml: fc-xstate-client.dp must be true, false or a mapping of options', 'fc-xstate-client.dp'],
  ['dp: {epsilon: 1, epsilom: 2}', 'config.yml: fc-xstate-client.dp.epsilom is not a known field', 'fc-xstate-client.dp.epsilom'],
  ['smpc: {exponent: 16}', 'config.yml: fc-xstate-client.smpc.exponent must be at most 15', 'fc-xstate-client.smpc.exponent'],
  ['smpc: {exponent: -1}', 'config.yml: fc-xstate-client.smpc.exponent must be at least 0', 'fc-xstate-client.smpc.exponent'],
  ['smpc: {exponent: 2.5}', 'config.yml: fc-xstate-client.smpc.exponent must be a whole number (got 2.5)', 'fc-xstate-client.smpc.exponent'],
  ['smpc: {shards: -1}', 'config.yml: fc-xstate-client.smpc.shards must be at least 0', 'fc-xstate-client.smpc.shards'],
  ['smpc: {shards: 1.5}', 'config.yml: fc-xstate-client.smpc.shards must be a whole number (got 1.5)', 'fc-xstate-client.smpc.shards'],
  ['smpc: {operation: subtract}', `config.yml: fc-xstate-client.smpc.operation must be one of "add", "multiply" (got 'subtract')`, 'fc-xstate-client.smpc.operation'],
  ['separator: ";;"', 'config.yml: fc-xstate-client.separator must be a single character such as "," or ";" (a tab is "\\t", in double quotes)', 'fc-xstate-client.separator'],
  ['separtor: ";"', 'config.yml: fc-xstate-client.separtor is not a known field', 'fc-xstate-client.separtor'],
];

for (const [line, message, field] of invalid) {
  test(`rejects ${line}`, async () => {
    const error = await configError(section(...BASE, line));
    assert.is(error.message, message);
    assert.is(error.file, 'config.yml');
    assert.is(error.field, field);
  });
}

test('computation and data are required', async () => {
  const error = await configError(section('separator: ","'));
  assert.is(
    error.message,
    'config.yml: fc-xstate-client.computation is required; fc-xstate-client.data is required',
  );
  const empty = await configError(section("computation: ''", 'data: data.csv'));
  assert.is(empty.message, 'config.yml: fc-xstate-client.computation must not be empty');
});

test('a missing app section lists the top-level keys found', async () => {
  const error = await configError('fc-other-app:\n  computation: x\nfc_xstate_client:\n  data: d.csv\n');
  assert.is(error.message, "config.yml: no 'fc-xstate-client' section (top-level keys: 'fc-other-app', 'fc_xstate_client')");
});

test('an empty or non-mapping config.yml is an error', async () => {
  assert.match((await configError('')).message, /^config\.yml: must be a mapping with a 'fc-xstate-client' key/);
  assert.match((await configError('- a\n- b\n')).message, /^config\.yml: must be a mapping/);
  assert.is((await configError(`${APP_NAME}:\n`)).message, 'config.yml: fc-xstate-client must be a mapping (got null)');
});

test('invalid YAML names the file and line; a key given twice is invalid', async () => {
  const broken = await configError(`${APP_NAME}:\n  parameters: [a,\n`);
  assert.match(broken.message, /^config\.yml: not valid YAML \(line \d+\): /);
  const twice = await configError(section(...BASE, 'data: other.csv'));
  assert.is(twice.message, 'config.yml: not valid YAML (line 4): Map keys must be unique');
});

for (const data of ['../x.csv', 'sub/../../x.csv', '.', '/etc/passwd']) {
  test(`a data path escaping the input folder is an error: ${data}`, async () => {
    const error = await configError(section('computation: statistics', `data: ${data}`));
    assert.match(error.message, /^config\.yml: fc-xstate-client\.data must /);
    assert.ok(error.message.includes(`'${data}'`));
    assert.is(error.field, 'fc-xstate-client.data');
  });
}

test('a missing config.yml says so, with the folder', async () => {
  const folder = await inputFolder(null);
  const error = await inputError(() => loadConfig(folder));
  assert.is(error.message, `config.yml: not found in ${folder}`);
});

test('the data file itself is not checked here', async () => {
  const folder = await inputFolder(section('computation: statistics', 'data: absent.csv'));
  await mkdir(join(folder, 'unrelated'));
  assert.is((await loadConfig(folder)).dataFile, join(folder, 'absent.csv'));
});

test.run();
