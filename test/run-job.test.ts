import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { runJob, type RunJobOptions, type RunJobResult, type RunningJob } from '../src/worker/run-job.ts';

// Every long-running process in these tests is `sleep $MARK`, so strays can be found by name.
const MARK = `30.0${process.pid}`;
const LONG = `sleep ${MARK}`;
const root = mkdtempSync(join(tmpdir(), 'queuectl-run-job-'));
let pending: RunningJob[] = [];

function start(command: string, opts: Partial<RunJobOptions> = {}): RunningJob & { dir: string } {
  const dir = mkdtempSync(join(root, 't-'));
  const job = runJob({
    command, cwd: dir, env: {}, outputLimit: 1 << 20,
    stdoutPath: join(dir, 'stdout'), stderrPath: join(dir, 'stderr'), ...opts,
  });
  pending.push(job);
  void job.done.then(() => { pending = pending.filter((j) => j !== job); });
  return { ...job, dir };
}

// Bounds every wait, so a broken rule fails the test instead of hanging the suite.
async function within<T>(p: Promise<T>, ms: number, what = 'job'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try { return await Promise.race([p, limit]); } finally { clearTimeout(timer); }
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

function strays(): string[] {
  try {
    return execFileSync('pgrep', ['-af', `sleep ${MARK}`], { encoding: 'utf8' }).trim().split('\n');
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

const noStrays = () => until(() => strays().length === 0, 1500, `no '${LONG}' left (found ${strays().join('; ')})`);
const openFds = () => readdirSync('/proc/self/fd').length;
// Output files are created on the first byte: no file yet reads as no output.
const read = (job: { dir: string }, name = 'stdout') => (existsSync(join(job.dir, name)) ? readFileSync(join(job.dir, name), 'utf8') : '');

test.after.each(() => {
  // Only does something when a (deliberately) broken runJob left processes behind: it keeps
  // one failure from cascading into the stray checks of the tests after it.
  for (const job of pending) try { process.kill(-job.pid!, 'SIGKILL'); } catch {}
  for (const line of strays()) try { process.kill(Number(line.split(' ')[0]), 'SIGKILL'); } catch {}
  pending = [];
});
test.after(() => rmSync(root, { recursive: true, force: true }));

test('success: exit 0, output streamed to the two files', async () => {
  const job = start(`printf 'hello\\n'; printf oops >&2`);
  assert.type(job.pid, 'number');
  const r = await within(job.done, 5000);
  assert.equal([r.exitCode, r.signal, r.error, r.timedOut, r.cancelled], [0, null, null, false, false]);
  assert.equal(read(job), 'hello\n');
  assert.equal(read(job, 'stderr'), 'oops');
  assert.equal(r.stdout, { bytes: 6, kept: 6, truncated: false });
  assert.equal(r.stderr, { bytes: 4, kept: 4, truncated: false });
  assert.ok(r.durationMs >= 0 && r.durationMs < 5000);
});

test('own process group, stdin closed', async () => {
  // field 5 of /proc/<pid>/stat is the process group; `cat` ends at once only if stdin is at EOF
  const job = start(`cut -d' ' -f5 /proc/$$/stat; echo $$; cat; echo after-cat`);
  const r = await within(job.done, 5000);
  assert.is(r.error, null);
  const [pgid, shellPid, after] = read(job).trim().split('\n');
  assert.is(Number(shellPid), job.pid);
  assert.is(Number(pgid), job.pid, 'the shell leads its own process group');
  const ourGroup = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[2];
  assert.is.not(pgid, ourGroup);
  assert.is(after, 'after-cat');
});

test('exit code 3', async () => {
  const r = await within(start('exit 3').done, 5000);
  assert.equal([r.exitCode, r.signal, r.error], [3, null, 'exit code 3']);
});

test('missing command: exit code 127 (command not found)', async () => {
  const job = start('queuectl-no-such-command-xyz');
  const r = await within(job.done, 5000);
  assert.equal([r.exitCode, r.error], [127, 'exit code 127 (command not found)']);
  assert.match(read(job, 'stderr'), 'queuectl-no-such-command-xyz');
});

test('env: job vars merged onto process.env', async () => {
  process.env.QUEUECTL_TEST_PARENT = 'from-parent';
  try {
    const job = start(`printf '%s|%s|%s' "$QUEUECTL_JOB_ID" "$QUEUECTL_ATTEMPT" "$QUEUECTL_TEST_PARENT"`, {
      env: { QUEUECTL_JOB_ID: 'j-42', QUEUECTL_ATTEMPT: '3' },
    });
    assert.is((await within(job.done, 5000)).error, null);
    assert.is(read(job), 'j-42|3|from-parent');
  } finally {
    delete process.env.QUEUECTL_TEST_PARENT;
  }
});

test('cwd honoured', async () => {
  const cwd = join(root, 'work dir');
  mkdirSync(cwd, { recursive: true });
  const job = start('pwd -P', { cwd });
  assert.is((await within(job.done, 5000)).error, null);
  assert.is(read(job), realpathSync(cwd) + '\n');
});

test('timeout: a shell ignoring SIGTERM ends by SIGKILL after the grace', async () => {
  const job = start(`trap "" TERM; echo started; ${LONG}`, { timeoutMs: 300, graceMs: 500 });
  const r = await within(job.done, 5000);
  assert.equal([r.timedOut, r.cancelled, r.exitCode, r.signal], [true, false, null, 'SIGKILL']);
  assert.is(r.error, 'timed out after 0.3s');
  assert.ok(r.durationMs >= 750, `SIGKILL waited for the grace (${r.durationMs} ms)`);
  assert.ok(r.durationMs < 300 + 500 + 1000, `ended promptly (${r.durationMs} ms)`);
  assert.is(read(job), 'started\n');
  await noStrays();
});

test('timeout: a grandchild holding stdout is killed with the group', async () => {
  const job = start(`${LONG} & ${LONG}; echo never`, { timeoutMs: 1000, graceMs: 2000 });
  const r = await within(job.done, 6000);
  assert.equal([r.timedOut, r.exitCode, r.signal, r.error], [true, null, 'SIGTERM', 'timed out after 1s']);
  assert.ok(r.durationMs < 1000 + 1000, `SIGTERM to the group was enough (${r.durationMs} ms)`);
  await noStrays();
});

test('timeout: a process that left the group and holds stdout does not keep the job alive', async () => {
  // setsid moves the sleep out of the job's group: group signals cannot reach it.
  const job = start(`setsid ${LONG} & ${LONG}`, { timeoutMs: 300, graceMs: 300 });
  const r = await within(job.done, 5000);
  assert.equal([r.timedOut, r.error], [true, 'timed out after 0.3s']);
  assert.ok(r.durationMs < 300 + 300 + 500 + 1000, `resolved without the pipe closing (${r.durationMs} ms)`);
  assert.is(strays().length, 1, 'the escapee is still alive: only the pipe wait was cut short');
});

test('normal exit: background leftovers are ended with the job', async () => {
  const job = start(`${LONG} & echo hi`);
  const r = await within(job.done, 5000);
  assert.equal([r.exitCode, r.signal, r.error], [0, null, null]);
  assert.is(read(job), 'hi\n');
  assert.ok(r.durationMs < 1500, `did not wait for the leftover (${r.durationMs} ms)`);
  await noStrays();
});

test('normal exit: a leftover that ignores SIGTERM and closed its output still gets SIGKILL', async () => {
  const job = start(`(trap "" TERM; exec ${LONG}) >/dev/null 2>&1 & echo hi`, { graceMs: 300 });
  const r = await within(job.done, 5000);
  assert.equal([r.exitCode, r.error], [0, null]);
  await noStrays();
});

test('cancel(): SIGTERM to the group, no wait for the grace when it obeys', async () => {
  const job = start(`echo ready; ${LONG}`, { graceMs: 5000 });
  await until(() => read(job) === 'ready\n', 5000, 'ready');
  const t = Date.now();
  job.cancel();
  const r = await within(job.done, 5000);
  assert.equal([r.cancelled, r.timedOut, r.exitCode, r.signal, r.error], [true, false, null, 'SIGTERM', 'cancelled']);
  assert.ok(Date.now() - t < 2000, 'ended well before the grace');
  await noStrays();
});

test('kill(): SIGKILL to the group at once, even when SIGTERM is ignored', async () => {
  const job = start(`trap "" TERM; echo ready; ${LONG}`, { graceMs: 10_000 });
  await until(() => read(job) === 'ready\n', 5000, 'ready');
  const t = Date.now();
  job.kill();
  const r = await within(job.done, 5000);
  assert.equal([r.cancelled, r.exitCode, r.signal, r.error], [true, null, 'SIGKILL', 'cancelled']);
  assert.ok(Date.now() - t < 2000, 'did not wait for the grace');
  await noStrays();
});

test('output cap: keeps outputLimit bytes per stream, counts the rest', async () => {
  const job = start('head -c 1000 /dev/zero; printf abc >&2', { outputLimit: 100 });
  const r = await within(job.done, 5000);
  assert.equal(r.stdout, { bytes: 1000, kept: 100, truncated: true });
  assert.equal(r.stderr, { bytes: 3, kept: 3, truncated: false });
  assert.is(statSync(join(job.dir, 'stdout')).size, 100);

  const exact = start('head -c 1000 /dev/zero', { outputLimit: 1000 });
  assert.equal((await within(exact.done, 5000)).stdout, { bytes: 1000, kept: 1000, truncated: false });
});

test('done resolves only after the output files are written and closed', async () => {
  const size = 20_000_000;
  const fdsBefore = openFds();
  const job = start(`head -c ${size} /dev/zero`, { outputLimit: size });
  const r = await within(job.done, 10_000);
  assert.is(openFds(), fdsBefore, 'no file descriptor left open');
  assert.is(statSync(join(job.dir, 'stdout')).size, size);
  assert.equal(r.stdout, { bytes: size, kept: size, truncated: false });
});

// Streaming alone grows RSS by ~30-40 MB here (garbage chunks awaiting GC, same with plain
// child_process), so 200 MB of output is what makes buffering it visibly break the bound.
test('200 MB of output: memory stays bounded', async () => {
  const total = 200_000_000, limit = 1 << 20;
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 5);
  try {
    const job = start(`head -c ${total} /dev/zero`, { outputLimit: limit });
    const r = await within(job.done, 30_000);
    peak = Math.max(peak, process.memoryUsage.rss());
    assert.is(r.error, null);
    assert.equal(r.stdout, { bytes: total, kept: limit, truncated: true });
    assert.is(statSync(join(job.dir, 'stdout')).size, limit);
  } finally {
    clearInterval(sampler);
  }
  const growth = (peak - before) / 1e6;
  assert.ok(growth < 60, `RSS grew by ${growth.toFixed(1)} MB`);
});

test('binary output is kept byte for byte, under and over the cap', async () => {
  const data = randomBytes(300_000);
  data[0] = 0x00; data[1] = 0xff; data[2] = 0xc3; // NUL, and bytes that are not valid UTF-8
  const input = join(root, 'in.bin');
  writeFileSync(input, data);
  const whole = start(`cat '${input}'`);
  const capped = start(`cat '${input}'`, { outputLimit: 123_457 });
  const [a, b] = await within(Promise.all([whole.done, capped.done]), 5000);
  assert.equal(a.stdout, { bytes: data.length, kept: data.length, truncated: false });
  assert.ok(readFileSync(join(whole.dir, 'stdout')).equals(data));
  assert.equal(b.stdout, { bytes: data.length, kept: 123_457, truncated: true });
  assert.ok(readFileSync(join(capped.dir, 'stdout')).equals(data.subarray(0, 123_457)));
});

test('could not start: bad cwd, cwd that is a file', async () => {
  const check = (r: RunJobResult, needle: string) => {
    assert.equal([r.exitCode, r.signal, r.timedOut, r.cancelled], [null, null, false, false]);
    assert.ok(r.error?.startsWith('could not start: '), r.error ?? 'null');
    assert.match(r.error!, needle);
  };
  const missing = join(root, 'does-not-exist');
  const bad = start('echo hi', { cwd: missing });
  assert.is(bad.pid, undefined);
  check(await within(bad.done, 5000), missing);

  const file = join(root, 'a-file');
  writeFileSync(file, '');
  check(await within(start('echo hi', { cwd: file }).done, 5000), file);
});

test('output files and their directory are created on the first byte, and only then', async () => {
  const dir = join(root, 'later', 'deeper');
  const silent = await within(start('true', { stdoutPath: join(dir, 'quiet.out'), stderrPath: join(dir, 'quiet.err') }).done, 5000);
  assert.is(silent.error, null);
  assert.is(existsSync(dir), false, 'a job that prints nothing creates no file');
  const loud = await within(start('echo hi', { stdoutPath: join(dir, 'loud.out'), stderrPath: join(dir, 'loud.err') }).done, 5000);
  assert.is(loud.error, null);
  assert.is(readFileSync(join(dir, 'loud.out'), 'utf8'), 'hi\n');
  assert.is(existsSync(join(dir, 'loud.err')), false);
});

test('no stray processes after the suite', async () => {
  await noStrays();
});

test.run();
