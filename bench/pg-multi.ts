// Rows 12 and 13: the built CLI over PostgreSQL, several hosts (one --home each) on one queue.
// Row 12: N `true` jobs through three hosts x `worker start --count 4 --drain`, against the same
// jobs through one host on LevelDB (row 3's setup) in the same run. Row 13: enqueue-to-start
// latency with an idle `worker start --count 1` on one host and the enqueues made on another:
// from the moment `enqueue` prints the id (its answer) to the moment the job's shell runs.
// Both need the CLI wired to PostgreSQL (--database-url); until it is, they say so.
import { join } from 'node:path';
import { StartSignal } from './limits.ts';
import {
  type Bench, CLI, cli, cliOk, type Context, fmtInt, fmtMs, fmtRate, fmtRatio, freshHome, launch, now, percentile, type Result, size, sizeLabel, sleep, startWorker,
  watchWorker, writeJobsFile,
} from './lib.ts';
import { schemaUrl, withPostgres } from './pg-server.ts';
import { drain, enqueueTrueJobs } from './throughput.ts';

/** Every `at` of a type in the queue's log, read with `events --json` on `home`. */
const eventTimes = async (home: string, url: string, type: string): Promise<number[]> => {
  // the whole output: the runner keeps only the first 64 KiB of a command's stdout
  let text = '';
  await cliOk(home, ['events', '--json', '--database-url', url], { timeoutMs: 300_000, onStdout: (chunk) => (text += chunk) });
  const out: number[] = [];
  for (const line of text.split('\n')) if (line.includes(`"${type}"`)) out.push((JSON.parse(line) as { at: number }).at);
  return out;
};

const threeHosts = async (ctx: Context): Promise<Result> => {
  const n = size(ctx, 'pg-true-jobs', 100, 5_000);
  const metric = `${sizeLabel(n)} \`true\` jobs across three hosts x worker start --count 4 --drain over PostgreSQL, start to last completion, vs one host x 4 on LevelDB`;
  return withPostgres(ctx, 'row 12', async (server) => {
    ctx.log(`row 12: LevelDB, one host x 4 slots, ${fmtInt(n)} jobs`);
    const levelHome = freshHome(ctx.tmp, 'row12-level');
    await enqueueTrueJobs(ctx, levelHome, n);
    const level = await drain(ctx, levelHome, n);
    const levelRate = (n * 1000) / level.toLastMs;
    const limit = `${fmtRate(levelRate, 'jobs')} (LevelDB, one host)`;
    const url = schemaUrl(server, 'bench12');
    ctx.log(`row 12: PostgreSQL, three hosts x 4 slots, ${fmtInt(n)} jobs`);
    const homes = [1, 2, 3].map((i) => freshHome(ctx.tmp, `row12-pg${i}`));
    const file = join(ctx.tmp, `row12-${n}.ndjson`);
    writeJobsFile(file, n, () => ({ command: 'true' }));
    await cliOk(homes[0]!, ['enqueue', '--file', file, '--database-url', url], { timeoutMs: 600_000 });
    const startedAt = Date.now();
    const workers = homes.map((home) => startWorker(home, ['--count', '4', '--drain', '--database-url', url], { timeoutMs: 3_600_000 }));
    const how = await Promise.all(workers.map((w) => watchWorker(w, () => false)));
    for (const [i, w] of workers.entries()) {
      const exit = await w.exited;
      if (how[i] !== 'exited' || exit.code !== 0) throw new Error(`host ${i + 1}: worker start --drain ${how[i]} with ${exit.code ?? exit.signal}: ${exit.stderr.trim().slice(0, 300)}`);
    }
    const times = await eventTimes(homes[1]!, url, 'JobSucceeded');
    if (times.length !== n) throw new Error(`over PostgreSQL ${times.length} of ${n} jobs completed`);
    const ms = Math.max(...times) - startedAt;
    const rate = (n * 1000) / ms;
    return {
      row: 12,
      metric: `${metric} (${fmtMs(ms)} vs ${fmtMs(level.toLastMs)})`,
      queuectl: fmtRate(rate, 'jobs'),
      limit,
      ratio: fmtRatio(rate / levelRate),
      target: 'reported',
      holds: null,
      data: { jobs: n, ms, rate, levelMs: level.toLastMs, levelRate, ratio: rate / levelRate },
    };
  });
};

const latency = async (ctx: Context): Promise<Result[]> => {
  const n = size(ctx, 'pg-latency-jobs', 10, 200);
  const metric = (pct: number) => `enqueue-to-start latency over PostgreSQL, idle worker on another host, p${pct} over ${fmtInt(n)} jobs (from enqueue's answer)`;
  return withPostgres(ctx, 'row 13', async (server) => {
    const url = schemaUrl(server, 'bench13');
    const signal = new StartSignal(ctx.tmp, 'pg-started.fifo'); // row 4 has 'started.fifo' in the same folder
    const workerHome = freshHome(ctx.tmp, 'row13-worker');
    const clientHome = freshHome(ctx.tmp, 'row13-client');
    const worker = startWorker(workerHome, ['--count', '1', '--database-url', url]);
    try {
      for (let t = 0; ; t++) {
        const r = await cli(workerHome, ['status', '--json', '--database-url', url]);
        if (r.code === 0 && (JSON.parse(r.stdout) as { workers: unknown[] }).workers.length > 0) break;
        if (t > 200) throw new Error(`the worker did not register: ${r.stderr.trim()}`);
        await sleep(50);
      }
      ctx.log(`row 13: enqueue-to-start latency over PostgreSQL, ${fmtInt(n)} jobs one at a time, worker on another host`);
      const samples: number[] = [];
      for (let i = -3; i < n; i++) {
        const id = `latency-${i < 0 ? `warm${-i}` : i}`;
        const tag = `job-${i}`;
        const arrived = signal.arrival(tag);
        let answered = Number.NaN;
        const { done } = launch(process.execPath, [CLI, 'enqueue', '--id', id, '--command', signal.command(tag), '--home', clientHome, '--database-url', url], {
          onStdout: () => {
            if (Number.isNaN(answered)) answered = now(); // the id printed: the enqueue is durable
          },
          timeoutMs: 60_000,
        });
        const exit = await done;
        if (exit.code !== 0) throw new Error(`enqueue exited ${exit.code}: ${exit.stderr.trim()}`);
        const started = await arrived;
        if (i >= 0) samples.push(started - answered);
        await cliOk(clientHome, ['wait', id, '--timeout', '30s', '--database-url', url], { timeoutMs: 60_000 });
        await sleep(20);
      }
      return [50, 99].map((pct) => {
        const ms = percentile(samples, pct);
        return {
          row: 13,
          metric: metric(pct),
          queuectl: fmtMs(ms),
          limit: '—',
          ratio: '—',
          target: pct === 50 ? '<= 20 ms' : 'reported',
          holds: pct === 50 ? ms <= 20 : null,
          data: { percentile: pct, ms, samples: samples.length },
        };
      });
    } finally {
      signal.close();
      await worker.stop();
    }
  });
};

export const benches: Bench[] = [
  { rows: [12], title: 'three hosts over PostgreSQL', run: async (ctx) => [await threeHosts(ctx)] },
  { rows: [13], title: 'enqueue-to-start latency over PostgreSQL', run: latency },
];
