// A slot's report can carry its next claim (one round trip): the rules that must still hold.
import { MemoryLevel } from 'memory-level';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AttemptResult } from '../src/domain/decide.ts';
import type { JobSpec } from '../src/domain/job-spec.ts';
import type { Engine } from '../src/engine/engine.ts';
import { openLevelEngine } from './helpers/backends.ts';
import { QueuectlError } from '../src/errors.ts';
import type { Queue } from '../src/host/connect.ts';
import { type ClaimAnswer, Host } from '../src/host/host.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';
import { resolveHome } from '../src/home.ts';
import { WorkerPool } from '../src/worker/runtime.ts';

const ok: AttemptResult = { durationMs: 1, exitCode: 0, signal: null, timedOut: false, error: null, output: null };
const spec = (id: string): JobSpec => ({ id, command: 'true', cwd: '/', priority: 0, maxRetries: null, runAt: null, timeoutMs: null });

const setup = async (ids: string[]) => {
  const engine = await openLevelEngine(new MemoryLevel<string, unknown>() as unknown as AnyLevel, { sync: false });
  await engine.execute({ type: 'enqueue', jobs: ids.map(spec) });
  await engine.execute({ type: 'workerStart', workerId: 'w', pid: process.pid, slots: 1 });
  return { engine, host: new Host(engine) };
};

const events = async (engine: Engine) => {
  const out: { type: string; jobId?: string }[] = [];
  for await (const e of engine.store.readEvents(0)) out.push(e as never);
  return out.filter((e) => e.type === 'JobClaimed' || e.type === 'JobSucceeded').map((e) => `${e.type} ${e.jobId}`);
};

test('report with claim: the result is recorded, then the next job is claimed, in one answer', async () => {
  const { engine, host } = await setup(['a', 'b']);
  const first = (await host.api.claim({ workerId: 'w', waitMs: 0 }))!;
  const answer = await host.api.report({ jobId: 'a', workerId: 'w', attempt: first.attempt, result: ok, claim: true });
  assert.equal(answer.events.map((e) => e.type), ['JobSucceeded']);
  assert.is(answer.refused, undefined);
  assert.is(answer.claim?.job.id, 'b');
  assert.is(answer.claim?.outputLimit, (await engine.getConfig()).output_limit);
  assert.equal(await events(engine), ['JobClaimed a', 'JobSucceeded a', 'JobClaimed b'], 'both durable, in order');
  // nothing left: the claim is null, the report still recorded
  const last = await host.api.report({ jobId: 'b', workerId: 'w', attempt: answer.claim!.attempt, result: ok, claim: true });
  assert.equal([last.events.map((e) => e.type), last.claim], [['JobSucceeded'], null]);
  await engine.close();
});

test('report without claim: as before, no claim and a refusal is thrown', async () => {
  const { engine, host } = await setup(['a', 'b']);
  const first = (await host.api.claim({ workerId: 'w', waitMs: 0 }))!;
  const answer = await host.api.report({ jobId: 'a', workerId: 'w', attempt: first.attempt, result: ok });
  assert.is(answer.claim, undefined);
  try {
    await host.api.report({ jobId: 'a', workerId: 'w', attempt: first.attempt, result: ok });
    assert.unreachable('a second report of the same attempt must be refused');
  } catch (e) {
    assert.instance(e, QueuectlError);
    assert.is((e as QueuectlError).code, 'QUEUECTL_STALE_ATTEMPT');
  }
  assert.equal(await events(engine), ['JobClaimed a', 'JobSucceeded a']);
  await engine.close();
});

test('a refused report with claim: the refusal is answered and the claim made with it is not lost', async () => {
  const { engine, host } = await setup(['a', 'b']);
  const first = (await host.api.claim({ workerId: 'w', waitMs: 0 }))!;
  await host.api.report({ jobId: 'a', workerId: 'w', attempt: first.attempt, result: ok });
  const late = await host.api.report({ jobId: 'a', workerId: 'w', attempt: first.attempt, result: ok, claim: true });
  assert.is(late.refused?.code, 'QUEUECTL_STALE_ATTEMPT');
  assert.equal(late.events, []);
  assert.is(late.claim?.job.id, 'b');
  assert.equal(await events(engine), ['JobClaimed a', 'JobSucceeded a', 'JobClaimed b'], 'the stale result was not applied');
  await engine.close();
});

test('a stopping host records the report but claims nothing', async () => {
  const { engine, host } = await setup(['a', 'b']);
  const first = (await host.api.claim({ workerId: 'w', waitMs: 0 }))!;
  host.stop();
  const answer = await host.api.report({ jobId: 'a', workerId: 'w', attempt: first.attempt, result: ok, claim: true });
  assert.equal([answer.events.map((e) => e.type), answer.claim], [['JobSucceeded'], null]);
  assert.equal(await events(engine), ['JobClaimed a', 'JobSucceeded a']);
  await engine.close();
});

test('worker: asks for the next claim with each report, and not once it is stopping', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'queuectl-report-claim-'));
  try {
    const { engine, host } = await setup(['a', 'b', 'c', 'd']);
    const calls: string[] = [];
    let pool: WorkerPool | null = null;
    let reports = 0;
    const queue = {
      call: async (method: string, params: Record<string, unknown>) => {
        calls.push(method === 'report' ? `report ${params.jobId} claim=${params.claim}` : method);
        if (method === 'report' && ++reports === 2) pool!.stop(); // stop arrives while the 2nd report is on its way
        return (host.api as unknown as Record<string, (p: unknown) => Promise<unknown>>)[method]!({ ...params, ...(method === 'claim' ? { waitMs: 0 } : {}) });
      },
    } as unknown as Queue;
    pool = new WorkerPool({ queue, home: resolveHome(dir), count: 1, drain: false, log: () => {} });
    const stopAfter = setTimeout(() => pool!.stop(), 10_000); // bounds the test if the rule breaks
    await pool.run();
    clearTimeout(stopAfter);
    // a: claimed by the long poll; its report brings b; b's report (sent before the stop) brings c,
    // which is ours and is run; c's report, sent while stopping, asks for nothing; d stays pending.
    assert.equal(calls, ['workerStart', 'claim', 'report a claim=true', 'report b claim=true', 'report c claim=false', 'workerStop']);
    assert.equal((await engine.counts()).jobs.pending, 1);
    const answer: ClaimAnswer | null = await host.api.claim({ workerId: 'w', waitMs: 0 });
    assert.is(answer?.job.id, 'd');
    await engine.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
