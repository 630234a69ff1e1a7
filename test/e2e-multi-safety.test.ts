// Issue 4: fencing and permissions. A late result from an attempt whose lease expired is
// refused (against the Host API directly, and with real processes: a worker process frozen
// with SIGSTOP past its lease), and queuectl refuses a data directory or socket that others
// could write to, writing nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { MemoryLevel } from 'memory-level';
import type { Engine } from '../src/engine/engine.ts';
import { openLevelEngine } from './helpers/backends.ts';
import { Host } from '../src/host/host.ts';
import type { AttemptResult } from '../src/domain/decide.ts';
import type { JobSpec } from '../src/domain/job-spec.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';
import {
  type Result, assertNoStrays, cleanup, cli, events, history, isAlive, json, newHome, ok, refused, run, scratch, startWorker, stopWorkers, strays, until,
} from './helpers/cli.ts';
import { linesOf, lockHolder, note, statusUntil } from './helpers/multi.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

// ---- fencing, against the Host API -----------------------------------------------------------

const spec = (id: string): JobSpec => ({ id, command: 'true', cwd: '/', priority: 0, maxRetries: 3, runAt: null, timeoutMs: null });
const success: AttemptResult = { durationMs: 5, exitCode: 0, signal: null, timedOut: false, error: null, output: null };
const failure: AttemptResult = { durationMs: 5, exitCode: 1, signal: null, timedOut: false, error: 'exit code 1', output: null };

const rejects = async (p: Promise<unknown>, code: string, what: string): Promise<Error & { code?: string }> => {
  try {
    await p;
  } catch (e) {
    assert.is((e as { code?: string }).code, code, `${what}: ${(e as Error).message}`);
    return e as Error & { code?: string };
  }
  return assert.unreachable(`${what}: expected a refusal with ${code}`) as never;
};

test('a late result from a fenced-off attempt is refused (QUEUECTL_STALE_ATTEMPT) and writes no event', async () => {
  const t = { now: 1_800_000_000_000 };
  const engine = await openLevelEngine(new MemoryLevel<string, unknown>() as unknown as AnyLevel, { clock: () => t.now, sync: false });
  const host = new Host(engine);
  const expire = () => (host as unknown as { expireLeases(): Promise<void> }).expireLeases();
  try {
    await host.api.workerStart({ workerId: 'w1', pid: process.pid, slots: 1 });
    await host.api.workerStart({ workerId: 'w2', pid: process.pid, slots: 1 });
    await host.api.enqueue({ jobs: [spec('job')] });
    const c1 = await host.api.claim({ workerId: 'w1', waitMs: 0 });
    assert.equal([c1?.job.id, c1?.attempt], ['job', 1]);
    const lease = (await engine.getConfig()).lease_seconds * 1000;

    // w1 stops heartbeating: past the lease, the host expires its claim
    t.now += lease / 2;
    assert.equal(await host.api.heartbeat({ workerId: 'w1', running: [{ jobId: 'job', attempt: 1 }] }), { drop: [] }, 'a heartbeat keeps the lease');
    t.now += lease - 1;
    await expire();
    assert.equal((await engine.history('job')).map((e) => e.type), ['JobEnqueued', 'JobClaimed'], 'the heartbeat extended the lease');
    t.now += 2;
    await expire();
    const expired = await engine.history('job');
    assert.equal(expired.map((e) => e.type), ['JobEnqueued', 'JobClaimed', 'JobLeaseExpired']);
    assert.is(expired[2]!.type === 'JobLeaseExpired' && expired[2]!.attempt, 1);

    const positions = () => engine.store.head();
    const before = await positions();
    // the late result of attempt 1, success or failure: refused, nothing written
    await rejects(host.api.report({ jobId: 'job', workerId: 'w1', attempt: 1, result: success }), 'QUEUECTL_STALE_ATTEMPT', 'late success of attempt 1');
    await rejects(host.api.report({ jobId: 'job', workerId: 'w1', attempt: 1, result: failure }), 'QUEUECTL_STALE_ATTEMPT', 'late failure of attempt 1');
    assert.is(await positions(), before, 'no event written');
    assert.equal((await host.api.heartbeat({ workerId: 'w1', running: [{ jobId: 'job', attempt: 1 }] })).drop, ['job'], 'the heartbeat tells w1 to drop it');

    // attempt 2 goes to w2; w1's attempt 1 (and w1 naming attempt 2) stay refused
    t.now += 60_000;
    const c2 = await host.api.claim({ workerId: 'w2', waitMs: 0 });
    assert.equal([c2?.job.id, c2?.attempt], ['job', 2]);
    const claimed = await positions();
    await rejects(host.api.report({ jobId: 'job', workerId: 'w1', attempt: 1, result: success }), 'QUEUECTL_STALE_ATTEMPT', 'late result of attempt 1 while attempt 2 runs');
    await rejects(host.api.report({ jobId: 'job', workerId: 'w1', attempt: 2, result: success }), 'QUEUECTL_STALE_ATTEMPT', 'another worker reporting attempt 2');
    await rejects(engine.execute({ type: 'expireLease', jobId: 'job', attempt: 1, reason: 'late expiry' }), 'QUEUECTL_STALE_ATTEMPT', 'expiring attempt 1 again');
    assert.is(await positions(), claimed, 'no event written');
    const { events: done } = await host.api.report({ jobId: 'job', workerId: 'w2', attempt: 2, result: success });
    assert.equal(done.map((e) => e.type), ['JobSucceeded']);
    const after = await positions();
    await rejects(host.api.report({ jobId: 'job', workerId: 'w2', attempt: 2, result: success }), 'QUEUECTL_STALE_ATTEMPT', 'the same result twice');
    await rejects(host.api.report({ jobId: 'job', workerId: 'w1', attempt: 1, result: failure }), 'QUEUECTL_STALE_ATTEMPT', 'attempt 1 after the job completed');
    assert.is(await positions(), after, 'never applied twice');
    assert.equal((await engine.history('job')).map((e) => `${e.type}${'attempt' in e ? `#${e.attempt}` : ''}`),
      ['JobEnqueued', 'JobClaimed#1', 'JobLeaseExpired#1', 'JobClaimed#2', 'JobSucceeded#2']);
    assert.is((await engine.requireJob('job')).state, 'completed');
    assert.equal((await engine.store.verify()).differences, []);
  } finally {
    host.stop();
    await engine.close();
  }
});

// ---- fencing, with real processes ------------------------------------------------------------

test('a worker process frozen past its lease: its attempt expires and runs elsewhere; its late result is refused, never applied', async () => {
  const home = newHome('fence');
  const dir = scratch('fence');
  const q = cli(home);
  const out = join(dir, 'out.txt');
  ok(await q('config', 'set', 'lease_seconds', '2'));
  ok(await q('config', 'set', 'backoff_base', '1'));
  // attempt 2 runs long enough to be running when the frozen worker wakes up and reports attempt 1
  ok(await q('enqueue', `if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 5; else sleep 4; fi; echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT" >> ${out}`, '--id', 'fenced'));
  // the host: a long-lived command that runs no jobs (it watches leases), so that the worker
  // process we freeze is a client and the host keeps judging its lease
  const follower = run(['events', '--follow', '--home', home], { timeoutMs: 60_000 });
  const hostPid = await until(() => lockHolder(home, strays().filter((s) => s.cmd.includes('events --follow')).map((s) => s.pid)), 10_000, 'events --follow to become the host');
  await until(() => existsSync(join(home, 'host.sock')), 10_000, 'the host socket');
  try {
    const frozen = await startWorker(home, '--count', '1').ready();
    assert.is(lockHolder(home, [frozen.pid, hostPid]), hostPid, 'the worker process is a client');
    await statusUntil(q, (s) => s.workers[0]?.running.includes('fenced') ?? false, 10_000, 'the worker to run the job', 30);
    process.kill(frozen.pid, 'SIGSTOP');
    let resumed = false;
    try {
      const other = await startWorker(home, '--count', '1').ready();
      const expired = await until(async () => (await history(q, 'fenced')).find((e) => e.type === 'JobLeaseExpired'), 15_000, 'the lease to expire', 100);
      assert.is(expired.attempt, 1);
      await until(async () => (await history(q, 'fenced')).find((e) => e.type === 'JobClaimed' && e.attempt === 2), 15_000, 'attempt 2 to start', 50);
      note('lease of attempt 1 expired while its worker was frozen; attempt 2 runs in the other worker');
      process.kill(frozen.pid, 'SIGCONT');
      resumed = true;
      await until(() => frozen.lines.some((l) => /fenced ended; its attempt was no longer current|fenced (completed|failed)/.test(l)), 10_000, 'the woken worker to report attempt 1');
      assert.is(json<{ state: string }>(await q('show', 'fenced', '--json')).state, 'processing', 'attempt 2 still runs when attempt 1 reports');
      await until(async () => (await history(q, 'fenced')).some((e) => e.type === 'JobSucceeded'), 15_000, 'attempt 2 to succeed');
      const log = frozen.lines.join('\n');
      assert.match(log, /fenced ended; its attempt was no longer current \(cancelled, or claim expired\), so the result was not recorded/, log);
      const es = await history(q, 'fenced');
      assert.equal(es.map((e) => `${e.type}${e.attempt === undefined ? '' : `#${e.attempt}`}`), ['JobEnqueued', 'JobClaimed#1', 'JobLeaseExpired#1', 'JobClaimed#2', 'JobSucceeded#2'], 'the late result of attempt 1 left no trace');
      assert.is(es[3]!.workerId, json<{ workers: { pid: number; id: string }[] }>(await q('status', '--json')).workers.find((w) => w.pid === other.pid)?.id);
      // attempt 1 is ended when its worker learns it lost the claim (or ended on its own meanwhile)
      assert.ok(['fenced 2', 'fenced 1,fenced 2'].includes(linesOf(out).join()), linesOf(out).join());
      await Promise.all([frozen.stop(), other.stop()]);
    } finally {
      if (!resumed) process.kill(frozen.pid, 'SIGCONT');
    }
  } finally {
    for (const s of strays().filter((s) => s.cmd.includes('events --follow'))) process.kill(s.pid, 'SIGTERM');
    await follower.catch(() => {});
  }
});

// ---- permissions -----------------------------------------------------------------------------

/** Every path under `dir` with its type, size and modification time: equal means nothing was written. */
const snapshot = (dir: string): string[] => {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      out.push(`${p} ${st.isDirectory() ? 'dir' : st.size} ${st.isDirectory() ? '' : st.mtimeMs} ${(st.mode & 0o777).toString(8)}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
};

const unsafeDir = (r: Result, dir: string, mode: number) =>
  refused(r, 1, new RegExp(`the data directory ${dir} is writable by group or others \\(mode ${mode.toString(8)}\\); fix it with: chmod 700 ${dir}`));

test('a group-writable data directory (770, 775) is refused: exit 1, a clear message, nothing written', async () => {
  // a new, empty directory someone made group-writable
  const fresh = newHome('perm-fresh');
  mkdirSync(fresh);
  chmodSync(fresh, 0o775);
  unsafeDir(await run(['enqueue', 'echo hi', '--home', fresh]), fresh, 0o775);
  assert.equal(readdirSync(fresh), [], 'nothing was written');

  // an existing data directory made group-writable
  const home = newHome('perm');
  const q = cli(home);
  ok(await q('enqueue', 'echo one', '--id', 'one'));
  for (const mode of [0o770, 0o775, 0o777, 0o702]) {
    chmodSync(home, mode);
    const before = snapshot(home);
    unsafeDir(await q('enqueue', 'echo two', '--id', 'two'), home, mode);
    unsafeDir(await q('status'), home, mode);
    unsafeDir(await q('config', 'set', 'max_retries', '7'), home, mode);
    const w = await run(['worker', 'start', '--home', home], { timeoutMs: 15_000 });
    unsafeDir(w, home, mode);
    assert.equal(snapshot(home), before, `nothing was written (mode ${mode.toString(8)})`);
  }
  chmodSync(home, 0o700);
  assert.equal((await events(q)).filter((e) => e.type !== 'JobEnqueued' || e.jobId !== 'one').map((e) => e.type), [], 'only the first enqueue is in the log');

  // owned by another user (only root can make one here)
  if (process.getuid?.() === 0) {
    chownSync(home, 65534, 65534);
    try {
      refused(await q('status'), 1, /the data directory .* belongs to another user \(uid 65534\); use a directory of your own/);
    } finally {
      chownSync(home, 0, 0);
    }
  }
});

test('a socket that others could write to (not 0600) is refused: exit 1, a clear message, nothing written', async () => {
  const home = newHome('sock');
  const q = cli(home);
  const sock = join(home, 'host.sock');
  const w = await startWorker(home).ready();
  assert.is(statSync(sock).mode & 0o777, 0o600, 'the host creates its socket 0600');
  assert.is(statSync(home).mode & 0o777, 0o700, 'and the data directory 0700');
  const count = (await events(q)).length;
  for (const mode of [0o660, 0o666, 0o602, 0o620]) {
    chmodSync(sock, mode);
    const message = new RegExp(`the socket ${sock} is writable by group or others \\(mode ${mode.toString(8)}\\); fix it with: chmod [67]00 ${sock}`);
    refused(await q('enqueue', 'echo sneaky', '--id', 'sneaky'), 1, message);
    refused(await q('status'), 1, message);
    refused(await run(['worker', 'start', '--home', home], { timeoutMs: 15_000 }), 1, message);
  }
  chmodSync(sock, 0o600);
  assert.is((await events(q)).length, count, 'nothing was written');
  assert.ok(w.running, 'the host carries on');
  await w.stop();
});

/** Connect to the socket, say hello, send `line`; resolves with what came back before the host closed or 1 s passed. */
const talk = (sock: string, line: string): Promise<string> =>
  new Promise((resolve) => {
    const c = connect(sock);
    let got = '';
    let greeted = false;
    const done = () => {
      c.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 1000);
    c.setEncoding('utf8');
    c.on('error', () => {});
    c.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    c.on('data', (d: string) => {
      got += d;
      if (!greeted && got.includes('\n')) {
        greeted = true;
        got = '';
        c.write(`${line}\n`);
      }
    });
    c.write(`${JSON.stringify({ hello: 'queuectl', protocol: 1, pid: process.pid })}\n`);
  });

test('a malformed message on the socket is refused without bringing the host down', async () => {
  const home = newHome('garbage');
  const q = cli(home);
  const w = await startWorker(home).ready();
  const sock = join(home, 'host.sock');
  const answers: string[] = [];
  for (const line of ['not json', 'null', '[]', '{"id":1,"method":"constructor","params":{}}', '{"id":2,"method":"toString"}', '{"id":3,"method":"__proto__"}']) {
    answers.push(`${line} -> ${(await talk(sock, line)).trim() || '(closed)'}`);
  }
  const alive = isAlive(w.pid);
  assert.ok(alive, `the host survived: ${answers.join(' | ')}\n${w.lines.filter((l) => !/^\s+at /.test(l)).slice(-4).join('\n')}`);
  for (const a of answers.filter((a) => a.includes('"method"'))) assert.match(a, /QUEUECTL_PROTOCOL_MISMATCH.*does not know the call/, a);
  ok(await q('status'));
  await w.stop();
});

test('nothing is left running', async () => {
  await stopWorkers();
  await assertNoStrays();
});

test.run();
