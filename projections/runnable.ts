import type { JobView } from '../src/domain/types.ts';
import { hex, priorityKey, type Projection } from './projection.ts';

// What a worker needs to find the next job fast: pending and failed jobs ordered by
// priority, then due time, then enqueue order.  r:<priority>:<due>:<enqueue pos> -> id

export const runnableKey = (priority: number, dueAt: number, pos: number): string =>
  `r:${priorityKey(priority)}:${hex(Math.max(0, dueAt))}:${hex(pos)}`;

/** The job's key in this index, or null when it is not waiting to run. */
export const runnableKeyOf = (job: JobView | undefined): string | null =>
  job && (job.state === 'pending' || job.state === 'failed') && job.nextRunAt !== null
    ? runnableKey(job.priority, job.nextRunAt, job.enqueuedPos)
    : null;

export const parseRunnableKey = (key: string): { priority: number; dueAt: number; pos: number } => {
  const [, prio = '0', due = '0', pos = '0'] = key.split(':');
  return { priority: Number.parseInt(prio, 16) - 2 ** 31, dueAt: Number.parseInt(due, 16), pos: Number.parseInt(pos, 16) };
};

export const runnableProjection: Projection = {
  name: 'runnable',
  version: 2,
  apply(_e, view, job) {
    if (!job) return;
    const was = runnableKeyOf(job.before);
    const now = runnableKeyOf(job.after);
    if (was === now) return;
    if (was !== null) view.del(was);
    if (now !== null) view.put(now, job.after!.id);
  },
};
