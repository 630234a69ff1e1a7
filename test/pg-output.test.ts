// Job output and worker heartbeats in PostgreSQL (src/store/postgres/output.ts, workers.ts):
// output kept up to the cap, in chunks readable from any offset, a chunk written twice stored
// once, a reader that stops at a missing chunk; workers live by the database's clock.
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { appendOutput, deleteOutput, MAX_CHUNK, readOutput } from '../src/store/postgres/output.ts';
import { beatWorker, liveWorkers, lockDeadWorkers, removeWorker } from '../src/store/postgres/workers.ts';
import { databaseNow } from '../src/store/postgres/claim.ts';
import { freshQueue, withPostgres } from './helpers/postgres.ts';

const test = suite('pg-output');
const pg = withPostgres(test, 'pg-output', { fsync: false });

test('output: appended in chunks, capped, read from any offset, a repeated chunk stored once, stopping at a gap', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_out');
  try {
    const sql = await q.connect(2);
    const cap = 10;
    const put = (offset: number, text: string) => appendOutput(sql, { jobId: 'j', attempt: 1, stream: 'stdout', offset, data: Buffer.from(text) }, cap);
    assert.is(await put(0, 'hello '), 6);
    assert.is(await put(0, 'hello '), 6, 'the same chunk again (a retry) is accepted');
    assert.is(await put(6, 'world and more'), 4, 'only the bytes under the cap are kept');
    assert.is(await put(20, 'beyond'), 0);
    assert.equal(await readOutput(sql, 'j', 1, 'stdout'), { data: Buffer.from('hello worl'), next: 10 });
    assert.equal(await readOutput(sql, 'j', 1, 'stdout', 3), { data: Buffer.from('lo worl'), next: 10 }, 'from inside a chunk');
    assert.equal(await readOutput(sql, 'j', 1, 'stdout', 10), { data: Buffer.alloc(0), next: 10 });
    assert.equal((await readOutput(sql, 'j', 1, 'stderr')).data.length, 0, 'another stream');
    assert.equal((await readOutput(sql, 'j', 2, 'stdout')).data.length, 0, 'another attempt');
    await appendOutput(sql, { jobId: 'g', attempt: 1, stream: 'stderr', offset: 0, data: Buffer.from('abc') }, 100);
    await appendOutput(sql, { jobId: 'g', attempt: 1, stream: 'stderr', offset: 6, data: Buffer.from('ghi') }, 100);
    assert.equal(await readOutput(sql, 'g', 1, 'stderr'), { data: Buffer.from('abc'), next: 3 }, 'stops before a missing chunk');
    await appendOutput(sql, { jobId: 'g', attempt: 1, stream: 'stderr', offset: 3, data: Buffer.from('def') }, 100);
    assert.equal(await readOutput(sql, 'g', 1, 'stderr', 3), { data: Buffer.from('defghi'), next: 9 }, 'and goes on once it is there');
    const big = randomBytes(MAX_CHUNK * 2 + 5);
    assert.is(await appendOutput(sql, { jobId: 'big', attempt: 1, stream: 'stdout', offset: 0, data: big }, 10 * MAX_CHUNK), big.length);
    assert.ok((await readOutput(sql, 'big', 1, 'stdout')).data.equals(big), 'a chunk bigger than a row, split and read back whole');
    assert.is(await deleteOutput(sql, 'big'), 3);
  } finally {
    await q.drop();
  }
});

test("workers: listed while their heartbeat lasts by the database's clock, then found dead once", async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_out');
  try {
    const sql = await q.connect(3);
    await beatWorker(sql, { workerId: 'm1-w1', hostname: 'm1', pid: 100, slots: 4 }, 60_000);
    await beatWorker(sql, { workerId: 'm2-w1', hostname: 'm2', pid: 200, slots: 2 }, 300);
    assert.equal((await liveWorkers(sql)).map((w) => [w.workerId, w.hostname, w.slots]), [['m1-w1', 'm1', 4], ['m2-w1', 'm2', 2]]);
    const until = (await liveWorkers(sql)).find((w) => w.workerId === 'm2-w1')!.expiresAt;
    for (let i = 0; i < 200 && (await databaseNow(sql)) <= until; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await liveWorkers(sql)).map((w) => w.workerId), ['m1-w1'], 'm2 ran out');
    // two machines look for dead workers at once: only one gets m2-w1
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let first!: string[];
    const finder = sql.begin(async (tx) => {
      first = await lockDeadWorkers(tx);
      await released;
      for (const id of first) await removeWorker(tx, id);
    });
    for (let i = 0; i < 100 && first === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    const second = await sql.begin((tx) => lockDeadWorkers(tx));
    release();
    await finder;
    assert.equal([first, second], [['m2-w1'], []]);
    assert.equal(await sql.begin((tx) => lockDeadWorkers(tx)), [], 'removed');
  } finally {
    await q.drop();
  }
});

test.run();
