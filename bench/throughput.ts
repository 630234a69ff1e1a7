// Rows 3 and 8: job execution. `worker start --count 4` running `true` jobs, from its start
// until they have completed, against raw spawns of `/bin/sh -c true` at concurrency 4; and the
// same rate with a large backlog pending behind the measured jobs vs a small one.
import { join } from 'node:path';
import { pendingFixture } from './fixtures.ts';
import { rawSpawnThroughput } from './limits.ts';
import {
  type Bench, cliOk, type Context, fmtInt, fmtMs, fmtRate, fmtRatio, freshHome, readLogEvents, removeDir, type Result, size, sizeLabel, startWorker,
  successTimes, watchWorker, writeJobsFile,
} from './lib.ts';

/** Enqueue `n` `true` jobs with the CLI (not timed). */
export const enqueueTrueJobs = async (ctx: Context, home: string, n: number): Promise<void> => {
  const file = join(ctx.tmp, `true-${n}.ndjson`);
  writeJobsFile(file, n, () => ({ command: 'true' }));
  await cliOk(home, ['enqueue', '--file', file], { timeoutMs: 600_000 });
};

export interface Drained {
  /** Date.now() just before the worker was spawned. */
  startedAt: number;
  /** ms from start to the last job's JobSucceeded. */
  toLastMs: number;
  /** ms from start to the worker's exit (--drain waits out one idle claim before it exits); null when it hung. */
  exitMs: number | null;
  completed: number;
  rss?: number;
}

/**
 * `worker start --count 4 --drain` until it exits; times read back from the log. A worker
 * that stops making progress (no output for 30 s: e.g. --drain never sees an empty queue)
 * is killed; if every job had completed by then, the figures still stand (exitMs null).
 */
export const drain = async (ctx: Context, home: string, expected: number, opts: { rss?: boolean } = {}): Promise<Drained> => {
  const w = startWorker(home, ['--count', '4', '--drain'], { rss: opts.rss, tmp: ctx.tmp, timeoutMs: 3_600_000 });
  const how = await watchWorker(w, () => false);
  const exit = await w.exited;
  if (how === 'exited' && exit.code !== 0) throw new Error(`worker start --drain exited ${exit.code ?? exit.signal}: ${exit.stderr.trim().slice(0, 500)}`);
  const times = successTimes(await readLogEvents(home));
  if (times.length < expected) {
    throw new Error(`the worker ${how === 'stalled' ? 'stalled (no output for 30 s) and was killed' : 'exited'} after completing ${times.length} of ${expected} jobs`);
  }
  if (how === 'stalled') ctx.log(`worker start --drain did not exit after all ${expected} jobs completed; killed after 30 s of silence`);
  return { startedAt: w.startedAt, toLastMs: times.reduce((a, b) => Math.max(a, b), 0) - w.startedAt, exitMs: how === 'stalled' ? null : exit.ms, completed: times.length, rss: exit.rss };
};

/** Row 3: N `true` jobs through `worker start --count 4`, from its start until all completed. */
const workerThroughput = async (ctx: Context): Promise<Result> => {
  const n = size(ctx, 'jobs', 100, 5_000);
  const home = freshHome(ctx.tmp, 'row3');
  await enqueueTrueJobs(ctx, home, n);
  ctx.log(`row 3: raw spawn of /bin/sh -c true, ${fmtInt(n)} at concurrency 4`);
  const limitMs = await rawSpawnThroughput(n, 4);
  ctx.log(`row 3: worker start --count 4 --drain over ${fmtInt(n)} pending jobs`);
  const d = await drain(ctx, home, n);
  ctx.shared.set('completed-home', { home, jobs: n });
  const rate = (n * 1000) / d.toLastMs;
  const limitRate = (n * 1000) / limitMs;
  const ratio = rate / limitRate;
  return {
    row: 3,
    metric: `${sizeLabel(n)} \`true\` jobs through worker start --count 4, start to last completion (${fmtMs(d.toLastMs)}; ${d.exitMs === null ? '--drain did not exit' : `exit after ${fmtMs(d.exitMs)}`})`,
    queuectl: fmtRate(rate, 'jobs'),
    limit: `${fmtRate(limitRate, 'spawns')} (raw spawn, concurrency 4)`,
    ratio: fmtRatio(ratio),
    target: '>= 0.8',
    holds: ratio >= 0.8,
    data: { jobs: n, toLastMs: d.toLastMs, exitMs: d.exitMs, rate, limitMs, limitRate, ratio },
  };
};

/**
 * The rate of `worker start --count 4` over the first `k` jobs of a queue holding `k + backlog`
 * pending `true` jobs: from its start to the k-th completion.
 */
const backlogRate = async (ctx: Context, k: number, backlog: number): Promise<{ rate: number; ms: number; firstClaimMs: number }> => {
  const home = freshHome(ctx.tmp, `row8-${backlog}`);
  await pendingFixture(ctx, home, k, backlog);
  const w = startWorker(home, ['--count', '4'], { timeoutMs: 3_600_000 });
  // Its stdout says when k jobs have completed; the times come from the log afterwards.
  const how = await watchWorker(w, () => w.completed >= k);
  const exit = await w.stop();
  if (how !== 'done') throw new Error(`worker start ${how} after ${w.completed} of ${k} jobs: ${exit.stderr.trim().slice(0, 300)}`);
  if (exit.code !== 0) throw new Error(`worker start exited ${exit.code ?? exit.signal}: ${exit.stderr.trim().slice(0, 500)}`);
  const events = await readLogEvents(home);
  removeDir(home);
  const times = successTimes(events).sort((a, b) => a - b);
  if (times.length < k) throw new Error(`the log holds ${times.length} completions, expected at least ${k}`);
  const firstClaim = events.find((e) => e.type === 'JobClaimed')!.at;
  const ms = times[k - 1]! - w.startedAt;
  return { rate: (k * 1000) / ms, ms, firstClaimMs: firstClaim - w.startedAt };
};

/** Row 8: the rate of row 3 with a large backlog pending vs a small one. Best of `rounds`, alternating. */
const backlogFlat = async (ctx: Context): Promise<Result> => {
  const k = size(ctx, 'backlog-jobs', 100, 3_000);
  const big = size(ctx, 'backlog', 2_000, 100_000);
  const small = 100;
  const rounds = ctx.quick ? 1 : 2;
  const best = { small: { rate: 0, ms: 0, firstClaimMs: 0 }, big: { rate: 0, ms: 0, firstClaimMs: 0 } };
  for (let i = 0; i < rounds; i++) {
    for (const [name, backlog] of [['small', small], ['big', big]] as const) {
      ctx.log(`row 8: round ${i + 1}/${rounds}, first ${fmtInt(k)} of ${fmtInt(k + backlog)} pending jobs`);
      const r = await backlogRate(ctx, k, backlog);
      if (r.rate > best[name].rate) best[name] = r;
    }
  }
  const ratio = best.big.rate / best.small.rate;
  return {
    row: 8,
    metric: `rate as in 3 over the first ${sizeLabel(k)} jobs with ${sizeLabel(big)} vs ${small} more pending behind them (best of ${rounds}; first claim ${fmtMs(best.big.firstClaimMs)} vs ${fmtMs(best.small.firstClaimMs)} after start)`,
    queuectl: `${fmtRate(best.big.rate, 'jobs')} (${sizeLabel(big)} pending)`,
    limit: `${fmtRate(best.small.rate, 'jobs')} (${small} pending)`,
    ratio: fmtRatio(ratio),
    target: '>= 0.9',
    holds: ratio >= 0.9,
    data: { measuredJobs: k, backlog: big, smallBacklog: small, rounds, big: best.big, small: best.small, ratio },
  };
};

export const benches: Bench[] = [
  { rows: [3], title: 'worker throughput', run: async (ctx) => [await workerThroughput(ctx)] },
  { rows: [8], title: 'throughput with a backlog', run: async (ctx) => [await backlogFlat(ctx)] },
];
