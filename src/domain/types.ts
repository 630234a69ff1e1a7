export const JOB_STATES = ['pending', 'processing', 'completed', 'failed', 'dead', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const FINAL_STATES: ReadonlySet<JobState> = new Set(['completed', 'dead', 'cancelled']);

/** Everything `show <id>` needs: the job folded from its events (projections/jobs.ts). */
export interface JobView {
  id: string;
  command: string;
  cwd: string;
  state: JobState;
  priority: number;
  maxRetries: number | null; // the job's own limit; null follows config
  runAt: number | null;
  timeoutMs: number | null;
  attempts: number; // runs in the current cycle (reset by a DLQ retry; a run released by a forced stop is not counted)
  totalAttempts: number; // every run ever: the fencing token of the next claim is totalAttempts + 1
  createdAt: number;
  updatedAt: number;
  nextRunAt: number | null; // when pending/failed: the earliest time it may be claimed
  lastError: string | null;
  exitCode: number | null;
  workerId: string | null; // while processing
  leaseUntil: number | null; // while processing
  enqueuedPos: number; // enqueue order, for tie-breaking and listing
}
