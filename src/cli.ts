// queuectl's command line (dist/queuectl.js, run by dist/cli.js: see boot.ts): parse with cac,
// then hand over to one file per command group.
// The command groups are small and bundled with this file; what is heavy is loaded when it is
// needed: the database side when no host answers (host/local.ts), the worker runtime, tables.
import { cac } from 'cac';
import { environmentError, fail, QueuectlError, isQueuectlError } from './errors.ts';
import * as admin from './cli/admin.ts';
import * as jobs from './cli/jobs.ts';
import { typedOptionValues } from './cli/context.ts';
import { oneLine } from './cli/escape.ts';
import { showPaths } from './home.ts';
import { worker } from './cli/worker.ts';
import { exitsWithStdout } from './cli/context.ts';

import pkg from '../package.json' with { type: 'json' };

const cli = cac('queuectl');
cli.option('--home <dir>', 'data directory (default: $QUEUECTL_HOME or ~/.queuectl)');
cli.option('--json', 'machine-readable JSON on stdout (read commands)');
cli.option('--database-url <url>', 'keep the queue in PostgreSQL, shared by many machines (default: $QUEUECTL_DATABASE_URL; unset: LevelDB in --home)');

cli
  .command('enqueue [job]', 'Add a job: a shell command, or JSON (a job object or an array of them)')
  .option('--id <id>', 'job id (default: generated, unique and sortable)')
  .option('--max-retries <n>', 'retries after the first run (default: config max_retries)')
  .option('--priority <n>', 'lower runs first (default 0); negative values as --priority=-1')
  .option('--run-at <time>', 'do not start before this ISO 8601 time')
  .option('--delay <duration>', 'do not start before this long from now (30s, 5m, 2h)')
  .option('--timeout <duration>', 'end the job after this long (30s, 5m, 2h)')
  .option('--cwd <dir>', 'working directory (default: the current one)')
  .option('--file <path>', 'enqueue every job of a JSON object, JSON array or NDJSON file (- for stdin; at most 64 MiB)')
  .option('--command <command>', 'the shell command, never read as JSON (for a command starting with { or [)')
  .example(`queuectl enqueue 'sleep 3; echo done' --id sleepy`)
  .example(`queuectl enqueue '{"id":"job1","command":"echo hi","max_retries":2}'`)
  .example('queuectl enqueue --file jobs.ndjson')
  .action(jobs.enqueue);

cli
  .command('worker <action>', 'start | stop: run workers in this terminal, or stop every worker')
  .option('--count <n>', 'concurrent workers in this process', { default: 1 })
  .option('--detach', 'start in the background; output goes to worker.log in the data directory')
  .option('--drain', 'exit once nothing is running, waiting for a retry, or pending and due')
  .option('--force', '(stop) end running jobs at once instead of letting them finish')
  .example('queuectl worker start --count 4')
  .example('queuectl worker stop')
  .action(worker);

cli
  .command('status', 'Counts per state, workers, and the oldest pending job')
  .action(jobs.status);

cli
  .command('list', 'Jobs, newest first')
  .option('--state <state>', 'only jobs in this state: pending, processing, completed, failed, dead, cancelled')
  .option('--limit <n>', 'at most this many jobs', { default: 50 })
  .action(jobs.list);

cli.command('show <id>', 'One job').action(jobs.show);

cli
  .command('logs <id>', 'stdout and stderr of each attempt')
  .option('--attempt <n>', 'only this attempt')
  .option('--raw', "the kept bytes as they are: stdout to stdout, stderr to stderr, no headers, control characters not escaped")
  .option('--follow', 'keep printing the running attempt\'s output as it is written, until it ends (from any machine)')
  .action(jobs.logs);

cli.command('history <id>', "The job's events, replayed from the log").action(jobs.history);

cli
  .command('wait [...ids]', 'Block until the jobs (or all jobs) have ended; exit 1 if any did not complete')
  .option('--timeout <duration>', 'give up after this long (exit 1)')
  .action(jobs.wait);

cli.command('cancel <id>', 'Cancel a pending, failed or running job').action(jobs.cancel);

cli
  .command('dlq <action> [...ids]', 'list | retry <id>... | retry --all: the dead-letter queue')
  .option('--all', '(retry) every job in the DLQ')
  .action(admin.dlq);

cli
  .command('config <action> [key] [value]', 'get [key] | set <key> <value>')
  .action(admin.config);

cli
  .command('events', 'The raw event log, one event per line')
  .option('--from <pos>', 'start at this position', { default: 0 })
  .option('--follow', 'keep printing new events as they are appended')
  .action(admin.events);

cli
  .command('projections <action>', 'rebuild | verify: recompute the projections from the log')
  .action(admin.projections);

cli
  .command('db <action>', 'migrate [--dry-run]: create or upgrade the queue schema in PostgreSQL (--database-url)')
  .option('--dry-run', 'print the SQL instead of running it')
  .action(admin.db);

cli
  .command('repair', 'Bring a damaged database back: LevelDB repair, then check the log and rebuild (keeps a copy first)')
  .action(admin.repair);

cli.help();
cli.version(pkg.version);

/**
 * `--priority -1` would read -1 as a flag, and `--file -` (stdin) as a missing value: join a
 * negative number or a lone `-` to the option before it.
 */
const joinNegativeValues = (argv: string[]): string[] => {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (/^--[a-z-]+$/.test(arg) && next !== undefined && /^-(\d+(\.\d+)?)?$/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
};

const main = async (): Promise<void> => {
  const argv = joinNegativeValues(process.argv);
  const parsed = cli.parse(argv, { run: false });
  if (!cli.matchedCommand) {
    if (parsed.options.help || parsed.options.version) return;
    cli.outputHelp();
    if (cli.args[0] !== undefined) fail('QUEUECTL_UNKNOWN_COMMAND', `unknown command '${cli.args[0]}'; see the list above`);
    const unknown = argv.slice(2).find((a) => a.startsWith('-') && !cli.globalCommand.options.some((o) => o.rawName.split(/[ ,<]+/).includes(a.split('=')[0]!)));
    if (unknown !== undefined) fail('QUEUECTL_UNKNOWN_COMMAND', `unknown option '${unknown.split('=')[0]}' and no command; see the list above`);
    process.exitCode = 2;
    return;
  }
  // Every option's value as typed, each given at most once (see typedOptionValues).
  for (const [flag, value] of typedOptionValues(argv.slice(2), [...cli.globalCommand.options, ...cli.matchedCommand.options])) {
    cli.options[flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = value;
  }
  await cli.runMatchedCommand();
};

const report = (e: unknown): void => {
  if (process.env.QUEUECTL_DEBUG === '1') console.error(e);
  if (isQueuectlError(e)) {
    process.stderr.write(`queuectl: ${oneLine(showPaths(e.message))}\n`);
    process.exitCode = e instanceof QueuectlError ? e.exitCode : 1;
  } else if ((e as Error)?.name === 'CACError') {
    const message = oneLine((e as Error).message).replace(/`/g, "'").replace(/^Unknown option '-(\d[\d.]*)'$/, "negative number '-$1' where none is allowed");
    process.stderr.write(`queuectl: ${message.charAt(0).toLowerCase()}${message.slice(1)}; see \`queuectl ${cli.matchedCommandName ?? ''} --help\`\n`.replace(' ` ', ' `'));
    process.exitCode = 2;
  } else {
    process.stderr.write(`queuectl: unexpected error: ${oneLine((e as Error)?.message ?? String(e))} (set QUEUECTL_DEBUG=1 for details)\n`);
    process.exitCode = 1;
  }
};

// As an ES module, a command whose work never settled (every handle gone while it still waited)
// exited with Node's "unsettled top-level await" (13); as CommonJS it would exit 0 in silence.
let settled = false;

// `queuectl events | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (!exitsWithStdout()) return; // a worker: see worker.ts
  if (e.code === 'EPIPE') {
    settled = true; // the reader has all it wanted: done
    process.exit(process.exitCode ?? 0);
  }
  // a file on a full disk (`list --json > jobs.json`): the environment's, in one line
  settled = true;
  report(environmentError(e, 'write the output to', 'stdout') ?? e);
  process.exit(process.exitCode ?? 1);
});

process.on('exit', () => {
  if (settled) return;
  process.stderr.write('queuectl: the command stopped before it finished (nothing left to wait for); this is a bug: please report it with QUEUECTL_DEBUG=1\n');
  process.exitCode = 1;
});
main()
  .catch(report)
  .finally(() => {
    settled = true;
  });
