// `queuectl repair` on a full disk: its first step, the copy of db/ it keeps, cannot be
// written. That is the environment's (exit 1, one line naming the path as the user gave it),
// nothing half-copied is left behind, and once there is room the same repair works.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, cli, ok, refused, scratch } from './helpers/cli.ts';

test.after(cleanup);

test('repair on a full disk: one line naming the copy it could not keep, nothing half-copied left, repairs once there is room', async () => {
  const dir = scratch('repair-disk');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    if (process.env.CI === 'true') assert.unreachable(`CI must be able to mount a tmpfs (run the tests as root): ${(e as Error).message}`);
    console.log(`  skipped: cannot mount a tmpfs here (needs root): ${String((e as { stderr?: unknown }).stderr ?? e).trim()}`);
    return;
  }
  try {
    const home = join(dir, 'q');
    const q = cli(home);
    for (let i = 0; i < 20; i++) ok(await q('enqueue', `echo ${i}`));
    rmSync(join(home, 'db', 'CURRENT'));
    const filler = join(dir, 'filler');
    const fd = openSync(filler, 'w');
    try {
      for (;;) writeSync(fd, Buffer.alloc(64 << 10, 1));
    } catch {
      // ENOSPC: full
    } finally {
      closeSync(fd);
    }
    const message = refused(await q('repair'), 1, /no space left on device/);
    assert.not.match(message, /\/proc\/self\/fd\/|unexpected error/, message);
    assert.ok(message.includes(join(home, 'db.damaged-')), message);
    assert.equal(readdirSync(home).filter((n) => n.startsWith('db.damaged-')), [], 'no half copy left');
    rmSync(filler);
    assert.match(ok(await q('repair')), /20 events kept, 0 lost/);
    ok(await q('projections', 'verify'));
  } finally {
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
