// The PostgreSQL schema of a queue, as numbered migrations. A migration is never edited once
// released: a change is a new migration. Every statement names its tables unqualified; the
// connection's search_path is the queue's schema (connect.ts), and migrate.ts sets it too.
//
// Choices (README, "Many machines", says them for users):
//  - Global positions (from 0, as with LevelDB) come from a one-row head counter (`log_head`,
//    the next position to give) updated in the appending
//    transaction, as the last lock it takes: appending transactions commit in position
//    order, so a reader of `events` by position never sees a later event before an earlier
//    one is visible (a bigserial alone commits out of order and makes readers skip). The
//    positions have no gaps (a rollback undoes the head too). The price: appends are
//    serialised from that update to their commit; a host therefore puts many commands into
//    one transaction (group commit), and takes the head only after deciding. Everything a
//    transaction writes that other transactions also write (counts) is written after the
//    head, so it adds no waiting the head does not already impose, and cannot deadlock.
//  - Projections folded by the shared reducers live in `projection_kv` (the reducers' key
//    space); what SQL must reach quickly has a table of its own: job views (row locks, list
//    by state), the runnable set (claims with FOR UPDATE SKIP LOCKED in priority, due time,
//    enqueue order), leases and worker heartbeats (expiry judged by the database's clock),
//    job output.
//  - Tables that churn (runnable, leases, the head, counts) get a lower fillfactor so
//    updates stay on their page (HOT), and vacuum sooner than the defaults.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'event log, projections, claims, leases, output',
    sql: `
create table log_head (
  only_row boolean primary key default true check (only_row),
  next_pos bigint not null check (next_pos >= 0)
) with (fillfactor = 10, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
insert into log_head (next_pos) values (0);

create table events (
  pos bigint primary key check (pos >= 0),
  at bigint not null,
  type text not null,
  job_id text,
  v smallint not null,
  data jsonb not null
);
create index events_by_job on events (job_id, pos) where job_id is not null;

create table projection_versions (
  projection text primary key,
  version integer not null,
  pos bigint not null
);

create table projection_kv (
  projection text not null,
  key text collate "C" not null,
  value jsonb not null,
  primary key (projection, key)
);

create table jobs (
  id text primary key,
  state text not null,
  enqueued_pos bigint not null,
  view jsonb not null
);
create index jobs_by_state on jobs (state, enqueued_pos);
create index jobs_by_enqueue on jobs (enqueued_pos);

create table runnable (
  job_id text primary key,
  priority integer not null,
  due_at bigint not null,
  enqueued_pos bigint not null
) with (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
create index runnable_order on runnable (priority, due_at, enqueued_pos);

create table job_counts (
  state text primary key,
  jobs bigint not null default 0
) with (fillfactor = 10);

create table leases (
  job_id text primary key,
  worker_id text not null,
  attempt integer not null,
  expires_at timestamptz not null
) with (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01);
create index leases_by_expiry on leases (expires_at);

create table worker_heartbeats (
  worker_id text primary key,
  hostname text not null,
  pid integer not null,
  slots integer not null,
  started_at timestamptz not null default now(),
  expires_at timestamptz not null
) with (fillfactor = 70);

create table job_output (
  job_id text not null,
  attempt integer not null,
  stream smallint not null check (stream in (1, 2)),
  byte_offset bigint not null check (byte_offset >= 0),
  data bytea not null check (octet_length(data) between 1 and 1048576),
  primary key (job_id, attempt, stream, byte_offset)
);
`,
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** The table that records which migrations ran, created before any of them. */
export const MIGRATIONS_TABLE = `create table if not exists schema_migrations (
  version integer primary key,
  name text not null,
  applied_at timestamptz not null default now()
)`;
