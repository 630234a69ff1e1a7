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

export const workersProjection: Projection = {
  name: 'workers',
  version: 1,
  async apply(e: StoredEvent, view) {
    switch (e.type) {
      case 'WorkerStarted':
        return view.put(e.workerId, { id: e.workerId, pid: e.pid, slots: e.slots, startedAt: e.at, running: [], processed: 0 } satisfies WorkerView);
      case 'WorkerStopped':
        return view.del(e.workerId);
      case 'JobClaimed':
      case 'JobSucceeded':
      case 'JobFailed':
      case 'JobLeaseExpired':
      case 'JobCancelled': {
        if (e.workerId === null) return;
        const w = await view.get<WorkerView>(e.workerId);
        if (!w) return;
        const running = w.running.filter((id) => id !== e.jobId);
        if (e.type === 'JobClaimed') running.push(e.jobId);
        const processed = w.processed + (e.type === 'JobSucceeded' || e.type === 'JobFailed' ? 1 : 0);
        return view.put(e.workerId, { ...w, running, processed });
      }
      default:
        return;
    }
  },
};
