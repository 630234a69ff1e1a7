// The domain's state: how one event changes a job. With decide (decide.ts) it is the Decider:
// decide reads job views, evolve folds the events it returns into the next views.
import type { StoredEvent } from '../events.ts';
import type { JobView } from './types.ts';

/** evolve(job, event): the job as `show <id>` presents it. Pure; also the domain's state. */
export const evolveJob = (job: JobView | undefined, e: StoredEvent): JobView | undefined => {
  if (e.type === 'JobEnqueued') {
    return {
      id: e.jobId,
      command: e.command,
      cwd: e.cwd,
      state: 'pending',
      priority: e.priority,
      maxRetries: e.maxRetries,
      runAt: e.runAt,
      timeoutMs: e.timeoutMs,
      attempts: 0,
      totalAttempts: 0,
      createdAt: e.at,
      updatedAt: e.at,
      nextRunAt: e.runAt ?? e.at,
      lastError: null,
      exitCode: null,
      workerId: null,
      leaseUntil: null,
      enqueuedPos: e.pos,
    };
  }
  if (!job || !('jobId' in e)) return job;
  const at = { updatedAt: e.at };
  switch (e.type) {
    case 'JobClaimed':
      return { ...job, ...at, state: 'processing', attempts: job.attempts + 1, totalAttempts: e.attempt, workerId: e.workerId, leaseUntil: e.leaseUntil, nextRunAt: null };
    case 'JobSucceeded':
      return { ...job, ...at, state: 'completed', exitCode: 0, lastError: null, workerId: null, leaseUntil: null };
    case 'JobFailed':
      return { ...job, ...at, state: e.retryAt === null ? 'dead' : 'failed', nextRunAt: e.retryAt, lastError: e.error, exitCode: e.exitCode, workerId: null, leaseUntil: null };
    case 'JobLeaseExpired':
      return { ...job, ...at, state: e.retryAt === null ? 'dead' : 'failed', nextRunAt: e.retryAt, lastError: e.reason, exitCode: null, workerId: null, leaseUntil: null };
    case 'JobReleased':
      // due again now; the run it ended does not count against max_retries (totalAttempts stays: fencing)
      return { ...job, ...at, state: 'pending', attempts: job.attempts - 1, nextRunAt: e.at, workerId: null, leaseUntil: null };
    case 'JobDeadLettered':
      return { ...job, ...at, state: 'dead', nextRunAt: null };
    case 'JobRetried':
      return { ...job, ...at, state: 'pending', attempts: 0, nextRunAt: e.at };
    case 'JobCancelled':
      return { ...job, ...at, state: 'cancelled', nextRunAt: null, workerId: null, leaseUntil: null };
    default:
      e satisfies never; // a new job event must say what it does to the job
      return job;
  }
};
