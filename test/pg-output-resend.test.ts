// An attempt that ends while PostgreSQL is away: its output (what the job wrote since the last
// piece sent while it ran) is kept by the worker and sent again with back-off, before its
// result, once the database is back; `logs` on another machine then shows all of it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { assertNoStrays, cleanup, ok, scratch, stopWorkers, until } from './helpers/cli.ts';
import { machines, queueUrl, withPgCli } from './helpers/pg-machines.ts';

const test = suite('pg-output-resend');
const pg = withPgCli(test, 'pg-output-resend');
test.after.each(() => stopWorkers());
test.after(() => cleanup());

test('output written while the database was away reaches it once it is back, before the result', async () => {
  const server = pg();
  if (!server) return;
  if (!server.embedded) {
    console.log('\n  pg-output-resend: skipped, QUEUECTL_TEST_DATABASE_URL names a server these tests cannot stop');
    return;
  }
  const url = queueUrl(server, 'resend');
  const [a, b] = machines(2, url);
  const dir = scratch('resend');
  const gate = join(dir, 'gate');
  ok(await a!.q('enqueue', '--id', 'j', `echo before; while [ ! -e ${gate} ]; do sleep 0.05; done; echo after; echo late-err >&2`));
  const worker = await a!.startWorker(1);
  // the first line is in the database (sent while the job runs)
  await until(async () => ok(await b!.q('logs', 'j')).includes('before\n'), 20_000, 'the running job\'s first line to reach the database');
  await server.stop();
  try {
    writeFileSync(gate, ''); // the job ends while the database is away
    await until(() => worker.lines.some((l) => /retrying/.test(l)), 20_000, `the worker to find the database away: ${worker.lines.join(' | ')}`, 100);
    await new Promise((r) => setTimeout(r, 1000)); // a few of its tries fail
  } finally {
    await server.start();
  }
  await until(async () => {
    const r = await b!.q('show', 'j', '--json');
    return r.code === 0 && JSON.parse(r.stdout).state === 'completed';
  }, 90_000, 'the job to be recorded completed once the database is back', 250);
  assert.not.ok(worker.lines.some((l) => /could not be stored/.test(l)), `the output was not given up: ${worker.lines.join(' | ')}`);
  assert.match(ok(await b!.q('logs', 'j')), /── attempt 1 · exit code 0 · [\d.]+s ──\n\[stdout\]\nbefore\nafter\n\[stderr\]\nlate-err\n/);
});

test.after(assertNoStrays);
test.run();
