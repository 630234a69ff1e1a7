// Fault injection, a closed stdout and a closed terminal: a worker whose output pipe is closed
// by its reader (`worker start | head -2`) carries on without printing and finishes its work;
// SIGHUP stops it gracefully, like SIGTERM. Real processes, real pipes, real signals.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, bounded, cleanup, cli, events, job, json, newHome, ok, startWorker, stopWorkers, until } from './helpers/cli.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

/** `sh -c <pipeline>`, queuectl being `$QUEUECTL` in it; resolves when every process of it has exited. */
const shell = (pipeline: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', pipeline], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', QUEUECTL: `'${process.execPath}' '${CLI}'` } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });

const enqueueFive = async (home: string) => {
  const q = cli(home);
  for (let i = 1; i <= 5; i++) ok(await q('enqueue', `sleep 0.1; echo ${i}`, '--id', `j${i}`));
  return q;
};

/** Every job completed, the worker's stop recorded, its socket gone, the projections clean. */
const allDone = async (home: string) => {
  const q = cli(home);
  for (let i = 1; i <= 5; i++) assert.is((await job(q, `j${i}`)).state, 'completed', `j${i}`);
  const log = await events(q);
  assert.ok(log.some((e) => e.type === 'WorkerStopped'), 'WorkerStopped in the log');
  assert.is(json(await q('status', '--json')).workers.length, 0, 'no worker left registered');
  assert.not.ok(existsSync(join(home, 'host.sock')), 'no stale socket');
  assert.match(ok(await q('projections', 'verify')), /^projections match the log/);
};

test('worker start --drain | head -2: the worker carries on without printing, runs every job, stops cleanly', async () => {
  const home = newHome('head');
  await enqueueFive(home);
  const r = await bounded(shell(`eval "$QUEUECTL worker start --drain --home '${home}'" | head -2`), 30_000, 'the pipeline');
  assert.is(r.stdout.split('\n').filter(Boolean).length, 2, r.stdout);
  assert.match(r.stderr, /^queuectl: the worker's output was closed; worker \d+ carries on without printing/m);
  await allDone(home);
});

test('stdout and stderr both closed (2>&1 | head -1): the same, silently', async () => {
  const home = newHome('head-both');
  await enqueueFive(home);
  const r = await bounded(shell(`eval "$QUEUECTL worker start --drain --home '${home}'" 2>&1 | head -1`), 30_000, 'the pipeline');
  assert.is(r.code, 0);
  assert.is(r.stdout.split('\n').filter(Boolean).length, 1, r.stdout);
  await allDone(home);
});

test('SIGHUP (the terminal closed) stops the worker gracefully: its running job finishes, exit 0', async () => {
  const home = newHome('hup');
  const q = cli(home);
  ok(await q('enqueue', 'sleep 1; echo done', '--id', 'long'));
  const w = await startWorker(home).ready();
  await until(async () => (await job(q, 'long')).state === 'processing', 10_000, 'the job to run');
  w.signal('SIGHUP');
  assert.equal(await w.finished(15_000), { code: 0, signal: null }, w.lines.join('\n'));
  assert.ok(w.lines.some((l) => /SIGHUP: stopping; running jobs finish first/.test(l)), w.lines.join('\n'));
  const long = await job(q, 'long');
  assert.equal([long.state, long.attempts], ['completed', 1]);
  assert.match(ok(await q('logs', 'long')), /^done$/m);
  assert.ok((await events(q)).some((e) => e.type === 'WorkerStopped'));
  assert.not.ok(existsSync(join(home, 'host.sock')));
});

test.run();
