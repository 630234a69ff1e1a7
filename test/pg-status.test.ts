// `status` over PostgreSQL lists every machine's workers: the host name each runs on, its pid,
// slots and running jobs, and whether it is alive. A worker of another machine is judged by its
// heartbeat in the database (its pid means nothing on this machine), one of this machine by its pid.
//
// "Another machine" has to be one here: a machine of its own is a worker (and its host) started
// in new UTS and PID namespaces (`unshare`, as root), so it has its own host name and its pids
// are not this machine's (the worker is pid 1 there, and pid 1 is alive here whatever happens to
// it). Killing `unshare` (SIGKILL, --kill-child) ends that namespace: the machine is gone at once.
import { type ChildProcess, spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CLI, cleanup, cli, json, MARK, newHome, ok, type Q, run, startWorker, stopWorkers, until } from './helpers/cli.ts';
import { machine, queueUrl, withPgCli } from './helpers/pg-machines.ts';
import { freshQueue } from './helpers/postgres.ts';

const test = suite('pg-status');
const pg = withPgCli(test, 'pg-status');
const others: ChildProcess[] = [];

test.after.each(async () => {
  await stopWorkers();
  for (const child of others.splice(0)) child.kill('SIGKILL');
});
test.after(() => cleanup());

interface StatusWorker { id: string; host: string | null; pid: number; slots: number; running: string[]; alive: boolean; lost_jobs: string[] }
const workersOf = async (q: Q): Promise<StatusWorker[]> => json<{ workers: StatusWorker[] }>(await q('status', '--json')).workers;

/**
 * A machine of its own (host name `name`): `worker start --count <slots>` in new UTS and PID
 * namespaces, with a --home of its own. With `pids: 'shared'`, only the host name is its own:
 * its worker's pid is a live pid of this machine too.
 */
const otherMachine = (name: string, url: string, slots: number, pids: 'own' | 'shared' = 'own'): { home: string; q: Q; child: ChildProcess } => {
  const home = newHome(name);
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.QUEUECTL_HOME;
  const child = spawn(
    'unshare',
    [...(pids === 'own' ? ['--uts', '--pid', '--fork', '--kill-child', '--mount-proc'] : ['--uts']), 'sh', '-c', 'hostname "$0" && exec "$@"', name, process.execPath, CLI, 'worker', 'start', '--count', String(slots), '--home', home, '--database-url', url],
    { env, stdio: 'ignore' },
  );
  others.push(child);
  return { home, q: (...args) => run([...args, '--home', home, '--database-url', url]), child };
};

/** Root (to make namespaces), or a skip; in CI a failure. */
const canMakeMachines = (): boolean => {
  if (process.getuid?.() === 0) return true;
  if (process.env.CI === 'true') assert.unreachable('pg-status needs root (unshare) to run another machine; CI runs as root');
  console.log('  pg-status: skipped (needs root for unshare)');
  return false;
};

test("worker stop stops its data directory's workers only: not another machine's whose pid is alive here, nor another --home's on this machine", async () => {
  const server = pg();
  if (!server || !canMakeMachines()) return;
  const url = queueUrl(server, 't_stop');
  const m1 = machine('m1', url);
  const w1 = await m1.startWorker(1);
  const neighbour = machine('m1b', url); // another --home of this machine, on the same queue
  const w1b = await neighbour.startWorker(1);
  const other = otherMachine(`qs2-${process.pid}`, url, 1, 'shared');
  await until(async () => (await workersOf(m1.q)).length === 3, 30_000, 'the other machine to register', 200);
  const stopped = json<{ stopped: number[] }>(await m1.q('worker', 'stop', '--json'));
  assert.equal(stopped.stopped, [w1.pid], 'only the worker of this data directory');
  assert.ok(other.child.exitCode === null && other.child.signalCode === null, "the other machine's worker is still running");
  assert.ok(w1b.running, "the other --home's worker is still running");
  const left = await workersOf(m1.q);
  assert.equal(left.map((w) => [w.host, w.pid === w1b.pid, w.alive]).sort(), [[hostname(), true, true], [`qs2-${process.pid}`, false, true]].sort());
});

test("status lists every machine's workers with their host; another machine's worker is lost once its heartbeat runs out", async () => {
  const server = pg();
  if (!server || !canMakeMachines()) return;
  const url = queueUrl(server, 't_status');
  const here = hostname();
  const m1 = machine('m1', url);
  ok(await m1.q('config', 'set', 'lease_seconds', '4'));
  const w1 = await m1.startWorker(2);
  const [n2, n3] = [`qm2-${process.pid}`, `qm3-${process.pid}`];
  const m2 = otherMachine(n2, url, 2);
  const m3 = otherMachine(n3, url, 2);
  for (let i = 0; i < 6; i++) ok(await m1.q('enqueue', `sleep 60 # ${MARK}`, '--id', `long${i}`));

  // every slot of every machine runs a job; each machine's view lists all three, by host
  const busy = (ws: StatusWorker[]) => ws.length === 3 && ws.every((w) => w.alive && w.running.length === 2);
  for (const q of [m1.q, m3.q]) await until(async () => busy(await workersOf(q)), 30_000, 'every worker of three machines to run two jobs', 200);
  for (const q of [m1.q, m3.q]) {
    const ws = await workersOf(q);
    assert.equal(ws.map((w) => w.host).sort(), [here, n2, n3].sort());
    assert.equal(ws.map((w) => w.slots), [2, 2, 2]);
    assert.is(ws.find((w) => w.host === here)!.pid, w1.pid);
    assert.equal(ws.filter((w) => w.host !== here).map((w) => w.pid), [1, 1], 'the pid in its own machine');
    assert.equal(ws.flatMap((w) => w.running).sort(), ['long0', 'long1', 'long2', 'long3', 'long4', 'long5']);
  }
  const table = ok(await m1.q('status'));
  assert.match(table, /\nHOST +WORKER PID +STATE +SLOTS +RUNNING/);
  for (const name of [here, n2, n3]) assert.match(table, new RegExp(`\\n${name} +\\d+ +alive +2 +long\\d long\\d`), table);

  // m2 dies (kill -9 of its worker, host and jobs): its pid 1 is alive here, its heartbeat is not
  m2.child.kill('SIGKILL');
  const lost = async (q: Q) => {
    const ws = await workersOf(q);
    const dead = ws.find((w) => w.host === n2);
    return dead !== undefined && !dead.alive && dead.running.length === 0 && ws.filter((w) => w.host !== n2).every((w) => w.alive && w.running.length === 2);
  };
  for (const q of [m1.q, m3.q]) await until(() => lost(q), 30_000, `the worker of ${n2} to be shown lost, the others alive with their jobs`, 200);
  assert.match(ok(await m1.q('status')), new RegExp(`\\n${n2} +1 +lost +2 +-`));
});

test('a short command over PostgreSQL takes one connection: a role limited to one runs status, show, enqueue and list', async () => {
  const server = pg();
  if (!server) return;
  const queue = await freshQueue(server, 't_one');
  const role = `q_one_${process.pid}`;
  const sql = await queue.connect(1);
  try {
    // like a DBA's role for a queue: its tables, and no more than one session at a time
    await sql.unsafe(`create role ${role} login password 'one-secret' connection limit 1`);
    await sql.unsafe(`grant usage on schema ${queue.schema} to ${role}; grant all on all tables in schema ${queue.schema} to ${role}`);
    const url = new URL(queue.url);
    [url.username, url.password] = [role, 'one-secret'];
    const q: Q = (...args) => run([...args, '--home', newHome('one'), '--database-url', url.href]);
    assert.is(ok(await q('enqueue', 'true', '--id', 'one')), 'one\n');
    assert.is(json(await q('status', '--json')).jobs.pending, 1);
    assert.is(json(await q('show', 'one', '--json')).state, 'pending');
    assert.match(ok(await q('list')), /\none +pending/);
  } finally {
    await sql.unsafe(`drop owned by ${role}; drop role if exists ${role}`).catch(() => {});
    await queue.drop();
  }
});

test("LevelDB: every worker is this machine's, named by its host name", async () => {
  const home = newHome('ldb');
  const w = await startWorker(home, '--count', '3').ready();
  const [listed] = await workersOf(cli(home));
  assert.equal([listed!.host, listed!.pid, listed!.alive], [hostname(), w.pid, true]);
  assert.match(ok(await cli(home)('status')), new RegExp(`\\nHOST +WORKER PID +STATE +SLOTS +RUNNING +DONE +SINCE\\n${hostname()} +${w.pid} +alive +3 +idle`));
});

test.run();
