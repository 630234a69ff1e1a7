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
  const { command } = input;
  if (typeof command !== 'string' || command.trim() === '') {
    invalid(where, `a job needs a non-empty "command" string`);
  }
  const id = input.id === undefined ? defaults.newId() : checkJobId(input.id, where);
  const cwd = input.cwd === undefined ? defaults.cwd : input.cwd;
  if (typeof cwd !== 'string' || !cwd.startsWith('/')) invalid(where, `cwd must be an absolute path, got ${JSON.stringify(cwd)}`);
  const priority = input.priority === undefined ? 0 : input.priority;
  if (typeof priority !== 'number' || !Number.isInteger(priority) || Math.abs(priority) > 2 ** 31 - 1) {
    invalid(where, `priority must be an integer (lower runs first), got ${JSON.stringify(priority)}`);
  }
  const maxRetries = input.max_retries === undefined || input.max_retries === null ? null : integer(input.max_retries, 'max_retries', 0, where);
  const runAt = input.run_at === undefined || input.run_at === null ? null : parseIsoTime(input.run_at, 'run_at', where);
  let timeoutMs: number | null = null;
  if (input.timeout_seconds !== undefined && input.timeout_seconds !== null) {
    const t = input.timeout_seconds;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) {
      invalid(where, `timeout_seconds must be a number > 0, got ${JSON.stringify(t)}`);
    }
    timeoutMs = Math.round((t as number) * 1000);
  }
  return { id, command: command as string, cwd: cwd as string, priority: priority as number, maxRetries, runAt, timeoutMs };
};
