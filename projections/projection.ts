import type { JobView } from '../src/domain/types.ts';
import type { StoredEvent } from '../src/events.ts';

/**
 * What a reducer sees of its own key space. Reads are synchronous: the store fetches every key
 * a projection declares in `reads` before folding, so reducers stay plain functions and the
 * same reducer runs over LevelDB, memory-level or a scratch space.
 */
export interface ProjectionView {
  get<T = unknown>(key: string): T | undefined;
  put(key: string, value: unknown): void;
  del(key: string): void;
}

/** A job event's effect on the job, as projections/jobs.ts folds it (null for other events). */
export interface JobTransition {
  before: JobView | undefined;
  after: JobView | undefined;
}

export interface Projection {
  name: string;
  /** Bump when `apply` changes meaning: stored data of another version is rebuilt on open. */
  version: number;
  /** The keys `apply` will read for this event (its own key space). */
  reads?(event: StoredEvent): readonly string[];
  apply(event: StoredEvent, view: ProjectionView, job: JobTransition | null): void;
}

// Fixed-width hex keeps LevelDB's byte order equal to numeric order.
export const hex = (n: number, width = 12): string => n.toString(16).padStart(width, '0');
export const priorityKey = (priority: number): string => hex(priority + 2 ** 31, 8);
