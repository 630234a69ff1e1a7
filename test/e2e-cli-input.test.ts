// End to end: what a user types that is not a job run. Bad input of every kind (exit 2, or 1
// where the operation itself fails: unknown job, duplicate id, wrong state) with one
// `queuectl: ...` line on stderr and nothing written; `enqueue --file`; the --json shapes;
// help and version; the data directory (where it is, its mode, refusing one that is not ours).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Q, assertNoStrays, cleanup, cli, events, job, json, newHome, ok, refused, run, scratch, startWorker, stopWorkers,
} from './helpers/cli.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const JOB_FIELDS = ['id', 'command', 'state', 'attempts', 'max_retries', 'priority', 'run_at', 'timeout_seconds', 'cwd', 'created_at', 'updated_at', 'next_run_at', 'last_error', 'exit_code'];

/** Everything a command could have written: the log, the counts, the data directory's files. */
const snapshot = async (q: Q, home: string) => ({
  events: ok(await q('events', '--json')),
  jobs: json(await q('status', '--json')).jobs,
  files: readdirSync(home).sort(),
  logs: existsSync(join(home, 'logs')) ? readdirSync(join(home, 'logs')).sort() : [],
});

/** Runs `cases` a few at a time (each is a separate process). */
const each = async <T>(items: T[], fn: (item: T) => Promise<void>, width = 4): Promise<void> => {
  const queue = [...items];
  await Promise.all(Array.from({ length: width }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  }));
};

// ---- bad input --------------------------------------------------------------------------------

type Case = [args: string[], code: 1 | 2, message: RegExp];

const badInput: Case[] = [
  // enqueue: the job itself
  [['enqueue'], 2, /give the job/],
  [['enqueue', '   '], 2, /give the job/],
  [['enqueue', '{"command": "echo hi", '], 2, /not valid JSON/],
  [['enqueue', '{"command":"echo","bogus":1}'], 2, /unknown job field 'bogus'; valid fields: id, command,/],
  [['enqueue', '{"command":""}'], 2, /non-empty "command"/],
  [['enqueue', '{"id":"has space","command":"echo"}'], 2, /invalid job id "has space"/],
  [['enqueue', '{"command":"x","priority":"high"}'], 2, /priority must be an integer/],
  [['enqueue', '{"command":"x","priority":1.5}'], 2, /priority must be an integer/],
  [['enqueue', '{"command":"x","max_retries":-1}'], 2, /max_retries must be an integer >= 0/],
  [['enqueue', '{"command":"x","max_retries":"3"}'], 2, /max_retries must be an integer >= 0/],
  [['enqueue', '{"command":"x","timeout_seconds":-1}'], 2, /timeout_seconds must be a number > 0/],
  [['enqueue', '{"command":"x","timeout_seconds":"5"}'], 2, /timeout_seconds must be a number > 0/],
  [['enqueue', '{"command":"x","run_at":"tomorrow"}'], 2, /run_at "tomorrow" is not an ISO 8601 time/],
  [['enqueue', '{"command":"x","cwd":""}'], 2, /cwd must be an absolute path/],
  // enqueue: options
  [['enqueue', 'x', '--id', 'bad id!'], 2, /invalid job id/],
  [['enqueue', 'x', '--id'], 2, /'--id <id>' value is missing/],
  [['enqueue', 'x', '--max-retries', '-1'], 2, /--max-retries takes an integer >= 0, got '-1'/],
  [['enqueue', 'x', '--max-retries', 'abc'], 2, /--max-retries takes an integer >= 0, got 'abc'/],
  [['enqueue', 'x', '--priority', 'high'], 2, /--priority takes an integer, got 'high'/],
  [['enqueue', 'x', '--priority', '1.5'], 2, /--priority takes an integer, got '1.5'/],
  [['enqueue', 'x', '--timeout', 'abc'], 2, /--timeout takes a duration like 30s, 5m or 2h/],
  [['enqueue', 'x', '--timeout', '0'], 2, /--timeout takes a duration/],
  [['enqueue', 'x', '--timeout', '-5'], 2, /negative|--timeout takes a duration/],
  [['enqueue', 'x', '--delay', 'soon'], 2, /--delay takes a duration/],
  [['enqueue', 'x', '--delay', '-1s'], 2, /negative|--delay takes a duration/],
  [['enqueue', 'x', '--run-at', 'tomorrow'], 2, /not an ISO 8601 time/],
  [['enqueue', 'x', '--run-at', '2030-01-01T00:00:00Z', '--delay', '5s'], 2, /either --run-at or --delay/],
  [['enqueue', 'x', '--bogus'], 2, /unknown option '--bogus'/],
  [['enqueue', '--file', '/nonexistent/jobs.ndjson'], 2, /no such file: \/nonexistent\/jobs.ndjson/],
  [['enqueue', 'x', '--file', '/nonexistent/jobs.ndjson'], 2, /either a job or --file/],
  // enqueue: the operation fails
  [['enqueue', 'x', '--id', 'done1'], 1, /a job with id 'done1' already exists/],
  [['enqueue', '{"id":"pend1","command":"x"}'], 1, /a job with id 'pend1' already exists/],
  // reading
  [['list', '--state', 'finished'], 2, /unknown state 'finished'; valid states: pending, processing, completed, failed, dead, cancelled/],
  [['list', '--limit', '0'], 2, /--limit takes an integer >= 1/],
  [['list', '--limit', 'ten'], 2, /--limit takes an integer >= 1/],
  [['status', '--bogus'], 2, /unknown option '--bogus'/],
  [['status', 'extra'], 2, /extra/],
  [['show'], 2, /missing required args/],
  [['show', 'nope'], 1, /no job with id 'nope'/],
  [['logs', 'nope'], 1, /no job with id 'nope'/],
  [['logs', 'done1', '--attempt', '0'], 2, /--attempt takes an integer >= 1/],
  [['logs', 'done1', '--attempt', '7'], 1, /job 'done1' has no attempt 7/],
  [['history', 'nope'], 1, /no job with id 'nope'/],
  [['events', '--from', '-1'], 2, /negative|--from takes an integer >= 0/],
  [['events', '--from', 'start'], 2, /--from takes an integer >= 0/],
  [['wait', 'nope', '--timeout', '5s'], 1, /no job with id 'nope'/],
  [['wait', '--timeout', 'later'], 2, /--timeout takes a duration/],
  // changing state
  [['cancel', 'nope'], 1, /no job with id 'nope'/],
  [['cancel', 'done1'], 1, /job 'done1' is completed; only pending, failed or processing jobs can be cancelled/],
  [['dlq', 'retry', 'nope'], 1, /no job with id 'nope'/],
  [['dlq', 'retry', 'pend1'], 1, /job 'pend1' is pending, not dead/],
  [['dlq', 'retry', 'dead1', 'pend1'], 1, /job 'pend1' is pending, not dead/], // all or nothing
  [['dlq', 'retry'], 2, /name the dead jobs to retry, or use --all/],
  [['dlq', 'retry', 'dead1', '--all'], 2, /ids or --all, not both/],
  [['dlq', 'list', 'dead1'], 2, /'dlq list' takes no ids/],
  [['dlq', 'purge'], 2, /unknown action 'dlq purge'/],
  // config
  [['config'], 2, /missing required args/],
  [['config', 'frob'], 2, /unknown action 'config frob'/],
  [['config', 'get', 'nope'], 2, /unknown config key 'nope'; valid keys: max_retries, backoff_base, backoff_max, output_limit/],
  [['config', 'set', 'nope', '1'], 2, /unknown config key 'nope'; valid keys: max_retries, backoff_base, backoff_max, output_limit/],
  [['config', 'set', 'max_retries'], 2, /config set <key> <value>/],
  [['config', 'set', 'max_retries', '-1'], 2, /negative|expected an integer >= 0/],
  [['config', 'set', 'max_retries', 'many'], 2, /invalid value 'many' for max_retries: expected an integer >= 0/],
  [['config', 'set', 'max_retries', '1.5'], 2, /expected an integer >= 0/],
  [['config', 'set', 'backoff_base', '0.5'], 2, /invalid value '0.5' for backoff_base: expected a number >= 1/],
  [['config', 'set', 'backoff_max', 'forever'], 2, /backoff_max/],
  [['config', 'set', 'output_limit', '1MB'], 2, /output_limit/],
  // commands and actions
  [['worker', 'frob'], 2, /unknown action 'worker frob'/],
  [['worker', 'start', '--count', '0'], 2, /--count takes an integer >= 1/],
  [['worker', 'start', '--count', 'two'], 2, /--count takes an integer >= 1/],
  [['projections', 'frob'], 2, /unknown action 'projections frob'/],
];

test('every bad input exits 2 (or 1 when the operation fails) with one line on stderr, and writes nothing', async () => {
  const home = newHome('bad');
  const q = cli(home);
  ok(await q('enqueue', 'echo ok', '--id', 'done1'));
  ok(await q('enqueue', 'exit 1', '--id', 'dead1', '--max-retries', '0'));
  assert.equal((await startWorker(home, '--drain').finished()).code, 0);
  ok(await q('enqueue', 'echo later', '--id', 'pend1', '--delay', '1h'));
  const check = async (cases: Case[]) => {
    const before = await snapshot(q, home);
    assert.equal(before.jobs, { pending: 1, processing: 0, completed: 1, failed: 0, dead: 1, cancelled: 0 });
    await each(cases, async ([args, code, message]) => {
      const r = await q(...args);
      refused(r, code, message);
      assert.is(r.stdout, '', `nothing on stdout for: queuectl ${args.join(' ')}`);
    });
    assert.equal(await snapshot(q, home), before, 'bad input wrote nothing');
  };
  // every command opening the database itself, then (quicker) every one a client of a host
  await check(badInput.filter((_, i) => i % 6 === 0));
  const host = await startWorker(home).ready();
  await check(badInput);
  assert.equal(await host.stop(), { code: 0, signal: null });
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
