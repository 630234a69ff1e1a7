// A database user without the privileges queuectl needs (README, "Privileges"): the refusal is
// one line, exit 1, says what is missing and how to give it, and shows no password.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, newHome, refused, run } from './helpers/cli.ts';
import { connect } from '../src/store/postgres/connect.ts';
import { parseDatabaseUrl } from '../src/store/postgres/url.ts';
import { withPgCli } from './helpers/pg-machines.ts';

const test = suite('review2-privileges');
const pg = withPgCli(test, 'review2-privileges');
test.after(cleanup);

test('a user without CREATE on the database, or without access to an existing schema: one line naming the privilege, exit 1, no password', async () => {
  const server = pg();
  if (!server) return;
  const role = `r2low_${process.pid}`;
  const db = `r2lowdb_${process.pid}`;
  const secret = `pw-${process.pid}-SECRET`;
  const admin = await connect(parseDatabaseUrl(server.url, '--database-url'), { max: 1 });
  try {
    await admin.unsafe(`create role ${role} login password '${secret}'`);
    await admin.unsafe(`create database ${db}`);
    await admin.unsafe(`revoke create on database ${db} from public`);
    await admin.unsafe(`create schema r2_${process.pid}`);
    const database = new URL(server.url).pathname; // the server's own database, where the schema is
    for (const [path, what] of [[`/${db}`, `database ${db}`], [`${database}?schema=r2_${process.pid}`, `schema r2_${process.pid}`]] as const) {
      const url = `postgres://${role}:${secret}@${server.host}:${server.port}${path}`;
      const r = await run(['status', '--home', newHome('low'), '--database-url', url]);
      const message = refused(r, 1);
      assert.ok(message.includes(`permission denied for ${what}`), message);
      assert.match(message, /CREATE/, `the fix is named: ${message}`);
      assert.not.ok((r.stdout + r.stderr).includes(secret), 'no password');
    }
  } finally {
    await admin.unsafe(`drop schema if exists r2_${process.pid}`).catch(() => {});
    await admin.unsafe(`drop database if exists ${db}`).catch(() => {});
    await admin.unsafe(`drop role if exists ${role}`).catch(() => {});
    await admin.end({ timeout: 1 });
  }
});

test.run();
