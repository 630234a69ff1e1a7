// The store port's contract (src/store/port.ts): one suite of what every backend owes the
// engine, written against the port only. A backend runs it with one line:
//   storeContract(itsHarness).run();   (see store-contract-leveldb.test.ts)
// Commands are made by the real, pure `decide`, so these are the queue's own transactions.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_CONFIG } from '../src/domain/config.ts';
import { type AttemptResult, type Command, type DecideState, decide, jobsNamedBy } from '../src/domain/decide.ts';
import type { JobSpec } from '../src/domain/job-spec.ts';
import { isQueuectlError } from '../src/errors.ts';
import type { StoredEvent } from '../src/events.ts';
import type { Committed, Store } from '../src/store/port.ts';
import type { BackendHarness, OpenedBackend } from './helpers/backends.ts';

const T0 = 1_900_000_000_000;

const spec = (id: string, over: Partial<JobSpec> = {}): JobSpec => ({ id, command: 'true', cwd: '/tmp', priority: 0, maxRetries: null, runAt: null, timeoutMs: null, ...over });
const success: AttemptResult = { durationMs: 5, exitCode: 0, signal: null, timedOut: false, error: null, output: null };
const failure: AttemptResult = { ...success, exitCode: 1, error: 'exit code 1' };

const run = (store: Store, command: Command): Promise<Committed> => store.transact(jobsNamedBy(command), (state, now) => decide(command, state, now));
const claim = (store: Store, workerId = 'w') => store.claimNext((jobId) => (state, now) => decide({ type: 'claim', jobId, workerId, leaseMs: 60_000 }, state, now));
const codeOf = (r: PromiseSettledResult<unknown>): string | null => (r.status === 'rejected' ? (isQueuectlError(r.reason) ? r.reason.code : String(r.reason)) : null);
const all = async (events: AsyncIterable<StoredEvent>): Promise<StoredEvent[]> => {
  const out: StoredEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
};
const jobIdOf = (e: StoredEvent): string | undefined => ('jobId' in e ? e.jobId : undefined);

interface Ctx {
  backend: OpenedBackend;
  t: number;
}

export const storeContract = (harness: BackendHarness) => {
  const s = suite<Ctx>(`store contract: ${harness.name}`, { t: T0 } as Ctx);
  s.before.each(async (ctx) => {
    ctx.t = T0;
    ctx.backend = await harness.create(() => ctx.t);
  });
  s.after.each(async (ctx) => {
    await ctx.backend.dispose();
  });

  s('transact appends at contiguous positions from 0, durable when it resolves; readEvents reads them in order from any position', async ({ backend }) => {
    const store = backend.store;
    assert.is(await store.head(), -1, 'an empty log');
    assert.equal(await all(store.readEvents()), []);
    const first = await run(store, { type: 'enqueue', jobs: [spec('a'), spec('b')] });
    assert.equal(first.events.map((e) => [e.pos, e.type, jobIdOf(e), e.at]), [[0, 'JobEnqueued', 'a', T0], [1, 'JobEnqueued', 'b', T0]]);
    assert.equal([first.jobs.get('a')?.state, first.jobs.get('b')?.state], ['pending', 'pending'], 'the jobs as the events left them');
    await run(store, { type: 'cancel', jobId: 'a' });
    assert.is(await store.head(), 2);
    assert.equal((await all(store.readEvents())).map((e) => e.pos), [0, 1, 2]);
    assert.equal((await all(store.readEvents(1))).map((e) => e.pos), [1, 2], 'resume from a position');
    assert.equal((await all(store.readEvents(0, 1))).map((e) => e.pos), [0, 1], 'up to a position, inclusive');
    assert.equal((await all(store.readEvents(3))).map((e) => e.pos), [], 'nothing past the head');
  });

  s("decide gets the named jobs (undefined when unknown), the config in force and the store's time; no events, no append", async (ctx) => {
    const store = ctx.backend.store;
    await run(store, { type: 'enqueue', jobs: [spec('a')] });
    ctx.t = T0 + 1234;
    let seen: { state: DecideState; now: number } | null = null;
    const none = await store.transact(['a', 'ghost'], (state, now) => {
      seen = { state, now };
      return [];
    });
    assert.equal(none.events, []);
    assert.is(seen!.now, T0 + 1234);
    assert.is(seen!.state.jobs.get('a')?.state, 'pending');
    assert.ok(seen!.state.jobs.has('ghost') && seen!.state.jobs.get('ghost') === undefined, 'an unknown job is named, as undefined');
    assert.equal({ ...seen!.state.config }, { ...DEFAULT_CONFIG });
    await run(store, { type: 'configSet', key: 'max_retries', value: '1' });
    await store.transact([], (state) => {
      seen = { state, now: 0 };
      return [];
    });
    assert.is(seen!.state.config.max_retries, 1, 'a config change is in force for the next decision');
    assert.is(await store.head(), 1, 'a decision with no events appends nothing');
  });

  s('a refused decision appends nothing; the transactions around it go through, at contiguous positions', async ({ backend }) => {
    const store = backend.store;
    const results = await Promise.allSettled([
      run(store, { type: 'enqueue', jobs: [spec('c')] }),
      run(store, { type: 'enqueue', jobs: [spec('c')] }), // a duplicate of the one before it
      run(store, { type: 'cancel', jobId: 'ghost' }),
      run(store, { type: 'enqueue', jobs: [spec('d')] }),
    ]);
    assert.equal(results.map(codeOf), [null, 'QUEUECTL_DUPLICATE_ID', 'QUEUECTL_UNKNOWN_JOB', null]);
    assert.equal((await all(store.readEvents())).map((e) => [e.pos, jobIdOf(e)]), [[0, 'c'], [1, 'd']]);
    assert.equal(await store.readStream('ghost'), []);
  });

  s('concurrent transactions on one job: each decides against the ones committed before it (exactly one cancel, one claim wins)', async ({ backend }) => {
    const store = backend.store;
    await run(store, { type: 'enqueue', jobs: [spec('j'), spec('k')] });
    const cancels = await Promise.allSettled([run(store, { type: 'cancel', jobId: 'j' }), run(store, { type: 'cancel', jobId: 'j' }), run(store, { type: 'cancel', jobId: 'j' })]);
    assert.equal(cancels.map(codeOf).sort(), [null, 'QUEUECTL_WRONG_STATE', 'QUEUECTL_WRONG_STATE'].sort());
    const claims = await Promise.allSettled(['w1', 'w2', 'w3'].map((workerId) => run(store, { type: 'claim', jobId: 'k', workerId, leaseMs: 1000 })));
    assert.is(claims.filter((r) => r.status === 'fulfilled').length, 1, 'one claim of k');
    assert.equal((await store.readStream('k')).map((e) => e.type), ['JobEnqueued', 'JobClaimed']);
  });

  s("readStream: one job's events in order, ids that are prefixes of others kept apart", async ({ backend }) => {
    const store = backend.store;
    const ids = ['j1', 'j10', 'j1.0', 'j1-a', 'J1'];
    await run(store, { type: 'enqueue', jobs: ids.map((id) => spec(id)) });
    await run(store, { type: 'cancel', jobId: 'j10' });
    await run(store, { type: 'cancel', jobId: 'j1' });
    const stream = await store.readStream('j1');
    assert.equal(stream.map((e) => [e.type, jobIdOf(e)]), [['JobEnqueued', 'j1'], ['JobCancelled', 'j1']]);
    assert.equal(stream.map((e) => e.pos), [0, 6]);
    for (const id of ids.slice(1)) assert.ok((await store.readStream(id)).every((e) => jobIdOf(e) === id), `stream of ${id}`);
  });

  s('subscribe: every durable batch, in commit order; unsubscribe stops it', async ({ backend }) => {
    const store = backend.store;
    const seen: number[] = [];
    const stop = store.subscribe((events) => {
      for (const e of events) seen.push(e.pos);
    });
    await Promise.all(Array.from({ length: 20 }, (_, i) => run(store, { type: 'enqueue', jobs: [spec(`s${i}`)] })));
    assert.equal(seen, Array.from({ length: 20 }, (_, i) => i), 'each event once, in order, by the time its transaction resolved');
    stop();
    await run(store, { type: 'enqueue', jobs: [spec('late')] });
    assert.is(seen.length, 20);
  });

  s('claimNext: lowest priority number, then due time, then enqueue order; null when none is due; nextDueAt', async (ctx) => {
    const store = ctx.backend.store;
    assert.is(await claim(store), null, 'nothing to claim');
    assert.is(await store.nextDueAt(), null);
    await run(store, {
      type: 'enqueue',
      jobs: [spec('later', { runAt: T0 + 10_000 }), spec('low', { priority: 1 }), spec('first'), spec('second'), spec('urgent-later', { priority: -1, runAt: T0 + 20_000 })],
    });
    const order: (string | null)[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await claim(store);
      order.push(c ? jobIdOf(c.events[0]!)! : null);
    }
    assert.equal(order, ['first', 'second', 'low', null]);
    assert.is(await store.nextDueAt(), T0 + 10_000);
    ctx.t = T0 + 30_000;
    const c = await claim(store, 'w2');
    assert.equal([c?.events[0]?.type, jobIdOf(c!.events[0]!), c?.jobs.get('urgent-later')?.state], ['JobClaimed', 'urgent-later', 'processing'], 'once due, priority first');
    // Concurrent claims: each job at most once.
    await run(store, { type: 'enqueue', jobs: [spec('x1'), spec('x2')] });
    const many = await Promise.all(Array.from({ length: 5 }, (_, i) => claim(store, `c${i}`)));
    const got = many.map((m) => (m ? jobIdOf(m.events[0]!) : null));
    assert.equal(got.filter((id) => id !== null).sort(), ['later', 'x1', 'x2']);
    assert.is(await store.nextDueAt(), null);
  });

  s('read model: job, list (newest first, by state), oldest, counts, workers, dlq, config', async (ctx) => {
    const store = ctx.backend.store;
    await run(store, { type: 'enqueue', jobs: ['a', 'b', 'c', 'd'].map((id) => spec(id, { maxRetries: 0 })) });
    await run(store, { type: 'workerStart', workerId: 'w', pid: 4242, slots: 2 });
    const a = await claim(store);
    await run(store, { type: 'report', jobId: 'a', workerId: 'w', attempt: 1, result: failure });
    await claim(store); // b: processing
    await run(store, { type: 'cancel', jobId: 'c' });
    await run(store, { type: 'configSet', key: 'lease_seconds', value: '7' });
    assert.ok(a);
    assert.equal((await store.job('a'))?.state, 'dead');
    assert.is(await store.job('ghost'), undefined);
    assert.equal((await store.list()).map((j) => j.id), ['d', 'c', 'b', 'a']);
    assert.equal((await store.list({ limit: 2 })).map((j) => j.id), ['d', 'c']);
    assert.equal((await store.list({ state: 'processing' })).map((j) => j.id), ['b']);
    assert.is((await store.oldest('pending'))?.id, 'd');
    assert.is(await store.oldest('failed'), undefined);
    const counts = await store.counts();
    assert.equal(counts.jobs, { pending: 1, processing: 1, completed: 0, failed: 0, dead: 1, cancelled: 1 });
    assert.is(counts.runs, 1);
    assert.equal((await store.workers()).map((w) => [w.id, w.pid, w.slots, w.running]), [['w', 4242, 2, ['b']]]);
    assert.equal((await store.dlq()).map((d) => [d.id, d.attempt, d.error]), [['a', 1, 'exit code 1']]);
    assert.is((await store.config()).lease_seconds, 7);
  });

  s('what was acknowledged survives a reopen; verify finds no difference; rebuild gives the same projections', async (ctx) => {
    let store = ctx.backend.store;
    await run(store, { type: 'enqueue', jobs: ['a', 'b', 'c'].map((id) => spec(id, { maxRetries: 1 })) });
    await run(store, { type: 'configSet', key: 'backoff_base', value: '3' });
    await claim(store);
    await run(store, { type: 'report', jobId: 'a', workerId: 'w', attempt: 1, result: failure });
    await claim(store);
    await run(store, { type: 'report', jobId: 'b', workerId: 'w', attempt: 1, result: success });
    const head = await store.head();
    const jobs = await store.list();
    store = await ctx.backend.reopen();
    assert.is(await store.head(), head);
    assert.equal(await store.list(), jobs);
    assert.is((await store.config()).backoff_base, 3);
    assert.equal((await store.verify()).differences, []);
    const before = await ctx.backend.projections();
    assert.is(await store.rebuild(), head + 1, 'rebuild folds every event');
    assert.equal(await ctx.backend.projections(), before, 'rebuilt projections equal the incremental ones, key for key');
    assert.equal(await store.verify(), { events: head + 1, differences: [] });
    await run(store, { type: 'enqueue', jobs: [spec('after-rebuild')] });
    assert.is(await store.head(), head + 1);
  });

  return s;
};
