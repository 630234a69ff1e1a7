// A job's attempts as `logs` shows them, and `logs --follow`: the output of a running attempt
// printed as it is written, until the attempt ends. The output comes from this machine's files
// (the attempt runs here, or LevelDB) or from the database, where a worker on another machine
// sends it while it runs (src/worker/share-output.ts): whichever has more of a stream.
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { StoredEvent } from '../events.ts';
import type { Queue } from '../host/connect.ts';
import type { Offsets } from '../host/host.ts';
import { oneLine, visible } from './escape.ts';
import { colors } from './context.ts';

export interface Attempt {
  attempt: number;
  started: number;
  /** the event that ended it; null while it runs */
  end: StoredEvent | null;
}

/** The end of each attempt, from the job's events. */
export const attemptsOf = (events: StoredEvent[]): Attempt[] => {
  const attempts = new Map<number, Attempt>();
  for (const e of events) {
    if (e.type === 'JobClaimed') attempts.set(e.attempt, { attempt: e.attempt, started: e.at, end: null });
    else if ((e.type === 'JobSucceeded' || e.type === 'JobFailed' || e.type === 'JobLeaseExpired' || e.type === 'JobReleased') && attempts.has(e.attempt)) attempts.get(e.attempt)!.end = e;
    else if (e.type === 'JobCancelled' && e.attempt !== null && attempts.has(e.attempt)) attempts.get(e.attempt)!.end = e;
  }
  return [...attempts.values()];
};

export const outcome = (end: StoredEvent | null): string => {
  if (end === null) return 'running';
  if (end.type === 'JobSucceeded') return 'exit code 0';
  if (end.type === 'JobFailed') return end.error;
  if (end.type === 'JobLeaseExpired') return end.reason;
  if (end.type === 'JobReleased') return `released: ${end.reason}`;
  if (end.type === 'JobCancelled') return 'cancelled';
  return end.type;
};

/** An attempt's header line, as `logs` prints it. */
export const header = (a: Attempt): string => {
  const duration = a.end && 'durationMs' in a.end ? ` · ${(a.end.durationMs / 1000).toFixed(2)}s` : '';
  return colors.bold(`── attempt ${a.attempt} · ${oneLine(outcome(a.end), 200)}${duration} ──\n`);
};

/** How often `logs --follow` looks for new output and for the attempt's end. */
const FOLLOW_EVERY_MS = 250;
/** The most bytes of a stream read from a file per look. */
const READ_BYTES = 1024 * 1024;
const STREAMS = ['stdout', 'stderr'] as const;

/** Bytes of a file from `offset` (none when there is no file yet). */
const readFrom = (path: string, offset: number): Buffer => {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return Buffer.alloc(0); // not made yet (the attempt runs on another machine, or has written nothing)
  }
  try {
    const buf = Buffer.alloc(READ_BYTES);
    return buf.subarray(0, readSync(fd, buf, 0, READ_BYTES, offset));
  } finally {
    closeSync(fd);
  }
};

/**
 * Print `attempt`'s output from its start as it is written, until the attempt ends; returns
 * the attempt as it ended. `dir`: the job's output folder on this machine. `raw`: the bytes as
 * they are (stdout to stdout, stderr to stderr); else text with a `[stdout]`/`[stderr]` line
 * each time the stream changes, control characters made visible.
 */
export const followAttempt = async (q: Queue, id: string, attempt: number, dir: string, raw: boolean): Promise<Attempt> => {
  const shown: Offsets = { stdout: 0, stderr: 0 };
  // a character split between two reads is decoded once whole (TextDecoder: a global, nothing to load)
  const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  let current: 'stdout' | 'stderr' | null = null;
  let atLineStart = true;
  const print = (name: 'stdout' | 'stderr', data: Buffer) => {
    if (raw) return void (name === 'stdout' ? process.stdout : process.stderr).write(data);
    const text = visible(decoders[name].decode(data, { stream: true }));
    if (text.length === 0) return;
    if (current !== name) {
      process.stdout.write(`${atLineStart ? '' : '\n'}${colors.dim(`[${name}]`)}\n`);
      current = name;
    }
    process.stdout.write(text);
    atLineStart = text.endsWith('\n');
  };
  for (;;) {
    // the end is read before the output: once it is seen, the output read next is complete
    const now = attemptsOf(await q.call('history', { id })).find((a) => a.attempt === attempt);
    if (!now) throw new Error(`attempt ${attempt} of '${id}' is gone from its history`);
    // read until a look brings nothing new (a backlog takes several)
    for (let more = true; more; ) {
      more = false;
      const remote = await q.call('output', { jobId: id, attempt, from: shown });
      for (const name of STREAMS) {
        const local = readFrom(join(dir, `${attempt}.${name}`), shown[name]);
        const kept = remote === null ? null : Buffer.from(remote[name], 'base64');
        const data = kept !== null && kept.length > local.length ? kept : local;
        if (data.length === 0) continue;
        print(name, data);
        shown[name] += data.length;
        more = true;
      }
    }
    if (now.end !== null) {
      if (!raw && !atLineStart) process.stdout.write('\n');
      return now;
    }
    await new Promise((r) => setTimeout(r, FOLLOW_EVERY_MS));
  }
};
