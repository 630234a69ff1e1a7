// A full disk, as the merged code meets it: `repair`, whose first step (the copy of db/ it
// keeps) cannot be written, and a read with no host running, whose open makes LevelDB write a
// table. Both are the environment's (exit 1, one line naming the path as the user gave it,
// "no space left on device"), never "unexpected error" nor "damaged, run repair".
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, cli, ok, refused } from './helpers/cli.ts';
import { fill, onSmallDisk } from './helpers/disk.ts';

test.after(cleanup);

test('a read with no host on a full disk, whose open would write a table: the environment (exit 1), not damage', async () => {
  await onSmallDisk(async (dir) => {
    const home = join(dir, 'q');
    const q = cli(home);
    for (let i = 0; i < 20; i++) ok(await q('enqueue', `echo ${i}`));
    ok(await q('worker', 'start', '--drain')); // the write-ahead log now holds enough that an open turns it into a table
    const filler = fill(dir);
    const status = await q('status');
    if (status.code !== 0) {
      const message = refused(status, 1, /no space left on device; free some disk space\n$/);
      assert.not.match(message, /damaged|repair/, message);
      assert.ok(message.includes(join(home, 'db')), message);
    }
    rmSync(filler);
    assert.match(ok(await q('status')), /completed 20/);
    assert.match(ok(await q('projections', 'verify')), /^projections match the log/);
  });
});

test('repair on a full disk: one line naming the copy it could not keep, nothing half-copied left, repairs once there is room', async () => {
  await onSmallDisk(async (dir) => {
    const home = join(dir, 'q');
    const q = cli(home);
    for (let i = 0; i < 20; i++) ok(await q('enqueue', `echo ${i}`));
    rmSync(join(home, 'db', 'CURRENT'));
    const filler = fill(dir);
    const message = refused(await q('repair'), 1, /no space left on device/);
    assert.not.match(message, /\/proc\/self\/fd\/|unexpected error/, message);
    assert.ok(message.includes(join(home, 'db.damaged-')), message);
    assert.equal(readdirSync(home).filter((n) => n.startsWith('db.damaged-')), [], 'no half copy left');
    rmSync(filler);
    assert.match(ok(await q('repair')), /20 events kept, 0 lost/);
    ok(await q('projections', 'verify'));
  });
});

test.run();
