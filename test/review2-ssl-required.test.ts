// sslmode=require (or verify-ca / verify-full) against a server that does not offer SSL: the
// driver starts TLS anyway and the server drops the connection, which alone reads "the
// connection was reset". The one line should point at SSL, as libpq's "server does not
// support SSL, but SSL was required" does.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, newHome, refused, run } from './helpers/cli.ts';
import { withPgCli } from './helpers/pg-machines.ts';

const test = suite('review2-ssl-required');
const pg = withPgCli(test, 'review2-ssl-required'); // the embedded server runs without SSL
test.after(cleanup);

test('sslmode=require|verify-ca|verify-full against a server without SSL: one line naming SSL and the sslmode, exit 1', async () => {
  const server = pg();
  if (!server || !server.embedded) return; // an external server may offer SSL
  for (const mode of ['require', 'verify-ca', 'verify-full']) {
    const r = await run(['status', '--home', newHome('ssl'), '--database-url', `${server.url}?sslmode=${mode}`]);
    const message = refused(r, 1);
    assert.match(message, new RegExp(`SSL.*sslmode=${mode}`), message);
    assert.not.ok(r.stderr.includes('queuectl-test-secret'), 'no password');
  }
});

test.run();
