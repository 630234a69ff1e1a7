// The victim of test/crash.test.ts: opens the Engine over classic-level in <dir> and appends
// until it is killed with SIGKILL.
//
//   node --import tsx test/helpers/crash-child.ts <dir> <tag> [append|rebuild]
//
// stdout protocol (one line each, written only once the command is durable, i.e. after
// `execute` resolved; writes to a pipe are synchronous on Linux, so a line the parent read
// was acknowledged before the kill):
//   open <committed>              the engine is open
//   ack <jobId>                   the enqueue of <jobId> is durable
//   claim <jobId> <attempt>       the claim is durable
//   done <jobId> <attempt> ok|fail  the report is durable
//   rebuilding                    (rebuild mode) a full rebuild of the projections starts now
//   rebuilt <events>              (rebuild mode) it finished
//
// Importing this file does nothing (uvu imports every file under test/).
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import type { JobSpec } from '../../src/domain/job-spec.ts';
import { openLevelEngine } from './backends.ts';
import type { AnyLevel } from '../../src/store/leveldb/keys.ts';

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

const spec = (id: string, priority: number): JobSpec => ({ id, command: `echo ${id}`, cwd: '/', priority, maxRetries: 2, runAt: null, timeoutMs: null });

const run = async (dir: string, tag: string, mode: string): Promise<void> => {
  const engine = await openLevelEngine(new ClassicLevel<string, unknown>(dir) as unknown as AnyLevel);
  say(`open ${await engine.store.head()}`);
  const worker = `w-${tag}`;
  let n = 0;
  const nextId = (): string => `${tag}-${n++}`;

  const enqueue = async (count: number): Promise<void> => {
    const ids = Array.from({ length: count }, nextId);
    await engine.execute({ type: 'enqueue', jobs: ids.map((id) => spec(id, Math.floor(Math.random() * 3) - 1)) });
    for (const id of ids) say(`ack ${id}`);
  };

  const claimAndReport = async (): Promise<void> => {
    const claim = await engine.claimNext(worker, 60_000);
    if (!claim) return;
    say(`claim ${claim.job.id} ${claim.attempt}`);
    const ok = Math.random() < 0.6;
    await engine.execute({
      type: 'report',
      jobId: claim.job.id,
      workerId: worker,
      attempt: claim.attempt,
      result: { durationMs: 1, exitCode: ok ? 0 : 1, signal: null, timedOut: false, error: ok ? null : 'exit code 1', output: null },
    });
    say(`done ${claim.job.id} ${claim.attempt} ${ok ? 'ok' : 'fail'}`);
  };

  if (mode === 'rebuild') {
    // Enough data that a rebuild takes a while (clearing the projections alone takes ~15-40 ms).
    while ((await engine.store.head()) < 2000) await Promise.all(Array.from({ length: 100 }, () => enqueue(1)));
  }

  for (let round = 0; ; round++) {
    // Several commands in flight at once, so group commit puts several in one batch.
    const inFlight: Promise<void>[] = [];
    const width = 1 + Math.floor(Math.random() * 8);
    for (let i = 0; i < width; i++) {
      inFlight.push(enqueue(Math.random() < 0.25 ? 2 + Math.floor(Math.random() * 3) : 1));
      if (Math.random() < 0.4) inFlight.push(claimAndReport());
    }
    await Promise.all(inFlight);
    if (mode === 'rebuild') {
      say('rebuilding');
      const events = await engine.rebuild();
      say(`rebuilt ${events}`);
    }
  }
};

const isMain = (): boolean => {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
};

if (isMain()) {
  const [dir, tag = 't', mode = 'append'] = process.argv.slice(2);
  if (!dir) {
    process.stderr.write('usage: crash-child.ts <dir> <tag> [append|rebuild]\n');
    process.exit(2);
  }
  run(dir, tag, mode).catch((err: unknown) => {
    process.stderr.write(`crash-child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
