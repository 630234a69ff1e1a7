// A really full disk for the fault tests: a small tmpfs mounted for one test (as root), and a
// filler that takes its last byte. Where mounting is not allowed the test is skipped with a
// message, but fails when CI=true (CI runs as root and must run it).
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { scratch, stopWorkers } from './cli.ts';

/** Mount a tmpfs on `dir`; false (with a message) where that is not allowed. */
export const mountTmpfs = (dir: string, options = 'size=4m'): boolean => {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch (e) {
    if (process.env.CI === 'true') assert.unreachable(`CI must be able to mount a tmpfs (run the tests as root): ${(e as Error).message}`);
    console.log(`  skipped: cannot mount a tmpfs here (needs root): ${String((e as { stderr?: unknown }).stderr ?? e).trim()}`);
    return false;
  }
};

/** Run `fn` on a fresh 4 MiB tmpfs; always unmounted after. False when it cannot be mounted here. */
export const onSmallDisk = async (fn: (dir: string) => Promise<void>): Promise<boolean> => {
  const dir = scratch('disk');
  if (!mountTmpfs(dir)) return false;
  try {
    await fn(dir);
  } finally {
    await stopWorkers(); // nothing may hold the mount
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
  return true;
};

/** Fill the file system of `dir` to the last byte: ENOSPC from here on. Returns the file to remove. */
export const fill = (dir: string): string => {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 << 10, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    assert.is((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    closeSync(fd);
  }
  return path;
};
