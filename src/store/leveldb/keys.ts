// How the LevelDB store lays out its one database: sublevels (meta, log, stream, one per
// projection) of JSON values, keyed so that byte order is numeric order.
import type { AbstractLevel, AbstractSublevel } from 'abstract-level';
import { hex } from '../../../projections/projection.ts';

/** Any database of the abstract-level family (classic-level; memory-level in pure-logic tests). */
export type AnyLevel = AbstractLevel<any, string, any>;
export type Sub = AbstractSublevel<AnyLevel, any, string, any>;

// classic-level's write and iterator options (sync, highWaterMarkBytes) are not in abstract-level's types.
export const opts = (o: Record<string, unknown>): {} => o;

/** log: position -> event. */
export const posKey = (pos: number): string => hex(pos);
/** stream: `<job id>/<position>` -> 1, the per-job index `history` reads. */
export const streamKey = (jobId: string, pos: number): string => `${jobId}/${hex(pos)}`;
