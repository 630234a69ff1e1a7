// Peers: the same N `true` jobs with 4 slots, end to end (from the first add until every job
// has completed), through queuectl (one bulk `enqueue --file`, then `worker start --count 4`),
// task-spooler (`tsp -S 4`, N separate `tsp true`) and nq (4 queue directories round-robin,
// N separate `nq true`, then `nq -w` on each). The peers' adds run in a shell loop, as a user
// would type them. Only queuectl fsyncs and keeps history.
// A peer that is not installed is reported as such, not run.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Bench, cliOk, type Context, fmtInt, fmtMs, fmtRate, fmtRatio, freshHome, now, removeDir, type Result, run, which, writeJobsFile,
} from './lib.ts';
import { drain } from './throughput.ts';

/** queuectl: bulk enqueue, then `worker start --count 4 --drain`; done at the last completion. */
const queuectl = async (ctx: Context, n: number): Promise<{ ms: number; exitMs: number }> => {
  const home = freshHome(ctx.tmp, `peers-queuectl-${n}`);
  const file = join(ctx.tmp, `peers-${n}.ndjson`);
  writeJobsFile(file, n, () => ({ command: 'true' }));
  const t0 = Date.now();
  const start = now();
  await cliOk(home, ['enqueue', '--file', file]);
  const d = await drain(ctx, home, n);
  const exitMs = now() - start;
  removeDir(home);
  return { ms: d.startedAt + d.toLastMs - t0, exitMs: d.exitMs === null ? Number.NaN : exitMs };
};

/** Run a shell script (as a user's loop would add jobs: from a small shell, not from this big process); ms. */
const shell = async (script: string, env: Record<string, string>): Promise<number> => {
  const r = await run('/bin/sh', ['-c', script], { env, timeoutMs: 1_800_000 });
  if (r.code !== 0) throw new Error(`${script.split('\n')[0]} ... exited ${r.code ?? r.signal}: ${r.stderr.trim().slice(0, 300)}`);
  return r.ms;
};

/** task-spooler with 4 slots, its own server (socket) and output directory; until no job is queued or running. */
const tsp = async (ctx: Context, bin: string, n: number): Promise<number> => {
  const dir = join(ctx.tmp, `tsp-${n}`);
  mkdirSync(dir, { recursive: true });
  const env = { TS: bin, N: String(n), TS_SOCKET: join(dir, 'socket'), TMPDIR: dir, TS_MAXFINISHED: String(n + 10), TS_SLOTS: '4' };
  try {
    return await shell(
      `"$TS" -S 4 >/dev/null
i=0; while [ $i -lt $N ]; do "$TS" true >/dev/null; i=$((i+1)); done
"$TS" -w >/dev/null 2>&1 || true
while "$TS" -l | grep -qE 'running|queued|allocating'; do sleep 0.005; done`,
      env,
    );
  } finally {
    await run(bin, ['-K'], { env });
  }
};

/** nq: 4 queue directories (one per slot), jobs added round-robin, then `nq -w` on all four. */
const nq = async (ctx: Context, bin: string, n: number): Promise<number> => {
  const dir = join(ctx.tmp, `nq-${n}`);
  for (let i = 0; i < 4; i++) mkdirSync(join(dir, `q${i}`), { recursive: true });
  return shell(
    `i=0; while [ $i -lt $N ]; do NQDIR="$D/q$((i % 4))" "$NQ" -q true; i=$((i+1)); done
for q in 0 1 2 3; do NQDIR="$D/q$q" "$NQ" -w & done; wait`,
    { NQ: bin, N: String(n), D: dir },
  );
};

const peers = async (ctx: Context): Promise<Result[]> => {
  const counts =
    typeof ctx.flags['peer-jobs'] === 'string' ? ctx.flags['peer-jobs'].split(',').map(Number) : ctx.quick ? [50] : [500, 5_000];
  const installed = { tsp: which('tsp'), nq: which('nq') };
  const results: Result[] = [];
  for (const n of counts) {
    ctx.log(`peers: queuectl, ${fmtInt(n)} jobs`);
    const q = await queuectl(ctx, n);
    const qRate = (n * 1000) / q.ms;
    for (const [name, bin, runPeer, how] of [
      ['task-spooler', installed.tsp, tsp, '`tsp -S 4`, one `tsp true` per job'],
      ['nq', installed.nq, nq, '4 NQDIRs round-robin, one `nq true` per job'],
    ] as const) {
      const metric = `${fmtInt(n)} \`true\` jobs, 4 slots, end to end: queuectl (enqueue --file + worker start --count 4: ${fmtMs(q.ms)}, exit ${fmtMs(q.exitMs)}) vs ${name} (${how})`;
      if (!bin) {
        results.push({ row: 'P', metric, queuectl: fmtRate(qRate, 'jobs'), limit: '—', ratio: '—', target: `>= 1 (beats ${name})`, holds: null, skipped: `${name} not installed` });
        continue;
      }
      ctx.log(`peers: ${name}, ${fmtInt(n)} jobs`);
      const ms = await runPeer(ctx, bin, n);
      const rate = (n * 1000) / ms;
      const ratio = qRate / rate;
      results.push({
        row: 'P',
        metric: metric.replace(`vs ${name} (`, `vs ${name} (${fmtMs(ms)}, `),
        queuectl: fmtRate(qRate, 'jobs'),
        limit: `${fmtRate(rate, 'jobs')} (${name})`,
        ratio: fmtRatio(ratio),
        target: `>= 1 (beats ${name})`,
        holds: ratio >= 1,
        data: { peer: name, jobs: n, queuectlMs: q.ms, queuectlExitMs: q.exitMs, peerMs: ms, ratio },
      });
    }
  }
  return results;
};

export const benches: Bench[] = [{ rows: ['P'], title: 'peers', run: peers }];
