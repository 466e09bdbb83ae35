#!/usr/bin/env node
// Runs the uvu suite through tsx and ends with one plain line, `N passed, N failed`, which CI
// reads; the exit code is non-zero on any failure, or when no test ran at all.
// Extra arguments narrow the run: `npm test -- machine` runs test files matching /machine/.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const uvu = fileURLToPath(new URL('../node_modules/uvu/bin.js', import.meta.url));
const pattern = process.argv[2] ?? '\\.test\\.ts$';

const child = spawn(process.execPath, [uvu, '-r', 'tsx', 'test', pattern], {
  env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
  stdio: ['ignore', 'pipe', 'inherit'],
});

// A test that never ends (a server left open, a timer) must not hang CI: give up after a bound.
const LIMIT_MS = Number(process.env.TEST_TIMEOUT_MS ?? 10 * 60 * 1000);
let timedOut = false;
const watchdog = setTimeout(() => {
  timedOut = true;
  child.kill('SIGKILL');
}, LIMIT_MS);

let output = '';
child.stdout.on('data', (chunk) => {
  output += chunk;
  process.stdout.write(chunk);
});

child.on('close', (code, signal) => {
  clearTimeout(watchdog);
  if (timedOut) {
    const files = output.match(/^\S+\.test\.ts$/gm) ?? [];
    console.log('0 passed, 1 failed');
    console.error(`the tests did not end within ${LIMIT_MS / 1000} s; the last file started was ${files.at(-1) ?? 'unknown'}`);
    process.exit(1);
  }
  const count = (label) => {
    const match = output.match(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm'));
    return match ? Number(match[1]) : null;
  };
  const total = count('Total');
  const passed = count('Passed');
  if (total === null || passed === null) {
    console.log(`0 passed, 1 failed`);
    console.error(`uvu ended (${signal ?? `exit ${code}`}) without a summary: a test file crashed before its run.`);
    process.exit(1);
  }
  const failed = total - passed + (code !== 0 && total === passed ? 1 : 0);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 || total === 0 ? 1 : 0);
});
