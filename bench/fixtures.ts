// Large data directories, built fast: in this process, with queuectl's own Engine and LogStore
// (the same events, projections and records as a real run) but `sync: false`. Jobs are
// enqueued in commands of 10,000; their JobClaimed and JobSucceeded events are then appended
// through the store thousands at a time. A fixture is cached by size for the rest
// of the run (or across runs with --cache <dir>); benchmarks that change a data directory work
// on a copy. `--verify-fixtures` checks each with `queuectl projections verify`.
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { AttemptResult } from '../src/domain/decide.ts';
import type { JobSpec } from '../src/domain/job-spec.ts';
import { Engine } from '../src/engine/engine.ts';
import { LevelStore } from '../src/store/leveldb/level-store.ts';
import type { EventData } from '../src/events.ts';
import { type Context, cliOk, fmtInt, fmtMs, now, removeDir } from './lib.ts';

/** Events per completed job: JobEnqueued, JobClaimed, JobSucceeded. */
export const EVENTS_PER_JOB = 3;
const FIXTURE_VERSION = 2; // bump when fixtures change shape, so a kept --cache is rebuilt

export const fixtureJobId = (i: number): string => `job-${String(i).padStart(8, '0')}`;

export const spec = (id: string, command: string, extra: Partial<JobSpec> = {}): JobSpec => ({
  id,
  command,
  cwd: '/tmp',
  priority: 0,
  maxRetries: null,
  runAt: null,
  timeoutMs: null,
  ...extra,
});

/** What a worker reports for `true`: exit 0, no output. */
export const SUCCESS: AttemptResult = {
  durationMs: 2,
  exitCode: 0,
  signal: null,
  timedOut: false,
  error: null,
  output: { stdout: { bytes: 0, kept: 0, truncated: false }, stderr: { bytes: 0, kept: 0, truncated: false } },
};

/** A new data directory laid out as queuectl lays it out (`<home>/db`, home 0700), and its engine. */
const openEngine = async (home: string): Promise<Engine> => {
  removeDir(home);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const db = new ClassicLevel<string, unknown>(join(home, 'db'));
  await db.open();
  return new Engine(await LevelStore.open(db as never, { sync: false }));
};

const BATCH = 10_000;

/** Enqueue `n` jobs in commands of BATCH jobs each. */
const enqueueMany = async (engine: Engine, n: number, make: (i: number) => JobSpec): Promise<void> => {
  for (let i = 0; i < n; i += BATCH) {
    const jobs: JobSpec[] = [];
    for (let j = i; j < Math.min(n, i + BATCH); j++) jobs.push(make(j));
    await engine.execute({ type: 'enqueue', jobs });
  }
};

/**
 * Claim and succeed jobs 0..n-1 by one worker: JobClaimed and JobSucceeded events, exactly as
 * decide() makes them for a worker running `true`, appended through the LogStore (which folds
 * every projection and writes log, stream index, projections and checkpoint in its own format)
 * in chunks of many jobs. One engine command per event would cost ~1 ms each here.
 */
const completeAll = async (engine: Engine, n: number, id: (i: number) => string): Promise<void> => {
  const workerId = 'bench-fixture-worker';
  await engine.execute({ type: 'workerStart', workerId, pid: process.pid, slots: 4 });
  const leaseMs = (await engine.getConfig()).lease_seconds * 1000;
  const CHUNK = 5_000;
  for (let i = 0; i < n; i += CHUNK) {
    const at = engine.clock();
    const data: EventData[] = [];
    for (let j = i; j < Math.min(n, i + CHUNK); j++) {
      const jobId = id(j);
      data.push({ type: 'JobClaimed', jobId, workerId, attempt: 1, leaseUntil: at + leaseMs });
      data.push({ type: 'JobSucceeded', jobId, workerId, attempt: 1, durationMs: SUCCESS.durationMs, output: SUCCESS.output });
    }
    // One chunk at a time: staging the next while this one is written would overlap them
    // (group commit), which is also faster, but see the notes on the store's overlay.
    await (engine.store as LevelStore).log.append(data, at); // fixtures are LevelDB data directories
  }
  await engine.execute({ type: 'workerStop', workerId, reason: 'stopped' });
};

export interface EventsFixture {
  home: string;
  jobs: number;
  events: number;
  /** A job in the middle of the log, for `show` and `history`. */
  sampleId: string;
}

const built = new Map<string, EventsFixture>();

/** Check a fixture with `queuectl projections verify` (slow: a full replay). */
const verify = async (ctx: Context, home: string): Promise<void> => {
  const t = now();
  await cliOk(home, ['projections', 'verify']);
  ctx.log(`fixture verified by \`queuectl projections verify\` in ${fmtMs(now() - t)}`);
};

/**
 * A data directory holding about `events` events: ceil(events / 3) jobs of `true`, each
 * enqueued (in commands of 10,000), claimed and succeeded by one worker (plus its
 * WorkerStarted and WorkerStopped). Do not change it: copy it with copyFixture() first.
 */
export const eventsFixture = async (ctx: Context, events: number): Promise<EventsFixture> => {
  const key = `events-${events}-v${FIXTURE_VERSION}`;
  const cached = built.get(key);
  if (cached) return cached;
  const home = join(ctx.cache, key);
  const marker = join(ctx.cache, `${key}.json`);
  let fixture: EventsFixture;
  if (existsSync(marker) && existsSync(home)) {
    fixture = JSON.parse(readFileSync(marker, 'utf8')) as EventsFixture;
    ctx.log(`fixture ${key}: reusing ${home}`);
  } else {
    const jobs = Math.max(1, Math.ceil((events - 2) / EVENTS_PER_JOB));
    const t = now();
    ctx.log(`fixture ${key}: building ${fmtInt(jobs)} completed jobs with the Engine, sync: false`);
    const engine = await openEngine(home);
    await enqueueMany(engine, jobs, (i) => spec(fixtureJobId(i), 'true'));
    await completeAll(engine, jobs, fixtureJobId);
    fixture = { home, jobs, events: (await engine.store.head()) + 1, sampleId: fixtureJobId(Math.floor(jobs / 2)) };
    await engine.close();
    ctx.log(`fixture ${key}: ${fmtInt(fixture.events)} events in ${fmtMs(now() - t)}`);
    if (ctx.flags['verify-fixtures']) await verify(ctx, home);
    writeFileSync(marker, JSON.stringify(fixture));
  }
  built.set(key, fixture);
  return fixture;
};

/** A private copy of a fixture's data directory, for a benchmark that changes it. */
export const copyFixture = (fixture: EventsFixture, to: string): EventsFixture => {
  removeDir(to);
  cpSync(fixture.home, to, { recursive: true });
  return { ...fixture, home: to };
};

/**
 * A new data directory with `first` pending jobs of `command` at the front of the queue and
 * `backlog` more behind them (same priority, enqueued later).
 */
export const pendingFixture = async (ctx: Context, home: string, first: number, backlog: number, command = 'true'): Promise<void> => {
  const engine = await openEngine(home);
  await enqueueMany(engine, first, (i) => spec(`first-${String(i).padStart(8, '0')}`, command));
  await enqueueMany(engine, backlog, (i) => spec(`backlog-${String(i).padStart(8, '0')}`, command));
  await engine.close();
  if (ctx.flags['verify-fixtures']) await verify(ctx, home);
};
