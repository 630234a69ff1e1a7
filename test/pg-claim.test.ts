// Claims and leases over PostgreSQL (src/store/postgres/claim.ts): many connections claiming
// at once get every job exactly once; one claimer takes jobs in priority, due time, enqueue
// order and never a job not yet due; a job another transaction holds is skipped, not waited
// for; leases run out by the database's clock and are fenced by worker and attempt.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { EventData } from '../src/events.ts';
import { databaseNow, grantLease, lockDueJobs, lockExpiredLeases, releaseLease, renewLease, nextDueAt } from '../src/store/postgres/claim.ts';
import type { Sql } from '../src/store/postgres/connect.ts';
import { appendEvents, readEvents } from '../src/store/postgres/log.ts';
import { freshQueue, withPostgres } from './helpers/postgres.ts';

const test = suite('pg-claim');
const pg = withPostgres(test, 'pg-claim', { fsync: false });

/** Waiting jobs, written straight into the job and runnable tables (the fold is not part of this). */
const addJobs = async (sql: Sql, jobs: { id: string; priority?: number; dueAt?: number; pos: number }[]) => {
  const rows = jobs.map((j) => ({ id: j.id, priority: j.priority ?? 0, due_at: j.dueAt ?? 0, pos: j.pos }));
  await sql`insert into jobs (id, state, enqueued_pos, view)
    select id, 'pending', pos, '{}'::jsonb from jsonb_to_recordset(${sql.json(rows as never)}) as r(id text, pos bigint)`;
  await sql`insert into runnable (job_id, priority, due_at, enqueued_pos)
    select id, priority, due_at, pos from jsonb_to_recordset(${sql.json(rows as never)}) as r(id text, priority int, due_at bigint, pos bigint)`;
};

/** One claim as the store will make it: lock a due job, lease it, take it out of the runnable set, append JobClaimed. */
const claimOne = (sql: Sql, schema: string, workerId: string, leaseMs = 30_000): Promise<string | null> =>
  sql.begin(async (tx) => {
    const now = await databaseNow(tx);
    const [job] = await lockDueJobs(tx, now);
    if (!job) return null;
    const leaseUntil = await grantLease(tx, job.jobId, workerId, 1, leaseMs);
    await tx`delete from runnable where job_id = ${job.jobId}`;
    await tx`update jobs set state = 'processing' where id = ${job.jobId}`;
    await appendEvents(tx, schema, [{ at: now, data: { type: 'JobClaimed', jobId: job.jobId, workerId, attempt: 1, leaseUntil } as EventData }]);
    return job.jobId;
  });

test('8 connections claiming 400 jobs at once: every job claimed exactly once', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_claim');
  const JOBS = 400;
  const CLAIMERS = 8;
  try {
    const setup = await q.connect(1);
    await addJobs(setup, Array.from({ length: JOBS }, (_, i) => ({ id: `j${i}`, priority: i % 3, pos: i })));
    const claimers = await Promise.all(Array.from({ length: CLAIMERS }, () => q.connect(1)));
    const began = performance.now();
    const claimedBy = await Promise.all(
      claimers.map(async (sql, c) => {
        const mine: string[] = [];
        for (let id = await claimOne(sql, q.schema, `w${c}`); id !== null; id = await claimOne(sql, q.schema, `w${c}`)) mine.push(id);
        return mine;
      }),
    );
    const ms = performance.now() - began;
    const all = claimedBy.flat();
    assert.is(all.length, JOBS, 'as many claims as jobs');
    assert.is(new Set(all).size, JOBS, 'no job claimed twice');
    const claims = new Map<string, number>();
    for await (const e of readEvents(setup, 0)) if (e.type === 'JobClaimed') claims.set(e.jobId, (claims.get(e.jobId) ?? 0) + 1);
    assert.is(claims.size, JOBS);
    assert.ok([...claims.values()].every((n) => n === 1), 'one JobClaimed per job in the log');
    assert.is((await setup`select count(*)::int as n from runnable`)[0]!.n, 0);
    assert.is((await setup`select count(*)::int as n from leases`)[0]!.n, JOBS);
    assert.ok(claimedBy.filter((m) => m.length > 0).length > 1, 'the claims were spread over several connections');
    console.log(`\n  pg-claim: ${JOBS} claims by ${CLAIMERS} connections in ${ms.toFixed(0)} ms (${((JOBS / ms) * 1000).toFixed(0)}/s, one claim per transaction, fsync off)`);
  } finally {
    await q.drop();
  }
});

test('one claimer: priority, then due time, then enqueue order; a job not yet due is left alone', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_claim');
  try {
    const sql = await q.connect(1);
    const now = await databaseNow(sql);
    await addJobs(sql, [
      { id: 'late-low', priority: 5, dueAt: 0, pos: 0 },
      { id: 'future', priority: -10, dueAt: now + 3_600_000, pos: 1 },
      { id: 'urgent-second', priority: -1, dueAt: 20, pos: 2 },
      { id: 'urgent-first', priority: -1, dueAt: 10, pos: 3 },
      { id: 'normal-a', priority: 0, dueAt: 10, pos: 4 },
      { id: 'normal-b', priority: 0, dueAt: 10, pos: 5 },
    ]);
    const order: string[] = [];
    for (let id = await claimOne(sql, q.schema, 'w'); id !== null; id = await claimOne(sql, q.schema, 'w')) order.push(id);
    assert.equal(order, ['urgent-first', 'urgent-second', 'normal-a', 'normal-b', 'late-low']);
    assert.is(await nextDueAt(sql), now + 3_600_000, 'the job not yet due still waits');
  } finally {
    await q.drop();
  }
});

test('a job another transaction holds (a cancel under way) is skipped at once, not waited for', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_claim');
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  try {
    const sql = await q.connect(3);
    await addJobs(sql, [{ id: 'held', pos: 0 }, { id: 'free', pos: 1 }]);
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    const holder = sql.begin(async (tx) => {
      await tx`select id from jobs where id = 'held' for update`;
      holding();
      await released;
    });
    holder.catch(() => {});
    await held;
    const began = performance.now();
    assert.is(await claimOne(sql, q.schema, 'w'), 'free');
    assert.ok(performance.now() - began < 2_000, 'no wait for the held row');
    release();
    await holder;
    assert.is(await claimOne(sql, q.schema, 'w'), 'held', 'once let go, it is claimed');
  } finally {
    release();
    await q.drop();
  }
});

test("leases run out by the database's clock; a heartbeat is fenced by worker and attempt", async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_claim');
  try {
    const sql = await q.connect(2);
    await addJobs(sql, [{ id: 'a', pos: 0 }]);
    const granted = await sql.begin((tx) => grantLease(tx, 'a', 'w1', 1, 400));
    const now = await databaseNow(sql);
    assert.ok(granted > now && granted <= now + 400 + 50, 'the expiry is the database now + the lease');
    assert.is(await renewLease(sql, 'a', 'w2', 1, 400), null, 'another worker cannot renew it');
    assert.is(await renewLease(sql, 'a', 'w1', 2, 400), null, 'nor another attempt');
    const renewed = await renewLease(sql, 'a', 'w1', 1, 400);
    assert.ok(renewed !== null && renewed >= granted, 'its holder can');
    assert.equal(await sql.begin((tx) => lockExpiredLeases(tx)), [], 'not expired yet');
    // wait by the database's clock, not ours
    for (let i = 0; i < 200 && (await databaseNow(sql)) <= renewed!; i++) await new Promise((r) => setTimeout(r, 20));
    await sql.begin(async (tx) => {
      const expired = await lockExpiredLeases(tx);
      assert.equal(expired, [{ jobId: 'a', workerId: 'w1', attempt: 1 }]);
      assert.ok(await releaseLease(tx, 'a', 1));
    });
    assert.is(await renewLease(sql, 'a', 'w1', 1, 400), null, 'an expired and released lease cannot be renewed');
    assert.not.ok(await sql.begin((tx) => releaseLease(tx, 'a', 1)), 'nor released twice');
  } finally {
    await q.drop();
  }
});

test.run();
