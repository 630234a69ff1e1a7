// Several PgStore instances (each its own pool, as separate machines) claiming and reporting
// one queue at once: every job is claimed by exactly one of them at a time and completes once,
// a report from a fenced-off attempt is refused, concurrent enqueues of one id let exactly one
// through, and verify finds the projections equal to the log.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type AttemptResult, type Command, decide, jobsNamedBy } from '../src/domain/decide.ts';
import type { JobSpec } from '../src/domain/job-spec.ts';
import { isQueuectlError } from '../src/errors.ts';
import type { Store } from '../src/store/port.ts';
import { PgStore } from '../src/store/postgres/store.ts';
import { freshQueue, withPostgres } from './helpers/postgres.ts';

const test = suite('pg-store-concurrency');
const pg = withPostgres(test, 'pg-store-concurrency', { fsync: false });

const spec = (id: string): JobSpec => ({ id, command: 'true', cwd: '/tmp', priority: 0, maxRetries: 0, runAt: null, timeoutMs: null });
const success: AttemptResult = { durationMs: 1, exitCode: 0, signal: null, timedOut: false, error: null, output: null };
const run = (store: Store, command: Command) => store.transact(jobsNamedBy(command), (state, now) => decide(command, state, now));
const claim = (store: Store, workerId: string) => store.claimNext((jobId) => (state, now) => decide({ type: 'claim', jobId, workerId, leaseMs: 60_000 }, state, now));

test('4 machines x 2 slots claiming and reporting 300 jobs: each claimed once at a time, completed once; verify clean', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_conc');
  const machines: PgStore[] = [];
  try {
    for (let m = 0; m < 4; m++) machines.push(await PgStore.open(await q.connect(3), { schema: q.schema }));
    const JOBS = 300;
    await run(machines[0]!, { type: 'enqueue', jobs: Array.from({ length: JOBS }, (_, i) => spec(`j${i}`)) });
    const running = new Set<string>();
    const done: string[] = [];
    let overlap = 0;
    const slot = async (store: Store, workerId: string) => {
      for (let c = await claim(store, workerId); c !== null; c = await claim(store, workerId)) {
        const e = c.events[0]!;
        if (e.type !== 'JobClaimed') throw new Error(`claim gave ${e.type}`);
        if (running.has(e.jobId)) overlap++;
        running.add(e.jobId);
        await new Promise((r) => setImmediate(r));
        running.delete(e.jobId);
        await run(store, { type: 'report', jobId: e.jobId, workerId, attempt: e.attempt, result: success });
        done.push(e.jobId);
      }
    };
    await Promise.all(machines.flatMap((store, m) => [slot(store, `m${m}a`), slot(store, `m${m}b`)]));
    assert.is(overlap, 0, 'no job held by two slots at once');
    assert.is(done.length, JOBS, 'as many completions as jobs');
    assert.is(new Set(done).size, JOBS, 'each job completed once');
    const counts = await machines[3]!.counts();
    assert.is(counts.jobs.completed, JOBS);
    assert.is(counts.jobs.pending + counts.jobs.processing, 0);
    const claims = new Map<string, number>();
    for await (const e of machines[2]!.readEvents()) if (e.type === 'JobClaimed') claims.set(e.jobId, (claims.get(e.jobId) ?? 0) + 1);
    assert.ok([...claims.values()].every((n) => n === 1) && claims.size === JOBS, 'one JobClaimed per job in the log');
    assert.equal((await machines[1]!.verify()).differences, [], 'verify: projections equal the log');
  } finally {
    for (const m of machines) await m.close().catch(() => {});
    await q.drop();
  }
});

test('fencing across machines: a lease expired and re-claimed elsewhere refuses the old attempt; one enqueue of an id wins', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_conc');
  let t = Date.now();
  const open = async () => PgStore.open(await q.connect(2), { schema: q.schema, clock: () => t });
  const [a, b, c] = [await open(), await open(), await open()];
  try {
    const enqueues = await Promise.allSettled([a, b, c].map((s) => run(s, { type: 'enqueue', jobs: [{ ...spec('x'), maxRetries: 2 }] })));
    const codes = enqueues.map((r) => (r.status === 'fulfilled' ? null : isQueuectlError(r.reason) ? r.reason.code : String(r.reason)));
    assert.equal(codes.sort(), [null, 'QUEUECTL_DUPLICATE_ID', 'QUEUECTL_DUPLICATE_ID'].sort(), 'one enqueue of x wins');
    const first = await claim(a, 'wa');
    assert.ok(first?.events[0]?.type === 'JobClaimed');
    await run(b, { type: 'expireLease', jobId: 'x', attempt: 1, reason: 'worker lost' });
    t += 3_600_000; // past the retry's backoff
    const second = await claim(b, 'wb');
    assert.is(second?.events[0]?.type === 'JobClaimed' ? second.events[0].attempt : null, 2);
    const late = await run(a, { type: 'report', jobId: 'x', workerId: 'wa', attempt: 1, result: success }).then(
      () => null,
      (e: unknown) => (isQueuectlError(e) ? e.code : String(e)),
    );
    assert.is(late, 'QUEUECTL_STALE_ATTEMPT', 'the fenced-off attempt is refused');
    await run(c, { type: 'report', jobId: 'x', workerId: 'wb', attempt: 2, result: success });
    assert.is((await a.job('x'))?.state, 'completed');
  } finally {
    for (const s of [a, b, c]) await s.close().catch(() => {});
    await q.drop();
  }
});

test.run();
