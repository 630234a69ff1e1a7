// Over PostgreSQL, a worker killed with SIGKILL is shown `lost` by `status`, which says it will
// be recorded "when a worker next starts": the next host on its machine records its stop (as
// with LevelDB), so it is not listed as lost for ever.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, stopWorkers, until } from './helpers/cli.ts';
import { json, type Q } from './helpers/cli.ts';
import { machine, queueUrl, withPgCli } from './helpers/pg-machines.ts';

const status = async (q: Q) => json<{ workers: { pid: number; alive: boolean }[] }>(await q('status', '--json'));

const test = suite('review2-lost-worker');
const pg = withPgCli(test, 'review2-lost-worker');
test.after.each(() => stopWorkers());
test.after(cleanup);

test('a worker killed with SIGKILL: the next worker started on its machine records it, and status no longer lists it as lost', async () => {
  const server = pg();
  if (!server) return;
  const a = machine('a', queueUrl(server, 'r2lost'));
  const dead = await a.startWorker(1);
  dead.signal('SIGKILL');
  await until(async () => (await status(a.q)).workers.some((w) => w.pid === dead.pid && !w.alive), 10_000, 'the killed worker shown lost');
  const next = await a.startWorker(1);
  await until(async () => !(await status(a.q)).workers.some((w) => w.pid === dead.pid), 10_000, 'the killed worker no longer listed')
    .catch(async () => assert.unreachable(`still listed after a new worker started here: ${JSON.stringify((await status(a.q)).workers)}`));
  assert.ok((await status(a.q)).workers.some((w) => w.pid === next.pid && w.alive), 'the new worker is listed, alive');
});

test.run();
