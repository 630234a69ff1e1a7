// Opening a data directory's LevelDB store, for the process that becomes the host. Small and
// loaded with connect.ts: classic-level and the store's code are loaded only when called.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { QueuectlError } from '../../errors.ts';
import type { Store } from '../port.ts';

/**
 * Open the LevelDB store in `dir`. LevelDB opens on its own thread: `meanwhile` runs then (the
 * host loads its code on the main thread), and its result comes back with the store. A
 * directory another process holds fails with the cause whose code is LEVEL_LOCKED.
 */
export const openLevelBackend = async <T>(dir: string, meanwhile: () => Promise<T>): Promise<[Store, T]> => {
  const { ClassicLevel } = await import('classic-level');
  const db = new ClassicLevel<string, unknown>(dir);
  // createIfMissing only for a new database: classic-level then creates its directory with
  // node:fs/promises, which costs ~1 ms to load (see build.ts)
  const opening = db.open({ createIfMissing: !existsSync(join(dir, 'CURRENT')) }).then(() => null, (e: unknown) => ({ e }));
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
    throw new QueuectlError('QUEUECTL_NOT_A_DATA_DIR', `cannot open the queue database in ${dir}: ${cause?.message ?? (e as Error).message}`);
  }
  const [{ LevelStore }, extra] = loaded;
  try {
    return [await LevelStore.open(db as never), extra];
  } catch (e) {
    await db.close();
    throw e;
  }
};
