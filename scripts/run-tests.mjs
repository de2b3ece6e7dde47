#!/usr/bin/env node
// `npm test [-- FILE_OR_DIR ...]`: runs tests/**/*.test.ts (or the given subset) with node:test + tsx.
import { spawn } from 'node:child_process';
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { delimiter, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../..');

function testFilesUnder(dir) {
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => f.endsWith('.test.ts') && !f.split(/[\\/]/).includes('node_modules'));
}

function onPath(cmd) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const args = process.argv.slice(2);
let files = [];
for (const arg of args.length ? args : [join(root, 'tests')]) {
  let st;
  try {
    st = statSync(arg);
  } catch {
    console.error(`run-tests: no such file or directory: ${arg}`);
    process.exit(1);
  }
  files.push(...(st.isDirectory() ? testFilesUnder(arg) : [arg]));
}
files = [...new Set(files)].sort();
if (files.length === 0) {
  console.error('run-tests: no *.test.ts files found');
  process.exit(1);
}

const env = {
  ...process.env,
  // The AWS SDK warns about Node 20 once per process; it is noise in test output.
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ?? 'true',
};
if (!onPath('redis-server')) {
  if (process.env.CI === 'true') {
    console.error('run-tests: redis-server not found on PATH; CI must run the Redis tests (install redis-server).');
    process.exit(1);
  }
  console.warn('redis-server not found: Redis tests will be skipped');
  env.KARASU_TEST_NO_REDIS = '1';
}

// cwd = repo root: `--import tsx` is resolved from there.
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', ...files.map((f) => relative(root, resolve(f)))],
  { stdio: 'inherit', env, cwd: root },
);
// Ctrl-C reaches the child through the terminal's process group; a SIGTERM sent to us alone is passed on.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 1 : 0);
});
