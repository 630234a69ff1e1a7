// The append-only event log in LevelDB, and the projections it feeds.
//
// One append = the events, their per-job stream index entries, every projection change they
// cause and the new checkpoint, written in ONE atomic synced batch. Appends staged while a
// write is in flight go together in the next batch (group commit); each staging caller awaits
// its own batch. Decisions read through the staged-but-unwritten changes (the overlay), so a
// command decided while an earlier one is still being written sees its effects.
import { environmentError, isQueuectlError, QueuectlError } from '../../errors.ts';
import { EVENT_SCHEMA_VERSION, type EventData, jobIdOf, type StoredEvent, upcast } from '../../events.ts';
import type { JobView } from '../../domain/types.ts';
import type { Projection } from '../../../projections/index.ts';
import { DELETED, fold, type KeySpace, type Target } from '../fold.ts';
import { diffSorted, memoryReader, sublevelReader } from './diff.ts';
import { type AnyLevel, opts, posKey, type Sub, streamKey } from './keys.ts';
import { damaged, writeWalEnd } from './leveldb-files.ts';

export const FORMAT = { app: 'queuectl', format: 1 } as const;
const CACHE_MAX = 4_096;
/**
 * Reads of up to this many keys use LevelDB's synchronous get: a point lookup costs a few
 * microseconds, the thread-pool round trip of getMany ~100 µs, and the serial section would
 * otherwise sit idle waiting for it once per command.
 */
const SYNC_READ_MAX = 64;
/** A read of more keys than this (a bulk enqueue) is not cached: it would only flush the cache. */
const CACHE_FILL_MAX = 256;
/** LevelDB compacts level 0 into level 1 once it holds this many files (kL0_CompactionTrigger). */
export const L0_COMPACTION_TRIGGER = 4;

/** Full database key (sublevel prefix + key) -> value, or DELETED; the last write wins. */
type Ops = Map<string, unknown>;

interface Batch {
  ops: Ops;
  events: StoredEvent[];
  durable: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const newBatch = (): Batch => {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const durable = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  durable.catch(() => {}); // each caller observes the rejection through its own await
  return { ops: new Map(), events: [], durable, resolve, reject };
};

export interface StoreOptions {
  projections: readonly Projection[];
  /** false only for benchmarks of the limit and tests that must not fsync; default true. */
  sync?: boolean;
  /** How a replay (rebuild, verify, catch-up) works through the log; tests make them tiny. */
  replay?: Partial<ReplayLimits>;
  /** The database's directory as messages name it: the path the user gave, not the handle it is opened through. */
  name?: string;
}

export interface ReplayLimits {
  /** Events folded together: one load of the keys they read. */
  chunk: number;
  /** Events between writes (and checkpoints); more coalesce in memory. */
  flush: number;
  /** Keys a fresh replay keeps in memory before it starts reading misses from disk. */
  cacheMax: number;
}

const REPLAY: ReplayLimits = { chunk: 1000, flush: 50_000, cacheMax: 500_000 };

export class LogStore {
  readonly db: AnyLevel;
  readonly projections: readonly Projection[];
  private readonly sync: boolean;
  private readonly replay: ReplayLimits;
  /** What messages call the database (see StoreOptions.name). */
  private readonly name: string;
  private readonly meta: Sub;
  private readonly log: Sub;
  private readonly stream: Sub;
  private readonly subs = new Map<string, Sub>();
  /** Every projection with the key prefix of its sublevel. */
  private readonly targets: Target[] = [];
  private open: Batch | null = null;
  /** True while stage() fills the open batch: it must not be written half-staged. */
  private staging = false;
  private inFlight: Batch | null = null;
  /**
   * Durable values of keys decisions read often (counts, workers, the jobs being worked on),
   * full key -> value or DELETED. This process is the only writer: each committed batch
   * updates the keys cached, so the cache never lags the disk.
   */
  private readonly cache = new Map<string, unknown>();
  /**
   * Why this handle may write no more. A failed write can leave a torn record at the end of
   * LevelDB's write-ahead log, and a record written after it in the same block would be lost
   * when the log is next recovered: only a reopen (a new write-ahead log) may write again.
   */
  private broken: unknown = null;
  private listeners = new Set<(events: StoredEvent[]) => void>();
  /** Position of the last staged event (committed or not). */
  private staged = -1;
  /** Position of the last durable event. */
  committed = -1;
  /** Whether this process wrote to the database (see close). */
  private wrote = false;
  /** Position ranges [from, to] that `queuectl repair` found lost: the only gaps the log may have. */
  private holes: [number, number][] = [];

  private constructor(db: AnyLevel, options: StoreOptions) {
    this.db = db;
    this.projections = options.projections;
    this.sync = options.sync ?? true;
    this.replay = { ...REPLAY, ...options.replay };
    this.name = options.name ?? (db as { location?: string }).location ?? 'memory';
    this.meta = db.sublevel('meta', { valueEncoding: 'json' });
    this.log = db.sublevel('log', { valueEncoding: 'json' });
    this.stream = db.sublevel('stream', { valueEncoding: 'json' });
    for (const p of this.projections) {
      const sub = db.sublevel(`p-${p.name}`, { valueEncoding: 'json' }) as Sub;
      this.subs.set(p.name, sub);
      this.targets.push([p, sub.prefix]);
    }
  }

  /** Open over an opened-or-openable database; brings projections up to date with the log. */
  static async open(db: AnyLevel, options: StoreOptions): Promise<LogStore> {
    if (db.status !== 'open') await db.open();
    const store = new LogStore(db, options);
    // What opening reads, in one round trip: on a cold database each read opens table files.
    const [[format, versions, checkpoint, holes], last] = await Promise.all([store.meta.getMany(['format', 'versions', 'checkpoint', 'holes']), store.lastPos()]);
    await store.checkFormat(format);
    store.holes = (holes ?? []) as [number, number][];
    // a lost tail stays lost: its positions are never given to new events
    store.staged = store.committed = Math.max(last, store.holes.at(-1)?.[1] ?? -1);
    await store.catchUp((versions ?? {}) as Record<string, number>, (checkpoint ?? -1) as number);
    return store;
  }

  private async checkFormat(format: { app?: string; format: number } | undefined): Promise<void> {
    if (format === undefined) {
      const anyKey = await this.db.keys({ limit: 1 }).all();
      if (anyKey.length > 0) {
        throw new QueuectlError('QUEUECTL_NOT_A_DATA_DIR', 'this LevelDB database was not created by queuectl; point --home at a queuectl data directory or an empty one');
      }
      await this.meta.put('format', FORMAT, opts({ sync: this.sync }));
    } else if (format?.app !== FORMAT.app) {
      throw new QueuectlError('QUEUECTL_NOT_A_DATA_DIR', 'this LevelDB database was not created by queuectl; point --home at a queuectl data directory or an empty one');
    } else if (format.format > FORMAT.format) {
      throw new QueuectlError('QUEUECTL_NOT_A_DATA_DIR', `this data directory has format ${format.format}, newer than this queuectl (${FORMAT.format}); upgrade queuectl`);
    }
  }

  private async lastPos(): Promise<number> {
    const [key] = await this.log.keys({ reverse: true, limit: 1 }).all();
    return key === undefined ? -1 : Number.parseInt(key, 16);
  }

  /** Projections whose stored version differs are rebuilt; a lagging checkpoint is caught up. */
  private async catchUp(versions: Record<string, number>, checkpoint: number): Promise<void> {
    const stale = this.projections.filter((p) => versions[p.name] !== p.version);
    if (stale.length > 0) {
      await this.rebuild();
    } else if (checkpoint < this.committed) {
      await this.replayInto(this.targets, checkpoint + 1, false);
    }
  }

  // ---- writing ----------------------------------------------------------------------------

  /** Throws when this handle may write no more (see `broken`): nothing is to be decided then. */
  checkWritable(): void {
    if (this.broken) {
      throw isQueuectlError(this.broken) ? new QueuectlError(this.broken.code, this.broken.message) : new QueuectlError('QUEUECTL_FAILED', `the log cannot be written: ${String(this.broken)}; restart queuectl`);
    }
  }

  private batch(): Batch {
    this.checkWritable();
    this.open ??= newBatch();
    return this.open;
  }

  private stageOp(sub: Sub, key: string, value: unknown): void {
    this.batch().ops.set(sub.prefix + key, value);
  }

  /**
   * Stage events: give them positions, apply every projection, queue the writes. Callers must
   * not interleave stage() calls (level-store.ts runs them in its serial section). Returns the
   * stored events, each touched job as it now is, and the promise of their durability.
   */
  async stage(
    data: readonly EventData[],
    at: number,
    /** Job views the caller has just read through the overlay (saves reading them again). */
    known?: ReadonlyMap<string, JobView | undefined>,
  ): Promise<{ events: StoredEvent[]; jobs: Map<string, JobView | undefined>; durable: Promise<void> }> {
    const batch = this.batch();
    const before = this.staged;
    const events = data.map((d) => ({ ...d, pos: ++this.staged, at, v: EVENT_SCHEMA_VERSION }) as StoredEvent);
    // A stage that fails (a read error, a projection that throws) must leave nothing behind in
    // a batch other commands share: it folds into its own map, merged only on success. The
    // first stage of a batch may fold into the batch itself and empty it on failure.
    const shared = batch.ops.size > 0;
    const ops: Ops = shared ? new Map() : batch.ops;
    let jobs: Map<string, JobView | undefined>;
    this.staging = true;
    try {
      const loaded = new Map<string, unknown>();
      const jobsPrefix = this.subs.get('jobs')!.prefix;
      for (const [id, view] of known ?? []) loaded.set(jobsPrefix + id, view ?? DELETED);
      const space: KeySpace = {
        get: (k) => {
          const v = ops.get(k) ?? batch.ops.get(k) ?? loaded.get(k);
          return v === DELETED ? undefined : v;
        },
        set: (k, v) => void ops.set(k, v),
        load: async (keys) => {
          // Take values from the batch being written now: it may become durable (and leave
          // memory) while the database is read below, and those keys would then be lost.
          const inFlight = this.inFlight?.ops;
          const missing: string[] = [];
          for (const k of keys) {
            if (ops.has(k) || batch.ops.has(k) || loaded.has(k)) continue;
            const v = inFlight?.get(k) ?? this.cache.get(k);
            if (v !== undefined) loaded.set(k, v);
            else missing.push(k);
          }
          const values = await this.getRaw(missing);
          missing.forEach((k, i) => loaded.set(k, values[i] ?? DELETED));
          // Read inside the serial section with no write to these keys pending: safe to keep.
          if (missing.length <= CACHE_FILL_MAX) missing.forEach((k) => this.remember(k, loaded.get(k)));
        },
      };
      jobs = await fold(events, space, this.targets);
      for (const e of events) {
        ops.set(this.log.prefix + posKey(e.pos), e);
        const jobId = jobIdOf(e);
        if (jobId !== null) ops.set(this.stream.prefix + streamKey(jobId, e.pos), 1);
      }
      ops.set(`${this.meta.prefix}checkpoint`, this.staged);
      if (shared) for (const [k, v] of ops) batch.ops.set(k, v);
    } catch (err) {
      this.staged = before;
      if (!shared) {
        // nothing else is in this batch: drop it, or drain() would wait for it forever
        batch.ops.clear();
        if (this.open === batch && batch.events.length === 0) this.open = null;
      }
      this.staging = false;
      // A write that ended while this stage ran could not start the next one: start it now,
      // or the other commands in the open batch would wait for whoever stages next.
      this.flush();
      throw err;
    } finally {
      this.staging = false;
    }
    for (const e of events) batch.events.push(e);
    this.flush();
    return { events, jobs, durable: batch.durable };
  }

  /** Keep a key read from disk; the oldest entries leave first once the cache is full. */
  private remember(key: string, value: unknown): void {
    this.cache.delete(key);
    this.cache.set(key, value ?? DELETED);
    if (this.cache.size > CACHE_MAX) {
      const iter = this.cache.keys();
      for (let i = 0; i < CACHE_MAX / 10; i++) this.cache.delete(iter.next().value as string);
    }
  }

  /** Raw values of full keys (JSON-decoded), in one round trip. */
  private async getRaw(keys: readonly string[]): Promise<unknown[]> {
    if (keys.length === 0) return [];
    const raw = (keys.length <= SYNC_READ_MAX && (this.db.supports as { getSync?: boolean }).getSync ? keys.map((k) => this.db.getSync(k)) : await this.db.getMany(keys as string[])) as (string | undefined)[];
    return raw.map((v) => (v === undefined ? undefined : JSON.parse(v)));
  }

  /**
   * Several keys of a projection as decisions see them, in one database round trip. Call it
   * only from the serial section (no stage() meanwhile): what it reads from disk is cached.
   */
  async getManyThrough<T>(name: string, keys: readonly string[]): Promise<(T | undefined)[]> {
    const sub = this.sublevel(name);
    const out: (T | undefined)[] = new Array(keys.length);
    const missing: number[] = [];
    keys.forEach((key, i) => {
      const k = sub.prefix + key;
      const value = this.open?.ops.get(k) ?? this.inFlight?.ops.get(k) ?? this.cache.get(k);
      if (value !== undefined) out[i] = value === DELETED ? undefined : (value as T);
      else missing.push(i);
    });
    if (missing.length > 0) {
      const found = await this.getRaw(missing.map((i) => sub.prefix + keys[i]!));
      missing.forEach((i, j) => (out[i] = found[j] as T | undefined));
      if (missing.length <= CACHE_FILL_MAX) missing.forEach((i) => this.remember(sub.prefix + keys[i]!, out[i]));
    }
    return out;
  }

  /** Convenience: stage and wait until durable. */
  async append(data: readonly EventData[], at: number): Promise<StoredEvent[]> {
    const { events, durable } = await this.stage(data, at);
    await durable;
    return events;
  }

  private flush(): void {
    if (this.inFlight || !this.open || this.staging) return;
    const batch = this.open;
    this.open = null;
    this.inFlight = batch;
    this.write(batch.ops, this.sync).then(
      () => {
        this.committed = batch.events.at(-1)?.pos ?? this.committed;
        if (this.cache.size > 0) for (const [k, v] of batch.ops) if (this.cache.has(k)) this.cache.set(k, v);
        this.inFlight = null;
        batch.resolve();
        for (const l of this.listeners) l(batch.events);
        this.flush();
      },
      (err: unknown) => {
        // The overlay no longer matches the disk: refuse everything from here on.
        const failure = this.fail(err);
        this.inFlight = null;
        batch.reject(failure);
        this.open?.reject(failure);
        this.open = null;
      },
    );
  }

  /**
   * One atomic write. A chained batch of pre-encoded strings on the root database: abstract-level's
   * array batch with sublevels costs ~20 µs per operation in JavaScript, this ~3 µs. Every sublevel
   * is JSON-encoded, so the bytes are what the sublevels read back.
   */
  private write(ops: Ops, sync: boolean): Promise<void> {
    const batch = this.db.batch();
    for (const [key, value] of ops) {
      if (value === DELETED) batch.del(key);
      else batch.put(key, JSON.stringify(value));
    }
    return batch.write(opts({ sync })).then(
      () => {
        this.wrote = true;
      },
      (err: unknown) => {
        throw this.fail(err);
      },
    );
  }

  /** Called once when this handle stops writing (see connect.ts: a host then reopens the database). */
  onUnwritable: (() => void) | null = null;

  /** Stop writing: a full disk or a permission is the environment's (QUEUECTL_ENVIRONMENT, exit 1), anything else stays as it is. */
  private fail(err: unknown): unknown {
    if (this.broken === null) {
      this.broken = environmentError(err, 'write the log in', this.name) ?? err;
      this.onUnwritable?.();
    }
    return this.broken;
  }

  /** Wait until everything staged so far is durable. */
  async drain(): Promise<void> {
    // the open batch becomes the in-flight one when the current write ends: loop until both are empty
    for (let b = this.inFlight ?? this.open; b; b = this.inFlight ?? this.open) await b.durable;
  }

  /** Called with each durable batch of events, in order. */
  subscribe(listener: (events: StoredEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- reading ----------------------------------------------------------------------------

  /**
   * Every durable event from `from` on, streamed in chunks. Positions are contiguous by
   * construction, so a gap (not one repair recorded) or an event that does not decode is
   * damage: LevelDB skips a damaged region of its write-ahead log without a word.
   */
  async *readEvents(from = 0, to = Number.POSITIVE_INFINITY): AsyncGenerator<StoredEvent> {
    const end = Math.min(to, this.committed);
    const it = this.log.iterator(opts({ gte: posKey(from), ...(Number.isFinite(to) ? { lte: posKey(to) } : {}), valueEncoding: 'utf8', highWaterMarkBytes: 1 << 20 }));
    let next = from;
    try {
      for (;;) {
        const chunk = (await it.nextv(1000)) as [string, string][];
        if (chunk.length === 0) break;
        for (const [key, raw] of chunk) {
          const pos = Number.parseInt(key, 16);
          if (pos > next) this.checkGap(next, pos - 1);
          let e: StoredEvent;
          try {
            e = JSON.parse(raw) as StoredEvent;
          } catch {
            throw this.damage(`the event at position ${pos} does not decode`);
          }
          if (e?.pos !== pos || typeof e.type !== 'string') throw this.damage(`the event stored at position ${pos} is not one`);
          next = pos + 1;
          yield upcast(e);
        }
      }
    } finally {
      await it.close();
    }
    if (next <= end) this.checkGap(next, end);
  }

  private checkGap(from: number, to: number): void {
    if (this.holes.some(([a, b]) => a <= from && to <= b)) return;
    throw this.damage(`the log has no event${from === to ? ` at position ${from}` : `s at positions ${from}-${to}`}`);
  }

  private damage(what: string): QueuectlError {
    return damaged(this.name, what);
  }

  /** One job's events, through the stream index (never a scan of the log). */
  async readStream(jobId: string): Promise<StoredEvent[]> {
    const keys = await this.stream.keys({ gt: `${jobId}/`, lt: `${jobId}0` }).all();
    const values = (await this.log.getMany(keys.map((k) => k.slice(jobId.length + 1)))) as (StoredEvent | undefined)[];
    return values.filter((e): e is StoredEvent => e !== undefined).map(upcast);
  }

  /** A projection's durable key space, for queries. */
  sublevel(name: string): Sub {
    const sub = this.subs.get(name);
    if (!sub) throw new Error(`unknown projection ${name}`);
    return sub;
  }

  // ---- rebuild and verify -----------------------------------------------------------------

  /**
   * Fold events [from, committed] into `targets`. Writes go out in chunks with the checkpoint
   * (when `scratch` is false), so an interrupted catch-up resumes where it stopped (a rebuild
   * starts again from scratch: it forgets the versions first). A `scratch` replay (verify)
   * that fits in memory writes nothing and leaves its result in `scratch.inMemory`: verify
   * then answers on a full disk, and never breaks the store with a failed write.
   */
  private async replayInto(targets: readonly Target[], from: number, fresh: boolean, scratch: false | { inMemory: Map<string, unknown> | null } = false, before: Promise<void> = Promise.resolve()): Promise<number> {
    const { chunk: CHUNK, flush: FLUSH, cacheMax } = this.replay;
    let cache = new Map<string, unknown>();
    let dirty: Ops = new Map();
    const space: KeySpace = {
      get: (k) => {
        const v = cache.get(k);
        return v === DELETED ? undefined : v;
      },
      set: (k, v) => {
        cache.set(k, v);
        dirty.set(k, v);
      },
      load: async (keys) => {
        const missing = keys.filter((k) => !cache.has(k));
        const values = fresh ? [] : await this.getRaw(missing);
        missing.forEach((k, i) => cache.set(k, values[i] ?? DELETED));
      },
    };
    let count = 0;
    let unflushed = 0;
    let last = from - 1;
    // While fresh, the disk holds only what earlier flushes wrote: a delete of any other key
    // (a runnable entry put and removed within one window, say) need not be written at all.
    const persisted = new Set<string>();
    let writing: Promise<void> = before;
    const flushChunk = async () => {
      if (scratch && fresh) {
        if (cache.size <= cacheMax) return void (dirty = new Map());
        dirty = new Map([...cache].filter(([, v]) => v !== DELETED)); // it no longer fits: all of it to disk, and on from there
      }
      if (!scratch) dirty.set(`${this.meta.prefix}checkpoint`, last);
      if (fresh) {
        for (const [k, v] of dirty) {
          if (v !== DELETED) persisted.add(k);
          else if (!persisted.has(k)) dirty.delete(k);
        }
      }
      // One write in flight while the next events fold: the disk and the CPU work at once.
      // Never two, so they land in order.
      await writing;
      writing = this.write(dirty, false);
      writing.catch(() => {}); // observed by the next await; never an unhandled rejection
      dirty = new Map();
      // A fresh rebuild can trust a cache miss only while the cache holds every key written.
      if (cache.size > cacheMax) {
        await writing; // what is read from disk from now on must include it
        cache = new Map();
        persisted.clear();
        fresh = false;
      }
    };
    let chunk: StoredEvent[] = [];
    const foldChunk = async () => {
      await fold(chunk, space, targets);
      count += chunk.length;
      unflushed += chunk.length;
      last = chunk[chunk.length - 1]?.pos ?? last;
      chunk = [];
      if (unflushed >= FLUSH) {
        unflushed = 0;
        await flushChunk();
      }
    };
    try {
      for await (const e of this.readEvents(from, this.committed)) {
        chunk.push(e);
        if (chunk.length === CHUNK) await foldChunk();
      }
      await foldChunk();
      await flushChunk();
    } finally {
      await writing.catch(() => {}); // never leave a write running behind a failure
    }
    await writing;
    if (scratch && fresh) scratch.inMemory = cache;
    return count;
  }



  private async clear(subs: readonly Sub[]): Promise<void> {
    for (const sub of subs) await sub.clear();
  }

  /** Recompute every projection from position 0. Returns the number of events folded. */
  async rebuild(): Promise<number> {
    await this.drain();
    this.cache.clear();
    // Forget the versions first: a rebuild interrupted at any point (even mid-clear) is then
    // seen as stale on the next open and started again from scratch, never resumed on top of
    // half-cleared data.
    await this.write(new Map<string, unknown>([[`${this.meta.prefix}versions`, DELETED], [`${this.meta.prefix}checkpoint`, -1]]), this.sync);
    // Events are read and folded while the old projections are cleared; the first write waits for it.
    const clearing = this.clear([...this.subs.values()]);
    clearing.catch(() => {});
    let count: number;
    try {
      count = await this.replayInto(this.targets, 0, true, false, clearing);
    } catch (err) {
      // Half-built projections must not be decided against: refuse everything until a restart,
      // whose open rebuilds them (their versions were forgotten above). Nothing may still be
      // clearing or writing behind the refusal.
      await clearing.catch(() => {});
      throw this.fail(err);
    }
    await this.db.batch(
      [
        { type: 'put', sublevel: this.meta, key: 'checkpoint', value: this.committed },
        { type: 'put', sublevel: this.meta, key: 'versions', value: Object.fromEntries(this.projections.map((p) => [p.name, p.version])) },
      ] as never,
      opts({ sync: this.sync }),
    );
    return count;
  }

  /** Rebuild into a scratch space and list every key where it differs from the stored projections. */
  async verify(limit = 20): Promise<{ events: number; differences: string[] }> {
    await this.drain();
    const targets = this.projections.map((p) => [p, this.db.sublevel(`v-${p.name}`, { valueEncoding: 'json' }) as Sub] as const);
    await this.clear(targets.map(([, s]) => s));
    const upTo = this.committed;
    const scratch: { inMemory: Map<string, unknown> | null } = { inMemory: null };
    const events = await this.replayInto(targets.map(([p, sub]) => [p, sub.prefix] as const), 0, true, scratch);
    const differences: string[] = [];
    try {
      for (const [p, sub] of targets) {
        const rebuilt = scratch.inMemory ? memoryReader(scratch.inMemory, sub.prefix) : sublevelReader(sub);
        await diffSorted(sublevelReader(this.subs.get(p.name)!), rebuilt, (key, stored, rebuilt) => {
          if (differences.length < limit) differences.push(`${p.name}/${key}: stored ${JSON.stringify(stored)} but the log gives ${JSON.stringify(rebuilt)}`);
          else if (differences.length === limit) differences.push('...');
        });
      }
    } finally {
      await this.clear(targets.map(([, s]) => s));
    }
    if (this.committed !== upTo) throw new Error('the log grew during verify');
    return { events, differences };
  }

  /**
   * With `letCompactionFinish` (short commands: see connect.ts), a store that wrote waits for
   * a level-0 compaction under way before closing. LevelDB's level 0 gets one more file each
   * time a process that wrote is followed by an open (the open replays the write-ahead log into
   * a new table), and an open that finds 4 or more (LevelDB's compaction trigger) starts
   * compacting them into level 1, in the background. A short command ends long before that
   * compaction does, and closing throws its work away: with only short commands, every open
   * would start the same compaction again, for ever, and level 0 would keep growing. So a
   * short command that wrote lets it finish, as SQLite's committing connection runs the WAL
   * checkpoint: one writing command in a few pays for it (on 1M events, 60-700 ms), instead of
   * every command paying a little, for ever. A command that only read never waits (other
   * commands of this data directory do wait meanwhile: the database stays locked). A store
   * whose write failed does not wait either: LevelDB may be stuck with a background error.
   */
  async close(options: { letCompactionFinish?: boolean } = {}): Promise<void> {
    await this.drain().catch(() => {});
    if (this.wrote && !this.broken && options.letCompactionFinish) await this.letCompactionFinish();
    // Still holding the lock, nothing more to write: the next open can check the log is whole.
    const location = (this.db as { location?: string }).location;
    if (location && !this.broken && this.db.status === 'open') {
      try {
        writeWalEnd(location, this.committed);
      } catch {
        // a full disk or a read-only directory: the next open only checks less
      }
    }
    await this.db.close();
  }

  /** Bounded: a compaction that runs longer is left to the next writer. */
  private async letCompactionFinish(limitMs = 3000): Promise<void> {
    const db = this.db as { getProperty?: (property: string) => string };
    if (typeof db.getProperty !== 'function') return; // memory-level: no levels
    const until = performance.now() + limitMs; // monotonic: a clock step cannot stretch the bound
    while (Number(db.getProperty('leveldb.num-files-at-level0')) >= L0_COMPACTION_TRIGGER && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

