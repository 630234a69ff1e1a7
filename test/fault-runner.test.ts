// Fault injection, the job runner: one job whose output cannot be written fails alone (its
// directory blocked by a file, a logs directory it may not write), never the runner and the
// jobs it runs beside it; a runner killed with SIGKILL ends each of its jobs with the reason.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryLevel } from 'memory-level';
import { openLevelEngine } from './helpers/backends.ts';
import { QueuectlError } from '../src/errors.ts';
import { resolveHome } from '../src/home.ts';
import type { Queue } from '../src/host/connect.ts';
import { Host } from '../src/host/host.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';
import { JobRunner, type RunJobOptions, runJob } from '../src/worker/run-job.ts';
import { WorkerPool } from '../src/worker/runtime.ts';
import { CLI, MARK, assertNoStrays, bounded, cleanup, cli, job, json, newHome, ok, refused, startWorker, stopWorkers, strays, until, waitFor } from './helpers/cli.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

/** The runner processes (QUEUECTL_JOB_RUNNER=1 in their environment) whose parent is `pid`. */
const runnersOf = (pid: number): number[] =>
  readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).filter((p) => {
    try {
      const ppid = Number(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      return ppid === pid && readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes('QUEUECTL_JOB_RUNNER=1');
    } catch {
      return false;
    }
  });

test('the runner: a job whose output directory is blocked by a file fails alone, the jobs beside it finish', async () => {
  const root = mkdtempSync(join(tmpdir(), 'queuectl-fault-runner-'));
  const runner = new JobRunner();
  try {
    const opts = (name: string, command: string): RunJobOptions => ({
      command, cwd: root, env: {}, outputLimit: 1 << 20, stdoutPath: join(root, name, '1.stdout'), stderrPath: join(root, name, '1.stderr'),
    });
    writeFileSync(join(root, 'blocked'), 'a file where a directory should be');
    const before = runner.run(opts('before', `sleep 0.5; echo before`));
    const blocked = runner.run(opts('blocked', `echo x; sleep ${MARK}1`));
    const after = runner.run(opts('after', `sleep 0.8; echo after; echo err >&2`));
    const [b, x, a] = await Promise.all([before.done, blocked.done, after.done]);
    assert.is(x.error, `cannot write its output in ${join(root, 'blocked')}: file already exists; the job was stopped`);
    assert.is(x.exitCode, null, 'the job was ended (it would have slept on)');
    assert.equal([b.error, b.stdout], [null, { bytes: 7, kept: 7, truncated: false }], 'a job started before it finished as usual');
    assert.equal([a.error, a.stdout, a.stderr], [null, { bytes: 6, kept: 6, truncated: false }, { bytes: 4, kept: 4, truncated: false }], 'a job started after it too');
    assert.is(readFileSync(join(root, 'after', '1.stdout'), 'utf8'), 'after\n');
    // the same runner process still runs jobs
    assert.is((await runner.run(opts('later', 'echo later')).done).error, null);
  } finally {
    runner.close();
    rmSync(root, { recursive: true, force: true });
  }
});

test('a worker: one job whose logs directory is a file fails with a clear last_error, the other running jobs complete without a retry', async () => {
  const home = newHome('blocked');
  const q = cli(home);
  ok(await q('enqueue', 'sleep 1; echo a', '--id', 'a'));
  ok(await q('enqueue', 'echo b; sleep 1', '--id', 'b', '--max-retries', '0'));
  ok(await q('enqueue', 'sleep 1; echo c', '--id', 'c'));
  mkdirSync(join(home, 'logs'), { recursive: true, mode: 0o700 }); // made by the first command since the data directory's folders are checked
  writeFileSync(join(home, 'logs', 'b'), 'in the way');
  const w = startWorker(home, '--count', '3', '--drain');
  assert.is((await w.finished(20_000)).code, 0, w.lines.join('\n'));
  const b = await job(q, 'b');
  assert.is(b.state, 'dead');
  assert.is(b.last_error, `cannot write its output in ${join(home, 'logs', 'b')}: file already exists; the job was stopped`);
  for (const id of ['a', 'c']) {
    const j = await job(q, id);
    assert.equal([j.state, j.attempts, j.last_error], ['completed', 1, null], `${id}: ${JSON.stringify(j)}`);
  }
  assert.match(ok(await q('logs', 'a')), /^a$/m);
  assert.not.match(w.lines.join('\n'), /job runner process ended|Error:/);
  ok(await q('projections', 'verify'));
});

/** queuectl as another user (setpriv), run to completion. */
const runAs = (uid: number, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, CLI, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });

test('a worker whose logs directory it may not write (EACCES, as another user): its jobs fail with the reason, the worker carries on', async () => {
  if (process.getuid?.() !== 0) {
    if (process.env.CI === 'true') assert.unreachable('CI must run this test as root (it runs queuectl as user 65534)');
    console.log('  skipped: needs root to run queuectl as another user (setpriv)');
    return;
  }
  const base = mkdtempSync(join(tmpdir(), 'queuectl-fault-eacces-'));
  chownSync(base, 65534, 65534);
  const home = join(base, 'home');
  const nobody = (...args: string[]) => runAs(65534, [...args, '--home', home]);
  try {
    assert.is((await nobody('enqueue', 'echo out', '--id', 'printer', '--max-retries', '0', '--cwd', '/')).code, 0);
    assert.is((await nobody('enqueue', 'true', '--id', 'quiet', '--cwd', '/')).code, 0);
    mkdirSync(join(home, 'logs'), { recursive: true, mode: 0o500 }); // made by the first command already
    chownSync(join(home, 'logs'), 65534, 65534);
    chmodSync(join(home, 'logs'), 0o500);
    const w = await nobody('worker', 'start', '--drain');
    assert.is(w.code, 0, w.stdout + w.stderr);
    const printer = JSON.parse((await nobody('show', 'printer', '--json')).stdout);
    assert.equal([printer.state, printer.last_error], ['dead', `cannot write its output in ${join(home, 'logs', 'printer')}: permission denied; the job was stopped`]);
    assert.is(JSON.parse((await nobody('show', 'quiet', '--json')).stdout).state, 'completed', 'a job that prints nothing needs no output directory');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('the worker: a job that cannot be handed to a process fails alone; a failed --drain check is retried, not the end of every slot', async () => {
  const engine = await openLevelEngine(new MemoryLevel<string, unknown>() as unknown as AnyLevel, { sync: false });
  const host = new Host(engine);
  const spec = (id: string, command: string) => ({ id, command, cwd: '/', priority: 0, maxRetries: 0, runAt: null, timeoutMs: null });
  await engine.execute({ type: 'enqueue', jobs: [spec('a', 'sleep 0.3'), spec('x', 'unforkable'), spec('b', 'sleep 0.3')] });
  let idleFailures = 0;
  const lines: string[] = [];
  const queue = {
    call: async (method: string, params: Record<string, unknown>) => {
      if (method === 'idle' && idleFailures++ === 0) throw new QueuectlError('QUEUECTL_HOST_LOST', 'the queuectl host process went away');
      return (host.api as unknown as Record<string, (p: unknown) => Promise<unknown>>)[method]!(params);
    },
  } as unknown as Queue;
  const pool = new WorkerPool({
    queue, home: resolveHome(tmpdir()), count: 3, drain: true, log: (l) => lines.push(l),
    runJob: (o) => {
      if (o.command === 'unforkable') throw Object.assign(new Error('spawn ENOMEM'), { code: 'ENOMEM' }); // as child_process throws it
      return runJob(o);
    },
  });
  await bounded(pool.run(), 10_000, 'the pool to drain');
  const x = (await engine.getJob('x'))!;
  assert.equal([x.state, x.lastError], ['dead', 'could not start: spawn ENOMEM']);
  for (const id of ['a', 'b']) assert.is((await engine.getJob(id))!.state, 'completed', id);
  assert.ok(idleFailures > 1, 'the drain check was asked again');
  await engine.close();
});

test('kill -9 of the job runner: each running job ends with the reason, and the worker starts a new runner for the next job', async () => {
  const home = newHome('runner-kill');
  const q = cli(home);
  ok(await q('enqueue', `sleep ${MARK}7`, '--id', 'r1', '--max-retries', '0'));
  ok(await q('enqueue', `sleep ${MARK}7`, '--id', 'r2', '--max-retries', '0'));
  const w = await startWorker(home, '--count', '2').ready();
  await until(async () => (await job(q, 'r1')).state === 'processing' && (await job(q, 'r2')).state === 'processing' && strays().filter((s) => s.cmd.startsWith(`sleep ${MARK}7`)).length === 2, 10_000, 'both jobs running');
  const [runner] = runnersOf(w.pid);
  assert.ok(runner, 'the worker has a job runner process');
  process.kill(runner!, 'SIGKILL');
  refused(await waitFor(q, ['r1', 'r2']), 1, /r1 is dead, r2 is dead/);
  for (const id of ['r1', 'r2']) {
    const j = await job(q, id);
    assert.equal([j.state, j.last_error], ['dead', 'the job runner process ended (SIGKILL) while the job ran; its processes were killed'], id);
  }
  await until(() => strays().filter((s) => s.cmd.startsWith(`sleep ${MARK}7`)).length === 0, 5000, 'the jobs\' processes to be gone');
  ok(await q('enqueue', 'echo again', '--id', 'next'));
  ok(await waitFor(q, ['next']));
  assert.ok(w.running, 'the worker carries on');
  assert.is((await w.stop()).code, 0);
  assert.is(json(await q('status', '--json')).jobs.completed, 1);
  ok(await q('projections', 'verify'));
  assert.ok(!existsSync(join(home, 'host.sock')), 'the worker cleaned up its socket');
  await assertNoStrays();
});

test.run();
