// Row 5: `queuectl projections rebuild` over a log of 1,000,000 events (the CLI, no host: it
// opens the database, clears every projection and folds the whole log again), against raw
// iteration of the same log with nextv and JSON decoding.
import { join } from 'node:path';
import { copyFixture, eventsFixture } from './fixtures.ts';
import { rawIterateLog } from './limits.ts';
import { type Bench, cliOk, type Context, fmtMs, fmtRate, fmtRatio, type Result, removeDir, size, sizeLabel } from './lib.ts';

const rebuild = async (ctx: Context): Promise<Result> => {
  const events = size(ctx, 'events', 10_000, 1_000_000);
  const f = copyFixture(await eventsFixture(ctx, events), join(ctx.tmp, 'row5'));
  try {
    ctx.log(`row 5: raw nextv iteration of ${sizeLabel(f.events)} events`);
    const raw = await rawIterateLog(f.home);
    if (raw.events !== f.events) throw new Error(`raw iteration read ${raw.events} events, expected ${f.events}`);
    ctx.log(`row 5: queuectl projections rebuild over ${sizeLabel(f.events)} events`);
    const r = await cliOk(f.home, ['projections', 'rebuild'], { timeoutMs: 3_600_000 });
    const folded = Number(/from (\d+) events/.exec(r.stdout)?.[1]);
    if (folded !== f.events) throw new Error(`rebuild said '${r.stdout.trim()}', expected ${f.events} events`);
    const rate = (folded * 1000) / r.ms;
    const limitRate = (raw.events * 1000) / raw.ms;
    const ratio = rate / limitRate;
    return {
      row: 5,
      metric: `projections rebuild over ${sizeLabel(f.events)} events (CLI wall ${fmtMs(r.ms)})`,
      queuectl: fmtRate(rate, 'events'),
      limit: `${fmtRate(limitRate, 'events')} (raw nextv + JSON.parse, ${fmtMs(raw.ms)})`,
      ratio: fmtRatio(ratio),
      target: '>= 0.3',
      holds: ratio >= 0.3,
      data: { events: folded, ms: r.ms, rate, limitMs: raw.ms, limitRate, ratio },
    };
  } finally {
    removeDir(f.home);
  }
};

export const benches: Bench[] = [{ rows: [5], title: 'projections rebuild', run: async (ctx) => [await rebuild(ctx)] }];
