// Fault injection, the environment: a job file that is a directory or unreadable, a data
// directory under a file, on a read-only file system or where we may not go, a database we
// may not write. Each is exit 1 (QUEUECTL_ENVIRONMENT), one line naming the path and what to
// do, never "unexpected error", and nothing written. Cases that need root (another user, a
// mount) are skipped with a message elsewhere, and fail when CI=true.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, type Result, cleanup, cli, events, newHome, ok, refused, run, scratch } from './helpers/cli.ts';
import { mountTmpfs } from './helpers/disk.ts';

test.after(cleanup);

const isRoot = process.getuid?.() === 0;
const needsRoot = (what: string): boolean => {
  if (isRoot) return true;
  if (process.env.CI === 'true') assert.unreachable(`CI must run the tests as root (${what})`);
  console.log(`  skipped: needs root (${what})`);
  return false;
};

/** queuectl as user 65534 (setpriv), run to completion. */
const asNobody = (args: string[]): Promise<Result> =>
  new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, ...args], { cwd: '/', env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - started, args }));
  });

/** A directory user 65534 owns, under one it can reach. */
const nobodysDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'queuectl-fault-env-'));
  chmodSync(dir, 0o755);
  const own = join(dir, 'nobody');
  mkdirSync(own, { mode: 0o700 });
  chownSync(own, 65534, 65534);
  return own;
};

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('enqueue --file <a directory>: exit 1, one line naming it, nothing created', async () => {
  const home = newHome('file-dir');
  const dir = scratch('a-dir');
  refused(await run(['enqueue', '--file', dir, '--home', home]), 1, new RegExp(`^queuectl: cannot read the job file ${esc(dir)}: it is a directory; give a file\\n$`));
  assert.not.ok(existsSync(home), 'no data directory was created');
});

test('enqueue --file <a file we may not read> (as another user): exit 1, permission denied, nothing written', async () => {
  if (!needsRoot('runs queuectl as user 65534')) return;
  const own = nobodysDir();
  const home = join(own, 'home');
  const secret = join(own, '..', 'secret.ndjson');
  writeFileSync(secret, '{"command":"true"}\n', { mode: 0o600 }); // root's, unreadable to 65534
  try {
    ok(await asNobody(['enqueue', 'echo first', '--id', 'first', '--home', home]));
    refused(await asNobody(['enqueue', '--file', secret, '--home', home]), 1, new RegExp(`^queuectl: cannot read the job file ${esc(secret)}: permission denied; check its permissions and owner\\n$`));
    const log = (await asNobody(['events', '--json', '--home', home])).stdout.trim().split('\n');
    assert.is(log.length, 1, 'only the first job is in the log');
  } finally {
    rmSync(join(own, '..'), { recursive: true, force: true });
  }
});

test('--home under a file (ENOTDIR): exit 1, one line naming it', async () => {
  const file = join(scratch('home-file'), 'plain');
  writeFileSync(file, 'not a directory');
  for (const args of [['status'], ['enqueue', 'true'], ['worker', 'start', '--drain']]) {
    refused(await run([...args, '--home', join(file, 'home')]), 1, new RegExp(`^queuectl: cannot use the data directory ${esc(join(file, 'home'))}: not a directory; a part of the path is a file, not a directory\\n$`));
  }
});

test('--home where we may not create it (EACCES, as another user): exit 1, one line naming it', async () => {
  if (!needsRoot('runs queuectl as user 65534')) return;
  const closed = mkdtempSync(join(tmpdir(), 'queuectl-fault-closed-')); // root's, 0700
  try {
    refused(await asNobody(['enqueue', 'true', '--home', join(closed, 'home')]), 1, new RegExp(`^queuectl: cannot use the data directory ${esc(join(closed, 'home'))}: permission denied; check its permissions and owner\\n$`));
    assert.is(readdirSync(closed).length, 0);
  } finally {
    rmSync(closed, { recursive: true, force: true });
  }
});

test('a database we may not write (EACCES, as another user): exit 1 naming it, nothing written, all there once fixed', async () => {
  if (!needsRoot('runs queuectl as user 65534')) return;
  const own = nobodysDir();
  const home = join(own, 'home');
  try {
    ok(await asNobody(['enqueue', 'echo first', '--id', 'first', '--home', home]));
    chmodSync(join(home, 'db'), 0o500); // LevelDB cannot create its new files there
    for (const args of [['status'], ['enqueue', 'echo second', '--id', 'second']]) {
      refused(await asNobody([...args, '--home', home]), 1, new RegExp(`^queuectl: cannot open the queue database in ${esc(join(home, 'db'))}: permission denied; check its permissions and owner\\n$`));
    }
    chmodSync(join(home, 'db'), 0o700);
    const log = (await asNobody(['events', '--json', '--home', home])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(log.map((e: { jobId?: string }) => e.jobId), ['first']);
  } finally {
    rmSync(join(own, '..'), { recursive: true, force: true });
  }
});

test('a read-only file system (EROFS): a new data directory and an existing database: exit 1 naming them, nothing written', async () => {
  const mnt = scratch('ro');
  if (!mountTmpfs(mnt, 'size=4m')) return;
  try {
    const home = join(mnt, 'home');
    const q = cli(home);
    ok(await q('enqueue', 'echo first', '--id', 'first'));
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    refused(await run(['status', '--home', join(mnt, 'new')]), 1, new RegExp(`^queuectl: cannot use the data directory ${esc(join(mnt, 'new'))}: read-only file system; use a directory on a writable file system\\n$`));
    for (const args of [['status'], ['enqueue', 'echo second', '--id', 'second']]) {
      refused(await q(...args), 1, new RegExp(`^queuectl: cannot open the queue database in ${esc(join(home, 'db'))}: read-only file system; use a directory on a writable file system\\n$`));
    }
    execFileSync('mount', ['-o', 'remount,rw', mnt]);
    assert.equal((await events(q)).map((e) => e.jobId), ['first']);
  } finally {
    execFileSync('umount', ['-l', mnt]);
  }
});

test.run();
