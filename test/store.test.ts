// The log store's batch assembly, over the real LevelDB: a stage that fails leaves nothing in
// the batch it shares with other commands, and one stage may hold more events than a call's
// argument list can; a short writer lets a compaction finish; and a replay (rebuild, verify)
// in tiny chunks, flushes and cache gives exactly what the appends built.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { EventData, StoredEvent } from '../src/events.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';
import { L0_COMPACTION_TRIGGER, LogStore } from '../src/store/leveldb/store.ts';
import { PROJECTIONS } from '../projections/index.ts';
import type { Projection } from '../projections/projection.ts';
import { cli, newHome, ok } from './helpers/cli.ts';

const T0 = 1_800_000_000_000;

const enqueued = (id: string, command = 'true'): EventData =>
  ({ type: 'JobEnqueued', jobId: id, command, cwd: '/tmp', priority: 0, maxRetries: null, runAt: null, timeoutMs: null }) as EventData;

/** A projection that refuses one command: a stand-in for any failure in the middle of a fold. */
const refusing: Projection = {
  name: 'refusing',
  version: 1,
  apply(event, view) {
    if (event.type === 'JobEnqueued' && (event as StoredEvent & { command: string }).command === 'boom') throw new Error('boom');
    view.put('seen', event.pos);
  },
};

const withStore = async (projections: readonly Projection[], fn: (store: LogStore, dir: string) => Promise<void>): Promise<void> => {
  const dir = mkdtempSync(join(tmpdir(), 'queuectl-store-'));
  const store = await LogStore.open(new ClassicLevel(join(dir, 'db')) as unknown as AnyLevel, { projections });
  try {
    await fn(store, dir);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
};

const allEvents = async (store: LogStore): Promise<StoredEvent[]> => {
  const out: StoredEvent[] = [];
  for await (const e of store.readEvents()) out.push(e);
  return out;
};

test('a failed stage leaves nothing behind, in a shared batch or a fresh one', async () => {
  await withStore([...PROJECTIONS, refusing], async (store) => {
    // a: written at once (in flight); b joins the next batch; c fails in that shared batch; d follows
    const a = await store.stage([enqueued('a')], T0);
    const b = await store.stage([enqueued('b')], T0);
    await assert.not.ok(await store.stage([enqueued('c', 'boom')], T0).then(() => true, () => false));
    const d = await store.stage([enqueued('d')], T0);
    await Promise.all([a.durable, b.durable, d.durable]);
    // e fails as the first stage of a fresh batch; f follows in the same batch
    await assert.not.ok(await store.stage([enqueued('e', 'boom')], T0).then(() => true, () => false));
    const drained = await Promise.race([store.drain().then(() => true), new Promise((r) => setTimeout(r, 5000, false))]);
    assert.ok(drained, 'drain() returns after a failed stage (no empty batch left waiting)');
    await store.append([enqueued('f')], T0);

    const events = await allEvents(store);
    assert.equal(events.map((e) => (e as StoredEvent & { jobId: string }).jobId), ['a', 'b', 'd', 'f']);
    assert.equal(events.map((e) => e.pos), [0, 1, 2, 3], 'positions stay contiguous');
    assert.equal(await store.sublevel('jobs').get('c'), undefined);
    assert.equal(await store.sublevel('jobs').get('e'), undefined);
    assert.equal((await store.readStream('c')).length, 0);
    const { differences } = await store.verify();
    assert.equal(differences, []);
  });
});

test('a stage that fails after the write in flight ended still sends the open batch on its way', async () => {
  await withStore([...PROJECTIONS, refusing], async (store) => {
    // Widen the window as a slow disk would: each write and each cold read takes a while.
    const s = store as unknown as { write: (...a: unknown[]) => Promise<void>; getRaw: (...a: unknown[]) => Promise<unknown[]> };
    const write = s.write.bind(store);
    s.write = (...a) => new Promise((r) => setTimeout(r, 30)).then(() => write(...a));
    const a = await store.stage([enqueued('a')], T0); // in flight for 30 ms
    const b = await store.stage([enqueued('b')], T0); // waits in the open batch
    const getRaw = s.getRaw.bind(store);
    s.getRaw = (...a) => new Promise((r) => setTimeout(r, 60)).then(() => getRaw(...a));
    // 100 jobs: a read of more keys than the synchronous path takes, so the stage awaits the
    // disk while the write of 'a' ends; then it fails
    const bulk = [...Array.from({ length: 100 }, (_, i) => enqueued(`x${i}`)), enqueued('y', 'boom')];
    assert.not.ok(await store.stage(bulk, T0).then(() => true, () => false));
    await a.durable;
    const written = await Promise.race([b.durable.then(() => true), new Promise((r) => setTimeout(r, 3000, false))]);
    assert.ok(written, "the open batch (job 'b') was written without waiting for another command");
    assert.equal((await allEvents(store)).map((e) => (e as StoredEvent & { jobId: string }).jobId), ['a', 'b']);
  });
});

test('one stage of 150,000 events (more than a call can spread as arguments)', async () => {
  await withStore(PROJECTIONS, async (store) => {
    const n = 150_000;
    const events = await store.append(Array.from({ length: n }, (_, i) => enqueued(`j${i}`)), T0);
    assert.is(events.length, n);
    assert.is(store.committed, n - 1);
  });
});

const level0 = (db: ClassicLevel<string, string>) => Number(db.getProperty('leveldb.num-files-at-level0'));

/** Level 0 full over a level 1 so big that compacting it takes far longer than a close. */
const fillLevel0 = async (path: string): Promise<void> => {
  // ~15 MB of keys between the store's own, so that every level-0 file overlaps all of level 1 ...
  let raw = new ClassicLevel<string, string>(path);
  for (let b = 0; b < 30; b++) {
    await raw.batch(Array.from({ length: 5000 }, (_, i) => ({ type: 'put' as const, key: `!m-filler!${String(b * 5000 + i).padStart(8, '0')}`, value: 'x'.repeat(100) })));
  }
  await raw.close();
  // ... then short processes that each write a little: each open turns the last one's
  // write-ahead log into one more level-0 file, and each close stops the compaction its open began
  for (let i = 0; i < L0_COMPACTION_TRIGGER + 1; i++) {
    raw = new ClassicLevel<string, string>(path);
    await raw.put('!meta!probe', String(i));
    await raw.close();
  }
  raw = new ClassicLevel<string, string>(path);
  await raw.open();
  assert.ok(level0(raw) >= L0_COMPACTION_TRIGGER, `the test needs a full level 0, got ${level0(raw)} files`);
  await raw.close();
};

/** At most the file this open makes of the last writer's write-ahead log. */
const assertLevel0Compacted = async (path: string): Promise<void> => {
  const raw = new ClassicLevel<string, string>(path);
  await raw.open();
  const files = level0(raw);
  await raw.close();
  assert.ok(files <= 1, `level 0 holds ${files} files`);
};

test('a short command that wrote lets a level-0 compaction under way finish before closing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'queuectl-store-'));
  const path = join(dir, 'db');
  try {
    let store = await LogStore.open(new ClassicLevel(path) as unknown as AnyLevel, { projections: PROJECTIONS });
    await store.append([enqueued('a')], T0);
    await store.close();
    await fillLevel0(path);
    // A store that writes, then closes as a short command does: the compaction its open
    // started is let finish.
    store = await LogStore.open(new ClassicLevel(path) as unknown as AnyLevel, { projections: PROJECTIONS });
    await store.append([enqueued('b')], T0);
    await store.close({ letCompactionFinish: true });
    await assertLevel0Compacted(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the built CLI: an enqueue with no host is such a short command', async () => {
  const home = newHome('compaction');
  const q = cli(home);
  ok(await q('enqueue', 'true', '--id', 'a'));
  await fillLevel0(join(home, 'db'));
  ok(await q('enqueue', 'true', '--id', 'b'));
  await assertLevel0Compacted(join(home, 'db'));
});

/**
 * A varied log: jobs that succeed, fail and retry, die and are retried from the DLQ, lose their
 * lease, are cancelled or stay pending, interleaved (seeded), with worker and config events.
 */
const variedLog = (jobs: number): EventData[][] => {
  let seed = 42;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const w = 'w1';
  const ran = { workerId: w, durationMs: 5, output: null };
  const failed = (jobId: string, attempt: number, retryAt: number | null): EventData =>
    ({ type: 'JobFailed', jobId, attempt, ...ran, error: 'exit code 1', exitCode: 1, signal: null, timedOut: false, retryAt, retry: retryAt === null ? null : attempt, maxRetries: 1 }) as EventData;
  const claimed = (jobId: string, attempt: number): EventData => ({ type: 'JobClaimed', jobId, workerId: w, attempt, leaseUntil: T0 + 30_000 });
  const succeeded = (jobId: string, attempt: number): EventData => ({ type: 'JobSucceeded', jobId, attempt, ...ran }) as EventData;
  const lives: EventData[][] = [];
  for (let i = 0; i < jobs; i++) {
    const id = `j${i}`;
    const life: EventData[] = [{ ...enqueued(id), priority: i % 3 } as EventData];
    switch (i % 5) {
      case 0:
        life.push(claimed(id, 1), succeeded(id, 1));
        break;
      case 1:
        life.push(claimed(id, 1), failed(id, 1, T0 + 1000), claimed(id, 2), failed(id, 2, null), { type: 'JobDeadLettered', jobId: id, attempt: 2, error: 'exit code 1' });
        if (i % 2 === 0) life.push({ type: 'JobRetried', jobId: id }, claimed(id, 3), succeeded(id, 3));
        break;
      case 2:
        life.push({ type: 'JobCancelled', jobId: id, workerId: null, attempt: null });
        break;
      case 3:
        life.push(claimed(id, 1), { type: 'JobLeaseExpired', jobId: id, workerId: w, attempt: 1, reason: 'worker lost', retryAt: T0 + 500, retry: 1, maxRetries: 1 }, claimed(id, 2), succeeded(id, 2));
        break;
      default: // stays pending
    }
    lives.push(life);
  }
  // interleave the lives, each in order, and cut the result into appends of 1-40 events
  const events: EventData[] = [{ type: 'WorkerStarted', workerId: w, pid: 1, slots: 4 }, { type: 'ConfigSet', key: 'max_retries', value: 1 }];
  const next = lives.map(() => 0);
  let open = lives.map((_, i) => i);
  while (open.length > 0) {
    const k = open[Math.floor(random() * open.length)]!;
    events.push(lives[k]![next[k]!++]!);
    if (next[k] === lives[k]!.length) open = open.filter((x) => x !== k);
  }
  events.push({ type: 'WorkerStopped', workerId: w, reason: 'stopped' });
  const appends: EventData[][] = [];
  for (let at = 0; at < events.length; ) {
    const n = 1 + Math.floor(random() * 40);
    appends.push(events.slice(at, at + n));
    at += n;
  }
  return appends;
};

/** Every projection record as stored: key -> encoded value. */
const projectionRecords = async (path: string): Promise<Map<string, string>> => {
  const db = new ClassicLevel<string, string>(path);
  await db.open();
  try {
    const out = new Map<string, string>();
    for await (const [k, v] of db.iterator()) if (k.startsWith('!p-')) out.set(k, v);
    return out;
  } finally {
    await db.close();
  }
};

// Tiny limits make every path of a replay run many times: chunks of 7 events and a write every
// 20; with a cache that overflows every ~60 keys (from then on misses are read from disk), and
// with one that never does (a miss means absent, and deletes of keys never written are skipped).
for (const cacheMax of [60, Number.MAX_SAFE_INTEGER]) {
  test(`a rebuild in tiny chunks and flushes (cache of ${cacheMax > 1e6 ? 'any size' : `${cacheMax} keys`}) gives byte for byte what the appends built`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'queuectl-store-'));
    const path = join(dir, 'db');
    try {
      let store = await LogStore.open(new ClassicLevel(path) as unknown as AnyLevel, { projections: PROJECTIONS, sync: false });
      for (const data of variedLog(300)) await store.append(data, T0);
      await store.close();
      const built = await projectionRecords(path);
      assert.ok(built.size > 600, `the log built ${built.size} projection records`);
      store = await LogStore.open(new ClassicLevel(path) as unknown as AnyLevel, { projections: PROJECTIONS, sync: false, replay: { chunk: 7, flush: 20, cacheMax } });
      const { events, differences } = await store.verify();
      assert.equal(differences, [], 'verify with tiny limits');
      assert.ok(events > 1000);
      await store.rebuild();
      await store.close();
      const rebuilt = await projectionRecords(path);
      const diff = [...new Set([...built.keys(), ...rebuilt.keys()])].filter((k) => built.get(k) !== rebuilt.get(k));
      assert.equal(diff.slice(0, 5).map((k) => `${k}: ${built.get(k)} vs ${rebuilt.get(k)}`), [], `${diff.length} records differ after the rebuild`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();
