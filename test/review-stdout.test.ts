// A command whose stdout cannot be written for another reason than a closed pipe (a file on a
// full disk: `queuectl list --json > jobs.json`; here /dev/full) fails as the environment's:
// exit 1 and one line, never Node's stack trace.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { CLI, cleanup, cli, newHome, ok } from './helpers/cli.ts';

test.after(cleanup);

test('stdout on a full disk: exit 1, one line naming stdout and the reason, no stack trace', async () => {
  if (!existsSync('/dev/full')) {
    if (process.env.CI === 'true') assert.unreachable('CI must have /dev/full');
    console.log('  skipped: no /dev/full here');
    return;
  }
  const home = newHome('stdout-full');
  ok(await cli(home)('enqueue', 'echo hi'));
  for (const args of [['status'], ['list', '--json']]) {
    const full = openSync('/dev/full', 'w');
    try {
      const r = spawnSync(process.execPath, [CLI, ...args, '--home', home], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      assert.is(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.is(r.stderr, 'queuectl: cannot write the output to stdout: no space left on device; free some disk space\n', args.join(' '));
    } finally {
      closeSync(full);
    }
  }
});

test.run();
