// End to end: the built queuectl, run as a user would, in temporary data directories.
// Running jobs: completion and logs, retries with backoff and the DLQ, priorities, run_at,
// timeouts, exit 127, config, history, cancel, wait, persistence, detached workers.
//
// To keep the run short, the jobs that take seconds (backoff, timeouts, delays) are all
// enqueued in one data directory by the first test and run there concurrently while the
// other tests run; the tests about them, at the end of the file, only read what happened.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MARK, type StoredEvent, type Worker, assertNoStrays, cleanup, cli, events, history, isAlive, job, json, newHome, ok, refused, scratch,
  startWorker, stopWorkers, strays, until, waitFor,
} from './helpers/cli.ts';

const types = (es: StoredEvent[]) => es.map((e) => e.type);
const of = (es: StoredEvent[], type: string) => es.filter((e) => e.type === type);
/** A long sleep whose command line carries MARK plus a digit, so each job's processes can be found. */
const longSleep = (n: number) => `sleep ${MARK}${n}`;
const running = (n: number) => strays().filter((s) => s.cmd.includes(`${MARK}${n}`));

// ---- the slow jobs, started before the first test ---------------------------------------

const slowHome = newHome('slow');
const S = cli(slowHome);
const slowDir = scratch('slow');
let slowWorker: Worker;

// A test, not a before hook: uvu does not report a failing hook (the run would still pass).
test('the slow jobs are enqueued and a worker with 4 slots starts on them', async () => {
  ok(await S('config', 'set', 'backoff_base', '1.5'));
  // fails until the file `fixed` exists; 1 + 2 runs, then the DLQ
  ok(await S('enqueue', `echo "run $QUEUECTL_ATTEMPT"; test -f ${slowDir}/fixed`, '--id', 'flaky', '--max-retries', '2'));
  // ignores SIGTERM (so does its sleep: an ignored signal stays ignored across exec)
  ok(await S('enqueue', `trap '' TERM; echo armed; ${longSleep(2)}`, '--id', 'stubborn', '--timeout', '1s', '--max-retries', '0'));
  // the sleep is a grandchild holding stdout: killing only the shell would not end the job
  ok(await S('enqueue', `sh -c '${longSleep(3)}; echo late'; echo never`, '--id', 'grandchild', '--timeout', '1', '--max-retries', '0'));
  // a grandchild that leaves the process group and keeps stdout open after the shell exits
  ok(await S('enqueue', `setsid ${longSleep(4)} & echo bg-started`, '--id', 'escaped'));
  ok(await S('enqueue', `no-such-command-${process.pid}`, '--id', 'nocmd', '--max-retries', '0'));
  ok(await S('enqueue', 'echo hi', '--id', 'badcwd', '--cwd', `/nonexistent-${process.pid}`, '--max-retries', '0'));
  ok(await S('enqueue', 'echo on time', '--id', 'delayed', '--delay', '2s'));
  ok(await S('enqueue', JSON.stringify({ id: 'runat', command: 'echo at', run_at: new Date(Date.now() + 2500).toISOString() })));
  slowWorker = await startWorker(slowHome, '--count', '4').ready();
});

test.after.each(() => stopWorkers([slowWorker])); // a failed test must not leave its worker running
test.after(cleanup);

// ---- basic --------------------------------------------------------------------------------

test('a job completes; its output, env (QUEUECTL_JOB_ID/ATTEMPT), cwd and closed stdin show in logs', async () => {
  const home = newHome('basic');
  const q = cli(home);
  const dir = realpathSync(scratch('cwd'));
  const w = await startWorker(home).ready();
  assert.is(statSync(home).mode & 0o777, 0o700, 'data directory is created 0700');
  assert.is(statSync(join(home, 'host.sock')).mode & 0o777, 0o600, 'the socket is 0600');

  const cmd = `echo "id=$QUEUECTL_JOB_ID attempt=$QUEUECTL_ATTEMPT"; pwd; if read -r line; then echo stdin-open; else echo stdin-closed; fi; echo to-stderr >&2`;
  assert.is(ok(await q('enqueue', cmd, '--id', 'hello', '--cwd', dir)), 'hello\n');
  const waited = await waitFor(q, ['hello']);
  assert.is(ok(waited), 'hello completed\n');

  const logs = ok(await q('logs', 'hello'));
  assert.match(logs, /attempt 1 · exit code 0 · \d+\.\d\ds/);
  assert.ok(logs.includes(`[stdout]\nid=hello attempt=1\n${dir}\nstdin-closed\n`), logs);
  assert.ok(logs.includes('[stderr]\nto-stderr\n'), logs);
  const [attempt, ...more] = json<any[]>(await q('logs', 'hello', '--json'));
  assert.is(more.length, 0);
  const out = `id=hello attempt=1\n${dir}\nstdin-closed\n`;
  assert.equal(
    { ...attempt, duration_seconds: typeof attempt.duration_seconds },
    {
      attempt: 1, status: 'exit code 0', duration_seconds: 'number',
      stdout: out, stdout_bytes: Buffer.byteLength(out), stdout_truncated: false, stdout_missing_bytes: 0,
      stderr: 'to-stderr\n', stderr_bytes: 10, stderr_truncated: false, stderr_missing_bytes: 0,
    },
  );

  // generated ids: unique and sortable in enqueue order
  const a = ok(await q('enqueue', 'echo one')).trim();
  const b = ok(await q('enqueue', '{"command":"echo two"}')).trim();
  assert.match(a, /^[0-9A-Z]{26}$/);
  assert.ok(a < b, `${a} < ${b}`);
  ok(await waitFor(q, [a, b]));

  // a background process the job left behind does not outlive it
  ok(await q('enqueue', `${longSleep(5)} & echo spawned`, '--id', 'leftover'));
  ok(await waitFor(q, ['leftover']));
  await until(() => running(5).length === 0, 5000, "the job's leftover process to be ended");

  // output beyond output_limit is counted, not kept, and the cut is stated
  ok(await q('config', 'set', 'output_limit', '16'));
  ok(await q('enqueue', "head -c 100 /dev/zero | tr '\\0' x", '--id', 'chatty'));
  ok(await waitFor(q, ['chatty']));
  assert.match(ok(await q('logs', 'chatty')), /\[stdout\]\nx{16}\n\[stdout truncated: kept 16 of 100 bytes; raise the cap with: queuectl config set output_limit <bytes>\]\n/);
  const [chatty] = json<any[]>(await q('logs', 'chatty', '--json'));
  assert.equal([chatty.stdout, chatty.stdout_bytes, chatty.stdout_truncated], ['x'.repeat(16), 100, true]);

  const s = json(await q('status', '--json'));
  assert.equal(s.jobs, { pending: 0, processing: 0, completed: 5, failed: 0, dead: 0, cancelled: 0 });
  assert.equal(s.workers.map((x: any) => [x.pid, x.slots, x.running, x.processed]), [[w.pid, 1, [], 5]]);

  assert.equal(await w.stop(), { code: 0, signal: null });
  assert.ok(w.lines.some((l) => /\] hello started \(attempt 1\)/.test(l)), w.lines.join('\n'));
  assert.ok(w.lines.some((l) => /\] hello completed in \d/.test(l)), w.lines.join('\n'));
  assert.match(w.lines.at(-1)!, /stopped/);
  assert.equal(json(await q('status', '--json')).workers, []);
});

// ---- priority ------------------------------------------------------------------------------

test('one worker runs jobs by priority (lower first), ties in enqueue order', async () => {
  const home = newHome('prio');
  const q = cli(home);
  const dir = scratch('prio');
  const cmd = `echo $QUEUECTL_JOB_ID >> ${dir}/order`;
  ok(await q('enqueue', cmd, '--id', 'p5', '--priority', '5'));
  ok(await q('enqueue', cmd, '--id', 'p0a'));
  ok(await q('enqueue', cmd, '--id', 'm1', '--priority', '-1'));
  ok(await q('enqueue', cmd, '--id', 'p0b', '--priority', '0'));
  ok(await q('enqueue', cmd, '--id', 'm2', '--priority=-2'));
  ok(await q('enqueue', JSON.stringify({ id: 'p3', command: cmd, priority: 3 })));
  ok(await q('enqueue', JSON.stringify({ id: 'm5', command: cmd, priority: -5 })));
  const w = startWorker(home, '--count', '1', '--drain');
  assert.equal(await w.finished(), { code: 0, signal: null });
  const expected = ['m5', 'm2', 'm1', 'p0a', 'p0b', 'p3', 'p5'];
  assert.equal(readFileSync(join(dir, 'order'), 'utf8').trim().split('\n'), expected);
  assert.equal(of(await events(q), 'JobClaimed').map((e) => e.jobId), expected);
  assert.equal((await job(q, 'm2')).priority, -2);
});

// ---- config, retries without backoff, history ------------------------------------------------

const policyHome = newHome('policy');
const P = cli(policyHome);

test('config set max_retries changes how often jobs without their own limit run', async () => {
  assert.is(ok(await P('config', 'set', 'backoff_max', '0')).split('\n')[0], 'backoff_max = 0  # the longest wait between retries, in seconds');
  ok(await P('enqueue', 'exit 1', '--id', 'follows')); // enqueued before the change: still follows it
  ok(await P('enqueue', 'exit 1', '--id', 'own', '--max-retries', '3'));
  ok(await P('enqueue', '[ "$QUEUECTL_ATTEMPT" -ge 2 ]', '--id', 'second-time', '--max-retries', '2'));
  assert.equal((await job(P, 'follows')).max_retries, 3, 'default max_retries is 3');
  assert.match(ok(await P('config', 'set', 'max_retries', '1')), /^max_retries = 1\b/);
  assert.is(json(await P('config', 'get', 'max_retries', '--json')), 1);
  const config = json(await P('config', 'get', '--json'));
  assert.equal({ ...config, lease_seconds: undefined }, { max_retries: 1, backoff_base: 2, backoff_max: 0, output_limit: 1048576, lease_seconds: undefined });
  assert.equal((await job(P, 'follows')).max_retries, 1);
  assert.equal((await job(P, 'own')).max_retries, 3);

  const w = startWorker(policyHome, '--drain');
  assert.equal(await w.finished(), { code: 0, signal: null });
  const follows = await history(P, 'follows');
  assert.is(of(follows, 'JobClaimed').length, 2, '1 + max_retries (1) runs');
  assert.equal(of(follows, 'JobFailed').map((e) => e.maxRetries), [1, 1]);
  assert.is(of(await history(P, 'own'), 'JobClaimed').length, 4, '1 + its own max_retries (3) runs');
  assert.equal([(await job(P, 'follows')).state, (await job(P, 'own')).state], ['dead', 'dead']);
  const sets = of(await events(P), 'ConfigSet').map((e) => [e.key, e.value]);
  assert.equal(sets, [['backoff_max', 0], ['max_retries', 1]]);
  assert.match(w.lines.join('\n'), /follows failed after [\d.]+s: exit code 1; moved to the DLQ after 2 attempts/);
});

test('history shows the exact event sequence, in order, as JSON and as a table', async () => {
  const h = await history(P, 'second-time');
  assert.equal(types(h), ['JobEnqueued', 'JobClaimed', 'JobFailed', 'JobClaimed', 'JobSucceeded']);
  assert.equal(h.map((e) => e.attempt ?? null), [null, 1, 1, 2, 2]);
  for (const e of h) {
    assert.is(e.jobId, 'second-time');
    assert.type(e.pos, 'number');
    assert.type(e.at, 'number');
  }
  for (let i = 1; i < h.length; i++) {
    assert.ok(h[i]!.pos > h[i - 1]!.pos, 'positions increase');
    assert.ok(h[i]!.at >= h[i - 1]!.at, 'times do not go back');
  }
  const failed = h[2]!;
  assert.equal([failed.error, failed.exitCode, failed.retry, failed.maxRetries, failed.retryAt - failed.at], ['exit code 1', 1, 1, 2, 0]);
  assert.is(h[1]!.workerId, h[4]!.workerId);
  assert.type(h[4]!.durationMs, 'number');

  const dead = await history(P, 'follows');
  assert.equal(types(dead), ['JobEnqueued', 'JobClaimed', 'JobFailed', 'JobClaimed', 'JobFailed', 'JobDeadLettered']);
  assert.is(dead[4]!.retryAt, null);

  // the table: a header, then one row per event, same order, position first
  const rows = ok(await P('history', 'second-time')).trimEnd().split('\n');
  assert.match(rows[0]!, /^POS\s+TIME\s+EVENT\s+DETAILS$/);
  assert.equal(rows.slice(1).map((r) => r.split(/\s+/).slice(0, 3)), h.map((e) => [String(e.pos), new Date(e.at).toISOString(), e.type]));
  assert.match(rows[3]!, /attempt 1: exit code 1 after [\d.]+s; retry 1\/2 at /);
});

// ---- cancel ----------------------------------------------------------------------------------

test('cancel: a pending job never runs; a running one has its process group ended', async () => {
  const home = newHome('cancel');
  const q = cli(home);
  const w = await startWorker(home).ready();
  ok(await q('enqueue', `echo started; ${longSleep(1)}; echo finished`, '--id', 'long'));
  ok(await q('enqueue', 'echo later', '--id', 'queued', '--delay', '1h'));

  assert.is(ok(await q('cancel', 'queued')), 'cancelled queued\n');
  assert.is((await job(q, 'queued')).state, 'cancelled');
  assert.equal(types(await history(q, 'queued')), ['JobEnqueued', 'JobCancelled']);

  await until(async () => (await job(q, 'long')).state === 'processing' && ok(await q('logs', 'long')).includes('started'), 10_000, 'long to start');
  assert.is(running(1).length > 0, true, 'the job is running');
  assert.equal(json(await q('cancel', 'long', '--json')), { id: 'long', state: 'cancelled' });
  assert.is((await job(q, 'long')).state, 'cancelled');
  await until(() => running(1).length === 0, 10_000, "the cancelled job's processes to end");
  // the worker hears of it and ends the job; its late result is refused, not recorded
  await until(() => w.lines.some((l) => l.includes('long') && l.includes('not recorded')), 10_000, 'the worker to drop the job');
  assert.equal(types(await history(q, 'long')), ['JobEnqueued', 'JobClaimed', 'JobCancelled']);
  assert.not.match(ok(await q('logs', 'long')), /finished/);

  refused(await q('cancel', 'long'), 1, /'long' is cancelled/);
  refused(await q('cancel', 'nope'), 1, /no job with id 'nope'/);
  const waited = await waitFor(q, ['long']);
  refused(waited, 1, /long is cancelled/);
  assert.is(waited.stdout, 'long cancelled\n');

  // the worker is still serving
  ok(await q('enqueue', 'echo still-here', '--id', 'after'));
  ok(await waitFor(q, ['after']));
  refused(await q('cancel', 'after'), 1, /'after' is completed; only pending, failed or processing jobs can be cancelled/);
  assert.equal(await w.stop(), { code: 0, signal: null });
});

// ---- wait --------------------------------------------------------------------------------------

test('wait: exit 0 when the jobs completed, 1 on timeout or an unknown job, 2 on a bad duration', async () => {
  const home = newHome('wait');
  const q = cli(home);
  const nothing = await q('wait', '--timeout', '5s');
  assert.is(nothing.code, 0, 'nothing to wait for');
  ok(await q('enqueue', 'echo x', '--id', 'w1'));
  const gaveUp = await q('wait', 'w1', '--timeout', '0.5s');
  refused(gaveUp, 1, /gave up waiting after 0\.5s; still running: w1/);
  assert.ok(gaveUp.ms >= 450 && gaveUp.ms < 5000, `gave up after ${gaveUp.ms} ms`);
  refused(await q('wait', '--timeout', '0.3s'), 1, /gave up waiting/);
  refused(await q('wait', 'nope', '--timeout', '1s'), 1, /no job with id 'nope'/);
  refused(await q('wait', 'w1', '--timeout', 'soon'), 2, /--timeout takes a duration/);
  const w = startWorker(home, '--drain');
  assert.equal(json(await q('wait', 'w1', '--timeout', '20s', '--json')), { done: true, jobs: [{ id: 'w1', state: 'completed' }] });
  await w.finished();
  assert.is((await q('wait')).code, 0);
});

// ---- persistence, detached workers ----------------------------------------------------------------

test('persistence: enqueue, stop everything, start again: every job finishes exactly once (worker start --detach / stop)', async () => {
  const home = newHome('persist');
  const q = cli(home);
  const dir = scratch('persist');
  const ids = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
  const file = join(dir, 'jobs.ndjson');
  writeFileSync(file, ids.map((id) => JSON.stringify({ id, command: `sleep 0.4; echo $QUEUECTL_JOB_ID >> ${dir}/ran` })).join('\n'));
  assert.is(ok(await q('enqueue', '--file', file)), `${ids.join('\n')}\n`);

  const first = await q('worker', 'start', '--detach');
  assert.match(ok(first), /^\d+\n$/);
  const pid = Number(first.stdout);
  assert.ok(isAlive(pid));
  assert.ok(json(await q('status', '--json')).workers.some((w: any) => w.pid === pid));
  assert.is(statSync(join(home, 'worker.log')).mode & 0o777, 0o600);
  await until(async () => json(await q('status', '--json')).jobs.completed >= 1, 10_000, 'a first job to complete');

  const stopped = await q('worker', 'stop');
  assert.is(ok(stopped), `stopped 1 worker process (${pid})\n`);
  assert.not.ok(isAlive(pid), 'worker stop returns once the worker has exited');
  assert.is(ok(await q('worker', 'stop')), 'no workers running\n');
  const between = json(await q('status', '--json'));
  assert.is(between.jobs.processing, 0, 'a graceful stop lets the running job finish');
  assert.ok(between.jobs.pending >= 1, `some jobs are left for later: ${JSON.stringify(between.jobs)}`);
  assert.equal(between.workers, []);
  assert.equal(strays().filter((s) => s.cmd.includes(home)), [], 'nothing of this data directory is running');

  const second = Number(ok(await q('worker', 'start', '--detach')));
  assert.ok(second !== pid && isAlive(second));
  ok(await waitFor(q, [], '20s'));
  assert.equal(readFileSync(join(dir, 'ran'), 'utf8').trim().split('\n').sort(), ids, 'each job ran exactly once');
  for (const id of ids) {
    const h = await history(q, id);
    assert.is(of(h, 'JobSucceeded').length, 1, id);
    assert.is(of(h, 'JobClaimed').length, 1, id);
  }
  assert.match(ok(await q('projections', 'verify')), /^projections match the log \(\d+ events\)\n$/);
  assert.is(ok(await q('worker', 'stop')), `stopped 1 worker process (${second})\n`);
  assert.match(readFileSync(join(home, 'worker.log'), 'utf8'), new RegExp(`worker ${second} stopped`));
});

test('SIGINT stops a worker gracefully (its job finishes); worker stop --force ends running jobs at once', async () => {
  const home = newHome('signals');
  const q = cli(home);
  const w = await startWorker(home).ready();
  ok(await q('enqueue', 'sleep 0.8; echo done', '--id', 'gentle'));
  await until(async () => (await job(q, 'gentle')).state === 'processing', 10_000, 'gentle to start');
  w.signal('SIGINT');
  assert.equal(await w.finished(10_000), { code: 0, signal: null });
  assert.is((await job(q, 'gentle')).state, 'completed');
  assert.match(w.lines.join('\n'), /SIGINT: stopping; running jobs finish first/);

  ok(await q('enqueue', `echo started; ${longSleep(6)}`, '--id', 'forced'));
  const pid = Number(ok(await q('worker', 'start', '--detach')));
  await until(async () => ok(await q('logs', 'forced')).includes('started'), 10_000, 'forced to start');
  const stopped = await q('worker', 'stop', '--force');
  assert.is(ok(stopped), `stopped 1 worker process (${pid})\n`);
  assert.ok(stopped.ms < 5000, `worker stop --force took ${stopped.ms} ms`);
  assert.not.ok(isAlive(pid));
  assert.equal(running(6), [], "the job's processes were ended");
  const forced = await job(q, 'forced');
  assert.equal([forced.state, forced.attempts], ['pending', 0], 'ended, and back in the queue without using a retry (test/forced-stop.test.ts)');
});

// ---- the slow jobs: retries with backoff, the DLQ, run_at, timeouts, 127 --------------------

test('a failing job is retried after backoff_base^n seconds and lands in the DLQ after 1 + max_retries runs', async () => {
  refused(await waitFor(S, ['flaky']), 1, /flaky is dead/);
  const h = await history(S, 'flaky');
  assert.equal(types(h), ['JobEnqueued', 'JobClaimed', 'JobFailed', 'JobClaimed', 'JobFailed', 'JobClaimed', 'JobFailed', 'JobDeadLettered']);
  const claims = of(h, 'JobClaimed');
  const fails = of(h, 'JobFailed');
  for (const n of [1, 2]) {
    const f = fails[n - 1]!;
    const wantMs = Math.round(1.5 ** n * 1000);
    assert.equal([f.retry, f.maxRetries, f.retryAt - f.at], [n, 2, wantMs], `retry ${n} is decided for ${wantMs} ms later`);
    const gap = claims[n]!.at - f.at;
    assert.ok(gap >= wantMs && gap < wantMs + 750, `gap before retry ${n}: ${gap} ms, expected ~${wantMs} ms`);
  }
  assert.equal([fails[2]!.retryAt, fails[2]!.retry], [null, null]);
  const shown = await job(S, 'flaky');
  assert.equal([shown.state, shown.attempts, shown.exit_code, shown.last_error], ['dead', 3, 1, 'exit code 1']);
  const logs = ok(await S('logs', 'flaky'));
  assert.equal(logs.match(/── attempt \d · exit code 1 /g)?.length, 3, logs);
  assert.match(logs, /run 1\n[\s\S]*run 2\n[\s\S]*run 3\n/);
  const dlq = json<any[]>(await S('dlq', 'list', '--json'));
  const entry = dlq.find((d) => d.id === 'flaky');
  assert.ok(entry, JSON.stringify(dlq));
  assert.match(entry.dead_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.match(ok(await S('dlq', 'list')), /\nflaky\s+\S+\s+3\s+exit code 1\s+echo/);
  assert.match(slowWorker.lines.join('\n'), /flaky failed after [\d.]+s: exit code 1; retry 1\/2 in 1\.5s/);
  assert.match(slowWorker.lines.join('\n'), /flaky failed after [\d.]+s: exit code 1; retry 2\/2 in 2\.25s/);
});

test('dlq retry runs a dead job again with its attempts reset; its history keeps every attempt', async () => {
  ok(await waitFor(S, ['delayed']));
  const before = await events(S);
  refused(await S('dlq', 'retry', 'delayed'), 1, /job 'delayed' is completed, not dead/);
  refused(await S('dlq', 'retry', 'nope'), 1, /no job with id 'nope'/);
  assert.equal(await events(S), before, 'a refused retry writes nothing');

  writeFileSync(join(slowDir, 'fixed'), '');
  assert.is(ok(await S('dlq', 'retry', 'flaky')), 'retrying flaky\n');
  ok(await waitFor(S, ['flaky']));
  const shown = await job(S, 'flaky');
  assert.equal([shown.state, shown.attempts, shown.exit_code, shown.last_error], ['completed', 1, 0, null]);
  const h = await history(S, 'flaky');
  assert.equal(types(h).slice(-4), ['JobDeadLettered', 'JobRetried', 'JobClaimed', 'JobSucceeded']);
  assert.is(of(h, 'JobClaimed').length, 4);
  assert.is(h.at(-1)!.attempt, 4);
  assert.match(ok(await S('logs', 'flaky', '--attempt', '4')), /^── attempt 4 · exit code 0/);
  assert.not.ok(json<any[]>(await S('dlq', 'list', '--json')).some((d) => d.id === 'flaky'));
});

test('run_at / --delay: a job does not start before its time, and starts promptly then', async () => {
  ok(await waitFor(S, ['delayed', 'runat']));
  for (const id of ['delayed', 'runat']) {
    const shown = await job(S, id);
    const runAt = Date.parse(shown.run_at);
    const created = Date.parse(shown.created_at);
    // --delay counts from when the command ran, a little before the job was recorded
    assert.ok(runAt - created > 1500 && runAt - created <= 2500, `${id}: run_at ${shown.run_at}, created ${shown.created_at}`);
    const claimed = of(await history(S, id), 'JobClaimed')[0]!.at;
    assert.ok(claimed >= runAt, `${id} started ${runAt - claimed} ms early`);
    assert.ok(claimed < runAt + 1000, `${id} started ${claimed - runAt} ms late`);
  }
});

test('timeout: a job that ignores SIGTERM is killed after the grace period', async () => {
  refused(await waitFor(S, ['stubborn']), 1, /stubborn is dead/);
  const shown = await job(S, 'stubborn');
  assert.is(shown.last_error, 'timed out after 1s');
  assert.is(shown.timeout_seconds, 1);
  const failed = of(await history(S, 'stubborn'), 'JobFailed')[0]!;
  assert.equal([failed.timedOut, failed.signal], [true, 'SIGKILL']);
  assert.ok(failed.durationMs >= 2500 && failed.durationMs < 6000, `ended after ${failed.durationMs} ms (1 s timeout + 2 s grace)`);
  assert.match(ok(await S('logs', 'stubborn')), /attempt 1 · timed out after 1s[\s\S]*armed/);
  assert.equal(running(2), []);
});

test('timeout: a grandchild holding stdout does not keep the job alive', async () => {
  refused(await waitFor(S, ['grandchild']), 1, /grandchild is dead/);
  assert.is((await job(S, 'grandchild')).last_error, 'timed out after 1s');
  const failed = of(await history(S, 'grandchild'), 'JobFailed')[0]!;
  assert.ok(failed.durationMs >= 950 && failed.durationMs < 2500, `ended after ${failed.durationMs} ms`);
  assert.not.match(ok(await S('logs', 'grandchild')), /late|never/);
  assert.equal(running(3), []);
});

test('a grandchild that left the process group cannot keep a finished job open', async () => {
  ok(await waitFor(S, ['escaped']));
  const done = of(await history(S, 'escaped'), 'JobSucceeded')[0]!;
  assert.ok(done.durationMs < 3000, `completed after ${done.durationMs} ms`);
  assert.match(ok(await S('logs', 'escaped')), /bg-started/);
  // it is outside the job's process group, so it is ours to end
  for (const s of running(4)) process.kill(s.pid, 'SIGKILL');
});

test('a command that cannot run fails with exit 127 (or a clear error) and the worker carries on', async () => {
  refused(await waitFor(S, ['nocmd']), 1, /nocmd is dead/);
  const shown = await job(S, 'nocmd');
  assert.equal([shown.exit_code, shown.last_error], [127, 'exit code 127 (command not found)']);
  assert.match(ok(await S('logs', 'nocmd')), /not found/);
  refused(await waitFor(S, ['badcwd']), 1, /badcwd is dead/);
  assert.match((await job(S, 'badcwd')).last_error, /^could not start: .*nonexistent/);

  assert.ok(slowWorker.running, 'the worker survived the failures and timeouts');
  ok(await S('enqueue', 'echo alive', '--id', 'afterwards'));
  ok(await waitFor(S, ['afterwards']));
});

test('stopping the worker leaves no stray processes', async () => {
  assert.equal(await slowWorker.stop(), { code: 0, signal: null });
  assert.not.ok(existsSync(join(slowHome, 'host.sock')), 'the host removed its socket');
  await assertNoStrays();
});

test.run();
