// End to end, issue 10: three "machines" (three --home directories, each with its own host) on
// one PostgreSQL queue, real processes of the built CLI. Every job runs exactly once whoever
// claims it, the projections match the log, and `events --follow` on one machine sees every
// event the others append, in commit order, none skipped and none twice.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, type StoredEvent, assertNoStrays, cleanup, events, ok, scratch, stopWorkers, until } from './helpers/cli.ts';
import { claimViolation, enqueueMany, ids, linesOf, note, tally } from './helpers/multi.ts';
import { assertVerifies, machines, queueUrl, status, withPgCli } from './helpers/pg-machines.ts';

const test = suite('pg-e2e-share');
const pg = withPgCli(test, 'pg-e2e-share');
test.after.each(() => stopWorkers());
test.after(cleanup);

// The 1,000 jobs (about 11 s here); QUEUECTL_PG_E2E_JOBS makes it smaller.
const JOBS = Number(process.env.QUEUECTL_PG_E2E_JOBS ?? 1000);

test(`three machines x 4 slots x ${JOBS} jobs on one PostgreSQL queue: every id exactly once, projections verify`, async () => {
  const server = pg();
  if (!server) return;
  const dir = scratch('pg-share');
  const out = join(dir, 'out.txt');
  const [m1, m2, m3] = machines(3, queueUrl(server, 'share'));
  // started together: the schema is created once, under the migration lock, whoever comes first
  await Promise.all([m1, m2, m3].map((m) => m!.startWorker(4)));
  const all = ids('s', JOBS);
  const thirds = [0, 1, 2].map((k) => all.filter((_, i) => i % 3 === k));
  // each machine enqueues a third, at the same time
  await Promise.all([m1, m2, m3].map((m, k) => enqueueMany(m!.q, dir, thirds[k]!.map((id) => ({ id, command: `echo $QUEUECTL_JOB_ID >> ${out}` })))));
  note(`${JOBS} enqueued from three machines`);
  const t0 = Date.now();
  await until(async () => (await status(m1!.q)).jobs.completed === JOBS, 180_000, `all ${JOBS} jobs to complete`, 250);
  note(`${JOBS} completed in ${Date.now() - t0} ms`);

  const seen = tally(linesOf(out));
  assert.equal(all.filter((id) => seen.get(id) !== 1).map((id) => `${id} x${seen.get(id) ?? 0}`), [], 'every id appended exactly once');
  assert.is(seen.size, JOBS, 'no other id appended');

  // every machine sees the same queue: three workers, all jobs completed
  for (const m of [m1!, m2!, m3!]) {
    const s = await status(m.q);
    assert.equal(s.jobs, { pending: 0, processing: 0, completed: JOBS, failed: 0, dead: 0, cancelled: 0 }, `status on ${m.name}`);
    assert.equal(s.workers.map((w) => w.pid).sort(), [m1!, m2!, m3!].map((x) => x.workers[0]!.pid).sort(), `status on ${m.name} lists the worker of every machine`);
  }
  const log = await events(m2!.q);
  const byJob = new Map<string, StoredEvent[]>();
  for (const e of log) if (e.jobId !== undefined) byJob.set(e.jobId, [...(byJob.get(e.jobId) ?? []), e]);
  assert.equal(all.map((id) => claimViolation(id, byJob.get(id) ?? [])).filter(Boolean).slice(0, 10), [], 'no job claimed twice at once');
  assert.equal(all.filter((id) => (byJob.get(id) ?? []).filter((e) => e.type === 'JobSucceeded').length !== 1), [], 'one JobSucceeded per job');
  // the work was shared: every machine's worker completed some of it
  const s = await status(m3!.q);
  for (const w of s.workers) assert.ok(w.processed > 0, `worker ${w.pid} processed ${w.processed} jobs`);
  note(`processed per machine: ${s.workers.map((w) => w.processed).join(', ')}`);
  await assertVerifies(m1!.q);
  await assertVerifies(m3!.q);
  await Promise.all([m1, m2, m3].map((m) => m!.workers[0]!.stop()));
});

/** A long-running `events --follow --json` whose events are collected as they arrive. */
const follow = (home: string, url: string): { child: ChildProcess; seen: StoredEvent[]; stderr: () => string } => {
  const child = spawn(process.execPath, [CLI, 'events', '--follow', '--json', '--home', home, '--database-url', url], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  const seen: StoredEvent[] = [];
  let buf = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const line of lines) if (line) seen.push(JSON.parse(line) as StoredEvent);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  return { child, seen, stderr: () => err };
};

test('events --follow on one machine while two others append concurrently: every event once, in commit order', async () => {
  const server = pg();
  if (!server) return;
  const url = queueUrl(server, 'follow');
  const dir = scratch('pg-follow');
  const [m1, m2, m3] = machines(3, url);
  ok(await m1!.q('config', 'set', 'backoff_base', '1')); // creates the queue before the follower starts
  const f = follow(m1!.home, url);
  try {
    // two machines run jobs while both keep enqueueing from many processes at once: claims,
    // results and enqueues of different transactions commit interleaved
    await Promise.all([m2!.startWorker(4), m3!.startWorker(4)]);
    const batches = Array.from({ length: 12 }, (_, b) => ids(`f${b}-`, 25));
    await Promise.all(batches.map((batch, b) => enqueueMany((b % 2 === 0 ? m2 : m3)!.q, dir, batch.map((id) => ({ id, command: b % 3 === 0 ? 'false' : 'true', max_retries: 1 }))))) ;
    const total = batches.flat().length;
    await until(async () => {
      const s = await status(m2!.q);
      return s.jobs.completed + s.jobs.dead === total && s.jobs.pending + s.jobs.processing + s.jobs.failed === 0;
    }, 120_000, 'every job to end', 250);
    await Promise.all([m2!.workers[0]!.stop(), m3!.workers[0]!.stop()]);
    const log = await events(m3!.q);
    await until(() => f.seen.length >= log.length, 20_000, `the follower to see ${log.length} events (has ${f.seen.length}; ${f.stderr()})`, 50);
    assert.ok(f.child.exitCode === null, `the follower is still following: ${f.stderr()}`);
    const positions = f.seen.map((e) => e.pos);
    assert.equal(positions.filter((p, i) => i > 0 && p <= positions[i - 1]!), [], 'positions strictly increase (nothing twice, nothing out of order)');
    assert.equal(positions, log.map((e) => e.pos), 'the follower saw exactly the events of the log');
    assert.equal(f.seen, log, 'and the same events');
    note(`followed ${f.seen.length} events`);
  } finally {
    f.child.kill('SIGTERM');
  }
});

test.after(assertNoStrays);
test.run();
