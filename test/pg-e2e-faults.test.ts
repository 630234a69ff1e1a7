// End to end, issue 10: a machine dies (kill -9 of its worker process, which is also its host)
// and PostgreSQL stops and starts again, in the middle of a run on three machines. Real
// processes of the built CLI, a real embedded PostgreSQL stopped and started on its port.
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type StoredEvent, assertNoStrays, cleanup, events, history, ok, refused, scratch, stopWorkers, until } from './helpers/cli.ts';
import { claimViolation, enqueueMany, ids, linesOf, note, sigkill, tally } from './helpers/multi.ts';
import { assertVerifies, machines, queueUrl, status, withPgCli } from './helpers/pg-machines.ts';

const test = suite('pg-e2e-faults');
const pg = withPgCli(test, 'pg-e2e-faults');
test.after.each(() => stopWorkers());
test.after(cleanup);

const byJob = (log: StoredEvent[]): Map<string, StoredEvent[]> => {
  const m = new Map<string, StoredEvent[]>();
  for (const e of log) if (e.jobId !== undefined) m.set(e.jobId, [...(m.get(e.jobId) ?? []), e]);
  return m;
};

test('kill -9 of one machine mid-run: the others recover its jobs (JobLeaseExpired, then a later success)', async () => {
  const server = pg();
  if (!server) return;
  const dir = scratch('pg-kill');
  const out = join(dir, 'out.txt');
  const [m1, m2, m3] = machines(3, queueUrl(server, 'kill'));
  ok(await m1!.q('config', 'set', 'lease_seconds', '5')); // a dead machine's claims expire within seconds
  ok(await m1!.q('config', 'set', 'backoff_base', '1'));
  const [victim] = await Promise.all([m1!.startWorker(4), m2!.startWorker(4), m3!.startWorker(4)]);
  const all = ids('k', 150);
  await enqueueMany(m2!.q, dir, all.map((id) => ({ id, command: `sleep 0.3; echo $QUEUECTL_JOB_ID >> ${out}` })));
  const before = await until(async () => {
    const s = await status(m2!.q);
    const mine = s.workers.find((w) => w.pid === victim!.pid);
    return s.jobs.completed >= 20 && (mine?.running.length ?? 0) >= 2 ? { s, mine: mine! } : null;
  }, 60_000, 'machine 1 to be running jobs', 50);
  const at = Date.now();
  await sigkill(victim!);
  note(`killed machine 1's worker ${victim!.pid} while it ran ${before.mine.running.join(' ')}`);

  await until(async () => {
    const s = await status(m2!.q);
    return s.jobs.completed === all.length && s.jobs.pending + s.jobs.processing + s.jobs.failed === 0;
  }, 120_000, 'every job to complete on the surviving machines', 250);
  const streams = byJob(await events(m3!.q));
  assert.equal(all.map((id) => claimViolation(id, streams.get(id) ?? [])).filter(Boolean).slice(0, 10), [], 'no job claimed twice at once, no late result applied');
  // what machine 1 was running: lease expired, then a later attempt by another machine succeeded
  const lost = before.mine.running;
  for (const id of lost) {
    const h = await history(m3!.q, id);
    const expired = h.findIndex((e) => e.type === 'JobLeaseExpired' && e.workerId === before.mine.id);
    const succeededEarlier = h.some((e) => e.type === 'JobSucceeded' && e.workerId === before.mine.id);
    if (succeededEarlier) continue; // its result arrived just before the kill
    assert.ok(expired >= 0, `history ${id}: ${h.map((e) => e.type).join(' ')}`);
    const later = h.slice(expired + 1).find((e) => e.type === 'JobSucceeded');
    assert.ok(later && later.workerId !== before.mine.id, `history ${id}: a later success by another machine: ${h.map((e) => `${e.type}:${e.workerId ?? ''}`).join(' ')}`);
    assert.ok(h[expired]!.at - at <= 30_000, `${id}: lease expired ${h[expired]!.at - at} ms after the kill`);
  }
  const seen = tally(linesOf(out));
  assert.equal(all.filter((id) => !seen.has(id)), [], 'every job ran');
  assert.equal([...seen].filter(([id, n]) => n > 1 && !lost.includes(id)), [], 'only the killed machine\'s jobs may have run twice');
  await assertVerifies(m2!.q);
  await Promise.all([m2, m3].map((m) => m!.workers[0]!.stop()));
});

test('PostgreSQL stopped and started again mid-run: one-line errors meanwhile, every job completed exactly once, nothing acknowledged lost', async () => {
  const server = pg();
  if (!server) return;
  if (!server.embedded) {
    console.log('\n  pg-e2e-faults: restart test skipped, QUEUECTL_TEST_DATABASE_URL names a server these tests cannot stop');
    return;
  }
  const dir = scratch('pg-restart');
  const out = join(dir, 'out.txt');
  const url = queueUrl(server, 'restart');
  const [m1, m2, m3] = machines(3, url);
  await Promise.all([m1!.startWorker(4), m2!.startWorker(4), m3!.startWorker(4)]);
  const first = ids('r', 240);
  await enqueueMany(m1!.q, dir, first.map((id) => ({ id, command: `sleep 0.05; echo $QUEUECTL_JOB_ID >> ${out}` })));

  // one enqueue at a time from machine 3 through the outage: the ids it was told are enqueued
  const acknowledged: string[] = [];
  const refusals: string[] = [];
  let stopEnqueueing = false;
  const enqueuer = (async () => {
    for (let i = 0; !stopEnqueueing; i++) {
      const id = `late${String(i).padStart(4, '0')}`;
      const r = await m3!.q('enqueue', '--id', id, `echo $QUEUECTL_JOB_ID >> ${out}`);
      if (r.code === 0) acknowledged.push(id);
      else refusals.push(r.stderr);
      await new Promise((res) => setTimeout(res, 100));
    }
  })();

  await until(async () => (await status(m2!.q)).jobs.completed >= 60, 60_000, '60 jobs to complete', 50);
  await server.stop();
  note('PostgreSQL stopped');
  try {
    // a command meanwhile: one line, exit 1, naming the server, no password
    const r = await m2!.q('status');
    refused(r, 1, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
    assert.not.match(r.stderr, /queuectl-test-secret/, 'the password is never shown');
    await new Promise((res) => setTimeout(res, 2000));
  } finally {
    await server.start();
    note('PostgreSQL started again');
  }
  const atRestart = acknowledged.length;
  await until(() => acknowledged.length >= atRestart + 5, 60_000, 'enqueues to be acknowledged again after the restart', 100);
  stopEnqueueing = true;
  await enqueuer;
  for (const e of refusals) assert.match(e, /^queuectl: [^\n]+\n$/, `a refused enqueue says why in one line: ${e}`);
  const all = [...first, ...acknowledged];
  await until(async () => {
    const s = await status(m2!.q);
    return s.jobs.pending + s.jobs.processing + s.jobs.failed === 0 ? s : null;
  }, 120_000, 'every job to end after the restart', 250);
  const log = await events(m1!.q);
  const streams = byJob(log);
  assert.equal(all.filter((id) => !streams.has(id)), [], 'no acknowledged enqueue is lost');
  assert.equal(all.filter((id) => (streams.get(id) ?? []).filter((e) => e.type === 'JobSucceeded').length !== 1), [], 'every job completed exactly once');
  assert.equal([...streams.keys()].filter((id) => !(streams.get(id) ?? []).some((e) => e.type === 'JobSucceeded')), [], 'and so did any job whose enqueue was refused but landed');
  const seen = tally(linesOf(out));
  assert.equal(all.filter((id) => seen.get(id) !== 1).map((id) => `${id} x${seen.get(id) ?? 0}`), [], 'every job ran exactly once');
  note(`${acknowledged.length} enqueues acknowledged and ${refusals.length} refused across the restart`);
  assert.ok(refusals.length > 0 || acknowledged.length > 0, 'the enqueuer ran');
  await assertVerifies(m3!.q);
  // they carried on through the outage: none died of it
  for (const m of [m1!, m2!, m3!]) assert.ok(m.workers[0]!.running, `the worker on ${m.name} is still running: ${m.workers[0]!.lines.slice(-5).join(' | ')}`);
  await Promise.all([m1, m2, m3].map((m) => m!.workers[0]!.stop()));
});

test.after(assertNoStrays);
test.run();
