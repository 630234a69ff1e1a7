// A job whose attempt ended while its result could not be recorded (the queue away: a full
// disk, a database restarting) is still the worker's: its heartbeats keep holding the lease
// while the result is sent again, so nobody runs the job a second time meanwhile, and the
// result lands when the queue is back. Real LevelDB, a real host, real job processes; the
// outage is the queue refusing `report` for a while.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { QueuectlError } from '../src/errors.ts';
import type { Queue } from '../src/host/connect.ts';
import { Host } from '../src/host/host.ts';
import { resolveHome } from '../src/home.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';
import { WorkerPool } from '../src/worker/runtime.ts';
import { openLevelEngine } from './helpers/backends.ts';

/** Longer than the 5 s after which a host gives up on a claim its worker no longer mentions. */
const OUTAGE_MS = 7_500;

test('a result held through an outage keeps its lease: the job runs once, attempt 1 succeeds, no JobLeaseExpired', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'queuectl-held-result-'));
  const engine = await openLevelEngine(new ClassicLevel<string, unknown>(join(dir, 'db')) as unknown as AnyLevel);
  const host = new Host(engine);
  try {
    await engine.execute({ type: 'enqueue', jobs: [{ id: 'a', command: `echo ran >> ${join(dir, 'runs')}`, cwd: dir, priority: 0, maxRetries: 3, runAt: null, timeoutMs: null }] });
    await host.startLeaseManager();
    let pool: WorkerPool | null = null;
    let outageEnds = 0;
    let refusedReports = 0;
    const queue = {
      call: async (method: string, params: Record<string, unknown>) => {
        if (method === 'report') {
          outageEnds ||= Date.now() + OUTAGE_MS;
          if (Date.now() < outageEnds) {
            refusedReports++;
            throw new QueuectlError('QUEUECTL_DATABASE_UNAVAILABLE', 'the queue is away (test outage)');
          }
          pool!.stop();
        }
        return (host.api as unknown as Record<string, (p: unknown) => Promise<unknown>>)[method]!({ ...params, ...(method === 'claim' ? { waitMs: 200 } : {}) });
      },
    } as unknown as Queue;
    pool = new WorkerPool({ queue, home: resolveHome(dir), count: 1, drain: false, log: () => {} });
    const bound = setTimeout(() => pool!.stop(), 60_000); // bounds the test if the rule breaks
    await pool.run();
    clearTimeout(bound);
    assert.ok(refusedReports >= 2, `the result was sent again through the outage (${refusedReports} refusals)`);
    const history: string[] = [];
    for await (const e of engine.store.readEvents(0)) if ('jobId' in e && e.jobId === 'a') history.push(`${e.type}${'attempt' in e ? ` ${e.attempt}` : ''}`);
    assert.equal(history, ['JobEnqueued', 'JobClaimed 1', 'JobSucceeded 1'], 'the lease held; the held result was recorded');
  } finally {
    host.stop();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
