// Helpers for the multi-process end-to-end tests (test/e2e-multi-*.test.ts): several
// `worker start` processes sharing one data directory, finding which of them is the host,
// killing it, and reading what happened from the log. Built on ./cli.ts (which tracks every
// process started so none outlives a test). Importing this file has no side effects.
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { type Q, type StoredEvent, type Worker, bounded, events, isAlive, json, ok, until } from './cli.ts';

export interface StatusJson {
  jobs: Record<'pending' | 'processing' | 'completed' | 'failed' | 'dead' | 'cancelled', number>;
  workers: { id: string; pid: number; slots: number; running: string[]; since: string; processed: number }[];
  oldest_pending: { id: string; age_seconds: number } | null;
  runs: { total: number; succeeded: number; failed: number };
}

export const status = async (q: Q): Promise<StatusJson> => json<StatusJson>(await q('status', '--json'));

/** Zero-padded job ids with a prefix: ids('j', 3) -> ['j001', 'j002', 'j003']. */
export const ids = (prefix: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(String(n).length, '0')}`);

/** Enqueue many jobs with ONE queuectl process (`enqueue --file`, NDJSON); returns their ids. */
export const enqueueMany = async (q: Q, dir: string, jobs: { id: string; command: string; [k: string]: unknown }[]): Promise<string[]> => {
  const file = join(dir, `jobs-${jobs[0]?.id ?? 'none'}-${jobs.length}.ndjson`);
  writeFileSync(file, jobs.map((j) => JSON.stringify(j)).join('\n') + '\n');
  const out = ok(await q('enqueue', '--file', file));
  const got = out.trim().split('\n');
  assert.equal(got, jobs.map((j) => j.id), 'enqueue --file prints every id, in order');
  return got;
};

/** The ids a job appended to a file, one per line (missing file: none). */
export const linesOf = (file: string): string[] => {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

export const tally = (values: string[]): Map<string, number> => {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
};

/**
 * The pid, among `pids`, of the process that holds the data directory's LevelDB (it keeps
 * `<home>/db/LOCK` open for as long as it is the host), or null when none of them does.
 */
export const lockHolder = (home: string, pids: number[]): number | null => {
  const lock = join(home, 'db', 'LOCK');
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === lock) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return null;
};

/** Waits until one of `workers` is the host (holds the database) and returns it. */
export const waitForHost = async (home: string, workers: Worker[], ms = 10_000): Promise<Worker> => {
  const pid = await until(() => lockHolder(home, workers.filter((w) => w.running).map((w) => w.pid)), ms, 'a worker process to hold the database', 20);
  return workers.find((w) => w.pid === pid)!;
};

/** SIGKILL a worker process and wait until it is gone (reaped). */
export const sigkill = async (w: Worker): Promise<void> => {
  process.kill(w.pid, 'SIGKILL');
  await bounded(w.exited, 5000, `worker ${w.pid} to die`);
  assert.not.ok(isAlive(w.pid), `worker ${w.pid} is dead`);
};

/** Polls `status --json` until `check` holds; returns the last status. */
export const statusUntil = (q: Q, check: (s: StatusJson) => boolean, ms: number, what: string, every = 150): Promise<StatusJson> =>
  until(async () => {
    const s = await status(q);
    return check(s) ? s : null;
  }, ms, what, every);

/** Every job id of `all` is completed (the projection), checked by counting and by listing. */
export const assertAllCompleted = async (q: Q, all: string[]): Promise<void> => {
  const listed = json<{ id: string; state: string }[]>(await q('list', '--state', 'completed', '--limit', String(all.length + 1000), '--json'));
  const done = new Set(listed.map((j) => j.id));
  const missing = all.filter((id) => !done.has(id));
  assert.equal(missing, [], 'every job is listed as completed');
};

/** The events of each job, from the whole log (`events --json`). */
export const eventsByJob = async (q: Q): Promise<{ all: StoredEvent[]; byJob: Map<string, StoredEvent[]> }> => {
  const all = await events(q);
  const byJob = new Map<string, StoredEvent[]>();
  for (const e of all) {
    if (e.jobId === undefined) continue;
    const list = byJob.get(e.jobId) ?? [];
    list.push(e);
    byJob.set(e.jobId, list);
  }
  return { all, byJob };
};

const ENDS_ATTEMPT = new Set(['JobSucceeded', 'JobFailed', 'JobLeaseExpired', 'JobCancelled']);

/**
 * The claim rules, read from one job's event stream: attempts are claimed in order 1, 2, 3...;
 * a job is never claimed again before its current attempt has ended (no double claim); every
 * attempt ends at most once, and only the current one ends (no late result applied).
 * Returns a description of the first violation, or null.
 */
export const claimViolation = (jobId: string, stream: StoredEvent[]): string | null => {
  let current: { attempt: number; workerId: string; ended: boolean } | null = null;
  let attempts = 0;
  for (const e of stream) {
    if (e.type === 'JobClaimed') {
      if (current && !current.ended) return `${jobId}: claimed by ${e.workerId} (attempt ${e.attempt}) while attempt ${current.attempt} of ${current.workerId} had not ended`;
      if (e.attempt !== attempts + 1) return `${jobId}: claimed as attempt ${e.attempt} after ${attempts} attempts`;
      attempts = e.attempt as number;
      current = { attempt: e.attempt as number, workerId: e.workerId, ended: false };
    } else if (ENDS_ATTEMPT.has(e.type) && !(e.type === 'JobCancelled' && e.attempt === null)) {
      if (!current || current.ended || e.attempt !== current.attempt) {
        return `${jobId}: ${e.type} for attempt ${e.attempt} but the current attempt is ${current ? `${current.attempt}${current.ended ? ' (ended)' : ''}` : 'none'}`;
      }
      current.ended = true;
    } else if (e.type === 'JobRetried') {
      // dlq retry resets the attempts users see, not the fencing token (totalAttempts)
      if (current && !current.ended) return `${jobId}: retried while attempt ${current.attempt} runs`;
      current = null;
    }
  }
  return null;
};

/** Waits until no process of the given list is alive. */
export const allGone = (workers: Worker[], ms = 15_000): Promise<unknown> =>
  until(() => workers.every((w) => !w.running), ms, 'worker processes to exit');

const t0 = Date.now();
/** Progress lines with elapsed time, printed only with QUEUECTL_TEST_VERBOSE=1. */
export const note = (msg: string): void => {
  if (process.env.QUEUECTL_TEST_VERBOSE) process.stderr.write(`  [${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
};
