// Fault injection, a full disk: each test mounts its own small tmpfs (as root; skipped with a
// message where mounting is not allowed, failed when CI=true) and fills it. Reads still
// answer, writes are refused with one clear line (exit 1) and write nothing, output that could
// not be kept is reported as it is, the worker says so once and carries on once space is
// freed, and nothing acknowledged is lost.
import { existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemoryLevel } from 'memory-level';
import { openLevelEngine } from './helpers/backends.ts';
import type { QueuectlError } from '../src/errors.ts';
import { Host } from '../src/host/host.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';
import { LogStore } from '../src/store/leveldb/store.ts';
import type { LevelStore } from '../src/store/leveldb/level-store.ts';
import { PROJECTIONS } from '../projections/index.ts';
import {
  type StoredEvent, cleanup, cli, events, history, job, json, ok, refused, scratch, startWorker, stopWorkers, until, waitFor,
} from './helpers/cli.ts';
import { fill, onSmallDisk } from './helpers/disk.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

/** A job file of n jobs with ids prefix-1..n, big enough that its append cannot fit a full disk's last page. */
const jobFile = (n: number, prefix: string): string => {
  const path = join(scratch('jobs'), 'jobs.ndjson');
  writeFileSync(path, Array.from({ length: n }, (_, i) => JSON.stringify({ id: `${prefix}-${i + 1}`, command: `echo ${'x'.repeat(200)}` })).join('\n'));
  return path;
};

const positionsContiguous = (es: StoredEvent[]) => assert.equal(es.map((e) => e.pos), es.map((_, i) => i), 'positions are contiguous from 0');

test('a worker on a full disk: enqueue refused (exit 1, nothing written), reads answer, output kept truthfully, one line, recovery, graceful SIGINT, nothing lost', async () => {
  await onSmallDisk(async (dir) => {
    const home = join(dir, 'home');
    const q = cli(home);
    const gate = join(scratch('gate'), 'open'); // outside the small disk
    const acknowledged: string[] = [];
    for (const id of ['p1', 'p2']) {
      // print 300 kB once the disk is full
      ok(await q('enqueue', `while [ ! -e ${gate} ]; do sleep 0.05; done; echo start; head -c 300000 /dev/zero | tr '\\0' x`, '--id', id));
      acknowledged.push(id);
    }
    const w = await startWorker(home, '--count', '2').ready();
    await until(async () => json(await q('status', '--json')).jobs.processing === 2, 10_000, 'both jobs running');

    const filler = fill(dir);
    // Enqueue while full: one clear line, exit 1, and none of the file's jobs in the queue later.
    const rejected = jobFile(300, 'full');
    refused(await q('enqueue', '--file', rejected), 1, new RegExp(`^queuectl: cannot write the log in ${join(home, 'db')}: no space left on device; free some disk space\\n$`));

    // The jobs print while the disk is full; their results cannot be recorded yet.
    writeFileSync(gate, '');
    await until(() => w.lines.some((l) => l.includes('cannot write the log')), 15_000, 'the worker to say the log cannot be written').catch((e) => {
      throw new Error(`${(e as Error).message}; the worker said:\n${w.lines.join('\n')}`);
    });
    await new Promise((r) => setTimeout(r, 2500)); // the worker keeps retrying meanwhile, silently

    // Reading needs no space.
    const status = json(await q('status', '--json'));
    assert.is(status.jobs.processing, 2, 'results not recorded yet: still processing');
    assert.is(json(await q('list', '--json')).length, 2);
    assert.is((await job(q, 'p1')).state, 'processing');
    assert.equal((await history(q, 'p1')).map((e) => e.type), ['JobEnqueued', 'JobClaimed']);
    assert.match(ok(await q('projections', 'verify')), /^projections match the log/);

    const troubleLines = () => w.lines.filter((l) => l.includes('cannot write the log'));
    assert.is(troubleLines().length, 1, `one line while the disk is full, not one per retry:\n${w.lines.join('\n')}`);
    assert.match(troubleLines()[0]!, /cannot write the log in .*: no space left on device; free some disk space; retrying$/);

    rmSync(filler);
    await until(async () => (await job(q, 'p1')).state === 'completed' && (await job(q, 'p2')).state === 'completed', 20_000, 'the results to be recorded once space is freed');
    assert.is(w.lines.filter((l) => l.includes('the log is writable again')).length, 1, w.lines.join('\n'));
    assert.is(troubleLines().length, 1);

    // The output kept is what the disk took, and says why the rest is missing.
    for (const id of ['p1', 'p2']) {
      const done = (await history(q, id)).find((e) => e.type === 'JobSucceeded')!;
      const out = done.output.stdout;
      const file = join(home, 'logs', id, '1.stdout');
      const onDisk = existsSync(file) ? statSync(file).size : 0;
      assert.is(out.bytes, 300_006, `${id}: every byte counted`);
      assert.is(out.kept, onDisk, `${id}: kept is what was written (${onDisk} bytes), not the cap`);
      assert.ok(out.kept < out.bytes, `${id}: not all of it could be written`);
      assert.equal([out.truncated, out.error], [true, 'no space left on device']);
      assert.match(ok(await q('logs', id)), new RegExp(`\\[stdout truncated: kept ${out.kept} of 300006 bytes; the rest could not be written: no space left on device\\]`));
    }

    // The worker carries on: a new job runs.
    ok(await q('enqueue', 'echo after', '--id', 'after'));
    acknowledged.push('after');
    ok(await waitFor(q, ['after']));

    w.signal('SIGINT');
    assert.equal(await w.finished(15_000), { code: 0, signal: null }, w.lines.join('\n'));
    const all = await events(q);
    positionsContiguous(all);
    assert.ok(all.some((e) => e.type === 'WorkerStopped'), 'WorkerStopped in the log');
    for (const id of acknowledged) assert.is((await job(q, id)).state, 'completed', id);
    assert.not.ok(all.some((e) => String(e.jobId).startsWith('full-')), 'nothing of the refused file was written');
    assert.is(json(await q('status', '--json')).jobs.processing, 0, 'every job accounted for');
    assert.match(ok(await q('projections', 'verify')), /^projections match the log/);
  });
});

test('no host on a full disk: enqueue and status fail with one line naming the database (exit 1); after space is freed all is there', async () => {
  await onSmallDisk(async (dir) => {
    const home = join(dir, 'home');
    const q = cli(home);
    ok(await q('enqueue', 'echo one', '--id', 'one'));
    const filler = fill(dir);
    const enqueue = await q('enqueue', '--file', jobFile(300, 'full'));
    refused(enqueue, 1, new RegExp(`^queuectl: cannot (open the queue database|write the log) in ${join(home, 'db')}: no space left on device; free some disk space\\n$`));
    // LevelDB writes when it opens (a new manifest): with no host to ask, reading needs a little room
    const status = await q('status', '--json');
    if (status.code !== 0) refused(status, 1, /: no space left on device; free some disk space\n$/);
    rmSync(filler);
    const all = await events(q);
    positionsContiguous(all);
    assert.equal(all.filter((e) => e.type === 'JobEnqueued').map((e) => e.jobId), ['one'], 'the refused file left nothing');
    assert.match(ok(await q('projections', 'verify')), /^projections match the log/);
  });
});

test('a report written just before the disk filled stands when the claim riding on it fails; then everything is refused as the environment (exit 1)', async () => {
  const engine = await openLevelEngine(new MemoryLevel<string, unknown>() as unknown as AnyLevel, { sync: false });
  const host = new Host(engine);
  const spec = (id: string) => ({ id, command: 'true', cwd: '/', priority: 0, maxRetries: null, runAt: null, timeoutMs: null });
  await engine.execute({ type: 'enqueue', jobs: [spec('a'), spec('b')] });
  const first = (await host.api.claim({ workerId: 'w', waitMs: 0 }))!;
  // the disk fills after the next write: the report's batch is written, the claim's (the one after it) is not
  const db = (engine.store as LevelStore).log.db as unknown as { batch: (...args: unknown[]) => { write: (o: unknown) => Promise<void> } };
  const batch = db.batch.bind(db);
  let writes = 0;
  db.batch = (...args: unknown[]) => {
    const b = batch(...args);
    const write = b.write.bind(b);
    b.write = (o: unknown) => (++writes >= 2 ? Promise.reject(new Error('IO error: /q/db/000012.log: No space left on device')) : write(o));
    return b;
  };
  const answer = await host.api.report({ jobId: 'a', workerId: 'w', attempt: first.attempt, result: { durationMs: 1, exitCode: 0, signal: null, timedOut: false, error: null, output: null }, claim: true });
  assert.equal([answer.events.map((e) => e.type), answer.claim], [['JobSucceeded'], null]);
  assert.is((await engine.getJob('a'))!.state, 'completed');
  for (const call of [() => host.api.claim({ workerId: 'w', waitMs: 0 }), () => host.api.enqueue({ jobs: [spec('c')] })]) {
    try {
      await call();
      assert.unreachable('refused while the log cannot be written');
    } catch (e) {
      assert.equal([(e as QueuectlError).code, (e as QueuectlError).exitCode], ['QUEUECTL_ENVIRONMENT', 1]);
      assert.match((e as Error).message, /^cannot write the log in .*: no space left on device; free some disk space$/);
    }
  }
  assert.is((await engine.getJob('b'))!.state, 'pending', 'the failed claim left b as it was');
  await engine.close();
});

test('verify writes nothing while its rebuild fits in memory (it answers on a full disk), and names every difference either way', async () => {
  for (const cacheMax of [500_000, 3]) {
    const db = new MemoryLevel<string, unknown>() as unknown as AnyLevel;
    const engine = await openLevelEngine(db, { sync: false });
    const spec = (id: string) => ({ id, command: 'true', cwd: '/', priority: 0, maxRetries: null, runAt: null, timeoutMs: null });
    for (const id of ['a', 'b', 'c', 'd']) await engine.execute({ type: 'enqueue', jobs: [spec(id)] });
    await engine.close();
    const store = await LogStore.open(db, { projections: PROJECTIONS, sync: false, replay: { chunk: 1, flush: 1, cacheMax } });
    const jobs = store.sublevel('jobs');
    await jobs.put('a', { ...(await jobs.get('a')), command: 'tampered' });
    await jobs.del('b');
    await jobs.put('zz', { id: 'zz' });
    const inMemory = cacheMax > 100;
    const batch = db.batch.bind(db);
    if (inMemory) (db as unknown as { batch: () => never }).batch = () => assert.unreachable('verify wrote to the disk') as never;
    const { events, differences } = await store.verify();
    (db as unknown as { batch: typeof batch }).batch = batch;
    assert.is(events, 4);
    const found = differences.map((d) => d.split(':')[0]);
    assert.equal(found.filter((k) => k!.startsWith('jobs/')), ['jobs/a', 'jobs/b', 'jobs/zz'], `cacheMax ${cacheMax}: ${differences.join('\n')}`);
    assert.match(differences.find((d) => d.startsWith('jobs/a'))!, /stored .*"tampered".* but the log gives .*"true"/);
    await store.close();
  }
});

test.run();
