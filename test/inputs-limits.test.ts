// End to end: inputs that could never run, or would break the log, are refused at enqueue
// (exit 2, one line naming the limit, nothing written), and every limit is exact: the largest
// accepted value works. Issue 9 items 8-13 and 15, issue 11 finding 6 (--file bounded).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { PROJECTIONS } from '../projections/index.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';
import { LogStore } from '../src/store/leveldb/store.ts';
import { checkBatchSize, MAX_BATCH_BYTES } from '../src/domain/job-spec.ts';
import {
  type Q, assertNoStrays, cleanup, cli, history, job, json, newHome, ok, refused, run, scratch, startWorker, stopWorkers,
} from './helpers/cli.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

type Refusal = [args: string[], code: 1 | 2, limit: RegExp];

/** Runs each case (three at a time), asserts a refusal naming its limit, and that the log did not change. */
const refusals = async (q: Q, cases: Refusal[]): Promise<void> => {
  const before = ok(await q('events', '--json'));
  const left = [...cases];
  await Promise.all(Array.from({ length: 3 }, async () => {
    for (let c = left.shift(); c !== undefined; c = left.shift()) refused(await q(...c[0]), c[1], c[2]);
  }));
  assert.is(ok(await q('events', '--json')), before, 'the refusals wrote nothing');
};
const refusedAndNothingWritten = (q: Q, args: string[], code: 1 | 2, limit: RegExp) => refusals(q, [[args, code, limit]]);

const fileWith = (name: string, text: string): string => {
  const path = join(scratch('jobs'), name);
  writeFileSync(path, text);
  return path;
};

test('timeouts: 2^31 ms or more and values below 1 ms are refused; the longest and the shortest are kept exactly', async () => {
  const home = newHome();
  const q = cli(home);
  ok(await q('enqueue', 'true', '--id', 'seed'));
  await refusals(q, [
    [['enqueue', 'true', '--timeout', '100000h'], 2, /--timeout 100000h is too long: at most 2147483\.647 seconds/],
    [['enqueue', 'true', '--timeout', '24.86d'], 2, /at most 2147483\.647 seconds/],
    [['enqueue', 'true', '--timeout', '0.0001'], 2, /--timeout must be a number > 0, from 0\.001 to 2147483\.647 seconds/],
    [['enqueue', '{"command":"true","timeout_seconds":1e12}'], 2, /timeout_seconds must be a number > 0, from 0\.001 to 2147483\.647/],
    [['enqueue', '{"command":"true","timeout_seconds":0.0001}'], 2, /timeout_seconds .* from 0\.001/],
    [['enqueue', '{"command":"true","timeout_seconds":2147483.648}'], 2, /timeout_seconds .* to 2147483\.647/],
  ]);
  ok(await q('enqueue', '{"id":"longest","command":"true","timeout_seconds":2147483.647}'));
  ok(await q('enqueue', '{"id":"shortest","command":"sleep 1","timeout_seconds":0.001}'));
  assert.is((await job(q, 'longest')).timeout_seconds, 2147483.647);
  assert.is((await job(q, 'shortest')).timeout_seconds, 0.001);
  // the longest timeout does not fire at once (it did when Node's timer overflowed)
  ok(await q('cancel', 'seed'));
  ok(await q('enqueue', '{"id":"long","command":"sleep 0.3","timeout_seconds":2147483}'));
  ok(await q('cancel', 'shortest'));
  const w = startWorker(home, '--drain');
  assert.is((await w.finished()).code, 0);
  assert.is((await job(q, 'long')).state, 'completed');
  assert.is((await job(q, 'longest')).state, 'completed');
});

test('config: every key has a range that keeps computed times valid; values past it are refused', async () => {
  const q = cli(newHome());
  ok(await q('enqueue', 'true', '--id', 'seed'));
  const cases: [string, string, RegExp][] = [
    ['lease_seconds', '10000000000000', /lease_seconds: expected an integer >= 1 and <= 86400/],
    ['backoff_max', '9007199254740992', /backoff_max: expected a number >= 0 and <= 31536000/],
    ['backoff_base', '9007199254740992', /backoff_base: expected a number >= 1 and <= 1000000/],
    ['output_limit', '9007199254740992', /output_limit: expected an integer >= 0 and <= 67108864/],
    ['max_retries', '2147483648', /max_retries: expected an integer >= 0 and <= 2147483647/],
  ];
  await refusals(q, cases.map(([key, value, message]): Refusal => [['config', 'set', key, value], 2, message]));
  for (const [key, value] of [['lease_seconds', '86400'], ['backoff_max', '31536000'], ['backoff_base', '1000000'], ['output_limit', '67108864'], ['max_retries', '2147483647']]) {
    ok(await q('config', 'set', key!, value!));
  }
});

test('a log holding values from before the ranges (a huge lease, a time past any date) stays readable and usable', async () => {
  const home = newHome();
  const q = cli(home);
  ok(await q('enqueue', 'exit 3', '--id', 'old', '--max-retries', '1'));
  // what an older queuectl accepted and computed: lease_seconds 1e13, backoff_max 2^53, and a
  // claim whose lease ends 1e16 ms from now (not a date: Date's range ends at 8.64e15)
  const db = new ClassicLevel<string, unknown>(join(home, 'db')) as unknown as AnyLevel;
  const store = await LogStore.open(db, { projections: PROJECTIONS, sync: true });
  const now = Date.now();
  await store.append([{ type: 'ConfigSet', key: 'lease_seconds', value: 1e13 }, { type: 'ConfigSet', key: 'backoff_max', value: 2 ** 53 }], now);
  await store.append([{ type: 'JobEnqueued', jobId: 'ghost', command: 'true', cwd: '/', priority: 0, maxRetries: null, runAt: null, timeoutMs: null }], now);
  await store.append([{ type: 'JobClaimed', jobId: 'ghost', workerId: 'w-old', attempt: 1, leaseUntil: now + 1e16 }], now);
  await store.close();
  const lines = ok(await q('history', 'ghost'));
  assert.match(lines, /lease until \(not a time: \d+\)/);
  assert.match(ok(await q('events')), /JobClaimed\s+ghost\s+attempt 1 by worker w-old, lease until \(not a time: \d+\)/);
  assert.ok(json(await q('show', 'ghost', '--json')).id === 'ghost');
  // new claims and retries are computed from the values taken to their bounds: valid dates
  const w = startWorker(home, '--drain');
  await q('cancel', 'ghost'); // its worker is long gone
  assert.is((await w.finished()).code, 0);
  const h = await history(q, 'old');
  for (const e of h) for (const k of ['leaseUntil', 'retryAt']) if (typeof e[k] === 'number') assert.ok(e[k] < now + 2 * 86_400_000, `${e.type}.${k} within a day or so`);
  assert.match(ok(await q('history', 'old')), /lease until \d{4}-/);
  ok(await q('events'));
  ok(await q('projections', 'verify'));
});

test('commands with a NUL byte or longer than the kernel passes to a shell are refused; the longest one runs', async () => {
  const home = newHome();
  const q = cli(home);
  ok(await q('enqueue', 'true', '--id', 'seed'));
  const tooLong = `: ${'a'.repeat(131_072 - 2)}`;
  await refusals(q, [
    [['enqueue', '--file', fileWith('nul.json', '{"command":"echo a\\u0000b"}')], 2, /command contains a NUL byte/],
    [['enqueue', '{"command":"echo a\\u0000b"}'], 2, /command contains a NUL byte/],
    [['enqueue', '--file', fileWith('long.json', JSON.stringify({ command: tooLong }))], 2, /the command is 131072 bytes, more than the 131071 bytes \(128 KiB\)/],
    // multi-byte characters count as bytes
    [['enqueue', '--file', fileWith('wide.json', JSON.stringify({ command: `: ${'é'.repeat(65_535)}` }))], 2, /131072 bytes, more than the 131071/],
    [['enqueue', '--file', fileWith('cwd.json', JSON.stringify({ command: 'true', cwd: `/${'d'.repeat(4095)}` }))], 2, /cwd is longer than 4095 bytes/],
  ]);
  ok(await q('cancel', 'seed'));
  ok(await q('enqueue', '--file', fileWith('longest.json', JSON.stringify({ id: 'longest', command: `: ${'a'.repeat(131_071 - 2)}` }))));
  const w = startWorker(home, '--drain');
  assert.is((await w.finished()).code, 0);
  assert.is((await job(q, 'longest')).state, 'completed', 'a command of exactly the limit runs');
  // worker lines and tables show the start of it, not 128 KiB
  for (const line of w.lines) assert.ok(line.length <= 260, `worker line of ${line.length} chars`);
  for (const args of [['list'], ['history', 'longest'], ['events']]) {
    for (const line of ok(await q(...args)).split('\n')) assert.ok(line.length < 1200, `${args[0]}: a line of ${line.length} chars`);
  }
});

test('dates that do not exist are refused, not moved (option and JSON); real ones are kept', async () => {
  const q = cli(newHome());
  ok(await q('enqueue', 'true', '--id', 'seed'));
  const impossible = ['2026-02-29T00:00:00Z', '2026-04-31', '2026-13-01', '2026-01-01T24:00:00Z', '2026-01-01T10:60:00Z', '2026-01-01T10:00:60Z', '2026-01-01T10:00:00+24:00'];
  await refusals(q, [
    [['enqueue', 'true', '--run-at', '2026-02-30T10:00:00Z'], 2, /run_at "2026-02-30T10:00:00Z" is not a real date and time/],
    ...impossible.map((runAt): Refusal => [['enqueue', JSON.stringify({ command: 'true', run_at: runAt })], 2, /is not a real date and time/]),
    [['enqueue', 'true', '--delay', '99999999h'], 2, /--delay 99999999h reaches past 9999-12-31/],
  ]);
  ok(await q('enqueue', 'true', '--id', 'leap', '--run-at', '2028-02-29T10:00:00Z'));
  assert.is((await job(q, 'leap')).run_at, '2028-02-29T10:00:00.000Z');
  ok(await q('enqueue', JSON.stringify({ id: 'late', command: 'true', run_at: '9999-12-31T23:59:59Z' })));
  assert.is((await job(q, 'late')).run_at, '9999-12-31T23:59:59.000Z');
});

test('options: a repeated or empty value is refused (nothing created); values are kept as typed; one rule for relative paths', async () => {
  const root = scratch('opts');
  const q = cli(newHome());
  ok(await q('enqueue', 'true', '--id', 'seed'));
  await refusals(q, [
    [['enqueue', 'true', '--cwd', '/tmp', '--cwd', '/var'], 2, /--cwd was given twice \('\/tmp' and '\/var'\); give it once/],
    [['enqueue', 'true', '--priority=1', '--priority', '2'], 2, /--priority was given twice/],
    [['enqueue', 'true', '--id', ''], 2, /--id was given an empty value/],
    [['enqueue', 'true', '--timeout='], 2, /--timeout was given an empty value/],
  ]);
  refused(await run(['status', '--home', join(root, 'A'), '--home', join(root, 'B')], { cwd: root }), 2, /--home was given twice/);
  refused(await run(['status', '--home', ''], { cwd: root }), 2, /--home was given an empty value/);
  refused(await run(['enqueue', 'true'], { cwd: root, env: { QUEUECTL_HOME: '' } }), 2, /QUEUECTL_HOME is set but empty/);
  assert.equal(readdirSync(root), [], 'no data directory A,B or 0 was created, nor one in the current directory');
  // as typed: an id of digits keeps its zeros
  ok(await q('enqueue', 'true', '--id', '007'));
  assert.ok((await job(q, '007')).id === '007');
  // a relative cwd, as an option or in JSON, is taken from the directory enqueue runs in
  const home = newHome();
  const inRoot = cli(home, { cwd: root });
  ok(await inRoot('enqueue', 'true', '--id', 'opt', '--cwd', 'sub/dir'));
  ok(await inRoot('enqueue', '{"id":"json","command":"true","cwd":"sub/../sub/dir"}'));
  ok(await inRoot('enqueue', '--file', fileWith('rel.ndjson', '{"id":"file","command":"true","cwd":"sub/dir"}\n')));
  for (const id of ['opt', 'json', 'file']) assert.is((await job(inRoot, id)).cwd, join(root, 'sub/dir'), id);
});

test('an argument is JSON only when it opens like a job object or an array of them; --command forces a shell command', async () => {
  const home = newHome();
  const dir = scratch('brace');
  const q = cli(home, { cwd: dir });
  const [brace] = ok(await q('enqueue', '{ echo a; } > brace.out')).trim().split('\n');
  ok(await q('enqueue', '[ -d / ] && echo yes > test.out', '--id', 'bracket'));
  const ids = json<string[]>(await q('enqueue', '[{"id":"arr1","command":"echo 1 > arr1.out"},{"id":"arr2","command":"echo 2"}]', '--json'));
  assert.equal(ids, ['arr1', 'arr2']);
  ok(await q('enqueue', '--command', '{"not":"json"} 2>/dev/null; echo forced > forced.out', '--id', 'forced'));
  assert.is((await job(q, brace!)).command, '{ echo a; } > brace.out');
  assert.is((await job(q, 'forced')).command, '{"not":"json"} 2>/dev/null; echo forced > forced.out');
  const w = startWorker(home, '--drain');
  assert.is((await w.finished()).code, 0);
  for (const f of ['brace.out', 'test.out', 'arr1.out', 'forced.out']) assert.ok(existsSync(join(dir, f)), `${f} written by its job`);
  // JSON that is broken is still an error, with the way out
  await refusals(q, [
    [['enqueue', '{"command": "echo hi", '], 2, /starts like JSON but is not valid JSON .*give a shell command with --command/],
    [['enqueue', '[]'], 2, /nothing to enqueue/],
    [['enqueue', '[{"command":"true"},{"command":"true"}]', '--id', 'x'], 2, /--id names one job/],
    [['enqueue', 'true', '--command', 'true'], 2, /either a job or --command, not both/],
  ]);
});

test('--file reads at most 64 MiB from a file, a device, a FIFO or stdin, and the batch it sends is bounded', async () => {
  const home = newHome();
  const q = cli(home);
  ok(await q('enqueue', 'true', '--id', 'seed'));
  const zero = await q('enqueue', '--file', '/dev/zero');
  refused(zero, 2, /\/dev\/zero holds more than 64 MiB, the most one --file may hold/);
  assert.ok(zero.ms < 10_000, `refused /dev/zero in ${zero.ms} ms`);
  const big = join(scratch('big'), 'big.ndjson');
  writeFileSync(big, `${'{"command":"true"}\n'.repeat(Math.ceil((64 * 1024 * 1024 + 1) / 19))}`);
  await refusedAndNothingWritten(q, ['enqueue', '--file', big], 2, /holds more than 64 MiB/);
  // stdin without end: a FIFO whose writer never stops
  const fifo = join(scratch('fifo'), 'jobs');
  await new Promise<void>((resolve, reject) => spawn('mkfifo', [fifo]).on('close', (c) => (c === 0 ? resolve() : reject(new Error('mkfifo failed')))));
  const writer = spawn('sh', ['-c', `yes '{"command":"true"}' > ${fifo}`], { stdio: 'ignore' });
  try {
    await refusedAndNothingWritten(q, ['enqueue', '--file', fifo], 2, /holds more than 64 MiB/);
  } finally {
    writer.kill('SIGKILL');
  }
  // a FIFO with a few jobs is read to its end
  const small = spawn('sh', ['-c', `printf '{"id":"via-fifo","command":"true"}\\n' > ${fifo}`], { stdio: 'ignore' });
  ok(await q('enqueue', '--file', fifo));
  small.kill();
  assert.is((await job(q, 'via-fifo')).state, 'pending');
  // the batch: 70,000 one-line jobs in a 4,000-byte directory come to ~290 MiB as sent to the host
  const deep = `/${'d'.repeat(3990)}`;
  await refusedAndNothingWritten(q, ['enqueue', '--cwd', deep, '--file', fileWith('many.ndjson', '{"command":"true"}\n'.repeat(70_000))], 2, /these 70000 jobs come to about \d+ MiB, more than the 256 MiB one enqueue may carry/);
  assert.throws(() => checkBatchSize(Array.from({ length: 3 }, (_, i) => ({ id: `j${i}`, command: 'x'.repeat(MAX_BATCH_BYTES / 3), cwd: '/', priority: 0, maxRetries: null, runAt: null, timeoutMs: null }))), /more than the 256 MiB/);
});

test('logs: output deleted by hand is reported missing (text, --json, --raw exits 1), never shown as empty', async () => {
  const home = newHome();
  const q = cli(home);
  ok(await q('enqueue', 'echo out; echo err >&2', '--id', 'gone'));
  assert.is((await startWorker(home, '--drain').finished()).code, 0);
  assert.match(ok(await q('logs', 'gone')), /\[stdout\]\nout\n/);
  rmSync(join(home, 'logs'), { recursive: true, force: true });
  const text = ok(await q('logs', 'gone'));
  assert.match(text, /\[stdout missing: 4 of 4 kept bytes are gone from .*1\.stdout/);
  assert.match(text, /\[stderr missing: 4 of 4 kept bytes are gone/);
  const [a] = json<Record<string, unknown>[]>(await q('logs', 'gone', '--json'));
  assert.is(a!.stdout_missing_bytes, 4);
  assert.is(a!.stderr_missing_bytes, 4);
  refused(await q('logs', 'gone', '--raw'), 1, /kept output is missing: .*1\.stdout \(4 bytes\)/);
});

test('queuectl --bogus is an error, not just the help; priority and retry messages name their 32-bit range', async () => {
  const r = await run(['--bogus']);
  refused(r, 2, /unknown option '--bogus'/);
  refused(await run(['--bogus=1', '--home', newHome()]), 2, /unknown option '--bogus'/);
  const q = cli(newHome());
  ok(await q('enqueue', 'true', '--id', 'seed'));
  await refusals(q, [
    [['enqueue', 'true', '--priority', '2147483648'], 2, /priority must be an integer from -2147483648 to 2147483647/],
    [['enqueue', '{"command":"true","priority":-2147483649}'], 2, /priority must be an integer from -2147483648 to 2147483647/],
    [['enqueue', 'true', '--max-retries', '2147483648'], 2, /max_retries must be an integer >= 0 \(at most 2147483647\)/],
  ]);
  refused(await q('worker', 'start', '--count', '100000000'), 2, /--count takes an integer >= 1 and <= 1024/);
  ok(await q('enqueue', 'true', '--priority=-2147483648', '--id', 'lowest'));
  assert.is((await job(q, 'lowest')).priority, -2147483648);
});

test('no stray processes', () => assertNoStrays());

test.run();
