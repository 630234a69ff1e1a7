// The rules of the queue as pure functions: decide(command, state, now) -> events.
// No I/O and no clock: the store loads the state, passes the time, and appends what comes out
// (transact, src/store/port.ts).
import { QueuectlError } from '../errors.ts';
import type { AttemptOutput, EventData } from '../events.ts';
import { type Config, parseConfigValue } from './config.ts';
import { checkBatchSize, checkJobSpec, type JobSpec } from './job-spec.ts';
import { decideRetry, isDue } from './policy.ts';
import type { JobView } from './types.ts';

export interface AttemptResult {
  durationMs: number;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  error: string | null; // null: success
  output: AttemptOutput | null;
}

export type Command =
  | { type: 'enqueue'; jobs: JobSpec[] }
  | { type: 'claim'; jobId: string; workerId: string; leaseMs: number }
  | { type: 'report'; jobId: string; workerId: string; attempt: number; result: AttemptResult }
  | { type: 'expireLease'; jobId: string; attempt: number; reason: string }
  | { type: 'release'; jobId: string; workerId: string; attempt: number; reason: string; durationMs: number; output: AttemptOutput | null }
  | { type: 'retry'; jobIds: string[] }
  | { type: 'cancel'; jobId: string }
  | { type: 'configSet'; key: string; value: unknown }
  | { type: 'workerStart'; workerId: string; pid: number; slots: number }
  | { type: 'workerStop'; workerId: string; reason: string };

export interface DecideState {
  /** The current view of every job the command names (undefined: no such job). */
  jobs: ReadonlyMap<string, JobView | undefined>;
  config: Config;
}

/** Which jobs the engine must load before deciding. */
export const jobsNamedBy = (command: Command): string[] => {
  switch (command.type) {
    case 'enqueue':
      return command.jobs.map((j) => j.id);
    case 'retry':
      return command.jobIds;
    case 'claim':
    case 'report':
    case 'expireLease':
    case 'release':
    case 'cancel':
      return [command.jobId];
    case 'configSet':
    case 'workerStart':
    case 'workerStop':
      return [];
    default:
      command satisfies never; // a new command must say which jobs it reads
      return [];
  }
};

const refuse = (code: ConstructorParameters<typeof QueuectlError>[0], message: string): never => {
  throw new QueuectlError(code, message);
};

const known = (state: DecideState, id: string): JobView =>
  state.jobs.get(id) ?? refuse('QUEUECTL_UNKNOWN_JOB', `no job with id '${id}'; see \`queuectl list\``);

/** The attempt number is the fencing token: only the current attempt of a processing job may report. */
const current = (state: DecideState, id: string, attempt: number, workerId?: string): JobView => {
  const job = known(state, id);
  if (job.state !== 'processing' || job.totalAttempts !== attempt || (workerId !== undefined && job.workerId !== workerId)) {
    refuse(
      'QUEUECTL_STALE_ATTEMPT',
      `attempt ${attempt} of job '${id}' is no longer current (job is ${job.state}, attempt ${job.totalAttempts}); its result was refused`,
    );
  }
  return job;
};

const failureEvents = (
  job: JobView,
  config: Config,
  now: number,
  base: { workerId: string; attempt: number },
  make: (d: ReturnType<typeof decideRetry>) => EventData,
  error: string,
): EventData[] => {
  const decision = decideRetry(job, config, now);
  const events = [make(decision)];
  if (decision.retryAt === null) events.push({ type: 'JobDeadLettered', jobId: job.id, attempt: base.attempt, error });
  return events;
};

/** Throws a QueuectlError when the command is refused; a refused command produces no event. */
export const decide = (command: Command, state: DecideState, now: number): EventData[] => {
  switch (command.type) {
    case 'enqueue': {
      if (command.jobs.length === 0) refuse('QUEUECTL_INVALID_INPUT', 'nothing to enqueue: give at least one job');
      const seen = new Set<string>();
      // the same rules as the CLI's (checkJobSpec), whoever sent the jobs
      const specs = command.jobs.map((raw, i) => {
        const spec = checkJobSpec(raw, command.jobs.length > 1 ? `job ${i + 1} of ${command.jobs.length}: ` : '');
        if (seen.has(spec.id) || state.jobs.get(spec.id)) {
          refuse('QUEUECTL_DUPLICATE_ID', `a job with id '${spec.id}' already exists; choose another id or omit it to get a generated one`);
        }
        seen.add(spec.id);
        return spec;
      });
      checkBatchSize(specs);
      return specs.map((s) => ({
        type: 'JobEnqueued',
        jobId: s.id,
        command: s.command,
        cwd: s.cwd,
        priority: s.priority,
        maxRetries: s.maxRetries,
        runAt: s.runAt,
        timeoutMs: s.timeoutMs,
      }));
    }
    case 'claim': {
      const job = known(state, command.jobId);
      if (!isDue(job, now)) {
        refuse('QUEUECTL_NOT_RUNNABLE', `job '${job.id}' is ${job.state}${job.nextRunAt !== null && job.nextRunAt > now ? ' and not due yet' : ''}; it cannot be claimed`);
      }
      return [{ type: 'JobClaimed', jobId: job.id, workerId: command.workerId, attempt: job.totalAttempts + 1, leaseUntil: now + command.leaseMs }];
    }
    case 'report': {
      const job = current(state, command.jobId, command.attempt, command.workerId);
      const r = command.result;
      const base = { jobId: job.id, workerId: command.workerId, attempt: command.attempt, durationMs: r.durationMs, output: r.output };
      if (r.error === null) return [{ type: 'JobSucceeded', ...base }];
      return failureEvents(job, state.config, now, command, (d) => ({
        type: 'JobFailed',
        ...base,
        error: r.error ?? 'failed',
        exitCode: r.exitCode,
        signal: r.signal,
        timedOut: r.timedOut,
        ...d,
      }), r.error);
    }
    case 'expireLease': {
      const job = current(state, command.jobId, command.attempt);
      const workerId = job.workerId ?? 'unknown';
      return failureEvents(job, state.config, now, { workerId, attempt: command.attempt }, (d) => ({
        type: 'JobLeaseExpired',
        jobId: job.id,
        workerId,
        attempt: command.attempt,
        reason: command.reason,
        ...d,
      }), command.reason);
    }
    case 'release': {
      // Only the worker holding the current attempt may hand it back; the attempt stays spent
      // as a fencing token (the next claim is attempt + 1), not as a retry.
      const job = current(state, command.jobId, command.attempt, command.workerId);
      const { workerId, attempt, reason, durationMs, output } = command;
      return [{ type: 'JobReleased', jobId: job.id, workerId, attempt, reason, durationMs, output }];
    }
    case 'retry': {
      if (command.jobIds.length === 0) refuse('QUEUECTL_INVALID_INPUT', 'name at least one dead job to retry, or use --all');
      // naming a job twice retries it once: one retry is one fact
      return [...new Set(command.jobIds)].map((id) => {
        const job = known(state, id);
        if (job.state !== 'dead') refuse('QUEUECTL_WRONG_STATE', `job '${id}' is ${job.state}, not dead; only jobs in the DLQ can be retried`);
        return { type: 'JobRetried', jobId: id };
      });
    }
    case 'cancel': {
      const job = known(state, command.jobId);
      if (job.state !== 'pending' && job.state !== 'failed' && job.state !== 'processing') {
        refuse('QUEUECTL_WRONG_STATE', `job '${job.id}' is ${job.state}; only pending, failed or processing jobs can be cancelled`);
      }
      const running = job.state === 'processing';
      return [{ type: 'JobCancelled', jobId: job.id, workerId: running ? job.workerId : null, attempt: running ? job.totalAttempts : null }];
    }
    case 'configSet': {
      const { key, value } = parseConfigValue(command.key, command.value);
      return [{ type: 'ConfigSet', key, value }];
    }
    case 'workerStart':
      return [{ type: 'WorkerStarted', workerId: command.workerId, pid: command.pid, slots: command.slots }];
    case 'workerStop':
      return [{ type: 'WorkerStopped', workerId: command.workerId, reason: command.reason }];
  }
};
