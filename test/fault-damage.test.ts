// Fault injection, damaged storage: copies of one populated data directory, each damaged in one
// way LevelDB meets in the wild (CURRENT or MANIFEST missing or garbled, the write-ahead log cut
// short or corrupted in the middle, a table garbled). Each time: the damage is reported (exit 1,
// one line naming the way back) and nothing is written; `queuectl repair` then brings back every
// event that survived, says which positions were lost, and `projections verify` is clean.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { closeSync, cpSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { type Q, type StoredEvent, cleanup, cli, events, json, newHome, ok, refused, scratch, startWorker, stopWorkers } from './helpers/cli.ts';

test.after(cleanup);

let fixture = '';
let original: StoredEvent[] = [];

test.before(async () => {
  fixture = newHome('damage-fixture');
  const q = cli(fixture);
  const dir = scratch('jobs');
  const file = join(dir, 'jobs.ndjson');
  writeFileSync(file, Array.from({ length: 300 }, (_, i) => JSON.stringify({ id: `j${i}`, command: 'true' })).join('\n'));
  ok(await q('enqueue', '--file', file));
  ok(await q('status')); // this open turns the enqueue's write-ahead log into a table file
  // many small batches (claims, results) in one write-ahead log, closed cleanly
  ok(await q('worker', 'start', '--count', '4', '--drain'));
  // read from a copy: an open turns the write-ahead log into a table, and the fixture keeps it
  const reference = newHome('damage-reference');
  cpSync(fixture, reference, { recursive: true, filter: (src) => !src.endsWith('host.sock') });
  original = await events(cli(reference));
  assert.ok(original.length > 900, `fixture has ${original.length} events`);
  const db = readdirSync(join(fixture, 'db'));
  assert.ok(db.some((n) => n.endsWith('.ldb')), `a table file exists: ${db}`);
  assert.ok(statSync(join(fixture, 'db', walOf(join(fixture, 'db')))).size > 4 * 32768, 'the write-ahead log spans several blocks');
});

const walOf = (db: string): string => readdirSync(db).filter((n) => n.endsWith('.log')).sort().at(-1)!;

/** Every file of a directory with a hash of its bytes. */
const files = (dir: string): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    out[path.slice(dir.length + 1)] = createHash('sha1').update(readFileSync(path)).digest('hex');
  }
  return out;
};

/** The files that hold data: tables and non-empty write-ahead logs (not LevelDB's bookkeeping). */
const dataFiles = (dir: string): Record<string, string> =>
  Object.fromEntries(Object.entries(files(dir)).filter(([name]) => name.endsWith('.ldb') || (name.endsWith('.log') && statSync(join(dir, name)).size > 0)));

const garble = (path: string, at: number, length = 16): void => {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(length, 0xa5), 0, length, at);
  closeSync(fd);
};

const copyFixture = (): { home: string; db: string; q: Q } => {
  const home = newHome('damaged');
  cpSync(fixture, home, { recursive: true, filter: (src) => !src.endsWith('host.sock') });
  return { home, db: join(home, 'db'), q: cli(home) };
};

interface Case {
  name: string;
  /** Damage the copy's db directory. */
  damage: (db: string, q: Q) => Promise<void> | void;
  /** The commands that must report it (reading the whole log finds what opening cannot). */
  reporters: string[][];
  /** Whether LevelDB may open the directory (it then rewrites its own bookkeeping files). */
  opens: boolean;
  /** Events lost: none when only LevelDB's bookkeeping is damaged. */
  loses: boolean;
}

const cases: Case[] = [
  { name: 'missing CURRENT', damage: (db) => unlinkSync(join(db, 'CURRENT')), reporters: [['status'], ['events']], opens: false, loses: false },
  { name: 'garbled CURRENT', damage: (db) => writeFileSync(join(db, 'CURRENT'), 'MANIF\u0000\u0001ST-00000x\n'), reporters: [['status']], opens: false, loses: false },
  {
    name: 'missing MANIFEST',
    damage: (db) => unlinkSync(join(db, readdirSync(db).find((n) => n.startsWith('MANIFEST-'))!)),
    reporters: [['status']],
    opens: false,
    loses: false,
  },
  {
    name: 'garbled MANIFEST',
    damage: (db) => garble(join(db, readdirSync(db).find((n) => n.startsWith('MANIFEST-'))!), 20, 8),
    reporters: [['status']],
    opens: false,
    loses: false,
  },
  {
    name: 'truncated write-ahead log',
    damage: (db) => truncateSync(join(db, walOf(db)), Math.floor(statSync(join(db, walOf(db))).size / 2)),
    reporters: [['status'], ['enqueue', 'echo more']],
    opens: false,
    loses: true,
  },
  {
    name: 'a write-ahead log record corrupted in the middle (the silent hole)',
    damage: (db) => garble(join(db, walOf(db)), 3 * 32768 + 1000),
    reporters: [['status'], ['events']],
    opens: false,
    loses: true,
  },
  {
    name: 'garbled table file',
    damage: async (db, q) => {
      ok(await q('status')); // the write-ahead log becomes a table: the events are all in .ldb files now
      const tables = readdirSync(db).filter((n) => n.endsWith('.ldb')).sort();
      const biggest = tables.reduce((a, b) => (statSync(join(db, b)).size > statSync(join(db, a)).size ? b : a));
      garble(join(db, biggest), 4000, 64);
    },
    reporters: [['events'], ['projections', 'verify']],
    opens: true,
    loses: true,
  },
];

for (const c of cases) {
  test(`damaged storage: ${c.name} is reported, nothing is written, and repair brings back every surviving event`, async () => {
    const { home, db, q } = copyFixture();
    await c.damage(db, q);
    // LevelDB rewrites its bookkeeping (MANIFEST, CURRENT, LOG) at every open, never the data
    const contents = c.opens ? dataFiles : files;
    const damaged = contents(db);
    for (const args of c.reporters) {
      refused(await q(...args), 1, /is damaged \(.+\); run `queuectl repair`/);
      assert.equal(contents(db), damaged, `${args.join(' ')} changed the damaged directory`);
    }

    const r = json<{ backup: string; kept: number; lost: [number, number][]; lostCount: number }>(await q('repair', '--json'));
    // the copy kept is the directory as it was
    assert.equal(contents(r.backup), damaged);
    assert.is(r.kept + r.lostCount, original.length, `kept ${r.kept} + lost ${r.lostCount} = ${original.length}`);
    if (c.loses) assert.ok(r.lostCount > 0, 'events were lost');
    else assert.is(r.lostCount, 0);

    // every surviving event is the one acknowledged at its position; the lost ones are named
    const after = await events(q);
    assert.is(after.length, r.kept);
    const lost = new Set(r.lost.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i)));
    for (const e of after) assert.equal(e, original[e.pos], `event ${e.pos}`);
    for (const e of original) assert.is(lost.has(e.pos), !after.some((a) => a.pos === e.pos), `position ${e.pos}`);

    assert.match(ok(await q('projections', 'verify')), /projections match the log/);
    ok(await q('status'));
    // lost positions are never handed out again: `events --from N` readers keep their place
    const id = ok(await q('enqueue', 'echo after the repair')).trim();
    const added = (await events(q)).at(-1)!;
    assert.is(added.jobId, id);
    assert.ok(added.pos >= original.length, `new event at ${added.pos}, after every acknowledged position`);
    assert.match(ok(await q('projections', 'verify')), /projections match the log/);
    rmSync(home, { recursive: true, force: true });
  });
}

test('a hole already in the tables (left by an older queuectl, whose open let LevelDB drop a damaged record) is damage for verify, rebuild and events until repaired', async () => {
  const { db, q } = copyFixture();
  const { ClassicLevel } = await import('classic-level');
  const level = new ClassicLevel(db);
  await level.open({ createIfMissing: false });
  await level.batch([500, 501, 502].map((pos) => ({ type: 'del' as const, key: `!log!${pos.toString(16).padStart(12, '0')}` })), { sync: true });
  await level.close();
  ok(await q('events', '--from', '503')); // what lies after the hole reads as before
  // a rebuild stops at the hole; its projections are then gone, so every command refuses
  for (const args of [['projections', 'verify'], ['events', '--from', '400'], ['projections', 'rebuild'], ['status']]) {
    refused(await q(...args), 1, /damaged \(the log has no events at positions 500-502\)/);
  }
  const r = json<{ lost: [number, number][]; lostCount: number }>(await q('repair', '--json'));
  assert.equal(r.lost, [[500, 502]]);
  assert.match(ok(await q('projections', 'verify')), /projections match the log/);
  assert.is((await events(q)).length, original.length - 3);
});

test('repair refuses while a host has the database open', async () => {
  const { home, q } = copyFixture();
  const w = await startWorker(home).ready();
  refused(await q('repair'), 1, /stop it first/);
  await w.stop();
  await stopWorkers();
  assert.equal(readdirSync(home).filter((n) => n.startsWith('db.damaged-')), []);
});

test.run();

test('a creation cut short (LevelDB wrote LOCK and its first MANIFEST, no CURRENT, no data) is not damage: the database is created', async () => {
  // what another process's creation looks like from outside for a moment, too: with no data file
  // there is nothing to lose, and LevelDB's lock decides who creates it
  const home = newHome('creation-cut-short');
  ok(await cli(home)('status')); // a data directory with its db/ ...
  const db = join(home, 'db');
  for (const name of readdirSync(db)) rmSync(join(db, name), { recursive: true });
  writeFileSync(join(db, 'LOCK'), '');
  writeFileSync(join(db, 'MANIFEST-000001'), '');
  writeFileSync(join(db, '000001.dbtmp'), 'MANIFEST-000001\n');
  const q = cli(home);
  ok(await q('enqueue', 'true', '--id', 'after'));
  assert.equal((await events(q)).map((e) => e.type), ['JobEnqueued']);
});
