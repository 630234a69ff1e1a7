// Helpers for the end-to-end tests: run the BUILT queuectl (dist/cli.js) as a user would, in
// temporary data directories, and keep track of every process started so none outlives a test.
// Importing this file has no side effects (uvu's `test` directory run imports it too).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** Every long-running job command contains this marker, so stray job processes can be found. */
export const MARK = `61.0${process.pid}`;

let root: string | null = null;
/** One temporary directory per test process (shared by the e2e files); removed at exit. */
export const tmpRoot = (): string => {
  if (root === null) {
    const dir = mkdtempSync(join(tmpdir(), 'queuectl-e2e-cli-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    root = dir;
  }
  return root;
};

let homes = 0;
/** A data directory path that does not exist yet: queuectl creates it on first use. */
export const newHome = (name = 'home'): string => join(tmpRoot(), `${name}-${++homes}`);
/** A plain scratch directory (job cwd, job files). */
export const scratch = (name = 'scratch'): string => mkdtempSync(join(tmpRoot(), `${name}-`));

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  args: string[];
}

export interface RunOptions {
  input?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

const baseEnv = (extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extra };
  for (const k of ['QUEUECTL_HOME', 'QUEUECTL_DEBUG', 'FORCE_COLOR']) if (!(k in extra)) delete env[k];
  for (const [k, v] of Object.entries(extra)) if (v === undefined) delete env[k];
  return env;
};

const children = new Set<ChildProcess>();
const workers = new Set<Worker>();

/** Run `queuectl ...args` to completion (killed, and reported, if it outlives timeoutMs). */
export const run = (args: string[], opts: RunOptions = {}): Promise<Result> =>
  new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: baseEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      const ms = performance.now() - started;
      if (signal === 'SIGKILL' && ms >= (opts.timeoutMs ?? 30_000)) {
        reject(new Error(`queuectl ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 30_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
      } else resolve({ code, signal, stdout, stderr, ms, args });
    });
  });

/** `queuectl --home <home> ...args`, bound to one data directory. */
export type Q = (...args: string[]) => Promise<Result>;
export const cli = (home: string, opts: RunOptions = {}): Q => (...args) => run([...args, '--home', home], opts);

const show = (r: Result) => `queuectl ${r.args.join(' ')}\n  exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n  stdout: ${r.stdout.trim()}\n  stderr: ${r.stderr.trim()}`;

/** Asserts exit 0 and returns stdout. */
export const ok = (r: Result): string => {
  assert.is(r.code, 0, `expected success:\n${show(r)}`);
  return r.stdout;
};

/** Asserts exit 0 and parses stdout as one JSON document. */
export const json = <T = any>(r: Result): T => {
  ok(r);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    return assert.unreachable(`stdout is not one JSON document:\n${show(r)}`) as never;
  }
};

/**
 * Asserts a refusal: this exit code and exactly one line on stderr, `queuectl: ...`, no stack
 * trace. Returns the message.
 */
export const refused = (r: Result, code: 1 | 2, pattern?: RegExp): string => {
  assert.is(r.code, code, `expected exit ${code}:\n${show(r)}`);
  assert.match(r.stderr, /^queuectl: [^\n]+\n$/, `expected one 'queuectl: ...' line on stderr:\n${show(r)}`);
  assert.not.match(r.stderr, /\n\s+at /, `stack trace on stderr:\n${show(r)}`);
  if (pattern) assert.match(r.stderr, pattern, `unexpected message:\n${show(r)}`);
  return r.stderr.slice('queuectl: '.length).trim();
};

export interface StoredEvent {
  pos: number;
  at: number;
  type: string;
  jobId?: string;
  attempt?: number;
  [k: string]: any;
}

/** The whole log, as `events --json` prints it (one event per line). */
export const events = async (q: Q): Promise<StoredEvent[]> =>
  ok(await q('events', '--json')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredEvent);

export const history = async (q: Q, id: string): Promise<StoredEvent[]> => json<StoredEvent[]>(await q('history', id, '--json'));

export const job = async (q: Q, id: string): Promise<Record<string, any>> => json(await q('show', id, '--json'));

/** Polls `check` until it returns a truthy value; fails after `ms`. */
export const until = async <T>(check: () => Promise<T> | T, ms: number, what: string, every = 50): Promise<NonNullable<T>> => {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
};

/** `queuectl wait <ids> --timeout`, with the process itself bounded too. */
export const waitFor = (q: Q, ids: string[], timeout = '20s'): Promise<Result> => q('wait', ...ids, '--timeout', timeout);

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'); // a zombie has exited
  } catch {
    return false;
  }
};

/** A foreground `queuectl worker start` whose output lines are collected. */
export class Worker {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitCode: number | null | undefined = undefined;
  private readonly child: ChildProcess;

  constructor(
    readonly home: string,
    private readonly args: string[],
  ) {
    this.child = spawn(process.execPath, [CLI, 'worker', 'start', '--home', home, ...args], { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.child);
    workers.add(this);
    let buf = '';
    const onData = (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      this.lines.push(...parts);
    };
    this.child.stdout!.setEncoding('utf8').on('data', onData);
    this.child.stderr!.setEncoding('utf8').on('data', onData);
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, signal) => {
        if (buf) this.lines.push(buf);
        children.delete(this.child);
        workers.delete(this);
        this.exitCode = code;
        resolve({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Resolves once `status` lists this worker (it is ready to claim). */
  async ready(ms = 15_000): Promise<this> {
    const q = cli(this.home);
    // asked of the same queue: a worker on PostgreSQL is asked with its --database-url
    const at = this.args.indexOf('--database-url');
    const queue = at >= 0 ? this.args.slice(at, at + 2) : [];
    await until(async () => {
      if (!this.running) throw new Error(`worker exited early: ${this.lines.join(' | ')}`);
      const s = json<{ workers: { pid: number }[] }>(await q('status', '--json', ...queue));
      return s.workers.some((w) => w.pid === this.pid);
    }, ms, `worker ${this.pid} to register`);
    return this;
  }

  /** Graceful stop (SIGTERM); resolves with the exit status, or fails after `ms`. */
  async stop(ms = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill('SIGTERM');
    return bounded(this.exited, ms, `worker ${this.pid} to stop`);
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** Stop now: a second SIGTERM ends the running jobs; SIGKILL if even that does not work. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    this.child.kill('SIGTERM');
    await bounded(this.exited, 5000, 'worker to exit').catch(() => this.child.kill('SIGKILL'));
  }

  /** Exit without stopping it (e.g. --drain), bounded. */
  finished(ms = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return bounded(this.exited, ms, `worker ${this.pid} to finish`);
  }
}

export const startWorker = (home: string, ...args: string[]): Worker => new Worker(home, args);

export const bounded = async <T>(p: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
};

/** Processes started by these tests that are still alive: workers (their --home is under our
 *  root, detached ones included) and job processes (their command carries MARK). */
export const strays = (): { pid: number; cmd: string }[] => {
  if (root === null) return [];
  const found: { pid: number; cmd: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      continue;
    }
    if ((cmd.includes(root) || cmd.includes(MARK)) && isAlive(Number(name))) found.push({ pid: Number(name), cmd });
  }
  return found;
};

/** Stop every foreground worker still running but those kept (after a test that failed half-way). */
export const stopWorkers = async (keep: (Worker | undefined)[] = []): Promise<void> => {
  await Promise.all([...workers].filter((w) => !keep.includes(w)).map((w) => w.kill()));
};

/** Kill whatever these tests started (the directories go at exit: other files may still use them). */
export const cleanup = (): void => {
  for (const c of children) c.kill('SIGKILL');
  for (const s of strays()) {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
};

/** Asserts that nothing these tests started is still running (waits briefly for exits). */
export const assertNoStrays = async (): Promise<void> => {
  try {
    await until(() => strays().length === 0, 5000, 'stray processes to exit');
  } catch {
    assert.unreachable(`stray processes left running:\n${strays().map((s) => `  ${s.pid} ${s.cmd}`).join('\n')}`);
  }
};
