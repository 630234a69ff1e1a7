// The LevelDB implementation of the store port (src/store/port.ts). This process is the only
// writer of its data directory (one host per directory), so it runs transactions one at a
// time in a serial section: load -> decide -> stage, where staging folds the events through
// the overlay of writes not yet durable and group-commits them (store.ts). Being the only
// writer also lets it keep mirrors in memory: the runnable set (for claims) and the config.
import { type Config, configFromStored } from '../../domain/config.ts';
import type { JobState, JobView } from '../../domain/types.ts';
import type { StoredEvent } from '../../events.ts';
import { PROJECTIONS } from '../../../projections/index.ts';
import type { DlqEntry } from '../../../projections/dlq.ts';
import { parseRunnableKey } from '../../../projections/runnable.ts';
import { type Counts, emptyCounts, orderKey, stateKey } from '../../../projections/states.ts';
import type { WorkerView } from '../../../projections/workers.ts';
import type { CloseOptions, Committed, Decider, Store } from '../port.ts';
import type { AnyLevel } from './keys.ts';
import { RunnableQueue } from './runnable-queue.ts';
import { LogStore, type ReplayLimits } from './store.ts';

export interface LevelStoreOptions {
  clock?: () => number;
  /** false only for benchmarks of the limit and tests that must not fsync; default true. */
  sync?: boolean;
  replay?: Partial<ReplayLimits>;
  /** The database's directory as messages name it (see StoreOptions.name). */
  name?: string;
}

type Staged = Awaited<ReturnType<LogStore['stage']>>;
interface SerialTask {
  run: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** Set for transactions: their job views can be read ahead, together with their neighbours'. */
  jobIds?: readonly string[];
  prefetched?: boolean;
}

export class LevelStore implements Store {
  readonly log: LogStore;
  readonly clock: () => number;
  private runnable: RunnableQueue | null = null;
  private configCache: Config | null = null;
  /** What waits for the serial section, in order (see drainTasks). */
  private tasks: SerialTask[] = [];
  private draining = false;

  set onUnwritable(hook: (() => void) | null) {
    this.log.onUnwritable = hook;
  }
  get onUnwritable(): (() => void) | null {
    return this.log.onUnwritable;
  }

  private constructor(log: LogStore, clock: () => number) {
    this.log = log;
    this.clock = clock;
  }

  static async open(db: AnyLevel, options: LevelStoreOptions = {}): Promise<LevelStore> {
    const log = await LogStore.open(db, { projections: PROJECTIONS, sync: options.sync ?? true, replay: options.replay, name: options.name });
    return new LevelStore(log, options.clock ?? Date.now);
  }

  // ---- the serial section -------------------------------------------------------------------

  /**
   * Run `fn` after every transaction before it has been decided and staged. `jobIds`, when `fn`
   * is a transaction, lets its job views be read ahead with its neighbours' (see prefetch).
   */
  private serial<T>(fn: () => Promise<T>, jobIds?: readonly string[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.tasks.push({ run: fn, resolve: resolve as (v: unknown) => void, reject, jobIds });
      this.kick();
    });
  }

  async transact(jobIds: readonly string[], decide: Decider): Promise<Committed> {
    const staged = await this.serial(() => this.decideAndStage(jobIds, decide), jobIds);
    await staged.durable;
    return staged;
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    queueMicrotask(() => {
      this.drainTasks().catch(() => {}); // never rejects (each task answers its own caller); belt and braces
    });
  }

  /**
   * The serial section: tasks run one at a time, in the order they were asked for. Transactions
   * that queued up behind a busy section have the job views they name read in one round trip
   * first (it leaves them in the store's cache), so under load the section does not wait on
   * the disk once per command.
   */
  private async drainTasks(): Promise<void> {
    try {
      while (this.tasks.length > 0) {
        const head = this.tasks[0]!;
        if (head.jobIds && !head.prefetched) await this.prefetch();
        this.tasks.shift();
        try {
          head.resolve(await head.run());
        } catch (err) {
          head.reject(err);
        }
      }
    } finally {
      this.draining = false;
      if (this.tasks.length > 0) this.kick();
    }
  }

  /** Read the job views of the transactions at the head of the queue in one go (a hint only). */
  private async prefetch(): Promise<void> {
    try {
      const ids = new Set<string>();
      for (const t of this.tasks) {
        const named = t.jobIds;
        if (!named) break;
        // a bulk enqueue reads its own ids in one go; reading them here too would be twice
        if (named.length > 16 || ids.size + named.length > 256) break;
        t.prefetched = true;
        for (const id of named) ids.add(id);
      }
      if (ids.size > 1) await this.log.getManyThrough<JobView>('jobs', [...ids]);
    } catch {
      // a failed read ahead costs nothing: each transaction reads what it needs itself
    }
  }

  private async decideAndStage(ids: readonly string[], decide: Decider): Promise<Staged> {
    // After a failed write the in-memory mirrors may hold what never became durable (a refused
    // enqueue's jobs in the runnable queue): decide nothing until the store is reopened.
    this.log.checkWritable();
    const now = this.clock();
    const views = await this.log.getManyThrough<JobView>('jobs', ids);
    const jobs = new Map(ids.map((id, i) => [id, views[i]]));
    const data = decide({ jobs, config: await this.configInForce() }, now);
    const staged = await this.log.stage(data, now, jobs);
    // Keep the in-memory mirrors (runnable queue, config) in step with what was staged.
    if (this.runnable) for (const [id, job] of staged.jobs) this.runnable.update(id, job);
    for (const e of staged.events) {
      if (e.type === 'ConfigSet' && this.configCache) this.configCache = { ...this.configCache, [e.key]: e.value };
    }
    return staged;
  }

  // ---- claims -------------------------------------------------------------------------------

  async claimNext(decide: (jobId: string) => Decider): Promise<Committed | null> {
    const staged = await this.serial(async () => {
      this.log.checkWritable();
      const queue = await this.runnableQueue();
      const id = queue.next(this.clock());
      if (id === null) return null;
      return this.decideAndStage([id], decide(id));
    });
    if (!staged) return null;
    await staged.durable;
    return staged;
  }

  nextDueAt(): Promise<number | null> {
    return this.serial(async () => (await this.runnableQueue()).nextDueAt());
  }

  /** Loaded once, inside serial(), after the staged writes are durable so none is missed. */
  private async runnableQueue(): Promise<RunnableQueue> {
    if (this.runnable) return this.runnable;
    await this.log.drain();
    const queue = new RunnableQueue();
    for await (const [key, id] of this.log.sublevel('runnable').iterator()) {
      const { priority, dueAt, pos } = parseRunnableKey(key);
      queue.add(id, priority, dueAt, pos);
    }
    this.runnable = queue;
    return queue;
  }

  /** The configuration in force, including changes not yet durable. */
  config(): Promise<Config> {
    return this.serial(() => this.configInForce());
  }

  private async configInForce(): Promise<Config> {
    if (this.configCache) return this.configCache;
    await this.log.drain();
    const stored = await this.log.sublevel('config').iterator().all();
    const config = configFromStored(stored);
    this.configCache = config;
    return config;
  }

  // ---- the log ------------------------------------------------------------------------------

  readEvents(from?: number, to?: number): AsyncGenerator<StoredEvent> {
    return this.log.readEvents(from, to);
  }

  readStream(jobId: string): Promise<StoredEvent[]> {
    return this.log.readStream(jobId);
  }

  async head(): Promise<number> {
    return this.log.committed;
  }

  subscribe(listener: (events: StoredEvent[]) => void): () => void {
    return this.log.subscribe(listener);
  }

  // ---- queries: durable state only -----------------------------------------------------------

  job(id: string): Promise<JobView | undefined> {
    return this.log.sublevel('jobs').get(id);
  }

  async list(options: { state?: JobState; limit?: number } = {}): Promise<JobView[]> {
    const { state, limit = 50 } = options;
    const states = this.log.sublevel('states');
    const range = state ? { gte: stateKey(state, 0), lt: `s:${state};` } : { gte: orderKey(0), lt: 'a;' };
    const ids = (await states.values({ ...range, reverse: true, limit }).all()) as string[];
    const jobs = (await this.log.sublevel('jobs').getMany(ids)) as (JobView | undefined)[];
    return jobs.filter((j): j is JobView => j !== undefined);
  }

  /**
   * The index range of a state keeps a deletion marker for every job that left it until
   * LevelDB compacts them away, and an iterator steps over them one by one (~0.15 µs each:
   * 50 ms once 333k jobs went through; a reverse iterator also steps over those of the next
   * state, as its seek goes forward). Jobs still waiting are usually among the newest, so first
   * look at the newest jobs through the enqueue-order index, which has no deletions; the
   * counts, read in the same snapshot, say how many there are to find.
   */
  async oldest(state: JobState): Promise<JobView | undefined> {
    const db = this.log.db;
    const snapshot = db.supports.explicitSnapshots ? db.snapshot() : undefined;
    const read = snapshot ? { snapshot } : {};
    try {
      const states = this.log.sublevel('states');
      const jobs = this.log.sublevel('jobs');
      const counts = ((await states.get('counts', read)) as Counts | undefined) ?? emptyCounts();
      let left = counts.jobs[state];
      if (left === 0) return undefined;
      // A few more than are left to find, then up to OLDEST_AMONG_NEWEST: every read here
      // may open tables and read blocks of many files, a cost a CLI process pays cold.
      let before = 'a;';
      for (const limit of [Math.min(left + 8, OLDEST_AMONG_NEWEST), OLDEST_AMONG_NEWEST]) {
        const newest = (await states.iterator({ gte: orderKey(0), lt: before, reverse: true, limit, ...read }).all()) as [string, string][];
        for (const job of (await jobs.getMany(newest.map(([, id]) => id), read)) as (JobView | undefined)[]) {
          if (job?.state === state && --left === 0) return job;
        }
        if (newest.length < limit) break;
        before = newest.at(-1)![0];
      }
      const [id] = (await states.values({ gte: stateKey(state, 0), lt: `s:${state};`, limit: 1, ...read }).all()) as string[];
      return id === undefined ? undefined : ((await jobs.get(id, read)) as JobView | undefined);
    } finally {
      await snapshot?.close();
    }
  }

  async counts(): Promise<Counts> {
    return ((await this.log.sublevel('states').get('counts')) as Counts | undefined) ?? emptyCounts();
  }

  async workers(): Promise<WorkerView[]> {
    return (await this.log.sublevel('workers').values().all()) as WorkerView[];
  }

  async dlq(): Promise<DlqEntry[]> {
    return (await this.log.sublevel('dlq').values({ gte: 'd:', lt: 'd;' }).all()) as DlqEntry[];
  }

  // ---- maintenance: with no transaction deciding or staging meanwhile ------------------------

  rebuild(): Promise<number> {
    return this.serial(() => this.log.rebuild());
  }

  verify(limit?: number): Promise<{ events: number; differences: string[] }> {
    return this.serial(() => this.log.verify(limit));
  }

  /** See LogStore.close. */
  close(options?: CloseOptions): Promise<void> {
    return this.log.close(options);
  }
}

/** oldest() first looks for the jobs in a state among this many of the newest jobs. */
const OLDEST_AMONG_NEWEST = 100;
