// `logs --follow` with the LevelDB store: the running attempt's output from this machine's files
// as it is written, until it ends; refused with --json. (Across machines: pg-logs-follow.)
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { assertNoStrays, CLI, cleanup, cli, newHome, ok, refused, scratch, startWorker, stopWorkers, until } from './helpers/cli.ts';

const test = suite('logs-follow');
test.after.each(() => stopWorkers());
test.after(() => cleanup());

test('logs --follow prints a running job\'s output as it comes and ends with the attempt', async () => {
  const home = newHome('follow');
  const q = cli(home);
  const gate = join(scratch('follow'), 'gate');
  ok(await q('enqueue', '--id', 'long', `echo first; while [ ! -e ${gate} ]; do sleep 0.05; done; echo last >&2`));
  await startWorker(home).ready();
  await until(async () => ok(await q('logs', 'long')).includes('running'), 20_000, 'the job to start');
  const child = spawn(process.execPath, [CLI, 'logs', 'long', '--follow', '--home', home], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  try {
    await until(() => stdout.includes('first\n'), 15_000, 'the output written so far');
    assert.not.match(stdout, /last/);
    writeFileSync(gate, '');
    assert.is(await Promise.race([exited, new Promise((r) => setTimeout(() => r('still following'), 20_000))]), 0);
  } finally {
    child.kill('SIGKILL');
  }
  assert.match(stdout, /^── attempt 1 · running ──\n\[stdout\]\nfirst\n\[stderr\]\nlast\n── attempt 1 · exit code 0 · [\d.]+s ──\n$/);
  // an ended attempt: --follow prints what logs prints and returns
  assert.is(ok(await q('logs', 'long', '--follow')), ok(await q('logs', 'long')));
  refused(await q('logs', 'long', '--follow', '--json'), 2, /--follow .* no --json form/);
});

test.after(assertNoStrays);
test.run();
