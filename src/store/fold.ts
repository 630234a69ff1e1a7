// The fold every backend shares: events -> projection changes, over a key space the backend
// provides (LevelDB: full keys in one database with an overlay of staged writes; a SQL store:
// rows loaded inside its transaction). Reducers are pure and read only keys loaded up front.
import { evolveJob } from '../domain/evolve.ts';
import type { JobView } from '../domain/types.ts';
import { jobIdOf, type StoredEvent } from '../events.ts';
import type { Projection, ProjectionView } from '../../projections/index.ts';
import type { JobTransition } from '../../projections/projection.ts';

/** The value a key space holds for a key deleted (or known absent) but not yet written. */
export const DELETED = Symbol('deleted');

/** A projection and the prefix of its keys in the key space. */
export type Target = readonly [Projection, string];

/** What a fold reads and writes: full keys, loaded together before they are read. */
export interface KeySpace {
  load(keys: string[]): Promise<void>;
  get(key: string): unknown;
  set(key: string, value: unknown): void;
}

const prefixedView = (space: KeySpace, prefix: string): ProjectionView => ({
  get: (key) => {
    const k = prefix + key;
    return space.get(k) as never;
  },
  put: (key, value) => space.set(prefix + key, value),
  del: (key) => space.set(prefix + key, DELETED),
});

/**
 * Every key folding `events` reads: their jobs, and what each projection declares in `reads`
 * (which looks at an event's content, never its position: a store may load these keys before
 * the events have positions).
 */
export const keysRead = (events: readonly StoredEvent[], targets: readonly Target[]): string[] => {
  const jobsPrefix = targets.find(([p]) => p.name === 'jobs')?.[1] ?? '';
  const keys = new Set<string>();
  for (const e of events) {
    const jobId = jobIdOf(e);
    if (jobId !== null) keys.add(jobsPrefix + jobId);
    for (const [p, prefix] of targets) for (const k of p.reads?.(e) ?? []) keys.add(prefix + k);
  }
  return [...keys];
};

/**
 * Fold events into projections over a key space: load every key the projections will read,
 * then apply them synchronously. Each job event's transition (the job before and after, by
 * evolveJob) is computed once and handed to every projection.
 */
export const fold = async (events: readonly StoredEvent[], space: KeySpace, targets: readonly Target[]): Promise<Map<string, JobView | undefined>> => {
  const jobsPrefix = targets.find(([p]) => p.name === 'jobs')?.[1] ?? '';
  await space.load(keysRead(events, targets));
  const jobs = new Map<string, JobView | undefined>();
  const views = targets.map(([p, prefix]) => [p, prefixedView(space, prefix)] as const);
  for (const e of events) {
    const jobId = jobIdOf(e);
    let job: JobTransition | null = null;
    if (jobId !== null) {
      const before = (jobs.has(jobId) ? jobs.get(jobId) : space.get(jobsPrefix + jobId)) as JobView | undefined;
      job = { before, after: evolveJob(before, e) };
      jobs.set(jobId, job.after);
    }
    for (const [p, view] of views) p.apply(e, view, job);
  }
  return jobs;
};
