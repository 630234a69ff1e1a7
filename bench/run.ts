// npm run bench [-- --quick] [-- --only 1,3,peers] [-- --json results.json] [-- --cache DIR]
//
// Runs the benchmarks of issue 5 (rows 1-10) and of issue 10 (rows 11-, over PostgreSQL) and
// prints ONE table: each figure of queuectl next to the physical limit measured in the same run
// on the same machine, their ratio, the target, and whether it holds. Progress goes to stderr,
// the table to stdout. Benchmarks are not tests: a missed target does not change the exit code;
// a benchmark that fails to run does (1).
import { writeFileSync } from 'node:fs';
import { cpus, platform, arch, totalmem } from 'node:os';
import { benches as cliLatency } from './cli-latency.ts';
import { benches as disk } from './disk.ts';
import { benches as enqueue } from './enqueue.ts';
import { benches as latency } from './latency.ts';
import { type Bench, type Context, ensureBuilt, fmtMs, killChildren, makeTmp, now, removeDir, type Result } from './lib.ts';
import { benches as memory } from './memory.ts';
import { benches as peers } from './peers.ts';
import { benches as pgCliLatency } from './pg-cli-latency.ts';
import { benches as pgMulti } from './pg-multi.ts';
import { benches as pgQueue } from './pg-queue.ts';
import { benches as replay } from './replay.ts';
import { benches as throughput } from './throughput.ts';

/** In the order they run; each lists the rows it measures. */
const BENCHES: Bench[] = [...enqueue, ...throughput, ...disk, ...latency, ...cliLatency, ...replay, ...memory, ...pgQueue, ...pgMulti, ...pgCliLatency, ...peers];

const USAGE = `usage: npm run bench -- [options]

  --quick              every benchmark at a small size (CI; well under a minute)
  --only <rows>        run only these rows of the table, e.g. --only 1,3,6 or --only peers
  --json <file>        also write every result, with its raw numbers, to <file>
  --cache <dir>        keep the large fixtures (data directories) in <dir> and reuse them
  --verify-fixtures    check each fixture with \`queuectl projections verify\` (slow)

  sizes (defaults: full / quick):
  --enqueue-jobs <n>   row 1: jobs in the file (100000 / 2000)
  --clients-ms <ms>    row 2: how long the 32 clients enqueue (5000 / 1500)
  --jobs <n>           rows 3, 10: jobs through worker start --count 4 (5000 / 100)
  --latency-jobs <n>   row 4: jobs timed one at a time (500 / 30)
  --events <n>         rows 5-7: events in the big data directory (1000000 / 30000)
  --cli-reps <n>       rows 6-7, 14: runs of each command (10 / 1)
  --backlog <n>        row 8: pending jobs behind the measured ones (100000 / 2000)
  --backlog-jobs <n>   row 8: jobs timed (3000 / 100)
  --worker-jobs <n>    row 9: jobs the worker completes (10000 / 100; the issue's 1000000 takes ~40 min)
  --file-jobs <n>      row 9: jobs in the enqueue --file whose RSS is measured (1000000 / 5000)
  --peer-jobs <list>   peers: job counts (500,5000 / 50)
  --pg-jobs <n>        row 11: no-op jobs through queuectl and graphile-worker on PostgreSQL (20000 / 500)
  --pg-true-jobs <n>   row 12: true jobs through three hosts on PostgreSQL and one on LevelDB (5000 / 100)
  --pg-latency-jobs <n> row 13: jobs timed one at a time over PostgreSQL (200 / 10)
  --pg-events <n>      row 14: events in the big PostgreSQL queue (1000000 / 3000)
`;

const parseArgs = (argv: string[]): { flags: Record<string, string | boolean>; only: Set<string> | null } => {
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument '${arg}'\n\n${USAGE}`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (name === 'help') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const boolean = ['quick', 'verify-fixtures'].includes(name);
    if (boolean) flags[name] = true;
    else if (inline !== undefined) flags[name] = inline;
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) flags[name] = argv[++i]!;
    else throw new Error(`--${name} needs a value\n\n${USAGE}`);
  }
  const only = typeof flags.only === 'string' ? new Set(flags.only.split(',').map((s) => s.trim().toLowerCase()).map((s) => (s === 'peers' || s === 'p' ? 'P' : s))) : null;
  return { flags, only };
};

const machine = (): string => {
  const c = cpus();
  const model = (c[0]?.model ?? 'unknown CPU').replace(/\s+/g, ' ').trim();
  return `${c.length} cores, ${model}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${platform()} ${arch()}, Node ${process.version}`;
};

const cell = (s: string): string => s.replace(/\|/g, '\\|');

const holdsText = (r: Result): string => {
  if (r.skipped) return `skipped: ${r.skipped}`;
  if (r.holds === null) return '—';
  return r.holds ? 'yes' : '**NO**';
};

const table = (results: Result[]): string => {
  const rows = [
    ['#', 'metric', 'queuectl', 'limit', 'ratio', 'target', 'holds'],
    ...results.map((r) => [String(r.row), r.metric, r.queuectl, r.limit, r.ratio, r.target, holdsText(r)].map(cell)),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => `| ${row.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.slice(1).map(line)].join('\n');
};

const main = async (): Promise<number> => {
  const { flags, only } = parseArgs(process.argv.slice(2));
  const quick = Boolean(flags.quick);
  const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  ensureBuilt(log);
  const tmp = makeTmp();
  const cache = typeof flags.cache === 'string' ? flags.cache : tmp;
  if (cache !== tmp) (await import('node:fs')).mkdirSync(cache, { recursive: true, mode: 0o700 });
  const ctx: Context = { quick, tmp, cache, flags, shared: new Map(), log };
  const cleanup = () => {
    killChildren();
    removeDir(tmp);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanup();
      process.exit(130);
    });
  }
  const started = now();
  const date = new Date();
  const results: Result[] = [];
  let failures = 0;
  try {
    for (const bench of BENCHES) {
      if (only && !bench.rows.some((r) => only.has(String(r)))) continue;
      const t = now();
      try {
        // A benchmark that hangs is stopped (its processes killed) and reported as failed.
        const limitMs = ctx.quick ? 180_000 : 2_400_000;
        let timer: NodeJS.Timeout | undefined;
        const rs = await Promise.race([
          bench.run(ctx),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              killChildren();
              reject(new Error(`timed out after ${fmtMs(limitMs)}`));
            }, limitMs);
          }),
        ]).finally(() => clearTimeout(timer));
        results.push(...rs.filter((r) => !only || only.has(String(r.row))));
        log(`${bench.title}: done in ${fmtMs(now() - t)}`);
      } catch (e) {
        failures += 1;
        log(`${bench.title}: FAILED: ${(e as Error)?.stack ?? String(e)}`);
        for (const row of bench.rows) {
          if (only && !only.has(String(row))) continue;
          results.push({ row, metric: bench.title, queuectl: '—', limit: '—', ratio: '—', target: '—', holds: null, skipped: `error: ${(e as Error)?.message?.split('\n')[0] ?? e}` });
        }
      }
    }
  } finally {
    cleanup();
  }
  results.sort((a, b) => (a.row === 'P' ? 99 : a.row) - (b.row === 'P' ? 99 : b.row));
  const total = now() - started;
  const header = [
    `queuectl benchmarks (${quick ? 'quick: small sizes, figures are indicative only' : 'full size'}), ${date.toISOString().slice(0, 10)}`,
    `machine: ${machine()}`,
    `total: ${fmtMs(total)}`,
  ];
  process.stdout.write(`\n${header.join('\n')}\n\n${table(results)}\n`);
  const missed = results.filter((r) => r.holds === false).length;
  process.stdout.write(`\n${results.filter((r) => r.holds === true).length} targets hold, ${missed} missed${failures ? `, ${failures} benchmark(s) failed to run` : ''}.\n`);
  if (typeof flags.json === 'string') {
    writeFileSync(flags.json, `${JSON.stringify({ date: date.toISOString(), machine: machine(), cores: cpus().length, node: process.version, quick, totalMs: total, flags, results }, null, 2)}\n`);
    log(`results written to ${flags.json}`);
  }
  return failures > 0 ? 1 : 0;
};

main().then(
  (code) => process.exit(code),
  (e) => {
    killChildren();
    process.stderr.write(`${(e as Error)?.message ?? e}\n`);
    process.exit(2);
  },
);
