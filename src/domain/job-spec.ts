import { posix } from 'node:path';
import { QueuectlError } from '../errors.ts';

/** A validated enqueue request: what JobEnqueued records. */
export interface JobSpec {
  id: string;
  command: string;
  cwd: string;
  priority: number;
  maxRetries: number | null;
  runAt: number | null;
  timeoutMs: number | null;
}

export interface SpecDefaults {
  cwd: string;
  newId: () => string;
}

// The limits of a job, wherever it comes from (an argument, a file, a client of the host).
// Each is what can still run or be stored: past it, a job could never start or would break a
// computed time, so it is refused at enqueue rather than retried into the DLQ.
/** `sh -c <command>` passes the command as one argument: Linux's MAX_ARG_STRLEN (128 KiB) less its NUL (E2BIG past it). */
export const MAX_COMMAND_BYTES = 131_071;
/** PATH_MAX (4096) less its NUL: a longer working directory cannot be entered. */
export const MAX_CWD_BYTES = 4095;
/** Priorities and retry counts are 32-bit integers (the runnable index stores priority in 32 bits). */
export const INT32_MIN = -(2 ** 31);
export const INT32_MAX = 2 ** 31 - 1;
/** A timeout is a timer of whole milliseconds: at least 1 ms, at most Node's longest timer (2^31-1 ms, about 24.8 days). */
export const MIN_TIMEOUT_MS = 1;
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/** Every time queuectl stores (run_at, retry and lease times) lies in 1970-01-01 to 9999-12-31, so it prints as ISO 8601 and sorts in the indexes. */
export const LATEST_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * One enqueue (a file, an array, what a client sends the host) carries at most this much: the
 * jobs go to the host as one message and are appended in one batch, so its size is bounded
 * (measured: a million short jobs, a 30 MiB NDJSON file, are ~146 MiB of JSON, ~179 MiB by
 * checkBatchSize's count).
 */
export const MAX_BATCH_BYTES = 256 * 1024 * 1024;
/** What one job adds to a batch besides its command, cwd and id: field names and numbers. */
const JOB_OVERHEAD_BYTES = 128;

const FIELDS = ['id', 'command', 'max_retries', 'priority', 'run_at', 'timeout_seconds', 'cwd'] as const;
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-](\d{2}):?(\d{2}))?)?$/;

const invalid = (where: string, message: string): never => {
  throw new QueuectlError('QUEUECTL_INVALID_INPUT', `${where}${message}`);
};

export const checkJobId = (id: unknown, where = ''): string => {
  if (typeof id !== 'string' || !JOB_ID_PATTERN.test(id)) {
    invalid(where, `invalid job id ${JSON.stringify(id)}: use 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit`);
  }
  return id as string;
};

export const checkCommand = (command: unknown, where = ''): string => {
  if (typeof command !== 'string' || command.trim() === '') return invalid(where, 'a job needs a non-empty "command" string');
  if (command.includes('\0')) invalid(where, 'the command contains a NUL byte, which no command line can hold; remove it');
  const bytes = Buffer.byteLength(command);
  if (bytes > MAX_COMMAND_BYTES) {
    invalid(where, `the command is ${bytes} bytes, more than the ${MAX_COMMAND_BYTES} bytes (128 KiB) the kernel passes to a shell; put a long script in a file and enqueue 'sh script.sh'`);
  }
  return command;
};

export const checkCwd = (cwd: unknown, where = ''): string => {
  if (typeof cwd !== 'string' || !cwd.startsWith('/')) return invalid(where, `cwd must be an absolute path, got ${JSON.stringify(cwd)}`);
  if (cwd.includes('\0')) invalid(where, 'cwd contains a NUL byte, which no path can hold');
  if (Buffer.byteLength(cwd) > MAX_CWD_BYTES) invalid(where, `cwd is longer than ${MAX_CWD_BYTES} bytes (PATH_MAX), so no process can enter it`);
  return cwd;
};

const isInt32 = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= INT32_MIN && n <= INT32_MAX;

export const checkPriority = (priority: unknown, where = ''): number => {
  if (!isInt32(priority)) invalid(where, `priority must be an integer from ${INT32_MIN} to ${INT32_MAX} (lower runs first), got ${JSON.stringify(priority)}`);
  return priority as number;
};

export const checkMaxRetries = (maxRetries: unknown, where = ''): number => {
  if (!isInt32(maxRetries) || maxRetries < 0) invalid(where, `max_retries must be an integer >= 0 (at most ${INT32_MAX}), got ${JSON.stringify(maxRetries)}`);
  return maxRetries as number;
};

export const checkTime = (ms: unknown, what: string, where = ''): number => {
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > LATEST_TIME_MS) {
    invalid(where, `${what} must be a time from 1970-01-01 to 9999-12-31, got ${JSON.stringify(ms)}`);
  }
  return ms as number;
};

const daysIn = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate();

/**
 * An ISO 8601 time whose every field is in range: Date.parse rolls 2026-02-30 over to March,
 * so the fields are checked as written (a date that does not exist is refused, not moved).
 */
export const parseIsoTime = (value: unknown, what: string, where = ''): number => {
  const m = typeof value === 'string' ? ISO_TIME.exec(value.trim()) : null;
  if (!m) return invalid(where, `${what} ${JSON.stringify(value)} is not an ISO 8601 time; use e.g. 2026-11-22T10:00:00Z`);
  const [year, month, day, hour = 0, minute = 0, second = 0, , , offHour = 0, offMinute = 0] = m.slice(1).map((f) => (f === undefined ? undefined : Number(f)));
  const exists = month! >= 1 && month! <= 12 && day! >= 1 && day! <= daysIn(year!, month!) && hour! <= 23 && minute! <= 59 && second! <= 59 && offHour! <= 23 && offMinute! <= 59;
  if (!exists) invalid(where, `${what} ${JSON.stringify(value)} is not a real date and time (month 1-12, day within the month, hour 0-23, minute and second 0-59)`);
  return checkTime(Date.parse((value as string).trim()), what, where);
};

/** Seconds as users write them, to whole milliseconds: a value that would round to 0 ms is refused, never stored as 0. */
export const timeoutMsFromSeconds = (seconds: unknown, what = 'timeout_seconds', where = ''): number => {
  const ms = typeof seconds === 'number' && Number.isFinite(seconds) ? Math.round(seconds * 1000) : Number.NaN;
  if (!(ms >= MIN_TIMEOUT_MS && ms <= MAX_TIMEOUT_MS)) {
    invalid(where, `${what} must be a number > 0, from 0.001 to ${MAX_TIMEOUT_MS / 1000} seconds (about 24.8 days), got ${JSON.stringify(seconds)}`);
  }
  return ms;
};

const checkTimeoutMs = (ms: unknown, where: string): number => {
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < MIN_TIMEOUT_MS || ms > MAX_TIMEOUT_MS) {
    invalid(where, `timeout must be from ${MIN_TIMEOUT_MS} to ${MAX_TIMEOUT_MS} ms, got ${JSON.stringify(ms)}`);
  }
  return ms as number;
};

/** Refuse a batch of jobs larger than MAX_BATCH_BYTES (counted in UTF-16 units: cheap, and within 3x of the bytes). */
export const checkBatchSize = (specs: readonly JobSpec[]): void => {
  let size = 0;
  for (const s of specs) size += s.command.length + s.cwd.length + s.id.length + JOB_OVERHEAD_BYTES;
  if (size > MAX_BATCH_BYTES) {
    invalid('', `these ${specs.length} jobs come to about ${Math.ceil(size / 1024 / 1024)} MiB, more than the ${MAX_BATCH_BYTES / 1024 / 1024} MiB one enqueue may carry; enqueue them in parts`);
  }
};

/** A relative path is taken from `base`; anything else is left for checkCwd to judge. */
const resolvePath = (base: string, cwd: unknown): unknown =>
  typeof cwd === 'string' && cwd !== '' && !cwd.startsWith('/') && base.startsWith('/') ? posix.resolve(base, cwd) : cwd;

/** The fields of a JobSpec: what the queue stores and what a client sends the host. */
const SPEC_FIELDS = ['id', 'command', 'cwd', 'priority', 'maxRetries', 'runAt', 'timeoutMs'] as const;

/**
 * The rules every job obeys, on the form the queue stores (what a client sends the host, what
 * decide appends): the same limits as parseJobSpec, so no path around the CLI (anything on the
 * host's socket) stores a job that could never run. Returns a copy holding only the fields.
 */
export const checkJobSpec = (spec: unknown, where = ''): JobSpec => {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    return invalid(where, `a job must be an object with the fields ${SPEC_FIELDS.join(', ')}, got ${JSON.stringify(spec)}`);
  }
  const s = spec as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (!(SPEC_FIELDS as readonly string[]).includes(key)) invalid(where, `unknown job field '${key}'; valid fields: ${SPEC_FIELDS.join(', ')}`);
  }
  return {
    id: checkJobId(s.id, where),
    command: checkCommand(s.command, where),
    cwd: checkCwd(s.cwd, where),
    priority: checkPriority(s.priority, where),
    maxRetries: s.maxRetries === null ? null : checkMaxRetries(s.maxRetries, where),
    runAt: s.runAt === null ? null : checkTime(s.runAt, 'run_at', where),
    timeoutMs: s.timeoutMs === null ? null : checkTimeoutMs(s.timeoutMs, where),
  };
};

/**
 * Validate one job as given in JSON (snake_case fields, as users write them).
 * `where` prefixes messages (e.g. "line 7: ") so a bad line in a file is named.
 * A relative `cwd` is taken from `defaults.cwd` (the directory enqueue runs in), as a
 * relative `--cwd` is.
 */
export const parseJobSpec = (raw: unknown, defaults: SpecDefaults, where = ''): JobSpec => {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return invalid(where, `a job must be a JSON object like {"command":"echo hi"}, got ${JSON.stringify(raw)}`);
  }
  const input = raw as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!(FIELDS as readonly string[]).includes(key)) {
      invalid(where, `unknown job field '${key}'; valid fields: ${FIELDS.join(', ')}`);
    }
  }
  const command = checkCommand(input.command, where);
  const id = input.id === undefined ? defaults.newId() : checkJobId(input.id, where);
  const cwd = checkCwd(input.cwd === undefined ? defaults.cwd : resolvePath(defaults.cwd, input.cwd), where);
  const priority = input.priority === undefined ? 0 : checkPriority(input.priority, where);
  const maxRetries = input.max_retries === undefined || input.max_retries === null ? null : checkMaxRetries(input.max_retries, where);
  const runAt = input.run_at === undefined || input.run_at === null ? null : parseIsoTime(input.run_at, 'run_at', where);
  const timeoutMs = input.timeout_seconds === undefined || input.timeout_seconds === null ? null : timeoutMsFromSeconds(input.timeout_seconds, 'timeout_seconds', where);
  return { id, command, cwd, priority, maxRetries, runAt, timeoutMs };
};
