// The event log in PostgreSQL: appending inside a caller's transaction, and reading in commit
// order without ever skipping an event.
//
// Why reads by position are safe here: `appendEvents` takes its positions by updating the one
// row of `log_head` (schema.ts), and that row stays locked until the transaction ends. So an
// appending transaction cannot take positions until the previous one has committed (or rolled
// back, undoing its update): positions become visible in order and without gaps. A reader that
// has seen position p and asks for p + 1 onwards can never miss one that commits later, which
// a bigserial alone does not promise (a sequence hands out numbers at insert time, and the
// transactions holding them commit in any order).
//
// `appendEvents` must be the LAST lock a transaction takes on shared rows (decide and lock job
// rows first): everything after it is serialised with every other appender, until commit.
import type { EventData, StoredEvent } from '../../events.ts';
import { EVENT_SCHEMA_VERSION, jobIdOf, upcast } from '../../events.ts';
import { type Fragment, type Queryable, type Sql, type TransactionSql, withCommas } from './connect.ts';

/** An event as decided: its data and the time it was decided at. */
export interface NewEvent {
  at: number;
  data: EventData;
}

interface EventRow {
  pos: string; // int8 arrives as text
  at: string;
  v: number;
  data: EventData;
}

const stored = (row: EventRow): StoredEvent => upcast({ ...row.data, pos: Number(row.pos), at: Number(row.at), v: row.v } as StoredEvent);

/** The NOTIFY channel that wakes the readers of one queue (schema). */
export const eventsChannel = (schema: string): string => `queuectl_${schema}`;

/**
 * Lock the head (the log's last contended lock: take it after every row lock) and return the
 * next position. The caller then appends with `appendAt` in the same transaction; the head
 * stays locked until the commit, so everything between is serialised with every other
 * appender: take it as late as possible, and spend as few round trips as possible holding it.
 */
export const lockHead = async (tx: TransactionSql): Promise<number> => {
  const [row] = await tx<{ next_pos: string }[]>`select next_pos from log_head for update`;
  return Number(row!.next_pos);
};

/** `events` as they will be stored from position `first` on. */
export const positioned = (events: readonly NewEvent[], first: number): StoredEvent[] =>
  events.map((e, i) => ({ ...e.data, pos: first + i, at: e.at, v: EVENT_SCHEMA_VERSION }) as StoredEvent);

/**
 * Insert `events` from position `first` (the head the caller locked with `lockHead`), move the
 * head past them, and NOTIFY the queue's readers (delivered at commit, not before): one
 * statement, which a caller can pipeline with its other writes, or give them to it (`with`:
 * data-modifying CTEs, `name as (...)`, that change no row of the log). The notification says
 * the last position and who appended (`sender`, see FollowOptions.self): "<last> <sender>".
 */
export const appendAt = async (tx: TransactionSql, schema: string, first: number, events: readonly NewEvent[], sender = '', also: readonly Fragment[] = []): Promise<StoredEvent[]> => {
  if (events.length === 0) return [];
  const rows = events.map((e, i) => ({ i, at: e.at, type: e.data.type, job_id: jobIdOf(e.data), data: e.data }));
  const [head] = await tx<{ first: string }[]>`
    with ${withCommas(tx, [
      tx`head as (
        update log_head set next_pos = next_pos + ${events.length} returning next_pos - ${events.length} as first)`,
      tx`appended as (
        insert into events (pos, at, type, job_id, v, data)
        select ${first}::bigint + e.i, e.at, e.type, e.job_id, ${EVENT_SCHEMA_VERSION}, e.data
        from jsonb_to_recordset(${tx.json(rows as never)}) as e(i bigint, at bigint, type text, job_id text, data jsonb))`,
      ...also,
    ])}
    select first, pg_notify(${eventsChannel(schema)}, (first + ${events.length - 1})::text || ' ' || ${sender}::text) from head`;
  // the caller holds the head, so nobody can have moved it; if it was not held, fail loudly
  if (Number(head!.first) !== first) throw new Error(`the log's head moved from ${first} to ${head!.first} while held`);
  return positioned(events, first);
};

/** Lock the head and append `events` in the caller's transaction; returns them as stored. */
export const appendEvents = async (tx: TransactionSql, schema: string, events: readonly NewEvent[]): Promise<StoredEvent[]> =>
  events.length === 0 ? [] : appendAt(tx, schema, await lockHead(tx), events);

/** Up to `limit` events from position `from` on, in position (= commit) order. */
export const readEventsPage = async (sql: Queryable, from: number, limit: number): Promise<StoredEvent[]> =>
  (await sql<EventRow[]>`select pos, at, v, data from events where pos >= ${from} order by pos limit ${limit}`).map(stored);

/**
 * Events from `from` to `to` (inclusive), in pages: each page is its own statement, so a long
 * read (verify, rebuild, `events`) holds no snapshot that keeps vacuum from cleaning up.
 */
export async function* readEvents(sql: Queryable, from = 0, to = Number.POSITIVE_INFINITY, page = 1000): AsyncGenerator<StoredEvent> {
  let next = from;
  while (next <= to) {
    const events = await readEventsPage(sql, next, Number.isFinite(to) ? Math.min(page, to - next + 1) : page);
    for (const e of events) yield e;
    if (events.length < page) return;
    next = events[events.length - 1]!.pos + 1;
  }
}

/** One job's events in order, through the (job_id, pos) index. */
export const readStream = async (sql: Queryable, jobId: string): Promise<StoredEvent[]> =>
  (await sql<EventRow[]>`select pos, at, v, data from events where job_id = ${jobId} order by pos`).map(stored);

/** The position of the last committed event; -1 when the log is empty. */
export const logHead = async (sql: Queryable): Promise<number> => {
  const [row] = await sql<{ next_pos: string }[]>`select next_pos from log_head`;
  return Number(row!.next_pos) - 1;
};

export interface FollowOptions {
  /** the position to start at */
  from: number;
  /** read again at least this often even when no notification came (ms) */
  pollMs?: number;
  /** events per read */
  page?: number;
  /** a read failed (the database away): the follower keeps going, and retries at the next wake-up */
  onError?: (e: unknown) => void;
  /**
   * The position before which the caller already has every event some other way (a store
   * hands its own commits to its subscribers as they commit): reads start there, so a store's
   * own events are not read back on their own notifications.
   */
  known?: () => number;
  /**
   * The `sender` this reader's own appends name in their notifications: those wake no read (the
   * caller has its own commits already, see `known`), so a store does not read back its every
   * batch. A poll still catches anything missed.
   */
  self?: string;
}

export interface Follower {
  /** the next position the follower will deliver */
  readonly next: number;
  stop(): Promise<void>;
}

/**
 * Deliver every event from `from` on, in order, each once, as it commits: woken by NOTIFY
 * (the driver re-listens after a reconnect, and this reads on every (re)listen), and by a
 * poll every `pollMs`, because notifications sent while the listening connection was down
 * are lost and are never sent again.
 */
export const follow = async (sql: Sql, schema: string, deliver: (events: StoredEvent[]) => void | Promise<void>, options: FollowOptions): Promise<Follower> => {
  const page = options.page ?? 1000;
  let next = options.from;
  let stopped = false;
  let running: Promise<void> | null = null;
  let again = false;
  const drain = async () => {
    do {
      again = false;
      try {
        for (;;) {
          next = Math.max(next, options.known?.() ?? next);
          const events = await readEventsPage(sql, next, page);
          if (stopped || events.length === 0) break;
          await deliver(events);
          next = events[events.length - 1]!.pos + 1;
          if (events.length < page) break;
        }
      } catch (e) {
        options.onError?.(e);
      }
    } while (again && !stopped);
  };
  /** One read at a time; a wake-up during a read makes it read once more. */
  const wake = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = drain().finally(() => (running = null));
  };
  const notified = (payload: string) => {
    if (options.self !== undefined && payload.slice(payload.indexOf(' ') + 1) === options.self) return;
    wake();
  };
  const poll = setInterval(wake, options.pollMs ?? 1000);
  poll.unref();
  const listening = await sql.listen(eventsChannel(schema), notified, wake);
  return {
    get next() {
      return next;
    },
    async stop() {
      stopped = true;
      clearInterval(poll);
      await listening.unlisten().catch(() => {});
      await running;
    },
  };
};
