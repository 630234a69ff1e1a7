// Rows 1 and 2: durable enqueue. One process enqueueing a big file, and 32 clients each
// enqueueing one job at a time through a running host (group commit).
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { JobSpec } from '../src/domain/job-spec.ts';
import { resolveHome } from '../src/home.ts';
import { openQueue, type Queue } from '../src/host/connect.ts';
import { spec } from './fixtures.ts';
import { rawSyncedBatches, sequentialSyncedPuts } from './limits.ts';
import {
  type Bench, cliOk, type Context, fmtInt, fmtMs, fmtRate, fmtRatio, freshHome, now, type Result, removeDir, size, sizeLabel, startWorker, waitForHost, writeJobsFile,
} from './lib.ts';

/** Every record of a data directory: the log's records (key, value as stored), and counts. */
const readRecords = async (home: string): Promise<{ log: { key: string; value: string }[]; all: { key: string; value: string }[]; keys: number; bytes: number }> => {
  const db = new ClassicLevel<string, string>(join(home, 'db'), { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open();
  try {
    const logPrefix = db.sublevel('log').prefix;
    const log: { key: string; value: string }[] = [];
    const all: { key: string; value: string }[] = [];
    let bytes = 0;
    for await (const [key, value] of db.iterator()) {
      bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
      all.push({ key, value });
      if (key.startsWith(logPrefix)) log.push({ key, value });
    }
    return { log, all, keys: all.length, bytes };
  } finally {
    await db.close();
  }
};

/** Row 1: `queuectl enqueue --file` of N NDJSON jobs, one process, vs raw synced batches of the same records. */
const enqueueFile = async (ctx: Context): Promise<Result> => {
  const n = size(ctx, 'enqueue-jobs', 2_000, 100_000);
  const file = join(ctx.tmp, `jobs-${n}.ndjson`);
  writeJobsFile(file, n, (i) => ({ command: `echo job ${i}` }));
  const home = freshHome(ctx.tmp, 'row1');
  ctx.log(`row 1: queuectl enqueue --file (${fmtInt(n)} jobs)`);
  const r = await cliOk(home, ['enqueue', '--file', file], { timeoutMs: 600_000 });
  const ids = r.stdoutBytes > 0 ? r.stdoutBytes / (r.stdout.indexOf('\n') + 1) : 0;
  if (Math.round(ids) !== n) throw new Error(`enqueue --file printed ${ids} ids, expected ${n}`);
  const rate = (n * 1000) / r.ms;
  // The limit writes the very records queuectl appended to its log (same keys, same encoded
  // values), in the same batch sizes: enqueue --file appends the whole file in one batch.
  const { log, all, keys, bytes } = await readRecords(home);
  const enqueued = log.filter((rec) => rec.value.includes('"JobEnqueued"'));
  if (enqueued.length !== n) throw new Error(`the log holds ${enqueued.length} JobEnqueued events, expected ${n}`);
  const recordBytes = enqueued.reduce((s, rec) => s + rec.key.length + Buffer.byteLength(rec.value), 0) / n;
  ctx.log(`row 1: raw classic-level, ${fmtInt(n)} records in 1 synced batch`);
  const limitMs = await rawSyncedBatches(join(ctx.tmp, 'row1-raw'), enqueued, [n]);
  const limitRate = (n * 1000) / limitMs;
  // Not the limit, but telling: the same raw write of every record queuectl wrote (log,
  // stream index, projections), to tell the cost of the record count from the cost of the code.
  const allRecordsMs = await rawSyncedBatches(join(ctx.tmp, 'row1-raw-all'), all, [all.length]);
  removeDir(home);
  const ratio = rate / limitRate;
  return {
    row: 1,
    metric: `enqueue --file, ${sizeLabel(n)} NDJSON jobs, one process (wall ${fmtMs(r.ms)}, process start included; it wrote ${(keys / n).toFixed(1)} records, ${Math.round(bytes / n)} B per job: raw, those take ${fmtMs(allRecordsMs)})`,
    queuectl: fmtRate(rate, 'jobs'),
    limit: `${fmtRate(limitRate, 'records')} (${fmtInt(n)} x ${Math.round(recordBytes)} B, 1 synced batch)`,
    ratio: fmtRatio(ratio),
    target: '>= 0.5',
    holds: ratio >= 0.5,
    data: { jobs: n, wallMs: r.ms, rate, limitMs, limitRate, ratio, recordBytes, keysWritten: keys, keysPerJob: keys / n, bytesWritten: bytes, bytesPerJob: bytes / n, allRecordsRawMs: allRecordsMs },
  };
};

/** Row 2: 32 clients, each awaiting its own one-job enqueue, through a running `worker start` host. */
const concurrentClients = async (ctx: Context): Promise<Result> => {
  const clients = size(ctx, 'clients', 32, 32);
  const ms = size(ctx, 'clients-ms', 1_500, 5_000);
  const home = freshHome(ctx.tmp, 'row2');
  ctx.log(`row 2: ${clients} clients enqueueing one job at a time for ${fmtMs(ms)} through a running host`);
  const worker = startWorker(home, ['--count', '1']);
  const queues: Queue[] = [];
  try {
    await waitForHost(home);
    // Jobs due tomorrow: the worker stays idle, so the host does nothing but enqueue.
    const runAt = Date.now() + 86_400_000;
    const job = (c: number, i: number): JobSpec => spec(`c${c}-${i}`, 'true', { runAt });
    for (let c = 0; c < clients; c++) queues.push(openQueue(resolveHome(home), { serve: false }));
    // Warm up: every client connects (as a client: the host is up) and enqueues once.
    await Promise.all(queues.map((q, c) => q.call('enqueue', { jobs: [job(c, 0)] })));
    if (queues.some((q) => q.host !== null)) throw new Error('a benchmark client became the host');
    const acks = new Array<number>(clients).fill(0);
    const t = now();
    await Promise.all(
      queues.map(async (q, c) => {
        while (now() - t < ms) {
          await q.call('enqueue', { jobs: [job(c, acks[c]! + 1)] });
          acks[c]! += 1;
        }
      }),
    );
    const elapsed = now() - t;
    const total = acks.reduce((a, b) => a + b, 0);
    const rate = (total * 1000) / elapsed;
    for (const q of queues) await q.close();
    queues.length = 0;
    await worker.stop();
    // A typical record: the JobEnqueued event as the log stores it.
    const value = JSON.stringify({ type: 'JobEnqueued', jobId: 'c12-345', command: 'true', cwd: '/tmp', priority: 0, maxRetries: null, runAt, timeoutMs: null, pos: 12345, at: Date.now(), v: 1 });
    ctx.log('row 2: raw classic-level, sequential synced puts');
    const seq = await sequentialSyncedPuts(join(ctx.tmp, 'row2-raw'), value, Math.min(ms, 3_000));
    const ratio = rate / seq.rate;
    return {
      row: 2,
      metric: `${clients} concurrent clients, 1 job per enqueue, each acked once synced, through a running host (${fmtMs(elapsed)})`,
      queuectl: fmtRate(rate, 'jobs'),
      limit: `${fmtRate(seq.rate, 'puts')} (sequential synced puts)`,
      ratio: fmtRatio(ratio),
      target: '>= 4x',
      holds: ratio >= 4,
      data: { clients, ms: elapsed, acks: total, rate, perClient: acks, sequentialRate: seq.rate, sequentialPuts: seq.puts, ratio },
    };
  } finally {
    for (const q of queues) await q.close().catch(() => {});
    await worker.stop();
    removeDir(home);
  }
};

export const benches: Bench[] = [
  { rows: [1], title: 'enqueue --file', run: async (ctx) => [await enqueueFile(ctx)] },
  { rows: [2], title: '32 concurrent clients', run: async (ctx) => [await concurrentClients(ctx)] },
];
