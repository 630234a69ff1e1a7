// Row 9: peak RSS (getrusage maxrss at exit, through a preloaded probe) of
//  - a worker process: `worker start --count 4 --drain` completing real `true` jobs on a data
//    directory that already holds the 1,000,000-event log. A worker completing 1,000,000 real
//    jobs takes ~40 minutes on a 2-core machine, so by default it completes 10,000 (quick: 200);
//    --worker-jobs 1000000 measures the issue's full size.
//  - `enqueue --file` of 1,000,000 jobs (quick: 10,000), one process.
// against the peak RSS of a bare `node -e 0` carrying the same probe.
import { join } from 'node:path';
import { copyFixture, eventsFixture } from './fixtures.ts';
import { bareNodeRss } from './limits.ts';
import { type Bench, cli, type Context, fmtInt, fmtMB, fmtMs, freshHome, type Result, removeDir, size, sizeLabel, writeJobsFile } from './lib.ts';
import { drain, enqueueTrueJobs } from './throughput.ts';

const LIMIT_MB = 100;

const row = (metric: string, rss: number, bare: number, data: Record<string, unknown>): Result => {
  const extra = rss - bare;
  return {
    row: 9,
    metric,
    queuectl: fmtMB(rss),
    limit: `${fmtMB(bare)} (node -e 0)`,
    ratio: `+${fmtMB(extra)}`,
    target: `<= +${LIMIT_MB} MB`,
    holds: extra <= LIMIT_MB * 1e6,
    data: { ...data, rss, bareRss: bare, extra },
  };
};

const peakRss = async (ctx: Context): Promise<Result[]> => {
  const events = size(ctx, 'events', 10_000, 1_000_000);
  const workerJobs = size(ctx, 'worker-jobs', 100, 10_000);
  const fileJobs = size(ctx, 'file-jobs', 5_000, 1_000_000);
  const bare = await bareNodeRss(ctx.tmp);
  const results: Result[] = [];

  const f = copyFixture(await eventsFixture(ctx, events), join(ctx.tmp, 'row9-worker'));
  try {
    await enqueueTrueJobs(ctx, f.home, workerJobs);
    ctx.log(`row 9: worker start --count 4 --drain completing ${fmtInt(workerJobs)} jobs on ${sizeLabel(f.events)} events`);
    const d = await drain(ctx, f.home, f.jobs + workerJobs, { rss: true });
    if (d.rss === undefined) throw new Error('the worker reported no RSS');
    results.push(
      row(
        `peak RSS of worker start --count 4 after completing ${sizeLabel(workerJobs)} real jobs on a ${sizeLabel(f.events)}-event log (${d.exitMs === null ? '--drain did not exit' : fmtMs(d.exitMs)}; the issue's 1M jobs: --worker-jobs 1000000)`,
        d.rss,
        bare,
        { workerJobs, events: f.events, ms: d.exitMs },
      ),
    );
  } finally {
    removeDir(f.home);
  }

  const home = freshHome(ctx.tmp, 'row9-enqueue');
  const file = join(ctx.tmp, `row9-${fileJobs}.ndjson`);
  writeJobsFile(file, fileJobs, (i) => ({ command: `echo job ${i}` }));
  ctx.log(`row 9: enqueue --file of ${fmtInt(fileJobs)} jobs`);
  try {
    const r = await cli(home, ['enqueue', '--file', file], { rss: true, tmp: ctx.tmp, timeoutMs: 3_600_000 });
    if (r.rss === undefined) throw new Error(`enqueue reported no RSS (exit ${r.code ?? r.signal}): ${r.stderr.trim().slice(0, 300)}`);
    // Its peak RSS stands even when it fails; the failure goes into the row.
    const failed = r.code === 0 ? '' : `; FAILED: exit ${r.code ?? r.signal}${r.code === 13 ? ' (Node: the process ended with a top-level await unsettled)' : ''}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n')[0]!.slice(0, 120)}` : ''}`;
    const result = row(`peak RSS of enqueue --file with ${sizeLabel(fileJobs)} jobs (${fmtMs(r.ms)}${failed})`, r.rss, bare, { fileJobs, ms: r.ms, exitCode: r.code });
    if (failed) result.holds = false;
    results.push(result);
  } finally {
    removeDir(home);
    removeDir(file);
  }
  return results;
};

export const benches: Bench[] = [{ rows: [9], title: 'peak RSS', run: peakRss }];
