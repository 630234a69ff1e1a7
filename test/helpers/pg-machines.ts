// Several "machines" sharing one PostgreSQL queue, for the end-to-end tests of the PostgreSQL
// backend (test/pg-e2e-*.test.ts): each machine is a --home directory of its own (its own host,
// socket and worker.log), every command of every machine is the built CLI with
// `--database-url <url>`, and each test's queue is a schema of its own (`?schema=`).
//
// A suite runs only when it can be real: a PostgreSQL that starts (else skipped with a message,
// or failed in CI: see ./postgres.ts), and a CLI that accepts --database-url. The CLI is asked,
// not assumed: until the option is wired, each test skips saying so.
import * as assert from 'uvu/assert';
import type { Test } from 'uvu';
import { type Q, type Result, type Worker, json, newHome, run, startWorker, until } from './cli.ts';
import type { StatusJson } from './multi.ts';
import { type TestPostgres, withPostgres } from './postgres.ts';

let schemas = 0;
/** The server's URL pointed at a new schema (a queue of its own, created by queuectl on first use). */
export const queueUrl = (server: TestPostgres, prefix: string): string =>
  `${server.url}${server.url.includes('?') ? '&' : '?'}schema=${prefix}_${process.pid}_${++schemas}`;

/** Gives a suite a server (or null after a skip message where PostgreSQL cannot start). */
export const withPgCli = (suite: Test, name: string): (() => TestPostgres | null) => withPostgres(suite, name, { fsync: false });

/** One machine: its home, its commands (`q`), and worker processes started on it. */
export interface Machine {
  readonly name: string;
  readonly home: string;
  readonly q: Q;
  readonly workers: Worker[];
  /** `worker start --count <slots>` on this machine; resolves once `status` lists it. */
  startWorker(slots: number, ...args: string[]): Promise<Worker>;
}

export const machine = (name: string, url: string): Machine => {
  const home = newHome(name);
  const q: Q = (...args) => run([...args, '--home', home, '--database-url', url]);
  const workers: Worker[] = [];
  return {
    name,
    home,
    q,
    workers,
    async startWorker(slots, ...args) {
      const w = startWorker(home, '--count', String(slots), '--database-url', url, ...args);
      workers.push(w);
      await until(async () => {
        if (!w.running) throw new Error(`worker on ${name} exited early: ${w.lines.join(' | ')}`);
        return (await status(q)).workers.some((x) => x.pid === w.pid);
      }, 20_000, `the worker ${w.pid} on ${name} to register`, 100);
      return w;
    },
  };
};

/** Machines m1..mN on one queue. */
export const machines = (n: number, url: string): Machine[] => Array.from({ length: n }, (_, i) => machine(`m${i + 1}`, url));

export const status = async (q: Q): Promise<StatusJson> => json<StatusJson>(await q('status', '--json'));

/** `projections verify` exits 0. */
export const assertVerifies = async (q: Q): Promise<void> => {
  const r: Result = await q('projections', 'verify');
  assert.is(r.code, 0, `projections verify: ${r.stdout}${r.stderr}`);
};
