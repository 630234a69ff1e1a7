// Creating and upgrading a queue's schema: on first use, and safely when several processes
// (on several machines) start at once. The upgrade is one transaction under an advisory lock
// keyed by the schema's name: the first process in migrates, the others wait for it, then find
// nothing left to do. DDL in PostgreSQL is transactional, so a process killed halfway leaves
// the schema as it was. A process that is up to date pays one query, and takes no lock.
import { QueuectlError } from '../../errors.ts';
import type { Queryable, Sql } from './connect.ts';
import { LATEST_VERSION, MIGRATIONS, MIGRATIONS_TABLE, type Migration } from './schema.ts';

/** The first key of queuectl's advisory locks ('queu'); the second is per schema. */
const LOCK_CLASS = 0x71756575;

export interface MigrateResult {
  /** the schema version found */
  from: number;
  /** the schema version after (with dryRun: that it would have) */
  to: number;
  /** the SQL that ran (with dryRun: that would run); empty when up to date */
  sql: string;
}

export interface MigrateOptions {
  /** write nothing: only say what would run (`queuectl db migrate --dry-run`) */
  dryRun?: boolean;
  /** the schema version the caller has just read (schemaVersion), so it is not read again */
  found?: number;
}

const quoted = (schema: string): string => `"${schema}"`; // url.ts lets only [a-z0-9_] through

/** The schema version in the database: 0 when the schema or its migrations table is missing. */
export const schemaVersion = async (sql: Queryable, schema: string): Promise<number> => {
  try {
    const [row] = await sql.unsafe<{ version: number | null }[]>(`select max(version) as version from ${quoted(schema)}.schema_migrations`);
    return row?.version ?? 0;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === '42P01' || code === '3F000') return 0; // undefined table, undefined schema
    throw e;
  }
};

const tooNew = (found: number): QueuectlError =>
  new QueuectlError(
    'QUEUECTL_PROTOCOL_MISMATCH',
    `the database's queue schema is version ${found}, newer than this queuectl knows (${LATEST_VERSION}); run the same queuectl version on every machine`,
  );

const migrationSql = (m: Migration): string =>
  `-- migration ${m.version}: ${m.name}\n${m.sql.trim()}\ninsert into schema_migrations (version, name) values (${m.version}, '${m.name.replaceAll("'", "''")}');`;

/** What a migration from `pending[0]` runs, as one script a DBA could run by hand. */
const script = (schema: string, pending: readonly Migration[]): string =>
  [
    'begin;',
    `select pg_advisory_xact_lock(${LOCK_CLASS}, hashtext('${schema}'));`,
    `create schema if not exists ${quoted(schema)};`,
    `set local search_path to ${quoted(schema)};`,
    `${MIGRATIONS_TABLE};`,
    ...pending.map(migrationSql),
    'commit;',
  ].join('\n');

/** Bring the schema to the latest version (or, with dryRun, say what that would run). */
export const migrate = async (sql: Sql, schema: string, options: MigrateOptions = {}): Promise<MigrateResult> => {
  const found = options.found ?? (await schemaVersion(sql, schema));
  if (found > LATEST_VERSION) throw tooNew(found);
  if (found === LATEST_VERSION) return { from: found, to: found, sql: '' };
  if (options.dryRun) return { from: found, to: LATEST_VERSION, sql: script(schema, MIGRATIONS.filter((m) => m.version > found)) };
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${schema}))`;
    // a schema made beforehand by an administrator needs no CREATE privilege on the database
    const [ns] = await tx<{ missing: boolean }[]>`select to_regnamespace(${quoted(schema)}) is null as missing`;
    if (ns!.missing) await tx.unsafe(`create schema ${quoted(schema)}`);
    await tx.unsafe(`set local search_path to ${quoted(schema)}`);
    await tx.unsafe(MIGRATIONS_TABLE);
    const now = await schemaVersion(tx, schema); // another process may have migrated meanwhile
    if (now > LATEST_VERSION) throw tooNew(now);
    if (now === LATEST_VERSION) return { from: found, to: now, sql: '' };
    const pending = MIGRATIONS.filter((m) => m.version > now);
    await tx.unsafe(pending.map(migrationSql).join('\n')).simple();
    return { from: found, to: LATEST_VERSION, sql: script(schema, pending) };
  });
};
