// Row 14: wall time of `status` and `show <id>` over PostgreSQL, each a separate `node
// dist/cli.js --database-url <url>` process as a user runs it, on a queue of 1,000,000 events
// and on one of a single job, with no host on the command's --home (the command connects to the
// database itself) and with a running host (`worker start`; the command is its client). Against
// `node -e 0` (<= 1.5x) and the big queue against the small one (flat in size: <= 1.1x), as
// rows 6-7 do for LevelDB. Runs are interleaved; each figure is a median.
//
// The big queue is built through the store, as commands build it (no SQL of its own): jobs
// enqueued 10,000 per command, then claimed and succeeded by one worker, thousands of jobs per
// transaction (the events decide() makes for a worker running `true`), so it is a queuectl log
// that `projections verify` accepts (checked with --verify-fixtures).
import type { EventData } from '../src/events.ts';
import { Engine } from '../src/engine/engine.ts';
import { openPostgresBackend } from '../src/store/postgres/open.ts';
import { EVENTS_PER_JOB, fixtureJobId, spec, SUCCESS } from './fixtures.ts';
import { nodeStartup } from './limits.ts';
import { type Bench, cliOk, type Context, fmtInt, fmtMs, fmtRatio, freshHome, median, now, type Result, size, sizeLabel, sleep, startWorker, waitForHost, type Worker } from './lib.ts';
import { schemaUrl, withPostgres } from './pg-server.ts';

/** Jobs per enqueue command, and jobs claimed and succeeded per transaction. */
const ENQUEUE_BATCH = 10_000;
const COMPLETE_BATCH = 5_000;

/** A queue of about `events` events: ceil(events / 3) completed `true` jobs; returns the events and a job in the middle. */
const pgEventsFixture = async (ctx: Context, url: string, events: number): Promise<{ events: number; sampleId: string }> => {
  const jobs = Math.max(1, Math.ceil((events - 2) / EVENTS_PER_JOB));
  const t = now();
  const [store] = await openPostgresBackend(url, async () => null);
  const engine = new Engine(store);
  try {
    for (let i = 0; i < jobs; i += ENQUEUE_BATCH) {
      const batch = [];
      for (let j = i; j < Math.min(jobs, i + ENQUEUE_BATCH); j++) batch.push(spec(fixtureJobId(j), 'true'));
      await engine.execute({ type: 'enqueue', jobs: batch });
    }
    const workerId = 'bench-fixture-worker';
    await engine.execute({ type: 'workerStart', workerId, pid: process.pid, slots: 4 });
    const leaseMs = (await engine.getConfig()).lease_seconds * 1000;
    for (let i = 0; i < jobs; i += COMPLETE_BATCH) {
      const ids: string[] = [];
      for (let j = i; j < Math.min(jobs, i + COMPLETE_BATCH); j++) ids.push(fixtureJobId(j));
      await store.transact(ids, (_state, at) =>
        ids.flatMap((jobId): EventData[] => [
          { type: 'JobClaimed', jobId, workerId, attempt: 1, leaseUntil: at + leaseMs },
          { type: 'JobSucceeded', jobId, workerId, attempt: 1, durationMs: SUCCESS.durationMs, output: SUCCESS.output },
        ]),
      );
    }
    await engine.execute({ type: 'workerStop', workerId, reason: 'stopped' });
    const fixture = { events: (await store.head()) + 1, sampleId: fixtureJobId(Math.floor(jobs / 2)) };
    ctx.log(`row 14: ${fmtInt(fixture.events)} events in PostgreSQL in ${fmtMs(now() - t)}`);
    return fixture;
  } finally {
    await engine.close();
  }
};

const pgCliLatency = async (ctx: Context): Promise<Result[]> => {
  const events = size(ctx, 'pg-events', 3_000, 1_000_000);
  const reps = size(ctx, 'cli-reps', 1, 10);
  return withPostgres(ctx, 'row 14', async (server) => {
    const queues = [
      { name: 'big', url: schemaUrl(server, 'row14_big'), home: freshHome(ctx.tmp, 'row14-big'), events },
      { name: 'small', url: schemaUrl(server, 'row14_small'), home: freshHome(ctx.tmp, 'row14-small'), events: 5 },
    ];
    const fixtures = new Map<string, { events: number; sampleId: string }>();
    for (const q of queues) {
      fixtures.set(q.name, await pgEventsFixture(ctx, q.url, q.events));
      if (ctx.flags['verify-fixtures']) await cliOk(q.home, ['projections', 'verify', '--database-url', q.url]);
    }
    const commands = [
      { name: 'status', args: (_id: string) => ['status'] },
      { name: 'show <id>', args: (id: string) => ['show', id] },
    ];
    const times = new Map<string, number[]>();
    const record = (key: string, ms: number) => times.set(key, [...(times.get(key) ?? []), ms]);
    const nodeMs: number[] = [];
    for (const mode of ['no host', 'host'] as const) {
      const workers: Worker[] = [];
      try {
        if (mode === 'host') {
          for (const q of queues) workers.push(startWorker(q.home, ['--count', '1', '--database-url', q.url]));
          for (const q of queues) await waitForHost(q.home);
          await sleep(300); // let the workers settle (register, first claim)
        }
        ctx.log(`row 14: ${reps} rounds of 2 commands x 2 queues, ${mode}`);
        for (let rep = ctx.quick ? 0 : -1; rep < reps; rep++) {
          // round -1 warms the caches and is not counted (full size only)
          const n = (await nodeStartup(1))[0]!;
          if (rep >= 0) nodeMs.push(n);
          for (const c of commands) {
            for (const q of queues) {
              const r = await cliOk(q.home, [...c.args(fixtures.get(q.name)!.sampleId), '--database-url', q.url]);
              if (rep >= 0) record(`${mode}|${c.name}|${q.name}`, r.ms);
            }
          }
        }
      } finally {
        for (const w of workers) await w.stop();
      }
    }
    const nodeMedian = median(nodeMs);
    const bigEvents = fixtures.get('big')!.events;
    const results: Result[] = [];
    for (const mode of ['no host', 'host'] as const) {
      for (const c of commands) {
        const bigMs = median(times.get(`${mode}|${c.name}|big`)!);
        const smallMs = median(times.get(`${mode}|${c.name}|small`)!);
        const host = mode === 'host' ? 'with a running host' : 'no host';
        results.push(
          {
            row: 14,
            metric: `\`${c.name}\` wall time over PostgreSQL, ${sizeLabel(bigEvents)} events, ${host} (median of ${reps})`,
            queuectl: fmtMs(bigMs),
            limit: `${fmtMs(nodeMedian)} (node -e 0)`,
            ratio: fmtRatio(bigMs / nodeMedian),
            target: '<= 1.5x',
            holds: bigMs / nodeMedian <= 1.5,
            data: { command: c.name, mode, events: bigEvents, ms: bigMs, nodeMs: nodeMedian, samples: times.get(`${mode}|${c.name}|big`) },
          },
          {
            row: 14,
            metric: `\`${c.name}\` over PostgreSQL, ${sizeLabel(bigEvents)} events vs a 1-job queue (${fixtures.get('small')!.events} events), ${host}`,
            queuectl: fmtMs(bigMs),
            limit: `${fmtMs(smallMs)} (1 job)`,
            ratio: fmtRatio(bigMs / smallMs),
            target: '<= 1.1x',
            holds: bigMs / smallMs <= 1.1,
            data: { command: c.name, mode, events: bigEvents, ms: bigMs, smallMs, samples: times.get(`${mode}|${c.name}|small`) },
          },
        );
      }
    }
    return results;
  });
};

export const benches: Bench[] = [{ rows: [14], title: 'PostgreSQL CLI wall times', run: pgCliLatency }];
