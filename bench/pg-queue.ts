// Row 11: queue-side throughput over PostgreSQL. N no-op jobs claimed and reported through the
// host's API (Host.api.claim, then report with the next claim in the same call, as a worker's
// slot does) by 8 slots in this process, no process spawned, against graphile-worker running
// the same number of no-op tasks at concurrency 8 on the same server in the same run: with its
// default settings (the target) and with its local queue and batched completions (reported).
// The same harness over the LevelDB store is reported alongside, for scale.
//
// The pair the target compares (queuectl, graphile-worker's default) is measured in turns,
// ROUNDS times each, and each side's median is reported: on a machine shared with other work,
// one run of each, a minute apart, compared whatever load each happened to meet (the same
// code measured 0.88x and 1.64x in two runs).
import { join } from 'node:path';
import type { JobSpec } from '../src/domain/job-spec.ts';
import { Engine } from '../src/engine/engine.ts';
import { Host } from '../src/host/host.ts';
import { openLevelBackend } from '../src/store/leveldb/open.ts';
import { openPostgresBackend } from '../src/store/postgres/open.ts';
import type { Store } from '../src/store/port.ts';
import { type Bench, type Context, fmtInt, fmtMs, fmtRate, fmtRatio, freshHome, now, type Result, size, sizeLabel, sleep } from './lib.ts';
import { schemaUrl, withPostgres } from './pg-server.ts';

const SLOTS = 8;
/** Turns of the compared pair (full run; one in --quick). */
const ROUNDS = 3;

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

// ---- queuectl: the host's API over a store -----------------------------------------------------

const noopSpec = (id: string): JobSpec => ({ id, command: 'true', cwd: '/', priority: 0, maxRetries: null, runAt: null, timeoutMs: null });

const SUCCESS = { durationMs: 0, exitCode: 0, signal: null, timedOut: false, error: null, output: null };

/** Enqueue `n` no-op jobs (not timed), then time `SLOTS` slots claiming and reporting them all. */
export const hostThroughput = async (store: Store, n: number): Promise<{ ms: number; completed: number }> => {
  const host = new Host(new Engine(store));
  const api = host.api;
  try {
    for (let i = 0; i < n; i += 1000) {
      const jobs: JobSpec[] = [];
      for (let j = i; j < Math.min(n, i + 1000); j++) jobs.push(noopSpec(`noop-${j}`));
      await api.enqueue({ jobs });
    }
    const workerId = 'bench-worker';
    await api.workerStart({ workerId, pid: process.pid, slots: SLOTS });
    const slot = async () => {
      let claim = await api.claim({ workerId, waitMs: 0 });
      while (claim) {
        const answer = await api.report({ jobId: claim.job.id, workerId, attempt: claim.attempt, result: SUCCESS, claim: true });
        if (answer.refused) throw new Error(`report refused: ${answer.refused.message}`);
        claim = answer.claim ?? null;
      }
    };
    const t0 = now();
    await Promise.all(Array.from({ length: SLOTS }, slot));
    const ms = now() - t0;
    return { ms, completed: (await api.status()).jobs.completed };
  } finally {
    host.stop();
    await store.close();
  }
};

// ---- graphile-worker -------------------------------------------------------------------------

interface GraphileSettings {
  name: string;
  worker: { localQueue?: { size: number }; completeJobBatchDelay?: number };
}

const GRAPHILE: readonly GraphileSettings[] = [
  { name: 'default', worker: {} },
  { name: 'batched', worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0 } },
];

/**
 * graphile-worker runs `n` no-op tasks at concurrency 8, from its start until the last job's
 * completion is durable (its jobs table empty: completed jobs are deleted; batched completions
 * are written after the task returns, so counting task calls would end too early).
 */
let graphileRuns = 0;
const graphileThroughput = async (url: string, n: number, settings: GraphileSettings): Promise<number> => {
  const gw = await import('graphile-worker');
  const schema = `graphile_${settings.name}_${process.pid}_${++graphileRuns}`;
  const logger = new gw.Logger(() => () => {});
  const preset = { worker: { schema, ...settings.worker } };
  await gw.runMigrations({ connectionString: url, logger, preset });
  const utils = await gw.makeWorkerUtils({ connectionString: url, logger, preset });
  try {
    for (let i = 0; i < n; i += 1000) {
      await utils.addJobs(Array.from({ length: Math.min(1000, n - i) }, () => ({ identifier: 'noop', payload: {} })));
    }
    let ran = 0;
    let allRan: () => void = () => {};
    const ranAll = new Promise<void>((resolve) => (allRan = resolve));
    const t0 = now();
    const runner = await gw.run({
      connectionString: url,
      concurrency: SLOTS,
      noHandleSignals: true,
      logger,
      preset,
      taskList: {
        noop: async () => {
          if (++ran === n) allRan();
        },
      },
    });
    try {
      await ranAll;
      for (;;) {
        const { rows } = await utils.withPgClient((client) => client.query<{ left: string }>(`select count(*) as left from "${schema}"._private_jobs`));
        if (Number(rows[0]!.left) === 0) break;
        await sleep(2);
      }
      return now() - t0;
    } finally {
      await runner.stop();
    }
  } finally {
    await utils.release();
  }
};

// ---- the row ---------------------------------------------------------------------------------

const queueSide = async (ctx: Context): Promise<Result[]> => {
  const n = size(ctx, 'pg-jobs', 500, 20_000);
  const rounds = ctx.quick ? 1 : ROUNDS;
  return withPostgres(ctx, 'row 11', async (server) => {
    const [defaults, batched] = GRAPHILE as [GraphileSettings, GraphileSettings];
    const runs: { graphile: number[]; queuectl: { rate: number; ms: number }[] } = { graphile: [], queuectl: [] };
    for (let round = 1; round <= rounds; round++) {
      ctx.log(`row 11, turn ${round} of ${rounds}: graphile-worker (${defaults.name}), ${fmtInt(n)} no-op jobs, concurrency ${SLOTS}`);
      runs.graphile.push((n * 1000) / (await graphileThroughput(server.url, n, defaults)));
      ctx.log(`row 11, turn ${round} of ${rounds}: queuectl host API over PostgreSQL, ${fmtInt(n)} jobs, ${SLOTS} slots`);
      const [store] = await openPostgresBackend(schemaUrl(server, 'bench11'), async () => null);
      const r = await hostThroughput(store, n);
      if (r.completed !== n) throw new Error(`queuectl over PostgreSQL completed ${r.completed} of ${n} jobs`);
      runs.queuectl.push({ rate: (n * 1000) / r.ms, ms: r.ms });
    }
    ctx.log(`row 11: graphile-worker (${batched.name}), ${fmtInt(n)} no-op jobs, concurrency ${SLOTS}`);
    const graphile: Record<string, number> = { [defaults.name]: median(runs.graphile), [batched.name]: (n * 1000) / (await graphileThroughput(server.url, n, batched)) };
    ctx.log(`row 11: queuectl host API over LevelDB, ${fmtInt(n)} jobs, ${SLOTS} slots`);
    const dir = join(freshHome(ctx.tmp, 'row11'), 'db');
    const [levelStore] = await openLevelBackend(dir, dir, async () => null);
    const level = await hostThroughput(levelStore, n);
    const levelRate = (n * 1000) / level.ms;
    const pgRate = median(runs.queuectl.map((r) => r.rate));
    const pg = { rate: pgRate, ms: (n * 1000) / pgRate };
    const turns = rounds > 1 ? `; medians of ${rounds} turns, queuectl ${runs.queuectl.map((r) => fmtRate(r.rate, 'jobs')).join(', ')}, graphile-worker default ${runs.graphile.map((r) => fmtRate(r, 'jobs')).join(', ')}` : '';
    const metric = (peer: string) =>
      `queue side over PostgreSQL: claim + report of ${sizeLabel(n)} no-op jobs through the host API, ${SLOTS} slots, no process spawned, vs graphile-worker ${peer} (${SLOTS} concurrent no-op tasks; same harness over LevelDB: ${fmtRate(levelRate, 'jobs')}${turns})`;
    const data = { jobs: n, slots: SLOTS, rounds, runs, graphile, levelRate, levelMs: level.ms, postgres: pg };
    const row = (peer: string, peerRate: number, target: string, holds: (ratio: number) => boolean | null): Result => ({
      row: 11,
      metric: `${metric(peer)}; queuectl ${fmtMs(pg.ms)}`,
      queuectl: fmtRate(pg.rate, 'jobs'),
      limit: `${fmtRate(peerRate, 'jobs')} (graphile-worker ${peer})`,
      ratio: fmtRatio(pg.rate / peerRate),
      target,
      holds: holds(pg.rate / peerRate),
      data,
    });
    return [
      row('default settings', graphile.default!, '>= 1 (beats the default)', (r) => r >= 1),
      row('localQueue 500 + completeJobBatchDelay 0', graphile.batched!, 'reported', () => null),
    ];
  });
};

export const benches: Bench[] = [{ rows: [11], title: 'queue side over PostgreSQL', run: queueSide }];
