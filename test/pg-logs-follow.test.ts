// `logs --follow` of an attempt running on another machine (PostgreSQL): the worker sends its
// output to the database while the job runs (src/worker/share-output.ts), and `logs --follow`
// on a machine that has none of its files prints it as it comes, until the attempt ends.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { appendOutput, readOutput } from '../src/store/postgres/output.ts';
import { assertNoStrays, CLI, cleanup, ok, scratch, stopWorkers, until } from './helpers/cli.ts';
import { machines, queueUrl, withPgCli } from './helpers/pg-machines.ts';
import { freshQueue } from './helpers/postgres.ts';

const test = suite('pg-logs-follow');
const pg = withPgCli(test, 'pg-logs-follow');
test.after.each(() => stopWorkers());
test.after(() => cleanup());

/** `queuectl logs <id> --follow ...` started on a machine; its stdout as it comes. */
const follow = (home: string, url: string, ...args: string[]) => {
  const child = spawn(process.execPath, [CLI, 'logs', ...args, '--follow', '--home', home, '--database-url', url], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { out, exited, kill: () => child.kill('SIGKILL') };
};

test('logs --follow on machine B prints what a job running on machine A writes, as it writes it, until it ends', async () => {
  const server = pg();
  if (!server) return;
  const url = queueUrl(server, 'follow');
  const [a, b] = machines(2, url);
  const gate = join(scratch('follow'), 'gate');
  // the job writes, then waits for the test: what B shows before the gate opens was sent while it ran
  ok(await a!.q('enqueue', '--id', 'long', `echo first; echo oops >&2; while [ ! -e ${gate} ]; do sleep 0.05; done; echo last`));
  await a!.startWorker(1);
  await until(async () => ok(await b!.q('logs', 'long')).includes('running'), 20_000, 'the job to start on A');
  const f = follow(b!.home, url, 'long');
  try {
    await until(() => f.out.stdout.includes('first\n') && f.out.stdout.includes('oops\n'), 15_000, `B to show the job's output while it runs (B printed: ${JSON.stringify(f.out)})`);
    assert.match(f.out.stdout, /^── attempt 1 · running ──\n/);
    assert.not.match(f.out.stdout, /last/);
    writeFileSync(gate, '');
    assert.is(await Promise.race([f.exited, new Promise((r) => setTimeout(() => r('still following'), 20_000))]), 0, `logs --follow ends with the attempt: ${JSON.stringify(f.out)}`);
  } finally {
    f.kill();
  }
  assert.match(f.out.stdout, /\[stdout\]\nfirst\n\[stderr\]\noops\n\[stdout\]\nlast\n── attempt 1 · exit code 0 · [\d.]+s ──\n$/);
  assert.is(f.out.stderr, '');
  assert.not.ok(existsSync(join(b!.home, 'logs', 'long')), 'B has no file of it: it came from the database');
  // and --raw --follow of an ended attempt prints its bytes and returns
  const raw = follow(b!.home, url, 'long', '--raw');
  assert.is(await raw.exited, 0);
  assert.equal(raw.out, { stdout: 'first\nlast\n', stderr: 'oops\n' });
  assert.match(ok(await b!.q('logs', 'long')), /\[stdout\]\nfirst\nlast\n\[stderr\]\noops\n/);
});

test('a running job sends at most output_limit bytes; --follow on another machine shows them and the truncation', async () => {
  const server = pg();
  if (!server) return;
  const url = queueUrl(server, 'fcap');
  const [a, b] = machines(2, url);
  ok(await a!.q('config', 'set', 'output_limit', '10'));
  ok(await a!.q('enqueue', '--id', 'chatty', 'for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.2; done'));
  await a!.startWorker(1);
  await until(async () => ok(await b!.q('logs', 'chatty')).includes('running'), 20_000, 'the job to start on A');
  const f = follow(b!.home, url, 'chatty');
  assert.is(await Promise.race([f.exited, new Promise((r) => setTimeout(() => r('still following'), 20_000))]), 0, JSON.stringify(f.out));
  f.kill();
  assert.match(f.out.stdout, /\[stdout\]\nline1\nline\n── attempt 1 · exit code 0 · [\d.]+s ──\n\[stdout truncated: kept 10 of 48 bytes/);
});

test('a piece sent again after its answer was lost, grown meanwhile, is kept whole', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_piece');
  try {
    const sql = await q.connect(1);
    const put = (offset: number, text: string) => appendOutput(sql, { jobId: 'j', attempt: 1, stream: 'stdout', offset, data: Buffer.from(text) }, 100);
    await put(0, 'hel'); // stored, but the worker never heard so
    await put(0, 'hello '); // so it sends from 0 again, with what the job wrote since
    await put(6, 'world');
    assert.equal(await readOutput(sql, 'j', 1, 'stdout'), { data: Buffer.from('hello world'), next: 11 });
    assert.equal(await readOutput(sql, 'j', 1, 'stdout', 4), { data: Buffer.from('o world'), next: 11 });
  } finally {
    await q.drop();
  }
});

test.after(assertNoStrays);
test.run();
