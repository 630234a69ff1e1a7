// The store port: everything the engine, the host and the CLI need from a storage backend,
// and nothing of how one backend does it. Two implementations are meant to stand behind it:
// LevelDB (src/store/leveldb/, the embedded default) and PostgreSQL (many machines).
//
// Why this shape:
// - The seam is `transact(jobIds, decide)`: the store loads the jobs a command names (and the
//   config), calls the pure `decide` with them and its time, and appends what it returns
//   atomically (events + stream index + projection changes + position), durable before the
//   promise resolves. Because the store, not the engine, holds the decision's read and write
//   together, each backend can make it safe its own way: LevelDB is the only writer and runs
//   transactions one at a time in a serial section, deciding through an overlay of staged
//   writes and group-committing them; PostgreSQL, one writer among many, runs `decide` inside
//   its SQL transaction after locking the job rows it read (or checking a per-job version and
//   retrying on conflict). `decide` must therefore be pure and may be called more than once.
// - Claims are made by the store (`Scheduler.claimNext`), because "which job is next" is the
//   part of a claim that races across writers: LevelDB keeps the runnable set in memory (it is
//   the only writer, so the mirror never lags); PostgreSQL picks a row with
//   `FOR UPDATE SKIP LOCKED` over the runnable projection. Either way the chosen job goes
//   through the same `decide` (the claim rules) in the same atomic unit.
// - No method assumes a single writer: the position of the last event is a query (`head`),
//   not a field; `subscribe` delivers every durable batch in commit order, whoever wrote it
//   (a second backend feeds it from NOTIFY plus a fallback poll of `readEvents`); read-model
//   queries answer from durable projections. An implementation that IS the only writer may
//   cache, as LevelDB does; nothing here asks it to.
// - `readEvents` must never skip an event: it yields positions in commit order, and a reader
//   that resumes from `last + 1` sees every event committed after `last` (a backend whose
//   sequences can commit out of order must fence reads behind the oldest open writer).
// - The projections (projections/) and the fold over them (src/store/fold.ts) are shared: a
//   backend supplies a key space, the reducers and `evolveJob` are the same everywhere, so
//   `verify` and `rebuild` mean the same on every backend.
import type { Config } from '../domain/config.ts';
import type { DecideState } from '../domain/decide.ts';
import type { JobState, JobView } from '../domain/types.ts';
import type { EventData, StoredEvent } from '../events.ts';
import type { DlqEntry } from '../../projections/dlq.ts';
import type { Counts } from '../../projections/states.ts';
import type { WorkerView } from '../../projections/workers.ts';

/**
 * A command's decision: pure, given the jobs it named (as the store loaded them), the config and
 * the store's time. Throws a QueuectlError to refuse (nothing is appended). A store may call it
 * again (a retried transaction), so it must not have effects.
 */
export type Decider = (state: DecideState, now: number) => readonly EventData[];

/** What one transaction appended, once durable. */
export interface Committed {
  /** With their positions and time. */
  events: StoredEvent[];
  /** Each job the events touched, as it is after them (undefined: no such job). */
  jobs: ReadonlyMap<string, JobView | undefined>;
}

/** The event log: the only way state changes, and every way to read what happened. */
export interface EventLog {
  /** Load the named jobs and the config, decide, append atomically; resolves once durable. */
  transact(jobIds: readonly string[], decide: Decider): Promise<Committed>;
  /** Durable events from position `from` to `to` (inclusive), in commit order, none skipped. */
  readEvents(from?: number, to?: number): AsyncIterable<StoredEvent>;
  /** One job's events, in order, through a per-job index (never a scan of the log). */
  readStream(jobId: string): Promise<StoredEvent[]>;
  /** Position of the last durable event; -1 when the log is empty. */
  head(): Promise<number>;
  /** Called with each durable batch of events (any writer's), in commit order. Returns unsubscribe. */
  subscribe(listener: (events: StoredEvent[]) => void): () => void;
}

/** Claims, made by the store so they are safe however many writers there are. */
export interface Scheduler {
  /**
   * Take the next due runnable job (lowest priority number, then due time, then enqueue order)
   * and append its claim, decided by `decide(jobId)`, in one atomic unit. Null when none is due.
   */
  claimNext(decide: (jobId: string) => Decider): Promise<Committed | null>;
  /** The earliest time a waiting job becomes due, or null when none waits. */
  nextDueAt(): Promise<number | null>;
}

/** The projections as users see them. */
export interface ReadModel {
  job(id: string): Promise<JobView | undefined>;
  /** Jobs newest first, optionally in one state. */
  list(options?: { state?: JobState; limit?: number }): Promise<JobView[]>;
  /** The oldest job waiting in a state (e.g. the oldest pending). */
  oldest(state: JobState): Promise<JobView | undefined>;
  counts(): Promise<Counts>;
  workers(): Promise<WorkerView[]>;
  /** Dead jobs in order of death. */
  dlq(): Promise<DlqEntry[]>;
  /** The configuration in force (defaults for keys never set). */
  config(): Promise<Config>;
}

/** The replay law's tools: projections recomputed from the log. */
export interface Maintenance {
  /** Recompute every projection from position 0; returns the number of events folded. */
  rebuild(): Promise<number>;
  /** Recompute into scratch space and list (up to `limit`) keys where the stored projections differ. */
  verify(limit?: number): Promise<{ events: number; differences: string[] }>;
}

/** A lease another machine may hold, as the database keeps it. */
export interface HeldLease {
  jobId: string;
  workerId: string;
  attempt: number;
}

/**
 * Leases kept where every host sees them, judged by the store's clock (PostgreSQL: the
 * database's now()). A store shared by several hosts has them; LevelDB, whose one host sees
 * every claim, has none: that host keeps leases in memory (Host's lease manager).
 */
export interface SharedLeases {
  /** Extend the lease of `attempt` to `ms` from now; false when that worker no longer holds it. */
  renewLease(jobId: string, workerId: string, attempt: number, ms: number): Promise<boolean>;
  /**
   * Leases that have run out, on any machine, oldest first (at most `limit`). A database that
   * restarted gives every lease `graceMs` from its start: the heartbeats that could not reach it
   * meanwhile cost no worker its jobs (`renewLease` with `ms` honours the same grace).
   */
  expiredLeases(graceMs: number, limit?: number): Promise<HeldLease[]>;
}

/** A worker as its machine's host registers it where every host sees it. */
export interface WorkerBeat {
  workerId: string;
  /** The machine it runs on (its host's os.hostname(): a worker reaches only its own machine's host). */
  hostname: string;
  pid: number;
  slots: number;
}

/**
 * Workers' heartbeats kept where every host sees them, judged by the store's clock (PostgreSQL:
 * worker_heartbeats and now()), so `status` on any machine can tell which machine each worker
 * runs on and whether another machine's worker is still alive (its pid means nothing here).
 * LevelDB has none: every worker is on the host's machine, judged by its pid.
 */
export interface SharedWorkers {
  /** Register a worker (again: its row replaced) until `ms` from now. */
  register(worker: WorkerBeat, ms: number): Promise<void>;
  /** Extend a registered worker's heartbeat to `ms` from now (false: it has no row). */
  renew(workerId: string, ms: number): Promise<boolean>;
  /** Every registered worker: its machine and whether its heartbeat has not run out. */
  beats(): Promise<Map<string, { hostname: string; live: boolean }>>;
}

/**
 * Job output kept where every host reads it (PostgreSQL). LevelDB has none: output stays in
 * files under the data directory, which its one host shares with its workers.
 */
export interface SharedOutput {
  /**
   * Keep `data`, which starts at byte `offset` of an attempt's stream, as far as it lies below
   * `cap` (a running job's output is sent in pieces; a piece written again is kept once).
   */
  put(jobId: string, attempt: number, stream: 'stdout' | 'stderr', offset: number, data: Uint8Array, cap: number): Promise<void>;
  /** What is kept of an attempt's stream from byte `from` on, as far as it is contiguous (empty when nothing is). */
  read(jobId: string, attempt: number, stream: 'stdout' | 'stderr', from?: number): Promise<Buffer>;
}

export interface CloseOptions {
  /** This process was a short command: finish housekeeping it started (LevelDB: a level-0 compaction). */
  letCompactionFinish?: boolean;
}

export interface Store extends EventLog, Scheduler, ReadModel, Maintenance {
  /** The time decisions are made at (ms epoch). */
  readonly clock: () => number;
  /**
   * Called once when a write failed in a way that leaves this store unable to write (a full
   * disk): it still answers reads; its owner may close it and open the backend again once
   * writing can work (see Queue.recover).
   */
  onUnwritable: (() => void) | null;
  /** Present when several hosts share the store (see SharedLeases). */
  readonly leases?: SharedLeases;
  /** Present when several hosts share the store (see SharedOutput). */
  readonly output?: SharedOutput;
  /** Present when several hosts share the store (see SharedWorkers). */
  readonly workerBeats?: SharedWorkers;
  /** Wait for what is being written, then release the backend. */
  close(options?: CloseOptions): Promise<void>;
}
