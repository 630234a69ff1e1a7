// What every command shares: the data directory, the queue, option parsing and printing.
import ms from 'ms';
import { createColors } from 'picocolors';
import type { Config } from '../domain/config.ts';
import type { JobView } from '../domain/types.ts';
import { QueuectlError } from '../errors.ts';
import { resolveHome, type Home } from '../home.ts';
import { type ConnectOptions, openQueue, type Queue } from '../host/connect.ts';

export interface GlobalOptions {
  home?: string;
  json?: boolean;
}

// process.stdout.isTTY rather than node:tty's isatty(1): the stream is made for the output
// anyway, and node:tty costs ~0.3 ms to load when stdout is not a terminal
export const colors = createColors(process.stdout.isTTY === true && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb');

let outlivesStdout = false;
/**
 * A closed stdout (`queuectl events | head`) ends a command: the reader has what it wanted
 * (cli.ts). `worker start` calls this to carry on instead: it stops logging there.
 */
export const outliveStdout = (): void => {
  outlivesStdout = true;
};
export const exitsWithStdout = (): boolean => !outlivesStdout;

export const home = (opts: GlobalOptions): Home => resolveHome(opts.home === undefined ? undefined : String(opts.home));

/**
 * For commands that may run for long (wait, events --follow): if this process becomes the
 * host, it must serve the socket (and watch leases), or a worker started meanwhile could
 * neither open the database nor reach a host.
 */
export const LONG_LIVED: ConnectOptions = { serve: true, onHost: (host) => host.startLeaseManager() };

/** Open the queue (as a client of the host, or as the host), run `fn`, close. */
export const withQueue = async <T>(opts: GlobalOptions, fn: (queue: Queue) => Promise<T>, options?: ConnectOptions): Promise<T> => {
  const queue = openQueue(home(opts), options);
  try {
    return await fn(queue);
  } finally {
    await queue.close();
  }
};

export const invalid = (message: string): never => {
  throw new QueuectlError('QUEUECTL_INVALID_INPUT', message);
};

/** `30s`, `5m`, `2h`, `1.5h`, or a bare number of seconds. */
export const parseDuration = (value: unknown, option: string): number => {
  const text = String(value).trim();
  const result = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : (ms as (v: string) => number | undefined)(text);
  if (typeof result !== 'number' || !Number.isFinite(result) || result <= 0 || value === true) {
    invalid(`${option} takes a duration like 30s, 5m or 2h, got '${value === true ? '' : text}'`);
  }
  return result as number;
};

/** An integer option; cac hands over numbers, strings or `true` (flag given without a value). */
export const parseInteger = (value: unknown, option: string, min = Number.MIN_SAFE_INTEGER): number => {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < min) {
    invalid(`${option} takes an integer${min > Number.MIN_SAFE_INTEGER ? ` >= ${min}` : ''}, got '${value === true ? '' : String(value)}'`);
  }
  return n;
};

/** The raw text of an option as typed (cac turns `--id 007` into the number 7). */
export const rawOption = (name: string): string | undefined => {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === `--${name}`) return argv[i + 1];
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
  }
  return undefined;
};

export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A job as users and scripts see it (JSON field names, ISO times). */
export const jobJson = (job: JobView, config: Config) => ({
  id: job.id,
  command: job.command,
  state: job.state,
  attempts: job.attempts,
  max_retries: job.maxRetries ?? config.max_retries,
  priority: job.priority,
  run_at: iso(job.runAt),
  timeout_seconds: job.timeoutMs === null ? null : job.timeoutMs / 1000,
  cwd: job.cwd,
  created_at: iso(job.createdAt),
  updated_at: iso(job.updatedAt),
  next_run_at: iso(job.nextRunAt),
  last_error: job.lastError,
  exit_code: job.exitCode,
});

export const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

export const colorState = (state: string): string => {
  const paint = { completed: colors.green, dead: colors.red, failed: colors.yellow, processing: colors.cyan, cancelled: colors.dim }[state];
  return paint ? paint(state) : state;
};

/** An aligned table without borders, in the style of pueue's status. */
export const printTable = async (head: string[], rows: (string | number | null)[][]): Promise<void> => {
  const { default: Table } = await import('cli-table3');
  const table = new Table({
    head: head.map((h) => colors.bold(h)),
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 2 },
    chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '' },
  });
  for (const row of rows) table.push(row.map((c) => (c === null ? '-' : String(c))));
  process.stdout.write(`${table.toString().split('\n').map((l) => l.trimEnd()).join('\n')}\n`);
};

export const ago = (ms: number): string => {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86400)}d`;
};
