// One process of the concurrent-migration test (test/pg-migrate.test.ts): connects to the
// URL in argv[2], says "ready", waits for "go" on stdin so that every process migrates at
// the same moment, migrates, prints the result as JSON and exits.
import { connect } from '../../src/store/postgres/connect.ts';
import { migrate } from '../../src/store/postgres/migrate.ts';
import { parseDatabaseUrl } from '../../src/store/postgres/url.ts';

const target = parseDatabaseUrl(process.argv[2]!, '--database-url');
const sql = await connect(target, { max: 1 });
process.stdout.write('ready\n');
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
process.stdin.destroy(); // or the open pipe keeps this process alive
try {
  const result = await migrate(sql, target.schema);
  process.stdout.write(`${JSON.stringify({ from: result.from, to: result.to, ran: result.sql !== '' })}\n`);
} catch (e) {
  process.stdout.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
  process.exitCode = 1;
} finally {
  await sql.end();
}
