// The database URL (src/store/postgres/url.ts) and connecting (connect.ts): every malformed
// URL is one line, exit 2, that never quotes the password; an unreachable server is one line,
// exit 1, naming host and port, within the connect timeout (a closed port, a server that
// never answers, a wrong password, a missing database: all real).
import { createServer, type Socket } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { QueuectlError } from '../src/errors.ts';
import { clientOptions, connect, databaseError, loadDriver } from '../src/store/postgres/connect.ts';
import { type DatabaseTarget, databaseTargetFrom, parseDatabaseUrl, redact } from '../src/store/postgres/url.ts';
import { freePort, withPostgres } from './helpers/postgres.ts';

const SECRET = 's3cr:et@pw';
const ENCODED = encodeURIComponent(SECRET);

const refusal = (fn: () => unknown, what = ''): QueuectlError => {
  try {
    fn();
  } catch (e) {
    assert.instance(e, QueuectlError);
    return e as QueuectlError;
  }
  throw new assert.Assertion({ message: `expected a refusal ${what}`, generated: false, operator: 'throws', expects: 'throw', actual: 'none' });
};

const refusedAsync = async (promise: Promise<unknown>): Promise<QueuectlError> => {
  try {
    await promise;
  } catch (e) {
    assert.instance(e, QueuectlError);
    return e as QueuectlError;
  }
  throw new assert.Assertion({ message: 'expected a refusal', generated: false, operator: 'throws', expects: 'throw', actual: 'none' });
};

const oneLineWithoutSecret = (e: QueuectlError) => {
  assert.not.match(e.message, '\n', 'one line');
  assert.not.ok(e.message.includes(SECRET) || e.message.includes(ENCODED) || e.message.includes('s3cr'), `no password in: ${e.message}`);
};

const unit = suite('pg-url: parsing');

unit('a full URL: its parts, the defaults, and a display without the password', () => {
  const t = parseDatabaseUrl(`postgres://alice:${ENCODED}@db.example:6543/jobs`, 'QUEUECTL_DATABASE_URL');
  assert.equal(
    { host: t.host, port: t.port, database: t.database, user: t.user, password: t.password, schema: t.schema, sslmode: t.sslmode, connectTimeout: t.connectTimeout },
    { host: 'db.example', port: 6543, database: 'jobs', user: 'alice', password: SECRET, schema: 'queuectl', sslmode: 'prefer', connectTimeout: 5 },
  );
  assert.is(t.display, 'postgres://alice@db.example:6543/jobs');
});

unit('a password with unencoded special characters still parses (the last @ ends it)', () => {
  assert.is(parseDatabaseUrl('postgres://u:s3cr:et@p w@h/db', '--database-url').password, 's3cr:et@p w');
});

unit('parameters: schema, sslmode, connect_timeout, a Unix socket, IPv6, and a password as a parameter', () => {
  const t = parseDatabaseUrl('postgresql://bob@[::1]/q?schema=render_farm&sslmode=verify-full&connect_timeout=2', '--database-url');
  assert.equal([t.host, t.port, t.database, t.schema, t.sslmode, t.connectTimeout], ['::1', 5432, 'q', 'render_farm', 'verify-full', 2]);
  const s = parseDatabaseUrl(`postgres:///jobs?host=/run/postgresql&password=${ENCODED}`, '--database-url');
  assert.equal([s.host, s.database, s.password], ['/run/postgresql', 'jobs', SECRET]);
  assert.not.ok(s.display.includes(ENCODED) || s.display.includes('password'), s.display);
  assert.is(parseDatabaseUrl('postgres://carol@h', '--database-url').database, 'carol', 'no database: the user name, as libpq');
});

unit('every malformed URL: QUEUECTL_INVALID_INPUT, exit 2, one line, no password, what to fix', () => {
  const cases: [string, RegExp][] = [
    ['', /is empty/],
    ['db.example:5432', /must be a URL like postgres:\/\//],
    [`mysql://u:${ENCODED}@h/db`, /must start with postgres:\/\/ or postgresql:\/\/, not mysql:\/\//],
    [`postgres://u:${ENCODED}@[::1/db`, /not a valid URL .*percent-encoded/],
    [`postgres://u:${ENCODED}@h:99999/db`, /port that is not a number from 1 to 65535: '99999'/],
    [`postgres://u:${ENCODED}@h/db?schema=Jobs`, /\?schema= takes a name of lowercase letters.*got 'Jobs'/],
    [`postgres://u:${ENCODED}@h/db?schema=pg_jobs`, /\?schema= takes/],
    [`postgres://u:${ENCODED}@h/db?schema=a;drop`, /\?schema= takes/],
    [`postgres://u:${ENCODED}@h/db?sslmode=on`, /\?sslmode= takes one of disable, allow, prefer, require, verify-ca, verify-full, got 'on'/],
    [`postgres://u:${ENCODED}@h/db?connect_timeout=0`, /\?connect_timeout= takes a whole number of seconds/],
    [`postgres://u:${ENCODED}@h/db?ssl=true`, /unknown parameter 'ssl'/],
    [`postgres://u:${ENCODED}@h/db?schema=a&schema=b`, /names the parameter 'schema' twice/],
    [`postgres://u:${ENCODED}@h1,h2/db`, /several hosts/],
    [`postgres://u:%E0%A4%A@h/db`, /malformed percent-encoding in its password/],
    ['postgres:///db', /names no host/],
  ];
  for (const [url, expected] of cases) {
    const e = refusal(() => parseDatabaseUrl(url, 'QUEUECTL_DATABASE_URL'), url);
    assert.is(e.code, 'QUEUECTL_INVALID_INPUT', url);
    assert.is(e.exitCode, 2);
    assert.match(e.message, /^QUEUECTL_DATABASE_URL /);
    assert.match(e.message, expected, `${url} -> ${e.message}`);
    oneLineWithoutSecret(e);
  }
});

unit('--database-url wins over QUEUECTL_DATABASE_URL; neither: no database; a bare flag is refused', () => {
  const env = { QUEUECTL_DATABASE_URL: 'postgres://env@h/a' };
  assert.is(databaseTargetFrom('postgres://opt@h/b', env)!.user, 'opt');
  assert.is(databaseTargetFrom(undefined, env)!.user, 'env');
  assert.is(databaseTargetFrom(undefined, {}), null);
  assert.match(refusal(() => databaseTargetFrom(true, env)).message, /^--database-url takes a URL/);
});

unit('redact masks the password, raw and percent-encoded, in any text', async () => {
  const t = parseDatabaseUrl(`postgres://u:${ENCODED}@h/db`, '--database-url');
  assert.is(redact(`a ${SECRET} b ${ENCODED} c`, t), 'a *** b *** c');
  // the driver's and the server's messages are passed on, masked: a login refused, a query that failed
  // a server's error as the driver makes it (told by its class: the bundle does not keep its name)
  const { PostgresError } = (await loadDriver()) as unknown as { PostgresError: new (fields: object) => Error };
  const refused = databaseError(new PostgresError({ message: `login as "${SECRET}" refused\nhint`, code: '28P01', severity: 'FATAL' }), t);
  assert.is(refused.code, 'QUEUECTL_DATABASE_UNAVAILABLE');
  assert.is(refused.message, 'cannot use PostgreSQL at h:5432: login as "***" refused hint');
  oneLineWithoutSecret(refused);
  const failed = databaseError(new Error(`syntax error near "${ENCODED}"`), t);
  assert.is(failed.code, 'QUEUECTL_FAILED');
  oneLineWithoutSecret(failed);
});

unit('a lost connection is made again within a second, however many failed before (the driver alone waits up to 20 s)', () => {
  const { backoff } = clientOptions(parseDatabaseUrl('postgres://u@h/db', '--database-url'));
  assert.type(backoff, 'function', 'the reconnect delay is ours');
  const delays = Array.from({ length: 40 }, (_, failures) => (backoff as (n: number) => number)(failures));
  assert.ok(delays.every((s) => s > 0 && s <= 1), `delays in seconds: ${delays.map((s) => s.toFixed(2)).join(' ')}`);
});

unit.run();

const real = suite('pg-url: unreachable and refusing servers');
const pg = withPostgres(real, 'pg-url');

const target = (url: string): DatabaseTarget => parseDatabaseUrl(url, 'QUEUECTL_DATABASE_URL');

real('a closed port: QUEUECTL_DATABASE_UNAVAILABLE at once, exit 1, naming host and port', async () => {
  const port = await freePort();
  const began = performance.now();
  const e = await refusedAsync(connect(target(`postgres://u:${ENCODED}@127.0.0.1:${port}/db`)));
  assert.is(e.code, 'QUEUECTL_DATABASE_UNAVAILABLE');
  assert.is(e.exitCode, 1);
  assert.is(e.message, `cannot use PostgreSQL at 127.0.0.1:${port}: connection refused (is the server running and listening on that address?)`);
  assert.ok(performance.now() - began < 3000, `took ${performance.now() - began} ms`);
});

real('a server that accepts and never answers: refused after connect_timeout, not a hang', async () => {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => sockets.add(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as { port: number }).port;
  try {
    const began = performance.now();
    const e = await refusedAsync(connect(target(`postgres://u:${ENCODED}@127.0.0.1:${port}/db?connect_timeout=1&sslmode=disable`)));
    const took = performance.now() - began;
    assert.is(e.code, 'QUEUECTL_DATABASE_UNAVAILABLE');
    assert.match(e.message, `cannot use PostgreSQL at 127.0.0.1:${port}: no answer within 1 s`);
    assert.ok(took >= 900 && took < 4000, `took ${took.toFixed(0)} ms`);
    oneLineWithoutSecret(e);
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

real('a wrong password and a missing database: one line, exit 1, no password', async () => {
  const server = pg();
  if (!server) return;
  const good = new URL(server.url);
  const wrong = new URL(server.url);
  wrong.password = ENCODED;
  const e = await refusedAsync(connect(target(wrong.toString())));
  assert.is(e.code, 'QUEUECTL_DATABASE_UNAVAILABLE');
  assert.match(e.message, /password authentication failed/);
  oneLineWithoutSecret(e);
  good.pathname = '/no_such_db';
  const m = await refusedAsync(connect(target(good.toString())));
  assert.match(m.message, /database "no_such_db" does not exist/);
  assert.not.ok(m.message.includes(new URL(server.url).password));
});

real('sslmode=require against a server without TLS is refused; disable and prefer connect', async () => {
  const server = pg();
  if (!server) return;
  for (const mode of ['disable', 'prefer']) {
    const sql = await connect(target(`${server.url}?sslmode=${mode}`));
    await sql.end();
  }
  if (!server.embedded) return; // an external server may well offer TLS
  const e = await refusedAsync(connect(target(`${server.url}?sslmode=require&connect_timeout=2`)));
  assert.is(e.code, 'QUEUECTL_DATABASE_UNAVAILABLE');
  oneLineWithoutSecret(e);
});

real.run();
