// enqueue, status, list, show, logs, history, wait, cancel.
import { existsSync, readFileSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { type JobSpec, parseJobSpec } from '../domain/job-spec.ts';
import { environmentError, QueuectlError } from '../errors.ts';
import type { StoredEvent } from '../events.ts';
import {
  ago, colors, colorState, type GlobalOptions, home, invalid, iso, jobJson, LONG_LIVED, parseDuration, parseInteger, printJson, printTable, rawOption, withQueue,
} from './context.ts';

interface EnqueueOptions extends GlobalOptions {
  id?: unknown;
  maxRetries?: unknown;
  priority?: unknown;
  runAt?: unknown;
  delay?: unknown;
  timeout?: unknown;
  cwd?: unknown;
  file?: unknown;
}

/** Options given on the command line, as job fields; they fill in what a job does not set. */
const fieldsFromOptions = (o: EnqueueOptions, now: number): Record<string, unknown> => {
  const f: Record<string, unknown> = {};
  if (o.id !== undefined) f.id = rawOption('id') ?? String(o.id);
  if (o.maxRetries !== undefined) f.max_retries = parseInteger(o.maxRetries, '--max-retries', 0);
  if (o.priority !== undefined) f.priority = parseInteger(o.priority, '--priority');
  if (o.runAt !== undefined && o.delay !== undefined) invalid('give either --run-at or --delay, not both');
  if (o.runAt !== undefined) f.run_at = String(o.runAt);
  if (o.delay !== undefined) f.run_at = new Date(now + parseDuration(o.delay, '--delay')).toISOString();
  if (o.timeout !== undefined) f.timeout_seconds = parseDuration(o.timeout, '--timeout') / 1000;
  if (o.cwd !== undefined) {
    const cwd = String(o.cwd);
    f.cwd = cwd.startsWith('/') ? cwd : join(process.cwd(), cwd);
  }
  return f;
};

/** A JSON object, a JSON array, or NDJSON; every job is validated before anything is sent. */
const parseJobFile = (text: string): { where: string; raw: unknown }[] => {
  const trimmed = text.trim();
  if (trimmed === '') invalid('the job file is empty');
  if (trimmed.startsWith('[')) {
    let items: unknown;
    try {
      items = JSON.parse(trimmed);
    } catch (e) {
      return invalid(`the job file is not a valid JSON array: ${(e as Error).message}`);
    }
    return (items as unknown[]).map((raw, i) => ({ where: `job ${i + 1} of the array: `, raw }));
  }
  try {
    const one = JSON.parse(trimmed);
    if (typeof one === 'object' && one !== null) return [{ where: '', raw: one }];
  } catch {
    // not one JSON document: NDJSON, one job per line
  }
  const jobs: { where: string; raw: unknown }[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      jobs.push({ where: `line ${i + 1}: `, raw: JSON.parse(line) });
    } catch (e) {
      invalid(`line ${i + 1}: not valid JSON (${(e as Error).message}); the file was not enqueued`);
    }
  });
  return jobs;
};

/**
 * Random numbers in [0, 1) for ulid, from /dev/urandom: as good as ulid's own source
 * (node:crypto), which costs ~3 ms to load, a tenth of a short enqueue (see build.ts). Where
 * /dev/urandom cannot be read (a chroot, a sandbox), node:crypto it is.
 */
const randomSource = async (): Promise<() => number> => {
  const bytes = Buffer.alloc(4096);
  let fill = (): void => {
    const fd = openSync('/dev/urandom', 'r');
    try {
      for (let got = 0; got < bytes.length; ) got += readSync(fd, bytes, got, bytes.length - got, null);
    } finally {
      closeSync(fd);
    }
  };
  try {
    fill();
  } catch {
    const { randomFillSync } = await import('node:crypto');
    fill = () => void randomFillSync(bytes);
    fill();
  }
  let at = 0;
  return () => {
    if (at === bytes.length) {
      fill();
      at = 0;
    }
    return bytes[at++]! / 256;
  };
};

export const enqueue = async (job: string | undefined, o: EnqueueOptions): Promise<void> => {
  const now = Date.now();
  // ulid is loaded by enqueue only
  const { monotonicFactory } = await import('ulid');
  const defaults = { cwd: process.cwd(), newId: monotonicFactory(await randomSource()) };
  const fields = fieldsFromOptions(o, now);
  let specs: JobSpec[];
  if (o.file !== undefined) {
    if (job !== undefined) invalid('give either a job or --file, not both');
    if (fields.id !== undefined) invalid('--id names one job; ids for a file go inside it');
    const path = String(o.file);
    if (path !== '-' && !existsSync(path)) invalid(`no such file: ${path}`);
    let text: string;
    try {
      text = readFileSync(path === '-' ? 0 : path, 'utf8');
    } catch (e) {
      throw environmentError(e, 'read the job file', path === '-' ? 'stdin' : path) ?? e; // EISDIR, EACCES, EIO
    }
    const entries = parseJobFile(text);
    specs = entries.map(({ where, raw }) =>
      parseJobSpec(typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? { ...fields, ...raw } : raw, defaults, where),
    );
    // Two jobs of one file with the same id: name both places (the queue itself can only say "exists").
    const firstWith = new Map<string, string>();
    specs.forEach(({ id }, i) => {
      const where = entries[i]!.where.replace(/: $/, '') || 'the job';
      const first = firstWith.get(id);
      if (first !== undefined) invalid(`${where}: the id '${id}' is already used by ${first}; give each job its own id (or none); the file was not enqueued`);
      firstWith.set(id, where);
    });
  } else {
    if (job === undefined || job.trim() === '') invalid('give the job: a shell command or a JSON object, e.g. queuectl enqueue "echo hi"');
    let raw: unknown;
    if (job!.trimStart().startsWith('{')) {
      try {
        raw = JSON.parse(job!);
      } catch (e) {
        invalid(`the job is not valid JSON (${(e as Error).message}); quote it whole, e.g. '{"command":"echo hi"}'`);
      }
      raw = { ...fields, ...(raw as object) };
    } else {
      raw = { ...fields, command: job };
    }
    specs = [parseJobSpec(raw, defaults)];
  }
  const ids = await withQueue(o, (q) => q.call('enqueue', { jobs: specs }));
  if (o.json) printJson(ids);
  else process.stdout.write(`${ids.join('\n')}\n`);
};

export const status = async (o: GlobalOptions): Promise<void> => {
  const view = await withQueue(o, (q) => q.call('status', {}));
  if (o.json) return printJson(view);
  const j = view.jobs;
  const parts = (['pending', 'processing', 'completed', 'failed', 'dead', 'cancelled'] as const).map((s) => `${colorState(s)} ${j[s]}`);
  process.stdout.write(`${colors.bold('Jobs')}     ${parts.join('  ')}\n`);
  process.stdout.write(`${colors.bold('Oldest')}   ${view.oldest_pending ? `${view.oldest_pending.id} pending for ${ago(view.oldest_pending.age_seconds * 1000)}` : 'nothing pending'}\n`);
  const r = view.runs;
  process.stdout.write(`${colors.bold('Runs')}     ${r.total} (${r.succeeded} succeeded, ${r.failed} failed)${r.average_seconds !== null ? `, average ${r.average_seconds.toFixed(2)}s, longest ${r.max_seconds?.toFixed(2)}s` : ''}\n`);
  if (view.workers.length === 0) {
    process.stdout.write(`${colors.bold('Workers')}  none running (start with: queuectl worker start)\n`);
    return;
  }
  process.stdout.write(`\n`);
  await printTable(
    ['WORKER PID', 'SLOTS', 'RUNNING', 'DONE', 'SINCE'],
    view.workers.map((w) => [w.pid, w.slots, w.running.length === 0 ? 'idle' : w.running.join(' '), w.processed, `${ago(Date.now() - Date.parse(w.since))} ago`]),
  );
};

export const list = async (o: GlobalOptions & { state?: unknown; limit?: unknown }): Promise<void> => {
  const limit = parseInteger(o.limit ?? 50, '--limit', 1);
  const [jobs, config] = await withQueue(o, (q) =>
    Promise.all([q.call('list', { state: o.state === undefined ? undefined : String(o.state), limit }), q.call('config', {})]),
  );
  if (o.json) return printJson(jobs.map((j) => jobJson(j, config)));
  if (jobs.length === 0) {
    process.stdout.write(o.state ? `no ${String(o.state)} jobs\n` : 'no jobs yet (add one with: queuectl enqueue "echo hello")\n');
    return;
  }
  const clip = (s: string) => (s.length > 48 ? `${s.slice(0, 47)}…` : s);
  await printTable(
    ['ID', 'STATE', 'ATTEMPTS', 'PRIORITY', 'UPDATED', 'COMMAND'],
    jobs.map((j) => [j.id, colorState(j.state), j.attempts, j.priority, `${ago(Date.now() - j.updatedAt)} ago`, clip(j.command.replace(/\s+/g, ' '))]),
  );
};

export const show = async (id: string, o: GlobalOptions): Promise<void> => {
  const [job, config] = await withQueue(o, (q) => Promise.all([q.call('show', { id }), q.call('config', {})]));
  const view = jobJson(job, config);
  if (o.json) return printJson(view);
  const width = Math.max(...Object.keys(view).map((k) => k.length));
  for (const [k, v] of Object.entries(view)) {
    const text = k === 'state' ? colorState(String(v)) : v === null ? colors.dim('-') : String(v);
    process.stdout.write(`${colors.bold(k.padEnd(width))}  ${text}\n`);
  }
};

/** The end of each attempt, from the job's events. */
const attemptsOf = (events: StoredEvent[]) => {
  const attempts = new Map<number, { attempt: number; started: number; end: StoredEvent | null }>();
  for (const e of events) {
    if (e.type === 'JobClaimed') attempts.set(e.attempt, { attempt: e.attempt, started: e.at, end: null });
    else if ((e.type === 'JobSucceeded' || e.type === 'JobFailed' || e.type === 'JobLeaseExpired') && attempts.has(e.attempt)) attempts.get(e.attempt)!.end = e;
    else if (e.type === 'JobCancelled' && e.attempt !== null && attempts.has(e.attempt)) attempts.get(e.attempt)!.end = e;
  }
  return [...attempts.values()];
};

const outcome = (end: StoredEvent | null): string => {
  if (end === null) return 'running';
  if (end.type === 'JobSucceeded') return 'exit code 0';
  if (end.type === 'JobFailed') return end.error;
  if (end.type === 'JobLeaseExpired') return end.reason;
  if (end.type === 'JobCancelled') return 'cancelled';
  return end.type;
};

/** At most `cap` bytes of a file: output files are capped when written, but read defensively. */
const readKept = (path: string, cap = 64 * 1024 * 1024): Buffer => {
  if (!existsSync(path)) return Buffer.alloc(0);
  const fd = openSync(path, 'r');
  try {
    const size = Math.min(fstatSync(fd).size, cap);
    const buf = Buffer.alloc(size);
    readSync(fd, buf, 0, size, 0);
    return buf;
  } finally {
    closeSync(fd);
  }
};

export const logs = async (id: string, o: GlobalOptions & { attempt?: unknown }): Promise<void> => {
  const only = o.attempt === undefined ? null : parseInteger(o.attempt, '--attempt', 1);
  const events = await withQueue(o, (q) => q.call('history', { id }));
  const dir = join(home(o).logs, id);
  let attempts = attemptsOf(events);
  if (only !== null) {
    attempts = attempts.filter((a) => a.attempt === only);
    if (attempts.length === 0) throw new QueuectlError('QUEUECTL_FAILED', `job '${id}' has no attempt ${only}; see \`queuectl history ${id}\``);
  }
  const streams = (a: { attempt: number; end: StoredEvent | null }) =>
    (['stdout', 'stderr'] as const).map((name) => {
      const info = a.end && 'output' in a.end && a.end.output ? a.end.output[name] : null;
      return { name, data: readKept(join(dir, `${a.attempt}.${name}`)), info };
    });
  if (o.json) {
    return printJson(
      attempts.map((a) => ({
        attempt: a.attempt,
        status: outcome(a.end),
        duration_seconds: a.end && 'durationMs' in a.end ? a.end.durationMs / 1000 : null,
        ...Object.fromEntries(
          streams(a).flatMap((s) => [
            [s.name, s.data.toString('utf8')],
            [`${s.name}_bytes`, s.info?.bytes ?? s.data.length],
            [`${s.name}_truncated`, s.info?.truncated ?? false],
            ...(s.info?.error ? [[`${s.name}_error`, s.info.error]] : []),
          ]),
        ),
      })),
    );
  }
  if (attempts.length === 0) {
    process.stdout.write(`job '${id}' has not run yet\n`);
    return;
  }
  for (const a of attempts) {
    const duration = a.end && 'durationMs' in a.end ? ` · ${(a.end.durationMs / 1000).toFixed(2)}s` : '';
    process.stdout.write(colors.bold(`── attempt ${a.attempt} · ${outcome(a.end)}${duration} ──\n`));
    for (const s of streams(a)) {
      if (s.data.length === 0 && !s.info?.truncated) continue;
      process.stdout.write(colors.dim(`[${s.name}]\n`));
      process.stdout.write(s.data);
      if (s.data.length > 0 && s.data[s.data.length - 1] !== 0x0a) process.stdout.write('\n');
      if (s.info?.error) process.stdout.write(colors.yellow(`[${s.name} truncated: kept ${s.info.kept} of ${s.info.bytes} bytes; the rest could not be written: ${s.info.error}]\n`));
      else if (s.info?.truncated) process.stdout.write(colors.yellow(`[${s.name} truncated: kept ${s.info.kept} of ${s.info.bytes} bytes; raise the cap with: queuectl config set output_limit <bytes>]\n`));
    }
  }
};

/** One line of detail per event, for `history`. */
export const describeEvent = (e: StoredEvent): string => {
  const secs = (ms: number) => `${(ms / 1000).toFixed(2)}s`;
  switch (e.type) {
    case 'JobEnqueued':
      return `command ${JSON.stringify(e.command)}, priority ${e.priority}${e.runAt !== null ? `, run at ${iso(e.runAt)}` : ''}${e.maxRetries !== null ? `, max_retries ${e.maxRetries}` : ''}${e.timeoutMs !== null ? `, timeout ${secs(e.timeoutMs)}` : ''}`;
    case 'JobClaimed':
      return `attempt ${e.attempt} by worker ${e.workerId}, lease until ${iso(e.leaseUntil)}`;
    case 'JobSucceeded':
      return `attempt ${e.attempt}: exit code 0 in ${secs(e.durationMs)}`;
    case 'JobFailed':
      return `attempt ${e.attempt}: ${e.error} after ${secs(e.durationMs)}; ${e.retryAt === null ? `no retries left (max_retries ${e.maxRetries})` : `retry ${e.retry}/${e.maxRetries} at ${iso(e.retryAt)}`}`;
    case 'JobLeaseExpired':
      return `attempt ${e.attempt}: ${e.reason} (worker ${e.workerId}); ${e.retryAt === null ? `no retries left (max_retries ${e.maxRetries})` : `retry ${e.retry}/${e.maxRetries} at ${iso(e.retryAt)}`}`;
    case 'JobDeadLettered':
      return `moved to the DLQ after attempt ${e.attempt}: ${e.error}`;
    case 'JobRetried':
      return 'retried from the DLQ: attempts start again';
    case 'JobCancelled':
      return e.attempt === null ? 'cancelled' : `cancelled while attempt ${e.attempt} ran on worker ${e.workerId}`;
    case 'ConfigSet':
      return `${e.key} = ${e.value}`;
    case 'WorkerStarted':
      return `worker ${e.workerId} (pid ${e.pid}, ${e.slots} slot${e.slots === 1 ? '' : 's'})`;
    case 'WorkerStopped':
      return `worker ${e.workerId}: ${e.reason}`;
  }
};

export const history = async (id: string, o: GlobalOptions): Promise<void> => {
  const events = await withQueue(o, (q) => q.call('history', { id }));
  if (o.json) return printJson(events);
  await printTable(
    ['POS', 'TIME', 'EVENT', 'DETAILS'],
    events.map((e) => [e.pos, iso(e.at), e.type, describeEvent(e)]),
  );
};

export const wait = async (ids: string[], o: GlobalOptions & { timeout?: unknown }): Promise<void> => {
  const timeoutMs = o.timeout === undefined ? null : parseDuration(o.timeout, '--timeout');
  const deadline = timeoutMs === null ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
  const result = await withQueue(o, async (q) => {
    for (;;) {
      const left = deadline - Date.now();
      const r = await q.call('wait', { ids, waitMs: Math.max(0, Math.min(left, 10_000)) });
      if (r.done || left <= 0) return r;
    }
  }, LONG_LIVED);
  const failed = result.jobs.filter((j) => j.state !== 'completed');
  if (o.json) printJson({ done: result.done, jobs: result.jobs.map((j) => ({ id: j.id, state: j.state })) });
  else for (const j of result.jobs) process.stdout.write(`${j.id} ${colorState(j.state)}\n`);
  if (!result.done) throw new QueuectlError('QUEUECTL_TIMEOUT', `gave up waiting after ${(timeoutMs! / 1000).toString()}s; ${ids.length > 0 ? `still running: ${failed.map((j) => j.id).join(', ')}` : 'jobs are still pending or running'}`);
  if (failed.length > 0) {
    throw new QueuectlError('QUEUECTL_FAILED', `${failed.map((j) => `${j.id} is ${j.state}`).join(', ')}; see \`queuectl logs <id>\``);
  }
};

export const cancel = async (id: string, o: GlobalOptions): Promise<void> => {
  const job = await withQueue(o, (q) => q.call('cancel', { id }));
  if (o.json) printJson({ id: job.id, state: job.state });
  else process.stdout.write(`cancelled ${job.id}\n`);
};
