// Which workers are alive, on every machine: each host renews its workers' heartbeat rows,
// and the database's clock (now()) says which have run out, so `status` on any machine lists
// the same workers and a dead machine's workers are found by the others.
import type { WorkerBeat } from '../port.ts';
import type { Queryable, TransactionSql } from './connect.ts';

export type { WorkerBeat };

export interface LiveWorker extends WorkerBeat {
  startedAt: number;
  expiresAt: number;
}

/** Register or renew a worker until `ttlMs` after the database's now. */
export const beatWorker = async (sql: Queryable, worker: WorkerBeat, ttlMs: number): Promise<void> => {
  await sql`
    insert into worker_heartbeats (worker_id, hostname, pid, slots, expires_at)
    values (${worker.workerId}, ${worker.hostname}, ${worker.pid}, ${worker.slots}, now() + ${ttlMs}::float8 * interval '1 millisecond')
    on conflict (worker_id) do update set hostname = excluded.hostname, pid = excluded.pid, slots = excluded.slots, expires_at = excluded.expires_at`;
};

/** Extend a worker's heartbeat to `ttlMs` after the database's now; false when it has no row. */
export const renewWorker = async (sql: Queryable, workerId: string, ttlMs: number): Promise<boolean> =>
  (await sql`update worker_heartbeats set expires_at = now() + ${ttlMs}::float8 * interval '1 millisecond' where worker_id = ${workerId}`).count === 1;

/** Every worker's machine, and whether its heartbeat is still current by the database's clock. */
export const workerBeats = async (sql: Queryable): Promise<Map<string, { hostname: string; live: boolean }>> =>
  new Map((await sql<{ worker_id: string; hostname: string; live: boolean }[]>`select worker_id, hostname, expires_at > now() as live from worker_heartbeats`).map((r) => [r.worker_id, { hostname: r.hostname, live: r.live }]));

const ms = (column: string) => `(extract(epoch from ${column}) * 1000)::float8`;

/** Workers whose heartbeat has not run out, by the database's clock, oldest first. */
export const liveWorkers = async (sql: Queryable): Promise<LiveWorker[]> =>
  (
    await sql.unsafe<{ worker_id: string; hostname: string; pid: number; slots: number; started_at: number; expires_at: number }[]>(
      `select worker_id, hostname, pid, slots, ${ms('started_at')} as started_at, ${ms('expires_at')} as expires_at
       from worker_heartbeats where expires_at > now() order by started_at, worker_id`,
    )
  ).map((r) => ({ workerId: r.worker_id, hostname: r.hostname, pid: r.pid, slots: r.slots, startedAt: Math.floor(r.started_at), expiresAt: Math.floor(r.expires_at) }));

/**
 * Lock up to `limit` workers whose heartbeat has run out, skipping those another machine is
 * dealing with; the caller records them as stopped (lost) and removes them, in this transaction.
 */
export const lockDeadWorkers = async (tx: TransactionSql, limit = 100): Promise<string[]> =>
  (await tx<{ worker_id: string }[]>`select worker_id from worker_heartbeats where expires_at <= now() order by expires_at limit ${limit} for update skip locked`).map(
    (r) => r.worker_id,
  );

/** A worker that stopped (or was found dead): no longer listed. */
export const removeWorker = async (sql: Queryable, workerId: string): Promise<boolean> =>
  (await sql`delete from worker_heartbeats where worker_id = ${workerId}`).count === 1;
