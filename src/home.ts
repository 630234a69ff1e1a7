// The data directory: where it is, what is in it, and whether it is safe to use.
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { environmentError, QueuectlError } from './errors.ts';

export interface Home {
  dir: string;
  db: string;
  socket: string;
  logs: string;
  workerLog: string;
}

export const resolveHome = (flag?: string): Home => {
  const dir = resolve(flag ?? process.env.QUEUECTL_HOME ?? join(homedir(), '.queuectl'));
  return { dir, db: join(dir, 'db'), socket: join(dir, 'host.sock'), logs: join(dir, 'logs'), workerLog: join(dir, 'worker.log') };
};

const OURS = new Set(['db', 'host.sock', 'logs', 'worker.log']);

/**
 * Create the directory (0700) on first use, and refuse one that is not ours: owned by another
 * user, writable by group or others (anyone could then make the queue run commands as us), or
 * holding files queuectl did not put there.
 */
export const prepareHome = (home: Home): void => {
  try {
    checkHome(home);
  } catch (e) {
    throw environmentError(e, 'use the data directory', home.dir) ?? e; // EACCES, ENOTDIR, EROFS, ENOSPC on the way
  }
};

const checkHome = (home: Home): void => {
  let st = statSync(home.dir, { throwIfNoEntry: false });
  if (!st) {
    try {
      mkdirSync(home.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      // A recursive mkdir reports ENOENT where a step failed with EROFS or EACCES: take the
      // first missing step alone to learn why.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      let first = home.dir;
      while (dirname(first) !== first && !existsSync(dirname(first))) first = dirname(first);
      mkdirSync(first, { mode: 0o700 });
      throw e;
    }
    st = statSync(home.dir);
  }
  if (!st.isDirectory()) {
    throw new QueuectlError('QUEUECTL_NOT_A_DATA_DIR', `${home.dir} is not a directory; point --home (or QUEUECTL_HOME) at a directory`);
  }
  checkOwnership(home.dir, st, 'data directory');
  const strangers = readdirSync(home.dir).filter((name) => !OURS.has(name));
  if (strangers.length > 0 && !statSync(home.db, { throwIfNoEntry: false })) {
    throw new QueuectlError(
      'QUEUECTL_NOT_A_DATA_DIR',
      `${home.dir} is not a queuectl data directory (it holds ${strangers.slice(0, 3).join(', ')}${strangers.length > 3 ? ', ...' : ''}); use an empty or new directory with --home`,
    );
  }
};

export const checkOwnership = (path: string, st: { uid: number; mode: number; isSocket?: () => boolean }, what: string): void => {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new QueuectlError('QUEUECTL_UNSAFE_PERMISSIONS', `the ${what} ${path} belongs to another user (uid ${st.uid}); use a directory of your own`);
  }
  if ((st.mode & 0o022) !== 0) {
    throw new QueuectlError(
      'QUEUECTL_UNSAFE_PERMISSIONS',
      `the ${what} ${path} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); fix it with: chmod ${st.isSocket?.() ? 600 : 700} ${path}`,
    );
  }
};
