// Claims and leases over PostgreSQL, as functions over a caller's transaction, so the store's
// `claimNext` can run them around the shared `decide` (lock a due job, decide its claim, grant
// the lease, append; all in one transaction).
//
// Safe with any number of claimers on any number of machines: a claimer locks the runnable
// row AND the job's row with FOR UPDATE SKIP LOCKED, so two never get the same job and none
// waits for another (a job that a cancel or a report is changing right now is skipped, not
// waited for). Leases are judged by the database's clock (now()), never a worker's: a
// machine whose clock is wrong can neither keep a job it lost nor lose one it holds.
import type { JobView } from '../../domain/types.ts';
import type { Queryable, TransactionSql } from './connect.ts';

/** A due job, locked for the rest of the caller's transaction. */
export interface DueJob {
  jobId: string;
  priority: number;
  dueAt: number;
  enqueuedPos: number;
  /** the job as its row holds it */
  view: JobView;
}

/** The database's time (ms epoch), as of the start of the transaction: what decisions use. */
export const databaseNow = async (sql: Queryable): Promise<number> => {
  const [row] = await sql<{ now: number }[]>`select (extract(epoch from now()) * 1000)::float8 as now`;
  return Math.floor(row!.now);
};

/**
 * Lock up to `limit` due runnable jobs, in claim order: lowest priority number, then earliest
 * due time, then enqueue order. Rows other transactions hold are skipped, and so are the
 * `excluded` jobs (ones the caller's own transaction is changing otherwise). `now` is the time
 * due is judged at (ms epoch); null: the database's now() of this transaction, so the caller
 * can send this with its first statements without waiting for the time.
 */
export const lockDueJobs = async (tx: TransactionSql, now: number | null, limit = 1, excluded: readonly string[] = []): Promise<DueJob[]> =>
  (
    await tx<{ job_id: string; priority: number; due_at: string; enqueued_pos: string; view: JobView }[]>`
      select r.job_id, r.priority, r.due_at, r.enqueued_pos, j.view
      from runnable r join jobs j on j.id = r.job_id
      where r.due_at <= coalesce(${now}::bigint, floor(extract(epoch from now()) * 1000)::bigint) and r.job_id <> all(${excluded as string[]}::text[])
      order by r.priority, r.due_at, r.enqueued_pos
      limit ${limit}
      for update of r, j skip locked`
  ).map((r) => ({ jobId: r.job_id, priority: r.priority, dueAt: Number(r.due_at), enqueuedPos: Number(r.enqueued_pos), view: r.view }));

/** The earliest due time of a waiting job (ms epoch), or null when none waits. */
export const nextDueAt = async (sql: Queryable): Promise<number | null> => {
  const [row] = await sql<{ due_at: string | null }[]>`select min(due_at) as due_at from runnable`;
  return row?.due_at == null ? null : Number(row.due_at);
};

/**
 * Give `attempt` of a job to a worker until `leaseMs` after the database's now; returns the
 * expiry (ms epoch, database clock) for the JobClaimed event. The caller holds the job's lock
 * (lockDueJobs), so no other lease on it can be granted meanwhile.
 */
export const grantLease = async (tx: TransactionSql, jobId: string, workerId: string, attempt: number, leaseMs: number): Promise<number> => {
  const [row] = await tx<{ until: number }[]>`
    insert into leases (job_id, worker_id, attempt, expires_at)
    values (${jobId}, ${workerId}, ${attempt}, now() + ${leaseMs}::float8 * interval '1 millisecond')
    on conflict (job_id) do update set worker_id = excluded.worker_id, attempt = excluded.attempt, expires_at = excluded.expires_at
    returning (extract(epoch from expires_at) * 1000)::float8 as until`;
  return Math.floor(row!.until);
};

/**
 * A heartbeat: extend the lease of `attempt` by `leaseMs` from the database's now, if that
 * worker still holds that attempt and the lease has not run out. Returns the new expiry, or
 * null when the lease is gone (expired and taken back, or the job was cancelled): the worker
 * must then stop the job; its report would be refused anyway (the attempt is the fence).
 */
export const renewLease = async (sql: Queryable, jobId: string, workerId: string, attempt: number, leaseMs: number): Promise<number | null> => {
  const [row] = await sql<{ until: number }[]>`
    update leases set expires_at = now() + ${leaseMs}::float8 * interval '1 millisecond'
    where job_id = ${jobId} and worker_id = ${workerId} and attempt = ${attempt}
      and (expires_at > now() or now() < pg_postmaster_start_time() + ${leaseMs}::float8 * interval '1 millisecond')
    returning (extract(epoch from expires_at) * 1000)::float8 as until`;
  return row === undefined ? null : Math.floor(row.until);
};

/** End a lease (the attempt was reported, cancelled or recorded as lost); false if it was not held. */
export const releaseLease = async (tx: TransactionSql, jobId: string, attempt: number): Promise<boolean> =>
  (await tx`delete from leases where job_id = ${jobId} and attempt = ${attempt}`).count === 1;

export interface ExpiredLease {
  jobId: string;
  workerId: string;
  attempt: number;
}

/**
 * Lock up to `limit` leases the database's clock says have run out (oldest first), skipping
 * those another machine is recovering right now; the caller records each as JobLeaseExpired
 * through the retry policy and releases it, in the same transaction.
 */
export const lockExpiredLeases = async (tx: TransactionSql, limit = 100): Promise<ExpiredLease[]> =>
  (
    await tx<{ job_id: string; worker_id: string; attempt: number }[]>`
      select l.job_id, l.worker_id, l.attempt
      from leases l join jobs j on j.id = l.job_id
      where l.expires_at <= now()
      order by l.expires_at
      limit ${limit}
      for update of l, j skip locked`
  ).map((r) => ({ jobId: r.job_id, workerId: r.worker_id, attempt: r.attempt }));
