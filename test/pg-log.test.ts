// The event log over PostgreSQL (src/store/postgres/log.ts): positions taken in the appending
// transaction and readable in commit order without ever skipping one, even when a transaction
// that took its positions early commits late (shown first against a bigserial log, which does
// skip); the per-job stream; a follower woken by NOTIFY, by its poll when a notification is
// lost, and one that keeps going across a server restart.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { EventData, StoredEvent } from '../src/events.ts';
import { IDLE_IN_TRANSACTION_MS, type Sql } from '../src/store/postgres/connect.ts';
import { appendEvents, follow, logHead, type NewEvent, readEvents, readEventsPage, readStream } from '../src/store/postgres/log.ts';
import { freshQueue, withPostgres } from './helpers/postgres.ts';

const test = suite('pg-log');
const pg = withPostgres(test, 'pg-log', { fsync: false });

const enqueued = (jobId: string, command = 'true'): NewEvent => ({
  at: Date.now(),
  data: { type: 'JobEnqueued', jobId, command, cwd: '/tmp', priority: 0, maxRetries: null, runAt: null, timeoutMs: null } as EventData,
});
const idOf = (e: StoredEvent) => (e as StoredEvent & { jobId: string }).jobId;

/** A promise and the function that settles it: to hold a transaction open until told. */
const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `check` until it is true (every 10 ms, up to `ms`). */
const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
};

/** Is some other session of this test waiting for a lock (the head) right now? */
const someoneWaitsForALock = async (sql: Sql) =>
  (await sql`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`).length > 0;

/** Has some session updated the head in a transaction still open? */
const someoneHoldsTheHead = async (sql: Sql) =>
  (await sql`select 1 from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'log_head' and l.mode = 'RowExclusiveLock' and l.granted`).length > 0;

test('the trap, shown: with a bigserial, a reader that reads past an open transaction skips its event', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_log');
  const sql = await q.connect(3);
  const late = gate();
  try {
    await sql`create table naive (pos bigserial primary key, note text)`;
    const slow = sql.begin(async (tx) => {
      await tx`insert into naive (note) values ('early position, late commit')`;
      await late.opened;
    });
    slow.catch(() => {});
    await until('the slow insert', async () => (await sql`select count(*)::int as n from naive`)[0]!.n === 0 && (await sql`select last_value from naive_pos_seq`)[0]!.last_value === '1');
    await sql`insert into naive (note) values ('fast')`;
    const first = await sql<{ pos: string }[]>`select pos from naive where pos >= 1 order by pos`;
    assert.equal(first.map((r) => Number(r.pos)), [2], 'the reader sees position 2 first');
    late.open();
    await slow;
    const after = await sql<{ pos: string }[]>`select pos from naive where pos >= 3 order by pos`;
    assert.equal(after.map((r) => r.pos), [], 'resuming after 2, the reader never sees position 1: skipped');
  } finally {
    late.open();
    await q.drop();
  }
});

test('the head: a transaction that took positions early and commits late holds later appenders back; nothing is skipped', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_log');
  const sql = await q.connect(4);
  const late = gate();
  try {
    const slow = sql.begin(async (tx) => {
      await appendEvents(tx, q.schema, [enqueued('slow')]);
      await late.opened;
    });
    slow.catch(() => {}); // awaited below; a failed assertion before that must not crash the run
    await until('the slow append to hold the head', () => someoneHoldsTheHead(sql));
    const fast = sql.begin((tx) => appendEvents(tx, q.schema, [enqueued('fast')]));
    fast.catch(() => {});
    await until('the fast append to wait for the head', () => someoneWaitsForALock(sql));
    assert.equal(await readEventsPage(sql, 0, 10), [], 'a reader sees nothing while the first position is not committed');
    late.open();
    await Promise.all([slow, fast]);
    const seen = await readEventsPage(sql, 0, 10);
    assert.equal(seen.map((e) => [e.pos, idOf(e)]), [[0, 'slow'], [1, 'fast']]);
    assert.is(await logHead(sql), 1);
  } finally {
    late.open();
    await q.drop();
  }
});

test('a process stalled inside an appending transaction is cut off by the server, and the head moves on', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_log');
  const stalled = await q.connect(1);
  const other = await q.connect(1);
  try {
    const [setting] = await other<{ value: string }[]>`select current_setting('idle_in_transaction_session_timeout') as value`;
    assert.is(setting!.value, `${IDLE_IN_TRANSACTION_MS / 1000}s`, 'every queuectl session has the timeout');
    const never = new Promise<void>(() => {}); // a process stopped (SIGSTOP) or cut off: the transaction never ends
    const stuck = stalled.begin(async (tx) => {
      await tx`set local idle_in_transaction_session_timeout = '300ms'`; // the same rule, sooner
      await appendEvents(tx, q.schema, [enqueued('stalled')]);
      await never;
    });
    stuck.catch(() => {});
    await until('the stalled append to hold the head', () => someoneHoldsTheHead(other));
    const began = performance.now();
    await other.begin((tx) => appendEvents(tx, q.schema, [enqueued('next')]));
    const waited = performance.now() - began;
    assert.ok(waited >= 150 && waited < 5_000, `the next append waited for the cut (${waited.toFixed(0)} ms)`);
    assert.equal((await readEventsPage(other, 0, 10)).map((e) => [e.pos, idOf(e)]), [[0, 'next']], 'the stalled transaction left nothing, not even a gap');
  } finally {
    await q.drop();
  }
});

test('slow and fast transactions on several connections, a follower reading all along: every event once, in order', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_log');
  const WRITERS = 4;
  const TRANSACTIONS = 40; // per writer
  const writers = await Promise.all(Array.from({ length: WRITERS }, () => q.connect(1)));
  const reader = await q.connect(1);
  const notified = await q.connect(1);
  try {
    let writing = true;
    const expected = new Set<string>();
    // a follower reading as fast as it can, checking each page starts where the last ended
    const seen: StoredEvent[] = [];
    const gaps: string[] = [];
    const reading = (async () => {
      let next = 0;
      for (;;) {
        const done = !writing; // decided before the read: a read after the last commit ends it
        const events = await readEventsPage(reader, next, 50);
        for (const e of events) {
          if (e.pos !== next) gaps.push(`expected ${next}, got ${e.pos}`);
          seen.push(e);
          next = e.pos + 1;
        }
        if (done && events.length === 0) return;
      }
    })();
    // and one woken by NOTIFY
    const woken: StoredEvent[] = [];
    const follower = await follow(notified, q.schema, (events) => void woken.push(...events), { from: 0, pollMs: 60_000 });
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    await Promise.all(
      writers.map(async (sql, w) => {
        for (let t = 0; t < TRANSACTIONS; t++) {
          const events = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, k) => enqueued(`w${w}-t${t}-e${k}`));
          const before = random() < 0.3 ? Math.floor(random() * 15) : 0; // slow to decide: holds nothing shared
          const after = random() < 0.3 ? Math.floor(random() * 15) : 0; // positions taken early, committed late
          await sql.begin(async (tx) => {
            if (before) await sleep(before);
            await appendEvents(tx, q.schema, events);
            if (after) await sleep(after);
          });
          for (const e of events) expected.add((e.data as { jobId: string }).jobId);
        }
      }),
    );
    writing = false;
    await reading;
    assert.equal(gaps, [], 'no page started past the next position');
    const ids = seen.map(idOf);
    assert.is(new Set(ids).size, ids.length, 'no event seen twice');
    assert.equal(new Set(ids), expected, 'every event seen');
    assert.equal(seen.map((e) => e.pos), [...Array(seen.length).keys()], 'positions 0..n-1 in order');
    await until('the NOTIFY follower to catch up', () => woken.length >= seen.length);
    await follower.stop();
    assert.equal(woken.map((e) => e.pos), seen.map((e) => e.pos), 'the NOTIFY follower saw the same, in the same order');
    console.log(`\n  pg-log: ${seen.length} events in ${WRITERS * TRANSACTIONS} transactions from ${WRITERS} connections, read in order`);
  } finally {
    await q.drop();
  }
});

test('readStream (one job, through its index) and readEvents in pages, with an inclusive end', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_log');
  const sql = await q.connect(2);
  try {
    assert.is(await logHead(sql), -1, 'an empty log');
    for (let i = 0; i < 5; i++) await sql.begin((tx) => appendEvents(tx, q.schema, [enqueued(`a${i}`), enqueued(i % 2 ? 'odd' : 'even', `run ${i}`)]));
    const even = await readStream(sql, 'even');
    assert.equal(even.map((e) => [e.pos, (e as StoredEvent & { command: string }).command]), [[1, 'run 0'], [5, 'run 2'], [9, 'run 4']]);
    const plan = await sql`explain select pos, at, v, data from events where job_id = 'even' order by pos`;
    assert.match(JSON.stringify(plan), 'events_by_job', 'the stream is read through its index');
    const all: number[] = [];
    for await (const e of readEvents(sql, 2, 8, 3)) all.push(e.pos);
    assert.equal(all, [2, 3, 4, 5, 6, 7, 8]);
    const rest: number[] = [];
    for await (const e of readEvents(sql, 7, Number.POSITIVE_INFINITY, 2)) rest.push(e.pos);
    assert.equal(rest, [7, 8, 9]);
  } finally {
    await q.drop();
  }
});

test('a follower: NOTIFY wakes it at once; a lost notification is made up by the poll', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_log');
  const sql = await q.connect(2);
  const listening = await q.connect(1);
  const polling = await q.connect(1);
  try {
    const byNotify: StoredEvent[] = [];
    const byPoll: StoredEvent[] = [];
    const notify = await follow(listening, q.schema, (events) => void byNotify.push(...events), { from: 0, pollMs: 600_000 });
    const poll = await follow(polling, q.schema, (events) => void byPoll.push(...events), { from: 0, pollMs: 200 });
    const began = performance.now();
    await sql.begin((tx) => appendEvents(tx, q.schema, [enqueued('n1')]));
    await until('the NOTIFY wake-up', () => byNotify.length === 1, 5_000);
    const wakeMs = performance.now() - began;
    // an event whose notification is lost: appended as appendEvents does, but without the NOTIFY
    await sql.begin(async (tx) => {
      const [h] = await tx<{ first: string }[]>`update log_head set next_pos = next_pos + 1 returning next_pos - 1 as first`;
      await tx`insert into events (pos, at, type, job_id, v, data) values (${h!.first}, 0, 'JobEnqueued', 'lost', 1, ${sql.json(enqueued('lost').data as never)})`;
    });
    await until('the poll', () => byPoll.length === 2, 5_000);
    await sleep(300);
    assert.is(byNotify.length, 1, 'without its notification, the follower that does not poll has not seen it');
    assert.equal(byPoll.map(idOf), ['n1', 'lost']);
    await notify.stop();
    await poll.stop();
    console.log(`\n  pg-log: NOTIFY woke a follower ${wakeMs.toFixed(1)} ms after the append began`);
  } finally {
    await q.drop();
  }
});

test('a follower keeps going across a server restart: every event once, in order', async () => {
  const server = pg();
  if (!server?.embedded) return; // needs a server this file can stop
  const q = await freshQueue(server, 't_log');
  const sql = await q.connect(1);
  const listening = await q.connect(1);
  try {
    const seen: StoredEvent[] = [];
    let errors = 0;
    const follower = await follow(listening, q.schema, (events) => void seen.push(...events), { from: 0, pollMs: 100, onError: () => errors++ });
    await sql.begin((tx) => appendEvents(tx, q.schema, [enqueued('before')]));
    await until('the first event', () => seen.length === 1);
    await server.stop();
    await sleep(300); // the follower's reads fail meanwhile
    await server.start();
    // the first query after a restart may meet the old, dead connection: the pool reconnects
    await until('the database back', async () => sql`select 1`.then(() => true, () => false));
    for (const id of ['after1', 'after2']) await sql.begin((tx) => appendEvents(tx, q.schema, [enqueued(id)]));
    await until('the events after the restart', () => seen.length === 3);
    await follower.stop();
    assert.equal(seen.map((e) => [e.pos, idOf(e)]), [[0, 'before'], [1, 'after1'], [2, 'after2']]);
    assert.ok(errors > 0, 'reads failed while the server was down, and the follower went on');
  } finally {
    await q.drop();
  }
});

test.run();
