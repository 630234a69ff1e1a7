// `repair` mends LevelDB's files in --home: pointed at a PostgreSQL queue (--database-url or
// QUEUECTL_DATABASE_URL) it is refused in one line, exit 2, saying what to do there instead,
// and touches neither --home nor the database.
import { existsSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, newHome, refused, run } from './helpers/cli.ts';
import { queueUrl, withPgCli } from './helpers/pg-machines.ts';

const test = suite('pg-repair');
const pg = withPgCli(test, 'pg-repair');
test.after(() => cleanup());

test('repair with a database URL is refused (exit 2) and names what to use instead; nothing is written', async () => {
  const server = pg();
  if (!server) return;
  const url = queueUrl(server, 'repair');
  const home = newHome('repair');
  const message = /^queuectl: repair mends the LevelDB directory in --home, not a PostgreSQL queue .*projections verify.*amcheck[^\n]*\n$/;
  for (const r of [
    await run(['repair', '--home', home, '--database-url', url]),
    await run(['repair', '--home', home, '--json'], { env: { QUEUECTL_DATABASE_URL: url } }),
  ]) {
    refused(r, 2, message);
    assert.is(r.stdout, '');
    assert.not.match(r.stderr, /queuectl-test-secret/);
  }
  assert.not.ok(existsSync(home), '--home was not made');
});

test.run();
