// What a claim and a report cost over PostgreSQL (bench row 11): statements counted on the
// client (the driver's debug hook), scans counted by the server (pg_stat_user_tables), so a
// change that adds a round trip or a scan per job fails here, not only in the benchmark.
import postgres from 'postgres';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { JobSpec } from '../src/domain/job-spec.ts';
import { decide } from '../src/domain/decide.ts';
import { Engine } from '../src/engine/engine.ts';
import { Host } from '../src/host/host.ts';
import { clientOptions, type Sql } from '../src/store/postgres/connect.ts';
import { PgStore } from '../src/store/postgres/store.ts';
import { parseDatabaseUrl } from '../src/store/postgres/url.ts';
import { freshQueue, withPostgres } from './helpers/postgres.ts';

const test = suite('pg-throughput');
const pg = withPostgres(test, 'pg-throughput', { fsync: false });

const spec = (id: string): JobSpec => ({ id, command: 'true', cwd: '/tmp', priority: 0, maxRetries: 0, runAt: null, timeoutMs: null });
const SUCCESS = { durationMs: 0, exitCode: 0, signal: null, timedOut: false, error: null, output: null };

/** A host over a PgStore whose pool records every statement it sends (and on which connection). */
const countedHost = async (url: string, schema: string, max = 4) => {
  const statements: string[] = [];
  const sent: { connection: number; text: string }[] = [];
  const debug = (connection: number, query: string) => {
    const text = query.replace(/\s+/g, ' ').trim();
    statements.push(text);
    sent.push({ connection, text });
  };
  const sql = postgres({ ...clientOptions(parseDatabaseUrl(url, '--database-url'), { max }), debug }) as unknown as Sql;
  const store = await PgStore.open(sql, { schema });
  const host = new Host(new Engine(store));
  return { host, store, statements, sent };
};

/** The statements of each transaction, in the order sent, from `begin` to `commit`. */
const transactions = (sent: readonly { connection: number; text: string }[]): string[][] => {
  const open = new Map<number, string[]>();
  const done: string[][] = [];
  for (const { connection, text } of sent) {
    if (/^begin/i.test(text)) open.set(connection, []);
    else if (/^(commit|rollback)$/i.test(text)) {
      const tx = open.get(connection);
      if (tx) done.push(tx);
      open.delete(connection);
    } else open.get(connection)?.push(text);
  }
  return done;
};

test('a claim reads the config once, in its transaction (no second read for the output limit)', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_claim_config');
  const { host, store, statements } = await countedHost(q.url, q.schema);
  try {
    await host.api.enqueue({ jobs: Array.from({ length: 8 }, (_, i) => spec(`j${i}`)) });
    await host.api.workerStart({ workerId: 'w', pid: process.pid, slots: 1 });
    statements.length = 0;
    let claim = await host.api.claim({ workerId: 'w', waitMs: 0 });
    let claims = 0;
    while (claim) {
      claims++;
      assert.is(claim.outputLimit, 1024 * 1024, 'the output limit comes with the claim');
      claim = (await host.api.report({ jobId: claim.job.id, workerId: 'w', attempt: claim.attempt, result: SUCCESS, claim: true })).claim ?? null;
    }
    assert.is(claims, 8);
    const configReads = statements.filter((s) => s.includes("from projection_kv where projection = 'config'")).length;
    const transactions = statements.filter((s) => /^begin/i.test(s)).length;
    assert.is(configReads, transactions, `one config read per transaction (${configReads} reads, ${transactions} transactions)`);
  } finally {
    host.stop();
    await store.close();
    await q.drop();
  }
});

test('a claim and a report find their runnable rows through the index: the pages they read do not grow with the queue', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_runnable_scan');
  // one connection, so the counters this test reads are its own session's, flushed on demand
  const { host, store } = await countedHost(q.url, q.schema, 1);
  const queued = 10_000;
  const rounds = 20;
  try {
    // autovacuum's reads of the table would count too: it is off here
    await store.sql`alter table runnable set (autovacuum_enabled = false)`;
    for (let i = 0; i < queued; i += 1000) await host.api.enqueue({ jobs: Array.from({ length: 1000 }, (_, j) => spec(`j${i + j}`)) });
    await host.api.workerStart({ workerId: 'w', pid: process.pid, slots: 1 });
    // pages of runnable and its indexes read so far, as the session's counters say once flushed
    const read = async () => {
      await store.sql`select pg_stat_force_next_flush()`;
      const [row] = await store.sql<{ n: string }[]>`
        select coalesce(heap_blks_hit, 0) + coalesce(heap_blks_read, 0) + coalesce(idx_blks_hit, 0) + coalesce(idx_blks_read, 0) as n
        from pg_statio_user_tables where relid = 'runnable'::regclass`;
      return Number(row!.n);
    };
    const before = await read();
    let claim = await host.api.claim({ workerId: 'w', waitMs: 0 });
    for (let i = 0; i < rounds && claim; i++) {
      claim = (await host.api.report({ jobId: claim.job.id, workerId: 'w', attempt: claim.attempt, result: SUCCESS, claim: true })).claim ?? null;
    }
    const blocks = (await read()) - before;
    // scanning the runnable set reads every page of its index (the old delete by enqueued_pos)
    const pages = Number((await store.sql<{ pages: string }[]>`select pg_relation_size('runnable_order') / 8192 as pages`)[0]!.pages);
    assert.ok(blocks < (rounds * pages) / 2, `${rounds} claims and reports read ${blocks} pages of runnable and its indexes (the index alone has ${pages}), with ${queued} jobs queued`);
  } finally {
    host.stop();
    await store.close();
    await q.drop();
  }
});

test('a batch locks the log head with its first statements and the kv rows (worker rows) only after it, guessed from the last batch: no round trip of their own', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_batch_shape');
  const { host, store, sent } = await countedHost(q.url, q.schema);
  try {
    await host.api.enqueue({ jobs: Array.from({ length: 8 }, (_, i) => spec(`j${i}`)) });
    await host.api.workerStart({ workerId: 'w', pid: process.pid, slots: 1 });
    sent.length = 0;
    let claim = await host.api.claim({ workerId: 'w', waitMs: 0 });
    while (claim) claim = (await host.api.report({ jobId: claim.job.id, workerId: 'w', attempt: claim.attempt, result: SUCCESS, claim: true })).claim ?? null;
    const batches = transactions(sent).filter((tx) => tx.some((t) => t.includes('insert into events')));
    assert.ok(batches.length >= 8, `${batches.length} appending transactions`);
    for (const tx of batches) {
      const head = tx.findIndex((t) => t.includes('from log_head for update'));
      const kv = tx.map((t, i) => [t, i] as const).filter(([t]) => t.startsWith('select projection, key, value from projection_kv')).map(([, i]) => i);
      assert.ok(head >= 0, 'the head is locked');
      assert.ok(kv.every((i) => i > head), `projection_kv rows are locked only under the head:\n${tx.join('\n')}`);
    }
    // from the second batch on, the worker's row was guessed: locked right after the head, and
    // nothing is read between the decisions and the appends
    for (const tx of batches.slice(1)) {
      const head = tx.findIndex((t) => t.includes('from log_head for update'));
      assert.ok(tx[head + 1]?.startsWith('select projection, key, value from projection_kv'), `the worker row comes with the head:\n${tx.join('\n')}`);
      assert.is(tx.slice(head + 2).filter((t) => t.startsWith('select')).length, 0, `no read after the first round trip:\n${tx.join('\n')}`);
    }
    assert.equal((await store.verify()).differences, []);
  } finally {
    host.stop();
    await store.close();
    await q.drop();
  }
});

test("a host's store does not read its own commits back from the log (its notifications name it); another store's commits it does read", async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_own_notify');
  const { host, store, sent } = await countedHost(q.url, q.schema);
  const other = await PgStore.open(await q.connect(2), { schema: q.schema });
  try {
    await host.api.enqueue({ jobs: Array.from({ length: 8 }, (_, i) => spec(`j${i}`)) });
    await host.api.workerStart({ workerId: 'w', pid: process.pid, slots: 1 });
    const seen: string[] = [];
    store.subscribe((events) => seen.push(...events.map((e) => e.type)));
    await new Promise((resolve) => setTimeout(resolve, 200)); // the follower listening
    sent.length = 0;
    const started = Date.now();
    let claim = await host.api.claim({ workerId: 'w', waitMs: 0 });
    while (claim) claim = (await host.api.report({ jobId: claim.job.id, workerId: 'w', attempt: claim.attempt, result: SUCCESS, claim: true })).claim ?? null;
    const reads = sent.filter((s) => s.text.startsWith('select pos, at, v, data from events where pos >=')).length;
    const polls = Math.ceil((Date.now() - started) / 1000) + 1; // the follower's poll, once a second
    assert.ok(reads <= polls, `${reads} reads of the log for 9 of its own commits (polls: up to ${polls})`);
    assert.is(seen.filter((t) => t === 'JobSucceeded').length, 8, 'its own commits are delivered all the same');
    // another machine's commit: notified, read
    await other.transact(['x'], (state, now) => decide({ type: 'enqueue', jobs: [spec('x')] }, state, now));
    const deadline = Date.now() + 10_000;
    while (!seen.includes('JobEnqueued') || seen.lastIndexOf('JobEnqueued') < seen.lastIndexOf('JobSucceeded')) {
      assert.ok(Date.now() < deadline, "the other store's enqueue was delivered");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    host.stop();
    await other.close();
    await store.close();
    await q.drop();
  }
});

test.run();
