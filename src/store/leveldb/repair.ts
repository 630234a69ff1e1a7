// `queuectl repair`: bring a damaged database back with every event that survives, and say
// exactly which positions were lost. LevelDB's own repair (RepairDB) does the salvage: it turns
// every write-ahead log into a table (damaged records blanked first: it does not check their
// checksums), keeps every readable entry of every table, and writes a new MANIFEST and CURRENT. What it cannot know is what queuectl's
// log should hold; that is checked here: every event decodes, positions run from 0, and any
// gap is recorded in meta as lost (never renumbered: `events --from N` readers keep their place).
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { PROJECTIONS } from '../../../projections/index.ts';
import { environmentError, QueuectlError } from '../../errors.ts';
import { blankDamagedLogRecords, holdsNoDatabase, lockHolder, readWalEnd, WAL_END_FILE } from './leveldb-files.ts';
import { FORMAT, LogStore } from './store.ts';

export interface RepairReport {
  /** The copy of the database as it was before the repair. */
  backup: string;
  /** Events in the log after the repair. */
  kept: number;
  /** Positions found lost by this repair, as ranges [from, to]. */
  lost: [number, number][];
  /** How many positions those ranges hold. */
  lostCount: number;
}

const stamp = (): string => new Date().toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');

/** `shown`: the directory as messages name it (`dbDir` may go through the data directory's handle). */
export const repairDatabase = async (dbDir: string, shown = dbDir): Promise<RepairReport> => {
  // db/ exists from the first use of a data directory on (made 0700 before LevelDB runs): an
  // empty one (or a creation cut short) holds no database, and RepairDB would make one without
  // queuectl's format mark, which every command would then refuse.
  if (!existsSync(dbDir) || holdsNoDatabase(readdirSync(dbDir))) throw new QueuectlError('QUEUECTL_FAILED', `nothing to repair: there is no database in ${shown}`);
  const holder = lockHolder(join(dbDir, 'LOCK'));
  if (holder !== null) {
    throw new QueuectlError('QUEUECTL_BUSY', `process ${holder} has the database in ${shown} open; stop it first (queuectl worker stop), then run queuectl repair again`);
  }
  const walEnd = readWalEnd(dbDir);
  const backup = join(dirname(dbDir), `${basename(dbDir)}.damaged-${stamp()}`);
  try {
    cpSync(dbDir, backup, { recursive: true, errorOnExist: true, force: false, preserveTimestamps: true });
  } catch (e) {
    rmSync(backup, { recursive: true, force: true }); // a half copy is no copy
    throw environmentError(e, 'keep a copy of the database in', join(dirname(shown), basename(backup))) ?? e; // ENOSPC
  }
  // The note describes logs RepairDB is about to turn into tables.
  rmSync(join(dbDir, WAL_END_FILE), { force: true });

  blankDamagedLogRecords(dbDir);
  const { ClassicLevel } = await import('classic-level');
  await ClassicLevel.repair(dbDir);
  const db = new ClassicLevel<string, string>(dbDir);
  await db.open({ createIfMissing: false });
  let lost: [number, number][];
  let kept = 0;
  try {
    const meta = db.sublevel<string, unknown>('meta', { valueEncoding: 'json' });
    const log = db.sublevel<string, string>('log', { valueEncoding: 'utf8' });
    const [format, known] = (await meta.getMany(['format', 'holes'])) as [unknown, [number, number][] | undefined];
    const holes = known ?? [];
    lost = [];
    const undecodable: string[] = [];
    let next = 0;
    const gap = (from: number, to: number) => {
      if (from <= to && !holes.some(([a, b]) => a <= from && to <= b)) lost.push([from, to]);
    };
    for await (const [key, raw] of log.iterator()) {
      const pos = /^[0-9a-f]{12}$/.test(key) ? Number.parseInt(key, 16) : Number.NaN;
      let ok = false;
      try {
        const e = JSON.parse(raw) as { pos?: unknown; type?: unknown };
        ok = e?.pos === pos && typeof e.type === 'string';
      } catch {
        // counted as lost below
      }
      if (!ok) {
        undecodable.push(key);
        continue;
      }
      gap(next, pos - 1);
      next = pos + 1;
      kept++;
    }
    // events acknowledged after the last survivor (a cut write-ahead log): their positions stay lost
    const end = Math.max(walEnd?.pos ?? -1, holes.at(-1)?.[1] ?? -1);
    gap(next, end);
    const allHoles = [...holes, ...lost].sort((a, b) => a[0] - b[0]);
    await db.batch([
      ...undecodable.map((key) => ({ type: 'del' as const, key: log.prefix + key })),
      { type: 'put' as const, key: `${meta.prefix}holes`, value: JSON.stringify(allHoles) },
      // the meta entries may have been in a table that was lost
      ...(format === undefined && kept > 0 ? [{ type: 'put' as const, key: `${meta.prefix}format`, value: JSON.stringify(FORMAT) }] : []),
    ], { sync: true });
  } catch (e) {
    await db.close();
    throw e;
  }
  // Projections are rebuilt from the surviving log, then checked against a second rebuild.
  const store = await LogStore.open(db, { projections: PROJECTIONS });
  try {
    await store.rebuild();
    const { differences } = await store.verify();
    if (differences.length > 0) throw new QueuectlError('QUEUECTL_FAILED', `the projections rebuilt after the repair differ from the log (${differences[0]}); this is a bug: please report it`);
  } finally {
    await store.close();
  }
  return { backup, kept, lost, lostCount: lost.reduce((n, [a, b]) => n + b - a + 1, 0) };
};
