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

const FIELDS = ['id', 'command', 'max_retries', 'priority', 'run_at', 'timeout_seconds', 'cwd'] as const;
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

const invalid = (where: string, message: string): never => {
  throw new QueuectlError('QUEUECTL_INVALID_INPUT', `${where}${message}`);
};

export const checkJobId = (id: unknown, where = ''): string => {
  if (typeof id !== 'string' || !JOB_ID_PATTERN.test(id)) {
    invalid(where, `invalid job id ${JSON.stringify(id)}: use 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit`);
  }
  return id as string;
};

export const parseIsoTime = (value: unknown, what: string, where = ''): number => {
  const ms = typeof value === 'string' && ISO_TIME.test(value.trim()) ? Date.parse(value.trim()) : Number.NaN;
  if (!Number.isFinite(ms)) invalid(where, `${what} ${JSON.stringify(value)} is not an ISO 8601 time; use e.g. 2026-11-22T10:00:00Z`);
  return ms;
};

const integer = (value: unknown, field: string, min: number, where: string): number => {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 2 ** 31 - 1) {
    invalid(where, `${field} must be an integer${min === 0 ? ' >= 0' : ''}, got ${JSON.stringify(value)}`);
  }
  return value as number;
};

/** The fields of a JobSpec: what the queue stores and what a client sends the host. */
const SPEC_FIELDS = ['id', 'command', 'cwd', 'priority', 'maxRetries', 'runAt', 'timeoutMs'] as const;
const MAX_TIME_MS = 8.64e15; // the largest time a Date can hold

/**
 * The rules every job obeys, on the form the queue stores. The CLI's parseJobSpec ends here and
 * decide() checks every enqueue with it, so a client that skips the CLI (anything on the host's
 * socket) meets exactly the rules a user of the CLI meets. Returns a copy holding only the fields.
 */
export const checkJobSpec = (spec: unknown, where = ''): JobSpec => {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    return invalid(where, `a job must be an object with the fields ${SPEC_FIELDS.join(', ')}, got ${JSON.stringify(spec)}`);
  }
  const s = spec as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (!(SPEC_FIELDS as readonly string[]).includes(key)) invalid(where, `unknown job field '${key}'; valid fields: ${SPEC_FIELDS.join(', ')}`);
  }
  const { command, cwd, priority, maxRetries, runAt, timeoutMs } = s;
  if (typeof command !== 'string' || command.trim() === '') invalid(where, `a job needs a non-empty "command" string`);
  const id = checkJobId(s.id, where);
  if (typeof cwd !== 'string' || !cwd.startsWith('/')) invalid(where, `cwd must be an absolute path, got ${JSON.stringify(cwd)}`);
  if (typeof priority !== 'number' || !Number.isInteger(priority) || Math.abs(priority) > 2 ** 31 - 1) {
    invalid(where, `priority must be an integer (lower runs first), got ${JSON.stringify(priority)}`);
  }
  if (maxRetries !== null) integer(maxRetries, 'max_retries', 0, where);
  if (runAt !== null && (typeof runAt !== 'number' || !Number.isInteger(runAt) || Math.abs(runAt) > MAX_TIME_MS)) {
    invalid(where, `run_at must be a time (milliseconds since 1970), got ${JSON.stringify(runAt)}`);
  }
  if (timeoutMs !== null && (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs <= 0)) {
    invalid(where, `the timeout must be a whole number of milliseconds > 0, got ${JSON.stringify(timeoutMs)}`);
  }
  return {
    id,
    command: command as string,
    cwd: cwd as string,
    priority: priority as number,
    maxRetries: maxRetries as number | null,
    runAt: runAt as number | null,
    timeoutMs: timeoutMs as number | null,
  };
};

const seconds = (value: unknown, field: string, where: string): number => {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) invalid(where, `${field} must be a number > 0, got ${JSON.stringify(value)}`);
  return Math.round((value as number) * 1000);
};

/**
 * Validate one job as given in JSON (snake_case fields, as users write them).
 * `where` prefixes messages (e.g. "line 7: ") so a bad line in a file is named.
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
  // what the user wrote, turned into the stored form (names, times, units); the rules are checkJobSpec's
  const given = (v: unknown): boolean => v !== undefined && v !== null;
  return checkJobSpec(
    {
      id: input.id === undefined ? defaults.newId() : input.id,
      command: input.command,
      cwd: input.cwd === undefined ? defaults.cwd : input.cwd,
      priority: input.priority === undefined ? 0 : input.priority,
      maxRetries: given(input.max_retries) ? input.max_retries : null,
      runAt: given(input.run_at) ? parseIsoTime(input.run_at, 'run_at', where) : null,
      timeoutMs: given(input.timeout_seconds) ? seconds(input.timeout_seconds, 'timeout_seconds', where) : null,
    },
    where,
  );
};
