import type { StoredEvent } from '../src/events.ts';
import { hex, priorityKey, type Projection } from './projection.ts';

// What a worker needs to find the next job fast: pending and failed jobs ordered by
// priority, then due time, then enqueue order.  r:<priority>:<due>:<enqueue pos> -> id,
// and j:<id> -> its r: key so a claim or cancel can remove it without a scan.

export const RUNNABLE_PREFIX = 'r:';
export const runnableKey = (priority: number, dueAt: number, pos: number): string =>
  `r:${priorityKey(priority)}:${hex(Math.max(0, dueAt))}:${hex(pos)}`;

/** Decode a runnable key into its parts (for the claim query). */
export const parseRunnableKey = (key: string): { priorityKey: string; dueAt: number } => {
  const [, prio = '', due = '0'] = key.split(':');
  return { priorityKey: prio, dueAt: Number.parseInt(due, 16) };
};

interface Entry { key: string; priority: number; pos: number }

export const runnableProjection: Projection = {
  name: 'runnable',
  version: 1,
  async apply(e: StoredEvent, view) {
    if (!('jobId' in e)) return;
    const add = (entry: Omit<Entry, 'key'>, dueAt: number) => {
      const key = runnableKey(entry.priority, dueAt, entry.pos);
      view.put(key, e.jobId);
      view.put(`j:${e.jobId}`, { key, priority: entry.priority, pos: entry.pos });
    };
    if (e.type === 'JobEnqueued') return add({ priority: e.priority, pos: e.pos }, e.runAt ?? e.at);
    const entry = await view.get<Entry>(`j:${e.jobId}`);
    if (!entry) return;
    if (entry.key !== '') view.del(entry.key);
    switch (e.type) {
      case 'JobClaimed':
        // keep priority and position for a retry; the job is no longer runnable
        return view.put(`j:${e.jobId}`, { ...entry, key: '' });
      case 'JobSucceeded':
      case 'JobCancelled':
        return view.del(`j:${e.jobId}`);
      case 'JobFailed':
      case 'JobLeaseExpired':
        return e.retryAt === null ? view.put(`j:${e.jobId}`, { ...entry, key: '' }) : add(entry, e.retryAt);
      case 'JobRetried':
        return add(entry, e.at);
      default:
        return;
    }
  },
};
