import { configProjection } from './config.ts';
import { dlqProjection } from './dlq.ts';
import { jobsProjection } from './jobs.ts';
import type { Projection } from './projection.ts';
import { runnableProjection } from './runnable.ts';
import { statesProjection } from './states.ts';
import { workersProjection } from './workers.ts';

export type { Projection, ProjectionView } from './projection.ts';

/** Every projection, applied in this order to each event. */
export const PROJECTIONS: readonly Projection[] = [
  jobsProjection,
  statesProjection,
  runnableProjection,
  dlqProjection,
  configProjection,
  workersProjection,
];
