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
import { OutputSender } from './share-output.ts';
import { notStarted, type RunJobOptions, type RunJobResult, type RunningJob, runJob } from './run-job.ts';
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
  /** Send each attempt's output to the host while it runs, to keep where every machine reads it (PostgreSQL). */
  shareOutput?: boolean;
}

const CLAIM_WAIT_MS = 500;
const HEARTBEAT_MS = 1000;
/** While the queue cannot be written (a full disk), calls are tried again after 0.2 s, doubling up to 5 s. */
const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 5000;

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(2))}s`;

/** Errors after which a call is tried again later (the database restarting is one); any other refusal is final. */
const TRANSIENT = new Set(['QUEUECTL_ENVIRONMENT', 'QUEUECTL_HOST_LOST', 'QUEUECTL_BUSY', 'QUEUECTL_DATABASE_UNAVAILABLE']);

/**
 * Why calls fail, logged once when it starts and once when it ends, whatever the number of
 * slots and retries: a full disk prints one line, not five a second.
 */
class Trouble {
  private current: { code: string; message: string } | null = null;
  constructor(private readonly log: (line: string) => void) {}

  failed(e: { code: string; message: string }): void {
    if (e.message === this.current?.message) return;
    this.current = { code: e.code, message: e.message };
    this.log(`${e.message}; retrying`);
  }

  /** A call succeeded; `wrote`: it appended to the log (a claim that found nothing did not). True when that ends the trouble. */
  ok(wrote: boolean): boolean {
    if (this.current === null) return false;
    const unwritable = this.current.code === 'QUEUECTL_ENVIRONMENT';
    if (unwritable && !wrote) return false;
    this.current = null;
    this.log(unwritable ? 'the log is writable again; carrying on' : 'the queue answers again; carrying on');
    return true;
  }
}

export class WorkerPool {
  readonly workerId = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  private stopping = false;
  /** Set by a forced stop (the second signal): why the jobs it ends are handed back. */
  private forcedStop: string | null = null;
  private readonly running = new Map<string, { attempt: number; handle: RunningJob }>();
  /**
   * Attempts that ended and whose result is still being sent (the queue is away): they stay in
   * the heartbeats, so their leases hold and nobody runs the job again meanwhile.
   */
  private readonly reporting = new Map<string, number>();
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly trouble: Trouble;
  private readonly pausing = new Set<() => void>();

  constructor(private readonly options: WorkerOptions) {
    this.trouble = new Trouble(options.log);
  }

  /** Registers the worker and runs until stop() (or, with drain, until the queue is empty). */
  async run(): Promise<void> {
    const { queue, count } = this.options;
    await queue.call('workerStart', { workerId: this.workerId, pid: process.pid, slots: count });
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
    try {
      await Promise.all(Array.from({ length: count }, () => this.slot()));
    } finally {
      clearInterval(this.heartbeat);
      await queue.call('workerStop', { workerId: this.workerId, reason: 'stopped' }).catch(() => {});
    }
  }

  /** First signal: no new claims, running jobs finish. */
  stop(): void {
    this.stopping = true;
    this.wakeAll();
  }

  /**
   * Second signal: end every running job's process group now. The jobs it ends are released
   * (pending again, no retry used), never reported as failed: the run was cut short by us.
   */
  killRunning(reason: string): void {
    this.stopping = true;
    this.forcedStop = reason;
    this.wakeAll();
    for (const r of this.running.values()) r.handle.kill();
  }

  private async beat(): Promise<void> {
    const running = [...[...this.running].map(([jobId, r]) => ({ jobId, attempt: r.attempt })), ...[...this.reporting].map(([jobId, attempt]) => ({ jobId, attempt }))];
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

  private async slot(): Promise<void> {
    const { queue } = this.options;
    // A claim handed back with the previous report is run even if a stop came meanwhile:
    // it is ours now, and running jobs finish. No new claim is asked for once stopping.
    let next: ClaimAnswer | null = null;
    let delay = RETRY_MIN_MS;
    while (next || !this.stopping) {
      let claim = next;
      next = null;
      if (!claim) {
        try {
          claim = await queue.call('claim', { workerId: this.workerId, waitMs: CLAIM_WAIT_MS });
          if (this.trouble.ok(claim !== null)) this.wakeAll();
          // --drain: stop once there is nothing left to do (asked here, so a failure is retried like a claim's)
          if (!claim && this.options.drain && (await queue.call('idle', {}))) return;
          delay = RETRY_MIN_MS;
        } catch (e) {
          if (!isQueuectlError(e)) throw e;
          this.trouble.failed(e);
          await this.pause(delay);
          delay = Math.min(delay * 2, RETRY_MAX_MS);
          continue;
        }
      }
      if (claim) next = await this.execute(claim);
    }
  }

  /**
   * Before the report: what the attempt wrote that the database lacks (OutputSender sent the
   * rest while it ran). Output the queue cannot take now (the database restarting) is kept and
   * sent again with back-off, like the result after it; output refused for good (or given up by
   * a forced stop) is logged, the result is reported all the same, and the output stays
   * readable on this machine.
   */
  private async shareOutput(jobId: string, sender: OutputSender): Promise<void> {
    for (let delay = RETRY_MIN_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      try {
        await sender.finish();
        return;
      } catch (e) {
        if (isQueuectlError(e) && TRANSIENT.has(e.code) && this.forcedStop === null) {
          this.trouble.failed(e);
          await this.pause(delay);
          continue;
        }
        this.options.log(`${jobId}: its output could not be stored in the database (${(e as Error).message}); \`queuectl logs ${jobId}\` shows it on this machine only`);
        return;
      }
    }
  }

  /** Runs a claimed job and reports its result; answers the next claim when it came with the report. */
  private async execute({ job, attempt, outputLimit }: ClaimAnswer): Promise<ClaimAnswer | null> {
    const { home, log, queue } = this.options;
    const dir = join(home.logs, job.id);
    // A claim that came back with a report after a forced stop is handed back unstarted.
    if (this.forcedStop !== null) return this.release(job.id, attempt, this.forcedStop, 0, null);
    log(`${job.id} started (attempt ${job.attempts}): ${job.command}`);
    // A job that cannot even be handed to a process (the runner cannot be forked) fails alone:
    // a throw here would end every slot, and the jobs the others run.
    const run = (opts: RunJobOptions): RunningJob => {
      try {
        return (this.options.runJob ?? runJob)(opts);
      } catch (e) {
        return notStarted(String((e as Error)?.message ?? e).split('\n')[0]!);
      }
    };
    const handle = run({
      command: job.command,
      cwd: job.cwd,
      env: { QUEUECTL_JOB_ID: job.id, QUEUECTL_ATTEMPT: String(job.attempts), [RUN_TAG]: runTag(this.workerId, job.id, attempt) },
      timeoutMs: job.timeoutMs ?? undefined,
      outputLimit,
      stdoutPath: join(dir, `${attempt}.stdout`),
      stderrPath: join(dir, `${attempt}.stderr`),
      outputShown: join(home.dir, 'logs', job.id),
    });
    this.running.set(job.id, { attempt, handle });
    // sent while it runs, so `logs --follow` on another machine shows it as it comes
    const sender = this.options.shareOutput ? new OutputSender(queue, job.id, attempt, dir, outputLimit) : null;
    sender?.start();
    const r = await handle.done;
    this.reporting.set(job.id, attempt);
    this.running.delete(job.id);
    try {
      return await this.report(job, attempt, r, sender);
    } finally {
      this.reporting.delete(job.id);
    }
  }

  /** Sends an ended attempt's output and result until they are recorded (or refused for good). */
  private async report(job: ClaimAnswer['job'], attempt: number, r: RunJobResult, sender: OutputSender | null): Promise<ClaimAnswer | null> {
    const { log, queue } = this.options;
    if (sender) await this.shareOutput(job.id, sender);
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
    // A result that cannot be recorded now (a full disk) is kept and sent again until it is:
    // the job ran, and running it again would be wrong. Only a forced stop gives up on it.
    for (let delay = RETRY_MIN_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      try {
        // The next claim rides on the report (one round trip, one batch) unless we are stopping.
        const answer = await queue.call('report', { jobId: job.id, workerId: this.workerId, attempt, result, claim: !this.stopping });
        const { refused } = answer;
        if (refused && TRANSIENT.has(refused.code) && this.forcedStop === null && !answer.claim) {
          this.trouble.failed(refused);
          await this.pause(delay);
          continue;
        }
        if (this.trouble.ok(true)) this.wakeAll();
        if (answer.refused) this.notRecorded(job.id, attempt, answer.refused.code, answer.refused.message);
        else log(describe(job.id, answer.events, r.durationMs));
        return answer.claim ?? null;
      } catch (e) {
        if (!isQueuectlError(e)) throw e;
        if (!TRANSIENT.has(e.code) || this.forcedStop !== null) {
          this.notRecorded(job.id, attempt, e.code, e.message);
          return null;
        }
        this.trouble.failed(e);
        await this.pause(delay);
      }
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

  /** Slots waiting to try again do so now (a signal came, or the trouble is over). */
  private wakeAll(): void {
    for (const wake of [...this.pausing]) wake();
  }

  /** Wait before trying again; a signal, or the end of the trouble, cuts it short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.pausing.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.pausing.add(done);
    });
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
