// Job output in the database, so `logs` on any machine shows an attempt that ran on another.
// Each attempt's stdout and stderr are stored as chunks keyed by their byte offset: a running
// job's output is appended as it comes (`logs --follow` reads from an offset), a chunk written
// twice (a retry after a lost connection) is the same row (the longer, if it grew meanwhile),
// and a reader stops at a missing chunk rather than show bytes out of place. Only the first `cap` bytes (output_limit) are kept.
import type { Queryable } from './connect.ts';

export type Stream = 'stdout' | 'stderr';
const STREAM_ID: Record<Stream, number> = { stdout: 1, stderr: 2 };
/** The largest chunk a row holds (schema.ts checks it): bigger writes are split. */
export const MAX_CHUNK = 1024 * 1024;

export interface OutputChunk {
  jobId: string;
  attempt: number;
  stream: Stream;
  /** where `data` starts in the stream */
  offset: number;
  data: Uint8Array;
}

/** Store what of `chunk` lies below `cap`; returns the number of bytes kept. */
export const appendOutput = async (sql: Queryable, chunk: OutputChunk, cap: number): Promise<number> => {
  const kept = Math.max(0, Math.min(chunk.data.length, cap - chunk.offset));
  if (kept === 0) return 0;
  const rows = [];
  for (let at = 0; at < kept; at += MAX_CHUNK) {
    const piece = Buffer.from(chunk.data.buffer, chunk.data.byteOffset + at, Math.min(MAX_CHUNK, kept - at));
    rows.push({ job_id: chunk.jobId, attempt: chunk.attempt, stream: STREAM_ID[chunk.stream], byte_offset: chunk.offset + at, data: piece });
  }
  // A piece sent again after its answer was lost may have grown meanwhile (the job wrote on):
  // the longer row holds the shorter one's bytes, so it replaces it.
  await sql`insert into job_output ${sql(rows)}
    on conflict (job_id, attempt, stream, byte_offset) do update set data = excluded.data
    where octet_length(excluded.data) > octet_length(job_output.data)`;
  return kept;
};

/** An attempt's stream from byte `from` on, as far as it is contiguous; `next` is where to read on. */
export const readOutput = async (sql: Queryable, jobId: string, attempt: number, stream: Stream, from = 0): Promise<{ data: Buffer; next: number }> => {
  const rows = await sql<{ byte_offset: string; data: Buffer }[]>`
    select byte_offset, data from job_output
    where job_id = ${jobId} and attempt = ${attempt} and stream = ${STREAM_ID[stream]} and byte_offset + octet_length(data) > ${from}
    order by byte_offset`;
  const parts: Buffer[] = [];
  let next = from;
  for (const row of rows) {
    const offset = Number(row.byte_offset);
    if (offset > next) break; // a chunk not (yet) written: stop before the gap
    if (offset + row.data.length <= next) continue; // within what was read (pieces of a stream may overlap)
    parts.push(row.data.subarray(next - offset));
    next = offset + row.data.length;
  }
  return { data: Buffer.concat(parts), next };
};

/** Remove a job's output (retention); returns the chunks removed. */
export const deleteOutput = async (sql: Queryable, jobId: string): Promise<number> => (await sql`delete from job_output where job_id = ${jobId}`).count;
