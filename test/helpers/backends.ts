// The backends the store contract (store-contract.ts) and the model-based suite (props.test.ts)
// run against. A second backend plugs in as one more BackendHarness.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { MemoryLevel } from 'memory-level';
import { PROJECTIONS } from '../../projections/index.ts';
import { Engine } from '../../src/engine/engine.ts';
import type { AnyLevel } from '../../src/store/leveldb/keys.ts';
import { LevelStore, type LevelStoreOptions } from '../../src/store/leveldb/level-store.ts';
import type { Store } from '../../src/store/port.ts';
import { PgStore, projectionRecords } from '../../src/store/postgres/store.ts';
import { freshQueue, type TestPostgres } from './postgres.ts';

/** An engine over the LevelDB store of `db` (classic-level, or memory-level for pure-logic tests). */
export const openLevelEngine = async (db: AnyLevel, options?: LevelStoreOptions): Promise<Engine> => new Engine(await LevelStore.open(db, options));

/** One store under test, open over its own fresh data. */
export interface OpenedBackend {
  store: Store;
  /** Close the store and open the same data again (the old one must not be used after). */
  reopen(): Promise<Store>;
  /** Every projection's records, key for key, in a stable order (the replay law compares them). */
  projections(): Promise<Record<string, [string, unknown][]>>;
  /** Close (if open) and delete the data. */
  dispose(): Promise<void>;
}

export interface BackendHarness {
  name: string;
  /** A store over new, empty data, deciding at `clock()`. */
  create(clock: () => number): Promise<OpenedBackend>;
}

let tmpRoot: string | null = null;
const freshDir = (): string => {
  tmpRoot ??= mkdtempSync(join(tmpdir(), 'queuectl-backends-'));
  return mkdtempSync(join(tmpRoot, 'db-'));
};
/** Delete every directory the harnesses made (test.after). */
export const removeBackendDirs = (): void => {
  if (tmpRoot) rmSync(tmpRoot, { recursive: true, force: true });
  tmpRoot = null;
};

/** LevelDB over classic-level in a temporary directory, or over memory-level (pure logic only). */
export const levelHarness = (kind: 'classic' | 'memory'): BackendHarness => ({
  name: kind === 'classic' ? 'leveldb' : 'leveldb over memory-level',
  async create(clock) {
    const dir = kind === 'classic' ? freshDir() : null;
    const memory = kind === 'memory' ? (new MemoryLevel<string, unknown>() as unknown as AnyLevel) : null;
    const db = (): AnyLevel => memory ?? (new ClassicLevel<string, unknown>(dir!) as unknown as AnyLevel);
    let store = await LevelStore.open(db(), { clock });
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = await LevelStore.open(db(), { clock });
        return store;
      },
      async projections() {
        const out: Record<string, [string, unknown][]> = {};
        for (const p of PROJECTIONS) out[p.name] = (await store.log.sublevel(p.name).iterator().all()) as [string, unknown][];
        return out;
      },
      async dispose() {
        await store.close().catch(() => {});
        if (dir) rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});

/**
 * The PostgreSQL store, each store in a fresh schema of the server `server()` gives (one per
 * test file: test/helpers/postgres.ts). A reopen is a new pool, as a restarted host would open.
 */
export const pgHarness = (server: () => Promise<TestPostgres>): BackendHarness => ({
  name: 'postgres',
  async create(clock) {
    const queue = await freshQueue(await server(), 'h');
    const open = async () => PgStore.open(await queue.connect(4), { schema: queue.schema, clock, pollMs: 200 });
    let store = await open();
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = await open();
        return store;
      },
      async projections() {
        const out: Record<string, [string, unknown][]> = {};
        for (const p of PROJECTIONS) out[p.name] = await projectionRecords(store.sql, p.name);
        return out;
      },
      async dispose() {
        await store.close().catch(() => {});
        await queue.drop();
      },
    };
  },
});
