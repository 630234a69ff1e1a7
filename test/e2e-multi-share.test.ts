// End to end, issue 4: several worker processes share one data directory through its host.
// Two `worker start --count 4` processes run 500 jobs (each exactly once), and 50 CLI commands
// of every kind run concurrently while they work, none failing with a lock or busy error.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Q, type Result, type Worker, assertNoStrays, cleanup, cli, history, json, newHome, ok, scratch, startWorker, stopWorkers,
} from './helpers/cli.ts';
import {
  allGone, assertAllCompleted, note, claimViolation, enqueueMany, eventsByJob, ids, linesOf, lockHolder, status, statusUntil, tally, waitForHost,
} from './helpers/multi.ts';

let home: string;
let dir: string;
let q: Q;
let a: Worker;
let b: Worker;

test.before(async () => {
  home = newHome('share');
  dir = scratch('share');
  q = cli(home);
  // the first process opens the database (the host); the second one is its client
  a = await startWorker(home, '--count', '4').ready();
  assert.is((await waitForHost(home, [a])).pid, a.pid, 'the first worker process is the host');
  b = await startWorker(home, '--count', '4').ready();
  assert.is(lockHolder(home, [a.pid, b.pid]), a.pid, 'the second worker process is a client');
});

test.after(async () => {
  await stopWorkers();
  cleanup();
});

test('two worker processes x 4 workers, 500 jobs: every id exactly once, status counts completed: 500', async () => {
  const out = join(dir, 'out.txt');
  const all = await enqueueMany(q, dir, ids('j', 500).map((id) => ({ id, command: `echo $QUEUECTL_JOB_ID >> ${out}` })));

  note('500 enqueued');
  const s = await statusUntil(q, (s) => s.jobs.completed >= 500 || s.jobs.dead + s.jobs.failed > 0, 60_000, '500 jobs to complete', 250);
  assert.equal(s.jobs, { pending: 0, processing: 0, completed: 500, failed: 0, dead: 0, cancelled: 0 }, 'status --json counts');

  note('500 completed');
  const seen = tally(linesOf(out));
  const missing = all.filter((id) => !seen.has(id));
  const twice = [...seen].filter(([, n]) => n > 1).map(([id, n]) => `${id} x${n}`);
  const strangers = [...seen.keys()].filter((id) => !all.includes(id));
  assert.equal({ missing, twice, strangers }, { missing: [], twice: [], strangers: [] }, 'every id appended exactly once');
  await assertAllCompleted(q, all);

  // status lists both processes with their pids; both took a share of the work
  const byPid = new Map(s.workers.map((w) => [w.pid, w]));
  assert.ok(byPid.has(a.pid) && byPid.has(b.pid), `status lists both worker processes: ${JSON.stringify(s.workers)}`);
  assert.is(byPid.get(a.pid)!.slots, 4);
  assert.is(byPid.get(b.pid)!.slots, 4);
  assert.ok(byPid.get(a.pid)!.processed > 0 && byPid.get(b.pid)!.processed > 0, `both processes ran jobs: ${JSON.stringify(s.workers)}`);
  assert.is(byPid.get(a.pid)!.processed + byPid.get(b.pid)!.processed, 500, 'the processed counts add up to 500');

  // the log: each job claimed once, by one worker, and succeeded once
  const { byJob } = await eventsByJob(q);
  const problems: string[] = [];
  for (const id of all) {
    const stream = byJob.get(id) ?? [];
    const v = claimViolation(id, stream);
    if (v) problems.push(v);
    const types = stream.map((e) => e.type).join(',');
    if (types !== 'JobEnqueued,JobClaimed,JobSucceeded') problems.push(`${id}: ${types}`);
  }
  assert.equal(problems.slice(0, 10), [], 'every job: enqueued, claimed once, succeeded once');
  assert.ok(a.running && b.running, 'both worker processes are still running');
  note('500 checked');
});

test('50 CLI commands (enqueue, status, list, history, dlq retry, config set, cancel) at once while workers run', async () => {
  // dead jobs for `dlq retry` (they fail until `fixed` exists), pending jobs for `cancel`
  const fixed = join(dir, 'fixed');
  const dead = ids('dead', 6);
  await enqueueMany(q, dir, dead.map((id) => ({ id, command: `test -f ${fixed}`, max_retries: 0 })));
  const later = ids('later', 5);
  await enqueueMany(q, dir, later.map((id) => ({ id, command: 'echo never', run_at: new Date(Date.now() + 3_600_000).toISOString() })));
  await statusUntil(q, (s) => s.jobs.dead >= 6, 20_000, 'the 6 failing jobs to land in the DLQ');
  writeFileSync(fixed, '');
  // keep the workers busy meanwhile
  const busyOut = join(dir, 'busy.txt');
  const busy = await enqueueMany(q, dir, ids('busy', 80).map((id) => ({ id, command: `sleep 0.05; echo $QUEUECTL_JOB_ID >> ${busyOut}` })));
  await statusUntil(q, (s) => s.jobs.processing > 0, 10_000, 'the workers to be running jobs', 50);

  note('set up for 50 commands');
  const cmds: { args: string[]; check: (r: Result) => void }[] = [];
  const newIds = ids('cli', 10);
  for (const id of newIds) {
    cmds.push({ args: ['enqueue', `echo $QUEUECTL_JOB_ID >> ${join(dir, 'cli.txt')}`, '--id', id], check: (r) => assert.is(ok(r), `${id}\n`) });
  }
  for (let i = 0; i < 4; i++) {
    cmds.push({ args: ['status', '--json'], check: (r) => {
      const s = json(r);
      assert.ok(s.workers.length === 2, `status --json lists 2 worker processes: ${r.stdout}`);
      assert.ok(s.jobs.completed >= 500, r.stdout);
    } });
    cmds.push({ args: ['status'], check: (r) => assert.match(ok(r), /^Jobs\s+pending \d+\s+processing \d+\s+completed \d+/) });
  }
  for (let i = 0; i < 4; i++) {
    cmds.push({ args: ['list', '--json', '--limit', '20'], check: (r) => assert.is(json<unknown[]>(r).length, 20) });
    cmds.push({ args: ['list', '--state', 'completed', '--limit', '5'], check: (r) => assert.match(ok(r), /^ID\s+STATE\s+ATTEMPTS/) });
  }
  for (let i = 0; i < 8; i++) {
    const id = `j${String(1 + i * 61).padStart(3, '0')}`;
    cmds.push({ args: ['history', id, '--json'], check: (r) => assert.equal(json<{ type: string }[]>(r).map((e) => e.type), ['JobEnqueued', 'JobClaimed', 'JobSucceeded']) });
  }
  for (const id of dead) cmds.push({ args: ['dlq', 'retry', id], check: (r) => assert.match(ok(r), new RegExp(id)) });
  const limits = [111111, 222222, 333333, 444444, 555555];
  for (const v of limits) cmds.push({ args: ['config', 'set', 'output_limit', String(v)], check: (r) => assert.match(ok(r), /^output_limit = \d+ /) });
  for (const id of later) cmds.push({ args: ['cancel', id], check: (r) => assert.match(ok(r), new RegExp(id)) });
  assert.is(cmds.length, 50);

  const started = Date.now();
  const results = await Promise.all(cmds.map((c) => q(...c.args)));
  const took = Date.now() - started;
  note(`50 commands in ${took} ms`);
  const failures: string[] = [];
  results.forEach((r, i) => {
    if (r.code !== 0 || /lock|busy|LEVEL_/i.test(r.stderr) || r.stderr !== '') {
      failures.push(`queuectl ${r.args.join(' ')} -> exit ${r.code}: ${r.stderr.trim()}`);
      return;
    }
    try {
      cmds[i]!.check(r);
    } catch (e) {
      failures.push(`queuectl ${r.args.join(' ')}: ${(e as Error).message}\n  stdout: ${r.stdout.slice(0, 300)}`);
    }
  });
  assert.equal(failures, [], `every command succeeded (50 in ${took} ms)`);
  assert.ok(a.running && b.running, 'both worker processes are still running');

  // and each did what it said
  const config = json<Record<string, number>>(await q('config', 'get', '--json'));
  assert.ok(limits.includes(config.output_limit!), `output_limit is one of the values set: ${config.output_limit}`);
  const sets = (await eventsByJob(q)).all.filter((e) => e.type === 'ConfigSet' && e.key === 'output_limit');
  assert.is(sets.length, 5, 'five ConfigSet events, each applied once');
  assert.is(sets.at(-1)!.value, config.output_limit, 'the last one wins');
  for (const id of later) assert.is(json((await q('show', id, '--json'))).state, 'cancelled');
  await statusUntil(q, (s) => s.jobs.pending + s.jobs.processing + s.jobs.failed === 0, 60_000, 'every job to end');
  await assertAllCompleted(q, [...newIds, ...dead, ...busy]);
  for (const id of dead) {
    const types = (await history(q, id)).map((e) => e.type);
    assert.equal(types, ['JobEnqueued', 'JobClaimed', 'JobFailed', 'JobDeadLettered', 'JobRetried', 'JobClaimed', 'JobSucceeded'], `${id}: ${types}`);
  }
  note('all ended');
  const final = await status(q);
  assert.equal(final.jobs, { pending: 0, processing: 0, completed: 500 + 10 + 6 + 80, failed: 0, dead: 0, cancelled: 5 });
  assert.equal([...tally(linesOf(join(dir, 'cli.txt'))).keys()].sort(), newIds);
});

test('`worker stop` stops the workers of both processes gracefully: running jobs finish; nothing is left running', async () => {
  const last = await enqueueMany(q, dir, ids('last', 4).map((id) => ({ id, command: 'sleep 1' })));
  await statusUntil(q, (s) => s.jobs.processing === 4, 10_000, 'the last jobs to run', 30);
  const stopped = await q('worker', 'stop', '--json');
  assert.equal(json<{ stopped: number[] }>(stopped).stopped.sort(), [a.pid, b.pid].sort());
  assert.equal(await a.finished(5000), { code: 0, signal: null });
  assert.equal(await b.finished(5000), { code: 0, signal: null });
  await allGone([a, b]);
  assert.not.ok(existsSync(join(home, 'host.sock')), 'the last host removed its socket');
  const done = await status(q);
  assert.equal(done.workers, [], 'no worker registered any more');
  assert.is(done.jobs.processing, 0);
  await assertAllCompleted(q, last);
  await assertNoStrays();
});

test.run();
