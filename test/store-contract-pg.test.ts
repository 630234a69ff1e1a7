// The store contract (store-contract.ts) against the PostgreSQL store, on a real PostgreSQL
// (test/helpers/postgres.ts: embedded, or QUEUECTL_TEST_DATABASE_URL), one schema per test.
import { pgHarness } from './helpers/backends.ts';
import { withPostgres } from './helpers/postgres.ts';
import { storeContract } from './store-contract.ts';

let server: ReturnType<typeof pg> = null;
const contract = storeContract(
  pgHarness(async () => {
    server ??= pg();
    if (!server) throw new Error('no PostgreSQL (see the message above)');
    return server;
  }),
);
const pg = withPostgres(contract, 'store contract: postgres', { fsync: false });
contract.run();
