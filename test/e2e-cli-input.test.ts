// End to end: what a user types that is not a job run. Bad input of every kind (exit 2, or 1
// where the operation itself fails: unknown job, duplicate id, wrong state) with one
// `queuectl: ...` line on stderr and nothing written; `enqueue --file`; the --json shapes;
// help and version; the data directory (where it is, its mode, refusing one that is not ours).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { each, refusesEveryBadInput, snapshot } from './helpers/bad-input.ts';
import {
  type Q, assertNoStrays, cleanup, cli, events, job, json, newHome, ok, refused, run, scratch, startWorker, stopWorkers,
} from './helpers/cli.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const JOB_FIELDS = ['id', 'command', 'state', 'attempts', 'max_retries', 'priority', 'run_at', 'timeout_seconds', 'cwd', 'created_at', 'updated_at', 'next_run_at', 'last_error', 'exit_code'];

test('every bad input exits 2 (or 1 when the operation fails) with one line on stderr, and writes nothing', async () => {
  const home = newHome('bad');
  await refusesEveryBadInput(cli(home), home, (...args) => startWorker(home, ...args));
});

test('an unknown command prints the help and exits 2; so does no command', async () => {
  const r = await run(['frobnicate', '--home', newHome()]);
  refused(r, 2, /unknown command 'frobnicate'/);
  assert.match(r.stdout, /Usage:/);
  const none = await run([]);
  assert.is(none.code, 2);
  assert.match(none.stdout, /Usage:/);
});

test('--help, <command> --help and --version exit 0', async () => {
  const help = ok(await run(['--help']));
  for (const c of ['enqueue', 'worker', 'status', 'list', 'show', 'logs', 'history', 'wait', 'cancel', 'dlq', 'config', 'events', 'projections']) {
    assert.match(help, new RegExp(`\\n\\s+${c}\\b`), `help lists ${c}`);
  }
  const enqueueHelp = ok(await run(['enqueue', '--help']));
  for (const o of ['--id', '--max-retries', '--priority', '--run-at', '--delay', '--timeout', '--cwd', '--file']) assert.ok(enqueueHelp.includes(o), o);
  assert.match(ok(await run(['worker', '--help'])), /--count/);
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.ok(ok(await run(['--version'])).includes(version));
});

// ---- enqueue --file ------------------------------------------------------------------------------

test('--file: 1,000 jobs (NDJSON) are enqueued at once, in order; a JSON array from stdin; a single object', async () => {
  const home = newHome('file');
  const q = cli(home);
  const dir = scratch('file');
  const ids = Array.from({ length: 1000 }, (_, i) => `f${String(i + 1).padStart(4, '0')}`);
  const lines = ids.map((id, i) => JSON.stringify({ id, command: `echo ${id}`, ...(i % 3 === 0 ? { priority: i % 7 } : {}), ...(i % 5 === 0 ? { max_retries: 1 } : {}) }));
  writeFileSync(join(dir, 'jobs.ndjson'), `${lines.join('\n')}\n\n`);
  const r = await q('enqueue', '--file', join(dir, 'jobs.ndjson'));
  assert.equal(ok(r).split('\n').slice(0, -1), ids, 'each new id on its own line, in file order');

  const log = await events(q);
  assert.is(log.length, 1000);
  assert.equal(log.map((e) => e.jobId), ids);
  assert.ok(log.every((e, i) => e.type === 'JobEnqueued' && e.pos === log[0]!.pos + i), 'one contiguous run of positions');
  assert.is(json(await q('status', '--json')).jobs.pending, 1000);
  assert.equal(json<any[]>(await q('list', '--limit', '3', '--json')).map((j) => j.id), ['f1000', 'f0999', 'f0998'], 'newest first');
  assert.equal([(await job(q, 'f0004')).priority, (await job(q, 'f0006')).max_retries], [3, 1]);

  // a JSON array on stdin (`-`); options fill in what the jobs do not set
  const fromStdin = await run(['enqueue', '--file', '-', '--priority', '7', '--home', home], { input: '[{"id":"a1","command":"echo a"},{"command":"echo b","priority":1}]' });
  const [a1, generated, ...rest] = ok(fromStdin).split('\n');
  assert.equal([a1, rest], ['a1', ['']]);
  assert.equal([(await job(q, 'a1')).priority, (await job(q, generated!)).priority], [7, 1]);
  writeFileSync(join(dir, 'one.json'), '{\n  "id": "single",\n  "command": "echo one"\n}\n');
  assert.is(ok(await q('enqueue', '--file', join(dir, 'one.json'))), 'single\n');
});

test('--file with one bad job anywhere enqueues nothing and names the line', async () => {
  const home = newHome('badfile');
  const q = cli(home);
  const dir = scratch('badfile');
  ok(await q('enqueue', 'echo first', '--id', 'taken'));
  const good = (i: number) => JSON.stringify({ id: `g${i}`, command: `echo ${i}` });
  const file = (name: string, lines: string[]) => {
    writeFileSync(join(dir, name), lines.join('\n'));
    return join(dir, name);
  };
  const thousand = (bad: number, line: string) => Array.from({ length: 1000 }, (_, i) => (i + 1 === bad ? line : good(i + 1)));
  const cases: [string, 1 | 2, RegExp][] = [
    [file('malformed.ndjson', thousand(637, '{"command": "echo", ')), 2, /line 637: not valid JSON/],
    [file('invalid.ndjson', thousand(500, '{"command":"echo","priority":"high"}')), 2, /line 500: priority must be an integer/],
    [file('unknown-field.ndjson', thousand(1000, '{"command":"echo","retries":3}')), 2, /line 1000: unknown job field 'retries'/],
    [file('not-object.ndjson', thousand(2, '"echo hi"')), 2, /line 2: a job must be a JSON object/],
    [file('array.json', ['[', good(1), ',', good(2), ',', '{"command": 5}', ']']), 2, /job 3 of the array: a job needs a non-empty "command"/],
    [file('broken-array.json', ['[', good(1), ',']), 2, /not a valid JSON array/],
    [file('empty.ndjson', ['', '  ']), 2, /the job file is empty/],
    [file('dup-in-file.ndjson', [good(1), good(2), good(1)]), 2, /line 3: the id 'g1' is already used by line 1/],
    [file('dup-in-queue.ndjson', [good(1), JSON.stringify({ id: 'taken', command: 'x' })]), 1, /'taken' already exists/],
  ];
  const before = await snapshot(q, home);
  await each(cases, async ([path, code, message]) => {
    const r = await q('enqueue', '--file', path);
    refused(r, code, message);
    assert.is(r.stdout, '', path);
  });
  refused(await run(['enqueue', '--file', '-', '--home', home], { input: `${good(1)}\nnot json\n` }), 2, /line 2: not valid JSON/);
  assert.equal(await snapshot(q, home), before, 'nothing was enqueued');
});

// ---- --json shapes and human output --------------------------------------------------------------

test('--json: status, list, show, logs, history, config, dlq list print one JSON document of the documented shape', async () => {
  const home = newHome('json');
  const q = cli(home);
  ok(await q('enqueue', 'echo done', '--id', 'c1', '--timeout', '1m', '--max-retries', '2'));
  ok(await q('enqueue', 'exit 3', '--id', 'd1', '--max-retries', '0', '--priority', '4'));
  ok(await q('enqueue', 'echo never', '--id', 'x1'));
  ok(await q('cancel', 'x1'));
  assert.equal((await startWorker(home, '--drain').finished()).code, 0);
  const runAt = '2030-06-01T12:00:00.000Z';
  ok(await q('enqueue', 'echo later', '--id', 'p1', '--run-at', runAt));

  const [statusRun, listRun] = await Promise.all([q('status', '--json'), q('list', '--json')]);
  const status = json(statusRun);
  assert.equal(status.jobs, { pending: 1, processing: 0, completed: 1, failed: 0, dead: 1, cancelled: 1 });
  assert.equal(status.workers, []);
  assert.equal(status.oldest_pending?.id, 'p1');

  const list = json<any[]>(listRun);
  assert.equal(list.map((j) => j.id), ['p1', 'x1', 'd1', 'c1'], 'newest first');
  for (const j of list) {
    assert.equal(Object.keys(j), JOB_FIELDS);
    for (const k of ['created_at', 'updated_at']) assert.match(j[k], ISO, `${j.id}.${k}`);
    for (const k of ['run_at', 'next_run_at']) assert.ok(j[k] === null || ISO.test(j[k]), `${j.id}.${k}: ${j[k]}`);
  }
  const byId = Object.fromEntries(list.map((j) => [j.id, j]));
  const pick = (j: any, ...keys: string[]) => keys.map((k) => j[k]);
  assert.equal(pick(byId.c1, 'state', 'attempts', 'max_retries', 'priority', 'timeout_seconds', 'exit_code', 'last_error'), ['completed', 1, 2, 0, 60, 0, null]);
  assert.equal(pick(byId.d1, 'state', 'attempts', 'max_retries', 'priority', 'exit_code', 'last_error'), ['dead', 1, 0, 4, 3, 'exit code 3']);
  assert.equal(pick(byId.x1, 'state', 'attempts', 'max_retries'), ['cancelled', 0, 3]);
  assert.equal(pick(byId.p1, 'state', 'run_at', 'next_run_at', 'command'), ['pending', runAt, runAt, 'echo later']);
  assert.equal(json(await q('show', 'd1', '--json')), byId.d1);
  assert.equal(json<any[]>(await q('list', '--state', 'dead', '--json')).map((j) => j.id), ['d1']);
  assert.equal(json<any[]>(await q('list', '--limit', '2', '--json')).map((j) => j.id), ['p1', 'x1']);
  assert.equal(json(await q('list', '--state', 'failed', '--json')), []);

  const dlq = json<any[]>(await q('dlq', 'list', '--json'));
  assert.equal(dlq.map((d) => d.id), ['d1']);
  assert.match(dlq[0].dead_at, ISO);
  const logs = json<any[]>(await q('logs', 'd1', '--json'));
  assert.equal(logs.map((a) => [a.attempt, a.status]), [[1, 'exit code 3']]);
  const history = json<any[]>(await q('history', 'c1', '--json'));
  for (const e of history) {
    assert.type(e.pos, 'number');
    assert.type(e.at, 'number');
    assert.type(e.type, 'string');
  }
  assert.equal(json(await q('config', 'get', '--json')).max_retries, 3);

  // human output: an aligned table, no colour when stdout is not a terminal
  const table = ok(await q('list'));
  assert.match(table, /^ID\s+STATE\s+ATTEMPTS\s+PRIORITY\s+UPDATED\s+COMMAND\n/);
  const columns = table.trimEnd().split('\n').map((l) => l.indexOf(l.split(/\s{2,}/)[1]!));
  assert.ok(columns.every((c) => c === columns[0]), `aligned:\n${table}`);
  assert.match(ok(await q('status')), /^Jobs\s+pending 1\s+processing 0\s+completed 1\s+failed 0\s+dead 1\s+cancelled 1\n/);
  await each([['show', 'd1'], ['history', 'd1'], ['logs', 'd1'], ['dlq', 'list'], ['config', 'get']], async (args) => {
    assert.not.match(ok(await q(...args)), /\x1b\[/, `no colour codes in: ${args.join(' ')}`);
  });
});

// ---- the data directory ----------------------------------------------------------------------------

test('data directory: --home, else QUEUECTL_HOME, else ~/.queuectl; created 0700', async () => {
  const fromEnv = join(scratch('env'), 'q');
  ok(await run(['enqueue', 'echo env', '--id', 'e1'], { env: { QUEUECTL_HOME: fromEnv } }));
  assert.is(statSync(fromEnv).mode & 0o777, 0o700);
  assert.is((await job(cli(fromEnv), 'e1')).command, 'echo env');

  const fromFlag = join(scratch('flag'), 'q');
  ok(await run(['enqueue', 'echo flag', '--id', 'f1', '--home', fromFlag], { env: { QUEUECTL_HOME: fromEnv } }));
  assert.is(json(await cli(fromEnv)('status', '--json')).jobs.pending, 1, '--home wins over QUEUECTL_HOME');
  assert.is(statSync(fromFlag).mode & 0o777, 0o700);

  const fakeHome = scratch('userhome');
  ok(await run(['enqueue', 'echo default', '--id', 'h1'], { env: { HOME: fakeHome } }));
  assert.is(statSync(join(fakeHome, '.queuectl')).mode & 0o777, 0o700);
});

test('a data directory that is not ours is refused (exit 2) and left untouched', async () => {
  const notOurs = scratch('notours');
  writeFileSync(join(notOurs, 'notes.txt'), 'mine\n');
  mkdirSync(join(notOurs, 'photos'));
  for (const args of [['status'], ['enqueue', 'echo hi'], ['worker', 'start', '--drain'], ['config', 'set', 'max_retries', '1']]) {
    refused(await run([...args, '--home', notOurs]), 2, /is not a queuectl data directory \(it holds notes\.txt, photos\)/);
  }
  assert.equal(readdirSync(notOurs).sort(), ['notes.txt', 'photos']);

  const file = join(scratch('file'), 'plain-file');
  writeFileSync(file, 'x');
  refused(await run(['status', '--home', file]), 2, /is not a directory/);

  const open = scratch('open');
  chmodSync(open, 0o777);
  const r = await run(['status', '--home', open]);
  assert.ok(r.code === 1 || r.code === 2, `exit ${r.code}`);
  refused(r, r.code as 1 | 2, /writable by group or others \(mode 777\); fix it with: chmod 700/);
  assert.equal(readdirSync(open), []);
});

test('no stray processes are left', async () => {
  await assertNoStrays();
});

test.run();
