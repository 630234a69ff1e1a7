// The CLI pointed at PostgreSQL (--database-url, QUEUECTL_DATABASE_URL), with the built queuectl
// as a user runs it: bad and unreachable URLs, the backend `status` names, `db migrate`, a host
// of another backend refusing a client, and the host lock that decides who hosts a --home.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { HostLockHeld, takeHostLock } from '../src/host/host-lock.ts';
import { prepareHome, resolveHome } from '../src/home.ts';
import { connect } from '../src/store/postgres/connect.ts';
import { schemaVersion } from '../src/store/postgres/migrate.ts';
import { LATEST_VERSION } from '../src/store/postgres/schema.ts';
import { parseDatabaseUrl } from '../src/store/postgres/url.ts';
import { cleanup, cli, json, newHome, ok, refused, run, startWorker, stopWorkers, until } from './helpers/cli.ts';
import { freePort, withPostgres } from './helpers/postgres.ts';

const test = suite('pg-cli');
const pg = withPostgres(test, 'pg-cli', { fsync: false });
test.after.each(() => stopWorkers());
test.after(() => cleanup());

const SECRET = 'pa55-not-shown';

test('a malformed URL is one line, exit 2, names where it came from, never the password, and writes nothing', async () => {
  const home = newHome('badurl');
  const q = cli(home);
  const m = refused(await q('status', '--database-url', `mysql://u:${SECRET}@db/x`), 2, /--database-url must start with postgres:\/\//);
  assert.not.ok(m.includes(SECRET));
  const e = refused(await run(['enqueue', 'true', '--home', home], { env: { QUEUECTL_DATABASE_URL: `postgres://u:${SECRET}@db:99999/x` } }), 2, /QUEUECTL_DATABASE_URL has a port/);
  assert.not.ok(e.includes(SECRET));
  assert.not.ok(existsSync(home), 'nothing written');
});

test('db migrate without a database URL is exit 2 and says what to give', async () => {
  refused(await cli(newHome('nourl'))('db', 'migrate'), 2, /'db migrate' works on a PostgreSQL queue: give --database-url/);
});

test('an unreachable server is one line, exit 1, naming host and port and not the password; --database-url wins over the variable', async () => {
  const port = await freePort();
  const started = Date.now();
  const r = await run(['enqueue', 'true', '--home', newHome('refused'), '--database-url', `postgres://u:${SECRET}@127.0.0.1:${port}/x`], {
    env: { QUEUECTL_DATABASE_URL: 'not a url' },
  });
  const m = refused(r, 1, new RegExp(`cannot use PostgreSQL at 127\\.0\\.0\\.1:${port}: connection refused`));
  assert.not.ok(m.includes(SECRET));
  assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
});

test('a server address that never answers fails within connect_timeout, not a hang', async () => {
  // 10.255.255.1: nothing answers there (no SYN-ACK, no refusal), or the network says unreachable at once
  const started = Date.now();
  const r = await run(['status', '--home', newHome('blackhole'), '--database-url', `postgres://u:${SECRET}@10.255.255.1:5432/x?connect_timeout=1`], { timeoutMs: 15_000 });
  const m = refused(r, 1, /cannot use PostgreSQL at 10\.255\.255\.1:5432: /);
  assert.not.ok(m.includes(SECRET));
  assert.ok(Date.now() - started < 6000, `took ${Date.now() - started} ms`);
});

test('status names the LevelDB store when no URL is given (table and --json)', async () => {
  const home = newHome('level');
  const q = cli(home);
  assert.equal(json(await q('status', '--json')).backend, { type: 'leveldb', path: join(home, 'db') });
  assert.match(ok(await q('status')), new RegExp(`\\nBackend  LevelDB ${home}/db\\n`));
});

test('a host on the LevelDB store refuses a command pointed at PostgreSQL (and names neither password nor a wrong store)', async () => {
  const home = newHome('mismatch');
  await startWorker(home).ready();
  const port = await freePort();
  const m = refused(await cli(home)('list', '--database-url', `postgres://u:${SECRET}@127.0.0.1:${port}/x`), 2, /uses the LevelDB store in the data directory, but this command was pointed at PostgreSQL at postgres:\/\/u@127\.0\.0\.1/);
  assert.not.ok(m.includes(SECRET));
});

test('db migrate --dry-run prints the SQL and writes nothing; db migrate applies it once; the password is never printed', async () => {
  const server = pg();
  if (!server) return;
  const schema = `t_cli_migrate_${process.pid}`;
  const url = `${server.url}?schema=${schema}`;
  const password = decodeURIComponent(new URL(server.url).password);
  const q = cli(newHome('migrate'));
  const dry = ok(await q('db', 'migrate', '--dry-run', '--database-url', url));
  assert.match(dry, new RegExp(`^-- would migrate schema ${schema} from version 0 to ${LATEST_VERSION}; nothing was run\\nbegin;\\n`));
  assert.match(dry, /create table/i);
  const sql = await connect(parseDatabaseUrl(url, '--database-url'), { max: 1 });
  try {
    assert.is(await schemaVersion(sql, schema), 0, 'the dry run wrote nothing');
    const applied = await run(['db', 'migrate', '--home', newHome('migrate')], { env: { QUEUECTL_DATABASE_URL: url } });
    assert.is(ok(applied), `migrated schema ${schema} from version 0 to ${LATEST_VERSION}\n`);
    assert.is(await schemaVersion(sql, schema), LATEST_VERSION);
    const again = json(await q('db', 'migrate', '--json', '--database-url', url));
    assert.equal(again, { schema, from: LATEST_VERSION, to: LATEST_VERSION, applied: false, sql: '' });
    for (const out of [dry, applied.stdout, applied.stderr]) assert.not.ok(out.includes(password));
  } finally {
    await sql.unsafe(`drop schema if exists "${schema}" cascade`);
    await sql.end({ timeout: 1 });
  }
});

test('the host lock: one holder per data directory, freed when its process is killed', async () => {
  const home = prepareHome(resolveHome(newHome('lock')));
  const release = await takeHostLock(home);
  try {
    await takeHostLock(home).then(
      () => assert.unreachable('a second holder'),
      (e) => assert.instance(e, HostLockHeld),
    );
  } finally {
    await release();
  }
  // another process takes it, and is killed -9: the lock is free again at once
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', `
    import('${join(import.meta.dirname, '../src/host/host-lock.ts')}').then(async ({ takeHostLock }) => {
      const { prepareHome, resolveHome } = await import('${join(import.meta.dirname, '../src/home.ts')}');
      await takeHostLock(prepareHome(resolveHome(${JSON.stringify(home.dir)})));
      console.log('held');
      setInterval(() => {}, 1000);
    });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  try {
    await until(() => out.includes('held'), 15_000, 'the child to hold the lock');
    await takeHostLock(home).then(() => assert.unreachable('taken while the child holds it'), (e) => assert.instance(e, HostLockHeld));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    await (await takeHostLock(home))();
  } finally {
    child.kill('SIGKILL');
  }
});

test.run();
