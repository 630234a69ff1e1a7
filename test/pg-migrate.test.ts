// Creating and upgrading the schema (src/store/postgres/migrate.ts): several real processes
// starting at once end with one schema and one row per migration; --dry-run writes nothing;
// a schema newer than this queuectl is refused.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { QueuectlError } from '../src/errors.ts';
import { connect, type Sql } from '../src/store/postgres/connect.ts';
import { migrate, schemaVersion } from '../src/store/postgres/migrate.ts';
import { LATEST_VERSION, MIGRATIONS } from '../src/store/postgres/schema.ts';
import { parseDatabaseUrl } from '../src/store/postgres/url.ts';
import { withPostgres } from './helpers/postgres.ts';

const test = suite('pg-migrate');
const pg = withPostgres(test, 'pg-migrate', { fsync: false });
const CHILD = join(import.meta.dirname, 'helpers', 'pg-migrate-child.ts');
const PROCESSES = 6;

let schemas = 0;
/** A schema name no other test (or earlier run against an external server) uses. */
const freshSchema = () => `t_migrate_${process.pid}_${++schemas}`;
const urlWith = (url: string, schema: string) => `${url}${url.includes('?') ? '&' : '?'}schema=${schema}`;

const withSql = async (url: string, fn: (sql: Sql) => Promise<void>) => {
  const sql = await connect(parseDatabaseUrl(url, '--database-url'), { max: 2 });
  try {
    await fn(sql);
  } finally {
    await sql.end();
  }
};

const tablesIn = async (sql: Sql, schema: string): Promise<string[]> =>
  (await sql<{ name: string }[]>`select table_name as name from information_schema.tables where table_schema = ${schema} order by 1`).map((r) => r.name);

interface ChildResult {
  from?: number;
  to?: number;
  ran?: boolean;
  error?: string;
}

/** Start `n` processes, let them all connect, then release them together; their results. */
const migrateAtOnce = async (url: string, n: number): Promise<{ code: number | null; result: ChildResult }[]> => {
  const children = Array.from({ length: n }, () => spawn(process.execPath, ['--import', 'tsx', CHILD, url], { stdio: ['pipe', 'pipe', 'pipe'] }));
  const outputs = children.map((child) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const ready = new Promise<void>((resolve, reject) => {
      const check = () => (out.startsWith('ready\n') ? resolve() : undefined);
      child.stdout.on('data', check);
      child.once('exit', (code) => reject(new Error(`child exited (${code}) before it was ready: ${err}`)));
    });
    const done = new Promise<{ code: number | null; result: ChildResult }>((resolve) =>
      child.once('exit', (code) => resolve({ code, result: JSON.parse(out.split('\n')[1] || `{"error":${JSON.stringify(err)}}`) as ChildResult })),
    );
    return { ready, done };
  });
  try {
    await Promise.all(outputs.map((o) => o.ready));
    for (const child of children) child.stdin.write('go\n');
    return await Promise.all(outputs.map((o) => o.done));
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  }
};

test(`${PROCESSES} processes migrating at once: one schema, one row per migration, every process succeeds`, async () => {
  const server = pg();
  if (!server) return;
  const schema = freshSchema();
  const url = urlWith(server.url, schema);
  const results = await migrateAtOnce(url, PROCESSES);
  for (const { code, result } of results) {
    assert.is(result.error, undefined, `a process failed: ${result.error}`);
    assert.is(code, 0);
    assert.is(result.to, LATEST_VERSION);
  }
  assert.is(results.filter((r) => r.result.ran).length, 1, 'exactly one process ran the migrations');
  await withSql(url, async (sql) => {
    const rows = await sql.unsafe<{ version: number }[]>(`select version from "${schema}".schema_migrations order by version`);
    assert.equal(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version));
    const heads = await sql.unsafe<{ next_pos: string }[]>(`select next_pos from "${schema}".log_head`);
    assert.equal(heads.map((h) => Number(h.next_pos)), [0], 'the head row exists once, at 0');
    assert.ok((await tablesIn(sql, schema)).includes('events'));
    await sql.unsafe(`drop schema "${schema}" cascade`);
  });
});

test('--dry-run: the SQL that would run, and nothing written; then up to date: no SQL, no lock', async () => {
  const server = pg();
  if (!server) return;
  const schema = freshSchema();
  await withSql(urlWith(server.url, schema), async (sql) => {
    const dry = await migrate(sql, schema, { dryRun: true });
    assert.equal([dry.from, dry.to], [0, LATEST_VERSION]);
    assert.match(dry.sql, `create schema if not exists "${schema}";`);
    assert.match(dry.sql, 'create table events');
    assert.equal(await tablesIn(sql, schema), [], 'a dry run creates nothing');
    assert.is(await schemaVersion(sql, schema), 0);
    const real = await migrate(sql, schema);
    assert.equal([real.from, real.to], [0, LATEST_VERSION]);
    assert.equal(await migrate(sql, schema, { dryRun: true }), { from: LATEST_VERSION, to: LATEST_VERSION, sql: '' });
    assert.equal(await migrate(sql, schema), { from: LATEST_VERSION, to: LATEST_VERSION, sql: '' });
    await sql.unsafe(`drop schema "${schema}" cascade`);
  });
});

test('a schema newer than this queuectl: refused with what to do, nothing changed', async () => {
  const server = pg();
  if (!server) return;
  const schema = freshSchema();
  await withSql(urlWith(server.url, schema), async (sql) => {
    await migrate(sql, schema);
    await sql.unsafe(`insert into "${schema}".schema_migrations (version, name) values (${LATEST_VERSION + 1}, 'from the future')`);
    try {
      await migrate(sql, schema);
      assert.unreachable('a newer schema must be refused');
    } catch (e) {
      assert.instance(e, QueuectlError);
      assert.is((e as QueuectlError).code, 'QUEUECTL_PROTOCOL_MISMATCH');
      assert.match((e as Error).message, `version ${LATEST_VERSION + 1}, newer than this queuectl knows (${LATEST_VERSION})`);
    }
    await sql.unsafe(`drop schema "${schema}" cascade`);
  });
});

test.run();
