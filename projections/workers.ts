import type { StoredEvent } from '../src/events.ts';
import type { Projection } from './projection.ts';

// Live workers and the jobs each is running: <workerId> -> WorkerView. A stopped worker is removed.
export interface WorkerView {
  id: string;
  pid: number;
  slots: number;
  startedAt: number;
  running: string[];
  processed: number;
}

const workerOf = (e: StoredEvent): string | null => {
  switch (e.type) {
    case 'WorkerStarted':
    case 'WorkerStopped':
    case 'JobClaimed':
    case 'JobSucceeded':
    case 'JobFailed':
    case 'JobLeaseExpired':
    case 'JobReleased':
    case 'JobCancelled':
      return e.workerId;
    case 'JobEnqueued':
    case 'JobDeadLettered':
    case 'JobRetried':
    case 'ConfigSet':
      return null;
    default:
      e satisfies never; // a new event must say which worker it concerns
      return null;
  }
};

export const workersProjection: Projection = {
  name: 'workers',
  version: 2,
  reads: (e) => {
    const id = workerOf(e);
    return id === null || e.type === 'WorkerStarted' || e.type === 'WorkerStopped' ? [] : [id];
  },
  apply(e, view) {
    if (e.type === 'WorkerStarted') {
      return view.put(e.workerId, { id: e.workerId, pid: e.pid, slots: e.slots, startedAt: e.at, running: [], processed: 0 } satisfies WorkerView);
    }
    if (e.type === 'WorkerStopped') return view.del(e.workerId);
    const id = workerOf(e);
    const w = id === null || !('jobId' in e) ? undefined : view.get<WorkerView>(id);
    if (!w || !('jobId' in e)) return;
    const running = w.running.filter((j) => j !== e.jobId);
    if (e.type === 'JobClaimed') running.push(e.jobId);
    const processed = w.processed + (e.type === 'JobSucceeded' || e.type === 'JobFailed' ? 1 : 0);
    view.put(w.id, { ...w, running, processed });
  },
};
