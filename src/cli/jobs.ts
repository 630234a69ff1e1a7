// enqueue, status, list, show, logs, history, wait, cancel.
import { existsSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { checkBatchSize, LATEST_TIME_MS, MAX_TIMEOUT_MS, parseJobSpec, timeoutMsFromSeconds } from '../domain/job-spec.ts';
import { environmentError, isQueuectlError, QueuectlError } from '../errors.ts';
import { prepareHome } from '../home.ts';
import type { AttemptOutput, StoredEvent } from '../events.ts';
import { CONFIG_RULES } from '../domain/config.ts';
import { attemptsOf, followAttempt, header, outcome } from './attempts.ts';
import { oneLine, visible } from './escape.ts';
import {
  ago, colors, colorState, type GlobalOptions, home, invalid, iso, jobJson, LONG_LIVED, parseDuration, parseInteger, printJson, printTable, withQueue,
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
  command?: unknown;
}

/** Options given on the command line, as job fields; they fill in what a job does not set. */
const fieldsFromOptions = (o: EnqueueOptions, now: number): Record<string, unknown> => {
  const f: Record<string, unknown> = {};
  if (o.id !== undefined) f.id = String(o.id);
  if (o.maxRetries !== undefined) f.max_retries = parseInteger(o.maxRetries, '--max-retries', 0);
  if (o.priority !== undefined) f.priority = parseInteger(o.priority, '--priority');
  if (o.runAt !== undefined && o.delay !== undefined) invalid('give either --run-at or --delay, not both');
  if (o.runAt !== undefined) f.run_at = String(o.runAt);
  if (o.delay !== undefined) {
    const at = now + parseDuration(o.delay, '--delay');
    if (at > LATEST_TIME_MS) invalid(`--delay ${String(o.delay)} reaches past 9999-12-31, the latest time a job can be scheduled`);
    f.run_at = new Date(at).toISOString();
  }
  if (o.timeout !== undefined) f.timeout_seconds = timeoutMsFromSeconds(parseDuration(o.timeout, '--timeout', MAX_TIMEOUT_MS) / 1000, '--timeout') / 1000;
  if (o.cwd !== undefined) f.cwd = String(o.cwd); // a relative path is resolved as in JSON (parseJobSpec)
  return f;
};

/**
 * Whether a job argument is meant as JSON: it opens like an object (`{"`, `{}`) or an array of
 * them (`[{`, `[]`). A shell brace group (`{ echo a; } > f`) or test (`[ -f x ]`) does not,
 * and is a shell command; `--command` makes any text a shell command.
 */
const looksLikeJson = (text: string): boolean => /^\s*(\{\s*["}]|\[\s*[{\]])/.test(text);

/** How much of a command a table cell or a worker line shows (`show` and --json give all of it). */
export const COMMAND_CELL = 48;

type Entry = { where: string; raw: unknown };

/** One JSON job, or an array of them: each with where it stands, for messages. */
const entriesOf = (value: unknown): Entry[] =>
  Array.isArray(value) ? value.map((raw, i) => ({ where: `job ${i + 1} of the array: `, raw })) : [{ where: '', raw: value }];

/** A JSON object, a JSON array, or NDJSON; every job is validated before anything is sent. */
const parseJobFile = (text: string): Entry[] => {
  const trimmed = text.trim();
  if (trimmed === '') invalid('the job file is empty');
  if (trimmed.startsWith('[')) {
    try {
      return entriesOf(JSON.parse(trimmed));
    } catch (e) {
      return invalid(`the job file is not a valid JSON array: ${(e as Error).message}`);
    }
  }
  try {
    const one = JSON.parse(trimmed);
    if (typeof one === 'object' && one !== null) return [{ where: '', raw: one }];
  } catch {
    // not one JSON document: NDJSON, one job per line
  }
  const jobs: Entry[] = [];
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

/** A job file holds at most this much: far more than a million jobs, and bounded memory for a FIFO or device. */
const MAX_JOB_FILE_BYTES = 64 * 1024 * 1024;

/**
 * A job file, FIFO, device or stdin, read in chunks and refused past MAX_JOB_FILE_BYTES
 * without reading on (`--file /dev/zero` stops at the limit).
 */
const readJobFile = (path: string): string => {
  if (path !== '-' && !existsSync(path)) invalid(`no such file: ${path}`);
  const tooBig = (): never => invalid(`${path === '-' ? 'stdin' : path} holds more than ${MAX_JOB_FILE_BYTES / 1024 / 1024} MiB, the most one --file may hold; split it into several files`);
  let fd: number | undefined;
  try {
    fd = path === '-' ? 0 : openSync(path, 'r');
    const st = fstatSync(fd);
    if (st.isFile() && st.size > MAX_JOB_FILE_BYTES) tooBig();
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1 << 20, MAX_JOB_FILE_BYTES + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > MAX_JOB_FILE_BYTES) tooBig();
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } catch (e) {
    throw environmentError(e, 'read the job file', path === '-' ? 'stdin' : path) ?? e; // EISDIR, EACCES, EIO
  } finally {
    if (fd !== undefined && fd !== 0) closeSync(fd);
  }
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
  const fields = fieldsFromOptions(o, now);
  const given = [job !== undefined && 'a job', o.command !== undefined && '--command', o.file !== undefined && '--file'].filter((g) => g !== false);
  if (given.length > 1) invalid(`give either ${given[0]} or ${given[1]}, not both`);
  let entries: Entry[];
  if (o.file !== undefined) {
    if (fields.id !== undefined) invalid('--id names one job; ids for a file go inside it');
    entries = parseJobFile(readJobFile(String(o.file)));
  } else if (o.command !== undefined) {
    entries = [{ where: '', raw: { command: String(o.command) } }];
  } else {
    if (job === undefined || job.trim() === '') return invalid('give the job: a shell command or a JSON object, e.g. queuectl enqueue "echo hi"');
    if (!looksLikeJson(job)) entries = [{ where: '', raw: { command: job } }];
    else {
      try {
        entries = entriesOf(JSON.parse(job));
      } catch (e) {
        return invalid(`the job starts like JSON but is not valid JSON (${(e as Error).message}); quote it whole, e.g. '{"command":"echo hi"}', or give a shell command with --command`);
      }
      if (entries.length !== 1 && fields.id !== undefined) invalid('--id names one job; ids for an array go inside it');
    }
  }
  if (entries.length === 0) invalid('nothing to enqueue: the array is empty');
  // ulid is loaded by enqueue only
  const { monotonicFactory } = await import('ulid');
  const defaults = { cwd: process.cwd(), newId: monotonicFactory(await randomSource()) };
  const specs = entries.map(({ where, raw }) =>
    parseJobSpec(typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? { ...fields, ...raw } : raw, defaults, where),
  );
  // Two jobs of one file with the same id: name both places (the queue itself can only say "exists").
  const firstWith = new Map<string, string>();
  specs.forEach(({ id }, i) => {
    const where = entries[i]!.where.replace(/: $/, '') || 'the job';
    const first = firstWith.get(id);
    if (first !== undefined) invalid(`${where}: the id '${id}' is already used by ${first}; give each job its own id (or none); nothing was enqueued`);
    firstWith.set(id, where);
  });
  checkBatchSize(specs);
  const ids = await withQueue(o, (q) => q.call('enqueue', { jobs: specs }));
  if (o.json) printJson(ids);
  else process.stdout.write(`${ids.join('\n')}\n`);
};

export const status = async (o: GlobalOptions): Promise<void> => {
  const view = await withQueue(o, (q) => q.call('status', {}));
  if (o.json) return printJson(view);
  const j = view.jobs;
  const lost = view.workers.filter((w) => !w.alive);
  const lostJobs = lost.flatMap((w) => w.lost_jobs);
  const parts = (['pending', 'processing', 'completed', 'failed', 'dead', 'cancelled'] as const).map(
    (s) => `${colorState(s)} ${j[s]}${s === 'processing' && lostJobs.length > 0 ? ` (${lostJobs.length} lost)` : ''}`,
  );
  process.stdout.write(`${colors.bold('Jobs')}     ${parts.join('  ')}\n`);
  process.stdout.write(`${colors.bold('Oldest')}   ${view.oldest_pending ? `${oneLine(view.oldest_pending.id)} pending for ${ago(view.oldest_pending.age_seconds * 1000)}` : 'nothing pending'}\n`);
  const r = view.runs;
  process.stdout.write(`${colors.bold('Runs')}     ${r.total} (${r.succeeded} succeeded, ${r.failed} failed)${r.average_seconds !== null ? `, average ${r.average_seconds.toFixed(2)}s, longest ${r.max_seconds?.toFixed(2)}s` : ''}\n`);
  const b = view.backend;
  if (b) process.stdout.write(`${colors.bold('Backend')}  ${b.type === 'leveldb' ? `LevelDB ${oneLine(b.path)}` : `PostgreSQL ${oneLine(b.url)}`}\n`);
  if (view.workers.length === 0) {
    process.stdout.write(`${colors.bold('Workers')}  none running (start with: queuectl worker start)\n`);
    return;
  }
  process.stdout.write(`\n`);
  await printTable(
    ['HOST', 'WORKER PID', 'STATE', 'SLOTS', 'RUNNING', 'DONE', 'SINCE'],
    view.workers.map((w) => [
      w.host === null ? '-' : oneLine(w.host),
      w.pid,
      w.alive ? 'alive' : colors.red('lost'),
      w.slots,
      w.alive ? (w.running.length === 0 ? 'idle' : oneLine(w.running.join(' '), 80)) : '-',
      w.processed,
      `${ago(Date.now() - Date.parse(w.since))} ago`,
    ]),
  );
  // Shown, not recorded: a read writes nothing; the next `worker start` records the loss.
  for (const w of lost) {
    const held = w.lost_jobs.length === 0 ? 'it ran nothing, and its stop is recorded' : `its job${w.lost_jobs.length === 1 ? '' : 's'} ${oneLine(w.lost_jobs.join(' '), 200)} will end as "worker lost"`;
    process.stdout.write(`${colors.bold('Lost')}     worker ${w.pid}${w.host === null ? '' : ` on ${oneLine(w.host)}`} is gone; ${held} when a worker next starts (\`queuectl worker start\`)\n`);
  }
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
  await printTable(
    ['ID', 'STATE', 'ATTEMPTS', 'PRIORITY', 'UPDATED', 'COMMAND'],
    jobs.map((j) => [oneLine(j.id), colorState(j.state), j.attempts, j.priority, `${ago(Date.now() - j.updatedAt)} ago`, oneLine(j.command, COMMAND_CELL)]),
  );
};

export const show = async (id: string, o: GlobalOptions): Promise<void> => {
  const [job, config] = await withQueue(o, (q) => Promise.all([q.call('show', { id }), q.call('config', {})]));
  const view = jobJson(job, config);
  if (o.json) return printJson(view);
  const width = Math.max(...Object.keys(view).map((k) => k.length));
  for (const [k, v] of Object.entries(view)) {
    const text = k === 'state' ? colorState(visible(String(v))) : v === null ? colors.dim('-') : visible(String(v));
    process.stdout.write(`${colors.bold(k.padEnd(width))}  ${text}\n`);
  }
};

/**
 * At most `cap` bytes of a file: output files are capped when written, but read defensively.
 * `shown`: the file as messages name it (`path` goes through the data directory's handle).
 */
const readKept = (path: string, shown: string, cap = CONFIG_RULES.output_limit.max): Buffer => {
  if (!existsSync(path)) return Buffer.alloc(0);
  try {
    const fd = openSync(path, 'r');
    try {
      const size = Math.min(fstatSync(fd).size, cap);
      const buf = Buffer.alloc(size);
      readSync(fd, buf, 0, size, 0);
      return buf;
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw environmentError(e, 'read the output', shown) ?? e; // EISDIR, EACCES, EIO
  }
};

export const logs = async (id: string, o: GlobalOptions & { attempt?: unknown; raw?: boolean; follow?: boolean }): Promise<void> => {
  const only = o.attempt === undefined ? null : parseInteger(o.attempt, '--attempt', 1);
  if (o.follow && o.json) invalid('--follow prints output as it comes and has no --json form; use --follow --raw for the bytes, or --json without --follow');
  // With PostgreSQL, an attempt's output is also in the database (it may have run on another
  // machine): `shared` has it per attempt; null entries (LevelDB) mean the files under --home only.
  const [attempts, shared] = await withQueue(o, async (q) => {
    let found = attemptsOf(await q.call('history', { id }));
    if (only !== null) {
      found = found.filter((a) => a.attempt === only);
      if (found.length === 0) throw new QueuectlError('QUEUECTL_FAILED', `job '${id}' has no attempt ${only}; see \`queuectl history ${id}\``);
    }
    return [found, await Promise.all(found.map((a) => q.call('output', { jobId: id, attempt: a.attempt })))] as const;
  });
  const h = prepareHome(home(o));
  const dir = join(h.logs, id); // through the checked directory's handle
  // --follow: the last attempt, if it runs, is printed as it is written (after the others)
  const last = attempts.at(-1);
  const following = o.follow && last?.end === null ? last : null;
  const printed = following ? attempts.slice(0, -1) : attempts;
  const shownDir = join(h.dir, 'logs', id); // what messages name: the path as the user gave it
  // `missing`: bytes the attempt's event says were kept but are not on disk (deleted by hand)
  const streams = (a: { attempt: number; end: StoredEvent | null }) =>
    (['stdout', 'stderr'] as const).map((name) => {
      const info = a.end && 'output' in a.end && a.end.output ? a.end.output[name] : null;
      const path = join(shownDir, `${a.attempt}.${name}`);
      // a running attempt's output is in its machine's files until it ends: the longer one is the more complete
      const local = readKept(join(dir, `${a.attempt}.${name}`), path);
      const kept = shared[attempts.indexOf(a as (typeof attempts)[number])]?.[name];
      const remote = kept === undefined ? null : Buffer.from(kept, 'base64');
      const data = remote !== null && remote.length >= local.length ? remote : local;
      return { name, path, data, info, missing: Math.max(0, (info?.kept ?? 0) - data.length) };
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
            [`${s.name}_missing_bytes`, s.missing],
            ...(s.info?.error ? [[`${s.name}_error`, s.info.error]] : []),
          ]),
        ),
      })),
    );
  }
  if (o.raw) {
    // the bytes as kept, for scripts and files: no headers, nothing escaped
    const all = printed.flatMap(streams);
    for (const s of all) (s.name === 'stdout' ? process.stdout : process.stderr).write(s.data);
    if (following) await follow(id, o, following.attempt, dir, true);
    const gone = all.filter((s) => s.missing > 0);
    if (gone.length > 0) throw new QueuectlError('QUEUECTL_FAILED', `kept output is missing: ${gone.map((s) => `${s.path} (${s.missing} bytes)`).join(', ')}`);
    return;
  }
  if (attempts.length === 0) {
    process.stdout.write(`job '${id}' has not run yet\n`);
    return;
  }
  for (const a of printed) {
    process.stdout.write(header(a));
    for (const s of streams(a)) {
      if (s.data.length === 0 && !s.info?.truncated && s.missing === 0) continue;
      process.stdout.write(colors.dim(`[${s.name}]\n`));
      // control characters in a job's output would act on this terminal: shown as \xNN (--raw for the bytes)
      const text = visible(s.data.toString('utf8'));
      process.stdout.write(text);
      if (text.length > 0 && !text.endsWith('\n')) process.stdout.write('\n');
      if (s.missing > 0) process.stdout.write(colors.red(`[${s.name} missing: ${s.missing} of ${s.info!.kept} kept bytes are gone from ${s.path} (deleted or damaged)]\n`));
      truncation(s.name, s.info);
    }
  }
  if (following) {
    process.stdout.write(header(following));
    const ended = await follow(id, o, following.attempt, dir, false);
    // how it ended, as `logs` would have headed it
    process.stdout.write(header(ended));
    for (const name of ['stdout', 'stderr'] as const) truncation(name, ended.end && 'output' in ended.end && ended.end.output ? ended.end.output[name] : null);
  }
};

/** `logs --follow`: an attempt's output as it comes, through a queue that may wait long. */
const follow = (id: string, o: GlobalOptions, attempt: number, dir: string, raw: boolean) =>
  withQueue(o, (q) => followAttempt(q, id, attempt, dir, raw), LONG_LIVED);

/** The line saying a stream was cut short, if it was. */
const truncation = (name: string, info: AttemptOutput[keyof AttemptOutput] | null | undefined): void => {
  if (info?.error) process.stdout.write(colors.yellow(`[${name} truncated: kept ${info.kept} of ${info.bytes} bytes; the rest could not be written: ${oneLine(info.error, 200)}]\n`));
  else if (info?.truncated) process.stdout.write(colors.yellow(`[${name} truncated: kept ${info.kept} of ${info.bytes} bytes; raise the cap with: queuectl config set output_limit <bytes>]\n`));
};

/** One line of detail per event, for `history` and `events`: never throws, whatever a log holds. */
export const describeEvent = (e: StoredEvent): string => oneLine(detail(e), 1000);

// a field of an event from an older or damaged log may be missing or of another type
const secs = (ms: unknown) => (typeof ms === 'number' ? `${(ms / 1000).toFixed(2)}s` : `${String(ms)}ms`);

const detail = (e: StoredEvent): string => {
  switch (e.type) {
    case 'JobEnqueued':
      return `command "${oneLine(String(e.command), COMMAND_CELL * 4)}", priority ${e.priority}${e.runAt !== null ? `, run at ${iso(e.runAt)}` : ''}${e.maxRetries !== null ? `, max_retries ${e.maxRetries}` : ''}${e.timeoutMs !== null ? `, timeout ${secs(e.timeoutMs)}` : ''}`;
    case 'JobClaimed':
      return `attempt ${e.attempt} by worker ${e.workerId}, lease until ${iso(e.leaseUntil)}`;
    case 'JobSucceeded':
      return `attempt ${e.attempt}: exit code 0 in ${secs(e.durationMs)}`;
    case 'JobFailed':
      return `attempt ${e.attempt}: ${e.error} after ${secs(e.durationMs)}; ${e.retryAt === null ? `no retries left (max_retries ${e.maxRetries})` : `retry ${e.retry}/${e.maxRetries} at ${iso(e.retryAt)}`}`;
    case 'JobLeaseExpired':
      return `attempt ${e.attempt}: ${e.reason} (worker ${e.workerId}); ${e.retryAt === null ? `no retries left (max_retries ${e.maxRetries})` : `retry ${e.retry}/${e.maxRetries} at ${iso(e.retryAt)}`}`;
    case 'JobReleased':
      return e.output === null
        ? `attempt ${e.attempt}: handed back unstarted by ${e.reason} (worker ${e.workerId}); back to pending, not counted as a retry`
        : `attempt ${e.attempt}: ended by ${e.reason} after ${secs(e.durationMs)} (worker ${e.workerId}); back to pending, not counted as a retry`;
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
    default:
      return JSON.stringify(e);
  }
};

export const history = async (id: string, o: GlobalOptions): Promise<void> => {
  const events = await withQueue(o, (q) => q.call('history', { id }));
  if (o.json) return printJson(events);
  await printTable(
    ['POS', 'TIME', 'EVENT', 'DETAILS'],
    events.map((e) => [e.pos, iso(e.at), oneLine(String(e.type), 40), describeEvent(e)]),
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
