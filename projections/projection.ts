import type { StoredEvent } from '../src/events.ts';

/**
 * What a reducer sees of its own key space. The same reducer runs over LevelDB, memory-level
 * or a scratch space, so it never reaches the clock, the disk or another projection.
 */
export interface ProjectionView {
  get<T = unknown>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): void;
  del(key: string): void;
}

export interface Projection {
  name: string;
  /** Bump when `apply` changes meaning: stored data of another version is rebuilt on open. */
  version: number;
  apply(event: StoredEvent, view: ProjectionView): Promise<void>;
}

// Fixed-width hex keeps LevelDB's byte order equal to numeric order.
export const hex = (n: number, width = 12): string => n.toString(16).padStart(width, '0');
export const priorityKey = (priority: number): string => hex(priority + 2 ** 31, 8);
