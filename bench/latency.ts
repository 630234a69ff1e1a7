// Row 4: enqueue-to-start latency with an idle worker. A client enqueues one job at a time
// through a running `worker start --count 1`; the clock runs from the enqueue's answer to the
// moment the job's shell is running (it writes a line to a FIFO this process reads). The limit
// is the same moment for a raw spawn: from spawn() to the shell's line on the same FIFO.
import { resolveHome } from '../src/home.ts';
import { openQueue } from '../src/host/connect.ts';
import { spec } from './fixtures.ts';
import { rawSpawnLatency, StartSignal } from './limits.ts';
import { type Bench, type Context, fmtInt, fmtMs, freshHome, now, percentile, type Result, size, sleep, startWorker, waitForHost } from './lib.ts';

const signed = (ms: number): string => `${ms >= 0 ? '+' : '-'}${fmtMs(Math.abs(ms))}`;

const enqueueToStart = async (ctx: Context): Promise<Result[]> => {
  const n = size(ctx, 'latency-jobs', 30, 500);
  const signal = new StartSignal(ctx.tmp);
  const home = freshHome(ctx.tmp, 'row4');
  const worker = startWorker(home, ['--count', '1']);
  try {
    ctx.log(`row 4: raw spawn start latency, ${fmtInt(n)} spawns one at a time`);
    const raw = await rawSpawnLatency(ctx.tmp, n);
    await waitForHost(home);
    const q = openQueue(resolveHome(home), { serve: false });
    const samples: number[] = [];
    const answers: number[] = [];
    try {
      ctx.log(`row 4: enqueue-to-start latency, ${fmtInt(n)} jobs one at a time, idle worker`);
      const warmup = 3;
      for (let i = -warmup; i < n; i++) {
        const tag = `job-${i}`;
        const id = `latency${i < 0 ? `-warm${-i}` : `-${i}`}`;
        const arrived = signal.arrival(tag);
        const sent = now();
        await q.call('enqueue', { jobs: [spec(id, signal.command(tag))] });
        const answered = now();
        const started = await arrived;
        if (i >= 0) {
          samples.push(started - answered);
          answers.push(answered - sent);
        }
        // Let the job finish and the worker go back to waiting for a claim: idle again.
        await q.call('wait', { ids: [id], waitMs: 10_000 });
        await sleep(20);
      }
    } finally {
      await q.close();
    }
    const p = (xs: number[], pct: number) => percentile(xs, pct);
    const rows: Result[] = [];
    for (const [pct, slack] of [[50, 5], [99, 20]] as const) {
      const mine = p(samples, pct);
      const limit = p(raw, pct);
      rows.push({
        row: 4,
        metric: `enqueue-to-start latency, idle worker, p${pct} over ${fmtInt(n)} jobs (from the enqueue's answer; the answer took p50 ${fmtMs(p(answers, 50))})`,
        queuectl: fmtMs(mine),
        limit: `${fmtMs(limit)} (raw spawn start, p${pct})`,
        ratio: signed(mine - limit),
        target: `<= limit + ${slack} ms`,
        holds: mine <= limit + slack,
        data: { percentile: pct, ms: mine, limitMs: limit, differenceMs: mine - limit, samples: samples.length, answerP50: p(answers, 50) },
      });
    }
    return rows;
  } finally {
    signal.close();
    await worker.stop();
  }
};

export const benches: Bench[] = [{ rows: [4], title: 'enqueue-to-start latency', run: enqueueToStart }];
