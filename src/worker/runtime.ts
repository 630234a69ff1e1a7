// The worker runtime: N slots in one process, each claiming a job through the queue, running
// it in its own process group and reporting the result. Heartbeats keep the claims' leases
// alive and tell a slot when its job was cancelled or its claim lost.
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AttemptResult } from '../domain/decide.ts';
import { isQueuectlError } from '../errors.ts';
import type { AttemptOutput, StoredEvent } from '../events.ts';
import type { Home } from '../home.ts';
import type { Queue } from '../host/connect.ts';
import type { ClaimAnswer } from '../host/host.ts';
import { type RunJobOptions, type RunningJob, runJob } from './run-job.ts';
import { RUN_TAG, runTag } from '../host/pids.ts';

export interface WorkerOptions {
  queue: Queue;
  home: Home;
  count: number;
  /** Exit once nothing is running, waiting for a retry, or pending and due (later run_at jobs stay queued). */
  drain: boolean;
  log: (line: string) => void;
  /** How a job is run: in this process by default; `worker start` runs them from a JobRunner. */
  runJob?: (opts: RunJobOptions) => RunningJob;
}

const CLAIM_WAIT_MS = 500;
const HEARTBEAT_MS = 1000;

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(2))}s`;

export class WorkerPool {
  readonly workerId = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  private stopping = false;
  /** Set by a forced stop (the second signal): why the jobs it ends are handed back. */
  private forcedStop: string | null = null;
  private readonly running = new Map<string, { attempt: number; handle: RunningJob }>();
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(private readonly options: WorkerOptions) {}

  /** Registers the worker and runs until stop() (or, with drain, until the queue is empty). */
  async run(): Promise<void> {
    const { queue, count } = this.options;
    await queue.call('workerStart', { workerId: this.workerId, pid: process.pid, slots: count });
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
    try {
      await Promise.all(Array.from({ length: count }, (_, slot) => this.slot(slot)));
    } finally {
      clearInterval(this.heartbeat);
      await queue.call('workerStop', { workerId: this.workerId, reason: 'stopped' }).catch(() => {});
    }
  }

  /** First signal: no new claims, running jobs finish. */
  stop(): void {
    this.stopping = true;
  }

  /**
   * Second signal: end every running job's process group now. The jobs it ends are released
   * (pending again, no retry used), never reported as failed: the run was cut short by us.
   */
  killRunning(reason: string): void {
    this.stopping = true;
    this.forcedStop = reason;
    for (const r of this.running.values()) r.handle.kill();
  }

  private async beat(): Promise<void> {
    const running = [...this.running].map(([jobId, r]) => ({ jobId, attempt: r.attempt }));
    try {
      const { drop } = await this.options.queue.call('heartbeat', { workerId: this.workerId, running });
      for (const jobId of drop) {
        const r = this.running.get(jobId);
        if (r) {
          this.options.log(`${jobId} was cancelled (or its claim expired): ending it`);
          r.handle.cancel();
        }
      }
    } catch {
      // the queue reconnects on the next call; a missed beat costs nothing while leases last
    }
  }

  private async slot(slot: number): Promise<void> {
    const { queue } = this.options;
    // A claim handed back with the previous report is run even if a stop came meanwhile:
    // it is ours now, and running jobs finish. No new claim is asked for once stopping.
    let next: ClaimAnswer | null = null;
    while (next || !this.stopping) {
      let claim = next;
      next = null;
      if (!claim) {
        try {
          claim = await queue.call('claim', { workerId: this.workerId, waitMs: CLAIM_WAIT_MS });
        } catch (e) {
          if (!isQueuectlError(e)) throw e;
          this.options.log(`slot ${slot}: ${e.message}; retrying`);
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
      }
      if (claim) next = await this.execute(claim);
      else if (this.options.drain && (await queue.call('idle', {}))) return;
    }
  }

  /** Runs a claimed job and reports its result; answers the next claim when it came with the report. */
  private async execute({ job, attempt, outputLimit }: ClaimAnswer): Promise<ClaimAnswer | null> {
    const { home, log, queue } = this.options;
    const dir = join(home.logs, job.id);
    // A claim that came back with a report after a forced stop is handed back unstarted.
    if (this.forcedStop !== null) return this.release(job.id, attempt, this.forcedStop, 0, null);
    log(`${job.id} started (attempt ${job.attempts}): ${job.command}`);
    const handle = (this.options.runJob ?? runJob)({
      command: job.command,
      cwd: job.cwd,
      env: { QUEUECTL_JOB_ID: job.id, QUEUECTL_ATTEMPT: String(job.attempts), [RUN_TAG]: runTag(this.workerId, job.id, attempt) },
      timeoutMs: job.timeoutMs ?? undefined,
      outputLimit,
      stdoutPath: join(dir, `${attempt}.stdout`),
      stderrPath: join(dir, `${attempt}.stderr`),
    });
    this.running.set(job.id, { attempt, handle });
    const r = await handle.done;
    this.running.delete(job.id);
    const result: AttemptResult = {
      durationMs: Math.round(r.durationMs),
      exitCode: r.exitCode,
      signal: r.signal,
      timedOut: r.timedOut,
      error: r.error,
      output: { stdout: r.stdout, stderr: r.stderr },
    };
    // Ended by our own forced stop (not by a timeout, or on its own first): not a failed run.
    if (r.cancelled && this.forcedStop !== null) return this.release(job.id, attempt, this.forcedStop, result.durationMs, result.output);
    try {
      // The next claim rides on the report (one round trip, one batch) unless we are stopping.
      const answer = await queue.call('report', { jobId: job.id, workerId: this.workerId, attempt, result, claim: !this.stopping });
      if (answer.refused) this.notRecorded(job.id, attempt, answer.refused.code, answer.refused.message);
      else log(describe(job.id, answer.events, r.durationMs));
      return answer.claim ?? null;
    } catch (e) {
      if (!isQueuectlError(e)) throw e;
      this.notRecorded(job.id, attempt, e.code, e.message);
      return null;
    }
  }

  /** Hand an attempt back (JobReleased). Asks for no next claim: only a forced stop releases. */
  private async release(jobId: string, attempt: number, reason: string, durationMs: number, output: AttemptOutput | null): Promise<null> {
    try {
      await this.options.queue.call('release', { jobId, workerId: this.workerId, attempt, reason, durationMs, output });
      this.options.log(
        output === null
          ? `${jobId} handed back unstarted (${reason}); back to pending`
          : `${jobId} ended by ${reason} after ${seconds(durationMs)}; back to pending (this run does not count as a retry)`,
      );
    } catch (e) {
      if (!isQueuectlError(e)) throw e;
      this.notRecorded(jobId, attempt, e.code, e.message);
    }
    return null;
  }

  private notRecorded(jobId: string, attempt: number, code: string, message: string): void {
    this.options.log(
      code === 'QUEUECTL_STALE_ATTEMPT'
        ? `${jobId} ended; its attempt was no longer current (cancelled, or claim expired), so the result was not recorded`
        : `${jobId}: result of attempt ${attempt} not recorded: ${message}`,
    );
  }
}

/** One line per transition, as the foreground worker prints it. */
const describe = (id: string, events: StoredEvent[], durationMs: number): string => {
  const e = events[0];
  if (e?.type === 'JobSucceeded') return `${id} completed in ${seconds(durationMs)}`;
  if (e?.type === 'JobFailed') {
    const runs = e.maxRetries + 1;
    if (e.retryAt === null) return `${id} failed after ${seconds(durationMs)}: ${e.error}; moved to the DLQ after ${runs} attempt${runs === 1 ? '' : 's'}`;
    return `${id} failed after ${seconds(durationMs)}: ${e.error}; retry ${e.retry}/${e.maxRetries} in ${seconds(e.retryAt - e.at)}`;
  }
  return `${id} finished`;
};
