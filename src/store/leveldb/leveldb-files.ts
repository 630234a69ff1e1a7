// What a LevelDB directory must hold before LevelDB may open it. LevelDB's own open is not safe
// over damage: with createIfMissing it writes a new, empty database over a directory whose
// CURRENT is missing (and deletes the table files it no longer knows), and without paranoid
// checks (classic-level has no such option) it skips a damaged record of its write-ahead log,
// logs "dropping N bytes" in db/LOG, and deletes that log: the damage is then out of sight for
// good. So queuectl looks first, and never lets LevelDB open what it finds damaged. The checks
// read CURRENT, the MANIFEST and the write-ahead log (*.log), which LevelDB keeps small (a new
// MANIFEST and a new log at every open; the log grows up to the 4 MB write buffer only in a
// long-running host): microseconds after a short command, a few ms once after a busy host.
import { readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoOf, QueuectlError } from '../../errors.ts';

/** Where queuectl notes, at each clean close, how its write-ahead log ended (see checkWalEnd). */
export const WAL_END_FILE = 'QUEUECTL_WAL_END';

export const damaged = (dir: string, what: string): QueuectlError =>
  new QueuectlError(
    'QUEUECTL_DAMAGED',
    `the queue database in ${dir} is damaged (${what}); run \`queuectl repair\` (it keeps a copy first, see README "When the data directory is damaged")`,
  );

/**
 * A LevelDB error that means its files are damaged (rather than locked, or not permitted).
 * LevelDB names files under `location`, the path it was opened by (the data directory's
 * handle): the message names them under `dir`, as the user gave it.
 */
export const asDamage = (e: unknown, dir: string, location = dir): QueuectlError | null => {
  const err = e as { message?: string; cause?: { message?: string } } | null;
  const message = [err?.message, err?.cause?.message].filter(Boolean).join(': ');
  const m = /(Corruption: .*|IO error: .*\.(?:ldb|sst|log)\b.*)$/m.exec(message);
  // "IO error: <table>: No space left on device" (an open that turns the log into a table on a
  // full disk) is the machine's, not damage: environmentError names it, and repair is no cure
  if (m && errnoOf(e) !== null) return null;
  return m ? damaged(dir, m[1]!.replace(/\s+/g, ' ').trim().replaceAll(location, dir)) : null;
};

// ---- CRC32C, as LevelDB stores it (util/crc32c.h: masked) ---------------------------------

let table: Int32Array | null = null;
const crcTable = (): Int32Array => {
  if (table) return table;
  table = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c;
  }
  return table;
};

const maskedCrc32c = (buf: Uint8Array, start: number, end: number): number => {
  const t = crcTable();
  let c = -1;
  for (let i = start; i < end; i++) c = t[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  const crc = (c ^ -1) >>> 0;
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
};

// ---- the log format (db/log_format.h), shared by the write-ahead log and the MANIFEST ------

const BLOCK = 32768;
const HEADER = 7;
const FULL = 1;
const FIRST = 2;
const MIDDLE = 3;
const LAST = 4;

/**
 * The damaged records of a file in LevelDB's log format: what is wrong with the first, and the
 * offset of each record whose checksum, length or type is bad (LevelDB's reader drops the rest
 * of that block, and so does this one). A record cut short by the end of the file is what a
 * writer that died mid-write leaves (never acknowledged), so it is not damage here; a
 * truncation of acknowledged records is caught by checkWalEnd.
 */
export const scanLog = (buf: Uint8Array): { first: string | null; bad: number[] } => {
  let first: string | null = null;
  const bad: number[] = [];
  const report = (what: string, at?: number) => {
    first ??= what;
    if (at !== undefined) bad.push(at);
  };
  let inRecord = false;
  for (let block = 0; block < buf.length; block += BLOCK) {
    const end = Math.min(block + BLOCK, buf.length);
    let at = block;
    while (end - at >= HEADER) {
      const length = buf[at + 4]! | (buf[at + 5]! << 8);
      const type = buf[at + 6]!;
      if (type === 0 && length === 0) break; // zero padding: LevelDB skips the rest of the block
      if (at + HEADER + length > end) {
        if (end !== buf.length) report(`bad record length at byte ${at}`, at);
        inRecord = false;
        break; // at the end of the file: cut short
      }
      const stored = (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
      if (maskedCrc32c(buf, at + 6, at + HEADER + length) !== stored) {
        report(`checksum mismatch at byte ${at}`, at);
        inRecord = false;
        break;
      }
      if (type === FULL || type === FIRST) {
        if (inRecord) report(`a record without its end before byte ${at}`);
        inRecord = type === FIRST;
      } else if (type === MIDDLE || type === LAST) {
        if (!inRecord) report(`a record without its start at byte ${at}`);
        inRecord = type === MIDDLE;
      } else {
        report(`unknown record type ${type} at byte ${at}`, at);
        inRecord = false;
        break;
      }
      at += HEADER + length;
    }
  }
  return { first, bad };
};

/** The process holding LevelDB's lock on `file` (a POSIX lock, listed in /proc/locks on Linux). */
export const lockHolder = (file: string): number | null => {
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st) return null;
  let locks: string;
  try {
    locks = readFileSync('/proc/locks', 'utf8');
  } catch {
    return null; // not Linux: no way to know here
  }
  const major = Math.floor(st.dev / 256) & 0xfff;
  const minor = (st.dev & 0xff) | ((Math.floor(st.dev / 4096) & ~0xff) >>> 0);
  const id = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  for (const line of locks.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[5] === id) return Number(f[4]);
  }
  return null;
};

const CREATION_FILE = /^(LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.dbtmp)$/;

const logNumber = (name: string): number | null => {
  const m = /^(\d+)\.log$/.exec(name);
  return m ? Number(m[1]) : null;
};

/**
 * Whether a database directory's files are no database (yet): none, or what LevelDB writes
 * while it creates one, before CURRENT (LOCK, then the first MANIFEST and CURRENT's temporary
 * file): another process is creating it now, or a creation was cut short. No data file
 * exists, so there is nothing to lose (or to repair); LevelDB's lock decides who creates it.
 */
export const holdsNoDatabase = (names: readonly string[]): boolean =>
  names.length === 0 || (!names.includes('CURRENT') && names.every((n) => CREATION_FILE.test(n)));

/**
 * Look at a database directory before opening it. Returns whether LevelDB may create a
 * database there: only when the directory is absent or empty. Throws QUEUECTL_DAMAGED for
 * anything LevelDB would open silently wrong (or create over).
 */
export const inspectDatabase = (dir: string, shown = dir): { create: boolean } => {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { create: true };
    throw e;
  }
  if (holdsNoDatabase(names)) return { create: true };
  try {
    inspectFiles(dir, names, shown);
  } catch (e) {
    // Another process has it open (creating it, or replacing its MANIFEST or log while we
    // read): what we saw was a moment of that, not damage. LevelDB's lock decides who goes on
    // (createIfMissing stays off), and this process looks again when its turn comes.
    if (readdirSync(dir).join('/') !== names.join('/') || lockHolder(join(dir, 'LOCK')) !== null) return { create: false };
    throw e;
  }
  return { create: false };
};

const inspectFiles = (dir: string, names: string[], shown: string): void => {
  if (!names.includes('CURRENT')) return fail(shown, "CURRENT is missing");
  const current = readFileSync(join(dir, 'CURRENT'), 'latin1');
  const manifest = /^(MANIFEST-\d+)\n$/.exec(current)?.[1];
  if (!manifest) return fail(shown, "CURRENT does not name a MANIFEST");
  if (!names.includes(manifest)) return fail(shown, `${manifest}, named by CURRENT, is missing`);
  for (const name of [manifest, ...names.filter((n) => logNumber(n) !== null)]) {
    const { first } = scanLog(readFileSync(join(dir, name)));
    if (first) return fail(shown, `${name}: ${first}`);
  }
  checkWalEnd(dir, names, shown);
};

const fail = (dir: string, what: string): never => {
  throw damaged(dir, what);
};

interface WalEnd {
  log: string;
  size: number;
  /** The last position durable when it was written. */
  pos: number;
}

export const readWalEnd = (dir: string): WalEnd | null => {
  let text: string;
  try {
    text = readFileSync(join(dir, WAL_END_FILE), 'utf8');
  } catch {
    return null;
  }
  // written without fsync: after a power loss it may be empty or old, never ahead of the log
  const m = /^(\d+\.log) (\d+) (-?\d+)\n$/.exec(text);
  return m ? { log: m[1]!, size: Number(m[2]), pos: Number(m[3]) } : null;
};

/**
 * A truncated write-ahead log reads as a shorter, valid one: LevelDB takes a cut record for a
 * writer that died mid-write. So each clean close notes the log's name and size (and the last
 * position); the next open checks that this log is still whole. A note older than the last
 * open names a log that a later open already turned into a table (a higher-numbered log then
 * exists): nothing to check.
 */
const checkWalEnd = (dir: string, names: string[], shown: string): void => {
  const end = readWalEnd(dir);
  if (!end) return;
  const number = logNumber(end.log)!;
  if (names.includes(end.log)) {
    const size = statSync(join(dir, end.log)).size;
    if (size < end.size) fail(shown, `${end.log} is cut short: ${size} of the ${end.size} bytes queuectl wrote; events up to position ${end.pos} were acknowledged`);
  } else if (!names.some((n) => (logNumber(n) ?? -1) > number)) {
    fail(shown, `${end.log} is missing; events up to position ${end.pos} were acknowledged`);
  }
};

/**
 * LevelDB's repair reads write-ahead logs without checking checksums (repair.cc says it does,
 * then passes false): a damaged record would come back as garbage. Zeroing its header makes
 * every reader skip the rest of its block, as LevelDB's checksumming recovery does.
 */
export const blankDamagedLogRecords = (dir: string): void => {
  for (const name of readdirSync(dir).filter((n) => logNumber(n) !== null)) {
    const path = join(dir, name);
    const buf = readFileSync(path);
    const { bad } = scanLog(buf);
    if (bad.length === 0) continue;
    for (const at of bad) buf.fill(0, at, at + HEADER);
    writeFileSync(path, buf);
  }
};

/** Note how the write-ahead log ends; called while the database is still open and idle. */
export const writeWalEnd = (dir: string, pos: number): void => {
  const names = readdirSync(dir);
  const last = names.map((n) => logNumber(n) ?? -1).reduce((a, b) => Math.max(a, b), -1);
  if (last < 0) return;
  const log = names.find((n) => logNumber(n) === last)!;
  const tmp = join(dir, `${WAL_END_FILE}.tmp`);
  writeFileSync(tmp, `${log} ${statSync(join(dir, log)).size} ${pos}\n`, { mode: 0o600 });
  renameSync(tmp, join(dir, WAL_END_FILE));
};
