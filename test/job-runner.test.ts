// JobRunner: runJob in a separate small process. The same results as runJob in-process; cancel
// and kill reach the job; a runner that dies ends its jobs and says so; it exits with the worker,
// ending the jobs still running.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JobRunner, type RunJobOptions } from '../src/worker/run-job.ts';

const MARK = `31.0${process.pid}`;
const LONG = `sleep ${MARK}`;
const root = mkdtempSync(join(tmpdir(), 'queuectl-job-runner-'));
const opts = (command: string, more: Partial<RunJobOptions> = {}): RunJobOptions & { dir: string } => {
  const dir = mkdtempSync(join(root, 't-'));
  return { command, cwd: dir, env: {}, outputLimit: 1 << 20, stdoutPath: join(dir, 'stdout'), stderrPath: join(dir, 'stderr'), dir, ...more };
};
const strays = (): string[] => {
  try {
    return execFileSync('pgrep', ['-af', `^sleep ${MARK}`], { encoding: 'utf8' }).trim().split('\n');
  } catch {
    return [];
  }
};
const until = async (check: () => boolean, ms: number, what: string) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
};
/** Job runners started by `parent` (this process by default): never another test's or worktree's. */
const runnerPids = (parent = process.pid): number[] => {
  try {
    return execFileSync('pgrep', ['-P', String(parent), '-f', 'run-job'], { encoding: 'utf8' }).trim().split('\n').map(Number)
      .filter((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').includes('QUEUECTL_JOB_RUNNER=1'));
  } catch {
    return [];
  }
};
// an exited process whose new parent has not reaped it yet is a zombie: gone all the same
const gone = (pids: number[]): boolean =>
  pids.every((pid) => {
    try {
      return / Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/, ''));
    } catch {
      return true; // no such process
    }
  });

test.after(() => {
  for (const line of strays()) try { process.kill(Number(line.split(' ')[0]), 'SIGKILL'); } catch {}
  rmSync(root, { recursive: true, force: true });
});

test('a job run by the runner: exit code, output files, env, cwd, in its own process group', async () => {
  const runner = new JobRunner();
  try {
    process.env.QUEUECTL_TEST_PARENT = 'from-parent';
    const o = opts(`printf '%s|%s|%s|' "$QUEUECTL_JOB_ID" "$QUEUECTL_TEST_PARENT" "$QUEUECTL_JOB_RUNNER"; pwd -P; cut -d' ' -f5 /proc/$$/stat; echo $$; printf err >&2; exit 3`, { env: { QUEUECTL_JOB_ID: 'j-1' } });
    const r = await runner.run(o).done;
    delete process.env.QUEUECTL_TEST_PARENT;
    assert.equal([r.exitCode, r.signal, r.error], [3, null, 'exit code 3']);
    const [first, pgid, shell] = readFileSync(o.stdoutPath, 'utf8').trim().split('\n');
    assert.is(first, `j-1|from-parent||${o.dir}`, 'job env: its own vars on the parent env, not the runner marker');
    assert.is(pgid, shell, 'the shell leads its own process group');
    assert.is(readFileSync(o.stderrPath, 'utf8'), 'err');
    assert.equal(r.stderr, { bytes: 3, kept: 3, truncated: false });
    const silent = opts('true');
    assert.is((await runner.run(silent).done).error, null);
    assert.is(existsSync(silent.stdoutPath), false, 'no output, no file');
    const missing = await runner.run(opts('echo hi', { cwd: join(root, 'nope') })).done;
    assert.match(missing.error ?? '', /^could not start: cwd .*nope does not exist/);
  } finally {
    runner.close();
  }
});

test('cancel() and kill() reach the job through the runner', async () => {
  const runner = new JobRunner();
  try {
    const a = runner.run(opts(`${LONG}`, { graceMs: 5000 }));
    const b = runner.run(opts(`trap "" TERM; ${LONG}`, { graceMs: 10_000 }));
    await until(() => strays().length === 2, 5000, 'both jobs running');
    a.cancel();
    b.kill();
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal([ra.cancelled, ra.signal, ra.error], [true, 'SIGTERM', 'cancelled']);
    assert.equal([rb.cancelled, rb.signal, rb.error], [true, 'SIGKILL', 'cancelled']);
    await until(() => strays().length === 0, 2000, 'no sleep left');
  } finally {
    runner.close();
  }
});

test('a runner that dies: its running jobs are killed and end with the reason', async () => {
  const runner = new JobRunner();
  const job = runner.run(opts(`${LONG}`));
  await until(() => strays().length === 1, 5000, 'the job running');
  const [pid] = runnerPids();
  assert.type(pid, 'number', 'the runner process is found');
  process.kill(pid!, 'SIGKILL');
  const r = await job.done;
  assert.match(r.error ?? '', /job runner process ended \(SIGKILL\)/);
  await until(() => strays().length === 0, 2000, 'the job killed');
  // the next job starts a new runner
  assert.is((await runner.run(opts('true')).done).error, null);
  runner.close();
});

test('the runner exits when its worker process dies, and when it is closed', async () => {
  const runner = new JobRunner();
  await runner.run(opts('true')).done;
  await until(() => runnerPids().length === 1, 2000, 'a runner');
  runner.close();
  await until(() => runnerPids().length === 0, 3000, 'the closed runner to exit');

  // a worker killed with SIGKILL while a job runs: its runner notices the closed channel, ends
  // the job's group (no host may be left on the machine to do it) and exits
  const script = `import { JobRunner } from ${JSON.stringify(new URL('../src/worker/run-job.ts', import.meta.url).pathname)};
    const r = new JobRunner(); await r.run({ command: 'true', cwd: '/', env: {}, outputLimit: 1, stdoutPath: '/dev/null', stderrPath: '/dev/null' }).done;
    r.run({ command: ${JSON.stringify(LONG)}, cwd: '/', env: {}, outputLimit: 1, stdoutPath: '/dev/null', stderrPath: '/dev/null' });
    console.log('ready'); setInterval(() => {}, 1000);`;
  const file = join(root, 'worker.mts');
  writeFileSync(file, script);
  const worker = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => worker.stdout.once('data', resolve));
  await until(() => runnerPids(worker.pid).length === 1, 3000, "the worker's runner");
  const orphans = runnerPids(worker.pid);
  worker.kill('SIGKILL');
  await until(() => gone(orphans), 3000, 'the orphaned runner to exit');
  await until(() => strays().length === 0, 3000, 'the job killed with its worker');
});

test('a runner that cannot be started: its jobs end at once as not started, never hang', async () => {
  const runner = new JobRunner();
  const real = process.execPath;
  process.execPath = '/nonexistent/node'; // stands in for a fork that fails: EAGAIN at the process limit, EMFILE, ENOENT
  let done: Promise<unknown>;
  try {
    done = runner.run(opts('echo hi')).done;
  } finally {
    process.execPath = real;
  }
  const result = (await Promise.race([done, delay(5000).then(() => 'hung')])) as { error?: string } | string;
  assert.is.not(result, 'hung', 'the job settled');
  assert.match((result as { error: string }).error, /could not start: the job runner process could not be started/);
  // the next job gets a fresh runner
  const next = (await runner.run(opts('exit 3')).done) as { exitCode: number | null };
  assert.is(next.exitCode, 3);
  runner.close();
});

test.run();
