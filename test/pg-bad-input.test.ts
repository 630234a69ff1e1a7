// Issue 10: every bad input gets the same errors on PostgreSQL as on LevelDB. The same table
// as e2e-cli-input.test.ts (test/helpers/bad-input.ts), run with --database-url: one
// `queuectl: ...` line each, the same exit code and words, and nothing written to the queue or
// the machine's directory; first with every command opening the database itself, then as
// clients of a running host.
import { suite } from 'uvu';
import { refusesEveryBadInput } from './helpers/bad-input.ts';
import { assertNoStrays, cleanup, startWorker, stopWorkers } from './helpers/cli.ts';
import { machine, queueUrl, withPgCli } from './helpers/pg-machines.ts';

const test = suite('pg-bad-input');
const pg = withPgCli(test, 'pg-bad-input');
test.after.each(() => stopWorkers());
test.after(cleanup);

test('every bad input: the same one-line error and exit code as on LevelDB, and nothing written', async () => {
  const server = pg();
  if (!server) return;
  const url = queueUrl(server, 'bad');
  const m = machine('bad', url);
  await refusesEveryBadInput(m.q, m.home, (...args) => startWorker(m.home, '--database-url', url, ...args));
});

test.after(assertNoStrays);
test.run();
