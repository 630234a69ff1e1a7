// End to end, issue 10: the same command on the same job from several machines at once
// (two processes on each of three machines). Exactly one wins; the others get the error the
// command documents on LevelDB (one line, exit 1), and the log holds the winner's event once.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Result, assertNoStrays, cleanup, history, ok, refused, stopWorkers, until } from './helpers/cli.ts';
import { type Machine, machines, queueUrl, status, withPgCli } from './helpers/pg-machines.ts';

const test = suite('pg-e2e-races');
const pg = withPgCli(test, 'pg-e2e-races');
test.after.each(() => stopWorkers());
test.after(cleanup);

const ROUNDS = 3;

/** The same command from two processes on each machine, all started together. */
const race = (ms: Machine[], ...args: string[]): Promise<Result[]> => Promise.all(ms.flatMap((m) => [m.q(...args), m.q(...args)]));

/** Exactly one succeeded; every other one was refused with `pattern`. */
const oneWins = (results: Result[], pattern: RegExp, what: string): void => {
  const winners = results.filter((r) => r.code === 0);
  assert.is(winners.length, 1, `${what}: exactly one wins, got ${winners.length}: ${results.map((r) => `${r.code} ${r.stderr.trim()}`).join(' | ')}`);
  for (const r of results.filter((x) => x.code !== 0)) refused(r, 1, pattern);
};

test('concurrent enqueue of one id from three machines: one enqueues it, the others get QUEUECTL_DUPLICATE_ID', async () => {
  const server = pg();
  if (!server) return;
  const ms = machines(3, queueUrl(server, 'race_enqueue'));
  ok(await ms[0]!.q('config', 'get')); // the queue exists before the race
  for (let i = 0; i < ROUNDS; i++) {
    const id = `dup${i}`;
    oneWins(await race(ms, 'enqueue', '--id', id, '--delay', '1h', 'true'), new RegExp(`a job with id '${id}' already exists`), `enqueue ${id}`);
    const h = await history(ms[1]!.q, id);
    assert.equal(h.map((e) => e.type), ['JobEnqueued'], `history ${id}`);
  }
});

test('concurrent cancel of one job from three machines: one cancels it, the others are told it is cancelled', async () => {
  const server = pg();
  if (!server) return;
  const ms = machines(3, queueUrl(server, 'race_cancel'));
  for (let i = 0; i < ROUNDS; i++) {
    const id = `c${i}`;
    ok(await ms[i % 3]!.q('enqueue', '--id', id, '--delay', '1h', 'true'));
    oneWins(await race(ms, 'cancel', id), new RegExp(`job '${id}' is cancelled; only pending, failed or processing jobs can be cancelled`), `cancel ${id}`);
    const h = await history(ms[2]!.q, id);
    assert.equal(h.map((e) => e.type), ['JobEnqueued', 'JobCancelled'], `history ${id}`);
  }
});

test('concurrent dlq retry of one dead job from three machines: one retries it, the others are told it is not dead', async () => {
  const server = pg();
  if (!server) return;
  const ms = machines(3, queueUrl(server, 'race_retry'));
  const dead = Array.from({ length: ROUNDS }, (_, i) => `d${i}`);
  for (const id of dead) ok(await ms[0]!.q('enqueue', '--id', id, '--max-retries', '0', 'false'));
  const w = await ms[0]!.startWorker(2);
  await until(async () => (await status(ms[1]!.q)).jobs.dead === ROUNDS, 30_000, 'the jobs to die', 100);
  await w.stop(); // nothing runs a retried job: it stays pending
  for (const id of dead) {
    oneWins(await race(ms, 'dlq', 'retry', id), new RegExp(`job '${id}' is pending, not dead; only jobs in the DLQ can be retried`), `dlq retry ${id}`);
    const types = (await history(ms[2]!.q, id)).map((e) => e.type);
    assert.is(types.filter((t) => t === 'JobRetried').length, 1, `history ${id}: ${types.join(' ')}`);
  }
});

test.after(assertNoStrays);
test.run();
