// The event catalog: immutable facts in past tense. Everything a user sees is folded from these.
// `v` is the schema version of the stored record; `upcast` keeps older logs readable.

export const EVENT_SCHEMA_VERSION = 1;

export interface OutputInfo {
  bytes: number; // bytes the stream produced
  kept: number; // bytes kept on disk (capped by output_limit; fewer when they could not all be written)
  truncated: boolean;
  /** Why not all of it was kept besides the cap, e.g. "no space left on device" (absent when the cap alone decided). */
  error?: string;
}

export interface AttemptOutput {
  stdout: OutputInfo;
  stderr: OutputInfo;
}

export type EventData =
  | {
      type: 'JobEnqueued';
      jobId: string;
      command: string;
      cwd: string;
      priority: number;
      maxRetries: number | null; // null: follow the configured max_retries at each failure
      runAt: number | null; // ms epoch; null: as soon as possible
      timeoutMs: number | null;
    }
  | { type: 'JobClaimed'; jobId: string; workerId: string; attempt: number; leaseUntil: number }
  | {
      type: 'JobSucceeded';
      jobId: string;
      workerId: string;
      attempt: number;
      durationMs: number;
      output: AttemptOutput | null;
    }
  | {
      type: 'JobFailed';
      jobId: string;
      workerId: string;
      attempt: number;
      error: string;
      exitCode: number | null;
      signal: string | null;
      timedOut: boolean;
      durationMs: number;
      output: AttemptOutput | null;
      // The retry decision is part of the fact, so replay never consults the clock or config.
      retryAt: number | null; // null: dead
      retry: number | null; // which retry this schedules (1-based), null when dead
      maxRetries: number; // the limit in force when the decision was made
    }
  | { type: 'JobDeadLettered'; jobId: string; attempt: number; error: string }
  | { type: 'JobRetried'; jobId: string }
  | { type: 'JobCancelled'; jobId: string; workerId: string | null; attempt: number | null }
  | {
      type: 'JobLeaseExpired';
      jobId: string;
      workerId: string;
      attempt: number;
      reason: string;
      retryAt: number | null;
      retry: number | null;
      maxRetries: number;
    }
  | {
      // The run was ended by its own worker's forced stop (a second SIGINT/SIGTERM, `worker stop
      // --force`): the job is pending again and this run does not count against max_retries.
      // `attempt` stays used (the next claim is attempt + 1), so a late report of it is refused.
      type: 'JobReleased';
      jobId: string;
      workerId: string;
      attempt: number;
      reason: string;
      durationMs: number;
      output: AttemptOutput | null; // null: handed back before it started (a claim that came after the stop)
    }
  | { type: 'ConfigSet'; key: string; value: number }
  | { type: 'WorkerStarted'; workerId: string; pid: number; slots: number }
  | { type: 'WorkerStopped'; workerId: string; reason: string };

export type EventType = EventData['type'];

export type StoredEvent = EventData & { pos: number; at: number; v: number };

export type EventOf<T extends EventType> = Extract<StoredEvent, { type: T }>;

/** The job an event belongs to, for the per-job stream index. */
export const jobIdOf = (e: EventData): string | null => ('jobId' in e ? e.jobId : null);

/** Bring a stored record of any schema version to the current shape. */
export const upcast = (raw: StoredEvent): StoredEvent => {
  if (raw.v === EVENT_SCHEMA_VERSION) return raw;
  throw new Error(`event at position ${raw.pos} has schema version ${raw.v}, newer than this queuectl understands; upgrade queuectl`);
};
