// Rows 6 and 7: wall time of short CLI commands, each a separate `node dist/cli.js` process
// as a user runs it, on a data directory holding a large log (1,000,000 events) and on one
// holding a single job, with no host (the command opens the database itself) and with a
// running host (`worker start`; the command is its client). Row 6 compares with `node -e 0`,
// row 7 the large directory with the small one. Runs are interleaved so that drift and
// other load on the machine hit every variant alike; each figure is a median.
import { join } from 'node:path';
import { copyFixture, eventsFixture } from './fixtures.ts';
import { nodeStartup } from './limits.ts';
import { type Bench, cliOk, type Context, fmtMs, fmtRatio, median, type Result, size, sizeLabel, sleep, startWorker, waitForHost, type Worker } from './lib.ts';

const cliLatency = async (ctx: Context): Promise<Result[]> => {
  const events = size(ctx, 'events', 10_000, 1_000_000);
  const reps = size(ctx, 'cli-reps', 1, 10);
  // enqueue adds to them: private copies
  const big = copyFixture(await eventsFixture(ctx, events), join(ctx.tmp, 'row6-big'));
  const small = copyFixture(await eventsFixture(ctx, 5), join(ctx.tmp, 'row6-small'));
  const dirs = [
    { name: 'big', f: big },
    { name: 'small', f: small },
  ] as const;
  const commands = (id: string) => [
    { name: 'status', args: ['status'] },
    { name: 'show <id>', args: ['show', id] },
    { name: 'history <id>', args: ['history', id] },
    { name: 'enqueue', args: ['enqueue', 'true'] },
  ];
  const times = new Map<string, number[]>();
  const record = (key: string, ms: number) => times.set(key, [...(times.get(key) ?? []), ms]);
  const nodeMs: number[] = [];
  for (const mode of ['no host', 'host'] as const) {
    const workers: Worker[] = [];
    try {
      if (mode === 'host') {
        for (const d of dirs) workers.push(startWorker(d.f.home, ['--count', '1']));
        for (const d of dirs) await waitForHost(d.f.home);
        await sleep(300); // let the workers settle (register, first claim)
      }
      ctx.log(`rows 6-7: ${reps} rounds of 4 commands x 2 data directories, ${mode}`);
      for (let rep = ctx.quick ? 0 : -1; rep < reps; rep++) {
        // round -1 warms the page cache and is not counted (full size only)
        const n = (await nodeStartup(1))[0]!;
        if (rep >= 0) nodeMs.push(n);
        for (const c of commands('')) {
          for (const d of dirs) {
            const args = commands(d.f.sampleId).find((x) => x.name === c.name)!.args;
            const r = await cliOk(d.f.home, args);
            if (rep >= 0) record(`${mode}|${c.name}|${d.name}`, r.ms);
          }
        }
      }
    } finally {
      for (const w of workers) await w.stop();
    }
  }
  const nodeMedian = median(nodeMs);
  const results: Result[] = [];
  for (const mode of ['no host', 'host'] as const) {
    for (const c of commands('')) {
      const bigMs = median(times.get(`${mode}|${c.name}|big`)!);
      const ratio = bigMs / nodeMedian;
      results.push({
        row: 6,
        metric: `\`${c.name}\` wall time, ${sizeLabel(big.events)} events, ${mode === 'host' ? 'with a running host' : 'no host'} (median of ${reps})`,
        queuectl: fmtMs(bigMs),
        limit: `${fmtMs(nodeMedian)} (node -e 0)`,
        ratio: fmtRatio(ratio),
        target: '<= 1.5x',
        holds: ratio <= 1.5,
        data: { command: c.name, mode, events: big.events, ms: bigMs, nodeMs: nodeMedian, ratio, samples: times.get(`${mode}|${c.name}|big`) },
      });
    }
  }
  for (const mode of ['no host', 'host'] as const) {
    for (const c of commands('')) {
      const bigMs = median(times.get(`${mode}|${c.name}|big`)!);
      const smallMs = median(times.get(`${mode}|${c.name}|small`)!);
      const ratio = bigMs / smallMs;
      results.push({
        row: 7,
        metric: `\`${c.name}\`, ${sizeLabel(big.events)} events vs a 1-job data directory (${small.events} events), ${mode === 'host' ? 'with a running host' : 'no host'}`,
        queuectl: fmtMs(bigMs),
        limit: `${fmtMs(smallMs)} (1 job)`,
        ratio: fmtRatio(ratio),
        target: '<= 1.1x',
        holds: ratio <= 1.1,
        data: { command: c.name, mode, events: big.events, ms: bigMs, smallMs, ratio, samples: times.get(`${mode}|${c.name}|small`) },
      });
    }
  }
  return results;
};

export const benches: Bench[] = [{ rows: [6, 7], title: 'CLI wall times', run: cliLatency }];
