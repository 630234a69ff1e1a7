// The physical limits each benchmark is compared with, measured in the same run on the same
// machine: what the hardware, LevelDB and the OS do with no queue in the way.
import { execFileSync } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { median, now, removeDir, RSS_PROBE, run } from './lib.ts';

type Raw = ClassicLevel<string, string>;

const openRaw = async (dir: string): Promise<Raw> => {
  const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open();
  return db;
};

/**
 * Raw classic-level: write these records (already encoded) into a new database in batches of
 * the given sizes, each `sync: true`, one after the other. Returns the wall time in ms
 * (open and close excluded).
 */
export const rawSyncedBatches = async (dir: string, records: readonly { key: string; value: string }[], batchSizes: readonly number[]): Promise<number> => {
  removeDir(dir);
  const db = await openRaw(dir);
  try {
    const t = now();
    let at = 0;
    for (const n of batchSizes) {
      const batch = db.batch();
      for (const r of records.slice(at, at + n)) batch.put(r.key, r.value);
      at += n;
      await batch.write({ sync: true } as never);
    }
    return now() - t;
  } finally {
    await db.close();
    removeDir(dir);
  }
};

/** Raw classic-level: single `sync: true` puts, one at a time, for `ms`. Returns puts per second. */
export const sequentialSyncedPuts = async (dir: string, value: string, ms: number): Promise<{ rate: number; puts: number }> => {
  removeDir(dir);
  const db = await openRaw(dir);
  try {
    for (let i = 0; i < 20; i++) await db.put(`!warm!${i}`, value, { sync: true } as never);
    let puts = 0;
    const t = now();
    while (now() - t < ms) {
      await db.put(`!log!${String(puts).padStart(12, '0')}`, value, { sync: true } as never);
      puts += 1;
    }
    return { rate: (puts * 1000) / (now() - t), puts };
  } finally {
    await db.close();
    removeDir(dir);
  }
};

/**
 * Raw iteration of a data directory's log: every value of the `log` sublevel read with
 * nextv(1000) (1 MiB high-water mark) and JSON-decoded. The database must not be open
 * elsewhere. Returns events and ms (open included: a rebuild opens the database too).
 */
export const rawIterateLog = async (home: string): Promise<{ events: number; ms: number }> => {
  const t = now();
  const db = await openRaw(join(home, 'db'));
  try {
    const prefix = db.sublevel('log').prefix;
    const it = db.values({ gte: prefix, lt: `${prefix.slice(0, -1)}${String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)}`, highWaterMarkBytes: 1 << 20 } as never);
    let events = 0;
    let sum = 0;
    for (;;) {
      const chunk = await it.nextv(1000);
      if (chunk.length === 0) break;
      for (const v of chunk) sum += (JSON.parse(v) as { pos: number }).pos;
      events += chunk.length;
    }
    await it.close();
    if (sum < 0) throw new Error('unreachable');
    return { events, ms: now() - t };
  } finally {
    await db.close();
  }
};

/**
 * The spawn limits run in a separate, bare `node` process: how fast a process can fork depends
 * on its own size, and this benchmark process (tsx, fixtures in memory) is much bigger than a
 * queuectl worker. The script prints one JSON line.
 */
const SPAWN_SCRIPT = `
import { spawn } from 'node:child_process';
import { openSync, constants } from 'node:fs';
import { Socket } from 'node:net';
const [mode, n, arg] = [process.argv[1], Number(process.argv[2]), process.argv[3]];
const run = (args) => new Promise((resolve, reject) => {
  const child = spawn('/bin/sh', args, { stdio: 'ignore' });
  child.once('error', reject);
  child.once('exit', () => resolve());
});
if (mode === 'throughput') {
  const concurrency = Number(arg);
  let started = 0;
  const t = performance.now();
  const lane = async () => { while (started < n) { started += 1; await run(['-c', 'true']); } };
  await Promise.all(Array.from({ length: concurrency }, lane));
  console.log(JSON.stringify({ ms: performance.now() - t }));
} else {
  const fifo = arg;
  const socket = new Socket({ fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK), readable: true, writable: false });
  socket.setEncoding('utf8');
  let waiter = null;
  let buffered = '';
  socket.on('data', (chunk) => {
    const t = performance.now();
    buffered += chunk;
    if (buffered.includes('\\n')) { buffered = ''; waiter?.(t); }
  });
  const out = [];
  for (let i = 0; i < n; i++) {
    const arrived = new Promise((r) => (waiter = r));
    const t = performance.now();
    const exited = run(['-c', \`printf 'x\\\\n' > '\${fifo}'\`]);
    out.push((await arrived) - t);
    await exited;
  }
  socket.destroy();
  console.log(JSON.stringify({ latencies: out }));
}
`;

const spawnScript = async (args: string[]): Promise<Record<string, unknown>> => {
  const r = await run(process.execPath, ['--input-type=module', '-e', SPAWN_SCRIPT, ...args], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`the spawn limit script failed: ${r.stderr.trim().slice(0, 500)}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
};

/** Raw `child_process.spawn('/bin/sh', ['-c', 'true'])`, `concurrency` at a time, `n` in all, from a bare node. Returns ms. */
export const rawSpawnThroughput = async (n: number, concurrency: number): Promise<number> =>
  (await spawnScript(['throughput', String(n), String(concurrency)])).ms as number;

/**
 * Raw spawn start latency, from a bare node: from spawn() to the shell running (its line on a
 * FIFO, written with the shell's builtin printf), `n` times, one at a time. In ms.
 */
export const rawSpawnLatency = async (dir: string, n: number): Promise<number[]> => {
  const fifo = join(dir, 'raw-latency.fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  return (await spawnScript(['latency', String(n), fifo])).latencies as number[];
};

/**
 * A FIFO that jobs write a line to (`printf 'tag\n' > fifo`: a shell builtin, no extra
 * process), and a reader that resolves when a given line arrives: how a benchmark sees the
 * moment a job's process is running, whoever started it.
 */
export class StartSignal {
  readonly path: string;
  private readonly socket: Socket;
  private readonly waiters = new Map<string, (t: number) => void>();
  private readonly early = new Map<string, number>();
  private buffered = '';

  constructor(dir: string, name = 'started.fifo') {
    this.path = join(dir, name);
    execFileSync('mkfifo', ['-m', '600', this.path]);
    // Read-write and non-blocking: the open never waits for a writer and never sees EOF.
    const fd = openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK);
    this.socket = new Socket({ fd, readable: true, writable: false });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => {
      const t = now();
      this.buffered += chunk;
      let nl = this.buffered.indexOf('\n');
      while (nl >= 0) {
        const tag = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const w = this.waiters.get(tag);
        if (w) {
          this.waiters.delete(tag);
          w(t);
        } else this.early.set(tag, t);
        nl = this.buffered.indexOf('\n');
      }
    });
  }

  /** The shell command a job runs to signal `tag`. */
  command(tag: string): string {
    return `printf '${tag}\\n' > '${this.path}'`;
  }

  /** performance.now() when `tag` arrived (now or earlier). */
  arrival(tag: string, timeoutMs = 30_000): Promise<number> {
    const early = this.early.get(tag);
    if (early !== undefined) {
      this.early.delete(tag);
      return Promise.resolve(early);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(tag);
        reject(new Error(`no start signal '${tag}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(tag, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Wall time of `node -e 0`: `reps` runs, each in ms. */
export const nodeStartup = async (reps: number): Promise<number[]> => {
  const out: number[] = [];
  for (let i = 0; i < reps; i++) out.push((await run(process.execPath, ['-e', '0'])).ms);
  return out;
};

/** Peak RSS in bytes of bare `node -e 0` (with the same RSS probe the measured processes carry), median of 3. */
export const bareNodeRss = async (tmp: string): Promise<number> => {
  const xs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await run(process.execPath, ['-e', '0'], { rss: true, tmp });
    if (r.rss === undefined) throw new Error(`the RSS probe (${RSS_PROBE}) reported nothing`);
    xs.push(r.rss);
  }
  return median(xs);
};

