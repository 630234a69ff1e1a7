import type { Config } from './config.ts';
import type { JobView } from './types.ts';

/** The n-th retry (1-based) waits backoff_base^n seconds, capped by backoff_max. */
export const backoffMs = (retry: number, config: Pick<Config, 'backoff_base' | 'backoff_max'>): number =>
  Math.round(Math.min(config.backoff_base ** retry, config.backoff_max) * 1000);

/** The limit that applies now: the job's own, else the configured one at the time of the failure. */
export const effectiveMaxRetries = (job: Pick<JobView, 'maxRetries'>, config: Config): number =>
  job.maxRetries ?? config.max_retries;

export interface RetryDecision {
  retryAt: number | null; // null: dead
  retry: number | null;
  maxRetries: number;
}

/** After the current attempt failed: retry later, or dead once 1 + max_retries runs are spent. */
export const decideRetry = (job: Pick<JobView, 'attempts' | 'maxRetries'>, config: Config, now: number): RetryDecision => {
  const maxRetries = effectiveMaxRetries(job, config);
  const retry = job.attempts; // after run k fails, the k-th retry is next
  if (retry > maxRetries) return { retryAt: null, retry: null, maxRetries };
  return { retryAt: now + backoffMs(retry, config), retry, maxRetries };
};

export const isDue = (job: Pick<JobView, 'state' | 'nextRunAt'>, now: number): boolean =>
  (job.state === 'pending' || job.state === 'failed') && (job.nextRunAt ?? 0) <= now;
