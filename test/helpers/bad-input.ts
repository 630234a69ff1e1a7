// The table of bad input every backend must refuse the same way (exit 2, or 1 where the
// operation itself fails), one `queuectl: ...` line, nothing written: used by
// e2e-cli-input.test.ts (LevelDB) and pg-bad-input.test.ts (PostgreSQL).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { type Q, type Worker, json, ok, refused } from './cli.ts';

/** Everything a command could have written: the log, the counts, the data directory's files. */
export const snapshot = async (q: Q, home: string) => ({
  events: ok(await q('events', '--json')),
  jobs: json(await q('status', '--json')).jobs,
  files: readdirSync(home).sort(),
  logs: existsSync(join(home, 'logs')) ? readdirSync(join(home, 'logs')).sort() : [],
});

/** Runs `cases` a few at a time (each is a separate process). */
export const each = async <T>(items: T[], fn: (item: T) => Promise<void>, width = 4): Promise<void> => {
  const queue = [...items];
  await Promise.all(Array.from({ length: width }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  }));
};

export type Case = [args: string[], code: 1 | 2, message: RegExp];

export const badInput: Case[] = [
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


/**
 * Every case of the table against one queue, twice: each command opening the store itself (a
 * sample, for speed), then every case as a client of a running host. `q` runs the CLI on the
 * queue; `worker` starts a worker on it (with the options given).
 */
export const refusesEveryBadInput = async (q: Q, home: string, worker: (...args: string[]) => Worker): Promise<void> => {
  ok(await q('enqueue', 'echo ok', '--id', 'done1'));
  ok(await q('enqueue', 'exit 1', '--id', 'dead1', '--max-retries', '0'));
  assert.equal((await worker('--drain').finished()).code, 0);
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
  const host = await worker().ready();
  await check(badInput);
  assert.equal(await host.stop(), { code: 0, signal: null });
};
