// End to end, with real processes and signals: a worker's forced stop (`worker stop --force`,
// or a second SIGINT) hands its running jobs back (JobReleased: pending again, no retry used,
// history says why), and `status` with no host running shows a worker whose process is gone
// as lost, not as running its jobs.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryLevel } from 'memory-level';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  MARK, type Q, type StoredEvent, assertNoStrays, cleanup, cli, events, history, job, json, newHome, ok, scratch, startWorker, stopWorkers, strays, until,
} from './helpers/cli.ts';
import type { Queue } from '../src/host/connect.ts';
import { Host } from '../src/host/host.ts';
import { resolveHome } from '../src/home.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';
import { openLevelEngine } from './helpers/backends.ts';
import { WorkerPool } from '../src/worker/runtime.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

/** Sleeps a minute (its command line carries MARK, so strays() finds it) until `<dir>/go` exists; then completes. */
const sleepUntilGo = (dir: string, n: number): string => `if [ -f ${dir}/go ]; then echo done; else sleep ${MARK}${n}; fi`;
const sleeping = (n: number) => strays().filter((s) => s.cmd.includes(`${MARK}${n}`));

type QH = Q & { home: string };

const processing = (q: Q, id: string) => until(async () => (await job(q, id)).state === 'processing' && sleeping(Number(id.slice(-1))).length > 0, 15_000, `${id} to run`);

/** After the forced stop: pending, no retry used, nothing in the DLQ, history says why; a later worker completes it. */
const checkReleased = async (q: QH, id: string, dir: string, reason: RegExp): Promise<void> => {
  const j = await job(q, id);
  assert.is(j.state, 'pending', 'the job is pending again');
  assert.is(j.attempts, 0, 'the forced stop used no attempt of the cycle');
  assert.is(j.max_retries, 0);
  assert.equal(json(await q('dlq', 'list', '--json')), [], 'nothing went to the DLQ');
  const h = await history(q, id);
  assert.equal(h.map((e) => e.type), ['JobEnqueued', 'JobClaimed', 'JobReleased'], 'no JobFailed, no JobDeadLettered');
  const released = h[2]!;
  assert.is(released.attempt, 1, 'the released attempt keeps its number (the fencing token)');
  assert.match(released.reason, reason);
  assert.ok(released.durationMs >= 0, 'how long the ended run took');
  assert.match(ok(await q('history', id)), /JobReleased\s+attempt 1: .*forced stop.*back to pending/, 'history says why, in words');
  assert.match(ok(await q('logs', id)), /attempt 1 · released/, 'logs names the outcome of the released attempt');
  assert.equal(sleeping(Number(id.slice(-1))), [], "the job's process group was ended");

  writeFileSync(join(dir, 'go'), '');
  const w = startWorker(q.home, '--drain');
  assert.is((await w.finished()).code, 0);
  const after = await job(q, id);
  assert.is(after.state, 'completed', `a later worker ran it to completion: ${w.lines.join(' | ')}`);
  assert.is(after.attempts, 1);
  const types = (await history(q, id)).map((e) => e.type);
  assert.equal(types, ['JobEnqueued', 'JobClaimed', 'JobReleased', 'JobClaimed', 'JobSucceeded']);
  const claims = (await history(q, id)).filter((e) => e.type === 'JobClaimed').map((e) => e.attempt);
  assert.equal(claims, [1, 2], 'the next claim is attempt 2: a late report of attempt 1 stays fenced off');
  const verify = await q('projections', 'verify');
  assert.is(verify.code, 0, `projections verify: ${verify.stdout}${verify.stderr}`);
};

test('a claim that arrives with a report after the forced stop is handed back unstarted (in-process pool)', async () => {
  const engine = await openLevelEngine(new MemoryLevel<string, unknown>() as unknown as AnyLevel, { sync: false });
  const host = new Host(engine);
  const spec = (id: string) => ({ id, command: 'true', cwd: '/', priority: 0, maxRetries: 0, runAt: null, timeoutMs: null });
  await engine.execute({ type: 'enqueue', jobs: [spec('a'), spec('b')] });
  const calls: string[] = [];
  let pool: WorkerPool | null = null;
  const queue = {
    call: async (method: string, params: Record<string, unknown>) => {
      calls.push(method === 'claim' || method === 'heartbeat' ? method : `${method} ${params.jobId ?? ''}`.trim());
      if (method === 'report') pool!.killRunning('forced stop (test)'); // the stop comes while a's report is on its way
      return (host.api as unknown as Record<string, (p: unknown) => Promise<unknown>>)[method]!({ ...params, ...(method === 'claim' ? { waitMs: 0 } : {}) });
    },
  } as unknown as Queue;
  pool = new WorkerPool({ queue, home: resolveHome(scratch('pool')), count: 1, drain: false, log: () => {} });
  await pool.run();
  assert.equal(calls.filter((c) => c !== 'heartbeat'), ['workerStart', 'claim', 'report a', 'release b', 'workerStop'], 'b came with the report and was handed back, not run');
  const b = (await engine.getJob('b'))!;
  assert.equal([b.state, b.attempts, b.totalAttempts], ['pending', 0, 1]);
  const released = (await engine.history('b')).at(-1)!;
  assert.equal(released.type === 'JobReleased' && [released.reason, released.output], ['forced stop (test)', null], 'output null: it never started');
  await engine.close();
});

const withHome = (name: string): { q: QH; dir: string } => {
  const home = newHome(name);
  return { q: Object.assign(cli(home), { home }), dir: scratch(name) };
};

test('worker stop --force: the running job is released, pending again with no retry used; a later worker completes it', async () => {
  const { q, dir } = withHome('force');
  ok(await q('enqueue', sleepUntilGo(dir, 1), '--id', 'force1', '--max-retries', '0'));
  const w = await startWorker(q.home).ready();
  await processing(q, 'force1');
  assert.match(ok(await q('worker', 'stop', '--force')), /stopped 1 worker process/);
  assert.is((await w.finished(10_000)).code, 0, `the worker exits 0: ${w.lines.join(' | ')}`);
  assert.ok(w.lines.some((l) => /force1 .*back to pending/.test(l)), `the worker says the job went back: ${w.lines.join(' | ')}`);
  await checkReleased(q, 'force1', dir, /forced stop \(second SIGTERM\)/);
  await assertNoStrays();
});

test('a second SIGINT: the running job is released the same way', async () => {
  const { q, dir } = withHome('sigint');
  ok(await q('enqueue', sleepUntilGo(dir, 2), '--id', 'sigint2', '--max-retries', '0'));
  const w = await startWorker(q.home).ready();
  await processing(q, 'sigint2');
  w.signal('SIGINT');
  await until(() => w.lines.some((l) => l.includes('SIGINT: stopping')), 5000, 'the first SIGINT to be seen');
  assert.is((await job(q, 'sigint2')).state, 'processing', 'the first SIGINT lets the job run on');
  w.signal('SIGINT');
  assert.is((await w.finished(10_000)).code, 0, `the worker exits 0: ${w.lines.join(' | ')}`);
  await checkReleased(q, 'sigint2', dir, /forced stop \(second SIGINT\)/);
  await assertNoStrays();
});

interface StatusWorker { id: string; pid: number; running: string[]; alive: boolean; lost_jobs: string[] }

test('status with no host running: a worker killed with SIGKILL (with its host) is shown as lost, its job not as running; status writes nothing', async () => {
  const { q, dir } = withHome('lost');
  ok(await q('enqueue', sleepUntilGo(dir, 3), '--id', 'lost3', '--max-retries', '1'));
  const w = await startWorker(q.home).ready(); // the only process: worker and host
  await processing(q, 'lost3');
  w.signal('SIGKILL');
  await w.finished(5000);

  const before: StoredEvent[] = await events(q);
  const s = json<{ jobs: Record<string, number>; workers: StatusWorker[] }>(await q('status', '--json'));
  assert.is(s.workers.length, 1);
  const lost = s.workers[0]!;
  assert.is(lost.pid, w.pid);
  assert.is(lost.alive, false, 'the worker is shown as not alive');
  assert.equal(lost.running, [], 'its job is not shown as running');
  assert.equal(lost.lost_jobs, ['lost3'], 'the job it held is named as lost with it');
  const table = ok(await q('status'));
  assert.match(table, new RegExp(`^\\S+\\s+${w.pid}\\s+lost\\s+1\\s+-\\s`, 'm'), `the table shows the worker as lost, running nothing:\n${table}`);
  assert.match(table, /^Lost\s.*lost3/m, `a line names the job lost with it:\n${table}`);
  assert.is((await events(q)).length, before.length, 'status (a read) wrote nothing');

  // The next worker's host records the loss and, after the retry's backoff, runs the job again.
  writeFileSync(join(dir, 'go'), '');
  const w2 = startWorker(q.home, '--drain');
  assert.is((await w2.finished(20_000)).code, 0);
  assert.is((await job(q, 'lost3')).state, 'completed', w2.lines.join(' | '));
  const types = (await events(q)).slice(before.length).map((e) => e.type);
  assert.ok(types.includes('WorkerStopped') && types.includes('JobLeaseExpired'), `the loss is recorded by the next host: ${types.join(' ')}`);
  const s2 = json<{ workers: StatusWorker[] }>(await q('status', '--json'));
  assert.equal(s2.workers, [], 'no worker left over');
  await assertNoStrays();
});

test.run();
