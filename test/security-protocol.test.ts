// Issue 11, findings 3 and 4: nothing a client sends on the host's socket crashes or stalls the
// host, and the host trusts no parameter. Every test talks to a real host process (the built
// CLI's `events --follow`: it serves the socket and runs no worker, so whatever a peer claims is
// visible and nothing else claims it) over node:net, greeting it as src/host/connect.ts does.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openQueue } from '../src/host/connect.ts';
import { Host } from '../src/host/host.ts';
import { MAX_MESSAGE_BYTES } from '../src/host/protocol.ts';
import { DEFAULT_LIMITS, serve } from '../src/host/server.ts';
import { resolveHome } from '../src/home.ts';
import type { AnyLevel } from '../src/store/leveldb/keys.ts';
import { openLevelEngine } from './helpers/backends.ts';
import { CLI, cleanup, cli, history, json, newHome, ok, type Q, until } from './helpers/cli.ts';

interface Answer { id?: number | null; result?: any; error?: { code: string; message: string }; hello?: string }

/** A raw client of the host's socket: sends what it is told, collects every line it gets back. */
class Peer {
  readonly lines: Answer[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  private pieces: string[] = [];
  /** Far above any id the fuzz writes (fc.nat() stops at 2^31): an answer to a hostile line is never taken for ours. */
  private nextId = 2 ** 40;
  private waiters = new Set<() => void>();

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      // linear in what arrives: a long answer comes in many pieces
      if (!d.includes('\n')) return void this.pieces.push(d);
      const parts = (this.pieces.join('') + d).split('\n');
      this.pieces = [parts.pop()!];
      for (const p of parts) if (p.trim()) this.lines.push(JSON.parse(p) as Answer);
      this.notify();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.isClosed = true;
        this.notify();
        resolve();
      }),
    );
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  static async open(home: string, greet = true): Promise<Peer> {
    const socket = connect(join(home, 'host.sock'));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const peer = new Peer(socket);
    if (greet) {
      peer.write({ hello: 'queuectl', protocol: 1, pid: process.pid });
      const hello = await peer.line((l) => l.hello === 'queuectl' || l.error !== undefined, 5000, 'the hello');
      assert.ok(hello?.hello, `the host refused the hello: ${JSON.stringify(hello)}`);
    }
    return peer;
  }

  write(msg: unknown): void {
    this.socket.write(typeof msg === 'string' ? msg : `${JSON.stringify(msg)}\n`);
  }

  /** The first line received that matches, or null if the connection closed first; fails after `ms`. */
  line(match: (l: Answer) => boolean, ms: number, what: string): Promise<Answer | null> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.lines.find(match);
        if (found || this.isClosed) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(found ?? null);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no answer for ${what} within ${ms} ms (got ${JSON.stringify(this.lines).slice(0, 300)})`));
      }, ms);
      this.waiters.add(check);
      check();
    });
  }

  /** One call; its answer (null if the host closed the connection instead). */
  async call(method: string, params?: unknown, ms = 5000): Promise<Answer | null> {
    const id = this.nextId++;
    this.write(params === undefined ? { id, method } : { id, method, params });
    return this.line((l) => l.id === id, ms, `${method} ${JSON.stringify(params)?.slice(0, 200)}`);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A real host process for `home`: `events --follow` serves the socket and runs no worker. */
class HostProcess {
  readonly child: ChildProcess;
  output = '';
  exit: { code: number | null; signal: string | null } | null = null;

  constructor(readonly home: string) {
    this.child = spawn(process.execPath, [CLI, 'events', '--follow', '--json', '--home', home], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    this.child.on('exit', (code, signal) => (this.exit = { code, signal }));
  }

  static async start(home = newHome('secproto')): Promise<HostProcess> {
    const host = new HostProcess(home);
    hosts.add(host);
    await until(async () => {
      if (host.exit) throw new Error(`the host exited: ${host.output}`);
      if (!existsSync(join(home, 'host.sock'))) return false;
      (await Peer.open(home)).close();
      return true;
    }, 15_000, 'the host to serve its socket');
    return host;
  }

  /** The host is alive and answers `status` on a fresh connection, promptly. */
  async answers(what: string, ms = 5000): Promise<void> {
    assert.is(this.exit, null, `${what}: the host process died: ${JSON.stringify(this.exit)}\n${this.output.slice(-2000)}`);
    const peer = await Peer.open(this.home);
    try {
      const status = await peer.call('status', {}, ms);
      assert.ok(status?.result?.jobs, `${what}: status answered ${JSON.stringify(status)}`);
    } finally {
      peer.close();
    }
  }

  async stop(): Promise<void> {
    hosts.delete(this);
    if (this.exit) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }
}

const hosts = new Set<HostProcess>();
test.after.each(async () => {
  for (const h of [...hosts]) await h.stop();
});
test.after(cleanup);

const config = async (q: Q): Promise<Record<string, unknown>> => json(await q('config', 'get', '--json'));
const job = (id: string, extra: Record<string, unknown> = {}) => ({ id, command: 'true', cwd: '/tmp', priority: 0, maxRetries: null, runAt: null, timeoutMs: null, ...extra });

// ---- finding 3: a client cannot crash or stall the host ----------------------------------------

test('a call without params, or with params of the wrong shape, is refused and the host lives on', async () => {
  const host = await HostProcess.start();
  const peer = await Peer.open(host.home);
  for (const [method, params] of [
    ['workerStart', undefined],
    ['workerStop', undefined],
    ['workerStart', null],
    ['workerStop', 'w1'],
    ['claim', undefined],
    ['heartbeat', { workerId: 'w', running: 'all' }],
    ['report', { jobId: 'x', workerId: 'w', attempt: 1 }],
    ['enqueue', { jobs: 'echo hi' }],
    ['retry', { ids: [1, 2], all: false }],
    ['list', { state: 7 }],
  ] as const) {
    const answer = await peer.call(method, params);
    assert.is(answer?.error?.code, 'QUEUECTL_INVALID_INPUT', `${method} ${JSON.stringify(params)}: ${JSON.stringify(answer)}`);
    assert.match(answer!.error!.message, new RegExp(`invalid parameters for '${method}'`));
  }
  assert.ok(!peer.isClosed, 'a refused call keeps its connection');
  await host.answers('after calls without params');
  peer.close();
});

test('a line with no newline over the cap drops that peer; the host keeps answering', async () => {
  const host = await HostProcess.start();
  const peer = await Peer.open(host.home);
  const chunk = Buffer.alloc(1024 * 1024, 'a');
  let sent = 0;
  // write until the host hangs up (it must, a little past the cap) or well past the cap
  while (!peer.isClosed && sent < MAX_MESSAGE_BYTES + 16 * chunk.length) {
    if (!peer.socket.write(chunk)) await Promise.race([new Promise((r) => peer.socket.once('drain', r)), peer.closed]);
    sent += chunk.length;
  }
  await Promise.race([peer.closed, new Promise((r) => setTimeout(r, 10_000))]);
  assert.ok(peer.isClosed, `the peer that sent ${sent} bytes without a newline was not dropped`);
  assert.is(peer.lines.find((l) => l.error)?.error?.code, 'QUEUECTL_INVALID_INPUT', 'told why');
  const started = Date.now();
  await host.answers('after an over-long line');
  assert.ok(Date.now() - started < 3000, `status took ${Date.now() - started} ms`);
});

test('a long line under the cap is read in time linear in its length', async () => {
  const host = await HostProcess.start();
  const peer = await Peer.open(host.home);
  // 56 MiB of one call, in 64 KiB pieces: appending them to a string and searching it for the
  // newline each time took ~15 s for 64 MiB. The call is refused without echoing its reason.
  const line = Buffer.from(`${JSON.stringify({ id: 1, method: 'workerStop', params: { workerId: 'w', reason: 'x'.repeat(56 * 1024 * 1024) } })}\n`);
  const started = Date.now();
  for (let at = 0; at < line.length; at += 65_536) {
    if (!peer.socket.write(line.subarray(at, at + 65_536))) await new Promise((r) => peer.socket.once('drain', r));
  }
  const answer = await peer.line((l) => l.id === 1, 60_000, 'the long call');
  const took = Date.now() - started;
  assert.ok(took < 6000, `a 56 MiB call took ${took} ms`);
  assert.is(answer?.error?.code, 'QUEUECTL_INVALID_INPUT', JSON.stringify(answer).slice(0, 300));
  await host.answers('after a long call');
  peer.close();
});

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

test('a peer that floods calls and never reads its answers waits; the host stays small and answers others', async () => {
  const host = await HostProcess.start();
  const peer = await Peer.open(host.home);
  assert.ok((await peer.call('enqueue', { jobs: Array.from({ length: 300 }, (_, i) => job(`j${i}`)) }))?.result);
  const before = rssMiB(host.child.pid!);
  peer.socket.pause(); // reads nothing more
  // 20,000 calls whose answers (~80 KB each) would add up to 1.6 GB
  const calls = Array.from({ length: 20_000 }, (_, i) => `{"id":${i + 100},"method":"events","params":{"from":0,"limit":10000}}\n`);
  peer.socket.write(calls.join(''));
  let peak = 0;
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 150));
    peak = Math.max(peak, rssMiB(host.child.pid!));
  }
  assert.ok(peak - before < 400, `the host grew from ${before.toFixed(0)} MiB to ${peak.toFixed(0)} MiB`);
  await host.answers('while a peer floods it');
  peer.close();
});

test('a connection that never says hello is dropped after the greeting timeout', async () => {
  const host = await HostProcess.start();
  const silent = await Peer.open(host.home, false);
  const started = Date.now();
  await Promise.race([silent.closed, new Promise((r) => setTimeout(r, DEFAULT_LIMITS.greetingMs + 7000))]);
  assert.ok(silent.isClosed, `a silent connection was still open after ${Date.now() - started} ms`);
  assert.ok(Date.now() - started >= DEFAULT_LIMITS.greetingMs - 100, `dropped after ${Date.now() - started} ms, before the timeout`);
  await host.answers('after a silent peer');
});

test('connections are capped: one more is told the host is busy, and a client waits for a place', async () => {
  const host = await HostProcess.start();
  const q = cli(host.home);
  const peers = await Promise.all(Array.from({ length: DEFAULT_LIMITS.maxConnections }, () => Peer.open(host.home)));
  const extra = await Peer.open(host.home, false);
  extra.write({ hello: 'queuectl', protocol: 1, pid: process.pid });
  const refusal = await extra.line((l) => l.error !== undefined, 5000, 'the refusal of one connection too many');
  assert.is(refusal?.error?.code, 'QUEUECTL_BUSY');
  assert.match(refusal!.error!.message, new RegExp(`${DEFAULT_LIMITS.maxConnections} connections`));
  await extra.closed;
  // a CLI command started while the host is full waits for a place instead of failing
  const status = q('status', '--json');
  await new Promise((r) => setTimeout(r, 500));
  peers.pop()!.close();
  assert.ok(json(await status).jobs, 'status got through once a place was free');
  for (const p of peers) p.close();
  await host.answers('after the cap');
});

test('an idle connection is closed; one waiting in a long poll is not', async () => {
  // in-process, so the idle time can be short; the same serve() the host process runs
  const dir = mkdtempSync(join(tmpdir(), 'queuectl-idle-'));
  const engine = await openLevelEngine(new ClassicLevel(join(dir, 'db')) as unknown as AnyLevel);
  const host = new Host(engine);
  const stop = await serve(host, join(dir, 'host.sock'), { ...DEFAULT_LIMITS, idleMs: 300 });
  try {
    const idle = await Peer.open(dir);
    const polling = await Peer.open(dir);
    const answer = polling.call('wait', { ids: [], waitMs: 0 }, 5000);
    assert.equal((await answer)?.result?.done, true);
    const claim = polling.call('claim', { workerId: 'w', waitMs: 1500 }, 5000);
    await Promise.race([idle.closed, new Promise((r) => setTimeout(r, 3000))]);
    assert.ok(idle.isClosed, 'the idle connection was closed');
    assert.equal((await claim)?.result, null, 'the long poll answered (nothing to claim)');
    assert.ok(!polling.isClosed, 'the connection in a long poll stayed open past the idle time');
    polling.close();
  } finally {
    host.stop();
    await stop();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a client refuses to send a call over the cap, with or without a host', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'queuectl-cap-'));
  const queue = openQueue(resolveHome(join(dir, 'home')));
  try {
    const huge = job('huge', { command: `echo ${'x'.repeat(MAX_MESSAGE_BYTES)}` });
    try {
      await queue.call('enqueue', { jobs: [huge] });
      assert.unreachable('an enqueue over the cap was sent');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'QUEUECTL_INVALID_INPUT', (e as Error).message);
      assert.match((e as Error).message, new RegExp(`over the ${MAX_MESSAGE_BYTES / 1024 / 1024} MiB one call to the queue may carry; enqueue the jobs in smaller files`));
    }
    assert.equal(await queue.call('list', {}), [], 'nothing was enqueued');
  } finally {
    await queue.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- finding 4: the host trusts no parameter ----------------------------------------------------

test('params cannot name the command: a `type` in workerStop/workerStart is refused, config and jobs untouched', async () => {
  const host = await HostProcess.start();
  const q = cli(host.home);
  const before = await config(q);
  const peer = await Peer.open(host.home);
  const asConfigSet = await peer.call('workerStop', { workerId: 'w', reason: 'x', type: 'configSet', key: 'max_retries', value: '9' });
  assert.is(asConfigSet?.error?.code, 'QUEUECTL_INVALID_INPUT', JSON.stringify(asConfigSet));
  assert.equal(await config(q), before, 'config unchanged');

  // the internal expireLease, through workerStart's params: a claimed job must stay claimed
  assert.ok((await peer.call('enqueue', { jobs: [job('victim')] }))?.result);
  assert.is((await peer.call('claim', { workerId: 'p1', waitMs: 0 }))?.result?.job?.id, 'victim');
  const asExpire = await peer.call('workerStart', { workerId: 'p1', pid: process.pid, slots: 1, type: 'expireLease', jobId: 'victim', attempt: 1, reason: 'forged' });
  assert.is(asExpire?.error?.code, 'QUEUECTL_INVALID_INPUT', JSON.stringify(asExpire));
  assert.equal((await history(q, 'victim')).map((e) => e.type), ['JobEnqueued', 'JobClaimed']);
  // __proto__ and constructor are not calls, nor keys that pass
  assert.is((await peer.call('__proto__', {}))?.error?.code, 'QUEUECTL_PROTOCOL_MISMATCH');
  assert.is((await peer.call('constructor', {}))?.error?.code, 'QUEUECTL_PROTOCOL_MISMATCH');
  const proto = await peer.call('configSet', JSON.parse('{"key":"max_retries","value":"5","__proto__":{"type":"workerStop"}}'));
  assert.is(proto?.error?.code, 'QUEUECTL_INVALID_INPUT', JSON.stringify(proto));
  peer.close();
  await host.answers('after forged commands');
});

test('a number JSON reads as Infinity (1e400) is refused where it would be stored: the log never holds it', async () => {
  const host = await HostProcess.start();
  const q = cli(host.home);
  const peer = await Peer.open(host.home);
  assert.ok((await peer.call('enqueue', { jobs: [job('big')] }))?.result);
  assert.is((await peer.call('claim', { workerId: 'p1', waitMs: 0 }))?.result?.job?.id, 'big');
  // JSON.stringify cannot write Infinity, so the lines are written by hand, as a hostile peer would
  const result = '{"durationMs":1e400,"exitCode":0,"signal":null,"timedOut":false,"error":null,"output":null}';
  peer.write(`{"id":900,"method":"report","params":{"jobId":"big","workerId":"p1","attempt":1,"result":${result}}}\n`);
  peer.write('{"id":901,"method":"release","params":{"jobId":"big","workerId":"p1","attempt":1,"reason":"x","durationMs":1e400,"output":null}}\n');
  for (const id of [900, 901]) {
    const answer = await peer.line((l) => l.id === id, 5000, `call ${id}`);
    assert.is(answer?.error?.code, 'QUEUECTL_INVALID_INPUT', JSON.stringify(answer));
  }
  assert.equal((await history(q, 'big')).map((e) => e.type), ['JobEnqueued', 'JobClaimed']);
  peer.close();
  await host.answers('after infinite durations');
});

test("the host checks every job's fields as the CLI does; a bad batch stores nothing", async () => {
  const host = await HostProcess.start();
  const q = cli(host.home);
  const peer = await Peer.open(host.home);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ priority: 'zz' }, /priority must be an integer/],
    [{ priority: 2 ** 40 }, /priority must be an integer/],
    [{ cwd: null }, /cwd must be an absolute path/],
    [{ cwd: 'relative' }, /cwd must be an absolute path/],
    [{ timeoutMs: -5 }, /timeout must be/],
    [{ timeoutMs: 'soon' }, /timeout must be/],
    [{ runAt: 'tomorrow' }, /run_at must be a time/],
    [{ runAt: 1e300 }, /run_at must be a time/],
    [{ maxRetries: 1.5 }, /max_retries must be an integer >= 0/],
    [{ command: '' }, /non-empty "command"/],
    [{ id: '../x' }, /invalid job id/],
    [{ extra: 1 }, /unknown job field 'extra'/],
  ];
  for (const [fields, message] of cases) {
    const answer = await peer.call('enqueue', { jobs: [job('good'), job('bad', fields)] });
    assert.is(answer?.error?.code, 'QUEUECTL_INVALID_INPUT', `${JSON.stringify(fields)}: ${JSON.stringify(answer)}`);
    assert.match(answer!.error!.message, message);
    assert.match(answer!.error!.message, /^job 2: /, 'names the job');
  }
  assert.equal(json(await q('list', '--json')), [], 'nothing stored');
  peer.close();
});

test('long polls are capped: a huge waitMs is refused at once', async () => {
  const host = await HostProcess.start();
  const peer = await Peer.open(host.home);
  for (const [method, params] of [
    ['claim', { workerId: 'w', waitMs: 1e15 }],
    ['events', { from: 0, limit: 10, waitMs: 1e15 }],
    ['wait', { ids: [], waitMs: 1e15 }],
    ['events', { from: 0, limit: 1e9 }],
  ] as const) {
    const answer = await peer.call(method, params, 2000);
    assert.is(answer?.error?.code, 'QUEUECTL_INVALID_INPUT', `${method} ${JSON.stringify(params)}: ${JSON.stringify(answer)}`);
  }
  peer.close();
  await host.answers('after huge waits');
});

test('a claim long poll ends with its connection: a job enqueued later is not claimed for the gone client', async () => {
  const host = await HostProcess.start();
  const q = cli(host.home);
  const phantom = await Peer.open(host.home);
  phantom.write({ id: 1, method: 'claim', params: { workerId: 'phantom', waitMs: 30_000 } });
  await new Promise((r) => setTimeout(r, 300)); // the claim is waiting
  phantom.close();
  await phantom.closed;
  await new Promise((r) => setTimeout(r, 200)); // the host has seen the close
  const [id] = ok(await q('enqueue', 'true')).trim().split('\n');
  // nothing else claims on this host: the job stays pending, with no claim by the gone client
  await new Promise((r) => setTimeout(r, 1500));
  const events = await history(q, id!);
  assert.equal(events.map((e) => e.type), ['JobEnqueued'], `history: ${JSON.stringify(events)}`);
  assert.not.ok(events.some((e) => e.workerId === 'phantom'));
  await host.answers('after a cancelled long poll');
});

// ---- fuzz: random and hostile messages ---------------------------------------------------------

const METHODS = [
  'enqueue', 'claim', 'report', 'heartbeat', 'workerStart', 'workerStop', 'cancel', 'retry', 'configSet', 'config', 'status', 'list', 'show',
  'history', 'dlq', 'events', 'wait', 'idle', 'verify', 'rebuild', 'expireLease', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf',
];
const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'type', 'toString', 'workerId', 'jobs', 'waitMs', 'id', 'jobId', 'pid', 'key', 'value', 'reason'];
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, -0, 1e15, 0.5, '', '\u0000', 'x'.repeat(5000), [], {}, null, true),
);
const hostileParams: fc.Arbitrary<unknown> = fc.oneof(
  fc.dictionary(fc.constantFrom(...HOSTILE_KEYS), hostileValue, { maxKeys: 6 }),
  fc.record({ workerId: fc.string(), waitMs: fc.oneof(fc.integer({ min: 0, max: 200 }), hostileValue) }, { requiredKeys: [] }),
  fc.record({ jobs: fc.array(fc.dictionary(fc.constantFrom('id', 'command', 'cwd', 'priority', 'maxRetries', 'runAt', 'timeoutMs', '__proto__'), hostileValue), { maxLength: 3 }) }),
  hostileValue,
);
/** Calls close to well-formed, so that some are accepted and change the log (a few jobs, two workers). */
const ID = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h');
const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) => fc.oneof({ weight: 12, arbitrary: good }, { weight: 1, arbitrary: bad });
const WORKER = fc.constantFrom('w1', 'w2');
const shapedCall: fc.Arbitrary<{ method: string; params: unknown }> = fc.oneof(
  fc.record({
    method: fc.constant('enqueue'),
    params: fc.record({
      jobs: fc.array(
        fc.record({
          id: mostly(ID, fc.string()),
          command: mostly(fc.constant('true'), fc.string()),
          cwd: mostly(fc.constantFrom('/tmp', '/'), fc.constantFrom('relative', null)),
          priority: mostly(fc.integer({ min: -3, max: 3 }), hostileValue),
          maxRetries: mostly(fc.constantFrom(null, 0, 2), fc.constantFrom(-1, 1.5)),
          runAt: mostly(fc.constant(null), fc.constantFrom(0, 1e300, 4_000_000_000_000)),
          timeoutMs: mostly(fc.constantFrom(null, 60_000), fc.constantFrom(0, -1, 0.5)),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    }),
  }),
  fc.record({ method: fc.constant('claim'), params: fc.record({ workerId: WORKER, waitMs: fc.integer({ min: 0, max: 50 }) }) }),
  fc.record({
    method: fc.constant('report'),
    params: fc.record({
      jobId: ID,
      workerId: WORKER,
      attempt: fc.integer({ min: 0, max: 3 }),
      result: fc.record({ durationMs: fc.nat(), exitCode: fc.constantFrom(0, 1, null), signal: fc.constantFrom(null, 'SIGKILL'), timedOut: fc.boolean(), error: fc.constantFrom(null, 'exit code 1'), output: fc.constant(null) }),
      claim: fc.boolean(),
    }),
  }),
  fc.record({ method: fc.constant('heartbeat'), params: fc.record({ workerId: WORKER, running: fc.array(fc.record({ jobId: ID, attempt: fc.integer({ min: 1, max: 3 }) }), { maxLength: 2 }) }) }),
  fc.record({ method: fc.constantFrom('cancel', 'show', 'history'), params: fc.record({ id: ID }) }),
  fc.record({ method: fc.constant('retry'), params: fc.record({ ids: fc.array(ID, { maxLength: 2 }), all: fc.boolean() }) }),
  fc.record({ method: fc.constant('workerStart'), params: fc.record({ workerId: WORKER, pid: fc.constant(process.pid), slots: fc.constantFrom(1, 0, 2) }) }),
  fc.record({ method: fc.constant('workerStop'), params: fc.record({ workerId: WORKER, reason: fc.constant('fuzz') }) }),
  fc.record({ method: fc.constant('configSet'), params: fc.record({ key: fc.constantFrom('max_retries', 'backoff_base', 'nope', '__proto__'), value: fc.constantFrom('1', '2', 'x', '-1') }) }),
);

/** One thing sent on a connection: a whole line, a raw fragment, or bytes. */
const message: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.nat(), shapedCall).map(([id, c]) => `${JSON.stringify({ id, ...c })}\n`) },
  { weight: 6, arbitrary: fc.record({ id: fc.oneof(fc.nat(), hostileValue), method: fc.oneof(fc.constantFrom(...METHODS), fc.string()), params: hostileParams }, { requiredKeys: ['method'] }).map((m) => `${JSON.stringify(m)}\n`) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => `${JSON.stringify(v)}\n`) },
  { weight: 1, arbitrary: fc.string().map((s) => (s.includes('\n') ? s : `${s}\n`)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v).slice(0, 20)) }, // a partial line, never finished
  // deep nesting, where a recursive reader or writer would overflow its stack (built as text:
  // this process's JSON.stringify would overflow too)
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom('enqueue', 'workerStart', 'retry', 'list'), fc.integer({ min: 1000, max: 100_000 })).map(
      ([method, depth]) => `{"id":7,"method":"${method}","params":{"jobs":${'['.repeat(depth)}${']'.repeat(depth)},"ids":[${'{"a":'.repeat(50)}1${'}'.repeat(50)}]}}\n`,
    ),
  },
);

test('fuzz: random and hostile messages never take the host down; it answers status and its projections verify', async () => {
  const host = await HostProcess.start();
  const runs = Number(process.env.QUEUECTL_FUZZ_RUNS ?? 300);
  const started = Date.now();
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.array(message, { minLength: 1, maxLength: 6 }), async (greet, messages) => {
      const peer = await Peer.open(host.home, greet);
      for (const m of messages) peer.socket.write(m);
      // a call of our own after the hostile ones: answered, or the peer was dropped
      const last = await peer.call('status', {}, 5000).catch(() => null);
      peer.close();
      if (greet && last) assert.ok(last.result?.jobs || last.error, JSON.stringify(last));
      await host.answers(`after ${JSON.stringify(messages.map((m) => (typeof m === 'string' ? m.slice(0, 200) : `<${m.length} bytes>`)))}`);
    }),
    // no shrinking: once the host is down every later input fails too; the first failing one is the cause
    { numRuns: runs, ...(process.env.QUEUECTL_FUZZ_SEED ? { seed: Number(process.env.QUEUECTL_FUZZ_SEED) } : {}), interruptAfterTimeLimit: Math.max(20_000, runs * 50), endOnFailure: true },
  );
  const verify = json(await cli(host.home)('projections', 'verify', '--json'));
  assert.equal(verify.differences, [], 'projections verify');
  assert.ok(Date.now() - started < Math.max(30_000, runs * 100), `fuzz took ${Date.now() - started} ms`);
});

test.run();
