import { JOB_STATES, type JobState, type JobView } from '../src/domain/types.ts';
import { hex, type Projection } from './projection.ts';

// The index by state (list --state, the oldest pending), every job in enqueue order (list),
// and the counts per state with run statistics.
// Keys:  s:<state>:<enqueue pos> -> id   a:<enqueue pos> -> id   counts -> Counts

export interface Counts {
  jobs: Record<JobState, number>;
  runs: number; // attempts that ended (success, failure or lost worker)
  succeededRuns: number;
  failedRuns: number;
  totalRunMs: number;
  maxRunMs: number;
}

export const emptyCounts = (): Counts => ({
  jobs: Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>,
  runs: 0,
  succeededRuns: 0,
  failedRuns: 0,
  totalRunMs: 0,
  maxRunMs: 0,
});

export const stateKey = (state: JobState, pos: number): string => `s:${state}:${hex(pos)}`;
export const orderKey = (pos: number): string => `a:${hex(pos)}`;

const moved = (before: JobView | undefined, after: JobView | undefined): boolean => before?.state !== after?.state;

export const statesProjection: Projection = {
  name: 'states',
  version: 2,
  reads: () => ['counts'],
  apply(e, view, job) {
    const ran = e.type === 'JobSucceeded' || e.type === 'JobFailed' || e.type === 'JobLeaseExpired';
    if (!job || (!ran && !moved(job.before, job.after))) return;
    const stored = view.get<Counts>('counts');
    // values read may be shared with a batch being written: copy, never mutate
    const counts: Counts = stored ? { ...stored, jobs: { ...stored.jobs } } : emptyCounts();
    if (ran) {
      counts.runs += 1;
      if (e.type === 'JobSucceeded') counts.succeededRuns += 1;
      else counts.failedRuns += 1;
      if (e.type !== 'JobLeaseExpired') {
        counts.totalRunMs += e.durationMs;
        counts.maxRunMs = Math.max(counts.maxRunMs, e.durationMs);
      }
    }
    const { before, after } = job;
    if (moved(before, after)) {
      if (before) {
        view.del(stateKey(before.state, before.enqueuedPos));
        counts.jobs[before.state] -= 1;
      } else if (after) {
        view.put(orderKey(after.enqueuedPos), after.id);
      }
      if (after) {
        view.put(stateKey(after.state, after.enqueuedPos), after.id);
        counts.jobs[after.state] += 1;
      }
    }
    view.put('counts', counts);
  },
};
