// Issue 11, findings 1, 2 and 6 (worker.log): nobody else on the machine can swap, read or
// replace the data directory. The attacker is another user (nobody, uid 65534) run with
// setpriv, as root; where that is impossible the tests say so and skip, except in CI.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { prepareHome, privateUmask, resolveHome } from '../src/home.ts';
import { cleanup, cli, isAlive, ok, refused, run, type Result, stopWorkers, until } from './helpers/cli.ts';

const NOBODY = 65534;

/** Root, and setpriv to become nobody: what the attacker's side needs. */
const attackerWhyNot = ((): string | null => {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']);
    return null;
  } catch (e) {
    return `setpriv does not work here (${(e as Error).message.split('\n')[0]})`;
  }
})();

/** Runs the test body only where another user can be played; skips with a message (fails in CI). */
const asRootWithAttacker = (name: string, body: () => Promise<void>): void =>
  test(name, async () => {
    if (attackerWhyNot !== null) {
      if (process.env.CI === 'true') assert.unreachable(`${name}: needs root and setpriv (${attackerWhyNot})`);
      console.log(`  skipped (${attackerWhyNot}): ${name}`);
      return;
    }
    await body();
  });

/** A command run as nobody. */
const asNobody = (cmd: string, ...args: string[]): string =>
  execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

// Our own scratch root: the e2e helpers' one is 0700, which nobody could not even enter.
const base = mkdtempSync(join(tmpdir(), 'queuectl-sec-home-'));
chmodSync(base, 0o755);
let n = 0;
const place = (name: string): string => join(base, `${name}-${++n}`);

/** Processes working on a data directory under `base` (detached workers included). */
const ours = (): number[] =>
  readdirSync('/proc').map(Number).filter((pid) => pid > 0 && pid !== process.pid && isAlive(pid) && (() => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(base);
    } catch {
      return false;
    }
  })());

test.after.each(() => stopWorkers());
test.after(() => {
  cleanup();
  for (const pid of ours()) process.kill(pid, 'SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

/** `run`, with the process started under `umask` (the helpers run with the test's). */
const runWithUmask = (umask: number, args: string[]): Promise<Result> => {
  const before = process.umask(umask);
  try {
    return run(args); // the child is spawned, with this umask, before run returns
  } finally {
    process.umask(before);
  }
};

const mode = (path: string): string => (lstatSync(path).mode & 0o777).toString(8);

const unsafeParent = (folder: string, dir: string) =>
  new RegExp(
    `^queuectl: the folder ${folder} above the data directory ${dir} (` +
      `belongs to another user \\(uid 65534\\), who could swap the data directory; use a data directory under folders that only you or root can change \\(--home\\)|` +
      `is writable by group or others without the sticky bit \\(mode 777\\), so they could swap the data directory; fix it with: chmod go-w ${folder} \\(or use --home elsewhere\\))\\n$`,
  );

asRootWithAttacker('the swap race: a parent another user can write is refused before any use, however the attacker flips it', async () => {
  // /tmp/ci of the finding: nobody's 0777 folder, holding the victim's queue and their own
  const ci = place('ci');
  mkdirSync(ci);
  chownSync(ci, NOBODY, NOBODY);
  chmodSync(ci, 0o777);
  const victim = join(ci, 'q');
  mkdirSync(victim, { mode: 0o700 }); // the victim's directory, from before the folder was shared
  const marker = join(base, `pwned-${n}`);
  // the attacker's queue holds a job that leaves a marker when run (by root, if it ever is)
  const built = place('evil');
  ok(await run(['enqueue', `touch ${marker}`, '--id', 'evil', '--home', built]));
  execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, built]);
  renameSync(built, join(ci, 'evil'));

  // as fast as it can: the victim's directory away, a link to theirs in its place, and back
  const stop = join(ci, 'stop');
  const flipper = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c',
    `cd ${ci}; while [ ! -e ${stop} ]; do mv -T q q.real && ln -s evil q; rm -f q; mv -T q.real q; done 2>/dev/null`], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 8; i++) {
      const r = await run(['worker', 'start', '--drain', '--home', victim], { timeoutMs: 20_000 });
      refused(r, 1, unsafeParent(ci, victim));
    }
  } finally {
    writeFileSync(stop, '');
    await new Promise((r) => flipper.once('exit', r));
  }
  assert.not.ok(existsSync(marker), "the attacker's job never ran");
  assert.equal(readdirSync(victim), [], 'nothing was written in the victim directory');
});

asRootWithAttacker("the data directory may not be a symbolic link, even to one of the user's own directories", async () => {
  // a sticky folder like /tmp: the attacker may add entries, not rename the victim's
  const sticky = place('sticky');
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  const own = place('own');
  ok(await run(['enqueue', 'echo mine', '--id', 'mine', '--home', own]));
  const link = join(sticky, 'q');
  asNobody('ln', '-s', own, link); // the attacker chooses where the victim's queue goes
  refused(await run(['status', '--home', link]), 1, new RegExp(`^queuectl: the data directory ${link} is a symbolic link \\(its target could be swapped\\); point --home \\(or QUEUECTL_HOME\\) at the directory it links to\\n$`));
  refused(await run(['worker', 'start', '--drain', '--home', link]), 1, /is a symbolic link/);
  // the sticky folder itself is fine: a real directory in it is used
  ok(await run(['enqueue', 'echo hi', '--home', join(sticky, 'real')]));
  assert.is(mode(join(sticky, 'real')), '700');
});

asRootWithAttacker('parents: a 0777 folder without the sticky bit, or one of another user, is refused; root-owned sticky ones are fine', async () => {
  const open = place('open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  const dir = join(open, 'deep', 'q');
  refused(await run(['enqueue', 'echo hi', '--home', dir]), 1, unsafeParent(open, dir));
  assert.equal(readdirSync(open), [], 'nothing was created under it');

  const theirs = place('theirs');
  mkdirSync(theirs, { mode: 0o755 });
  chownSync(theirs, NOBODY, NOBODY);
  refused(await run(['status', '--home', join(theirs, 'q')]), 1, unsafeParent(theirs, join(theirs, 'q')));

  // a folder of another user that is sticky still is theirs: they could rename anything in it
  const theirSticky = place('their-sticky');
  mkdirSync(theirSticky);
  chmodSync(theirSticky, 0o1777);
  chownSync(theirSticky, NOBODY, NOBODY);
  refused(await run(['status', '--home', join(theirSticky, 'q')]), 1, unsafeParent(theirSticky, join(theirSticky, 'q')));

  // /tmp itself (root's, sticky) and new folders below it: fine; the ones made are 0700
  const fresh = join(tmpdir(), `queuectl-sec-fresh-${process.pid}`, 'a', 'q');
  try {
    ok(await run(['enqueue', 'echo hi', '--home', fresh]));
    assert.equal([mode(join(fresh, '..', '..')), mode(join(fresh, '..')), mode(fresh)], ['700', '700', '700']);
  } finally {
    rmSync(join(tmpdir(), `queuectl-sec-fresh-${process.pid}`), { recursive: true, force: true });
  }
});

asRootWithAttacker('a data directory that group or others can read is refused: another user cannot grep a secret out of it', async () => {
  for (const m of [0o755, 0o750, 0o705, 0o711]) {
    const dir = place('readable');
    mkdirSync(dir);
    chmodSync(dir, m);
    refused(
      await run(['enqueue', 'curl -H "Authorization: Bearer s3cr3t" https://example.invalid', '--home', dir]),
      1,
      new RegExp(`^queuectl: the data directory ${dir} is readable by group or others \\(mode ${m.toString(8)}\\); fix it with: chmod 700 ${dir}\\n$`),
    );
    assert.equal(readdirSync(dir), [], `nothing was written (mode ${m.toString(8)})`);
    let found = '';
    try {
      found = asNobody('grep', '-rl', 's3cr3t', dir);
    } catch {
      // grep exits 1 when it finds nothing (or 2 when it cannot read)
    }
    assert.is(found, '', 'the attacker finds no secret');
  }
});

test('umask 000: the data directory and what is in it are still 0700 folders and 0600 files; the jobs keep the umask', async () => {
  const dir = place('umask');
  const q = cli(dir);
  ok(await runWithUmask(0o000, ['enqueue', 'echo out; echo err >&2; umask', '--id', 'a', '--home', dir]));
  ok(await runWithUmask(0o000, ['worker', 'start', '--detach', '--home', dir]));
  ok(await q('wait', 'a', '--timeout', '20s'));
  const files: string[] = [];
  const folders: string[] = [];
  const walk = (d: string) => {
    folders.push(d);
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(dir);
  const expected = ['db', 'db/CURRENT', 'logs', 'logs/a', 'logs/a/1.stdout', 'logs/a/1.stderr', 'worker.log', 'host.sock'];
  for (const p of expected) assert.ok(existsSync(join(dir, p)), `${p} exists`);
  assert.ok(statSync(join(dir, 'host.sock')).isSocket(), 'the host serves while the worker runs');
  const loose = [...folders.filter((p) => mode(p) !== '700'), ...files.filter((p) => mode(p) !== '600')].map((p) => `${p} ${mode(p)}`);
  assert.equal(loose, [], 'every folder 0700, every file (the database, output, worker.log, socket) 0600');
  assert.is(readFileSync(join(dir, 'logs/a/1.stdout'), 'utf8'), 'out\n0000\n', "the job ran with the user's umask, not queuectl's");
  ok(await q('worker', 'stop'));
  // and a foreground worker started from umask 022 runs its jobs with 022
  ok(await q('enqueue', 'umask', '--id', 'b'));
  ok(await runWithUmask(0o022, ['worker', 'start', '--drain', '--home', dir]));
  assert.is(readFileSync(join(dir, 'logs/b/1.stdout'), 'utf8'), '0022\n');
});

asRootWithAttacker("db/ or logs/ of another user (or not a real folder) is refused; an older queuectl's 0755 ones are tightened", async () => {
  const dir = place('inside');
  const q = cli(dir);
  ok(await q('enqueue', 'echo hi', '--id', 'a'));
  for (const name of ['db', 'logs']) {
    chownSync(join(dir, name), NOBODY, NOBODY);
    const message = new RegExp(`^queuectl: the folder ${join(dir, name)} belongs to another user \\(uid 65534\\); queuectl did not put it there: move it away\\n$`);
    refused(await q('status'), 1, message);
    refused(await q('enqueue', 'echo two'), 1, message);
    refused(await run(['worker', 'start', '--drain', '--home', dir]), 1, message);
    chownSync(join(dir, name), 0, 0);
  }
  // a link where logs/ should be: job output would go wherever it points
  const elsewhere = place('elsewhere');
  mkdirSync(elsewhere, { mode: 0o700 });
  rmSync(join(dir, 'logs'), { recursive: true });
  symlinkSync(elsewhere, join(dir, 'logs'));
  refused(await q('worker', 'start', '--drain'), 1, new RegExp(`^queuectl: ${join(dir, 'logs')} is a symbolic link; queuectl did not put it there: move it away\\n$`));
  assert.equal(readdirSync(elsewhere), []);
  rmSync(join(dir, 'logs'));
  // left 0755 by an older queuectl under umask 022: made 0700 again
  chmodSync(join(dir, 'db'), 0o755);
  ok(await q('status'));
  assert.equal([mode(join(dir, 'db')), mode(join(dir, 'logs'))], ['700', '700']);
});

test('worker.log is never opened through a symbolic link', async () => {
  const dir = place('workerlog');
  const q = cli(dir);
  ok(await q('status'));
  const target = join(place('target'), 'victim-file');
  mkdirSync(join(target, '..'), { mode: 0o700 });
  writeFileSync(target, 'precious\n');
  symlinkSync(target, join(dir, 'worker.log'));
  refused(await q('worker', 'start', '--detach'), 1, new RegExp(`^queuectl: ${join(dir, 'worker.log')} is a symbolic link; queuectl did not put it there: move it away\\n$`));
  assert.is(readFileSync(target, 'utf8'), 'precious\n', 'the link target is untouched');
  assert.equal(JSON.parse(ok(await q('status', '--json'))).workers, [], 'no worker was started');
});

test('check and use see the same directory: once checked, a swap of the path does not redirect the database, socket or logs', async () => {
  const dir = place('bound');
  ok(await run(['enqueue', 'echo hi', '--id', 'a', '--home', dir]));
  const given = resolveHome(dir);
  const home = prepareHome(given) ?? given; // (before the fix prepareHome returned nothing)
  process.umask(privateUmask()); // this test process keeps its umask for the other tests
  const moved = `${dir}.moved`;
  renameSync(dir, moved);
  mkdirSync(dir, { mode: 0o700 }); // someone else's directory now stands at the path
  for (const part of ['db', 'logs'] as const) {
    assert.is(statSync(home[part]).ino, statSync(join(moved, part)).ino, `${part} is reached through the checked directory`);
  }
  writeFileSync(home.socket, ''); // stands for the host's socket
  assert.ok(existsSync(join(moved, 'host.sock')), 'the socket is made in the checked directory');
  assert.equal(readdirSync(dir), [], 'nothing reaches the directory now at the path');
});

test('a data directory whose path is longer than a socket path may be (108 bytes) still serves its socket', async () => {
  const dir = join(place('long'), 'x'.repeat(120), 'q');
  const q = cli(dir);
  ok(await q('enqueue', 'echo hi', '--id', 'a'));
  ok(await run(['worker', 'start', '--drain', '--home', dir], { timeoutMs: 20_000 }));
  assert.is(JSON.parse(ok(await q('show', 'a', '--json'))).state, 'completed');
});

test('no stray processes are left', async () => {
  await until(() => ours().length === 0, 10_000, `processes under ${base} to exit: ${ours().join(', ')}`);
});

test.run();
