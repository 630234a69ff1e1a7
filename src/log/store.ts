// The append-only event log in LevelDB, and the projections it feeds.
//
// One append = the events, their per-job stream index entries, every projection change they
// cause and the new checkpoint, written in ONE atomic synced batch. Appends staged while a
// write is in flight go together in the next batch (group commit); each staging caller awaits
// its own batch. Decisions read through the staged-but-unwritten changes (the overlay), so a
// command decided while an earlier one is still being written sees its effects.
import type { AbstractLevel, AbstractSublevel } from 'abstract-level';
import { QueuectlError } from '../errors.ts';
import { EVENT_SCHEMA_VERSION, type EventData, jobIdOf, type StoredEvent, upcast } from '../events.ts';
import type { Projection, ProjectionView } from '../../projections/index.ts';
import { hex } from '../../projections/projection.ts';

// biome-ignore lint: any database of the abstract-level family (classic-level, memory-level)
export type AnyLevel = AbstractLevel<any, string, any>;
type Sub = AbstractSublevel<AnyLevel, any, string, any>;

export const FORMAT = { app: 'queuectl', format: 1 } as const;
const DELETED = Symbol('deleted');
// classic-level's write and iterator options (sync, highWaterMarkBytes) are not in abstract-level's types.
const opts = (o: Record<string, unknown>): {} => o;

interface Op { sub: Sub; key: string; value: unknown | typeof DELETED }

interface Batch {
  ops: Map<string, Op>; // `${sublevel}\u0000${key}` -> last write wins
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

export const posKey = (pos: number): string => hex(pos);
export const streamKey = (jobId: string, pos: number): string => `${jobId}/${hex(pos)}`;

export interface StoreOptions {
  projections: readonly Projection[];
  /** false only for benchmarks of the limit and tests that must not fsync; default true. */
  sync?: boolean;
}

export class LogStore {
  readonly db: AnyLevel;
  readonly projections: readonly Projection[];
  private readonly sync: boolean;
  private readonly meta: Sub;
  private readonly log: Sub;
  private readonly stream: Sub;
  private readonly subs = new Map<string, Sub>();
  private readonly views = new Map<string, ProjectionView>();
  private open: Batch | null = null;
  /** True while stage() fills the open batch: it must not be written half-staged. */
  private staging = false;
  private inFlight: Batch | null = null;
  private broken: unknown = null;
  private listeners = new Set<(events: StoredEvent[]) => void>();
  /** Position of the last staged event (committed or not). */
  private staged = -1;
  /** Position of the last durable event. */
  committed = -1;

  private constructor(db: AnyLevel, options: StoreOptions) {
    this.db = db;
    this.projections = options.projections;
    this.sync = options.sync ?? true;
    this.meta = db.sublevel('meta', { valueEncoding: 'json' });
    this.log = db.sublevel('log', { valueEncoding: 'json' });
    this.stream = db.sublevel('stream', { valueEncoding: 'utf8' });
    for (const p of this.projections) this.subs.set(p.name, db.sublevel(`p-${p.name}`, { valueEncoding: 'json' }));
  }

  /** Open over an opened-or-openable database; brings projections up to date with the log. */
  static async open(db: AnyLevel, options: StoreOptions): Promise<LogStore> {
    if (db.status !== 'open') await db.open();
    const store = new LogStore(db, options);
    await store.checkFormat();
    const last = await store.lastPos();
    store.staged = store.committed = last;
    await store.catchUp();
    return store;
  }

  private async checkFormat(): Promise<void> {
    const format = await this.meta.get('format');
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
  private async catchUp(): Promise<void> {
    const versions = ((await this.meta.get('versions')) ?? {}) as Record<string, number>;
    const checkpoint = ((await this.meta.get('checkpoint')) ?? -1) as number;
    const stale = this.projections.filter((p) => versions[p.name] !== p.version);
    if (stale.length > 0) {
      await this.rebuild();
    } else if (checkpoint < this.committed) {
      await this.replayInto(this.projections.map((p) => [p, this.subs.get(p.name)!] as const), checkpoint + 1, false);
    }
  }

  // ---- writing ----------------------------------------------------------------------------

  private batch(): Batch {
    if (this.broken) throw new QueuectlError('QUEUECTL_FAILED', `the log cannot be written: ${String(this.broken)}; restart queuectl`);
    this.open ??= newBatch();
    return this.open;
  }

  private stageOp(sub: Sub, key: string, value: unknown | typeof DELETED): void {
    this.batch().ops.set(`${sub.prefix}\u0000${key}`, { sub, key, value });
  }

  /** Read a key as the decisions see it: newest staged write first, then the database. */
  private async readThrough(sub: Sub, key: string): Promise<unknown> {
    const k = `${sub.prefix}\u0000${key}`;
    for (const b of [this.open, this.inFlight]) {
      const op = b?.ops.get(k);
      if (op) return op.value === DELETED ? undefined : op.value;
    }
    return sub.get(key);
  }

  /** A projection's key space as decisions see it (including staged, unwritten changes). */
  view(name: string): ProjectionView {
    const cached = this.views.get(name);
    if (cached) return cached;
    const sub = this.subs.get(name);
    if (!sub) throw new Error(`unknown projection ${name}`);
    const view: ProjectionView = {
      get: (key) => this.readThrough(sub, key) as Promise<never>,
      put: (key, value) => this.stageOp(sub, key, value),
      del: (key) => this.stageOp(sub, key, DELETED),
    };
    this.views.set(name, view);
    return view;
  }

  /**
   * Stage events: give them positions, apply every projection, queue the writes. Callers must
   * not interleave stage() calls (the engine serialises them). Returns the stored events and
   * the promise of their durability.
   */
  async stage(data: readonly EventData[], at: number): Promise<{ events: StoredEvent[]; durable: Promise<void> }> {
    const batch = this.batch();
    const events: StoredEvent[] = [];
    this.staging = true;
    try {
      await this.fold(data, at, events);
    } finally {
      this.staging = false;
    }
    batch.events.push(...events);
    this.flush();
    return { events, durable: batch.durable };
  }

  private async fold(data: readonly EventData[], at: number, events: StoredEvent[]): Promise<void> {
    for (const d of data) {
      const e = { ...d, pos: ++this.staged, at, v: EVENT_SCHEMA_VERSION } as StoredEvent;
      events.push(e);
      this.stageOp(this.log, posKey(e.pos), e);
      const jobId = jobIdOf(e);
      if (jobId !== null) this.stageOp(this.stream, streamKey(jobId, e.pos), '');
      for (const p of this.projections) await p.apply(e, this.view(p.name));
    }
    this.stageOp(this.meta, 'checkpoint', this.staged);
  }

  /** Several keys of a projection as decisions see them, in one database round trip. */
  async getManyThrough<T>(name: string, keys: readonly string[]): Promise<(T | undefined)[]> {
    const sub = this.sublevel(name);
    const out: (T | undefined)[] = new Array(keys.length);
    const missing: number[] = [];
    keys.forEach((key, i) => {
      const k = `${sub.prefix}\u0000${key}`;
      const op = this.open?.ops.get(k) ?? this.inFlight?.ops.get(k);
      if (op) out[i] = op.value === DELETED ? undefined : (op.value as T);
      else missing.push(i);
    });
    if (missing.length > 0) {
      const found = await sub.getMany(missing.map((i) => keys[i]!));
      missing.forEach((i, j) => (out[i] = found[j] as T | undefined));
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
    const ops = [...batch.ops.values()].map((op) =>
      op.value === DELETED
        ? { type: 'del' as const, sublevel: op.sub, key: op.key }
        : { type: 'put' as const, sublevel: op.sub, key: op.key, value: op.value },
    );
    this.db.batch(ops, opts({ sync: this.sync })).then(
      () => {
        this.committed = batch.events.at(-1)?.pos ?? this.committed;
        this.inFlight = null;
        batch.resolve();
        for (const l of this.listeners) l(batch.events);
        this.flush();
      },
      (err: unknown) => {
        // The overlay no longer matches the disk: refuse everything from here on.
        this.broken = err;
        this.inFlight = null;
        batch.reject(err);
        this.open?.reject(err);
        this.open = null;
      },
    );
  }

  /** Wait until everything staged so far is durable. */
  async drain(): Promise<void> {
    await this.inFlight?.durable;
    await this.open?.durable;
  }

  /** Called with each durable batch of events, in order. */
  subscribe(listener: (events: StoredEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- reading ----------------------------------------------------------------------------

  /** Every durable event from `from` on, streamed in chunks. */
  async *readEvents(from = 0, to = Number.POSITIVE_INFINITY): AsyncGenerator<StoredEvent> {
    const it = this.log.values(opts({ gte: posKey(from), ...(Number.isFinite(to) ? { lte: posKey(to) } : {}), highWaterMarkBytes: 1 << 20 }));
    try {
      for (;;) {
        const chunk = (await it.nextv(1000)) as StoredEvent[];
        if (chunk.length === 0) return;
        for (const e of chunk) yield upcast(e);
      }
    } finally {
      await it.close();
    }
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
   * (when `scratch` is false), so an interrupted rebuild resumes where it stopped.
   */
  private async replayInto(targets: readonly (readonly [Projection, Sub])[], from: number, fresh: boolean, scratch = false): Promise<number> {
    const CHUNK = 20_000;
    let cache = new Map<string, unknown>();
    let dirty = new Map<string, Op>();
    const views = targets.map(([p, sub]) => {
      const view: ProjectionView = {
        get: async (key) => {
          const k = `${sub.prefix}\u0000${key}`;
          if (cache.has(k)) {
            const v = cache.get(k);
            return (v === DELETED ? undefined : v) as never;
          }
          const v = fresh ? undefined : await sub.get(key);
          cache.set(k, v === undefined ? DELETED : v);
          return v as never;
        },
        put: (key, value) => {
          const k = `${sub.prefix}\u0000${key}`;
          cache.set(k, value);
          dirty.set(k, { sub, key, value });
        },
        del: (key) => {
          const k = `${sub.prefix}\u0000${key}`;
          cache.set(k, DELETED);
          dirty.set(k, { sub, key, value: DELETED });
        },
      };
      return [p, view] as const;
    });
    let count = 0;
    let last = from - 1;
    const write = async () => {
      const ops = [...dirty.values()].map((op) =>
        op.value === DELETED ? { type: 'del' as const, sublevel: op.sub, key: op.key } : { type: 'put' as const, sublevel: op.sub, key: op.key, value: op.value },
      );
      if (!scratch) ops.push({ type: 'put', sublevel: this.meta, key: 'checkpoint', value: last });
      await this.db.batch(ops, opts({ sync: false }));
      dirty = new Map();
      // A fresh rebuild can keep trusting its cache only while it holds every key written.
      if (cache.size > 500_000) {
        cache = new Map();
        fresh = false;
      }
    };
    for await (const e of this.readEvents(from, this.committed)) {
      for (const [p, view] of views) await p.apply(e, view);
      last = e.pos;
      if (++count % CHUNK === 0) await write();
    }
    await write();
    return count;
  }

  private async clear(subs: readonly Sub[]): Promise<void> {
    for (const sub of subs) await sub.clear();
  }

  /** Recompute every projection from position 0. Returns the number of events folded. */
  async rebuild(): Promise<number> {
    await this.drain();
    await this.meta.put('checkpoint', -1, opts({ sync: this.sync }));
    const targets = this.projections.map((p) => [p, this.subs.get(p.name)!] as const);
    await this.clear(targets.map(([, s]) => s));
    const count = await this.replayInto(targets, 0, true);
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
    const events = await this.replayInto(targets, 0, true, true);
    const differences: string[] = [];
    try {
      for (const [p, scratch] of targets) {
        await diffSublevels(this.subs.get(p.name)!, scratch, (key, stored, rebuilt) => {
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

  async close(): Promise<void> {
    await this.drain().catch(() => {});
    await this.db.close();
  }
}

/** Walk two sorted key spaces side by side and report every key whose values differ. */
const diffSublevels = async (a: Sub, b: Sub, report: (key: string, inA: unknown, inB: unknown) => void): Promise<void> => {
  const ia = a.iterator();
  const ib = b.iterator();
  try {
    let ea = await ia.next();
    let eb = await ib.next();
    while (ea || eb) {
      if (ea && (!eb || ea[0] < eb[0])) {
        report(ea[0], ea[1], undefined);
        ea = await ia.next();
      } else if (eb && (!ea || eb[0] < ea[0])) {
        report(eb[0], undefined, eb[1]);
        eb = await ib.next();
      } else if (ea && eb) {
        if (JSON.stringify(ea[1]) !== JSON.stringify(eb[1])) report(ea[0], ea[1], eb[1]);
        ea = await ia.next();
        eb = await ib.next();
      }
    }
  } finally {
    await ia.close();
    await ib.close();
  }
};
