// What every benchmark shares: sizes, the result row, temporary directories, running the built
// CLI as a separate process, timing, peak RSS, and reading a data directory's log afterwards.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import type { StoredEvent } from '../src/events.ts';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = join(ROOT, 'dist', 'cli.js');
/** Preloaded into measured processes: writes the process's peak RSS to $QUEUECTL_BENCH_RSS_FILE at exit. */
export const RSS_PROBE = join(ROOT, 'bench', 'rss-probe.mjs');

// ---- results ---------------------------------------------------------------------------------

export interface Result {
  /** The row number (1-10) or 'P' for the peers. */
  row: number | 'P';
  metric: string;
  queuectl: string;
  limit: string;
  ratio: string;
  target: string;
  /** true / false: the target holds or not; null: nothing to hold (reported only, or skipped). */
  holds: boolean | null;
  skipped?: string;
  /** Raw numbers for --json. */
  data?: Record<string, unknown>;
}

export interface Context {
  quick: boolean;
  /** Scratch space for this run, removed at the end. */
  tmp: string;
  /** Where fixtures live: inside tmp, or a kept --cache directory. */
  cache: string;
  /** Options from the command line that change one benchmark's size. */
  flags: Record<string, string | boolean>;
  /** Things one benchmark leaves for another (e.g. the data directory of row 3 for row 10). */
  shared: Map<string, unknown>;
  log: (line: string) => void;
}

/** One benchmark: the rows of the table it measures, and how. */
export interface Bench {
  rows: readonly (number | 'P')[];
  title: string;
  run: (ctx: Context) => Promise<Result[]>;
}

/** A size from a flag if given, else the quick or the full default. */
export const size = (ctx: Context, flag: string, quick: number, full: number): number => {
  const v = ctx.flags[flag];
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  return ctx.quick ? quick : full;
};

// ---- formatting ------------------------------------------------------------------------------

const group = (n: number, digits = 0): string =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
export const fmtInt = (n: number): string => group(Math.round(n));
export const fmtRate = (n: number, unit: string): string => `${n >= 100 ? group(n) : group(n, 1)} ${unit}/s`;
export const fmtMs = (ms: number): string => (ms >= 10_000 ? `${group(ms / 1000, 1)} s` : ms >= 100 ? `${group(ms)} ms` : `${group(ms, 1)} ms`);
export const fmtMB = (bytes: number): string => `${group(bytes / 1e6, 1)} MB`;
export const fmtBytes = (bytes: number): string => (bytes >= 1e6 ? fmtMB(bytes) : bytes >= 10_000 ? `${group(bytes / 1e3, 1)} kB` : `${group(bytes)} B`);
export const fmtRatio = (r: number): string => `${r.toFixed(2)}x`;
export const sizeLabel = (n: number): string =>
  n >= 1_000_000 && n % 1_000_000 === 0 ? `${n / 1_000_000}M` : n >= 1000 && n % 1000 === 0 ? `${group(n / 1000)}k` : group(n);

// ---- statistics ------------------------------------------------------------------------------

export const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
/** Nearest-rank percentile (p in 0..100). */
export const percentile = (xs: readonly number[], p: number): number => {
  const s = sorted(xs);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
export const median = (xs: readonly number[]): number => {
  const s = sorted(xs);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// ---- time and processes ----------------------------------------------------------------------

export const now = (): number => performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every child a benchmark starts, so that an interrupted run leaves none behind. */
const children = new Set<ChildProcess>();
export const track = (child: ChildProcess): ChildProcess => {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
};
export const killChildren = (): void => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
};

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The first 64 kB of stdout. */
  stdout: string;
  stdoutBytes: number;
  stderr: string;
  /** Wall time from just before spawn() to the 'exit' event, in ms. */
  ms: number;
  /** Peak RSS in bytes, when the process ran with the RSS probe. */
  rss?: number;
}

export interface RunOptions {
  env?: Record<string, string>;
  input?: string;
  /** Preload the RSS probe and report the peak RSS. */
  rss?: boolean;
  /** Kill the process (and fail) after this long. */
  timeoutMs?: number;
  cwd?: string;
  /** Called with each chunk of stdout as it arrives. */
  onStdout?: (chunk: string) => void;
}

let rssFiles = 0;

/** Start a process: its handle, and its end (wall time, output, exit status, optionally peak RSS). */
export const launch = (file: string, args: readonly string[], opts: RunOptions & { tmp?: string } = {}): { child: ChildProcess; done: Promise<Exited> } => {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', ...opts.env };
  let nodeArgs: string[] = [];
  let rssFile: string | undefined;
  if (opts.rss) {
    if (!opts.tmp) throw new Error('rss needs tmp');
    rssFile = join(opts.tmp, `rss-${process.pid}-${++rssFiles}`);
    env.QUEUECTL_BENCH_RSS_FILE = rssFile;
    nodeArgs = ['--import', RSS_PROBE];
  }
  const argv = file === process.execPath ? [...nodeArgs, ...args] : [...args];
  const start = now();
  const child = track(spawn(file, argv, { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] }));
  const done = new Promise<Exited>((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    child.stdout!.on('data', (d: Buffer) => {
      if (outBytes < 1 << 16) out.push(d);
      outBytes += d.length;
      opts.onStdout?.(d.toString('utf8'));
    });
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    let ms = 0;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`${file} ${args.join(' ')} took longer than ${opts.timeoutMs} ms`));
        }, opts.timeoutMs)
      : null;
    child.once('exit', () => (ms = now() - start));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      let rss: number | undefined;
      if (rssFile && existsSync(rssFile)) {
        rss = Number(readFileSync(rssFile, 'utf8'));
        rmSync(rssFile, { force: true });
      }
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stdoutBytes: outBytes, stderr: Buffer.concat(err).toString('utf8'), ms, rss });
    });
    child.stdin!.on('error', () => {});
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
  return { child, done };
};

/** Run a process to its end. */
export const run = (file: string, args: readonly string[], opts: RunOptions & { tmp?: string } = {}): Promise<Exited> =>
  launch(file, args, opts).done;

/** The built CLI, run as a user runs it: a separate `node dist/cli.js ... --home <home>` process. */
export const cli = (home: string, args: readonly string[], opts: RunOptions & { tmp?: string } = {}): Promise<Exited> =>
  run(process.execPath, [CLI, ...args, '--home', home], opts);

/** Like cli(), but a non-zero exit is an error. */
export const cliOk = async (home: string, args: readonly string[], opts: RunOptions & { tmp?: string } = {}): Promise<Exited> => {
  const r = await cli(home, args, opts);
  if (r.code !== 0) throw new Error(`queuectl ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(0, 500)}`);
  return r;
};

/** A long-running `queuectl worker start` process. */
export interface Worker {
  child: ChildProcess;
  /** Wall-clock ms (Date.now()) just before spawn. */
  startedAt: number;
  exited: Promise<Exited>;
  /** Jobs it reported completed on stdout so far (its "<id> completed in <t>" lines). */
  readonly completed: number;
  /** performance.now() of its latest output. */
  readonly lastOutputAt: number;
  /** SIGTERM (running jobs finish), then wait for the exit. */
  stop(): Promise<Exited>;
}

export const startWorker = (home: string, args: readonly string[], opts: { rss?: boolean; tmp?: string; timeoutMs?: number } = {}): Worker => {
  const startedAt = Date.now();
  let completed = 0;
  let lastOutputAt = now();
  let partial = '';
  const onStdout = (chunk: string) => {
    lastOutputAt = now();
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (/ completed in /.test(line)) completed += 1;
  };
  const { child, done: exited } = launch(process.execPath, [CLI, 'worker', 'start', ...args, '--home', home], { rss: opts.rss, tmp: opts.tmp, timeoutMs: opts.timeoutMs, onStdout });
  return {
    child,
    startedAt,
    exited,
    get completed() {
      return completed;
    },
    get lastOutputAt() {
      return lastOutputAt;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
};

/**
 * Wait until `until()` holds or the worker exits. A worker silent for `stallMs` is killed
 * (SIGKILL) and reported as stalled: a benchmark never hangs on a stuck worker.
 */
export const watchWorker = async (w: Worker, until: () => boolean, stallMs = 30_000): Promise<'done' | 'exited' | 'stalled'> => {
  let exited = false;
  void w.exited.then(() => (exited = true), () => (exited = true));
  for (;;) {
    if (until()) return 'done';
    if (exited) return 'exited';
    if (now() - w.lastOutputAt > stallMs) {
      w.child.kill('SIGKILL');
      await w.exited.catch(() => {});
      return 'stalled';
    }
    await sleep(20);
  }
};

/** Wait until a host answers on the data directory's socket (the socket exists only while a host serves). */
export const waitForHost = async (home: string, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(join(home, 'host.sock'))) {
    if (Date.now() > deadline) throw new Error(`no host came up in ${home} within ${timeoutMs} ms`);
    await sleep(5);
  }
};

/** A fresh, not yet existing data directory path under `parent`. */
let homes = 0;
export const freshHome = (parent: string, name: string): string => join(parent, `${name}-${++homes}`);

export const makeTmp = (): string => mkdtempSync(join(tmpdir(), 'queuectl-bench-'));

export const removeDir = (dir: string): void => rmSync(dir, { recursive: true, force: true });

/** Bytes of every file under `dir`: apparent size and allocated blocks. */
export const du = (dir: string): { bytes: number; allocated: number; files: number; dirs: number } => {
  const total = { bytes: 0, allocated: 0, files: 0, dirs: 0 };
  const walk = (d: string) => {
    const st = statSync(d);
    total.dirs += 1;
    total.allocated += st.blocks * 512;
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else {
        total.files += 1;
        total.bytes += s.size;
        total.allocated += s.blocks * 512;
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return total;
};

/** Write NDJSON jobs: one `{"command": ...}` object per line. */
export const writeJobsFile = (path: string, n: number, job: (i: number) => Record<string, unknown>): void => {
  const lines: string[] = new Array(n);
  for (let i = 0; i < n; i++) lines[i] = JSON.stringify(job(i));
  writeFileSync(path, `${lines.join('\n')}\n`);
};

/** An executable on PATH, or null. */
export const which = (name: string): string | null => {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
};

/** Build dist/ when it is missing or older than the sources. */
export const ensureBuilt = (log: (line: string) => void): void => {
  const newest = (dir: string): number => {
    let m = 0;
    for (const name of readdirSync(dir, { recursive: true }) as string[]) {
      const st = statSync(join(dir, name));
      if (st.isFile()) m = Math.max(m, st.mtimeMs);
    }
    return m;
  };
  const built = existsSync(CLI) ? statSync(CLI).mtimeMs : 0;
  const sources = Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'projections')), statSync(join(ROOT, 'package.json')).mtimeMs);
  if (built >= sources) return;
  log('building dist/ (npm run build)');
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error('npm run build failed');
};

// ---- reading a data directory afterwards -----------------------------------------------------

/** The events of a data directory's log (no process may hold it open), oldest first. */
export const readLogEvents = async (home: string): Promise<StoredEvent[]> => {
  const db = new ClassicLevel<string, string>(join(home, 'db'), { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open();
  try {
    const sub = db.sublevel<string, string>('log', { valueEncoding: 'utf8' });
    const out: StoredEvent[] = [];
    const it = sub.values({ highWaterMarkBytes: 1 << 20 } as never);
    for (;;) {
      const chunk = await it.nextv(1000);
      if (chunk.length === 0) break;
      for (const v of chunk) out.push(JSON.parse(v) as StoredEvent);
    }
    await it.close();
    return out;
  } finally {
    await db.close();
  }
};

/** The `at` (ms epoch) of every JobSucceeded event, in log order. */
export const successTimes = (events: readonly StoredEvent[]): number[] =>
  events.filter((e) => e.type === 'JobSucceeded').map((e) => e.at);
