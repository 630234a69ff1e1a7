// worker start | stop.
import { closeSync, constants, existsSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive } from '../host/pids.ts';
import { openQueue } from '../host/connect.ts';
import { checkOwnership, type Home, prepareHome, privateUmask } from '../home.ts';
import { environmentError, errnoOf, errnoReason, QueuectlError } from '../errors.ts';
import { oneLine } from './escape.ts';
import { database, type GlobalOptions, home, invalid, outliveStdout, parseInteger, withQueue } from './context.ts';

interface WorkerOptions extends GlobalOptions {
  count?: unknown;
  detach?: boolean;
  drain?: boolean;
  force?: boolean;
}

/** Slots of one worker process: each is a running job (and its process group) at once. */
const MAX_SLOTS = 1024;
/** A worker line shows this much (a job's id, state and the start of its command); `show` has the rest. */
const WORKER_LINE = 240;

/** How long a stopped worker waits for leftover handles before it exits by itself. */
const STOPPED_EXIT_MS = 2000;

const stamp = (): string => new Date().toISOString().slice(11, 19);

const start = async (o: WorkerOptions): Promise<void> => {
  const count = parseInteger(o.count ?? 1, '--count', 1, MAX_SLOTS);
  if (o.detach) return detach(o, count);
  // before the job runner starts: it inherits the data directory's handle (see JobRunner)
  const h = prepareHome(home(o));
  const db = database(o);
  // A closed stdout or stderr (`worker start | head`, a terminal gone) must not stop the worker
  // half-way, its jobs left running under a dead process: it carries on and stops logging there.
  outliveStdout();
  let logging = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (!logging) return;
    logging = false;
    const what = e.code === 'EPIPE' ? 'was closed' : `cannot be written (${errnoReason(e, errnoOf(e) ?? e.code ?? 'error')})`;
    process.stderr.write(`queuectl: the worker's output ${what}; worker ${process.pid} carries on without printing (stop it with Ctrl-C or queuectl worker stop)\n`);
  });
  process.stderr.on('error', () => {}); // nowhere left to say anything
  // one line each, control characters escaped and long commands shortened (worker.log is read on terminals too)
  const log = (line: string) => {
    if (logging) process.stdout.write(`[${stamp()}] ${oneLine(line, WORKER_LINE)}\n`);
  };
  // The worker runtime and the job runner are loaded only by the command that runs jobs.
  const [{ WorkerPool }, { JobRunner }] = await Promise.all([import('../worker/runtime.ts'), import('../worker/run-job.ts')]);
  const runner = new JobRunner({ homeFd: h.fd, jobUmask: privateUmask() });
  runner.prestart(); // boots while the queue opens
  const queue = openQueue(h, { serve: true, onHost: (host) => host.startLeaseManager() }, db);
  const pool = new WorkerPool({ queue, home: h, count, drain: Boolean(o.drain), log, runJob: (opts) => runner.run(opts), shareOutput: db !== null });
  let signals = 0;
  const onSignal = (name: string) => {
    signals += 1;
    if (signals === 1) {
      log(`${name}: stopping; running jobs finish first (send it again to end them now and put them back in the queue)`);
      pool.stop();
    } else {
      log(`${name} again: ending running jobs; they go back to pending without using a retry`);
      pool.killRunning(`forced stop (second ${name})`);
    }
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGHUP', () => onSignal('SIGHUP')); // its terminal closed: stop as gracefully
  try {
    await pool.run();
  } finally {
    runner.close();
    await queue.close();
  }
  log(`worker ${process.pid} stopped`);
  // Everything is closed and recorded: a handle a library left behind (the PostgreSQL client's
  // reconnect timer after the server went away and came back) must not keep a stopped worker
  // alive. The timer is unref'd: it fires only if something else still holds the process.
  setTimeout(() => process.exit(process.exitCode ?? 0), STOPPED_EXIT_MS).unref();
};

/** Start in the background and return once its workers have registered. */
const detach = async (o: WorkerOptions, count: number): Promise<void> => {
  const h = prepareHome(home(o));
  const db = database(o);
  const logPath = join(h.dir, 'worker.log');
  const out = openWorkerLog(h, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT);
  const { spawn } = await import('node:child_process');
  const args = [...process.execArgv, process.argv[1]!, 'worker', 'start', '--count', String(count), '--home', h.dir, ...(o.drain ? ['--drain'] : [])];
  // The worker (and so its jobs) starts from the user's umask, not from ours: no database is
  // open in this process yet, so nothing of LevelDB's is created meanwhile.
  process.umask(privateUmask());
  let child;
  try {
    // the database URL goes by the environment, not the command line, where `ps` would show its password
    child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out], env: db ? { ...process.env, QUEUECTL_DATABASE_URL: db.url } : process.env });
  } finally {
    process.umask(0o077);
    closeSync(out);
  }
  child.unref();
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? 1));
  const deadline = Date.now() + 20_000;
  // Ask only once a host serves the socket, and open a fresh queue each time: holding the
  // database here while the child starts would lock it out of becoming the host.
  const registered = async () =>
    existsSync(h.socket) && (await withQueue(o, (q) => q.call('status', {}))).workers.some((w) => w.pid === child.pid);
  while (!(await registered())) {
    if (exited !== null || Date.now() > deadline) {
      const log = openWorkerLog(h, constants.O_RDONLY);
      const tail = readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' | ');
      closeSync(log);
      throw new QueuectlError('QUEUECTL_FAILED', `the background worker did not start (${tail}); see ${logPath}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  if (o.json) process.stdout.write(`${JSON.stringify({ pid: child.pid, log: logPath })}\n`);
  else process.stdout.write(`${child.pid}\n`);
};

/** worker.log, through the data directory's handle, never through a symbolic link, ours alone. */
const openWorkerLog = (h: Home, flags: number): number => {
  const shown = join(h.dir, 'worker.log');
  let fd: number;
  try {
    fd = openSync(h.workerLog, flags | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOOP') throw environmentError(e, 'open the worker log', shown) ?? e;
    throw new QueuectlError('QUEUECTL_UNSAFE_PERMISSIONS', `${shown} is a symbolic link; queuectl did not put it there: move it away`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new QueuectlError('QUEUECTL_UNSAFE_PERMISSIONS', `${shown} is not a regular file; queuectl did not put it there: move it away`);
    checkOwnership(shown, st, 'file');
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
};

/** Our worker processes only: a recycled pid must never be signalled. */
const isWorkerProcess = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes('worker start');
  } catch {
    return false;
  }
};

const stop = async (o: WorkerOptions): Promise<void> => {
  // Over PostgreSQL `status` lists every machine's workers, and another machine's pid may be a
  // live process here: the host names the workers of this data directory on this machine.
  const here = await withQueue(o, (q) => q.call('workersHere', {}));
  const pids = [...new Set(here)].filter((pid) => pid !== process.pid && isAlive(pid) && isWorkerProcess(pid));
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  if (o.force) {
    await new Promise((r) => setTimeout(r, 200));
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGTERM'); // the second signal ends running jobs
  }
  while (pids.some(isAlive)) await new Promise((r) => setTimeout(r, 50));
  if (o.json) process.stdout.write(`${JSON.stringify({ stopped: pids })}\n`);
  else process.stdout.write(pids.length === 0 ? 'no workers running\n' : `stopped ${pids.length} worker process${pids.length === 1 ? '' : 'es'} (${pids.join(', ')})\n`);
};

export const worker = async (action: string, o: WorkerOptions): Promise<void> => {
  if (action === 'start') return start(o);
  if (action === 'stop') return stop(o);
  invalid(`unknown action 'worker ${action}'; use 'worker start' or 'worker stop'`);
};
