// End to end: control characters from jobs (commands, output, errors) never reach the
// operator's terminal raw. Human output shows C0/C1 controls other than newline and tab as
// `\xNN` (worker lines, tables, show, events, history, logs, error lines), on a terminal and
// off it; `--json` and `logs --raw` give the data as it is. Issue 9 item 15, issue 11 finding 5.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { CLI, type Q, assertNoStrays, cleanup, cli, json, newHome, ok, refused, startWorker, stopWorkers } from './helpers/cli.ts';

test.after.each(() => stopWorkers());
test.after(cleanup);

// every C0 control but tab and newline, DEL, and C1 (as characters: U+009B is CSI on some terminals)
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

/** What a hostile job prints: an OSC 52 clipboard write, a screen clear, a CR overwrite, BEL, DEL, C1 CSI. */
const OUTPUT = '\x1b]52;c;aGVsbG8=\x07\x1b[2Jsafe\rover\u009b31m\x7f done\n';
const COMMAND = `printf '\\033]52;c;aGVsbG8=\\007\\033[2Jsafe\\rover\\302\\23331m\\177 done\\n'; exit 1 # \x1b[8mhidden\x1b[0m \r`;

const assertNoRawControls = (text: string, what: string): void => {
  const at = RAW_CONTROL.exec(text);
  assert.ok(at === null, `${what}: raw control character ${JSON.stringify(at?.[0])} at ${at?.index}: ${JSON.stringify(text.slice(Math.max(0, (at?.index ?? 0) - 30), (at?.index ?? 0) + 30))}`);
};

let home = '';
let q: Q;
let workerLines: string[] = [];

test.before(async () => {
  home = newHome();
  q = cli(home);
  ok(await q('enqueue', COMMAND, '--id', 'evil', '--max-retries', '0'));
  const w = startWorker(home, '--drain');
  assert.is((await w.finished()).code, 0);
  workerLines = w.lines;
});

test('human output escapes control characters: worker lines, list, show, dlq list, events, history, status, logs', async () => {
  assert.ok(workerLines.some((l) => l.includes('evil started')), workerLines.join('\n'));
  assertNoRawControls(workerLines.join('\n'), 'worker lines');
  assert.ok(workerLines.some((l) => l.includes('\\x1b[8mhidden')), 'the worker line shows the escape');
  for (const args of [['list'], ['show', 'evil'], ['dlq', 'list'], ['events'], ['history', 'evil'], ['status'], ['logs', 'evil']]) {
    const out = ok(await q(...args));
    assertNoRawControls(out, args.join(' '));
    // list and dlq list show the command's first 48 characters, which hold no ESC
    if (!['list', 'dlq', 'status'].includes(args[0]!)) assert.match(out, /\\x1b/, `${args.join(' ')} shows ESC as \\x1b`);
  }
  const logs = ok(await q('logs', 'evil'));
  assert.ok(logs.includes('\\x1b]52;c;aGVsbG8=\\x07\\x1b[2Jsafe\\x0dover\\x9b31m\\x7f done\n'), logs);
  const show = ok(await q('show', 'evil'));
  assert.ok(show.includes('# \\x1b[8mhidden\\x1b[0m \\x0d'), show);
});

test('--json and logs --raw give the data exactly as it is', async () => {
  assert.is(json(await q('show', 'evil', '--json')).command, COMMAND);
  assert.is(json<{ command: string }[]>(await q('list', '--json'))[0]!.command, COMMAND);
  assert.is(json<Record<string, string>[]>(await q('logs', 'evil', '--json'))[0]!.stdout, OUTPUT);
  const raw = await q('logs', 'evil', '--raw');
  assert.is(raw.code, 0);
  assert.is(raw.stdout, OUTPUT, 'stdout bytes as the job wrote them, no header');
  assert.is(raw.stderr, '');
});

test("list's clipping never cuts an escape in half; an error line escapes what the user typed", async () => {
  const h = newHome();
  const c = cli(h);
  for (let k = 44; k <= 48; k++) ok(await c('enqueue', `${'a'.repeat(k)}\x1b[31m${'b'.repeat(20)}`, '--id', `clip${k}`));
  const out = ok(await c('list'));
  assertNoRawControls(out, 'list');
  for (const line of out.split('\n').filter((l) => l.startsWith('clip'))) {
    const cell = line.slice(line.lastIndexOf('  ') + 2);
    assert.ok(cell.endsWith('…'), cell);
    assert.ok(cell.length <= 48, `${cell.length} chars: ${cell}`);
    assert.match(cell.slice(0, -1), /^a+(\\x1b\[31m?b*)?$/, `whole escapes only: ${cell}`);
  }
  const r = await c('enqueue', '{"command":"true","bad\\u001b]0;title\\u0007":1}');
  refused(r, 2, /unknown job field 'bad\\x1b\]0;title\\x07'/);
  assertNoRawControls(r.stderr.slice(0, -1), 'the error line');
});

test('on a terminal (a pseudo-terminal through script(1)), only queuectl\'s own colours are sent', async (context) => {
  const probe = spawnSync('script', ['-qc', 'true', '/dev/null']);
  if (probe.error || probe.status !== 0) {
    if (process.env.CI === 'true') assert.unreachable(`script(1) is needed for the terminal test: ${probe.error?.message ?? probe.stderr}`);
    console.log(`  skipped: script(1) cannot run here (${probe.error?.message ?? probe.status})`);
    return void context;
  }
  const env = { ...process.env } as NodeJS.ProcessEnv;
  delete env.NO_COLOR;
  delete env.FORCE_COLOR;
  env.TERM = 'xterm-256color';
  for (const args of ['list', 'show evil', 'dlq list', 'history evil', 'logs evil']) {
    const r = spawnSync('script', ['-qc', `${process.execPath} ${CLI} ${args} --home ${home}`, '/dev/null'], { env, encoding: 'utf8', timeout: 20_000 });
    assert.is(r.status, 0, `${args}: ${r.stdout}${r.stderr}`);
    const out = r.stdout.replace(/\r\n/g, '\n');
    assert.match(out, /\x1b\[\d+m/, `${args}: coloured on a terminal`);
    // picocolors' own: bold, dim, colours 31-36 and their resets (a job's SGR 8 "hidden" is not among them)
    assertNoRawControls(out.replace(/\x1b\[(1|2|22|3[1-6]|39)m/g, ''), `${args} on a terminal, colours aside`);
  }
});

test('no stray processes', () => assertNoStrays());

test.run();
