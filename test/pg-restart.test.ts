// A restart of PostgreSQL costs no worker its jobs, and a host carries on at once. While the server is down no heartbeat can
// reach it, so every lease that ran out meanwhile (by the database's clock) gets `lease_seconds`
// from the server's start before another machine may take its job; the worker's next heartbeat
// renews it. A lease that ran out while the server was up is still expired. And the host's
// connections are made again within a second of the server's return, however long it was
// away. Real embedded PostgreSQL, stopped and started on its port; real CLI processes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Engine } from '../src/engine/engine.ts';
import { PgStore } from '../src/store/postgres/store.ts';
import { assertNoStrays, cleanup, stopWorkers, until } from './helpers/cli.ts';
import { machine, queueUrl } from './helpers/pg-machines.ts';
import { freshQueue, withPostgres } from './helpers/postgres.ts';

const test = suite('pg-restart');
const pg = withPostgres(test, 'pg-restart', { fsync: false });
test.after.each(() => stopWorkers());
test.after(cleanup);

const LEASE_MS = 1_000;
const GRACE_MS = 30_000;

test('leases that ran out while the server was down get the grace after its start; one that ran out while it was up does not', async () => {
  const server = pg();
  if (!server) return;
  if (!server.embedded) {
    console.log('\n  pg-restart: skipped, QUEUECTL_TEST_DATABASE_URL names a server these tests cannot stop');
    return;
  }
  const q = await freshQueue(server, 't_lease');
  const engine = new Engine(await PgStore.open(await q.connect(4), { schema: q.schema, pollMs: 200 }));
  const leases = engine.store.leases!;
  try {
    const spec = (id: string) => ({ id, command: 'true', cwd: '/', priority: 0, maxRetries: null, runAt: null, timeoutMs: null });
    await engine.execute({ type: 'enqueue', jobs: [spec('held'), spec('later')] });
    await engine.execute({ type: 'workerStart', workerId: 'w', pid: process.pid, slots: 2 });
    const held = await engine.claimNext('w', LEASE_MS);
    assert.is(held?.job.id, 'held');

    await server.stop();
    await new Promise((r) => setTimeout(r, LEASE_MS + 1_000)); // the lease runs out while nobody can renew it
    await server.start();

    assert.equal(await until(() => leases.expiredLeases(GRACE_MS), 10_000, 'the pool to reach the restarted server', 100), [], 'not expired: the server restarted less than lease_seconds ago');
    assert.equal((await leases.expiredLeases(0)).map((l) => l.jobId), ['held'], 'by the database clock alone it ran out');
    assert.ok(await leases.renewLease('held', 'w', 1, LEASE_MS), "the worker's next heartbeat renews it");

    // a lease that runs out while the server is up is expired at once, grace or not
    const later = await engine.claimNext('w', LEASE_MS);
    assert.is(later?.job.id, 'later');
    await new Promise((r) => setTimeout(r, LEASE_MS + 500));
    assert.not.ok(await leases.renewLease('later', 'w', 1, 100), 'a lease the worker let run out with the server up is not renewed (grace of 100 ms since the start has passed)');
    assert.ok((await leases.expiredLeases(100)).some((l) => l.jobId === 'later'), 'and it is expired');
  } finally {
    await engine.close();
    await q.drop();
  }
});

test('a read whose connection the server ends (a restart, an administrator) is tried once more on a new connection', async () => {
  const server = pg();
  if (!server) return;
  const q = await freshQueue(server, 't_drop');
  const engine = new Engine(await PgStore.open(await q.connect(4), { schema: q.schema, pollMs: 200 }));
  const locker = await q.connect(1);
  const admin = await q.connect(1);
  try {
    await engine.execute({ type: 'enqueue', jobs: [{ id: 'kept', command: 'true', cwd: '/', priority: 0, maxRetries: null, runAt: null, timeoutMs: null }] });
    // hold the read on the server, then end its session under it, as a restart does
    let reading: Promise<{ id: string } | undefined | Error> = Promise.resolve(undefined);
    await locker.begin(async (tx) => {
      await tx`lock table jobs in access exclusive mode`;
      reading = engine.store.job('kept').catch((e: Error) => e);
      const [waiting] = await until(async () => {
        const rows = await admin`select pid from pg_stat_activity where wait_event_type = 'Lock' and query like '%from jobs where id%'`;
        return rows.length > 0 ? rows : null;
      }, 10_000, 'the read to wait on the lock');
      await admin`select pg_terminate_backend(${waiting!.pid}::int)`;
    });
    const job = await reading;
    assert.not.instance(job, Error, `the read failed: ${(job as Error)?.message}`);
    assert.is((job as { id: string } | undefined)?.id, 'kept', 'the read was answered');
  } finally {
    await engine.close();
    await q.drop();
  }
});

test('a host whose database was away for a while answers within seconds of its return', async () => {
  const server = pg();
  if (!server) return;
  if (!server.embedded) {
    console.log('\n  pg-restart: skipped, QUEUECTL_TEST_DATABASE_URL names a server these tests cannot stop');
    return;
  }
  const m = machine('back', queueUrl(server, 'back'));
  const worker = await m.startWorker(2);
  await server.stop();
  // long enough for the host to fail many times (its claims, heartbeats and lease checks), which
  // made the driver wait up to 20 s before connecting again (3^failures/100 s)
  await new Promise((r) => setTimeout(r, 12_000));
  await server.start();
  const began = Date.now();
  const r = await m.q('enqueue', 'true', '--id', 'after');
  const ms = Date.now() - began;
  assert.is(r.code, 0, r.stderr);
  // generous for a loaded machine; the driver's own back-off was 10-20 s here
  console.log(`\n  pg-restart: the first command through the host answered ${ms} ms after the restart`);
  assert.ok(ms < 5_000, `the first command through the host after the restart took ${ms} ms`);
  assert.ok(worker.running, 'the worker rode out the outage');
  await worker.stop();
});

test.after(assertNoStrays);
test.run();
