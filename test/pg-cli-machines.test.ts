// Many machines on one PostgreSQL database, as users run them: each "machine" is a --home of its
// own (its own host, socket and output files), all pointed at one queue (QUEUECTL_DATABASE_URL,
// a fresh schema per test). Every command works there; jobs, history and output are seen from
// any machine; a machine killed mid-job has its job recovered by another through the lease kept
// in the database; a long job's lease is kept alive across machines by its heartbeats.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, cli, history, json, MARK, newHome, ok, refused, run, scratch, startWorker, stopWorkers, until, waitFor } from './helpers/cli.ts';
import { freshQueue, type TestQueue, withPostgres } from './helpers/postgres.ts';

const test = suite('pg-cli-machines');
const pg = withPostgres(test, 'pg-cli-machines', { fsync: false });
let queue: TestQueue | null = null;
let password = '';

/** A fresh queue for the test, in QUEUECTL_DATABASE_URL (inherited by every process the helpers start); false: no server. */
const useQueue = async (): Promise<boolean> => {
  const server = pg();
  if (!server) return false;
  queue = await freshQueue(server, 't_cli');
  password = decodeURIComponent(new URL(server.url).password);
  process.env.QUEUECTL_DATABASE_URL = queue.url;
  return true;
};
test.after.each(async () => {
  await stopWorkers();
  delete process.env.QUEUECTL_DATABASE_URL;
  await queue?.drop();
  queue = null;
});
test.after(() => cleanup());

const noPassword = (...texts: string[]) => {
  for (const t of texts) assert.not.ok(t.includes(password), `the password appears in: ${t}`);
};

test('every command works on PostgreSQL, and status names the database without its password', async () => {
  if (!(await useQueue())) return;
  const home = newHome('m');
  const q = cli(home);
  ok(await q('enqueue', 'echo hello; echo oops >&2', '--id', 'good'));
  ok(await q('enqueue', 'exit 3', '--id', 'bad', '--max-retries', '0'));
  ok(await q('enqueue', 'sleep 100', '--id', 'later', '--delay', '1h'));
  assert.match(ok(await q('config', 'set', 'backoff_base', '3')), /backoff_base = 3/);
  const drained = await run(['worker', 'start', '--drain', '--home', home]);
  ok(drained);
  const status = await q('status');
  assert.match(ok(status), /\nBackend  PostgreSQL postgres:\/\/queuectl@127\.0\.0\.1:\d+\/postgres\?schema=t_cli_/);
  const view = json(await q('status', '--json'));
  assert.equal(view.backend, { type: 'postgresql', url: queue!.url.replace(`:${encodeURIComponent(password)}@`, '@') });
  assert.equal([view.jobs.completed, view.jobs.dead, view.jobs.pending], [1, 1, 1]);
  assert.match(ok(await q('logs', 'good')), /\[stdout\]\nhello\n\[stderr\]\noops\n/);
  assert.equal((await history(q, 'good')).map((e) => e.type), ['JobEnqueued', 'JobClaimed', 'JobSucceeded']);
  const events = ok(await q('events')).trim().split('\n');
  assert.ok(events.some((l) => /JobDeadLettered\s+bad/.test(l)), events.join('\n'));
  assert.match(ok(await q('dlq', 'list')), /bad/);
  assert.is(ok(await q('dlq', 'retry', 'bad')), 'retrying bad\n');
  assert.match(ok(await q('cancel', 'later')), /cancelled later/);
  refused(await q('cancel', 'later'), 1, /job 'later' is cancelled/); // as on LevelDB
  assert.match(ok(await q('projections', 'verify')), /projections match the log/);
  noPassword(drained.stdout, drained.stderr, status.stdout, JSON.stringify(view));
});

test('two machines on one database: both see the same jobs; logs on B shows what ran on A', async () => {
  if (!(await useQueue())) return;
  const a = cli(newHome('a'));
  const bHome = newHome('b');
  const b = cli(bHome);
  ok(await a('enqueue', `echo ran-on-A-${MARK}`, '--id', 'from-a'));
  ok(await b('enqueue', 'echo ran-too', '--id', 'from-b'));
  for (const q of [a, b]) assert.equal(json<{ id: string }[]>(await q('list', '--json')).map((j) => j.id).sort(), ['from-a', 'from-b']);
  const worker = await startWorker(newHome('a-worker')).ready();
  ok(await waitFor(b, ['from-a', 'from-b']));
  await worker.stop();
  assert.match(ok(await b('logs', 'from-a')), new RegExp(`\\[stdout\\]\\nran-on-A-${MARK}\\n`));
  assert.not.ok(existsSync(join(bHome, 'logs', 'from-a')), 'B has no file of it: it came from the database');
  assert.is(json(await b('show', 'from-a', '--json')).state, 'completed');
});

test('a machine killed mid-job: another recovers its job through the lease in the database', async () => {
  if (!(await useQueue())) return;
  const dir = scratch('lease');
  const first = join(dir, 'first');
  const a = cli(newHome('a'));
  ok(await a('config', 'set', 'lease_seconds', '2'));
  // the first run marks itself and hangs; the run after the recovery completes
  ok(await a('enqueue', `test -e ${first} && echo second-run || { touch ${first}; sleep 60 # ${MARK}\n}`, '--id', 'orphan'));
  const machineA = await startWorker(newHome('a-worker')).ready();
  await until(() => existsSync(first), 15_000, 'the job to start on A');
  machineA.signal('SIGKILL'); // its host and worker die together; its job process ends with them (the job runner ends it)
  const machineB = await startWorker(newHome('b-worker')).ready();
  ok(await waitFor(a, ['orphan'], '30s'));
  const types = (await history(a, 'orphan')).map((e) => e.type);
  assert.ok(types.indexOf('JobLeaseExpired') > 0 && types.lastIndexOf('JobSucceeded') > types.indexOf('JobLeaseExpired'), types.join(' '));
  assert.match(ok(await a('logs', 'orphan', '--attempt', '2')), /second-run/);
  await machineB.stop();
});

test('a job longer than its lease on machine A is not taken by machine B: the heartbeats renew it in the database', async () => {
  if (!(await useQueue())) return;
  const a = cli(newHome('a'));
  ok(await a('config', 'set', 'lease_seconds', '2'));
  const machineB = await startWorker(newHome('b-worker')).ready(); // idle, watching leases
  ok(await a('enqueue', `sleep 5; echo done # ${MARK}`, '--id', 'long'));
  const machineA = await startWorker(newHome('a-worker'), '--drain').ready().catch(() => null);
  ok(await waitFor(a, ['long'], '30s'));
  const types = (await history(a, 'long')).map((e) => e.type);
  assert.equal(types, ['JobEnqueued', 'JobClaimed', 'JobSucceeded'], types.join(' '));
  await machineA?.finished();
  await machineB.stop();
});

test('on one machine, the host killed: the worker that takes over keeps its running job (its lease is adopted, not dropped)', async () => {
  if (!(await useQueue())) return;
  const home = newHome('failover');
  const q = cli(home);
  ok(await q('enqueue', `sleep 60 # ${MARK}`, '--id', 'block'));
  const hostWorker = await startWorker(home).ready();
  await until(async () => json(await q('show', 'block', '--json')).state === 'processing', 15_000, 'block to run on the host');
  const client = await startWorker(home).ready();
  ok(await q('enqueue', `sleep 4; echo survived # ${MARK}`, '--id', 'long'));
  await until(async () => json(await q('show', 'long', '--json')).state === 'processing', 15_000, 'long to run on the client');
  hostWorker.signal('SIGKILL');
  ok(await waitFor(q, ['long'], '30s'));
  assert.equal((await history(q, 'long')).map((e) => e.type), ['JobEnqueued', 'JobClaimed', 'JobSucceeded']);
  await client.kill();
});

test('a detached worker on PostgreSQL: its worker.log holds no password', async () => {
  if (!(await useQueue())) return;
  const home = newHome('detached');
  const q = cli(home);
  ok(await q('enqueue', 'echo hi', '--id', 'd1'));
  ok(await q('worker', 'start', '--detach', '--drain'));
  ok(await waitFor(q, ['d1']));
  await until(() => !existsSync(join(home, 'host.sock')) || readFileSync(join(home, 'worker.log'), 'utf8').includes('stopped'), 15_000, 'the detached worker to stop');
  const log = readFileSync(join(home, 'worker.log'), 'utf8');
  assert.match(log, /d1 completed/);
  noPassword(log);
});

test.run();
