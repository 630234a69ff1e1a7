import type { Projection } from './projection.ts';

/** The job view itself; the store computes the transition with evolveJob (src/domain/evolve.ts) and hands it to every projection. */
export const jobsProjection: Projection = {
  name: 'jobs',
  version: 2,
  apply(e, view, job) {
    if (job?.after && job.after !== job.before) view.put(job.after.id, job.after);
  },
};
