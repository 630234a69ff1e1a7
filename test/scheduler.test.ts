// Issue 4: fast-check's scheduler interleaves concurrent claims, results, heartbeats, lease
// expiries and cancels from several simulated workers against the REAL Engine (over
// memory-level) and the real Host API, and checks that no job is ever claimed by two workers at
// once, no late result is applied, and no job is lost: every job ends in exactly one state and
// the counts add up (and the projections still match the log).
//
//   QUEUECTL_SCHED_RUNS=<n>   runs per property (default 150)
//   QUEUECTL_SCHED_SEED=<s>   replay a failure; a failure prints the exact line to run, with
//   QUEUECTL_SCHED_PATH=<run> the index of the failing run (it is run again and shrunk again: a
//                             deeper shrink path does not replay, as the scheduler's shrinks
//                             depend on the tasks of the run being shrunk)
//   QUEUECTL_SCHED_MODE=engine|host  run only one of the two properties
import fc from 'fast-check';
import { MemoryLevel } from 'memory-level';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AttemptResult } from '../src/domain/decide.ts';
import type { JobSpec } from '../src/domain/job-spec.ts';
import { JOB_STATES, type JobState } from '../src/domain/types.ts';
import type { Engine } from '../src/engine/engine.ts';
import { openLevelEngine } from './helpers/backends.ts';
import { isQueuectlError } from '../src/errors.ts';
import type { StoredEvent } from '../src/events.ts';
import { Host } from '../src/host/host.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';

const RUNS = Math.max(1, Number(process.env.QUEUECTL_SCHED_RUNS ?? '') || 150);
const SEED = process.env.QUEUECTL_SCHED_SEED ? Number(process.env.QUEUECTL_SCHED_SEED) : undefined;
const PATH = process.env.QUEUECTL_SCHED_PATH || undefined;
const ONLY = process.env.QUEUECTL_SCHED_MODE || undefined;
const T0 = 1_800_000_000_000;
const LEASE_MS = 2000;
/** A pid no process has (Linux pids stop at 2^22): a worker whose process is gone. */
const DEAD_PID = 4_194_304 + 17;

type Outcome = 'ok' | 'fail' | 'vanish' | 'heartbeat' | 'late';
type Admin = { kind: 'expire'; pick: number } | { kind: 'cancel'; pick: number } | { kind: 'tick'; ms: number };

interface Input {
  jobs: number;
  /** One plan per worker: what it does with each job it claims. */
  workers: { plan: Outcome[]; processGone: boolean }[];
  /** What the "host side" does meanwhile: expire a lease, cancel a job, let time pass. */
  admin: Admin[];
}

const inputArb: fc.Arbitrary<Input> = fc.record({
  jobs: fc.integer({ min: 1, max: 5 }),
  workers: fc.array(
    fc.record({
      plan: fc.array(fc.constantFrom<Outcome>('ok', 'ok', 'fail', 'vanish', 'heartbeat', 'late', 'late'), { minLength: 1, maxLength: 5 }),
      processGone: fc.integer({ min: 0, max: 4 }).map((n) => n === 0), // one worker in five: its process is gone
    }),
    { minLength: 2, maxLength: 4 },
  ),
  admin: fc.array(
    fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('expire' as const), pick: fc.nat(7) }), weight: 3 },
      { arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat(7) }), weight: 1 },
      { arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 100, max: 3 * LEASE_MS }) }), weight: 2 },
    ),
    { maxLength: 8 },
  ),
});

const result = (ok: boolean): AttemptResult => ({ durationMs: 1, exitCode: ok ? 0 : 1, signal: null, timedOut: false, error: ok ? null : 'exit code 1', output: null });
const spec = (id: string): JobSpec => ({ id, command: `echo ${id}`, cwd: '/', priority: 0, maxRetries: null, runAt: null, timeoutMs: null });

/** What the simulated workers observed, checked against the log at the end. */
interface Observed {
  claims: { jobId: string; attempt: number; workerId: string }[];
  accepted: { jobId: string; attempt: number; workerId: string; type: string }[];
  expired: { jobId: string; attempt: number }[];
  problems: string[];
}

const ENDS = new Set(['JobSucceeded', 'JobFailed', 'JobLeaseExpired', 'JobCancelled']);

/** The claim rules in one job's stream: no claim while an attempt is live, attempts in order, each ends once. */
const streamProblems = (jobId: string, stream: StoredEvent[]): string[] => {
  const out: string[] = [];
  let live: { attempt: number; workerId: string } | null = null;
  let last = 0;
  for (const e of stream) {
    if (e.type === 'JobClaimed') {
      if (live) out.push(`${jobId}: double claim: ${e.workerId} got attempt ${e.attempt} while attempt ${live.attempt} of ${live.workerId} was live`);
      if (e.attempt !== last + 1) out.push(`${jobId}: attempt ${e.attempt} claimed after attempt ${last}`);
      last = e.attempt;
      live = { attempt: e.attempt, workerId: e.workerId };
    } else if (ENDS.has(e.type)) {
      const attempt = (e as { attempt: number | null }).attempt;
      if (e.type === 'JobCancelled' && attempt === null) {
        if (live) out.push(`${jobId}: cancelled as not running while attempt ${live.attempt} was live`);
        continue;
      }
      if (!live || attempt !== live.attempt) out.push(`${jobId}: ${e.type} of attempt ${attempt} applied, but the live attempt is ${live?.attempt ?? 'none'} (a late result applied)`);
      if (e.type !== 'JobCancelled' && live && 'workerId' in e && e.type !== 'JobLeaseExpired' && e.workerId !== live.workerId) {
        out.push(`${jobId}: ${e.type} from ${e.workerId} for an attempt of ${live.workerId}`);
      }
      live = null;
    }
  }
  return out;
};

interface Api {
  claim(workerId: string): Promise<{ jobId: string; attempt: number } | null>;
  report(jobId: string, workerId: string, attempt: number, ok: boolean): Promise<StoredEvent[]>;
  /** The host side: expire one lease. Engine mode: the chosen attempt; host mode: the host's own lease check. */
  expire(jobId: string, attempt: number): Promise<StoredEvent[]>;
  heartbeat(workerId: string, running: { jobId: string; attempt: number }[]): Promise<string[]>;
}

const simulate = async (s: fc.Scheduler, input: Input, mode: 'engine' | 'host'): Promise<void> => {
  const clock = { now: T0 };
  const engine = await openLevelEngine(new MemoryLevel<string, unknown>() as unknown as AnyLevel, { clock: () => clock.now, sync: false });
  const host = mode === 'host' ? new Host(engine) : null;
  const expireLeases = () => (host as unknown as { expireLeases(): Promise<void> }).expireLeases();
  try {
    await engine.execute({ type: 'configSet', key: 'max_retries', value: '2' });
    await engine.execute({ type: 'configSet', key: 'backoff_base', value: '1' }); // retries are due 1 s later
    await engine.execute({ type: 'configSet', key: 'lease_seconds', value: String(LEASE_MS / 1000) });
    const ids = Array.from({ length: input.jobs }, (_, i) => `j${i}`);
    await engine.execute({ type: 'enqueue', jobs: ids.map(spec) });
    const workerIds = input.workers.map((_, k) => `w${k}`);
    for (const [k, w] of input.workers.entries()) {
      await engine.execute({ type: 'workerStart', workerId: workerIds[k]!, pid: w.processGone ? DEAD_PID : process.pid, slots: 1 });
    }

    const api: Api = host
      ? {
          claim: async (workerId) => {
            const c = await host.api.claim({ workerId, waitMs: 0 });
            return c && { jobId: c.job.id, attempt: c.attempt };
          },
          report: async (jobId, workerId, attempt, ok) => (await host.api.report({ jobId, workerId, attempt, result: result(ok) })).events,
          expire: async () => {
            const from = (await engine.store.head()) + 1;
            await expireLeases();
            const out: StoredEvent[] = [];
            for await (const e of engine.store.readEvents(from)) if (e.type === 'JobLeaseExpired') out.push(e);
            return out;
          },
          heartbeat: async (workerId, running) => (await host.api.heartbeat({ workerId, running })).drop,
        }
      : {
          claim: async (workerId) => {
            const c = await engine.claimNext(workerId, LEASE_MS);
            return c && { jobId: c.job.id, attempt: c.attempt };
          },
          report: (jobId, workerId, attempt, ok) => engine.execute({ type: 'report', jobId, workerId, attempt, result: result(ok) }),
          expire: (jobId, attempt) => engine.execute({ type: 'expireLease', jobId, attempt, reason: 'worker lost' }),
          heartbeat: async () => [],
        };

    const seen: Observed = { claims: [], accepted: [], expired: [], problems: [] };
    /** Claims handed out and not known to have ended (what the admin side may expire or cancel). */
    const outstanding: { jobId: string; attempt: number; workerId: string }[] = [];
    const forget = (jobId: string, attempt: number) => {
      const i = outstanding.findIndex((o) => o.jobId === jobId && o.attempt === attempt);
      if (i >= 0) outstanding.splice(i, 1);
    };
    /** A refusal is fine only when it is the fencing one; anything else is a bug. */
    const refusal = (what: string) => (e: unknown): null => {
      if (isQueuectlError(e) && e.code === 'QUEUECTL_STALE_ATTEMPT') return null;
      seen.problems.push(`${what}: unexpected ${isQueuectlError(e) ? e.code : 'error'}: ${(e as Error).message}`);
      return null;
    };
    /** One step: its start and its answer are both ordered by the scheduler. */
    const step = async <T>(label: string, op: () => Promise<T>): Promise<T> => {
      await s.schedule(Promise.resolve(label), label);
      const out = await op();
      await s.schedule(Promise.resolve(`${label} answered`), `${label} answered`);
      return out;
    };

    const worker = async (k: number): Promise<void> => {
      const workerId = workerIds[k]!;
      for (const outcome of input.workers[k]!.plan) {
        const c = await step(`${workerId} claim`, () => api.claim(workerId));
        if (!c) {
          await step(`${workerId} idle`, async () => {
            clock.now += 500;
          });
          continue;
        }
        seen.claims.push({ ...c, workerId });
        outstanding.push({ ...c, workerId });
        if (outcome === 'vanish') continue; // never reports: only a lease expiry frees the job
        if (outcome === 'late') {
          // a worker that stalls (stopped, partitioned): it reports only after its claim was
          // expired or cancelled, or after a while; then its result must be refused
          for (let i = 0; i < 8 && outstanding.some((o) => o.jobId === c.jobId && o.attempt === c.attempt); i++) {
            await step(`${workerId} stalls with ${c.jobId}#${c.attempt}`, async () => {
              clock.now += LEASE_MS / 2;
            });
          }
        }
        if (outcome === 'heartbeat') {
          const drop = await step(`${workerId} heartbeat ${c.jobId}#${c.attempt}`, () => api.heartbeat(workerId, [c]));
          if (drop.includes(c.jobId)) {
            // told the attempt is no longer ours; a buggy worker reports anyway: must be refused
            await step(`${workerId} late report ${c.jobId}#${c.attempt}`, () => api.report(c.jobId, workerId, c.attempt, true).then((events) => {
              seen.problems.push(`${c.jobId}: the host said drop attempt ${c.attempt}, then accepted its result ${events.map((e) => e.type)}`);
              return events;
            }, refusal(`late report ${c.jobId}#${c.attempt}`)));
            continue;
          }
        }
        const ok = outcome !== 'fail';
        const events = await step(`${workerId} report ${c.jobId}#${c.attempt} ${ok ? 'ok' : 'fail'}`, () =>
          api.report(c.jobId, workerId, c.attempt, ok).catch(refusal(`report ${c.jobId}#${c.attempt}`)));
        if (events) {
          const end = events.find((e) => ENDS.has(e.type));
          if (!end || (end as { jobId: string }).jobId !== c.jobId || (end as { attempt: number }).attempt !== c.attempt) {
            seen.problems.push(`${c.jobId}: report of attempt ${c.attempt} answered ${JSON.stringify(events)}`);
          }
          seen.accepted.push({ jobId: c.jobId, attempt: c.attempt, workerId, type: end?.type ?? '?' });
          forget(c.jobId, c.attempt);
        }
      }
    };

    const admin = async (): Promise<void> => {
      for (const a of input.admin) {
        if (a.kind === 'tick') {
          await step(`tick ${a.ms}`, async () => {
            clock.now += a.ms;
          });
        } else if (a.kind === 'expire') {
          if (host) {
            // the host's own rule: leases past their deadline (or of a gone process) expire
            const events = await step('host expires leases', () => api.expire('', 0));
            for (const e of events) if (e.type === 'JobLeaseExpired') seen.expired.push({ jobId: e.jobId, attempt: e.attempt }), forget(e.jobId, e.attempt);
            continue;
          }
          const o = outstanding[a.pick % Math.max(1, outstanding.length)];
          if (!o) continue;
          const events = await step(`expire ${o.jobId}#${o.attempt}`, () => api.expire(o.jobId, o.attempt).catch(refusal(`expire ${o.jobId}#${o.attempt}`)));
          if (events) seen.expired.push({ jobId: o.jobId, attempt: o.attempt }), forget(o.jobId, o.attempt);
        } else {
          const id = ids[a.pick % ids.length]!;
          const events = await step(`cancel ${id}`, () =>
            engine.execute({ type: 'cancel', jobId: id }).catch((e) => {
              if (!(isQueuectlError(e) && e.code === 'QUEUECTL_WRONG_STATE')) seen.problems.push(`cancel ${id}: ${(e as Error).message}`);
              return null;
            }));
          for (const e of events ?? []) if (e.type === 'JobCancelled' && e.attempt !== null) forget(e.jobId, e.attempt);
        }
      }
    };

    await s.waitFor(Promise.all([...input.workers.map((_, k) => worker(k)), admin()]));

    // Quiesce: time passes, the host expires what was abandoned, and a fresh worker runs the rest.
    for (let round = 0; round < 40; round++) {
      const { jobs } = await engine.counts();
      if (jobs.pending + jobs.processing + jobs.failed === 0) break;
      clock.now += 3 * LEASE_MS;
      if (host) {
        await expireLeases();
      } else {
        for (const j of await engine.listJobs({ state: 'processing', limit: 1000 })) {
          await engine.execute({ type: 'expireLease', jobId: j.id, attempt: j.totalAttempts, reason: 'worker lost' });
        }
      }
      for (;;) {
        const c = await api.claim('finisher');
        if (!c) break;
        await api.report(c.jobId, 'finisher', c.attempt, true);
      }
    }

    // ---- the checks ------------------------------------------------------------------------
    const problems = [...seen.problems];
    const log: StoredEvent[] = [];
    for await (const e of engine.store.readEvents(0)) log.push(e);
    const streams = new Map<string, StoredEvent[]>(ids.map((id) => [id, []]));
    for (const e of log) if ('jobId' in e) streams.get(e.jobId)?.push(e);
    for (const [id, stream] of streams) problems.push(...streamProblems(id, stream));

    // every claim handed out is in the log, once; no (job, attempt) went to two workers
    const claimKeys = seen.claims.map((c) => `${c.jobId}#${c.attempt}`);
    if (new Set(claimKeys).size !== claimKeys.length) problems.push(`double claim: the same attempt was handed out twice: ${claimKeys.join(' ')}`);
    for (const c of seen.claims) {
      const inLog = log.filter((e) => e.type === 'JobClaimed' && e.jobId === c.jobId && e.attempt === c.attempt);
      if (inLog.length !== 1 || (inLog[0] as { workerId: string }).workerId !== c.workerId) problems.push(`claim ${c.jobId}#${c.attempt} for ${c.workerId} is not in the log once: ${JSON.stringify(inLog)}`);
    }
    // results: what was accepted is in the log, exactly once; what was refused left nothing
    const reportsInLog = log.filter((e) => (e.type === 'JobSucceeded' || e.type === 'JobFailed') && (e as { workerId: string }).workerId !== 'finisher');
    const acceptedKeys = seen.accepted.map((a) => `${a.type} ${a.jobId}#${a.attempt} ${a.workerId}`).sort();
    const loggedKeys = reportsInLog.map((e) => `${e.type} ${(e as { jobId: string }).jobId}#${(e as { attempt: number }).attempt} ${(e as { workerId: string }).workerId}`).sort();
    if (acceptedKeys.join() !== loggedKeys.join()) problems.push(`results in the log ${loggedKeys.join(', ')} differ from those accepted ${acceptedKeys.join(', ')}`);

    // no lost job: each ends in exactly one final state, and the counts add up
    const counts = await engine.counts();
    const total = JOB_STATES.reduce((n, st) => n + counts.jobs[st], 0);
    if (total !== ids.length) problems.push(`the counts add up to ${total}, not ${ids.length}: ${JSON.stringify(counts.jobs)}`);
    const byState = new Map<JobState, number>();
    for (const id of ids) {
      const job = await engine.getJob(id);
      if (!job) {
        problems.push(`${id} is lost`);
        continue;
      }
      if (!['completed', 'dead', 'cancelled'].includes(job.state)) problems.push(`${id} never ended: ${job.state}`);
      byState.set(job.state, (byState.get(job.state) ?? 0) + 1);
    }
    const listed: string[] = [];
    for (const st of JOB_STATES) {
      if (counts.jobs[st] !== (byState.get(st) ?? 0)) problems.push(`count of ${st} is ${counts.jobs[st]}, jobs in that state: ${byState.get(st) ?? 0}`);
      listed.push(...(await engine.listJobs({ state: st, limit: 1000 })).map((j) => j.id));
    }
    if (listed.sort().join() !== [...ids].sort().join()) problems.push(`listing by state gives ${listed.join(',')}, expected each of ${ids.join(',')} once`);
    const verify = await engine.store.verify();
    if (verify.differences.length > 0) problems.push(`projections differ from the log: ${verify.differences.join('; ')}`);

    if (problems.length > 0) {
      const events = log.map((e) => `${e.pos} ${e.type} ${'jobId' in e ? e.jobId : ''}${'attempt' in e ? `#${e.attempt}` : ''}${'workerId' in e ? ` ${e.workerId}` : ''}`).join('\n    ');
      throw new Error(`${problems.join('\n')}\n  log:\n    ${events}`);
    }
  } finally {
    host?.stop();
    await engine.close();
  }
};

const runProperty = async (mode: 'engine' | 'host'): Promise<void> => {
  if (ONLY !== undefined && ONLY !== mode) return;
  const numRuns = PATH ? Math.max(RUNS, Number(PATH.split(':')[0]) + 1) : RUNS;
  const out = await fc.check(fc.asyncProperty(fc.scheduler(), inputArb, (s, input) => simulate(s, input, mode)), { numRuns, seed: SEED, path: PATH });
  if (out.failed) {
    const run = (out.counterexamplePath ?? '').split(':')[0];
    const replay = `QUEUECTL_SCHED_MODE=${mode} QUEUECTL_SCHED_SEED=${out.seed} QUEUECTL_SCHED_PATH=${run} node --import tsx node_modules/uvu/bin.js test scheduler --no-color`;
    const err = out.errorInstance as Error | undefined;
    const message = `scheduler property (${mode}) failed after ${out.numRuns} runs: seed ${out.seed}, path ${out.counterexamplePath}\n` +
      `replay: ${replay}\n\ncounterexample: ${fc.stringify(out.counterexample)}\n\n${err?.message ?? String(out.errorInstance)}`;
    console.error(message);
    assert.unreachable(message);
  }
};

test('Engine: concurrent claims, results, lease expiries and cancels: no double claim, no late result, no lost job', async () => {
  await runProperty('engine');
});

test('Host API: claims, heartbeats, results and the host expiring leases: no double claim, no late result, no lost job', async () => {
  await runProperty('host');
});

test.run();
