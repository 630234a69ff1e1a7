// The test PostgreSQL itself (test/helpers/postgres.ts): it answers, keeps its data across a
// restart (the restart tests rely on that), and says how long it took to start.
import postgres from 'postgres';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withPostgres } from './helpers/postgres.ts';

const test = suite('pg-harness');
const pg = withPostgres(test, 'pg-harness');

test('a real PostgreSQL answers, and keeps its data across a restart', async () => {
  const server = pg();
  if (!server) return;
  console.log(`\n  pg-harness: PostgreSQL ${server.embedded ? `started in ${server.startMs.toFixed(0)} ms` : 'from QUEUECTL_TEST_DATABASE_URL'}`);
  const sql = postgres(server.url, { onnotice: () => {}, max: 1 });
  try {
    const [row] = await sql<{ version: string }[]>`select current_setting('server_version_num')::int as version`;
    assert.ok(Number(row!.version) >= 140000, `PostgreSQL 14 or newer, got ${row!.version}`);
    const table = `harness_${process.pid}`;
    await sql`create table ${sql(table)} (x int)`;
    await sql`insert into ${sql(table)} values (42)`;
    if (server.embedded) {
      await server.restart();
      const [kept] = await sql<{ x: number }[]>`select x from ${sql(table)}`; // the client reconnects by itself
      assert.is(kept!.x, 42);
    }
    await sql`drop table ${sql(table)}`;
  } finally {
    await sql.end();
  }
});

test.run();
