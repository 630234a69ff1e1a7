// Model-based tests: the real Engine (over memory-level and over classic-level) driven side by
// side with the small reference model in test/helpers/model.ts, plus the replay law and a few
// unit tests of the pure domain.
//
//   QUEUECTL_PROP_RUNS=<n>   runs over memory-level (classic-level gets n/4, PostgreSQL n/10); default 150
//   QUEUECTL_PROP_SEED=<s>   replay a failure (with QUEUECTL_PROP_PATH=<path> to go straight to the
//                            shrunk counterexample, and QUEUECTL_PROP_KIND=memory|classic); a failure
//                            prints the exact line to run
//   QUEUECTL_PROP_REPLAY_PATH=<replayPath>  the commands' own replay path, printed as /*replayPath=...*/
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { evolveJob } from '../src/domain/evolve.ts';
import { PROJECTIONS } from '../projections/index.ts';
import { DEFAULT_CONFIG } from '../src/domain/config.ts';
import { type AttemptResult, type Command, decide } from '../src/domain/decide.ts';
import type { JobSpec } from '../src/domain/job-spec.ts';
import { backoffMs } from '../src/domain/policy.ts';
import type { JobView } from '../src/domain/types.ts';
import { Engine } from '../src/engine/engine.ts';
import { isQueuectlError } from '../src/errors.ts';
import { EVENT_SCHEMA_VERSION, type EventData, type StoredEvent } from '../src/events.ts';
import { type BackendHarness, levelHarness, type OpenedBackend, pgHarness, removeBackendDirs } from './helpers/backends.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';
import { M_STATES, type MClaim, type MEvent, type MOutcome, type MSpec, modelBackoffMs, QueueModel } from './helpers/model.ts';

const RUNS = Math.max(1, Number(process.env.QUEUECTL_PROP_RUNS ?? '') || 150);
const CLASSIC_RUNS = Math.max(1, Math.round(RUNS / 4));
const POSTGRES_RUNS = Math.max(1, Math.round(RUNS / 10));
const SEED = process.env.QUEUECTL_PROP_SEED ? Number(process.env.QUEUECTL_PROP_SEED) : undefined;
const PATH = process.env.QUEUECTL_PROP_PATH || undefined;
const REPLAY_PATH = process.env.QUEUECTL_PROP_REPLAY_PATH || undefined;
const T0 = 1_700_000_000_000;

// ---- the real side ------------------------------------------------------------------------------

type Kind = 'memory' | 'classic' | 'postgres';

/** One PostgreSQL server for this file, started by the first PostgreSQL run (fsync off: logic only). */
let server: Promise<TestPostgres> | null = null;
const postgres = () => (server ??= startPostgres({ fsync: false }));

/** The backend each kind of run drives: add a harness (and a test below) to run the suite on another. */
const HARNESSES: Record<Kind, BackendHarness> = { memory: levelHarness('memory'), classic: levelHarness('classic'), postgres: pgHarness(postgres) };

class Real {
  t = T0;
  engine!: Engine;
  backend!: OpenedBackend;
  constructor(readonly kind: Kind) {}

  static async open(kind: Kind): Promise<Real> {
    const real = new Real(kind);
    real.backend = await HARNESSES[kind].create(() => real.t);
    real.engine = new Engine(real.backend.store);
    return real;
  }

  /** Close and open the same data again (never while it is open). */
  async restart(): Promise<void> {
    this.engine = new Engine(await this.backend.reopen());
  }

  async dispose(): Promise<void> {
    await this.backend.dispose();
  }
}

// ---- generated steps ----------------------------------------------------------------------------

// Ids overlap on purpose (duplicates), and some are prefixes of others (the per-job stream index).
const ID_POOL = ['j0', 'j1', 'j2', 'j3', 'j1.0', 'j1-a', 'J1', 'j10'] as const;
const BAD_IDS = ['', '-x', 'a b', 'x/y'] as const;
const WORKERS = ['w0', 'w1', 'w2'] as const;

interface SpecGen {
  id: string;
  priority: number;
  maxRetries: number | null | 'negative' | 'fraction';
  runAt: number | null | 'nan'; // offset from now in ms
  command: 'ok' | 'empty' | 'blank';
}

/** Which job a step names, resolved against the model when it runs (so shrinking keeps it meaningful). */
interface Pick { from: 'processing' | 'dead' | 'waiting' | 'any' | 'ghost'; i: number }

type Op =
  | { op: 'enqueue'; specs: SpecGen[] }
  | { op: 'claimNext'; worker: number }
  | { op: 'claim'; pick: Pick; worker: number }
  | { op: 'report'; pick: Pick; worker: 'owner' | number; attempt: -1 | 0 | 1; success: boolean }
  | { op: 'expire'; pick: Pick; attempt: -1 | 0 | 1 }
  | { op: 'release'; pick: Pick; worker: 'owner' | number; attempt: -1 | 0 | 1 }
  | { op: 'retry'; picks: Pick[] }
  | { op: 'cancel'; pick: Pick }
  | { op: 'config'; key: string; value: unknown };

type Step = Op | { op: 'burst'; ops: Op[] } | { op: 'advance'; ms: number } | { op: 'restart' } | { op: 'peek' };

const CONFIG_CASES: readonly [string, unknown][] = [
  ['max_retries', 0], ['max_retries', 1], ['max_retries', 2], ['max_retries', '4'], ['max_retries', 3],
  ['backoff_base', 1], ['backoff_base', 1.5], ['backoff_base', '3'], ['backoff_base', 2],
  ['backoff_max', 0], ['backoff_max', 3], ['backoff_max', 2.5], ['backoff_max', 10], ['backoff_max', 3600],
  ['output_limit', 0], ['output_limit', '100'], ['lease_seconds', 1], ['lease_seconds', 5], ['lease_seconds', ' 7 '],
  // refused
  ['max_retries', -1], ['max_retries', 1.5], ['max_retries', 'x'], ['max_retries', ''], ['max_retries', null], ['max_retries', Number.NaN],
  ['backoff_base', 0.5], ['backoff_base', 0], ['backoff_base', true], ['backoff_max', -1], ['backoff_max', Number.POSITIVE_INFINITY],
  ['lease_seconds', 0], ['lease_seconds', 2.5], ['output_limit', -5],
  ['retries', 3], ['max-retries', 3], ['MAX_RETRIES', 2], ['', 1], ['__proto__', 1], ['constructor', 1],
];

const pickArb: fc.Arbitrary<Pick> = fc.record({
  from: fc.oneof({ weight: 20, arbitrary: fc.constantFrom<Pick['from']>('processing', 'processing', 'processing', 'dead', 'waiting', 'any', 'any', 'any') }, { weight: 1, arbitrary: fc.constant<Pick['from']>('ghost') }),
  i: fc.nat(20),
});

/** Mostly valid jobs; about one in ten has exactly one bad field (which must refuse the whole enqueue). */
const specArb: fc.Arbitrary<SpecGen> = fc
  .record({
    id: fc.constantFrom(...ID_POOL),
    priority: fc.integer({ min: -2, max: 2 }),
    maxRetries: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 5, arbitrary: fc.constantFrom(0, 0, 1, 2, 3) }),
    runAt: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 4, arbitrary: fc.integer({ min: -5000, max: 15000 }) }),
    bad: fc.oneof({ weight: 9, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('id', 'command', 'blank', 'negative', 'fraction', 'nan') }),
    badId: fc.constantFrom(...BAD_IDS),
  })
  .map(({ bad, badId, ...g }): SpecGen => ({
    ...g,
    id: bad === 'id' ? badId : g.id,
    command: bad === 'command' ? 'empty' : bad === 'blank' ? 'blank' : 'ok',
    maxRetries: bad === 'negative' || bad === 'fraction' ? bad : g.maxRetries,
    runAt: bad === 'nan' ? 'nan' : g.runAt,
  }));

const opArbs = {
  enqueue: fc.record({ op: fc.constant('enqueue' as const), specs: fc.oneof({ weight: 20, arbitrary: fc.array(specArb, { minLength: 1, maxLength: 3 }) }, { weight: 1, arbitrary: fc.constant<SpecGen[]>([]) }) }),
  claimNext: fc.record({ op: fc.constant('claimNext' as const), worker: fc.nat(2) }),
  claim: fc.record({ op: fc.constant('claim' as const), pick: pickArb, worker: fc.nat(2) }),
  report: fc.record({
    op: fc.constant('report' as const),
    pick: pickArb,
    worker: fc.oneof({ weight: 6, arbitrary: fc.constant<'owner'>('owner') }, { weight: 1, arbitrary: fc.nat(2) }),
    attempt: fc.oneof({ weight: 6, arbitrary: fc.constant<0>(0) }, { weight: 1, arbitrary: fc.constantFrom<-1 | 1>(-1, 1) }),
    success: fc.boolean(),
  }),
  expire: fc.record({
    op: fc.constant('expire' as const),
    pick: pickArb,
    attempt: fc.oneof({ weight: 6, arbitrary: fc.constant<0>(0) }, { weight: 1, arbitrary: fc.constantFrom<-1 | 1>(-1, 1) }),
  }),
  release: fc.record({
    op: fc.constant('release' as const),
    pick: pickArb,
    worker: fc.oneof({ weight: 6, arbitrary: fc.constant<'owner'>('owner') }, { weight: 1, arbitrary: fc.nat(2) }),
    attempt: fc.oneof({ weight: 6, arbitrary: fc.constant<0>(0) }, { weight: 1, arbitrary: fc.constantFrom<-1 | 1>(-1, 1) }),
  }),
  retry: fc.record({
    op: fc.constant('retry' as const),
    picks: fc.oneof(
      { weight: 10, arbitrary: fc.array(fc.record({ from: fc.constantFrom<Pick['from']>('dead', 'dead', 'dead', 'dead', 'dead', 'dead', 'any', 'ghost'), i: fc.nat(20) }), { minLength: 1, maxLength: 3 }) },
      { weight: 1, arbitrary: fc.constant<Pick[]>([]) },
    ),
  }),
  cancel: fc.record({ op: fc.constant('cancel' as const), pick: pickArb }),
  config: fc.constantFrom(...CONFIG_CASES).map(([key, value]) => ({ op: 'config' as const, key, value })),
};

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: opArbs.enqueue },
  { weight: 5, arbitrary: opArbs.claimNext },
  { weight: 1, arbitrary: opArbs.claim },
  { weight: 5, arbitrary: opArbs.report },
  { weight: 2, arbitrary: opArbs.expire },
  { weight: 2, arbitrary: opArbs.release },
  { weight: 2, arbitrary: opArbs.retry },
  { weight: 1, arbitrary: opArbs.cancel },
  { weight: 2, arbitrary: opArbs.config },
);

const stepArbs: fc.Arbitrary<Step>[] = [
  opArbs.enqueue, opArbs.enqueue, opArbs.enqueue,
  opArbs.claimNext, opArbs.claimNext, opArbs.claimNext,
  opArbs.claim,
  opArbs.report, opArbs.report, opArbs.report, opArbs.report,
  opArbs.expire,
  opArbs.release,
  opArbs.retry, opArbs.retry,
  opArbs.cancel,
  opArbs.config, opArbs.config,
  fc.record({ op: fc.constant('advance' as const), ms: fc.oneof(fc.constantFrom(0, 1000, 2000, 4000, 8000, 16000), fc.integer({ min: 0, max: 20000 })) }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 20000 }) }),
  // several commands in flight at once: group commit, and decisions that read staged writes
  fc.record({ op: fc.constant('burst' as const), ops: fc.array(opArb, { minLength: 2, maxLength: 5 }) }),
  fc.record({ op: fc.constant('burst' as const), ops: fc.array(opArb, { minLength: 2, maxLength: 5 }) }),
  // a restart reloads the engine's in-memory runnable queue and config from the projections
  fc.constant({ op: 'restart' as const }),
  fc.constant({ op: 'restart' as const }),
  fc.constant({ op: 'peek' as const }),
];

// ---- planning an op against the model, running it against the engine ------------------------------

type Actual = { ok: true; events: StoredEvent[] } | { ok: false; code: string };

interface Planned {
  label: string;
  /** Events this op appends, as the model sees it. */
  eventCount: number;
  /** Submit the op to the engine now (synchronously, so ops keep their order); returns its check. */
  start(real: Real): () => Promise<void>;
}

const ghost = 'ghost-job';

/** QUEUECTL_PROP_STATS=1 prints how often each kind of step was accepted or refused (coverage). */
const STATS = process.env.QUEUECTL_PROP_STATS ? new Map<string, number>() : null;
const tally = (key: string): void => {
  if (STATS) STATS.set(key, (STATS.get(key) ?? 0) + 1);
};

const resolve = (model: QueueModel, pick: Pick): string => {
  if (pick.from === 'ghost') return ghost;
  const all = model.ids();
  const pool =
    pick.from === 'processing' ? model.inState('processing').map((j) => j.id)
    : pick.from === 'dead' ? model.inState('dead').map((j) => j.id)
    : pick.from === 'waiting' ? model.inState('pending', 'failed').map((j) => j.id)
    : all;
  const list = pool.length > 0 ? pool : all;
  return list.length === 0 ? ghost : list[pick.i % list.length]!;
};

const capture = (p: Promise<StoredEvent[]>): Promise<Actual> =>
  p.then(
    (events) => ({ ok: true as const, events }),
    (err: unknown) => {
      if (isQueuectlError(err)) return { ok: false as const, code: err.code };
      throw err;
    },
  );

const failure = (error: string | null): AttemptResult => ({ durationMs: 7, exitCode: error === null ? 0 : 1, signal: null, timedOut: false, error, output: null });

const toJobSpec = (g: SpecGen, now: number): { spec: JobSpec; model: MSpec } => {
  const maxRetries = g.maxRetries === 'negative' ? -1 : g.maxRetries === 'fraction' ? 1.5 : g.maxRetries;
  const runAt = g.runAt === 'nan' ? Number.NaN : g.runAt === null ? null : now + g.runAt;
  const command = g.command === 'ok' ? `echo ${g.id}` : g.command === 'empty' ? '' : '   ';
  return {
    spec: { id: g.id, command, cwd: '/tmp', priority: g.priority, maxRetries, runAt, timeoutMs: null },
    model: { id: g.id, command, priority: g.priority, maxRetries, runAt },
  };
};

/** Compare an execute() answer with the model's outcome, field by field of what the model names. */
const checkOutcome = (label: string, expected: MOutcome, actual: Actual, now: number, config: { backoff_base: number; backoff_max: number }, cycle: number | null): void => {
  if (!expected.ok) {
    assert.ok(!actual.ok, `${label}: expected refusal ${expected.code}, but it was accepted with ${actual.ok ? JSON.stringify(actual.events.map((e) => e.type)) : ''}`);
    if (!actual.ok) assert.is(actual.code, expected.code, `${label}: refusal code`);
    return;
  }
  assert.ok(actual.ok, `${label}: expected acceptance with ${JSON.stringify(expected.events.map((e) => e.type))}, but it was refused with ${actual.ok ? '' : actual.code}`);
  if (!actual.ok) return;
  assert.equal(actual.events.map((e) => e.type), expected.events.map((e) => e.type), `${label}: event types`);
  actual.events.forEach((e, k) => {
    const want: MEvent = expected.events[k]!;
    const got = e as unknown as Record<string, unknown>;
    for (const [field, value] of Object.entries(want)) assert.equal(got[field], value, `${label}: ${e.type}.${field}`);
    assert.is(e.at, now, `${label}: ${e.type}.at is the engine's clock`);
    assert.is(e.v, EVENT_SCHEMA_VERSION);
    // The retry decision recorded in the fact: failure time + min(base^n, max) seconds.
    if ((e.type === 'JobFailed' || e.type === 'JobLeaseExpired') && e.retryAt !== null) {
      assert.ok(cycle !== null);
      assert.is(e.retryAt, now + Math.round(Math.min(config.backoff_base ** cycle!, config.backoff_max) * 1000), `${label}: retryAt = at + min(base^n, max)*1000 with n=${cycle}`);
      assert.is(e.retry, cycle, `${label}: retry number`);
    }
  });
};

/** Apply an op to the model (in submission order) and prepare its real counterpart. */
const plan = (model: QueueModel, op: Op): Planned => {
  const now = model.now;
  const config = { ...model.config };
  const execute = (label: string, command: Command, expected: MOutcome, cycle: number | null = null): Planned => {
    tally(`${command.type}: ${expected.ok ? expected.events.map((e) => e.type).join('+') : expected.code}`);
    return {
      label,
      eventCount: expected.ok ? expected.events.length : 0,
      start(real) {
        const pending = capture(real.engine.execute(command));
        return async () => checkOutcome(label, expected, await pending, now, config, cycle);
      },
    };
  };

  switch (op.op) {
    case 'enqueue': {
      const specs = op.specs.map((g) => toJobSpec(g, now));
      const expected = model.enqueue(specs.map((s) => s.model));
      return execute(`enqueue ${JSON.stringify(specs.map((s) => s.spec))}`, { type: 'enqueue', jobs: specs.map((s) => s.spec) }, expected);
    }
    case 'claimNext': {
      const worker = WORKERS[op.worker]!;
      const expected: MClaim = model.claimNext(worker);
      tally(`claimNext: ${expected === null ? 'nothing due' : 'claimed'}`);
      const view = expected === null ? null : { ...model.jobs.get(expected.id)! };
      const label = `claimNext(${worker})`;
      return {
        label,
        eventCount: expected === null ? 0 : 1,
        start(real) {
          const pending = real.engine.claimNext(worker);
          return async () => {
            const claim = await pending;
            const got: MClaim = claim === null ? null : { id: claim.job.id, attempt: claim.attempt, leaseUntil: claim.leaseUntil };
            assert.equal(got, expected, `${label}: the claimed job (priority, then due time, then enqueue order; only due jobs)`);
            // the job as the claim left it (not as later commands of the same burst changed it)
            if (claim && view) for (const f of VIEW_FIELDS) assert.equal(claim.job[f], view[f], `${label}: claimed job's ${f}`);
          };
        },
      };
    }
    case 'claim': {
      const id = resolve(model, op.pick);
      const worker = WORKERS[op.worker]!;
      const leaseMs = 10_000;
      return execute(`claim(${id}, ${worker})`, { type: 'claim', jobId: id, workerId: worker, leaseMs }, model.claim(id, worker, leaseMs));
    }
    case 'report': {
      const id = resolve(model, op.pick);
      const job = model.jobs.get(id);
      const worker = op.worker === 'owner' ? (job?.workerId ?? 'w0') : WORKERS[op.worker]!;
      const attempt = (job?.totalAttempts ?? 1) + op.attempt;
      const cycle = job?.attempts ?? null;
      const expected = model.report(id, worker, attempt, op.success);
      const label = `report(${id}, ${worker}, attempt ${attempt}, ${op.success ? 'success' : 'failure'})`;
      const result = failure(op.success ? null : 'exit code 1');
      return execute(label, { type: 'report', jobId: id, workerId: worker, attempt, result }, expected, cycle);
    }
    case 'expire': {
      const id = resolve(model, op.pick);
      const job = model.jobs.get(id);
      const attempt = (job?.totalAttempts ?? 1) + op.attempt;
      const cycle = job?.attempts ?? null;
      return execute(`expireLease(${id}, attempt ${attempt})`, { type: 'expireLease', jobId: id, attempt, reason: 'worker lost' }, model.expireLease(id, attempt), cycle);
    }
    case 'release': {
      const id = resolve(model, op.pick);
      const job = model.jobs.get(id);
      const worker = op.worker === 'owner' ? (job?.workerId ?? 'w0') : WORKERS[op.worker]!;
      const attempt = (job?.totalAttempts ?? 1) + op.attempt;
      const reason = 'forced stop (second SIGINT)';
      const label = `release(${id}, ${worker}, attempt ${attempt})`;
      return execute(label, { type: 'release', jobId: id, workerId: worker, attempt, reason, durationMs: 5, output: null }, model.release(id, worker, attempt, reason));
    }
    case 'retry': {
      // distinct ids here: naming one job twice has its own test below (it is a known disagreement)
      const ids = [...new Set(op.picks.map((p) => resolve(model, p)))];
      return execute(`dlq retry ${JSON.stringify(ids)}`, { type: 'retry', jobIds: ids }, model.retry(ids));
    }
    case 'cancel': {
      const id = resolve(model, op.pick);
      return execute(`cancel(${id})`, { type: 'cancel', jobId: id }, model.cancel(id));
    }
    case 'config':
      return execute(`config set ${JSON.stringify(op.key)} ${String(op.value)}`, { type: 'configSet', key: op.key, value: op.value }, model.configSet(op.key, op.value));
  }
};

/** Run ops concurrently (submitted in order, as the engine serialises them) and check each answer. */
const runOps = async (model: QueueModel, real: Real, ops: readonly Op[]): Promise<void> => {
  const head = await real.engine.store.head();
  const planned = ops.map((op) => plan(model, op));
  // Every op's answer (all awaited, so nothing is left running), the first disagreement reported.
  // PostgreSQL runs a host's concurrent commands as concurrently as other machines' (their
  // order is the commit order, not the order they were sent in, which the model assumes): there
  // a burst is sent one command at a time; pg-store-concurrency.test.ts races them instead.
  const settled: PromiseSettledResult<void>[] = [];
  if (real.kind === 'postgres') {
    for (const p of planned) settled.push(...(await Promise.allSettled([p.start(real)()])));
  } else {
    const checks = planned.map((p) => p.start(real));
    settled.push(...(await Promise.allSettled(checks.map((check) => check()))));
  }
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  const expectedEvents = planned.reduce((n, p) => n + p.eventCount, 0);
  const moved = (await real.engine.store.head()) - head;
  assert.is(moved, expectedEvents, `log head moved by ${moved}, expected ${expectedEvents} (refused commands append nothing) after ${planned.map((p) => p.label).join('; ')}`);
  // Positions are contiguous and in submission order.
  const appended: StoredEvent[] = [];
  for await (const e of real.engine.store.readEvents(head + 1)) appended.push(e);
  assert.equal(appended.map((e) => e.pos), Array.from({ length: expectedEvents }, (_, k) => head + 1 + k), 'positions are contiguous');
};

const VIEW_FIELDS = ['state', 'priority', 'maxRetries', 'attempts', 'totalAttempts', 'nextRunAt', 'workerId', 'leaseUntil'] as const;

/** After every step: the engine's views agree with the model. */
const checkAll = async (model: QueueModel, real: Real, after: string): Promise<void> => {
  const engine = real.engine;
  for (const mj of model.jobs.values()) {
    const job = await engine.getJob(mj.id);
    assert.ok(job, `after ${after}: job ${mj.id} exists`);
    for (const f of VIEW_FIELDS) assert.equal(job![f], mj[f], `after ${after}: job ${mj.id} ${f}`);
    // attempts never exceed 1 + max_retries (the job's own, else the largest ever configured)
    assert.ok(job!.attempts <= 1 + (job!.maxRetries ?? model.maxConfiguredRetries), `after ${after}: job ${mj.id} ran ${job!.attempts} times in this cycle`);
  }
  const listed = await engine.listJobs({ limit: 1_000_000 });
  assert.equal(listed.map((j) => j.id).sort(), model.ids().sort(), `after ${after}: the set of jobs`);
  const counts = await engine.counts();
  for (const s of M_STATES) assert.is(counts.jobs[s], model.counts()[s], `after ${after}: count of ${s} jobs`);
  assert.equal((await engine.dlq()).map((d) => d.id), model.dlq(), `after ${after}: the DLQ, in order of death`);
  const config = await engine.getConfig();
  assert.equal({ ...config }, { ...model.config }, `after ${after}: config`);
};

class StepCommand implements fc.AsyncCommand<QueueModel, Real> {
  constructor(readonly step: Step) {}
  check(): boolean {
    return true;
  }
  async run(model: QueueModel, real: Real): Promise<void> {
    const s = this.step;
    switch (s.op) {
      case 'advance':
        model.advance(s.ms);
        real.t += s.ms;
        break;
      case 'restart':
        await real.restart();
        break;
      case 'peek':
        assert.is(await real.engine.nextDueAt(), model.nextDueAt(), 'nextDueAt: the earliest due time of a waiting job');
        break;
      case 'burst':
        tally(`burst of ${s.ops.length}${s.ops.some((o) => o.op === 'claimNext') ? ' with a claim' : ''}`);
        await runOps(model, real, s.ops);
        break;
      default:
        await runOps(model, real, [s]);
    }
    await checkAll(model, real, this.toString());
  }
  toString(): string {
    return JSON.stringify(this.step);
  }
}

// ---- the replay law ---------------------------------------------------------------------------

const checkReplayLaw = async (real: Real): Promise<void> => {
  const engine = real.engine;
  const { differences } = await engine.verify(50);
  assert.equal(differences, [], 'projections maintained incrementally equal those rebuilt from the log (verify)');
  const incremental = await real.backend.projections();
  const events = await engine.rebuild();
  assert.is(events, (await engine.store.head()) + 1);
  const rebuilt = await real.backend.projections();
  for (const p of PROJECTIONS) assert.equal(incremental[p.name], rebuilt[p.name], `projection ${p.name}: incremental vs rebuilt, key for key`);
  // Each job's stream (through the per-job index) is exactly its events in the log.
  const byJob = new Map<string, number[]>();
  for await (const e of engine.store.readEvents()) if ('jobId' in e) byJob.set(e.jobId, [...(byJob.get(e.jobId) ?? []), e.pos]);
  for (const [id, positions] of byJob) assert.equal((await engine.history(id)).map((e) => e.pos), positions, `history(${id})`);
};

// ---- the property -------------------------------------------------------------------------------

const property = (kind: Kind) =>
  fc.asyncProperty(fc.commands(stepArbs.map((a) => a.map((s) => new StepCommand(s))), { maxCommands: 60, size: 'max', replayPath: REPLAY_PATH }), async (cmds) => {
    const real = await Real.open(kind);
    try {
      await fc.asyncModelRun(() => ({ model: new QueueModel(T0), real }), cmds);
      await checkReplayLaw(real);
    } finally {
      await real.dispose();
    }
  });

/** QUEUECTL_PROP_KIND=memory|classic|postgres runs one of the two properties (a replay names the one that failed). */
const ONLY = process.env.QUEUECTL_PROP_KIND || undefined;

const runProperty = async (kind: Kind, runs: number): Promise<void> => {
  if (ONLY !== undefined && ONLY !== kind) return;
  // A replay path starts with the index of the failing run: make sure the run count reaches it.
  const numRuns = PATH ? Math.max(runs, Number(PATH.split(':')[0]) + 1) : runs;
  const out = await fc.check(property(kind), { numRuns, seed: SEED, path: PATH });
  if (out.failed) {
    const err = out.errorInstance;
    const detail = (e: unknown): string => {
      const a = e as { actual?: unknown; expects?: unknown };
      return 'expects' in (a as object) ? `\n  expected: ${fc.stringify(a.expects)}\n  actual:   ${fc.stringify(a.actual)}` : '';
    };
    const cause = err instanceof Error ? `${err.stack ?? err.message}${detail(err)}` : String(err);
    const report = `${fc.defaultReportMessage(out) ?? 'property failed'}\n\nGot error: ${cause}`;
    // fc.commands needs its own replay path (which commands ran) besides the seed and path.
    const replayPath = /replayPath="([^"]*)"/.exec(fc.stringify(out.counterexample))?.[1];
    const replay =
      `replay: QUEUECTL_PROP_KIND=${kind} QUEUECTL_PROP_SEED=${out.seed} QUEUECTL_PROP_PATH=${out.counterexamplePath ?? ''}` +
      `${replayPath === undefined ? '' : ` QUEUECTL_PROP_REPLAY_PATH='${replayPath}'`} node --import tsx node_modules/uvu/bin.js test props --no-color`;
    console.error(`\n[props ${kind}] ${replay}\n`); // also printed by uvu with the failure below
    throw new Error(`model-based property over ${kind}-level failed (seed ${out.seed}, path ${out.counterexamplePath})\n${replay}\n\n${report}`);
  }
};

test(`engine over memory-level agrees with the model (${RUNS} runs)`, async () => {
  await runProperty('memory', RUNS);
});

test(`engine over classic-level agrees with the model (${CLASSIC_RUNS} runs)`, async () => {
  await runProperty('classic', CLASSIC_RUNS);
});

test(`engine over PostgreSQL agrees with the model (${POSTGRES_RUNS} runs)`, async () => {
  try {
    await postgres();
  } catch (e) {
    if (process.env.CI === 'true') throw e;
    console.log(`\n  props: PostgreSQL run skipped, no PostgreSQL (${(e as Error).message}); set QUEUECTL_TEST_DATABASE_URL`);
    return;
  }
  await runProperty('postgres', POSTGRES_RUNS);
});

// ---- plain unit tests of the pure domain ------------------------------------------------------

test('backoff: base 2 waits 2 s, 4 s, 8 s; capped by backoff_max', () => {
  const cfg = { backoff_base: 2, backoff_max: 3600 };
  assert.equal([1, 2, 3].map((n) => backoffMs(n, cfg)), [2000, 4000, 8000]);
  assert.equal([1, 2, 3, 4].map((n) => backoffMs(n, { backoff_base: 2, backoff_max: 5 })), [2000, 4000, 5000, 5000]);
  assert.equal([1, 2, 3].map((n) => backoffMs(n, { backoff_base: 1.5, backoff_max: 3600 })), [1500, 2250, 3375]);
  assert.is(backoffMs(3, { backoff_base: 10, backoff_max: 0 }), 0);
  for (const n of [1, 2, 3, 7]) assert.is(backoffMs(n, cfg), modelBackoffMs(n, cfg));
});

/** A tiny pure driver: decide, then fold the events into the job with the projection's evolve. */
const pureDriver = () => {
  let pos = -1;
  let job: JobView | undefined;
  const config = { ...DEFAULT_CONFIG };
  const run = (command: Command, now: number): StoredEvent[] => {
    const data: EventData[] = decide(command, { jobs: new Map([[ 'a', job ]]), config }, now);
    const events = data.map((d) => ({ ...d, pos: ++pos, at: now, v: EVENT_SCHEMA_VERSION }) as StoredEvent);
    for (const e of events) job = evolveJob(job, e);
    return events;
  };
  return { run, job: () => job!, config };
};

const specA = (maxRetries: number | null): JobSpec => ({ id: 'a', command: 'false', cwd: '/', priority: 0, maxRetries, runAt: null, timeoutMs: null });

test('a job with max_retries 3 runs exactly 4 times, then is dead with JobDeadLettered', () => {
  const d = pureDriver();
  let now = 1000;
  d.run({ type: 'enqueue', jobs: [specA(3)] }, now);
  const waits: number[] = [];
  let runs = 0;
  let last: StoredEvent[] = [];
  while (d.job().state !== 'dead') {
    assert.ok(runs < 10, 'the job never died');
    now = d.job().nextRunAt!;
    const [claimed] = d.run({ type: 'claim', jobId: 'a', workerId: 'w', leaseMs: 1000 }, now);
    assert.is(claimed?.type, 'JobClaimed');
    runs += 1;
    last = d.run({ type: 'report', jobId: 'a', workerId: 'w', attempt: d.job().totalAttempts, result: failure('exit code 1') }, now + 5);
    if (last[0]?.type === 'JobFailed' && last[0].retryAt !== null) waits.push(last[0].retryAt - (now + 5));
  }
  assert.is(runs, 4);
  assert.equal(waits, [2000, 4000, 8000]);
  assert.equal(last.map((e) => e.type), ['JobFailed', 'JobDeadLettered']);
  assert.is(d.job().attempts, 4);
  assert.throws(() => d.run({ type: 'claim', jobId: 'a', workerId: 'w', leaseMs: 1000 }, now + 1e9), (e: unknown) => isQueuectlError(e) && e.code === 'QUEUECTL_NOT_RUNNABLE');
  // a DLQ retry starts a new cycle
  d.run({ type: 'retry', jobIds: ['a'] }, now + 100);
  assert.is(d.job().state, 'pending');
  assert.is(d.job().attempts, 0);
  assert.is(d.job().nextRunAt, now + 100);
});

test('fencing: a late report from a lost worker is refused with QUEUECTL_STALE_ATTEMPT', () => {
  const d = pureDriver();
  d.run({ type: 'enqueue', jobs: [specA(null)] }, 0);
  d.run({ type: 'claim', jobId: 'a', workerId: 'w1', leaseMs: 1000 }, 0);
  d.run({ type: 'expireLease', jobId: 'a', attempt: 1, reason: 'worker lost' }, 1000);
  d.run({ type: 'claim', jobId: 'a', workerId: 'w2', leaseMs: 1000 }, 5000);
  const stale = (command: Command) =>
    assert.throws(() => d.run(command, 5001), (e: unknown) => isQueuectlError(e) && e.code === 'QUEUECTL_STALE_ATTEMPT');
  stale({ type: 'report', jobId: 'a', workerId: 'w1', attempt: 1, result: failure(null) }); // the lost worker, old attempt
  stale({ type: 'report', jobId: 'a', workerId: 'w1', attempt: 2, result: failure(null) }); // right attempt, wrong worker
  stale({ type: 'expireLease', jobId: 'a', attempt: 1, reason: 'late' });
  const [ok] = d.run({ type: 'report', jobId: 'a', workerId: 'w2', attempt: 2, result: failure(null) }, 5002);
  assert.is(ok?.type, 'JobSucceeded');
  stale({ type: 'report', jobId: 'a', workerId: 'w2', attempt: 2, result: failure(null) }); // never applied twice
});

test('a forced stop releases the run without using a retry (max_retries 0); the released attempt stays fenced', () => {
  const d = pureDriver();
  d.run({ type: 'enqueue', jobs: [specA(0)] }, 0);
  const release = (attempt: number, now: number) =>
    d.run({ type: 'release', jobId: 'a', workerId: 'w', attempt, reason: 'forced stop (second SIGINT)', durationMs: 3, output: null }, now);
  for (const attempt of [1, 2]) {
    d.run({ type: 'claim', jobId: 'a', workerId: 'w', leaseMs: 1000 }, attempt * 10);
    assert.equal(release(attempt, attempt * 10 + 1).map((e) => e.type), ['JobReleased']);
    assert.equal({ state: d.job().state, attempts: d.job().attempts, totalAttempts: d.job().totalAttempts, nextRunAt: d.job().nextRunAt }, { state: 'pending', attempts: 0, totalAttempts: attempt, nextRunAt: attempt * 10 + 1 });
  }
  const stale = (command: Command) => assert.throws(() => d.run(command, 50), (e: unknown) => isQueuectlError(e) && e.code === 'QUEUECTL_STALE_ATTEMPT');
  stale({ type: 'report', jobId: 'a', workerId: 'w', attempt: 2, result: failure(null) }); // the released attempt reports late
  const [claimed] = d.run({ type: 'claim', jobId: 'a', workerId: 'w2', leaseMs: 1000 }, 60);
  assert.is(claimed?.type === 'JobClaimed' && claimed.attempt, 3, 'the next claim is attempt 3');
  stale({ type: 'report', jobId: 'a', workerId: 'w', attempt: 2, result: failure(null) });
  stale({ type: 'release', jobId: 'a', workerId: 'w', attempt: 3, reason: 'x', durationMs: 0, output: null }); // not its worker
  // the one counted run fails: dead, as max_retries 0 says
  const last = d.run({ type: 'report', jobId: 'a', workerId: 'w2', attempt: 3, result: failure('exit code 1') }, 70);
  assert.equal(last.map((e) => e.type), ['JobFailed', 'JobDeadLettered']);
  assert.is(d.job().attempts, 1);
});

test('dlq retry naming the same dead job twice retries it once (one JobRetried)', () => {
  const d = pureDriver();
  d.run({ type: 'enqueue', jobs: [specA(0)] }, 0);
  d.run({ type: 'claim', jobId: 'a', workerId: 'w', leaseMs: 1000 }, 0);
  d.run({ type: 'report', jobId: 'a', workerId: 'w', attempt: 1, result: failure('boom') }, 1);
  assert.is(d.job().state, 'dead');
  const events = d.run({ type: 'retry', jobIds: ['a', 'a'] }, 2);
  assert.equal(events.map((e) => e.type), ['JobRetried'], 'one retry is one fact in the history');
});

test('the first claim while batches are still being written sees every staged job (classic-level)', async () => {
  const backend = await HARNESSES.classic.create(() => T0);
  const engine = new Engine(backend.store);
  try {
    const n = 10;
    const enqueues = Array.from({ length: n }, (_, i) => engine.execute({ type: 'enqueue', jobs: [{ ...specA(null), id: `g${i}` }] }));
    const claims = Array.from({ length: n }, () => engine.claimNext('w'));
    await Promise.all(enqueues);
    const claimed = (await Promise.all(claims)).map((c) => c?.job.id ?? null);
    assert.equal(claimed, Array.from({ length: n }, (_, i) => `g${i}`), 'each claim takes the next job in enqueue order');
  } finally {
    await backend.dispose();
  }
});

test.after(async () => {
  await (await server?.catch(() => null))?.close();
  if (STATS) console.log([...STATS].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${String(n).padStart(7)}  ${k}`).join('\n'));
  removeBackendDirs();
});

test.run();
