// What every command shares: the data directory, the queue, option parsing and printing.
import ms from 'ms';
import { createColors } from 'picocolors';
import type { Config } from '../domain/config.ts';
import type { JobView } from '../domain/types.ts';
import { QueuectlError } from '../errors.ts';
import { resolveHome, type Home } from '../home.ts';
import { type ConnectOptions, type Database, openQueue, type Queue } from '../host/connect.ts';
import { databaseTargetFrom } from '../store/postgres/url.ts';

export interface GlobalOptions {
  home?: string;
  json?: boolean;
  databaseUrl?: string;
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

export const home = (opts: GlobalOptions): Home => {
  // an empty --home is refused in the parse step; an empty variable would make the current directory the data directory
  if (opts.home === undefined && process.env.QUEUECTL_HOME === '') invalid('QUEUECTL_HOME is set but empty; unset it or point it at a directory');
  return resolveHome(opts.home === undefined ? undefined : String(opts.home));
};

/**
 * The PostgreSQL database the command is pointed at: --database-url, else QUEUECTL_DATABASE_URL;
 * null: the LevelDB store in the data directory. A malformed URL is refused here (exit 2).
 */
export const database = (opts: GlobalOptions): Database | null => {
  const target = databaseTargetFrom(opts.databaseUrl);
  return target && { url: opts.databaseUrl ?? process.env.QUEUECTL_DATABASE_URL!, target };
};

/**
 * For commands that may run for long (wait, events --follow): if this process becomes the
 * host, it must serve the socket (and watch leases), or a worker started meanwhile could
 * neither open the database nor reach a host.
 */
export const LONG_LIVED: ConnectOptions = { serve: true, onHost: (host) => host.startLeaseManager() };

/** Open the queue (as a client of the host, or as the host), run `fn`, close. */
export const withQueue = async <T>(opts: GlobalOptions, fn: (queue: Queue) => Promise<T>, options?: ConnectOptions): Promise<T> => {
  const queue = openQueue(home(opts), options, database(opts));
  try {
    return await fn(queue);
  } finally {
    await queue.close();
  }
};

export const invalid = (message: string): never => {
  throw new QueuectlError('QUEUECTL_INVALID_INPUT', message);
};

/** `30s`, `5m`, `2h`, `1.5h`, or a bare number of seconds; at most `maxMs`. */
export const parseDuration = (value: unknown, option: string, maxMs = Number.POSITIVE_INFINITY): number => {
  const text = String(value).trim();
  const result = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : (ms as (v: string) => number | undefined)(text);
  if (typeof result !== 'number' || !Number.isFinite(result) || result <= 0 || value === true) {
    invalid(`${option} takes a duration like 30s, 5m or 2h, got '${value === true ? '' : text}'`);
  }
  if ((result as number) > maxMs) invalid(`${option} ${text} is too long: at most ${maxMs / 1000} seconds (about ${ms(maxMs, { long: true })})`);
  return result as number;
};

/** An integer option within [min, max]; cac hands over strings, or `true` (flag given without a value). */
export const parseInteger = (value: unknown, option: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number => {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    const from = min > Number.MIN_SAFE_INTEGER;
    const to = max < Number.MAX_SAFE_INTEGER;
    const range = `${from ? ` >= ${min}` : ''}${to ? `${from ? ' and' : ''} <= ${max}` : ''}`;
    invalid(`${option} takes an integer${range}, got '${value === true ? '' : String(value)}'`);
  }
  return n;
};

type CacOption = { rawName: string; isBoolean?: boolean };

/**
 * The options exactly as typed, for the parse step (src/cli.ts). cac (mri) joins a repeated
 * option's values with commas (`--cwd /tmp --cwd /var` became `/tmp,/var`) and turns numeric
 * text into numbers (`--home ''` became 0, `--id 007` 7): a value option given twice or
 * empty is refused here, and every value is handed on as the text the user typed.
 */
export const typedOptionValues = (argv: readonly string[], options: readonly CacOption[]): Map<string, string> => {
  const flagsOf = (o: CacOption) => o.rawName.split(/[ ,]+/).filter((f) => f.startsWith('-'));
  const byFlag = new Map<string, CacOption>();
  for (const o of options) for (const flag of flagsOf(o)) byFlag.set(flag, o);
  const values = new Map<string, string>();
  const end = argv.indexOf('--');
  const args = end === -1 ? argv : argv.slice(0, end);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const option = byFlag.get(flag);
    if (!option || option.isBoolean) continue;
    let value: string | undefined;
    if (flag !== arg) value = arg.slice(eq + 1);
    else if (args[i + 1] !== undefined && !args[i + 1]!.startsWith('-')) value = args[++i];
    if (value === undefined) continue; // no value: cac says so
    const name = flagsOf(option).find((f) => f.startsWith('--'))!;
    if (value.trim() === '') invalid(`${name} was given an empty value; give it a value or leave the option out`);
    const before = values.get(name);
    if (before !== undefined) invalid(`${name} was given twice ('${before}' and '${value}'); give it once`);
    values.set(name, value);
  }
  return values;
};

/** A stored time as ISO 8601; one that cannot be a date (from a damaged or older log) is shown as such, never thrown. */
export const iso = (ms: unknown): string | null => {
  if (ms === null) return null;
  const date = new Date(typeof ms === 'number' ? ms : Number.NaN);
  return Number.isNaN(date.getTime()) ? `(not a time: ${String(ms)})` : date.toISOString();
};

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
