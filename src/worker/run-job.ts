import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';

export interface OutputCapture { bytes: number; kept: number; truncated: boolean }

export interface RunJobOptions {
  command: string;             // run through /bin/sh -c
  cwd: string;
  env: Record<string, string>; // merged onto process.env
  timeoutMs?: number;          // undefined = no timeout
  graceMs?: number;            // SIGTERM to the group, SIGKILL after this (default 2000)
  outputLimit: number;         // max bytes kept per stream; the rest is counted
  stdoutPath: string;          // the caller creates the directory
  stderrPath: string;
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

// execa's own timeout/cancel/kill only signal the shell, so we never use them: the job runs
// in its own process group (detached) and we signal the group. execa is still worth it for
// spawn errors (a bad cwd gives a clear message instead of "spawn /bin/sh ENOENT", a cwd
// that is a file does not throw synchronously) and its promise waits for the streams.
export function runJob(opts: RunJobOptions): RunningJob {
  const start = performance.now();
  const grace = opts.graceMs ?? 2000;

  const child = execa('/bin/sh', ['-c', opts.command], {
    cwd: opts.cwd, env: opts.env, detached: true, stdin: 'ignore',
    buffer: false, encoding: 'buffer', reject: false,
  });
  const pid = child.pid;
  const stdout = capture(child.stdout, opts.stdoutPath, opts.outputLimit);
  const stderr = capture(child.stderr, opts.stderrPath, opts.outputLimit);

  let reason: 'timeout' | 'cancel' | undefined;
  let exited = false, termSent = false, settled = false;
  let timeoutTimer: NodeJS.Timeout | undefined, killTimer: NodeJS.Timeout | undefined;
  let drainTimer: NodeJS.Timeout | undefined;

  const signalGroup = (sig: NodeJS.Signals | 0): boolean => {
    if (pid === undefined) return false;
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

  if (pid !== undefined && opts.timeoutMs !== undefined) {
    timeoutTimer = setTimeout(() => { reason ??= 'timeout'; terminate(); }, opts.timeoutMs);
  }
  // The job ends with its shell. Background processes it left in the group get the same
  // SIGTERM-then-SIGKILL as a timeout, so nothing outlives the job or holds its output open.
  child.once('exit', () => {
    exited = true;
    clearTimeout(timeoutTimer);
    if (signalGroup(0)) terminate();
    else { clearTimeout(killTimer); drainSoon(); }
  });

  const done = (async (): Promise<RunJobResult> => {
    const r = await child; // after the shell exited and both pipes closed (or were drained)
    settled = true;
    clearTimeout(timeoutTimer);
    clearTimeout(drainTimer);
    // A leftover that closed its output but ignores SIGTERM still gets the pending SIGKILL.
    // Zombies answer signal 0 too (PID 1 in a container often does not reap them), so the
    // timer may outlive the job: unref it so it never holds the worker's exit.
    if (signalGroup(0)) killTimer?.unref();
    else clearTimeout(killTimer);
    const [out, err] = await Promise.all([stdout, stderr]);
    const base = { timedOut: false, cancelled: false, durationMs: elapsed(start), stdout: out, stderr: err };
    if (pid === undefined) {
      const why = (r.originalMessage ?? r.shortMessage ?? 'unknown error').split('\n')[0]!.replace(/\.$/, '');
      return { ...base, exitCode: null, signal: null, error: `could not start: ${why}` };
    }
    const exitCode = r.exitCode ?? null, signal = r.signal ?? null;
    return {
      ...base, exitCode, signal, timedOut: reason === 'timeout', cancelled: reason === 'cancel',
      error: reason === 'timeout' ? `timed out after ${+(opts.timeoutMs! / 1000).toFixed(3)}s`
        : reason === 'cancel' ? 'cancelled'
        : signal ? `killed by ${signal}`
        : exitCode === 127 ? 'exit code 127 (command not found)'
        : exitCode ? `exit code ${exitCode}`
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

// Counts everything, writes only the first `limit` bytes: memory stays bounded whatever the job prints.
// The file (and its directory) is created on the first byte: most jobs print nothing, and two
// opens, two closes and a mkdir per job cost more than running `true`.
function capture(source: Readable, path: string, limit: number): Promise<OutputCapture> {
  let file: WriteStream | null = null;
  const c: OutputCapture = { bytes: 0, kept: 0, truncated: false };
  source.on('data', (chunk: Buffer) => {
    if (c.kept < limit) {
      if (!file) {
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        file = createWriteStream(path, { mode: 0o600 });
        file.on('error', () => {}); // e.g. disk full: the job's outcome does not depend on its log
      }
      const part = chunk.subarray(0, limit - c.kept);
      file.write(part);
      c.kept += part.length;
    }
    c.bytes += chunk.length;
    c.truncated = c.bytes > c.kept;
  });
  return new Promise((resolve) => {
    source.once('close', () => {
      const f = file as WriteStream | null;
      if (!f || f.closed) return resolve(c);
      f.once('close', () => resolve(c));
      f.end();
    });
  });
}

function notStarted(why: string, start: number): RunningJob {
  const empty = (): OutputCapture => ({ bytes: 0, kept: 0, truncated: false });
  return {
    pid: undefined,
    done: Promise.resolve({
      exitCode: null, signal: null, timedOut: false, cancelled: false, durationMs: elapsed(start),
      error: `could not start: ${why}`, stdout: empty(), stderr: empty(),
    }),
    cancel() {},
    kill() {},
  };
}

const elapsed = (start: number) => Math.round(performance.now() - start);
