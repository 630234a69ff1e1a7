import { JOB_STATES, type JobState } from '../src/domain/types.ts';
import type { StoredEvent } from '../src/events.ts';
import { hex, type Projection } from './projection.ts';

// The index by state (list --state, oldest pending) and the counts per state with run statistics.
// Keys:  j:<id> -> {s, p}   s:<state>:<enqueue pos> -> id   a:<enqueue pos> -> id   counts -> Counts

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

/** The state a job is in after an event, or null when the event does not move it. */
const nextState = (e: StoredEvent): JobState | null => {
  switch (e.type) {
    case 'JobEnqueued':
    case 'JobRetried':
      return 'pending';
    case 'JobClaimed':
      return 'processing';
    case 'JobSucceeded':
      return 'completed';
    case 'JobFailed':
    case 'JobLeaseExpired':
      return e.retryAt === null ? 'dead' : 'failed';
    case 'JobCancelled':
      return 'cancelled';
    default:
      return null;
  }
};

export const stateKey = (state: JobState, pos: number): string => `s:${state}:${hex(pos)}`;
export const orderKey = (pos: number): string => `a:${hex(pos)}`;

export const statesProjection: Projection = {
  name: 'states',
  version: 1,
  async apply(e, view) {
    if (!('jobId' in e)) return;
    const to = nextState(e);
    const stored = await view.get<Counts>('counts');
    // values read may be shared with a batch being written: copy, never mutate
    const counts: Counts = stored ? { ...stored, jobs: { ...stored.jobs } } : emptyCounts();
    if (e.type === 'JobSucceeded' || e.type === 'JobFailed') {
      counts.runs += 1;
      counts[e.type === 'JobSucceeded' ? 'succeededRuns' : 'failedRuns'] += 1;
      counts.totalRunMs += e.durationMs;
      counts.maxRunMs = Math.max(counts.maxRunMs, e.durationMs);
    } else if (e.type === 'JobLeaseExpired') {
      counts.runs += 1;
      counts.failedRuns += 1;
    }
    if (to !== null) {
      const was = e.type === 'JobEnqueued' ? undefined : await view.get<{ s: JobState; p: number }>(`j:${e.jobId}`);
      const pos = was?.p ?? e.pos;
      if (was) {
        view.del(stateKey(was.s, pos));
        counts.jobs[was.s] -= 1;
      } else {
        view.put(orderKey(pos), e.jobId);
      }
      view.put(`j:${e.jobId}`, { s: to, p: pos });
      view.put(stateKey(to, pos), e.jobId);
      counts.jobs[to] += 1;
    }
    view.put('counts', counts);
  },
};
