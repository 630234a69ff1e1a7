// The engine serialises commands: load state -> decide -> stage -> answer once durable.
// One engine per data directory; the host process owns it and everyone else asks the host.
import { type Config, DEFAULT_CONFIG } from '../domain/config.ts';
import { type Command, decide, jobsNamedBy } from '../domain/decide.ts';
import { JOB_STATES, type JobState, type JobView } from '../domain/types.ts';
import { QueuectlError } from '../errors.ts';
import type { StoredEvent } from '../events.ts';
import { type AnyLevel, LogStore } from '../log/store.ts';
import { PROJECTIONS } from '../../projections/index.ts';
import type { DlqEntry } from '../../projections/dlq.ts';
import { type Counts, emptyCounts, orderKey, stateKey } from '../../projections/states.ts';
import type { WorkerView } from '../../projections/workers.ts';
import { RunnableQueue } from './runnable-queue.ts';
import { parseRunnableKey } from '../../projections/runnable.ts';

export interface EngineOptions {
  clock?: () => number;
  sync?: boolean;
}

export interface Claim {
  job: JobView;
  attempt: number;
  leaseUntil: number;
}

type Staged = Awaited<ReturnType<LogStore['stage']>>;
interface SerialTask {
  run: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** Set for commands: their job views can be read ahead, together with their neighbours'. */
  command?: Command;
  prefetched?: boolean;
}

export class Engine {
  readonly store: LogStore;
  readonly clock: () => number;
  private runnable: RunnableQueue | null = null;
  private configCache: Config | null = null;
  /** What waits for the serial section, in order (see drainTasks). */
  private tasks: SerialTask[] = [];
  private draining = false;

  private constructor(store: LogStore, clock: () => number) {
    this.store = store;
    this.clock = clock;
  }

  static async open(db: AnyLevel, options: EngineOptions = {}): Promise<Engine> {
    const store = await LogStore.open(db, { projections: PROJECTIONS, sync: options.sync ?? true });
    return new Engine(store, options.clock ?? Date.now);
  }

  /**
   * Run `fn` after every command before it has been decided and staged. `command`, when `fn`
   * decides one, lets its job views be read ahead with its neighbours' (see prefetch).
   */
  private serial<T>(fn: () => Promise<T>, command?: Command): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.tasks.push({ run: fn, resolve: resolve as (v: unknown) => void, reject, command });
      this.kick();
    });
  }

  /** Run `fn` with no command deciding or staging meanwhile (rebuild, verify). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial(fn);
  }

  /** Decide and stage a command; resolves with its events once they are durable. */
  async execute(command: Command): Promise<StoredEvent[]> {
    const staged = await this.serial(() => this.decideAndStage(command), command);
    await staged.durable;
    return staged.events;
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    queueMicrotask(() => {
      this.drainTasks().catch(() => {}); // never rejects (each task answers its own caller); belt and braces
    });
  }

  /**
   * The serial section: tasks run one at a time, in the order they were asked for. Commands
   * that queued up behind a busy section have the job views they name read in one round trip
   * first (it leaves them in the store's cache), so under load the section does not wait on
   * the disk once per command.
   */
  private async drainTasks(): Promise<void> {
    try {
      while (this.tasks.length > 0) {
        const head = this.tasks[0]!;
        if (head.command && !head.prefetched) await this.prefetch();
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

  /** Read the job views of the commands at the head of the queue in one go (a hint only). */
  private async prefetch(): Promise<void> {
    try {
      const ids = new Set<string>();
      for (const t of this.tasks) {
        if (!t.command) break;
        // A malformed command is refused by its own run(); here it only ends the look-ahead.
        const named = jobsNamedBy(t.command);
        // a bulk enqueue reads its own ids in one go; reading them here too would be twice
        if (named.length > 16 || ids.size + named.length > 256) break;
        t.prefetched = true;
        for (const id of named) ids.add(id);
      }
      if (ids.size > 1) await this.store.getManyThrough<JobView>('jobs', [...ids]);
    } catch {
      // a failed read ahead costs nothing: each command reads what it needs itself
    }
  }

  private async decideAndStage(command: Command): Promise<Staged> {
    // After a failed write the in-memory mirrors may hold what never became durable (a refused
    // enqueue's jobs in the runnable queue): decide nothing until the store is reopened.
    this.store.checkWritable();
    const now = this.clock();
    const ids = jobsNamedBy(command);
    const views = await this.store.getManyThrough<JobView>('jobs', ids);
    const jobs = new Map(ids.map((id, i) => [id, views[i]]));
    const data = decide(command, { jobs, config: await this.config() }, now);
    const staged = await this.store.stage(data, now, jobs);
    // Keep the in-memory mirrors (runnable queue, config) in step with what was staged.
    if (this.runnable) for (const [id, job] of staged.jobs) this.runnable.update(id, job);
    for (const e of staged.events) {
      if (e.type === 'ConfigSet' && this.configCache) this.configCache = { ...this.configCache, [e.key]: e.value };
    }
    return staged;
  }

  /** Claim the next runnable job for a worker, or null when nothing is due. */
  async claimNext(workerId: string, leaseMs?: number): Promise<Claim | null> {
    const staged = await this.serial(async () => {
      this.store.checkWritable();
      const queue = await this.runnableQueue();
      const id = queue.next(this.clock());
      if (id === null) return null;
      const lease = leaseMs ?? (await this.config()).lease_seconds * 1000;
      return this.decideAndStage({ type: 'claim', jobId: id, workerId, leaseMs: lease });
    });
    if (!staged) return null;
    await staged.durable;
    const claimed = staged.events[0];
    const job = claimed?.type === 'JobClaimed' ? staged.jobs.get(claimed.jobId) : undefined;
    if (claimed?.type !== 'JobClaimed' || !job) throw new Error('claim produced no JobClaimed event');
    return { job, attempt: claimed.attempt, leaseUntil: claimed.leaseUntil };
  }

  /** The earliest time a queued job becomes due, or null when none is queued. */
  nextDueAt(): Promise<number | null> {
    return this.serial(async () => (await this.runnableQueue()).nextDueAt());
  }

  /** Loaded once, inside serial(), after the staged writes are durable so none is missed. */
  private async runnableQueue(): Promise<RunnableQueue> {
    if (this.runnable) return this.runnable;
    await this.store.drain();
    const queue = new RunnableQueue();
    for await (const [key, id] of this.store.sublevel('runnable').iterator()) {
      const { priority, dueAt, pos } = parseRunnableKey(key);
      queue.add(id, priority, dueAt, pos);
    }
    this.runnable = queue;
    return queue;
  }

  /** The configuration in force, including changes not yet durable. */
  getConfig(): Promise<Config> {
    return this.serial(() => this.config());
  }

  private async config(): Promise<Config> {
    if (this.configCache) return this.configCache;
    await this.store.drain();
    const stored = await this.store.sublevel('config').iterator().all();
    const config = { ...DEFAULT_CONFIG };
    for (const [k, v] of stored) if (Object.hasOwn(config, k)) (config as Record<string, number>)[k] = v;
    this.configCache = config;
    return config;
  }

  // ---- queries: durable state only -----------------------------------------------------------

  getJob(id: string): Promise<JobView | undefined> {
    return this.store.sublevel('jobs').get(id);
  }

  async requireJob(id: string): Promise<JobView> {
    const job = await this.getJob(id);
    if (!job) throw new QueuectlError('QUEUECTL_UNKNOWN_JOB', `no job with id '${id}'; see \`queuectl list\``);
    return job;
  }

  /** Jobs newest first, optionally in one state. */
  async listJobs(options: { state?: JobState; limit?: number } = {}): Promise<JobView[]> {
    const { state, limit = 50 } = options;
    const states = this.store.sublevel('states');
    const range = state ? { gte: stateKey(state, 0), lt: `s:${state};` } : { gte: orderKey(0), lt: 'a;' };
    const ids = (await states.values({ ...range, reverse: true, limit }).all()) as string[];
    const jobs = (await this.store.sublevel('jobs').getMany(ids)) as (JobView | undefined)[];
    return jobs.filter((j): j is JobView => j !== undefined);
  }

  /**
   * The oldest job waiting in a state (e.g. the oldest pending). The index range of a state
   * keeps a deletion marker for every job that left it until LevelDB compacts them away, and
   * an iterator steps over them one by one (~0.15 µs each: 50 ms once 333k jobs went through;
   * a reverse iterator also steps over those of the next state, as its seek goes forward).
   * Jobs still waiting are usually among the newest, so first look at the newest jobs through
   * the enqueue-order index, which has no deletions; the counts, read in the same snapshot,
   * say how many there are to find.
   */
  async oldest(state: JobState): Promise<JobView | undefined> {
    const db = this.store.db;
    const snapshot = db.supports.explicitSnapshots ? db.snapshot() : undefined;
    const read = snapshot ? { snapshot } : {};
    try {
      const states = this.store.sublevel('states');
      const jobs = this.store.sublevel('jobs');
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
    return ((await this.store.sublevel('states').get('counts')) as Counts | undefined) ?? emptyCounts();
  }

  async workers(): Promise<WorkerView[]> {
    return (await this.store.sublevel('workers').values().all()) as WorkerView[];
  }

  async dlq(): Promise<DlqEntry[]> {
    return (await this.store.sublevel('dlq').values({ gte: 'd:', lt: 'd;' }).all()) as DlqEntry[];
  }

  history(id: string): Promise<StoredEvent[]> {
    return this.store.readStream(id);
  }

  /** See LogStore.close. */
  close(options?: { letCompactionFinish?: boolean }): Promise<void> {
    return this.store.close(options);
  }
}

/** oldest() first looks for the jobs in a state among this many of the newest jobs. */
const OLDEST_AMONG_NEWEST = 100;

export const isJobState = (s: string): s is JobState => (JOB_STATES as readonly string[]).includes(s);
