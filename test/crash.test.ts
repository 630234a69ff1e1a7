// Crash safety: a child process appends to a classic-level data directory and is killed with
// SIGKILL at a random moment, many times over the SAME directory. After each kill the parent
// opens the engine and checks that every acknowledged command survived, that the log is a
// contiguous prefix, and that the projections match the log.
//
//   QUEUECTL_CRASH_ROUNDS=<n>     rounds of the append test (default 12)
//   QUEUECTL_CRASH_SEED=<n>       the kill delays (printed on failure)
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Engine } from '../src/engine/engine.ts';
import { openLevelEngine } from './helpers/backends.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHILD = fileURLToPath(new URL('./helpers/crash-child.ts', import.meta.url));
const ROUNDS = Math.max(1, Number(process.env.QUEUECTL_CRASH_ROUNDS ?? '') || 12);
const SEED = Number(process.env.QUEUECTL_CRASH_SEED ?? '') || Math.floor(Math.random() * 2 ** 31);
/** The whole append test must finish within this, however slow the machine. */
const BUDGET_MS = 30_000 + ROUNDS * 6_000;
const FIRST_ACK_TIMEOUT_MS = 20_000;

/** A small seeded generator (mulberry32), so a failing sequence of kill delays can be replayed. */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
};

const children = new Set<ChildProcess>();

interface Round {
  lines: string[];
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/** Run the child until `delayMs` after its first `trigger` line, then SIGKILL it; resolves once it is dead. */
const killRound = (dir: string, tag: string, mode: string, trigger: string, delayMs: number): Promise<Round> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, tag, mode], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const lines: string[] = [];
    let partial = '';
    let stderr = '';
    let armed = false;
    const kill = () => child.kill('SIGKILL');
    const noAck = setTimeout(() => {
      kill();
      reject(new Error(`round ${tag}: no '${trigger}' within ${FIRST_ACK_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, FIRST_ACK_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!; // a line cut by the kill is not an acknowledgement
      lines.push(...parts);
      if (!armed && parts.some((l) => l.startsWith(trigger))) {
        armed = true;
        clearTimeout(noAck);
        setTimeout(kill, delayMs);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(noAck);
      children.delete(child);
      resolve({ lines, code, signal, stderr });
    });
  });

interface Acks {
  enqueued: Set<string>;
  claims: Map<string, number>; // job -> highest acknowledged attempt
  succeeded: Map<string, number>;
  failed: [string, number][];
}

const parseAcks = (acks: Acks, lines: readonly string[]): void => {
  for (const line of lines) {
    const [kind, id = '', attempt = '0', how] = line.split(' ');
    if (kind === 'ack') acks.enqueued.add(id);
    else if (kind === 'claim') acks.claims.set(id, Math.max(acks.claims.get(id) ?? 0, Number(attempt)));
    else if (kind === 'done' && how === 'ok') acks.succeeded.set(id, Number(attempt));
    else if (kind === 'done') acks.failed.push([id, Number(attempt)]);
  }
};

/** Open the directory (the child is dead, so nobody else holds it), check it, close it. */
const checkDir = async (dir: string, acks: Acks, where: string): Promise<number> => {
  const engine = await openLevelEngine(new ClassicLevel<string, unknown>(dir) as unknown as AnyLevel);
  try {
    let expected = 0;
    for await (const e of engine.store.readEvents(0)) {
      assert.is(e.pos, expected, `${where}: log positions are contiguous from 0`);
      expected += 1;
    }
    assert.is(await engine.store.head(), expected - 1, `${where}: the last position is the log's head`);
    for (const id of acks.enqueued) assert.ok(await engine.getJob(id), `${where}: acknowledged job ${id} survived the kill`);
    for (const [id, attempt] of acks.claims) {
      const job = await engine.getJob(id);
      assert.ok(job && job.totalAttempts >= attempt, `${where}: acknowledged claim ${id}#${attempt} survived (job has ${job?.totalAttempts} attempts)`);
    }
    for (const [id, attempt] of acks.succeeded) {
      const job = await engine.getJob(id);
      assert.is(job?.state, 'completed', `${where}: acknowledged success of ${id}#${attempt} survived`);
    }
    for (const [id, attempt] of acks.failed) {
      const history = await engine.history(id);
      assert.ok(history.some((e) => e.type === 'JobFailed' && e.attempt === attempt), `${where}: acknowledged failure of ${id}#${attempt} survived`);
    }
    const { differences, events } = await engine.store.verify();
    assert.equal(differences, [], `${where}: projections match the log (verify)`);
    assert.is(events, expected);
    return expected;
  } finally {
    await engine.close();
  }
};

const crashRounds = async (mode: string, trigger: string, rounds: number, minDelay: number, maxDelay: number): Promise<void> => {
  const dir = mkdtempSync(join(tmpdir(), `queuectl-crash-${mode}-`));
  const random = rng(SEED);
  const acks: Acks = { enqueued: new Set(), claims: new Map(), succeeded: new Map(), failed: [] };
  const started = Date.now();
  const log: string[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      assert.ok(Date.now() - started < BUDGET_MS, `the crash test ran out of its ${BUDGET_MS} ms budget after ${round} rounds`);
      const delay = Math.round(minDelay + random() * (maxDelay - minDelay));
      const where = `${mode} round ${round} (kill ${delay} ms after the first '${trigger.trim()}'; QUEUECTL_CRASH_SEED=${SEED}; dir ${dir})`;
      const result = await killRound(dir, `r${round}`, mode, trigger, delay);
      assert.is(result.signal, 'SIGKILL', `${where}: the child died on its own (code ${result.code}): ${result.stderr}`);
      parseAcks(acks, result.lines);
      const events = await checkDir(dir, acks, where);
      log.push(`${delay}ms:${result.lines.filter((l) => l.startsWith('ack ')).length}acks/${events}ev`);
    }
    console.log(`  crash ${mode}: ${rounds} kills, ${acks.enqueued.size} acknowledged jobs, ${Date.now() - started} ms (seed ${SEED}) [${log.join(' ')}]`);
  } finally {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
};

test(`kill -9 while appending (${ROUNDS} rounds): acknowledged commands survive, the log is a contiguous prefix, projections match it`, async () => {
  await crashRounds('append', 'ack ', ROUNDS, 50, 400);
});

// A rebuild (queuectl verify --rebuild, or a projection version bump on open) rewrites every
// projection; a kill in the middle must leave something the next open repairs.
test('kill -9 during a projection rebuild: the next open brings the projections back to the log', async () => {
  await crashRounds('rebuild', 'rebuilding', Math.max(4, Math.round(ROUNDS / 2)), 0, 40);
});

test.run();
