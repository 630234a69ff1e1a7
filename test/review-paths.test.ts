// What the merge of the handle-based data directory (everything reached through
// /proc/self/fd/<fd>/...) with damage reports, job output and repair left: messages must name
// the directory as the user gave it, never the handle it was reached through; and `repair`
// on a directory that holds no database yet must not make one that every command then refuses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, cli, job, newHome, ok, refused } from './helpers/cli.ts';
import { posKey } from '../src/store/leveldb/keys.ts';

test.after(cleanup);

const HANDLE = /\/proc\/self\/fd\//;

test('a missing table file is reported under the path the user gave, not the handle', async () => {
  const home = newHome('paths-table');
  const q = cli(home);
  for (let i = 0; i < 3; i++) ok(await q('enqueue', `echo ${i}`));
  ok(await q('status')); // the write-ahead log becomes a table
  const damaged = newHome('paths-table-copy');
  cpSync(home, damaged, { recursive: true });
  for (const name of readdirSync(join(damaged, 'db'))) if (name.endsWith('.ldb')) rmSync(join(damaged, 'db', name));
  const message = refused(await cli(damaged)('status'), 1, /damaged/);
  assert.not.match(message, HANDLE, message);
  assert.ok(message.includes(join(damaged, 'db')), message);
});

test('a gap in the log is reported under the path the user gave, not the handle', async () => {
  const home = newHome('paths-gap');
  const q = cli(home);
  for (let i = 0; i < 3; i++) ok(await q('enqueue', `echo ${i}`));
  const { ClassicLevel } = await import('classic-level');
  const db = new ClassicLevel<string, string>(join(home, 'db'));
  await db.open({ createIfMissing: false });
  await db.sublevel('log').del(posKey(1));
  await db.close();
  const message = refused(await q('events'), 1, /damaged \(the log has no event at position 1\)/);
  assert.not.match(message, HANDLE, message);
  assert.ok(message.includes(join(home, 'db')), message);
});

test("a job whose output cannot be prepared names its folder as the user gave it in last_error", async () => {
  const home = newHome('paths-output');
  const q = cli(home);
  ok(await q('enqueue', '{"id":"blocked","command":"echo hi","max_retries":0}'));
  writeFileSync(join(home, 'logs', 'blocked'), ''); // a file where its output folder goes
  ok(await q('worker', 'start', '--drain'));
  const j = await job(q, 'blocked');
  assert.is(j.state, 'dead');
  assert.not.match(j.last_error, HANDLE, j.last_error);
  assert.ok(j.last_error.includes(join(home, 'logs', 'blocked')), j.last_error);
});

test('repair of a data directory that holds no database refuses, and leaves it usable', async () => {
  const home = newHome('paths-repair-new');
  const q = cli(home);
  const message = refused(await q('repair'), 1, /nothing to repair/);
  assert.not.match(message, HANDLE, message);
  assert.is(readdirSync(join(home, 'db')).length, 0, 'repair made nothing in db/');
  ok(await q('enqueue', 'echo after'));
  ok(await q('status'));
});

test('logs names missing output under the path the user gave; output it cannot read is one line, exit 1', async () => {
  const home = newHome('paths-logs');
  const q = cli(home);
  ok(await q('enqueue', '{"id":"out","command":"echo hi"}'));
  ok(await q('worker', 'start', '--drain'));
  const kept = join(home, 'logs', 'out', '1.stdout');
  rmSync(kept);
  const shown = ok(await q('logs', 'out'));
  assert.not.match(shown, HANDLE, shown);
  assert.ok(shown.includes(`gone from ${kept}`), shown);
  const raw = refused(await q('logs', 'out', '--raw'), 1, /kept output is missing/);
  assert.not.match(raw, HANDLE, raw);
  assert.ok(raw.includes(kept), raw);
  mkdirSync(kept); // something that is not a file where the output was
  const message = refused(await q('logs', 'out'), 1, /cannot read the output/);
  assert.ok(message.includes(kept), message);
});

test('a symbolic link where the socket goes is named as one, not as a socket to chmod', async () => {
  const home = newHome('paths-socket-link');
  const q = cli(home);
  ok(await q('status'));
  symlinkSync('/nonexistent/host.sock', join(home, 'host.sock'));
  const message = refused(await q('status'), 1, /symbolic link/);
  assert.not.match(message, /chmod/, message);
  assert.ok(message.includes(join(home, 'host.sock')), message);
});

test('repair of a database whose creation was cut short (LevelDB\'s lock and log, nothing else) refuses, and leaves it usable', async () => {
  const home = newHome('paths-repair-cut');
  const q = cli(home);
  ok(await q('status'));
  const db = join(home, 'db');
  for (const name of readdirSync(db)) rmSync(join(db, name));
  for (const name of ['LOCK', 'LOG']) writeFileSync(join(db, name), '', { mode: 0o600 });
  refused(await q('repair'), 1, /nothing to repair/);
  ok(await q('enqueue', 'echo after'));
  ok(await q('status'));
});

test.run();
