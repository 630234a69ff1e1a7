// PgStore's group commit: commands and claims that arrive together share one transaction (one
// commit for all), each still decided as it would be alone: a refusal is its own answer, two
// commands on one job are decided one after the other, claims never take a job another op of
// the batch is changing.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Command, decide, jobsNamedBy } from '../src/domain/decide.ts';
import type { JobSpec } from '../src/domain/job-spec.ts';
import { isQueuectlError } from '../src/errors.ts';
import type { Store } from '../src/store/port.ts';
import { PgStore } from '../src/store/postgres/store.ts';
import { freshQueue, withPostgres } from './helpers/postgres.ts';

const test = suite('pg-group-commit');
const pg = withPostgres(test, 'pg-group-commit', { fsync: false });

const spec = (id: string): JobSpec => ({ id, command: 'true', cwd: '/tmp', priority: 0, maxRetries: 0, runAt: null, timeoutMs: null });
const run = (store: Store, command: Command) => store.transact(jobsNamedBy(command), (state, now) => decide(command, state, now));
const claim = (store: Store, workerId: string) => store.claimNext((jobId) => (state, now) => decide({ type: 'claim', jobId, workerId, leaseMs: 60_000 }, state, now));

test('16 commands sent at once commit in one transaction; a refused one is refused alone; one job twice is decided in order', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_group');
  const store = await PgStore.open(await q.connect(4), { schema: q.schema });
  try {
    await run(store, { type: 'enqueue', jobs: [spec('taken')] });
    const ids = Array.from({ length: 16 }, (_, i) => `g${i}`);
    const results = await Promise.allSettled([
      ...ids.map((id) => run(store, { type: 'enqueue', jobs: [spec(id)] })),
      run(store, { type: 'enqueue', jobs: [spec('taken')] }), // refused: the id exists
      run(store, { type: 'cancel', jobId: 'g3' }), // names g3 again: decided after its enqueue
    ]);
    assert.equal(results.slice(0, 16).map((r) => r.status), Array(16).fill('fulfilled'));
    const refused = results[16]!;
    assert.ok(refused.status === 'rejected' && isQueuectlError(refused.reason) && refused.reason.code === 'QUEUECTL_DUPLICATE_ID', String((refused as PromiseRejectedResult).reason));
    assert.is(results[17]!.status, 'fulfilled', String((results[17] as PromiseRejectedResult).reason));
    assert.is((await store.job('g3'))?.state, 'cancelled');
    // rows a transaction inserts carry its id (xmin): the 16 enqueues share one transaction
    const [row] = await store.sql<{ n: string }[]>`select count(distinct xmin::text) as n from events where job_id = any(${ids}) and type = 'JobEnqueued'`;
    assert.is(Number(row!.n), 1, 'the 16 enqueues were committed in one transaction');
    assert.equal((await store.verify()).differences, []);
  } finally {
    await store.close();
  }
});

test('8 claims and a cancel sent at once: each job claimed once, the cancelled job never claimed', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_group_claims');
  const store = await PgStore.open(await q.connect(4), { schema: q.schema });
  try {
    await run(store, { type: 'enqueue', jobs: Array.from({ length: 6 }, (_, i) => spec(`c${i}`)) });
    const [cancelled, ...claims] = await Promise.all([run(store, { type: 'cancel', jobId: 'c0' }), ...Array.from({ length: 8 }, () => claim(store, 'w1'))]);
    assert.is(cancelled.events[0]?.type, 'JobCancelled');
    const claimed = claims.flatMap((c) => (c === null ? [] : [c.events[0]!])).map((e) => (e.type === 'JobClaimed' ? e.jobId : e.type));
    assert.equal(claimed.sort(), ['c1', 'c2', 'c3', 'c4', 'c5'], 'the five others claimed once each, c0 never');
    assert.is(claims.filter((c) => c === null).length, 3);
    assert.equal((await store.verify()).differences, []);
  } finally {
    await store.close();
  }
});

test.run();
