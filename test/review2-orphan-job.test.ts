// A worker killed with SIGKILL mid-job over PostgreSQL, on a machine where no other queuectl
// process is left to end its jobs: its job must not run on (beside its retry on another machine,
// whose host expires the lease but cannot reach this machine's processes).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { history, MARK, ok, scratch, until, waitFor } from './helpers/cli.ts';
import { machine, queueUrl, withPgCli } from './helpers/pg-machines.ts';

const test = suite('review2-orphan-job');
const pg = withPgCli(test, 'review2-orphan-job');
const LONG = `sleep ${MARK}7`;

const orphans = (): string[] => {
  try {
    return execFileSync('pgrep', ['-f', `^${LONG}$`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

test.after(() => {
  for (const pid of orphans()) try { process.kill(Number(pid), 'SIGKILL'); } catch {}
});

test('kill -9 of a machine\'s only worker mid-job: its job process ends with it, and another machine runs the retry', async () => {
  const server = pg();
  if (server === null) return;
  const url = queueUrl(server, 'r2orphan');
  const a = machine('a', url);
  ok(await a.q('config', 'set', 'lease_seconds', '2'));
  const first = join(scratch('orphan'), 'first');
  // the first run marks itself and runs long (as its own process: `exec`); the retry completes
  ok(await a.q('enqueue', `test -e ${first} && echo second-run || { touch ${first}; exec ${LONG}; }`, '--id', 'orphan'));
  const worker = await a.startWorker(1);
  await until(() => existsSync(first) && orphans().length === 1, 15_000, 'the job to start on A');
  worker.signal('SIGKILL'); // A's host and worker: nothing of queuectl is left on A
  await until(() => orphans().length === 0, 5_000, "A's job process to end with its worker", 100)
    .catch(() => assert.unreachable(`A's job runs on after its worker was killed: pids ${orphans().join(' ')}`));
  const b = machine('b', url);
  const other = await b.startWorker(1);
  ok(await waitFor(b.q, ['orphan'], '30s'));
  const types = (await history(b.q, 'orphan')).map((e) => e.type);
  assert.ok(types.indexOf('JobLeaseExpired') > 0 && types.lastIndexOf('JobSucceeded') > types.indexOf('JobLeaseExpired'), types.join(' '));
  await other.stop();
});

test.run();
