// The built CLI tells a server that will not let it in (wrong password, no such database) from a
// failed operation, as the README promises: `cannot use PostgreSQL at host:port: ...`, exit 1,
// QUEUECTL_DATABASE_UNAVAILABLE. The classification reads the driver's error class, which the
// bundle (dist/postgres.js) once lost the name of: every server error was then QUEUECTL_FAILED,
// and a worker whose result met "the database system is shutting down" gave the result up
// instead of keeping it for the database's return (the job then ran again elsewhere).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, newHome, refused, run } from './helpers/cli.ts';
import { withPgCli } from './helpers/pg-machines.ts';
import { isUnavailable, loadDriver } from '../src/store/postgres/connect.ts';

const test = suite('review2-server-errors');
const pg = withPgCli(test, 'review2-server-errors');
test.after(cleanup);

test('wrong password and no such database through the built CLI: "cannot use PostgreSQL at host:port", exit 1, no password', async () => {
  const server = pg();
  if (!server) return;
  const secret = `WRONG-${process.pid}-pw`;
  const database = new URL(server.url).pathname;
  for (const [url, why] of [
    [`postgres://queuectl:${secret}@${server.host}:${server.port}${database}`, /password authentication failed/],
    [`${server.url.replace(/\/[^/?]*(\?|$)/, `/nodb_${process.pid}$1`)}`, /database "nodb_\d+" does not exist/],
  ] as const) {
    const r = await run(['status', '--home', newHome('srv'), '--database-url', url]);
    const message = refused(r, 1, why);
    assert.ok(message.startsWith(`cannot use PostgreSQL at ${server.host}:${server.port}: `), message);
    assert.not.ok((r.stdout + r.stderr).includes(secret), 'no password');
  }
});

test('isUnavailable: a server error with a connection-level SQLSTATE is recognised by its class, not its name', async () => {
  const postgres = await loadDriver(); // as before any of its errors
  const shuttingDown = Object.assign(new (postgres as unknown as { PostgresError: new (x: object) => Error }).PostgresError({ message: 'the database system is shutting down', code: '57P03', severity: 'FATAL' }), { name: '' });
  assert.ok(isUnavailable(shuttingDown), '57P03 is the database being away');
});

test.run();
