// The PostgreSQL implementation of the store port (src/store/port.ts): one writer among many,
// so nothing another machine can change is cached here; every answer comes from the database.
//
// Commands and claims are group-committed: those that arrive while a transaction is under way
// go together into the next one (decideAndAppend), which runs:
//   1. a shared advisory lock (rebuild takes it exclusively, so it runs with no writer) and the
//      database's time, which decisions use (unless a clock is given: tests); the named job rows
//      locked FOR UPDATE in id order; the config; a due job per claim (FOR UPDATE SKIP LOCKED,
//      claim.ts): all sent together, one round trip;
//   2. the shared, pure `decide` of each (one's refusal is its own answer; ops in one batch name
//      disjoint jobs, so each decides as it would alone); then the rows the fold reads (workers,
//      dlq) and, last of all locks, the log's head (log.ts), sent together;
//   3. the events and every projection write the shared reducers (fold.ts, over PgSpace)
//      computed, sent together; then the commit.
// So the head, which serialises every appender on every machine, is held for one round trip,
// the fold's computation and the commit, once per batch rather than once per command.
// Two enqueues of one new id both decide "new"; the second to append hits the jobs table's
// primary key and the whole transaction is retried, deciding again: QUEUECTL_DUPLICATE_ID.
// Serialisation failures and deadlocks (40001, 40P01) are retried the same way: `decide` is
// pure, so deciding again is safe.
//
// The config is read without a lock (read committed): a decision may use the config as of its
// start, while a `config set` commits meanwhile; locking it would make every transaction wait
// on every config change.
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { type Config, configFromStored } from '../../domain/config.ts';
import type { JobState, JobView } from '../../domain/types.ts';
import { QueuectlError } from '../../errors.ts';
import { type EventData, jobIdOf, type StoredEvent } from '../../events.ts';
import { PROJECTIONS } from '../../../projections/index.ts';
import type { DlqEntry } from '../../../projections/dlq.ts';
import { parseRunnableKey, runnableKeyOf } from '../../../projections/runnable.ts';
import { type Counts, emptyCounts, orderKey, stateKey } from '../../../projections/states.ts';
import type { WorkerView } from '../../../projections/workers.ts';
import { DELETED, fold, type KeySpace, keysRead, type Target } from '../fold.ts';
import type { CloseOptions, Committed, Decider, SharedLeases, SharedOutput, SharedWorkers, Store } from '../port.ts';
import { databaseNow, lockDueJobs, nextDueAt, renewLease } from './claim.ts';
import { appendOutput, readOutput } from './output.ts';
import { beatWorker, renewWorker, workerBeats } from './workers.ts';
import { type Fragment, isDroppedConnection, isUnavailable, type Queryable, type Sql, type TransactionSql, withCommas } from './connect.ts';
import { appendAt, type Follower, follow, lockHead, logHead, positioned, readEvents, readEventsPage, readStream } from './log.ts';

export interface PgStoreOptions {
  /** the queue's schema (connect.ts set it as the search_path) */
  schema: string;
  /** decide at this time instead of the database's (tests) */
  clock?: () => number;
  /** how often a subscriber reads the log when no notification came (ms) */
  pollMs?: number;
  /** a driver error as a user should see it (connect.ts databaseError with the target) */
  explain?: (e: unknown) => unknown;
}

/** The first key of queuectl's advisory locks ('queu', as migrate.ts); 2 here: writers vs rebuild. */
const LOCK_CLASS = 0x71756575;
const WRITERS_LOCK = 2;
/** Retries of a transaction that lost a race (unique violation, serialisation failure, deadlock). */
const MAX_ATTEMPTS = 20;
const RETRIED = new Set(['23505', '40001', '40P01']);

const TARGETS: readonly Target[] = PROJECTIONS.map((p) => [p, `${p.name}/`] as const);
/** Projections kept in projection_kv; jobs, states and runnable have tables of their own. */
const KV_PROJECTIONS = ['dlq', 'config', 'workers'];
/** The counters of Counts besides jobs per state, as rows of job_counts. */
const RUN_COUNTERS = ['runs', 'succeededRuns', 'failedRuns', 'totalRunMs', 'maxRunMs'] as const;

/** Ops per group-committed transaction, at most, and such transactions under way at once. */
const MAX_BATCH = 64;
/** One: measured with 8 slots, two or three at once made smaller batches that waited on the head. */
const MAX_IN_FLIGHT = 1;
/** projection_kv keys guessed for a batch's first round trip, at most. */
const MAX_KV_GUESS = 32;

/** A transaction body's answer with writes still under way (see PgStore.inTransaction). */
class Unsettled<T> {
  readonly written: Promise<unknown>;
  constructor(
    readonly value: T,
    written: Promise<unknown>,
  ) {
    this.written = written;
    written.catch(() => {}); // awaited once the commit has answered; never unhandled meanwhile
  }
}

/** An op's answer when it failed: its error. */
class Failure {
  constructor(readonly error: unknown) {}
}
type Outcome = Committed | null | Failure;

/** A transact (the jobs it names, deduplicated and as named) or a claim, waiting for its batch. */
type Op = ({ ids: string[]; named: readonly string[]; decide: Decider } | { claim: (jobId: string) => Decider }) & { settle: (outcome: Outcome) => void };

const split = (key: string): [string, string] => {
  const at = key.indexOf('/');
  return [key.slice(0, at), key.slice(at + 1)];
};

/** The Counts that job_counts rows make; undefined when none was ever written. */
const countsOf = (rows: readonly { state: string; jobs: string }[]): Counts | undefined => {
  if (rows.length === 0) return undefined;
  const counts = emptyCounts();
  for (const { state, jobs } of rows) {
    if (state in counts.jobs) counts.jobs[state as JobState] = Number(jobs);
    else if ((RUN_COUNTERS as readonly string[]).includes(state)) counts[state as (typeof RUN_COUNTERS)[number]] = Number(jobs);
  }
  return counts;
};

/**
 * Lock and read job rows, in id order. (A function, like every statement of a round trip: the
 * driver sends a query when something first waits on it, so a bare query in a Promise.all array
 * would go out after the calls listed behind it, and take its locks after theirs.)
 */
const lockJobs = async (tx: TransactionSql, ids: readonly string[]): Promise<{ id: string; view: JobView }[]> =>
  ids.length === 0 ? [] : await tx<{ id: string; view: JobView }[]>`select id, view from jobs where id = any(${ids as string[]}) order by id for update`;

/**
 * Lock and read projection_kv rows (`projection/key`), in key order; a key with no row maps to
 * undefined. Only a transaction that holds the log's head takes these locks (see decideAndAppend),
 * so none ever waits for them.
 */
const lockKv = async (tx: TransactionSql, keys: readonly string[]): Promise<Map<string, unknown>> => {
  const found = new Map<string, unknown>(keys.map((key) => [key, undefined]));
  if (keys.length === 0) return found;
  const pairs = keys.map(split);
  const rows = await tx<{ projection: string; key: string; value: unknown }[]>`
    select projection, key, value from projection_kv
    where (projection, key) in (select * from unnest(${pairs.map(([p]) => p)}::text[], ${pairs.map(([, k]) => k)}::text[]))
    order by projection, key for update`;
  for (const row of rows) found.set(`${row.projection}/${row.key}`, row.value);
  return found;
};

/**
 * The key space of one transaction's fold, over the tables. Jobs come from the rows the
 * transaction locked; `states/counts` is loaded as zero, so what the reducer leaves there is
 * the change, added to job_counts (maxRunMs: the greater) without ever reading its rows: no
 * transaction waits to read the counts. The state and order indexes (`states/s:`, `states/a:`)
 * are the jobs table's own indexes, so their writes need nothing more.
 */
class PgSpace implements KeySpace {
  private readonly values = new Map<string, unknown>();
  private readonly written = new Map<string, unknown>();
  /** Jobs whose row exists (locked by this transaction): updated, where others are inserted. */
  private readonly existing = new Set<string>();

  constructor(
    private readonly tx: TransactionSql,
    jobs: ReadonlyMap<string, JobView | undefined>,
    /** projection_kv rows already locked and read by this transaction, by `projection/key` */
    kv: ReadonlyMap<string, unknown> = new Map(),
  ) {
    for (const [id, job] of jobs) this.loaded(id, job);
    for (const [key, value] of kv) this.values.set(key, value);
  }

  private loaded(id: string, job: JobView | undefined): void {
    this.values.set(`jobs/${id}`, job);
    if (job) this.existing.add(id);
  }

  async load(keys: string[]): Promise<void> {
    const kv: string[] = [];
    const jobs: string[] = [];
    for (const key of keys) {
      if (this.values.has(key)) continue;
      const [projection, k] = split(key);
      if (projection === 'jobs') jobs.push(k);
      else if (key === 'states/counts') this.values.set(key, emptyCounts());
      else if (KV_PROJECTIONS.includes(projection)) kv.push(key);
    }
    const [jobRows, kvRows] = await Promise.all([
      lockJobs(this.tx, jobs),
      lockKv(this.tx, kv),
    ]);
    for (const id of jobs) this.loaded(id, undefined);
    for (const row of jobRows) this.loaded(row.id, row.view);
    for (const [key, value] of kvRows) this.values.set(key, value);
  }

  /** The projection_kv keys (`projection/key`) this fold read. */
  kvKeys(): string[] {
    return [...this.values.keys()].filter((key) => KV_PROJECTIONS.includes(split(key)[0]));
  }

  get(key: string): unknown {
    const value = this.values.get(key);
    return value === DELETED ? undefined : value;
  }

  set(key: string, value: unknown): void {
    this.values.set(key, value);
    this.written.set(key, value);
  }

  /**
   * What the fold changed, as the parts of one statement (data-modifying CTEs, `name as (...)`):
   * sent as one, they cost one message and one execution where each was a statement of its own.
   * The parts change disjoint rows (PostgreSQL runs them on one snapshot, so two parts must never
   * change the same row): a job is inserted or updated, its lease deleted or written, its
   * runnable row deleted or written, a kv key deleted or written. `jobs` are the jobs as the fold
   * left them; with `leases`, the leases table follows them (a processing job holds the lease of
   * its attempt until the database's clock passes leaseUntil; heartbeats extend it, claim.ts
   * renewLease).
   */
  writes(jobs: ReadonlyMap<string, JobView | undefined>, leases: boolean): Fragment[] {
    const tx = this.tx;
    const views = [...jobs.values()].filter((j): j is JobView => j !== undefined);
    const runnableGone: { priority: number; dueAt: number; pos: number }[] = [];
    const runnable: { job_id: string; priority: number; due_at: number; enqueued_pos: number }[] = [];
    const kvPut: { projection: string; key: string; value: unknown }[] = [];
    const kvGone: { projection: string; key: string }[] = [];
    const counts = new Map<string, number>();
    for (const [full, value] of this.written) {
      const [projection, key] = split(full);
      if (projection === 'runnable') {
        const { priority, dueAt, pos } = parseRunnableKey(key);
        if (value === DELETED) runnableGone.push({ priority, dueAt, pos });
        else runnable.push({ job_id: value as string, priority, due_at: dueAt, enqueued_pos: pos });
      } else if (full === 'states/counts' && value !== DELETED) {
        const c = value as Counts;
        for (const [state, n] of Object.entries(c.jobs)) if (n !== 0) counts.set(state, n);
        for (const name of RUN_COUNTERS) if (c[name] !== 0) counts.set(name, c[name]);
      } else if (KV_PROJECTIONS.includes(projection)) {
        if (value === DELETED) kvGone.push({ projection, key });
        else kvPut.push({ projection, key, value });
      }
    }
    const parts: Fragment[] = [];
    if (views.length > 0) {
      const rows = views.map((j) => ({ id: j.id, state: j.state, enqueued_pos: j.enqueuedPos, view: j }));
      const added = rows.filter((r) => !this.existing.has(r.id));
      const changed = rows.filter((r) => this.existing.has(r.id));
      // a new job is inserted, never upserted: if another machine added that id since this
      // transaction looked, the primary key refuses it and the transaction decides again
      if (added.length > 0) {
        parts.push(tx`jobs_added as (
          insert into jobs (id, state, enqueued_pos, view)
          select id, state, enqueued_pos, view from jsonb_to_recordset(${tx.json(added as never)}) as r(id text, state text, enqueued_pos bigint, view jsonb))`);
      }
      if (changed.length > 0) {
        parts.push(tx`jobs_changed as (
          update jobs set state = r.state, view = r.view
          from jsonb_to_recordset(${tx.json(changed as never)}) as r(id text, state text, view jsonb) where jobs.id = r.id)`);
      }
    }
    if (leases && views.length > 0) {
      const held = views.filter((j) => j.state === 'processing' && j.workerId !== null && j.leaseUntil !== null);
      const rows = held.map((j) => ({ job_id: j.id, worker_id: j.workerId, attempt: j.totalAttempts, until: j.leaseUntil }));
      const free = views.filter((j) => !held.includes(j)).map((j) => j.id);
      if (free.length > 0) parts.push(tx`leases_freed as (delete from leases where job_id = any(${free}))`);
      if (rows.length > 0) {
        parts.push(tx`leases_held as (
          insert into leases (job_id, worker_id, attempt, expires_at)
          select job_id, worker_id, attempt, to_timestamp(until / 1000.0) from jsonb_to_recordset(${tx.json(rows as never)}) as r(job_id text, worker_id text, attempt integer, until bigint)
          on conflict (job_id) do update set worker_id = excluded.worker_id, attempt = excluded.attempt, expires_at = excluded.expires_at)`);
      }
    }
    // A job that leaves the runnable set under one key and enters it under another (both carry
    // its enqueue position) is one row, written by the upsert alone. The delete goes by the whole
    // key, runnable_order's: through the index (by enqueued_pos alone, it walked the runnable set,
    // every claim costing more the longer the queue).
    const entering = new Set(runnable.map((r) => r.enqueued_pos));
    const leaving = runnableGone.filter((r) => !entering.has(r.pos));
    if (leaving.length > 0) {
      parts.push(tx`runnable_left as (
        delete from runnable where (priority, due_at, enqueued_pos) in
          (select * from unnest(${leaving.map((r) => r.priority)}::integer[], ${leaving.map((r) => r.dueAt)}::bigint[], ${leaving.map((r) => r.pos)}::bigint[])))`);
    }
    if (runnable.length > 0) {
      parts.push(tx`runnable_entered as (
        insert into runnable (job_id, priority, due_at, enqueued_pos)
        select job_id, priority, due_at, enqueued_pos from jsonb_to_recordset(${tx.json(runnable as never)}) as r(job_id text, priority integer, due_at bigint, enqueued_pos bigint)
        on conflict (job_id) do update set priority = excluded.priority, due_at = excluded.due_at, enqueued_pos = excluded.enqueued_pos)`);
    }
    if (kvGone.length > 0) {
      parts.push(tx`kv_deleted as (
        delete from projection_kv where (projection, key) in
          (select * from unnest(${kvGone.map((r) => r.projection)}::text[], ${kvGone.map((r) => r.key)}::text[])))`);
    }
    // a stopped worker's heartbeat goes with it (whichever machine recorded the stop)
    const stopped = kvGone.filter((r) => r.projection === 'workers').map((r) => r.key);
    if (stopped.length > 0) parts.push(tx`heartbeats_ended as (delete from worker_heartbeats where worker_id = any(${stopped}))`);
    if (kvPut.length > 0) {
      parts.push(tx`kv_put as (
        insert into projection_kv (projection, key, value)
        select projection, key, value from jsonb_to_recordset(${tx.json(kvPut as never)}) as r(projection text, key text, value jsonb)
        on conflict (projection, key) do update set value = excluded.value)`);
    }
    if (counts.size > 0) {
      // in state order, so two transactions never wait on each other's rows crosswise
      const rows = [...counts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([state, jobs]) => ({ state, jobs }));
      parts.push(tx`counts_added as (
        insert into job_counts (state, jobs)
        select state, jobs from jsonb_to_recordset(${tx.json(rows as never)}) as r(state text, jobs bigint)
        on conflict (state) do update set jobs = case when excluded.state = 'maxRunMs' then greatest(job_counts.jobs, excluded.jobs) else job_counts.jobs + excluded.jobs end)`);
    }
    return parts;
  }

  /** Write what the fold changed (see `writes`), in one statement. */
  async flush(jobs: ReadonlyMap<string, JobView | undefined>, leases: boolean): Promise<void> {
    const parts = this.writes(jobs, leases);
    if (parts.length > 0) await this.tx`with ${withCommas(this.tx, parts)} select 1`;
  }
}

/** A key space in memory: what verify folds the log into. */
class MemorySpace implements KeySpace {
  readonly values = new Map<string, unknown>();
  async load(): Promise<void> {}
  get(key: string): unknown {
    const value = this.values.get(key);
    return value === DELETED ? undefined : value;
  }
  set(key: string, value: unknown): void {
    if (value === DELETED) this.values.delete(key);
    else this.values.set(key, value);
  }
}

const asJson = (value: unknown): unknown => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

/** Compare as LevelDB orders keys (bytewise; `collate "C"` in SQL). */
const byKey = ([a]: [string, unknown], [b]: [string, unknown]): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A projection's records as the LevelDB store keeps them, key for key (the replay law and
 * verify compare these): jobs, the state and order indexes and the counts are read back from
 * their tables, in the reducers' key format.
 */
export const projectionRecords = async (sql: Queryable, name: string): Promise<[string, unknown][]> => {
  switch (name) {
    case 'jobs':
      return (await sql<{ id: string; view: JobView }[]>`select id, view from jobs order by id collate "C"`).map((r) => [r.id, r.view]);
    case 'states': {
      const jobs = await sql<{ id: string; state: JobState; enqueued_pos: string }[]>`select id, state, enqueued_pos from jobs`;
      const records: [string, unknown][] = [];
      for (const j of jobs) {
        const pos = Number(j.enqueued_pos);
        records.push([orderKey(pos), j.id], [stateKey(j.state, pos), j.id]);
      }
      const counts = countsOf(await sql<{ state: string; jobs: string }[]>`select state, jobs from job_counts`);
      if (counts) records.push(['counts', counts]);
      return records.sort(byKey);
    }
    case 'runnable': {
      const rows = await sql<{ job_id: string; priority: number; due_at: string; enqueued_pos: string }[]>`select job_id, priority, due_at, enqueued_pos from runnable`;
      return rows.map((r): [string, unknown] => [runnableKeyOf({ state: 'pending', priority: r.priority, nextRunAt: Number(r.due_at), enqueuedPos: Number(r.enqueued_pos) } as JobView)!, r.job_id]).sort(byKey);
    }
    default:
      return (await sql<{ key: string; value: unknown }[]>`select key, value from projection_kv where projection = ${name} order by key`).map((r) => [r.key, r.value]);
  }
};

export class PgStore implements Store {
  readonly clock: () => number;
  /** PostgreSQL keeps its own durability: a failed write fails its transaction alone. */
  onUnwritable: (() => void) | null = null;
  private readonly listeners = new Set<(events: StoredEvent[]) => void>();
  /** The next position subscribers get (null: no subscriber yet). */
  private delivered: number | null = null;
  private following: Promise<Follower | null> | null = null;
  /** Deliveries, one at a time, in order. */
  private delivering: Promise<void> = Promise.resolve();
  /** Ops waiting for the next batch (group commit), and whether a batch is running. */
  private readonly queue: Op[] = [];
  private scheduled = false;
  private inFlight = 0;
  /**
   * The projection_kv keys the last batch's fold read, locked and read with the next batch's
   * first round trip (a slot's worker row, mostly). Only names: the rows are read in the
   * transaction, so another machine's writes are never missed; a wrong guess costs a read.
   */
  private kvGuess: string[] = [];
  /** Names this store's appends in their notifications, so its follower skips them (published delivers them). */
  private readonly sender = randomBytes(8).toString('hex');

  private constructor(
    readonly sql: Sql,
    private readonly options: PgStoreOptions,
    /** the database's time minus ours, measured at open (to within the network's one-way latency) */
    offset: number,
  ) {
    this.clock = options.clock ?? (() => Date.now() + offset);
  }

  /** Open the store over a pool whose search_path is the (migrated) queue schema. */
  static async open(sql: Sql, options: PgStoreOptions): Promise<PgStore> {
    // judged at the answer, not halfway: the query may have waited for the connection to be
    // made (it is sent with the first ones, openPostgresBackend); off by the way back at most
    const db = await databaseNow(sql);
    return new PgStore(sql, options, db - Date.now());
  }

  private explain(e: unknown): unknown {
    return e instanceof QueuectlError || !this.options.explain ? e : this.options.explain(e);
  }

  /**
   * Run `body` in a transaction, again when it lost a race; driver errors explained. A body that
   * answers `Unsettled` has sent its last writes without waiting for them, so the commit goes
   * out right behind them (one round trip for both); a write that failed made the server roll
   * the commit back, and its error is thrown here, as if the body had waited.
   */
  private async inTransaction<T>(body: (tx: TransactionSql) => Promise<T | Unsettled<T>>): Promise<T> {
    // a subscriber's starting point is read before any transaction begun after it commits
    if (this.following) await this.following;
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = (await this.sql.begin(body as (tx: TransactionSql) => Promise<never>)) as T | Unsettled<T>;
        if (!(answer instanceof Unsettled)) return answer;
        await answer.written;
        return answer.value;
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (attempt >= MAX_ATTEMPTS || !(typeof code === 'string' && RETRIED.has(code))) throw this.explain(e);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 * attempt));
      }
    }
  }

  /**
   * A writing transaction's first statement: the writers' lock, the time it decides at, and the
   * config it decides with (one statement: each costs the server and the driver a message).
   */
  private async begin(tx: TransactionSql): Promise<{ now: number; config: Config }> {
    const [row] = await tx<{ now: number; config: Record<string, unknown> }[]>`
      select pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${WRITERS_LOCK}), (extract(epoch from now()) * 1000)::float8 as now,
        (select coalesce(jsonb_object_agg(key, value), '{}') from projection_kv where projection = 'config') as config`;
    return { now: this.options.clock ? this.options.clock() : Math.floor(row!.now), config: configFromStored(Object.entries(row!.config)) };
  }

  private async configIn(sql: Queryable): Promise<Config> {
    const rows = await sql<{ key: string; value: unknown }[]>`select key, value from projection_kv where projection = 'config'`;
    return configFromStored(rows.map((r) => [r.key, r.value]));
  }

  transact(jobIds: readonly string[], decide: Decider): Promise<Committed> {
    return this.submit({ ids: [...new Set(jobIds)], named: jobIds, decide }) as Promise<Committed>;
  }

  claimNext(decide: (jobId: string) => Decider): Promise<Committed | null> {
    return this.submit({ claim: decide });
  }

  // ---- group commit -------------------------------------------------------------------------

  private submit(op: Omit<Op, 'settle'>): Promise<Committed | null> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...op, settle: (outcome) => (outcome instanceof Failure ? reject(outcome.error) : resolve(outcome)) } as Op);
      this.schedule();
    });
  }

  /**
   * Start batches on the next turn of the event loop (so callers answered by the last batch
   * send their next ops first, and they join), up to MAX_IN_FLIGHT at once.
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) {
        this.inFlight++;
        void this.runBatch(this.takeBatch()).finally(() => {
          this.inFlight--;
          this.schedule();
        });
      }
    });
  }

  /**
   * The next batch, from the front of the queue in order: ops that name disjoint jobs (so each
   * decides on the jobs as they were before the batch, as it would alone), claims (which skip
   * the jobs the others name), and an op that names no job (a config change, a worker's start
   * or stop: later ops may depend on it) alone.
   */
  private takeBatch(): Op[] {
    const batch: Op[] = [];
    const named = new Set<string>();
    for (const op of this.queue) {
      if (batch.length === MAX_BATCH) break;
      if ('ids' in op) {
        if (op.ids.length === 0) {
          if (batch.length === 0) batch.push(op);
          break;
        }
        if (op.ids.some((id) => named.has(id))) break;
        for (const id of op.ids) named.add(id);
      }
      batch.push(op);
    }
    this.queue.splice(0, batch.length);
    return batch;
  }

  /**
   * Run a batch as one transaction (one commit, one flush of the log for all of them); answer
   * each op once it is durable. If the batch fails for a reason other than the database being
   * away, each op runs again alone, so one op's failure is its own.
   */
  private async runBatch(ops: Op[]): Promise<void> {
    let outcomes: Outcome[];
    let events: StoredEvent[];
    try {
      [outcomes, events] = await this.inTransaction((tx) => this.decideAndAppend(tx, ops));
    } catch (e) {
      if (ops.length > 1 && !isUnavailable(e) && (e as QueuectlError).code !== 'QUEUECTL_DATABASE_UNAVAILABLE') {
        for (const op of ops) await this.runBatch([op]);
      } else for (const op of ops) op.settle(new Failure(e));
      return;
    }
    await this.published(events);
    ops.forEach((op, i) => op.settle(outcomes[i]!));
  }

  /**
   * The batch's transaction, in two round trips after its `begin`:
   *   1. the writers' lock and the time, the named jobs locked FOR UPDATE, the config, a due job
   *      for each claim (FOR UPDATE SKIP LOCKED), then, after every job row, the log's head, and
   *      the projection_kv rows (workers, dlq) the last batch's fold read: sent together;
   *   2. every op decided (a refusal is that op's answer alone) and folded (if the fold reads a
   *      kv row the guess missed, one more round trip reads it); then the events appended and
   *      every projection write, sent together with the commit.
   * The head is taken after every job row, as before; the kv rows only ever under the head, so
   * no transaction waits for them and none can deadlock on them. The head is held for the
   * decisions, the fold and the last round trip with the commit's flush: no longer than when it
   * was taken in a round trip of its own after deciding.
   */
  private async decideAndAppend(tx: TransactionSql, ops: readonly Op[]): Promise<Unsettled<[Outcome[], StoredEvent[]]>> {
    const named = [...new Set(ops.flatMap((op) => ('ids' in op ? op.ids : [])))];
    const claims = ops.filter((op) => 'claim' in op).length;
    const [{ now, config }, rows, due, first, kv] = await Promise.all([
      this.begin(tx),
      lockJobs(tx, named),
      claims === 0 ? [] : lockDueJobs(tx, this.options.clock?.() ?? null, claims, named),
      lockHead(tx),
      lockKv(tx, this.kvGuess),
    ]);
    const loaded = new Map<string, JobView | undefined>([...named.map((id): [string, undefined] => [id, undefined]), ...rows.map((r): [string, JobView] => [r.id, r.view])]);
    for (const d of due) loaded.set(d.jobId, d.view);
    const decided: (EventData[] | Outcome)[] = [];
    let claimed = 0;
    for (const op of ops) {
      let jobs: Map<string, JobView | undefined>;
      let decide: Decider;
      if ('claim' in op) {
        const d = due[claimed++];
        if (!d) {
          decided.push(null);
          continue;
        }
        jobs = new Map([[d.jobId, d.view]]);
        decide = op.claim(d.jobId);
      } else {
        jobs = new Map(op.named.map((id) => [id, loaded.get(id)]));
        decide = op.decide;
      }
      try {
        decided.push([...decide({ jobs, config }, now)]);
      } catch (e) {
        decided.push(new Failure(this.explain(e)));
      }
    }
    const data = decided.filter((d) => Array.isArray(d)).flat().map((d) => ({ at: now, data: d }));
    if (data.length === 0) return new Unsettled([decided.map((d) => (Array.isArray(d) ? { events: [], jobs: new Map() } : d)), []], Promise.resolve());
    const space = new PgSpace(tx, loaded, kv);
    const events = positioned(data, first);
    const after = await fold(events, space, TARGETS);
    this.kvGuess = space.kvKeys().slice(0, MAX_KV_GUESS);
    const written = appendAt(tx, this.options.schema, first, data, this.sender, space.writes(after, true));
    let next = 0;
    const outcomes = decided.map((d): Outcome => {
      if (!Array.isArray(d)) return d;
      const mine = events.slice(next, (next += d.length));
      const jobs = new Map<string, JobView | undefined>();
      for (const e of mine) {
        const id = jobIdOf(e);
        if (id !== null) jobs.set(id, after.get(id));
      }
      return { events: mine, jobs };
    });
    return new Unsettled([outcomes, events], written);
  }

  // ---- claims -------------------------------------------------------------------------------

  nextDueAt(): Promise<number | null> {
    return this.reading(() => nextDueAt(this.sql));
  }

  // ---- the log ------------------------------------------------------------------------------

  async *readEvents(from?: number, to?: number): AsyncGenerator<StoredEvent> {
    try {
      yield* readEvents(this.sql, from, to);
    } catch (e) {
      throw this.explain(e);
    }
  }

  readStream(jobId: string): Promise<StoredEvent[]> {
    return this.reading(() => readStream(this.sql, jobId));
  }

  head(): Promise<number> {
    return this.reading(() => logHead(this.sql));
  }

  /**
   * Subscribers get every event from the head at their first subscription on, in order, each
   * once: this store's own commits before their transaction resolves, other machines' through
   * log.ts `follow` (NOTIFY, and a poll for notifications lost while disconnected).
   */
  subscribe(listener: (events: StoredEvent[]) => void): () => void {
    this.listeners.add(listener);
    this.following ??= (async () => {
      try {
        const head = await logHead(this.sql);
        this.delivered ??= head + 1;
        return await follow(this.sql, this.options.schema, (events) => this.deliver(events), { from: head + 1, pollMs: this.options.pollMs, known: () => this.delivered ?? head + 1, self: this.sender });
      } catch {
        return null; // the database away: this store's own commits are still delivered, and reads catch up the gap
      }
    })();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Deliver `events` (consecutive) to subscribers, after any not yet delivered before them. */
  private deliver(events: readonly StoredEvent[]): Promise<void> {
    const run = this.delivering.then(async () => {
      if (this.delivered === null || events.length === 0) return;
      const last = events[events.length - 1]!.pos;
      if (last < this.delivered) return;
      if (events[0]!.pos > this.delivered) {
        // a gap: other machines' events, not yet seen; read them first
        for (let next = this.delivered; next < events[0]!.pos; ) {
          const page = await readEventsPage(this.sql, next, Math.min(1000, events[0]!.pos - next));
          if (page.length === 0) break;
          this.hand(page);
          next = page[page.length - 1]!.pos + 1;
        }
      }
      this.hand(events.filter((e) => e.pos >= this.delivered!));
    });
    this.delivering = run.catch(() => {});
    return run;
  }

  private hand(events: StoredEvent[]): void {
    if (events.length === 0 || this.delivered === null || events[0]!.pos !== this.delivered) return;
    this.delivered = events[events.length - 1]!.pos + 1;
    for (const listener of this.listeners) listener(events);
  }

  /** Our own commit, delivered to subscribers before its transaction resolves. */
  private async published(events: readonly StoredEvent[]): Promise<void> {
    if (events.length === 0 || this.following === null) return;
    await this.following;
    await this.deliver(events).catch(() => {}); // a failed catch-up read is retried by the follower
  }

  // ---- queries ------------------------------------------------------------------------------

  /** A read (or an idempotent upsert), its driver errors explained; once more on a dropped connection. */
  private async reading<T>(query: () => Promise<T>): Promise<T> {
    try {
      return await query();
    } catch (e) {
      // a pooled connection the server ended (a restart) is found out by the next query sent on it
      if (!isDroppedConnection(e)) throw this.explain(e);
    }
    try {
      return await query();
    } catch (e) {
      throw this.explain(e);
    }
  }

  job(id: string): Promise<JobView | undefined> {
    return this.reading(async () => (await this.sql<{ view: JobView }[]>`select view from jobs where id = ${id}`)[0]?.view);
  }

  list(options: { state?: JobState; limit?: number } = {}): Promise<JobView[]> {
    const { state, limit = 50 } = options;
    return this.reading(async () =>
      (state
        ? await this.sql<{ view: JobView }[]>`select view from jobs where state = ${state} order by enqueued_pos desc limit ${limit}`
        : await this.sql<{ view: JobView }[]>`select view from jobs order by enqueued_pos desc limit ${limit}`
      ).map((r) => r.view),
    );
  }

  oldest(state: JobState): Promise<JobView | undefined> {
    return this.reading(async () => (await this.sql<{ view: JobView }[]>`select view from jobs where state = ${state} order by enqueued_pos limit 1`)[0]?.view);
  }

  counts(): Promise<Counts> {
    return this.reading(async () => countsOf(await this.sql<{ state: string; jobs: string }[]>`select state, jobs from job_counts`) ?? emptyCounts());
  }

  workers(): Promise<WorkerView[]> {
    return this.reading(async () => (await projectionRecords(this.sql, 'workers')).map(([, v]) => v as WorkerView));
  }

  dlq(): Promise<DlqEntry[]> {
    return this.reading(async () =>
      (await this.sql<{ value: DlqEntry }[]>`select value from projection_kv where projection = 'dlq' and key >= 'd:' and key < 'd;' order by key`).map((r) => r.value),
    );
  }

  config(): Promise<Config> {
    return this.reading(() => this.configIn(this.sql));
  }

  // ---- maintenance --------------------------------------------------------------------------

  /**
   * Recompute every projection from position 0, in one transaction that holds the writers'
   * lock exclusively: no machine writes meanwhile (their transactions wait), and a rebuild that
   * fails leaves the projections as they were. The log is read and folded a page at a time.
   * Leases are not projections (heartbeats extend them): they are left as they are.
   */
  rebuild(): Promise<number> {
    return this.inTransaction(async (tx) => {
      await tx`select pg_advisory_xact_lock(${LOCK_CLASS}, ${WRITERS_LOCK})`;
      await Promise.all([tx`delete from jobs`, tx`delete from runnable`, tx`delete from job_counts`, tx`delete from projection_kv where projection = any(${KV_PROJECTIONS})`]);
      let count = 0;
      for (let from = 0; ; ) {
        const events = await readEventsPage(tx, from, PAGE);
        if (events.length === 0) break;
        const space = new PgSpace(tx, new Map());
        await space.flush(await fold(events, space, TARGETS), false);
        count += events.length;
        from = events[events.length - 1]!.pos + 1;
      }
      return count;
    });
  }

  /**
   * Fold the log into memory a page at a time (each page its own statement: no long snapshot),
   * then, in one read-only snapshot, fold what was appended meanwhile and compare with the
   * stored projections. Writers keep going throughout.
   */
  async verify(limit = 20): Promise<{ events: number; differences: string[] }> {
    try {
      const space = new MemorySpace();
      let events = 0;
      let from = 0;
      const foldFrom = async (sql: Queryable, to: number) => {
        while (from <= to) {
          const page = await readEventsPage(sql, from, Math.min(PAGE, to - from + 1));
          if (page.length === 0) break;
          await fold(page, space, TARGETS);
          events += page.length;
          from = page[page.length - 1]!.pos + 1;
        }
      };
      await foldFrom(this.sql, await logHead(this.sql));
      const differences: string[] = [];
      await this.sql.begin('isolation level repeatable read read only', async (tx) => {
        await foldFrom(tx, await logHead(tx));
        for (const p of PROJECTIONS) {
          const prefix = `${p.name}/`;
          const rebuilt = new Map([...space.values].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
          const stored = new Map(await projectionRecords(tx, p.name));
          for (const key of [...new Set([...stored.keys(), ...rebuilt.keys()])].sort()) {
            // as jsonb gives it back (its own key order; no undefined fields)
            const [a, b] = [stored.get(key), asJson(rebuilt.get(key))];
            if (isDeepStrictEqual(a, b)) continue;
            if (differences.length < limit) differences.push(`${p.name}/${key}: stored ${JSON.stringify(a)} but the log gives ${JSON.stringify(b)}`);
            else if (differences.length === limit) differences.push('...');
          }
        }
      });
      return { events, differences };
    } catch (e) {
      throw this.explain(e);
    }
  }

  /** Leases in the database, judged by its clock, so a host on any machine recovers a dead machine's jobs. */
  readonly leases: SharedLeases = {
    renewLease: async (jobId, workerId, attempt, ms) => {
      try {
        return (await renewLease(this.sql, jobId, workerId, attempt, ms)) !== null;
      } catch (e) {
        throw this.explain(e);
      }
    },
    expiredLeases: async (graceMs, limit = 100) => {
      try {
        return (
          await this.sql<{ job_id: string; worker_id: string; attempt: number }[]>`
            select job_id, worker_id, attempt from leases
            where expires_at <= now() and now() >= pg_postmaster_start_time() + ${graceMs}::float8 * interval '1 millisecond'
            order by expires_at limit ${limit}`
        ).map((r) => ({ jobId: r.job_id, workerId: r.worker_id, attempt: r.attempt }));
      } catch (e) {
        throw this.explain(e);
      }
    },
  };

  /** Workers' heartbeats in the database, judged by its clock, so `status` on any machine knows another machine's workers. */
  readonly workerBeats: SharedWorkers = {
    register: (worker, ms) => this.reading(() => beatWorker(this.sql, worker, ms)),
    renew: (workerId, ms) => this.reading(() => renewWorker(this.sql, workerId, ms)),
    beats: () => this.reading(() => workerBeats(this.sql)),
  };

  /** Job output in the database, so `logs` on any machine shows an attempt run on another. */
  readonly output: SharedOutput = {
    put: async (jobId, attempt, stream, offset, data, cap) => {
      try {
        await appendOutput(this.sql, { jobId, attempt, stream, offset, data }, cap);
      } catch (e) {
        throw this.explain(e);
      }
    },
    read: async (jobId, attempt, stream, from = 0) => {
      try {
        return (await readOutput(this.sql, jobId, attempt, stream, from)).data;
      } catch (e) {
        throw this.explain(e);
      }
    },
  };

  async close(_options?: CloseOptions): Promise<void> {
    // A connection the database dropped may never answer (a LISTEN being re-established, a read
    // in flight): closing must not hang on it, so the follower gets a bounded time to stop, and
    // the pool then ends its connections after at most CLOSE_GRACE_S whatever they wait for.
    const stopping = (async () => {
      const follower = await this.following;
      this.following = null;
      await follower?.stop();
      await this.delivering;
    })().catch(() => {});
    await Promise.race([stopping, new Promise<void>((r) => setTimeout(r, CLOSE_GRACE_S * 1000).unref())]);
    await this.sql.end({ timeout: CLOSE_GRACE_S });
  }
}

/** How long closing waits for work in flight on each connection before ending it. */
const CLOSE_GRACE_S = 3;

/** Events read and folded per statement by rebuild and verify. */
const PAGE = 1000;
