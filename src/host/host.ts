// The host: the one process that owns the data directory's engine. It answers every API call,
// local or from a client over the socket, and keeps what is not in the log: which workers are
// alive, the leases their heartbeats extend, and the claim requests waiting for work.
import type { AttemptResult } from '../domain/decide.ts';
import type { Config } from '../domain/config.ts';
import type { JobSpec } from '../domain/job-spec.ts';
import { FINAL_STATES, type JobState, type JobView } from '../domain/types.ts';
import type { Claim, Engine } from '../engine/engine.ts';
import { isJobState } from '../engine/engine.ts';
import { QueuectlError, isQueuectlError } from '../errors.ts';
import type { AttemptOutput, StoredEvent } from '../events.ts';
import { JOB_STATES } from '../domain/types.ts';
import { hostname } from 'node:os';
import { isAlive, killAttempt, runTag } from './pids.ts';

export interface RunningAttempt { jobId: string; attempt: number }

/** A byte position in each of an attempt's streams. */
export interface Offsets {
  stdout: number;
  stderr: number;
}
const STREAMS = ['stdout', 'stderr'] as const;

/** Where the queue is kept, as `status` names it: never a password (see postgres/url.ts). */
export type Backend = { type: 'leveldb'; path: string } | { type: 'postgresql'; url: string };

export interface StatusView {
  /** null only for a host made without one (tests over memory-level) */
  backend: Backend | null;
  jobs: Record<JobState, number>;
  /**
   * `host`: the machine the worker runs on (null: a worker of a shared store that never
   * registered its heartbeat). `alive`: false when the worker's process is gone; a worker of
   * this machine is judged by its pid, one of another machine (a shared store) by its heartbeat,
   * which has run out by the database's clock. Its loss is recorded by a host's lease manager,
   * not by a read. A lost worker runs nothing: the jobs it held are in `lost_jobs`, not in `running`.
   */
  workers: { id: string; host: string | null; pid: number; slots: number; running: string[]; since: string; processed: number; alive: boolean; lost_jobs: string[] }[];
  oldest_pending: { id: string; age_seconds: number } | null;
  runs: { total: number; succeeded: number; failed: number; average_seconds: number | null; max_seconds: number | null };
}

export type ClaimAnswer = Claim;

export interface ReportAnswer {
  events: StoredEvent[];
  /** Only when the next claim was asked for: why the report was not recorded. */
  refused?: { code: string; message: string };
  /** Only when asked for: the next claim (null: nothing due now, or the host is stopping). An older host leaves it out. */
  claim?: ClaimAnswer | null;
}

interface Lease { workerId: string; attempt: number; deadline: number; claimedAt: number }

const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** What a durable event does to the lease of its job's claim: a claim starts one, the attempt's end (or the job's) drops it. */
const leaseEffect = (e: StoredEvent): 'start' | 'end' | null => {
  switch (e.type) {
    case 'JobClaimed':
      return 'start';
    case 'JobSucceeded':
    case 'JobFailed':
    case 'JobLeaseExpired':
    case 'JobReleased':
    case 'JobCancelled':
    case 'JobDeadLettered':
    case 'JobRetried':
      return 'end';
    case 'JobEnqueued':
    case 'ConfigSet':
    case 'WorkerStarted':
    case 'WorkerStopped':
      return null;
    default:
      e satisfies never; // a new event must say whether it ends a running attempt
      return null;
  }
};

/** `release`: a worker hands back an attempt its forced stop ended (see JobReleased). */
export interface ReleaseParams {
  jobId: string;
  workerId: string;
  attempt: number;
  /** Why, for `history`, e.g. "forced stop (second SIGINT)". */
  reason: string;
  durationMs: number;
  output: AttemptOutput | null;
}


export class Host {
  readonly engine: Engine;
  private readonly leases = new Map<string, Lease>();
  /**
   * Workers that reach the queue through this host. With a store shared by several hosts, this
   * host watches only their leases in memory (their pids are this machine's); every other
   * machine's leases are judged in the database (SharedLeases).
   */
  private readonly localWorkers = new Set<string>();
  private readonly wakers = new Set<() => void>();
  private leaseTimer: NodeJS.Timeout | null = null;
  /** Set when this process stops hosting: long polls answer at once and claim nothing more. */
  private stopped = false;

  constructor(
    engine: Engine,
    /** What a backend's error means for a user (LevelDB: damage and the way back), or null. */
    readonly explain: (e: unknown) => QueuectlError | null = () => null,
    readonly backend: Backend | null = null,
    /**
     * false: the host of a short command, which answers its own process's one call, never waits
     * for a change and keeps no lease past its exit, so it does not follow the log (with
     * PostgreSQL that would cost a LISTEN connection and a read of the head on every command).
     */
    follows = true,
  ) {
    this.engine = engine;
    // Any durable change may make a job runnable or finish one someone waits for.
    if (follows) engine.store.subscribe((events) => {
      for (const e of events) {
        const effect = leaseEffect(e);
        if (effect === 'start' && e.type === 'JobClaimed' && (!engine.store.leases || this.localWorkers.has(e.workerId))) this.leases.set(e.jobId, { workerId: e.workerId, attempt: e.attempt, deadline: e.leaseUntil, claimedAt: e.at });
        else if (effect === 'end' && 'jobId' in e) this.leases.delete(e.jobId);
      }
      this.wake();
    });
  }

  private wake(): void {
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const w of wakers) w();
  }

  /** Resolve after the next durable change, after `ms`, or when `cancelled` aborts (its caller went away). */
  private changeOrTimeout(ms: number, cancelled?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        cancelled?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.wakers.add(done);
      cancelled?.addEventListener('abort', done);
    });
  }

  // ---- leases ----------------------------------------------------------------------------

  /**
   * Worker hosts watch leases: a processing job whose worker stopped heartbeating, or whose
   * process is gone, becomes JobLeaseExpired and goes through the retry policy.
   */
  async startLeaseManager(): Promise<void> {
    const tick = async () => {
      await this.expireLeases().catch(() => {});
      this.leaseTimer = setTimeout(tick, 1000);
      this.leaseTimer.unref();
    };
    // A shared store's leases are in the database; the pids of other machines' workers mean nothing
    // here. This machine's workers whose process is gone (judged as `status` judges them) are
    // recorded stopped by its next host, as with LevelDB; their jobs' leases run out in the database.
    if (this.engine.store.leases) {
      const [beats, workers] = await Promise.all([this.engine.store.workerBeats?.beats(), this.engine.workers()]);
      const here = hostname();
      for (const w of workers) {
        if (beats?.get(w.id)?.hostname === here && !isAlive(w.pid)) await this.engine.execute({ type: 'workerStop', workerId: w.id, reason: 'process gone' }).catch(() => {});
      }
      return tick();
    }
    const config = await this.engine.getConfig();
    const now = this.engine.clock();
    const workers = await this.engine.workers();
    const livePids = new Map(workers.map((w) => [w.id, isAlive(w.pid)]));
    // Leases are not in the log: a new host gives every running job a fresh lease, except
    // those whose worker process is known to be gone, which expire at once.
    for (const job of await this.engine.listJobs({ state: 'processing', limit: 1_000_000 })) {
      if (job.workerId === null) continue;
      const alive = livePids.get(job.workerId) ?? false;
      this.leases.set(job.id, { workerId: job.workerId, attempt: job.totalAttempts, deadline: alive ? now + config.lease_seconds * 1000 : now, claimedAt: now });
    }
    for (const w of workers) {
      if (!livePids.get(w.id)) await this.engine.execute({ type: 'workerStop', workerId: w.id, reason: 'process gone' }).catch(() => {});
    }
    await tick();
  }

  private async expireLeases(): Promise<void> {
    const now = this.engine.clock();
    if (this.leases.size > 0) {
      // A worker whose process is gone loses its jobs now, not when the lease runs out.
      const pids = new Map((await this.engine.workers()).map((w) => [w.id, w.pid]));
      for (const lease of this.leases.values()) {
        const pid = pids.get(lease.workerId);
        if (pid === undefined ? now - lease.claimedAt > 5000 : !isAlive(pid)) lease.deadline = 0;
      }
    }
    const shared = this.engine.store.leases;
    for (const [jobId, lease] of [...this.leases]) {
      // A shared store's leases run out by the database's clock alone (below): a deadline here
      // only passes without heartbeats while the database is away, which costs no lease.
      if (shared ? lease.deadline !== 0 : lease.deadline > now) continue;
      this.leases.delete(jobId);
      await this.expire(jobId, lease.workerId, lease.attempt);
    }
    // Any machine's lease that the database's clock says ran out (its host or machine died):
    // whichever host gets there first records it; the others are refused (the attempt is the fence).
    if (shared) for (const l of await shared.expiredLeases((await this.engine.getConfig()).lease_seconds * 1000)) await this.expire(l.jobId, l.workerId, l.attempt);
  }

  private async expire(jobId: string, workerId: string, attempt: number): Promise<void> {
    killAttempt(runTag(workerId, jobId, attempt));
    await this.engine.execute({ type: 'expireLease', jobId, attempt, reason: 'worker lost' }).catch((e) => {
      if (!isQueuectlError(e)) throw e;
    });
  }

  /** A worker's process has gone (its connection closed and its pid is dead): its jobs are lost now. */
  async workerGone(workerId: string, pid: number): Promise<void> {
    for (let i = 0; i < 30 && isAlive(pid); i++) await wait(100);
    if (isAlive(pid)) return; // still running: it may reconnect; its leases decide
    for (const lease of this.leases.values()) if (lease.workerId === workerId) lease.deadline = 0;
    await this.engine.execute({ type: 'workerStop', workerId, reason: 'process gone' }).catch(() => {});
    await this.expireLeases();
  }

  stop(): void {
    this.stopped = true;
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.wake();
  }

  // ---- the API: every method takes JSON-safe params and returns JSON-safe results ----------

  readonly api = {
    enqueue: async (p: { jobs: JobSpec[]; resent?: boolean }): Promise<string[]> => {
      try {
        await this.engine.execute({ type: 'enqueue', jobs: p.jobs });
      } catch (e) {
        // A resent enqueue (its first answer was lost with a host) that already landed is a success.
        if (!(p.resent && isQueuectlError(e) && e.code === 'QUEUECTL_DUPLICATE_ID' && (await this.alreadyEnqueued(p.jobs)))) throw e;
      }
      return p.jobs.map((j) => j.id);
    },

    /**
     * Long poll: the next runnable job, waiting up to `waitMs` for one to become due. `cancelled`
     * ends the wait when the caller is gone (its connection closed): no job is claimed for it then.
     */
    claim: async (p: { workerId: string; waitMs: number }, cancelled?: AbortSignal): Promise<ClaimAnswer | null> => {
      this.localWorkers.add(p.workerId);
      const until = Date.now() + p.waitMs;
      for (;;) {
        if (this.stopped || cancelled?.aborted) return null;
        const claim = await this.claimNow(p.workerId);
        if (claim) return claim;
        const left = until - Date.now();
        if (left <= 0) return null;
        const due = await this.engine.nextDueAt();
        await this.changeOrTimeout(Math.min(left, due === null ? left : due - this.engine.clock() + 1), cancelled);
      }
    },

    /**
     * A slot's result. With `claim`, also its next job (if one is due now; no waiting) in the
     * same round trip: the claim is queued right behind the report, decided against its staged
     * effects, and usually written in the same group-committed batch. The worker asks for it
     * only while it is not stopping. A refused report (e.g. a stale attempt) is answered in
     * `refused` then, so the claim made with it is not lost; without `claim` it is thrown.
     */
    report: async (p: { jobId: string; workerId: string; attempt: number; result: AttemptResult; claim?: boolean }): Promise<ReportAnswer> => {
      const reported = this.engine.execute({ type: 'report', jobId: p.jobId, workerId: p.workerId, attempt: p.attempt, result: p.result });
      if (!p.claim) return { events: await reported };
      const claiming = this.stopped ? Promise.resolve(null) : this.claimNow(p.workerId);
      const [r, c] = await Promise.allSettled([reported, claiming]);
      // A claim that failed after the report was written (its batch came next, and the disk
      // filled) claimed nothing: the report stands, and the worker's next claim meets the error.
      if (r.status === 'fulfilled') return { events: r.value, claim: c.status === 'fulfilled' ? c.value : null };
      if (c.status === 'rejected') throw c.reason;
      if (!isQueuectlError(r.reason)) throw r.reason;
      return { events: [], refused: { code: r.reason.code, message: r.reason.message }, claim: c.value };
    },

    /** Extends the worker's leases; answers which of its attempts are no longer current (to kill). */
    heartbeat: async (p: { workerId: string; running: RunningAttempt[] }): Promise<{ drop: string[] }> => {
      const config = await this.engine.getConfig();
      const now = this.engine.clock();
      const drop: string[] = [];
      const reported = new Set(p.running.map((r) => r.jobId));
      const shared = this.engine.store.leases;
      if (shared) this.localWorkers.add(p.workerId);
      // where every machine judges whether this worker is alive
      await this.engine.store.workerBeats?.renew(p.workerId, config.lease_seconds * 1000);
      for (const r of p.running) {
        const lease = this.leases.get(r.jobId);
        const same = lease !== undefined && lease.attempt === r.attempt && lease.workerId === p.workerId;
        if (!shared) {
          if (same) lease.deadline = now + config.lease_seconds * 1000;
          else drop.push(r.jobId);
          continue;
        }
        // A shared store's lease is extended in the database, where every host judges it. One
        // this host does not know (it took over from this machine's previous host) is adopted
        // when the database says the worker still holds it.
        if ((lease === undefined || same) && (await shared.renewLease(r.jobId, p.workerId, r.attempt, config.lease_seconds * 1000))) {
          this.leases.set(r.jobId, { workerId: p.workerId, attempt: r.attempt, deadline: now + config.lease_seconds * 1000, claimedAt: lease?.claimedAt ?? now });
        } else {
          this.leases.delete(r.jobId);
          drop.push(r.jobId);
        }
      }
      // A claim the worker does not know about (its answer was lost) will never be run: expire it.
      for (const [jobId, lease] of this.leases) {
        if (lease.workerId === p.workerId && !reported.has(jobId) && now - lease.claimedAt > 5000) lease.deadline = 0;
      }
      return { drop };
    },

    /** A forced stop ended this attempt: the job is pending again without using a retry. */
    release: (p: ReleaseParams): Promise<StoredEvent[]> =>
      this.engine.execute({ type: 'release', jobId: p.jobId, workerId: p.workerId, attempt: p.attempt, reason: p.reason, durationMs: p.durationMs, output: p.output }),


    // Each command is built field by field, never spread from params: a param named `type`
    // must not turn a call into another command.
    workerStart: async (p: { workerId: string; pid: number; slots: number }): Promise<void> => {
      this.localWorkers.add(p.workerId);
      // its heartbeat before its start, so no machine lists it without knowing where it runs
      const beats = this.engine.store.workerBeats;
      if (beats) await beats.register({ workerId: p.workerId, hostname: hostname(), pid: p.pid, slots: p.slots }, (await this.engine.getConfig()).lease_seconds * 1000);
      await this.engine.execute({ type: 'workerStart', workerId: p.workerId, pid: p.pid, slots: p.slots });
    },

    workerStop: async (p: { workerId: string; reason: string }): Promise<void> => {
      await this.engine.execute({ type: 'workerStop', workerId: p.workerId, reason: p.reason });
    },

    cancel: async (p: { id: string }): Promise<JobView> => {
      await this.engine.execute({ type: 'cancel', jobId: p.id });
      return this.engine.requireJob(p.id);
    },

    retry: async (p: { ids: string[]; all: boolean }): Promise<string[]> => {
      const ids = p.all ? (await this.engine.dlq()).map((d) => d.id) : p.ids;
      if (ids.length === 0) return [];
      await this.engine.execute({ type: 'retry', jobIds: ids });
      return ids;
    },

    configSet: async (p: { key: string; value: string }): Promise<Config> => {
      await this.engine.execute({ type: 'configSet', key: p.key, value: p.value });
      return this.engine.getConfig();
    },

    config: (): Promise<Config> => this.engine.getConfig(),

    status: async (): Promise<StatusView> => {
      const [counts, workers, oldest, beats] = await Promise.all([
        this.engine.counts(),
        this.engine.workers(),
        this.engine.oldest('pending'),
        this.engine.store.workerBeats?.beats() ?? null,
      ]);
      const now = this.engine.clock();
      const ended = counts.succeededRuns + counts.failedRuns;
      const here = hostname();
      return {
        backend: this.backend,
        jobs: counts.jobs,
        workers: workers.map((w) => {
          const beat = beats ? beats.get(w.id) : { hostname: here, live: true };
          const host = beat?.hostname ?? null;
          const alive = host === here ? isAlive(w.pid) : beat?.live === true;
          return { id: w.id, host, pid: w.pid, slots: w.slots, running: alive ? w.running : [], since: new Date(w.startedAt).toISOString(), processed: w.processed, alive, lost_jobs: alive ? [] : w.running };
        }),
        oldest_pending: oldest ? { id: oldest.id, age_seconds: Math.max(0, Math.round((now - oldest.createdAt) / 1000)) } : null,
        runs: {
          total: counts.runs,
          succeeded: counts.succeededRuns,
          failed: counts.failedRuns,
          average_seconds: ended > 0 ? counts.totalRunMs / ended / 1000 : null,
          max_seconds: ended > 0 ? counts.maxRunMs / 1000 : null,
        },
      };
    },

    list: async (p: { state?: string; limit?: number }): Promise<JobView[]> => {
      if (p.state !== undefined && !isJobState(p.state)) {
        throw new QueuectlError('QUEUECTL_INVALID_INPUT', `unknown state '${p.state}'; valid states: ${JOB_STATES.join(', ')}`);
      }
      return this.engine.listJobs({ state: p.state, limit: p.limit });
    },

    show: (p: { id: string }): Promise<JobView> => this.engine.requireJob(p.id),

    history: async (p: { id: string }): Promise<StoredEvent[]> => {
      await this.engine.requireJob(p.id);
      return this.engine.history(p.id);
    },

    dlq: async (): Promise<{ id: string; at: number; error: string; attempt: number; job: JobView | null }[]> => {
      const entries = await this.engine.dlq();
      const jobs = await Promise.all(entries.map((d) => this.engine.getJob(d.id)));
      return entries.map((d, i) => ({ ...d, job: jobs[i] ?? null }));
    },

    /** Events from `from` on (at most `limit`); when there are none yet, waits up to `waitMs` for some. */
    events: async (p: { from: number; limit: number; waitMs?: number }, cancelled?: AbortSignal): Promise<StoredEvent[]> => {
      const until = Date.now() + (p.waitMs ?? 0);
      for (;;) {
        const out: StoredEvent[] = [];
        for await (const e of this.engine.store.readEvents(p.from)) {
          out.push(e);
          if (out.length >= p.limit) break;
        }
        const left = until - Date.now();
        if (out.length > 0 || left <= 0 || this.stopped || cancelled?.aborted) return out;
        await this.changeOrTimeout(left, cancelled);
      }
    },

    /** Waits up to `waitMs` until every named job (or every job) has ended; answers their views. */
    wait: async (p: { ids: string[]; waitMs: number }, cancelled?: AbortSignal): Promise<{ done: boolean; jobs: JobView[] }> => {
      const until = Date.now() + p.waitMs;
      for (;;) {
        let jobs: JobView[];
        let done: boolean;
        if (p.ids.length > 0) {
          jobs = await Promise.all(p.ids.map((id) => this.engine.requireJob(id)));
          done = jobs.every((j) => FINAL_STATES.has(j.state));
        } else {
          const counts = await this.engine.counts();
          jobs = [];
          done = counts.jobs.pending + counts.jobs.processing + counts.jobs.failed === 0;
        }
        const left = until - Date.now();
        if (done || left <= 0 || this.stopped || cancelled?.aborted) return { done, jobs };
        await this.changeOrTimeout(left, cancelled);
      }
    },

    /** Nothing running, nothing waiting for a retry, nothing pending that is due (`worker start --drain`). */
    /**
     * The pids of the workers `worker stop` on this data directory may signal: this machine's,
     * and over a shared store only those served by this host (another --home on the same
     * machine may run workers of the same queue: they are not this directory's).
     */
    workersHere: async (): Promise<number[]> => {
      const shared = this.engine.store.leases !== undefined;
      return (await this.engine.workers()).filter((w) => !shared || this.localWorkers.has(w.id)).map((w) => w.pid);
    },

    idle: async (): Promise<boolean> => {
      const { jobs } = await this.engine.counts();
      if (jobs.processing + jobs.failed > 0) return false;
      const due = await this.engine.nextDueAt();
      return due === null || due > this.engine.clock();
    },

    /**
     * Keep an attempt's output where every machine reads it (a shared store; otherwise the files
     * under --home are it). Base64; `from`: where each piece starts in its stream (a running
     * job's output is sent in pieces as it is written), 0 when absent.
     */
    keepOutput: async (p: { jobId: string; attempt: number; stdout: string; stderr: string; from?: Offsets }): Promise<void> => {
      const output = this.engine.store.output;
      if (!output) return;
      const cap = (await this.engine.getConfig()).output_limit;
      for (const stream of STREAMS) await output.put(p.jobId, p.attempt, stream, p.from?.[stream] ?? 0, Buffer.from(p[stream], 'base64'), cap);
    },

    /** An attempt's kept output from a shared store (base64), from `from` on (`logs --follow`), or null: read the files under --home. */
    output: async (p: { jobId: string; attempt: number; from?: Offsets }): Promise<{ stdout: string; stderr: string } | null> => {
      const output = this.engine.store.output;
      if (!output) return null;
      const [stdout, stderr] = await Promise.all(STREAMS.map((stream) => output.read(p.jobId, p.attempt, stream, p.from?.[stream] ?? 0)));
      return { stdout: stdout!.toString('base64'), stderr: stderr!.toString('base64') };
    },

    rebuild: async (): Promise<{ events: number }> => ({ events: await this.engine.rebuild() }),

    verify: (): Promise<{ events: number; differences: string[] }> => this.engine.verify(),
  };

  /** Claim the next due job now, or null. */
  private claimNow(workerId: string): Promise<ClaimAnswer | null> {
    return this.engine.claimNext(workerId);
  }

  private async alreadyEnqueued(jobs: JobSpec[]): Promise<boolean> {
    for (const spec of jobs) {
      const job = await this.engine.getJob(spec.id);
      if (!job || job.command !== spec.command || job.cwd !== spec.cwd) return false;
    }
    return true;
  }
}

export type Api = Host['api'];
export type Method = keyof Api;
export type Params<M extends Method> = Parameters<Api[M]> extends [] ? Record<string, never> : Parameters<Api[M]>[0];
export type Result<M extends Method> = Awaited<ReturnType<Api[M]>>;

export { wait as sleep };
