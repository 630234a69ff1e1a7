import { hex, type Projection } from './projection.ts';

// The dead-letter queue in the order jobs died:  d:<pos of JobDeadLettered> -> DlqEntry,
// and j:<id> -> that key, so a retry or cancel removes the entry without a scan.

export interface DlqEntry { id: string; at: number; error: string; attempt: number }

export const dlqProjection: Projection = {
  name: 'dlq',
  version: 2,
  reads: (e) => (e.type === 'JobRetried' || e.type === 'JobCancelled' ? [`j:${e.jobId}`] : []),
  apply(e, view) {
    if (e.type === 'JobDeadLettered') {
      const key = `d:${hex(e.pos)}`;
      view.put(key, { id: e.jobId, at: e.at, error: e.error, attempt: e.attempt } satisfies DlqEntry);
      view.put(`j:${e.jobId}`, key);
    } else if (e.type === 'JobRetried' || e.type === 'JobCancelled') {
      const key = view.get<string>(`j:${e.jobId}`);
      if (key === undefined) return;
      view.del(key);
      view.del(`j:${e.jobId}`);
    }
  },
};
