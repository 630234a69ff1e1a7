// Row 10: bytes on disk per completed job (its JobEnqueued, JobClaimed and JobSucceeded, with
// the stream index and projections), after a full LevelDB compaction; and, separately, what
// the job's kept output (a directory and two files per attempt, even when empty) costs.
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { type Bench, type Context, du, fmtBytes, fmtInt, freshHome, type Result, size } from './lib.ts';
import { drain, enqueueTrueJobs } from './throughput.ts';

const compact = async (dbDir: string): Promise<void> => {
  const db = new ClassicLevel<string, string>(dbDir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open();
  try {
    // Every key queuectl writes starts with a sublevel prefix: '!name!'.
    await db.compactRange('\u0000', '\u00ff');
  } finally {
    await db.close();
  }
};

const bytesPerJob = async (ctx: Context): Promise<Result[]> => {
  // The data directory row 3 left behind (real worker runs), or a run of our own.
  let done = ctx.shared.get('completed-home') as { home: string; jobs: number } | undefined;
  if (!done) {
    const jobs = size(ctx, 'jobs', 100, 5_000);
    const home = freshHome(ctx.tmp, 'row10');
    ctx.log(`row 10: running ${fmtInt(jobs)} jobs to completion`);
    await enqueueTrueJobs(ctx, home, jobs);
    await drain(ctx, home, jobs);
    done = { home, jobs };
  }
  const dbDir = join(done.home, 'db');
  const before = du(dbDir);
  await compact(dbDir);
  const after = du(dbDir);
  const logs = du(join(done.home, 'logs'));
  const perJob = after.bytes / done.jobs;
  return [
    {
      row: 10,
      metric: `bytes on disk per completed job (enqueue, claim, success), LevelDB after compaction (${fmtInt(done.jobs)} jobs; ${fmtBytes(before.bytes / done.jobs)} before)`,
      queuectl: `${fmtBytes(perJob)}/job`,
      limit: '—',
      ratio: '—',
      target: 'reported',
      holds: null,
      data: { jobs: done.jobs, dbBytesBefore: before.bytes, dbBytesAfter: after.bytes, perJob },
    },
    {
      row: 10,
      metric: `+ kept job output per completed job (empty output: ${Math.max(0, logs.dirs - 1) / done.jobs} directories and ${logs.files / done.jobs} files per job), allocated blocks`,
      queuectl: `${fmtBytes(logs.allocated / done.jobs)}/job`,
      limit: '—',
      ratio: '—',
      target: 'reported',
      holds: null,
      data: { jobs: done.jobs, logsAllocated: logs.allocated, logsFiles: logs.files, logsDirs: logs.dirs, perJob: logs.allocated / done.jobs },
    },
  ];
};

export const benches: Bench[] = [{ rows: [10], title: 'bytes on disk per job', run: bytesPerJob }];
