// The data directory: where it is, what is in it, and whether it is safe to use.
//
// Anyone who can change the data directory can make our workers run their commands, so it is
// checked the way OpenSSH's StrictModes checks ~/.ssh, and it is opened once, without following
// a symbolic link: everything in it (database, socket, job output, worker.log) is then reached
// through that open handle (/proc/self/fd/<fd>/...), so what was checked is what is used, even
// if the path is made to point elsewhere a moment later. Linux only (/proc).
import { chmodSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, realpathSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { environmentError, QueuectlError } from './errors.ts';

export interface Home {
  /** The directory as the user named it: what messages show. */
  dir: string;
  /** Where its parts are: by name from resolveHome; through the open handle `fd` once prepareHome ran. */
  db: string;
  socket: string;
  logs: string;
  workerLog: string;
  fd?: number;
}

const parts = (dir: string) => ({ db: join(dir, 'db'), socket: join(dir, 'host.sock'), logs: join(dir, 'logs'), workerLog: join(dir, 'worker.log') });

export const resolveHome = (flag?: string): Home => {
  const dir = resolve(flag ?? process.env.QUEUECTL_HOME ?? join(homedir(), '.queuectl'));
  return { dir, ...parts(dir) };
};

const OURS = new Set(['db', 'host.sock', 'logs', 'worker.log']);

const uid = process.getuid!();
const STICKY = 0o1000;

let startUmask: number | undefined;
/**
 * From the first use of a data directory on, everything queuectl creates is for the user only,
 * whatever the umask: LevelDB creates its files itself, lazily, from its own threads, so the
 * process's umask is the one sure way. Returns the umask queuectl was started with: the jobs
 * run with that one (see JobRunner), not with ours.
 */
export const privateUmask = (): number => (startUmask ??= process.umask(0o077));

/** Real path of a data directory -> its open handle: one per directory for the life of the process. */
const handles = new Map<string, number>();
/** An open handle -> the data directory as the user named it: what messages show. */
const named = new Map<number, string>();

/**
 * A text (an error, a job's last_error) with the paths reached through a data directory's
 * handle (/proc/self/fd/<fd>/...) shown as the user named them.
 */
export const showPaths = (text: string): string => text.replace(/\/proc\/self\/fd\/(\d+)/g, (path, fd: string) => named.get(Number(fd)) ?? path);

/**
 * Open the data directory (created 0700 on first use) and refuse it, with one line naming the
 * folder and the fix, unless it is safe: its parents, the directory itself, and db/ and logs/
 * in it. Returns the Home whose paths go through the open handle.
 */
export const prepareHome = (home: Home): Home => {
  try {
    return bindHome(home);
  } catch (e) {
    throw environmentError(e, 'use the data directory', home.dir) ?? e; // EACCES, ENOTDIR, EROFS, ENOSPC on the way
  }
};

const bindHome = (home: Home): Home => {
  privateUmask();
  const real = join(checkedParent(home.dir), basename(home.dir));
  let fd = handles.get(real);
  if (fd === undefined) {
    fd = openDataDir(real, home.dir);
    handles.set(real, fd);
    named.set(fd, home.dir);
  }
  const st = fstatSync(fd);
  checkOwnership(home.dir, st, 'data directory');
  const via = `/proc/self/fd/${fd}`;
  const bound: Home = { dir: home.dir, ...parts(via), fd };
  const strangers = readdirSync(via).filter((name) => !OURS.has(name));
  if (strangers.length > 0 && !lstatSync(bound.db, { throwIfNoEntry: false })) {
    throw new QueuectlError(
      'QUEUECTL_NOT_A_DATA_DIR',
      `${home.dir} is not a queuectl data directory (it holds ${strangers.slice(0, 3).join(', ')}${strangers.length > 3 ? ', ...' : ''}); use an empty or new directory with --home`,
    );
  }
  // Made here, 0700, before LevelDB or a job's output would make them with whatever mode.
  ownFolder(bound.db, join(home.dir, 'db'));
  ownFolder(bound.logs, join(home.dir, 'logs'));
  return bound;
};

const O_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

const openDataDir = (real: string, dir: string): number => {
  for (let created = false; ; created = true) {
    try {
      return openSync(real, O_DIR);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !created) {
        makeFolder(real);
        continue;
      }
      if (code === 'ENOTDIR' || code === 'ELOOP') {
        if (lstatSync(real).isSymbolicLink()) {
          throw unsafe(`the data directory ${dir} is a symbolic link (its target could be swapped); point --home (or QUEUECTL_HOME) at the directory it links to`);
        }
        throw new QueuectlError('QUEUECTL_NOT_A_DATA_DIR', `${dir} is not a directory; point --home (or QUEUECTL_HOME) at a directory`);
      }
      throw e;
    }
  }
};

/**
 * The real path of the folder that holds the data directory, with every folder on it checked
 * from / down the way OpenSSH's StrictModes does: each owned by root or by us, and nobody else
 * can write to it unless it is sticky (/tmp), or they could rename the data directory away and
 * put theirs in its place. A folder checked can then no longer change under us, so each check
 * holds for the ones below. Missing folders are made (0700) below checked ones; a symbolic link
 * (in a folder only root or we can change) is followed, and where it leads is checked from /.
 */
const checkedParent = (dir: string): string => {
  let path = dirname(dir);
  let end = 0; // where the folder's path ends in `path`: 0 for /, -1 for all of it
  for (;;) {
    const folder = end === 0 ? '/' : end === -1 ? path : path.slice(0, end);
    let st = lstatSync(folder, { throwIfNoEntry: false });
    if (!st) {
      makeFolder(folder);
      st = lstatSync(folder);
    }
    if (st.isSymbolicLink()) {
      path = join(realpathSync.native(folder), path.slice(folder.length));
      end = 0;
      continue;
    }
    const above = `the folder ${folder} above the data directory ${dir}`;
    // a file on the way is the machine's ENOTDIR, as opening through it would be: exit 1 (prepareHome)
    if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, '${folder}'`), { code: 'ENOTDIR' });
    if (st.uid !== 0 && st.uid !== uid) {
      throw unsafe(`${above} belongs to another user (uid ${st.uid}), who could swap the data directory; use a data directory under folders that only you or root can change (--home)`);
    }
    if ((st.mode & 0o022) !== 0 && (st.mode & STICKY) === 0) {
      throw unsafe(`${above} is writable by group or others without the sticky bit (mode ${(st.mode & 0o777).toString(8)}), so they could swap the data directory; fix it with: chmod go-w ${folder} (or use --home elsewhere)`);
    }
    if (end === -1) return path;
    end = path.indexOf('/', end + 1);
  }
};

/**
 * db/ or logs/: made 0700 when missing; otherwise a real directory of ours. Group or other bits
 * (an older queuectl left them to the umask) are removed: the folder is ours, just checked, in a
 * directory nobody else can enter.
 */
const ownFolder = (path: string, shown: string): void => {
  let st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) {
    makeFolder(path);
    st = lstatSync(path);
  }
  if (!st.isDirectory()) throw unsafe(`${shown} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}; queuectl did not put it there: move it away`);
  if (st.uid !== uid) throw unsafe(`the folder ${shown} belongs to another user (uid ${st.uid}); queuectl did not put it there: move it away`);
  if ((st.mode & 0o077) !== 0) chmodSync(path, 0o700);
};

/** 0700; another queuectl starting at the same moment may have made it first (it is checked after). */
const makeFolder = (path: string): void => {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
};

const unsafe = (message: string): QueuectlError => new QueuectlError('QUEUECTL_UNSAFE_PERMISSIONS', message);

/** Ours alone: owned by us, and no permission bits for group or others. */
export const checkOwnership = (path: string, st: Pick<Stats, 'uid' | 'mode' | 'isDirectory' | 'isSymbolicLink'>, what: string): void => {
  // a link's own mode is always 777: chmod would change its target, never the link
  if (st.isSymbolicLink()) throw unsafe(`the ${what} ${path} is a symbolic link; queuectl did not put it there: move it away`);
  if (st.uid !== uid) {
    throw unsafe(`the ${what} ${path} belongs to another user (uid ${st.uid}); use a directory of your own`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw unsafe(
      `the ${what} ${path} is ${st.mode & 0o022 ? 'writable' : 'readable'} by group or others (mode ${(st.mode & 0o777).toString(8)}); fix it with: chmod ${st.isDirectory() ? 700 : 600} ${path}`,
    );
  }
};
