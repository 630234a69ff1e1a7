// A small, independent reference model of queuectl's queue rules, for model-based tests.
// It deliberately imports nothing from src/ or projections/: the rules are re-stated here
// plainly (DESIGN.md, "Policy defaults" and "Claims, leases and fencing"), so a mistake in the
// engine, the decisions or a projection shows up as a disagreement with this file.
//
// Rules:
// - A job is pending, processing, completed, failed (waiting for a retry), dead or cancelled.
// - `attempts` counts runs in the current cycle (a DLQ retry starts a new cycle at 0);
//   `totalAttempts` counts every run ever; a claim's attempt (the fencing token) is totalAttempts + 1.
// - A failing job runs at most 1 + max_retries times per cycle (max_retries = the job's own,
//   else the configured one at the time of the failure), then it is dead (in the DLQ).
// - After the n-th run of a cycle fails (n = attempts so far), the retry waits
//   min(backoff_base^n, backoff_max) seconds. A lost lease is a failure like any other.
// - DLQ retry: dead -> pending, attempts 0, due now. Only dead jobs can be retried.
// - Release (a worker's forced stop hands its running attempt back): only the current attempt
//   of a processing job, from its worker; the job is pending and due now, and the run does not
//   count (attempts goes back down; totalAttempts stays, so the next claim is attempt + 1).
// - Cancel: pending, failed or processing -> cancelled; any other state is refused.
// - A report is accepted only for the current attempt of a processing job, from its worker.
// - A claim takes, among pending/failed jobs that are due, the lowest priority number, then
//   the earliest due time (run_at or enqueue time; retry time; DLQ-retry time), then enqueue order.
// - config set validates: max_retries int >= 0, backoff_base number >= 1, backoff_max number >= 0,
//   output_limit int >= 0, lease_seconds int >= 1; other keys are unknown.

export const M_STATES = ['pending', 'processing', 'completed', 'failed', 'dead', 'cancelled'] as const;
export type MState = (typeof M_STATES)[number];

export interface MConfig {
  max_retries: number;
  backoff_base: number;
  backoff_max: number;
  output_limit: number;
  lease_seconds: number;
}

export const M_DEFAULTS: Readonly<MConfig> = Object.freeze({
  max_retries: 3,
  backoff_base: 2,
  backoff_max: 3600,
  output_limit: 1048576,
  lease_seconds: 30,
});

const CONFIG_LIMITS: Record<keyof MConfig, { integer: boolean; min: number }> = {
  max_retries: { integer: true, min: 0 },
  backoff_base: { integer: false, min: 1 },
  backoff_max: { integer: false, min: 0 },
  output_limit: { integer: true, min: 0 },
  lease_seconds: { integer: true, min: 1 },
};

export interface MJob {
  id: string;
  state: MState;
  priority: number;
  maxRetries: number | null;
  attempts: number;
  totalAttempts: number;
  nextRunAt: number | null; // when pending/failed: the due time; otherwise null
  order: number; // enqueue order
  workerId: string | null; // while processing
  leaseUntil: number | null; // while processing
  deadSeq: number | null; // order of arrival in the DLQ while dead
}

export interface MSpec {
  id: string;
  command: string;
  priority: number;
  maxRetries: number | null;
  runAt: number | null;
}

/** The facts the model expects an accepted command to record (only the fields listed are compared). */
export interface MEvent {
  type: string;
  [field: string]: unknown;
}

export type MOutcome = { ok: true; events: MEvent[] } | { ok: false; code: string };
export type MClaim = { id: string; attempt: number; leaseUntil: number } | null;

const ID_RULE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

const refused = (code: string): MOutcome => ({ ok: false, code });

/** The wait before the n-th retry, in ms. */
export const modelBackoffMs = (n: number, config: Pick<MConfig, 'backoff_base' | 'backoff_max'>): number =>
  Math.round(Math.min(config.backoff_base ** n, config.backoff_max) * 1000);

export class QueueModel {
  now: number;
  config: MConfig = { ...M_DEFAULTS };
  readonly jobs = new Map<string, MJob>();
  /** The largest configured max_retries ever in force (bounds attempts of jobs without their own limit). */
  maxConfiguredRetries = M_DEFAULTS.max_retries;
  private enqueued = 0;
  private deaths = 0;

  constructor(now: number) {
    this.now = now;
  }

  advance(ms: number): void {
    this.now += ms;
  }

  ids(): string[] {
    return [...this.jobs.keys()];
  }

  inState(...states: MState[]): MJob[] {
    return [...this.jobs.values()].filter((j) => states.includes(j.state));
  }

  counts(): Record<MState, number> {
    const out = Object.fromEntries(M_STATES.map((s) => [s, 0])) as Record<MState, number>;
    for (const j of this.jobs.values()) out[j.state] += 1;
    return out;
  }

  /** Dead jobs in the order they arrived in the DLQ. */
  dlq(): string[] {
    return this.inState('dead')
      .sort((a, b) => (a.deadSeq ?? 0) - (b.deadSeq ?? 0))
      .map((j) => j.id);
  }

  private waiting(): MJob[] {
    return this.inState('pending', 'failed');
  }

  /** The job a claim takes now, or null. */
  pick(): string | null {
    const due = this.waiting().filter((j) => (j.nextRunAt ?? 0) <= this.now);
    due.sort((a, b) => a.priority - b.priority || (a.nextRunAt ?? 0) - (b.nextRunAt ?? 0) || a.order - b.order);
    return due[0]?.id ?? null;
  }

  /** The earliest due time of any waiting job, due or not; null when none waits. */
  nextDueAt(): number | null {
    const times = this.waiting().map((j) => j.nextRunAt ?? 0);
    return times.length === 0 ? null : Math.min(...times);
  }

  enqueue(specs: readonly MSpec[]): MOutcome {
    if (specs.length === 0) return refused('QUEUECTL_INVALID_INPUT');
    const seen = new Set<string>();
    for (const s of specs) {
      const malformed =
        !ID_RULE.test(s.id) ||
        s.command.trim() === '' ||
        (s.maxRetries !== null && !(Number.isInteger(s.maxRetries) && s.maxRetries >= 0)) ||
        (s.runAt !== null && !Number.isFinite(s.runAt));
      if (malformed) return refused('QUEUECTL_INVALID_INPUT');
      if (seen.has(s.id) || this.jobs.has(s.id)) return refused('QUEUECTL_DUPLICATE_ID');
      seen.add(s.id);
    }
    for (const s of specs) {
      this.jobs.set(s.id, {
        id: s.id,
        state: 'pending',
        priority: s.priority,
        maxRetries: s.maxRetries,
        attempts: 0,
        totalAttempts: 0,
        nextRunAt: s.runAt ?? this.now,
        order: this.enqueued++,
        workerId: null,
        leaseUntil: null,
        deadSeq: null,
      });
    }
    return { ok: true, events: specs.map((s) => ({ type: 'JobEnqueued', jobId: s.id, priority: s.priority, maxRetries: s.maxRetries, runAt: s.runAt })) };
  }

  /** Claim one named job (it must be waiting and due). */
  claim(id: string, workerId: string, leaseMs = this.config.lease_seconds * 1000): MOutcome {
    const job = this.jobs.get(id);
    if (!job) return refused('QUEUECTL_UNKNOWN_JOB');
    if ((job.state !== 'pending' && job.state !== 'failed') || (job.nextRunAt ?? 0) > this.now) return refused('QUEUECTL_NOT_RUNNABLE');
    job.state = 'processing';
    job.attempts += 1;
    job.totalAttempts += 1;
    job.workerId = workerId;
    job.leaseUntil = this.now + leaseMs;
    job.nextRunAt = null;
    return { ok: true, events: [{ type: 'JobClaimed', jobId: id, workerId, attempt: job.totalAttempts, leaseUntil: job.leaseUntil }] };
  }

  /** What a worker asking for work gets: the picked job claimed, or null when nothing is due. */
  claimNext(workerId: string): MClaim {
    const id = this.pick();
    if (id === null) return null;
    const out = this.claim(id, workerId);
    if (!out.ok) throw new Error(`model: picked job ${id} could not be claimed (${out.code})`);
    const job = this.jobs.get(id)!;
    return { id, attempt: job.totalAttempts, leaseUntil: job.leaseUntil! };
  }

  private isCurrent(job: MJob, attempt: number, workerId?: string): boolean {
    return job.state === 'processing' && job.totalAttempts === attempt && (workerId === undefined || job.workerId === workerId);
  }

  /** The retry decision after the current run of `job` failed. */
  private fail(job: MJob, type: 'JobFailed' | 'JobLeaseExpired', attempt: number): MEvent[] {
    const limit = job.maxRetries ?? this.config.max_retries;
    const n = job.attempts;
    job.workerId = null;
    job.leaseUntil = null;
    if (n >= 1 + limit) {
      job.state = 'dead';
      job.nextRunAt = null;
      job.deadSeq = this.deaths++;
      return [
        { type, jobId: job.id, attempt, retryAt: null, retry: null, maxRetries: limit },
        { type: 'JobDeadLettered', jobId: job.id, attempt },
      ];
    }
    const retryAt = this.now + modelBackoffMs(n, this.config);
    job.state = 'failed';
    job.nextRunAt = retryAt;
    return [{ type, jobId: job.id, attempt, retryAt, retry: n, maxRetries: limit }];
  }

  report(id: string, workerId: string, attempt: number, success: boolean): MOutcome {
    const job = this.jobs.get(id);
    if (!job) return refused('QUEUECTL_UNKNOWN_JOB');
    if (!this.isCurrent(job, attempt, workerId)) return refused('QUEUECTL_STALE_ATTEMPT');
    if (!success) return { ok: true, events: this.fail(job, 'JobFailed', attempt) };
    job.state = 'completed';
    job.workerId = null;
    job.leaseUntil = null;
    return { ok: true, events: [{ type: 'JobSucceeded', jobId: id, workerId, attempt }] };
  }

  expireLease(id: string, attempt: number): MOutcome {
    const job = this.jobs.get(id);
    if (!job) return refused('QUEUECTL_UNKNOWN_JOB');
    if (!this.isCurrent(job, attempt)) return refused('QUEUECTL_STALE_ATTEMPT');
    return { ok: true, events: this.fail(job, 'JobLeaseExpired', attempt) };
  }

  release(id: string, workerId: string, attempt: number, reason: string): MOutcome {
    const job = this.jobs.get(id);
    if (!job) return refused('QUEUECTL_UNKNOWN_JOB');
    if (!this.isCurrent(job, attempt, workerId)) return refused('QUEUECTL_STALE_ATTEMPT');
    job.state = 'pending';
    job.attempts -= 1;
    job.nextRunAt = this.now;
    job.workerId = null;
    job.leaseUntil = null;
    return { ok: true, events: [{ type: 'JobReleased', jobId: id, workerId, attempt, reason }] };
  }

  /** DLQ retry: all named jobs must exist and be dead, else nothing happens. */
  retry(ids: readonly string[]): MOutcome {
    if (ids.length === 0) return refused('QUEUECTL_INVALID_INPUT');
    for (const id of ids) {
      const job = this.jobs.get(id);
      if (!job) return refused('QUEUECTL_UNKNOWN_JOB');
      if (job.state !== 'dead') return refused('QUEUECTL_WRONG_STATE');
    }
    // Naming a job twice retries it once: one JobRetried per job.
    const events: MEvent[] = [];
    for (const id of new Set(ids)) {
      const job = this.jobs.get(id)!;
      job.state = 'pending';
      job.attempts = 0;
      job.nextRunAt = this.now;
      job.deadSeq = null;
      events.push({ type: 'JobRetried', jobId: id });
    }
    return { ok: true, events };
  }

  cancel(id: string): MOutcome {
    const job = this.jobs.get(id);
    if (!job) return refused('QUEUECTL_UNKNOWN_JOB');
    if (job.state !== 'pending' && job.state !== 'failed' && job.state !== 'processing') return refused('QUEUECTL_WRONG_STATE');
    const running = job.state === 'processing';
    const event: MEvent = { type: 'JobCancelled', jobId: id, workerId: running ? job.workerId : null, attempt: running ? job.totalAttempts : null };
    job.state = 'cancelled';
    job.nextRunAt = null;
    job.workerId = null;
    job.leaseUntil = null;
    return { ok: true, events: [event] };
  }

  /** `value` is what a user typed (text) or a number. */
  configSet(key: string, value: unknown): MOutcome {
    if (!Object.hasOwn(CONFIG_LIMITS, key)) return refused('QUEUECTL_UNKNOWN_CONFIG_KEY');
    const rule = CONFIG_LIMITS[key as keyof MConfig];
    let n = Number.NaN;
    if (typeof value === 'number') n = value;
    else if (typeof value === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(value)) n = Number(value);
    if (!Number.isFinite(n) || (rule.integer && !Number.isInteger(n)) || n < rule.min) return refused('QUEUECTL_INVALID_CONFIG_VALUE');
    this.config[key as keyof MConfig] = n;
    if (key === 'max_retries') this.maxConfiguredRetries = Math.max(this.maxConfiguredRetries, n);
    return { ok: true, events: [{ type: 'ConfigSet', key, value: n }] };
  }
}
