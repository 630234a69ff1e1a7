// The engine: a command handler over the store port. load -> decide -> append -> answer, as
// one transaction of the store (src/store/port.ts), which makes it atomic and durable its own
// way. Nothing here knows the backend; the host owns one engine and everyone else asks the host.
import type { Config } from '../domain/config.ts';
import { type Command, decide, jobsNamedBy } from '../domain/decide.ts';
import { JOB_STATES, type JobState, type JobView } from '../domain/types.ts';
import { QueuectlError } from '../errors.ts';
import type { StoredEvent } from '../events.ts';
import type { DlqEntry } from '../../projections/dlq.ts';
import type { Counts } from '../../projections/states.ts';
import type { WorkerView } from '../../projections/workers.ts';
import type { CloseOptions, Store } from '../store/port.ts';

export interface Claim {
  job: JobView;
  attempt: number;
  leaseUntil: number;
  /** output_limit as the claim's decision read it (in its transaction), so no second read of the config */
  outputLimit: number;
}

export class Engine {
  readonly store: Store;
  readonly clock: () => number;

  constructor(store: Store) {
    this.store = store;
    this.clock = store.clock;
  }

  /** Decide and append a command; resolves with its events once they are durable. */
  async execute(command: Command): Promise<StoredEvent[]> {
    return (await this.store.transact(jobsNamedBy(command), (state, now) => decide(command, state, now))).events;
  }

  /** Claim the next runnable job for a worker, or null when nothing is due. */
  async claimNext(workerId: string, leaseMs?: number): Promise<Claim | null> {
    // the config the committed decision read: a store may decide more than once (a retried
    // transaction), and the last decision is the one appended
    let outputLimit = 0;
    const committed = await this.store.claimNext((jobId) => (state, now) => {
      outputLimit = state.config.output_limit;
      return decide({ type: 'claim', jobId, workerId, leaseMs: leaseMs ?? state.config.lease_seconds * 1000 }, state, now);
    });
    if (!committed) return null;
    const claimed = committed.events[0];
    const job = claimed?.type === 'JobClaimed' ? committed.jobs.get(claimed.jobId) : undefined;
    if (claimed?.type !== 'JobClaimed' || !job) throw new Error('claim produced no JobClaimed event');
    return { job, attempt: claimed.attempt, leaseUntil: claimed.leaseUntil, outputLimit };
  }

  /** The earliest time a queued job becomes due, or null when none is queued. */
  nextDueAt(): Promise<number | null> {
    return this.store.nextDueAt();
  }

  /** The configuration in force. */
  getConfig(): Promise<Config> {
    return this.store.config();
  }

  // ---- queries -------------------------------------------------------------------------------

  getJob(id: string): Promise<JobView | undefined> {
    return this.store.job(id);
  }

  async requireJob(id: string): Promise<JobView> {
    const job = await this.getJob(id);
    if (!job) throw new QueuectlError('QUEUECTL_UNKNOWN_JOB', `no job with id '${id}'; see \`queuectl list\``);
    return job;
  }

  /** Jobs newest first, optionally in one state. */
  listJobs(options: { state?: JobState; limit?: number } = {}): Promise<JobView[]> {
    return this.store.list(options);
  }

  /** The oldest job waiting in a state (e.g. the oldest pending). */
  oldest(state: JobState): Promise<JobView | undefined> {
    return this.store.oldest(state);
  }

  counts(): Promise<Counts> {
    return this.store.counts();
  }

  workers(): Promise<WorkerView[]> {
    return this.store.workers();
  }

  dlq(): Promise<DlqEntry[]> {
    return this.store.dlq();
  }

  history(id: string): Promise<StoredEvent[]> {
    return this.store.readStream(id);
  }

  // ---- maintenance ----------------------------------------------------------------------------

  rebuild(): Promise<number> {
    return this.store.rebuild();
  }

  verify(limit?: number): Promise<{ events: number; differences: string[] }> {
    return this.store.verify(limit);
  }

  close(options?: CloseOptions): Promise<void> {
    return this.store.close(options);
  }
}

export const isJobState = (s: string): s is JobState => (JOB_STATES as readonly string[]).includes(s);
