// End to end, issue 4: processes die. The host (the worker process holding the database) is
// killed with SIGKILL three times during a run of 300 jobs while another worker process lives:
// a survivor takes over, the killed process's jobs come back as JobLeaseExpired and run again,
// nothing is lost, and the projections still match the log. Then the only worker process is
// killed, and the next `worker start` recovers its jobs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import {
  type StoredEvent, type Worker, assertNoStrays, cleanup, cli, history, json, newHome, ok, scratch, startWorker, stopWorkers,
} from './helpers/cli.ts';
import {
  assertAllCompleted, claimViolation, enqueueMany, eventsByJob, ids, linesOf, lockHolder, note, sigkill, status, statusUntil, tally, waitForHost,
} from './helpers/multi.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

/** (job, attempt) pairs a worker process says it started, from its output. */
const startedBy = (w: Worker): Set<string> => {
  const out = new Set<string>();
  for (const line of w.lines) {
    const m = /\] (\S+) started \(attempt (\d+)\)/.exec(line);
    if (m) out.add(`${m[1]}#${m[2]}`);
  }
  return out;
};

interface Kill { pid: number; workerId: string; at: number; takeoverMs: number; runningBefore: string[] }

/**
 * Every attempt claimed by a killed worker ended either with its own JobSucceeded (it reported
 * before dying) or with JobLeaseExpired followed by a later successful attempt. Returns the
 * lease-expired jobs of each kill.
 */
const checkKilledClaims = (byJob: Map<string, StoredEvent[]>, kills: Kill[]): Map<string, StoredEvent[]> => {
  const expiredByKill = new Map<string, StoredEvent[]>(kills.map((k) => [k.workerId, []]));
  const problems: string[] = [];
  for (const [jobId, stream] of byJob) {
    stream.forEach((e, i) => {
      if (e.type !== 'JobClaimed' || !expiredByKill.has(e.workerId)) return;
      const end = stream.slice(i + 1).find((x) => x.attempt === e.attempt && ['JobSucceeded', 'JobFailed', 'JobLeaseExpired'].includes(x.type));
      if (end?.type === 'JobSucceeded') return;
      if (end?.type !== 'JobLeaseExpired') {
        problems.push(`${jobId}: attempt ${e.attempt} of killed worker ${e.workerId} ended with ${end?.type ?? "nothing"} ${JSON.stringify(end)}`);
        return;
      }
      expiredByKill.get(e.workerId)!.push(end);
      const later = stream.slice(stream.indexOf(end) + 1).find((x) => x.type === 'JobSucceeded');
      if (!later || (later.attempt as number) <= (e.attempt as number)) problems.push(`${jobId}: no successful attempt after JobLeaseExpired of attempt ${e.attempt}`);
    });
  }
  assert.equal(problems.slice(0, 10), [], 'each claim of a killed process: succeeded before the kill, or lease expired then succeeded later');
  return expiredByKill;
};

test('the host killed with SIGKILL three times during 300 jobs: a survivor takes over, nothing is lost', async () => {
  const home = newHome('failover');
  const dir = scratch('failover');
  const q = cli(home);
  const out = join(dir, 'out.txt');

  const first = await startWorker(home, '--count', '4').ready();
  let host = await waitForHost(home, [first]);
  const second = await startWorker(home, '--count', '4').ready();
  assert.is(lockHolder(home, [first.pid, second.pid]), first.pid, 'the first worker process is the host');
  ok(await q('config', 'set', 'backoff_base', '1')); // lost jobs are retried after 1 s
  const all = await enqueueMany(q, dir, ids('k', 300).map((id) => ({ id, command: `sleep 0.2; echo $QUEUECTL_JOB_ID >> ${out}` })));
  note('300 enqueued');

  let alive: Worker[] = [first, second];
  const everyWorker: Worker[] = [first, second];
  const kills: Kill[] = [];
  for (const target of [30, 110, 190]) {
    // the host is busy: it runs jobs of its own when it dies
    const before = await statusUntil(q, (s) => s.jobs.completed >= target && (s.workers.find((w) => w.pid === host.pid)?.running.length ?? 0) >= 2,
      60_000, `${target} jobs done and the host ${host.pid} running some`, 50);
    const me = before.workers.find((w) => w.pid === host.pid)!;
    const at = Date.now();
    await sigkill(host);
    alive = alive.filter((w) => w !== host);
    const next = await waitForHost(home, alive, 10_000);
    const takeoverMs = Date.now() - at;
    kills.push({ pid: host.pid, workerId: me.id, at, takeoverMs, runningBefore: me.running });
    note(`killed host ${host.pid} at ${before.jobs.completed} completed (running ${me.running.join(' ')}); ${next.pid} took over in ${takeoverMs} ms`);
    host = next;
    // keep two worker processes up
    const fresh = await startWorker(home, '--count', '4').ready();
    alive.push(fresh);
    everyWorker.push(fresh);
    assert.is(lockHolder(home, alive.map((w) => w.pid)), host.pid, 'the new worker process is a client of the survivor');
  }

  const final = await statusUntil(q, (s) => s.jobs.pending + s.jobs.processing + s.jobs.failed === 0, 90_000, 'all 300 jobs to end', 250);
  note('300 ended');
  assert.equal(final.jobs, { pending: 0, processing: 0, completed: 300, failed: 0, dead: 0, cancelled: 0 }, 'every job completed');
  await assertAllCompleted(q, all);
  const verify = await q('projections', 'verify');
  assert.is(verify.code, 0, `projections verify: ${verify.stdout}${verify.stderr}`);

  const { byJob } = await eventsByJob(q);
  const violations = all.map((id) => claimViolation(id, byJob.get(id) ?? [])).filter(Boolean);
  assert.equal(violations.slice(0, 10), [], 'no job claimed twice at once, no late result applied');

  // the killed processes' jobs: lease expired (promptly), then a later attempt succeeded
  const expired = checkKilledClaims(byJob, kills);
  for (const k of kills) {
    const lost = expired.get(k.workerId)!;
    assert.ok(lost.length >= 1, `the kill of ${k.pid} caught jobs running (it ran ${k.runningBefore.join(' ')} just before)`);
    for (const e of lost) assert.ok(e.at - k.at <= 10_000, `${e.jobId}: lease expired ${e.at - k.at} ms after the kill (at most 10 s)`);
    // what status showed running in the killed process just before the kill ended with it or came back
    for (const id of k.runningBefore) {
      const mine = (byJob.get(id) ?? []).filter((e) => e.workerId === k.workerId && ['JobSucceeded', 'JobLeaseExpired'].includes(e.type));
      assert.ok(mine.length >= 1, `${id} was running in ${k.pid}: it must have succeeded before the kill or expired: ${(byJob.get(id) ?? []).map((e) => e.type)}`);
    }
  }
  // the same, as `history` shows it
  const lostIds = [...new Set([...expired.values()].flat().map((e) => e.jobId!))];
  for (const id of lostIds) {
    const types = (await history(q, id)).map((e) => e.type);
    const i = types.indexOf('JobLeaseExpired');
    assert.ok(i > 0 && types.indexOf('JobSucceeded', i) > i, `history ${id}: ${types.join(' ')}`);
  }
  note(`${lostIds.length} jobs came back after the kills; takeovers: ${kills.map((k) => k.takeoverMs).join(', ')} ms`);

  // the survivors' own running jobs finished and their results were accepted
  const killedIds = new Set(kills.map((k) => k.workerId));
  const survivorsLost: string[] = [];
  for (const w of everyWorker.filter((w) => !kills.some((k) => k.pid === w.pid))) {
    for (const key of startedBy(w)) {
      const [id, attempt] = key.split('#');
      const end = (byJob.get(id!) ?? []).find((e) => e.attempt === Number(attempt) && ['JobSucceeded', 'JobFailed', 'JobLeaseExpired'].includes(e.type));
      if (end?.type !== 'JobSucceeded' || killedIds.has(end.workerId)) survivorsLost.push(`${id} attempt ${attempt} (worker ${w.pid}): ${end?.type ?? 'no end'}`);
    }
  }
  assert.equal(survivorsLost, [], "a survivor's running jobs finish and their results are accepted");
  // claims of survivors that expired although they never ran (a claim answer lost with the host)
  const phantom = [...byJob.values()].flat().filter((e) => e.type === 'JobLeaseExpired' && !killedIds.has(e.workerId));
  note(`lease expiries of surviving workers: ${phantom.map((e) => `${e.jobId}#${e.attempt} ${e.workerId}`).join(', ') || 'none'}`);

  // every id ran; only jobs that came back after a kill may have run twice
  const seen = tally(linesOf(out));
  assert.equal(all.filter((id) => !seen.has(id)), [], 'every job ran');
  const twice = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  assert.equal(twice.filter((id) => !lostIds.includes(id)), [], 'only jobs whose worker died ran more than once');

  for (const k of kills) assert.ok(k.takeoverMs <= 2000, `a survivor took over within 2 s of the kill: ${kills.map((k) => `${k.takeoverMs} ms`).join(', ')}`);
  const s = await status(q);
  const pids = s.workers.map((w) => w.pid).sort();
  assert.equal(pids, alive.map((w) => w.pid).sort(), 'status lists the live worker processes only');
});

test('the only worker process killed with SIGKILL: the next `worker start` recovers its jobs', async () => {
  const home = newHome('orphan');
  const dir = scratch('orphan');
  const q = cli(home);
  const out = join(dir, 'out.txt');
  const w = await startWorker(home, '--count', '4').ready();
  const all = await enqueueMany(q, dir, ids('o', 8).map((id) => ({ id, command: `sleep 1; echo $QUEUECTL_JOB_ID >> ${out}` })));
  const before = await statusUntil(q, (s) => (s.workers[0]?.running.length ?? 0) === 4, 20_000, 'the worker to run 4 jobs', 30);
  const killed = before.workers[0]!;
  const at = Date.now();
  await sigkill(w);
  note(`killed the only worker ${w.pid} while it ran ${killed.running.join(' ')}`);

  // while no worker runs, the killed process's jobs are not completed
  const between = await status(q);
  assert.is(between.jobs.completed + between.jobs.processing + between.jobs.pending + between.jobs.failed, 8);

  const w2 = await startWorker(home, '--count', '4').ready();
  const done = await statusUntil(q, (s) => s.jobs.pending + s.jobs.processing + s.jobs.failed === 0, 30_000, 'every job to end', 100);
  assert.equal(done.jobs, { pending: 0, processing: 0, completed: 8, failed: 0, dead: 0, cancelled: 0 });
  await assertAllCompleted(q, all);
  const { byJob } = await eventsByJob(q);
  const expired = checkKilledClaims(byJob, [{ pid: w.pid, workerId: killed.id, at, takeoverMs: 0, runningBefore: killed.running }]).get(killed.id)!;
  assert.ok(expired.length >= 1, 'the killed worker had jobs running');
  for (const id of expired.map((e) => e.jobId!)) {
    const types = (await history(q, id)).map((e) => e.type);
    const i = types.indexOf('JobLeaseExpired');
    assert.ok(i > 0 && types.indexOf('JobSucceeded', i) > i, `history ${id}: ${types.join(' ')}`);
    const last = (byJob.get(id) ?? []).findLast((e) => e.type === 'JobSucceeded')!;
    assert.is(last.workerId, json((await q('status', '--json'))).workers.find((x: { pid: number }) => x.pid === w2.pid)?.id, `${id} was recovered by the new worker`);
  }
  for (const e of expired) assert.ok(e.at - at <= 10_000, `${e.jobId}: lease expired ${e.at - at} ms after the kill`);
  const verify = await q('projections', 'verify');
  assert.is(verify.code, 0, `projections verify: ${verify.stdout}${verify.stderr}`);
  assert.equal(all.filter((id) => !linesOf(out).includes(id)), [], 'every job ran');
  await w2.stop();
});

test('commands around the death of the host: each is applied once, or says its outcome is unknown; none fails with a lock error', async () => {
  const home = newHome('inflight');
  const dir = scratch('inflight');
  const q = cli(home);
  const a = await startWorker(home, '--count', '2').ready();
  await waitForHost(home, [a]);
  const b = await startWorker(home, '--count', '2').ready();
  const later = ids('later', 5);
  await enqueueMany(q, dir, later.map((id) => ({ id, command: 'echo never', run_at: new Date(Date.now() + 3_600_000).toISOString() })));
  const busy = await enqueueMany(q, dir, ids('busy', 12).map((id) => ({ id, command: 'sleep 0.5' })));

  const names = ids('n', 10);
  const cmds = [
    ...names.map((id) => ['enqueue', 'true', '--id', id]),
    ...later.map((id) => ['cancel', id]),
    ...[1, 2, 3].map((i) => ['config', 'set', 'output_limit', String(100_000 + i)]),
    ...[1, 2, 3].map(() => ['status', '--json']),
    ...[1, 2, 3].map(() => ['list', '--json']),
  ];
  // `wait` long-polls the host: it is surely in flight when the host dies, and safe to resend
  cmds.push(['wait', ...busy, '--timeout', '30s']);
  const running = cmds.map((args) => q(...args));
  // kill the host as soon as the first answers come back: the others are in flight
  await Promise.race(running);
  await sigkill(a);
  const results = await Promise.all(running);
  await waitForHost(home, [b]);
  note(`commands during the kill: ${results.filter((r) => r.code === 0).length} of ${results.length} succeeded`);
  note(results.map((r) => `${r.args[0]}:${r.code}:${Math.round(r.ms)}`).join(' '));

  const log = (await eventsByJob(q)).all;
  const problems: string[] = [];
  for (const r of results) {
    const [cmd, , third] = r.args;
    if (/lock|busy|LEVEL_/i.test(r.stderr)) problems.push(`${r.args.join(' ')}: ${r.stderr.trim()}`);
    if (cmd === 'status' || cmd === 'list' || cmd === 'wait') {
      if (r.code !== 0) problems.push(`${r.args.join(' ')} (safe to resend) failed: ${r.stderr.trim()}`);
      continue;
    }
    const applied = cmd === 'enqueue' ? log.filter((e) => e.type === 'JobEnqueued' && e.jobId === r.args[3]).length
      : cmd === 'cancel' ? log.filter((e) => e.type === 'JobCancelled' && e.jobId === r.args[1]).length
      : log.filter((e) => e.type === 'ConfigSet' && e.key === third && e.value === Number(r.args[3])).length;
    if (applied > 1) problems.push(`${r.args.join(' ')} applied ${applied} times`);
    if (r.code === 0 && applied !== 1) problems.push(`${r.args.join(' ')} succeeded but is not in the log`);
    if (r.code !== 0 && !/may or may not have been applied/.test(r.stderr)) problems.push(`${r.args.join(' ')} failed without saying its outcome is unknown: ${r.stderr.trim()}`);
  }
  assert.equal(problems, [], 'each command: applied once, or reported as unknown');
  await statusUntil(q, (s) => s.jobs.pending + s.jobs.processing + s.jobs.failed === later.filter((id) => !log.some((e) => e.type === 'JobCancelled' && e.jobId === id)).length,
    30_000, 'every job to end', 200);
  const enqueued = names.filter((id) => log.some((e) => e.type === 'JobEnqueued' && e.jobId === id));
  await assertAllCompleted(q, [...busy, ...enqueued]);
  const verify = await q('projections', 'verify');
  assert.is(verify.code, 0, `projections verify: ${verify.stdout}${verify.stderr}`);
  await b.stop();
});

test("a worker process's jobs do not outlive it: after SIGKILL, none of its jobs runs alongside its retry", async () => {
  const home = newHome('orphans');
  const dir = scratch('orphans');
  const q = cli(home);
  const out = join(dir, 'out.txt');
  ok(await q('config', 'set', 'backoff_base', '1'));
  const a = await startWorker(home, '--count', '2').ready();
  await waitForHost(home, [a]);
  // each run appends "start" when it begins and "end" when it ends: two runs of one job at the
  // same time show as start, start
  const all = await enqueueMany(q, dir, ids('p', 2).map((id) => ({
    id, command: `echo "$QUEUECTL_JOB_ID start $QUEUECTL_ATTEMPT" >> ${out}; sleep 3; echo "$QUEUECTL_JOB_ID end $QUEUECTL_ATTEMPT" >> ${out}`,
  })));
  await statusUntil(q, (s) => s.jobs.processing === 2, 10_000, 'the host to run both jobs', 30);
  const b = await startWorker(home, '--count', '2').ready(); // idle: free to take the retries at once
  await sigkill(a);
  await statusUntil(q, (s) => s.jobs.completed === 2, 30_000, 'both jobs to complete', 200);
  const runs = linesOf(out);
  note(runs.join(' / '));
  // A run that never wrote "end" was killed (with its worker's lease); a run that did must not
  // have had another run of the same job start between its start and its end.
  const overlapping = all.filter((id) => {
    const mine = runs.filter((l) => l.startsWith(`${id} `));
    return mine.some((l, i) => {
      if (!l.includes(' end ')) return false;
      const attempt = l.split(' ')[2];
      const started = mine.indexOf(`${id} start ${attempt}`);
      return mine.slice(started + 1, i).some((m) => m.includes(' start '));
    });
  });
  assert.equal(overlapping, [], `no job ran twice at the same time, but the killed worker's job processes kept running: ${runs.join(' / ')}`);
  const killedRuns = all.filter((id) => !runs.includes(`${id} end 1`));
  assert.equal(killedRuns, all, `the killed worker's first runs were ended when their leases expired: ${runs.join(' / ')}`);
  await b.stop();
});

test('nothing is left running', async () => {
  await stopWorkers();
  await assertNoStrays();
});

test.run();
