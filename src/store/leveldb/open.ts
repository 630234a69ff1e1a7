// Opening a data directory's LevelDB store, for the process that becomes the host. Small and
// loaded with connect.ts: classic-level and the store's code are loaded only when called.
import { environmentError, QueuectlError } from '../../errors.ts';
import type { Store } from '../port.ts';
import { asDamage, inspectDatabase } from './leveldb-files.ts';

/**
 * Open the LevelDB store in `dir`. LevelDB opens on its own thread: `meanwhile` runs then (the
 * host loads its code on the main thread), and its result comes back with the store. A
 * directory another process holds fails with the cause whose code is LEVEL_LOCKED. `shown` is
 * the directory as messages name it (`dir` may be reached through the data directory's handle).
 */
export const openLevelBackend = async <T>(dir: string, shown: string, meanwhile: () => Promise<T>): Promise<[Store, T]> => {
  // A database is created only where there is none (db/ absent or empty); anything else
  // LevelDB must not open until it is known whole (see leveldb-files.ts).
  const { create } = inspectDatabase(dir, shown);
  const { ClassicLevel } = await import('classic-level');
  const db = new ClassicLevel<string, unknown>(dir);
  // createIfMissing only for a new database (LevelDB's default is true): classic-level then
  // also creates its directory with node:fs/promises, which costs ~1 ms to load (see build.ts)
  const opening = db.open({ createIfMissing: create }).then(() => null, (e: unknown) => ({ e }));
  let loaded: [typeof import('./level-store.ts'), T];
  try {
    loaded = await Promise.all([import('./level-store.ts'), meanwhile()]);
  } catch (e) {
    await opening;
    await db.close();
    throw e;
  }
  const failed = await opening;
  if (failed) {
    const e = failed.e;
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') throw cause;
    throw (
      asDamage(e, shown, dir) ??
      environmentError(cause ?? e, 'open the queue database in', shown) ?? // ENOSPC, EACCES, EROFS
      new QueuectlError('QUEUECTL_NOT_A_DATA_DIR', `cannot open the queue database in ${shown}: ${cause?.message ?? (e as Error).message}`)
    );
  }
  const [{ LevelStore }, extra] = loaded;
  try {
    return [await LevelStore.open(db as never, { name: shown }), extra];
  } catch (e) {
    await db.close();
    throw asDamage(e, shown, dir) ?? environmentError(e, 'open the queue database in', shown) ?? e; // its first writes: format, catch-up
  }
};
