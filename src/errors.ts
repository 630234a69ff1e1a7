// Every refusal queuectl makes carries a stable code, so tests and scripts match on codes,
// not on wording, and an exit status: 2 for bad usage or input, 1 for an operation that failed
// or an environment that does not allow it (QUEUECTL_ENVIRONMENT: a full disk, permissions).
export type ErrorCode =
  | 'QUEUECTL_INVALID_INPUT'
  | 'QUEUECTL_UNKNOWN_COMMAND'
  | 'QUEUECTL_DUPLICATE_ID'
  | 'QUEUECTL_UNKNOWN_JOB'
  | 'QUEUECTL_WRONG_STATE'
  | 'QUEUECTL_NOT_RUNNABLE'
  | 'QUEUECTL_STALE_ATTEMPT'
  | 'QUEUECTL_UNKNOWN_CONFIG_KEY'
  | 'QUEUECTL_INVALID_CONFIG_VALUE'
  | 'QUEUECTL_NOT_A_DATA_DIR'
  | 'QUEUECTL_UNSAFE_PERMISSIONS'
  | 'QUEUECTL_PROTOCOL_MISMATCH'
  | 'QUEUECTL_HOST_LOST'
  | 'QUEUECTL_BUSY'
  | 'QUEUECTL_TIMEOUT'
  | 'QUEUECTL_DAMAGED'
  | 'QUEUECTL_ENVIRONMENT'
  | 'QUEUECTL_DATABASE_UNAVAILABLE'
  | 'QUEUECTL_FAILED';

const USAGE_CODES = new Set<ErrorCode>([
  'QUEUECTL_INVALID_INPUT',
  'QUEUECTL_NOT_A_DATA_DIR',
  'QUEUECTL_UNKNOWN_COMMAND',
  'QUEUECTL_UNKNOWN_CONFIG_KEY',
  'QUEUECTL_INVALID_CONFIG_VALUE',
]);

export class QueuectlError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'QueuectlError';
    this.code = code;
  }
  get exitCode(): 1 | 2 {
    return USAGE_CODES.has(this.code) ? 2 : 1;
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export const fail = (code: ErrorCode, message: string): never => {
  throw new QueuectlError(code, message);
};

export const isQueuectlError = (e: unknown): e is QueuectlError =>
  e instanceof QueuectlError ||
  (typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string' &&
    (e as { code: string }).code.startsWith('QUEUECTL_'));

/** What to do about an error of the machine, by errno. */
const REMEDIES: Record<string, string> = {
  ENOSPC: 'free some disk space',
  EDQUOT: 'free some space (disk quota exceeded)',
  EACCES: 'check its permissions and owner',
  EPERM: 'check its permissions and owner',
  EROFS: 'use a directory on a writable file system',
  EISDIR: 'give a file',
  ENOTDIR: 'a part of the path is a file, not a directory',
  ENOENT: 'check the path',
  EEXIST: 'something else is in the way; move it',
  EIO: 'the disk reported an I/O error; check it (dmesg)',
  EMFILE: 'too many open files; raise the limit (ulimit -n)',
  ENFILE: 'too many open files on the machine',
  ELOOP: 'the path has a symbolic link loop',
  ENAMETOOLONG: 'use a shorter path',
};

/** LevelDB reports errno as text ("IO error: <file>: No space left on device"). */
const LEVELDB_ERRNO: [RegExp, string][] = [
  [/No space left on device/i, 'ENOSPC'],
  [/Disk quota exceeded/i, 'EDQUOT'],
  [/Permission denied/i, 'EACCES'],
  [/Operation not permitted/i, 'EPERM'],
  [/Read-only file system/i, 'EROFS'],
  [/Is a directory/i, 'EISDIR'],
  [/Not a directory/i, 'ENOTDIR'],
  [/Input\/output error/i, 'EIO'],
  [/Too many open files/i, 'EMFILE'],
];

/**
 * The errno of an error of the machine (node:fs, or LevelDB's text), or null for anything
 * else: a bug stays a bug ("unexpected error"), never dressed up as a full disk.
 */
export const errnoOf = (e: unknown): string | null => {
  for (let err = e as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; err && depth < 3; err = err.cause as typeof err, depth++) {
    if (typeof err.code === 'string' && err.code in REMEDIES) return err.code;
    if (typeof err.message === 'string') for (const [re, code] of LEVELDB_ERRNO) if (re.test(err.message)) return code;
  }
  return null;
};

/** "no space left on device", from node:fs's "ENOSPC: no space left on device, write" or LevelDB's text. */
export const errnoReason = (e: unknown, errno: string): string => {
  const message = String((e as Error)?.message ?? e);
  if (errno === 'EISDIR') return 'it is a directory'; // node:fs says "illegal operation on a directory"
  const node = /^E[A-Z]+: ([^,]+)/.exec(message)?.[1];
  const level = LEVELDB_ERRNO.find(([, code]) => code === errno)?.[0].exec(message)?.[0];
  return (node ?? level ?? errno).toLowerCase();
};

/**
 * One line for an error of the machine: what could not be done, where, why, and what to do
 * (QUEUECTL_ENVIRONMENT, exit 1). Null when `e` is not one: the caller rethrows it as it is.
 */
export const environmentError = (e: unknown, what: string, path: string): QueuectlError | null => {
  if (isQueuectlError(e)) return null;
  const errno = errnoOf(e);
  if (errno === null) return null;
  return new QueuectlError('QUEUECTL_ENVIRONMENT', `cannot ${what} ${path}: ${errnoReason(e, errno)}; ${REMEDIES[errno]}`);
};
