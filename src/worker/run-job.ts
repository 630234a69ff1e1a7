import { type ChildProcess, type ChildProcessByStdio, fork, spawn, type StdioOptions } from 'node:child_process';
import { createWriteStream, mkdirSync, statSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { errnoOf, errnoReason } from '../errors.ts';
import type { OutputInfo } from '../events.ts';

/** What is known of one output stream of an attempt: as the attempt's event stores it. */
export type OutputCapture = OutputInfo;

export interface RunJobOptions {
  command: string;             // run through /bin/sh -c
  cwd: string;
  env: Record<string, string>; // merged onto process.env
  timeoutMs?: number;          // undefined = no timeout
  graceMs?: number;            // SIGTERM to the group, SIGKILL after this (default 2000)
  outputLimit: number;         // max bytes kept per stream; the rest is counted
  stdoutPath: string;          // the caller creates the directory
  stderrPath: string;
  /** The folder of both paths as messages name it (they may go through the data directory's handle); default: their folder. */
  outputShown?: string;
}

export interface RunJobResult {
  exitCode: number | null;     // null when killed by a signal or could not start
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;          // cancel() or kill() before the shell exited
  durationMs: number;
  error: string | null;
  stdout: OutputCapture;
  stderr: OutputCapture;
}

export interface RunningJob {
  pid: number | undefined;
  done: Promise<RunJobResult>;
  cancel(): void; // SIGTERM the group, SIGKILL after graceMs
  kill(): void;   // SIGKILL the group now
}

// Once every process in the group is dead, only a process that left the group (setsid)
// can still hold the pipes; after this long we stop waiting for it.
const DRAIN_MS = 500;

// node:child_process directly, not execa: per job, execa doubled the worker's CPU time for
// a `true` job (~1.4 ms vs ~0.7 ms here), which is most of what a worker does. Its timeout,
// cancel and kill only signal the shell anyway, so we never used them: the job runs in its own
// process group (detached) and we signal the group. What execa gave on top is kept below: a
// spawn error (a bad cwd, which child_process reports as "spawn /bin/sh ENOENT" or throws) is
// a "could not start" result naming the cause, and `done` waits for both output streams.
export function runJob(opts: RunJobOptions): RunningJob {
  const start = performance.now();
  const grace = opts.graceMs ?? 2000;

  let child: ChildProcessByStdio<null, Readable, Readable>;
  try {
    child = spawn('/bin/sh', ['-c', opts.command], {
      cwd: opts.cwd, env: { ...process.env, ...opts.env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    return notStarted(startError(e, opts.cwd), start); // e.g. ENOTDIR (cwd is a file), NUL bytes
  }
  const pid = child.pid;
  if (pid === undefined) {
    // ENOENT, EACCES, EAGAIN, EMFILE: child_process reports them with an 'error' event.
    const failed = new Promise<string>((resolve) => child.once('error', (e) => resolve(startError(e, opts.cwd))));
    child.stdout?.destroy();
    child.stderr?.destroy();
    return { pid: undefined, done: failed.then((why) => notStartedResult(why, start)), cancel() {}, kill() {} };
  }
  child.on('error', () => {}); // only spawn errors (handled above) are expected; never crash the worker
  let reason: 'timeout' | 'cancel' | 'output' | undefined;
  let outputError = '';
  // Its output cannot be kept: this job fails (and only this one), ended like a timeout.
  const unwritable = (why: string) => {
    if (reason) return;
    reason = 'output';
    outputError = why;
    terminate();
  };
  const stdout = capture(child.stdout, opts.stdoutPath, opts.outputShown ?? dirname(opts.stdoutPath), opts.outputLimit, unwritable);
  const stderr = capture(child.stderr, opts.stderrPath, opts.outputShown ?? dirname(opts.stderrPath), opts.outputLimit, unwritable);

  let exited = false, termSent = false, settled = false;
  let timeoutTimer: NodeJS.Timeout | undefined, killTimer: NodeJS.Timeout | undefined;
  let drainTimer: NodeJS.Timeout | undefined;

  const signalGroup = (sig: NodeJS.Signals | 0): boolean => {
    try { process.kill(-pid, sig); return true; } catch { return false; } // ESRCH: group is gone
  };
  const drainSoon = () => {
    drainTimer ??= setTimeout(() => { child.stdout.destroy(); child.stderr.destroy(); }, DRAIN_MS);
  };
  const forceKill = () => {
    clearTimeout(killTimer);
    signalGroup('SIGKILL');
    drainSoon();
  };
  const terminate = () => {
    if (termSent) return;
    termSent = true;
    signalGroup('SIGTERM');
    killTimer = setTimeout(forceKill, grace);
  };

  if (opts.timeoutMs !== undefined) {
    timeoutTimer = setTimeout(() => { reason ??= 'timeout'; terminate(); }, opts.timeoutMs);
  }
  // The job ends with its shell. Background processes it left in the group get the same
  // SIGTERM-then-SIGKILL as a timeout, so nothing outlives the job or holds its output open.
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      clearTimeout(timeoutTimer);
      if (signalGroup(0)) terminate();
      else { clearTimeout(killTimer); drainSoon(); }
      resolve({ code, signal });
    });
  });

  const done = (async (): Promise<RunJobResult> => {
    // after the shell exited and both pipes closed (or were drained) and the files are written
    const [{ code, signal }, out, err] = await Promise.all([exit, stdout, stderr]);
    settled = true;
    clearTimeout(timeoutTimer);
    clearTimeout(drainTimer);
    // A leftover that closed its output but ignores SIGTERM still gets the pending SIGKILL.
    // Zombies answer signal 0 too (PID 1 in a container often does not reap them), so the
    // timer may outlive the job: unref it so it never holds the worker's exit.
    if (signalGroup(0)) killTimer?.unref();
    else clearTimeout(killTimer);
    return {
      timedOut: reason === 'timeout', cancelled: reason === 'cancel', durationMs: elapsed(start), stdout: out, stderr: err,
      exitCode: code, signal,
      error: reason === 'timeout' ? `timed out after ${+(opts.timeoutMs! / 1000).toFixed(3)}s`
        : reason === 'cancel' ? 'cancelled'
        : reason === 'output' ? outputError
        : signal ? `killed by ${signal}`
        : code === 127 ? 'exit code 127 (command not found)'
        : code ? `exit code ${code}`
        : null,
    };
  })();

  return {
    pid,
    done,
    cancel() {
      if (settled || exited) return;
      reason ??= 'cancel';
      terminate();
    },
    kill() {
      if (settled) return;
      if (!exited) reason ??= 'cancel';
      termSent = true;
      forceKill();
    },
  };
}

/** Why a spawn failed, naming the cwd when it is the cause (child_process blames /bin/sh for a missing cwd). */
function startError(e: unknown, cwd: string): string {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') {
    let st;
    try {
      st = statSync(cwd, { throwIfNoEntry: false });
    } catch (err) {
      return `cwd ${cwd} cannot be reached: ${errnoReason(err, errnoOf(err) ?? 'error')}`; // EACCES or ENOTDIR on the way
    }
    if (!st) return `cwd ${cwd} does not exist`;
    if (!st.isDirectory()) return `cwd ${cwd} is not a directory`;
  }
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.replace(/\.$/, '');
}

// Counts everything, writes only the first `limit` bytes: memory stays bounded whatever the job prints.
// The file (and its directory) is created on the first byte: most jobs print nothing, and two
// opens, two closes and a mkdir per job cost more than running `true`.
// What is kept is what the file system took (a full disk mid-way keeps less than the cap, and
// says why). A failure to prepare the output (its directory or file cannot be made) is handed
// to `unwritable`, which ends this job: it never throws, so it never takes the runner, and
// every other job, down with it.
function capture(source: Readable, path: string, shown: string, limit: number, unwritable: (why: string) => void): Promise<OutputCapture> {
  let file: WriteStream | null = null;
  let failed = false;
  const c: OutputCapture = { bytes: 0, kept: 0, truncated: false };
  const fail = (e: unknown, preparing: boolean) => {
    if (failed) return;
    failed = true;
    const errno = errnoOf(e);
    c.error = errno ? errnoReason(e, errno) : String((e as Error)?.message ?? e);
    if (preparing) unwritable(`cannot write its output in ${shown}: ${c.error}; the job was stopped`);
  };
  source.on('data', (chunk: Buffer) => {
    c.bytes += chunk.length;
    if (failed || c.kept >= limit) return;
    if (!file) {
      try {
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        const f = createWriteStream(path, { mode: 0o600 });
        let opened = false;
        f.once('open', () => (opened = true));
        f.on('error', (e) => fail(e, !opened)); // e.g. ENOSPC mid-way: the job's outcome does not depend on its log
        file = f;
      } catch (e) {
        return fail(e, true); // EEXIST/ENOTDIR (a file where its directory should be), EACCES, ENOSPC
      }
    }
    const part = chunk.subarray(0, limit - c.kept);
    file.write(part);
    c.kept += part.length; // what was handed over; the file's count replaces it at the end
  });
  const done = (f: WriteStream | null): OutputCapture => {
    if (f) c.kept = f.bytesWritten;
    c.truncated = c.bytes > c.kept;
    return c;
  };
  return new Promise((resolve) => {
    source.once('close', () => {
      const f = file as WriteStream | null;
      if (!f || f.closed) return resolve(done(f));
      f.once('close', () => resolve(done(f)));
      f.end();
    });
  });
}

const notStartedResult = (why: string, start: number): RunJobResult => {
  const empty = (): OutputCapture => ({ bytes: 0, kept: 0, truncated: false });
  return {
    exitCode: null, signal: null, timedOut: false, cancelled: false, durationMs: elapsed(start),
    error: `could not start: ${why}`, stdout: empty(), stderr: empty(),
  };
};

export function notStarted(why: string, start = performance.now()): RunningJob {
  return { pid: undefined, done: Promise.resolve(notStartedResult(why, start)), cancel() {}, kill() {} };
}

const elapsed = (start: number) => Math.round(performance.now() - start);

// ---- a small process that runs the jobs ----------------------------------------------------

type ToRunner = { t: 'run'; id: number; opts: RunJobOptions } | { t: 'cancel' | 'kill'; id: number };
type FromRunner = { t: 'started'; id: number; pid: number } | { t: 'done'; id: number; result: RunJobResult };

const RUNNER_ENV = 'QUEUECTL_JOB_RUNNER';

/**
 * runJob in a separate, small node process. fork() copies the page tables of the process that
 * spawns, every page either side then writes is copied on write, and the child's exec tears
 * the copy down again: in a worker that holds the database and the engine (~50-70 MB of its
 * own memory, a dozen threads) a spawn cost ~1.9 ms of CPU per `true` job, against ~0.8 ms
 * in a process that does nothing else. The runner is started early or on the first job, in its own
 * process group (a Ctrl-C to the terminal reaches the worker, which decides what to end),
 * and exits when the worker's channel closes (the worker exited or died): its jobs then
 * run on, as they would if the worker itself had died, until a host expires their leases.
 */
export class JobRunner {
  private child: ChildProcess | null = null;
  private ids = 0;
  private readonly jobs = new Map<number, { resolve: (r: RunJobResult) => void; pid?: number; start: number }>();

  constructor(
    private readonly options: {
      /**
       * The open handle of the data directory (prepareHome), which the runner inherits at the
       * same number: the output paths it is sent go through /proc/self/fd/<homeFd>, and so reach
       * the directory that was checked, in the runner as in the worker.
       */
      homeFd?: number;
      /** The umask the jobs run with: the user's, not queuectl's own (privateUmask). */
      jobUmask?: number;
    } = {},
  ) {}

  run(opts: RunJobOptions): RunningJob {
    const child = (this.child ??= this.start());
    const id = ++this.ids;
    const done = new Promise<RunJobResult>((resolve) => this.jobs.set(id, { resolve, start: performance.now() }));
    // Referenced while it runs jobs (its exit must be heard), not once they are done.
    child.ref();
    child.channel?.ref();
    this.send(child, { t: 'run', id, opts });
    return {
      pid: undefined,
      done,
      cancel: () => this.send(child, { t: 'cancel', id }),
      kill: () => this.send(child, { t: 'kill', id }),
    };
  }

  /** Start the runner now (it boots while the worker opens the queue), not on the first job. */
  prestart(): void {
    this.child ??= this.start();
  }

  /** Ends the runner: it exits as soon as its channel closes, so call it once its jobs are done (their processes would run on). */
  close(): void {
    if (this.child?.connected) this.child.disconnect();
  }

  private send(child: ChildProcess, m: ToRunner): void {
    if (child.connected) child.send(m);
  }

  private start(): ChildProcess {
    // The channel at 3, as Node does by default (there it is not passed on to the jobs). The
    // home handle above it (Node holds fds 3 and up for its event loop before any of ours),
    // which the jobs do inherit: Node cannot mark it close-on-exec in the runner; they run as
    // the user, who owns the directory anyway.
    const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', 'ipc'];
    const { homeFd, jobUmask } = this.options;
    if (homeFd !== undefined) {
      while (stdio.length < homeFd) stdio.push('ignore');
      stdio.push(homeFd);
    }
    const child = fork(fileURLToPath(import.meta.url), jobUmask === undefined ? [] : [jobUmask.toString(8)], {
      detached: true, stdio, env: { ...process.env, [RUNNER_ENV]: '1' },
    });
    child.on('message', (m: FromRunner) => {
      const job = this.jobs.get(m.id);
      if (!job) return;
      if (m.t === 'started') job.pid = m.pid;
      else {
        this.jobs.delete(m.id);
        job.resolve(m.result);
        if (this.jobs.size === 0) {
          child.unref();
          child.channel?.unref();
        }
      }
    });
    // Its jobs can no longer be watched: end them, and say why they ended.
    const abandon = (why: string) => {
      if (this.child === child) this.child = null;
      for (const [id, job] of this.jobs) {
        if (job.pid !== undefined) try { process.kill(-job.pid, 'SIGKILL'); } catch {}
        this.jobs.delete(id);
        job.resolve({ ...notStartedResult('', job.start), error: why });
      }
    };
    // A fork that fails (EAGAIN at the process limit, EMFILE, ENOENT) emits 'error' and never
    // 'exit': without this, its jobs would wait forever with their leases kept alive.
    child.on('error', (err) => {
      if (child.pid === undefined) abandon(`could not start: the job runner process could not be started (${(err as NodeJS.ErrnoException).code ?? err.message})`);
    });
    child.once('exit', (code, signal) => abandon(`the job runner process ended (${signal ?? `exit code ${code}`}) while the job ran; its processes were killed`));
    child.unref();
    return child;
  }
}

/** The runner's side: run what the worker sends, answer each result. */
if (process.env[RUNNER_ENV] === '1' && process.send) {
  // Output files are made 0600 (folders 0700) whatever the umask, which is now the jobs'.
  if (process.argv[2]) process.umask(Number.parseInt(process.argv[2], 8));
  delete process.env[RUNNER_ENV]; // not for the jobs
  const send = process.send.bind(process);
  const jobs = new Map<number, RunningJob>();
  process.on('message', (m: ToRunner) => {
    if (m.t === 'run') {
      let job: RunningJob;
      try {
        job = runJob(m.opts);
      } catch (e) {
        // One job's failure is that job's alone: this process runs every other job too.
        job = notStarted(String((e as Error)?.message ?? e).split('\n')[0]!, performance.now());
      }
      jobs.set(m.id, job);
      if (job.pid !== undefined) send({ t: 'started', id: m.id, pid: job.pid } satisfies FromRunner);
      void job.done.then((result) => {
        jobs.delete(m.id);
        if (process.connected) send({ t: 'done', id: m.id, result } satisfies FromRunner);
      });
    } else if (m.t === 'cancel') jobs.get(m.id)?.cancel();
    else jobs.get(m.id)?.kill();
  });
  // The worker is gone (killed, even with SIGKILL) while jobs still run: end their groups, or
  // they would run on beside their retry. Only a host on this machine could end them otherwise,
  // and over PostgreSQL the machine whose worker died may have none left.
  process.once('disconnect', () => {
    for (const job of jobs.values()) job.kill();
    process.exit(0);
  });
}
