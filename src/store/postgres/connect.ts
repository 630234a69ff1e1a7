// Opening the database a URL names, with the `postgres` client (porsager; README, "Many
// machines", says why that one). The client is imported here, on first use, so a command that
// does not use PostgreSQL never loads it.
//
// Every failure to reach the server becomes one line, QUEUECTL_DATABASE_UNAVAILABLE (exit 1),
// naming the host and port and never the password, whatever the driver or TLS put in theirs.
import { readFileSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { Options, PendingQuery, PostgresType, Row, Sql, TransactionSql } from 'postgres';
import { QueuectlError } from '../../errors.ts';
import { type DatabaseTarget, redact, serverName } from './url.ts';

export type { Sql, TransactionSql } from 'postgres';
/** A connection pool or an open transaction: what a function that only queries needs. */
export type Queryable = Sql | TransactionSql;
/** A piece of a statement, built with the tagged template and put into another one. */
export type Fragment = PendingQuery<Row[]>;

/** `parts` separated by commas, as one fragment (the driver joins an array of fragments with spaces). */
export const withCommas = (sql: Queryable, parts: readonly Fragment[]): Fragment =>
  parts.slice(1).reduce((joined, part) => sql`${joined}, ${part}`, parts[0] ?? sql``);

export interface ConnectOptions {
  /** pool size; a LISTEN takes one more connection of its own */
  max?: number;
}

const readFile = (path: string, what: string): Buffer => {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new QueuectlError('QUEUECTL_INVALID_INPUT', `the database URL's ${what} file ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
};

/**
 * libpq's sslmode, in terms of Node's TLS: `require` encrypts without checking the
 * certificate (unless a root certificate is given: then libpq checks the chain, and so do
 * we), `verify-ca` checks the chain, `verify-full` the chain and the host name.
 */
const tlsOptions = (target: DatabaseTarget): Options<Record<string, PostgresType>>['ssl'] => {
  const files = {
    ...(target.sslrootcert === null ? {} : { ca: readFile(target.sslrootcert, 'sslrootcert') }),
    ...(target.sslcert === null ? {} : { cert: readFile(target.sslcert, 'sslcert') }),
    ...(target.sslkey === null ? {} : { key: readFile(target.sslkey, 'sslkey') }),
  };
  const mode = target.sslmode === 'require' && target.sslrootcert !== null ? 'verify-ca' : target.sslmode;
  switch (mode) {
    case 'disable':
      return false;
    case 'allow':
    case 'prefer':
      return 'prefer'; // the driver encrypts when the server offers it, without checking the certificate
    case 'require':
      return Object.keys(files).length === 0 ? 'require' : { ...files, rejectUnauthorized: false };
    case 'verify-ca':
      return { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      // against the host the URL names: for an IP address the driver gives TLS no server name,
      // and Node then checks the certificate against 'localhost' (any localhost certificate
      // would pass for any address)
      return { ...files, rejectUnauthorized: true, checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(target.host, cert) };
  }
};

/** ms; the server shows it as '10s' */
export const IDLE_IN_TRANSACTION_MS = 10_000;

/** Seconds before a lost connection is made again, after `failures` in a row: 50 ms doubling, at most 1 s, jittered. */
export const reconnectDelay = (failures: number): number => Math.min(0.05 * 2 ** failures, 1) * (0.5 + Math.random() / 2);

/** The driver's options for a target: the parts, never the URL (see url.ts). */
export const clientOptions = (target: DatabaseTarget, options: ConnectOptions = {}): Options<Record<string, PostgresType>> => ({
  ...(target.host.startsWith('/') ? { path: `${target.host}/.s.PGSQL.${target.port}` } : { host: target.host }),
  port: target.port,
  database: target.database,
  ...(target.user === '' ? {} : { username: target.user }),
  ...(target.password === '' ? {} : { password: target.password }),
  ssl: tlsOptions(target),
  connect_timeout: target.connectTimeout,
  max: options.max ?? 4,
  // The driver waits before making a lost connection again, 3^failures/100 s up to 20 s, the
  // failures counted across the pool: after a restart of a few seconds the host waited 10-36 s
  // more. At most a second (jittered) keeps the server safe from a storm and the queue moving.
  backoff: reconnectDelay,
  onnotice: () => {}, // "schema already exists, skipping" and the like are not for users
  // the tables live in the queue's schema; nothing else is searched, so an unqualified name
  // never finds a table of the same name in public. A process stopped or cut off inside a
  // transaction would hold the log's head, and with it every machine's appends: the server
  // ends such a session after IDLE_IN_TRANSACTION_MS (queuectl's transactions take milliseconds).
  connection: { application_name: target.applicationName, search_path: target.schema, idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS },
});

/**
 * Connect, and prove it with one round trip, so that an unreachable server is reported here
 * (within connect_timeout) and not by the first real query.
 */
export const connect = async (target: DatabaseTarget, options: ConnectOptions = {}): Promise<Sql> =>
  (await connectWith(target, options, (sql) => sql`select 1`))[0];

/**
 * Connect, and prove it with `first`: the caller's first queries (sent together, pipelined on
 * the new connection: the same round trip as a `select 1`), whose answers come back with the
 * pool. `first` is bounded by the connect timeout: it must be a few quick reads.
 */
export const connectWith = async <T>(target: DatabaseTarget, options: ConnectOptions, first: (sql: Sql) => Promise<T>): Promise<[Sql, T]> => {
  const postgres = await loadDriver();
  const sql = postgres(clientOptions(target, options));
  // The driver's connect_timeout alone does not end a connection to an address that never
  // answers (no SYN-ACK, no refusal): it retries without end, the CPU busy. Our own deadline does.
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('connect timeout'), { code: 'CONNECT_TIMEOUT' })), target.connectTimeout * 1000 + 250);
  });
  try {
    return [sql, await Promise.race([first(sql), deadline])];
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw databaseError(e, target);
  } finally {
    clearTimeout(timer);
  }
}

/** Node's and the driver's codes for a connection that could not be made or was lost. */
const CONNECTION_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is the server running and listening on that address?)',
  ECONNRESET: 'the connection was reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'the connection timed out',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  ENOENT: 'no server socket there',
  EACCES: 'permission denied',
  CONNECTION_CLOSED: 'the server closed the connection',
  CONNECTION_ENDED: 'the connection was ended',
  CONNECTION_DESTROYED: 'the connection was dropped',
};

/**
 * SQLSTATEs of a server that cannot take us now or will not let us in: connection exceptions
 * (08), shutting down or starting (57P01-57P03), too many connections (53300), refused login
 * (28), no such database (3D000).
 */
const isServerUnavailable = (sqlState: string): boolean =>
  sqlState.startsWith('08') || sqlState.startsWith('28') || ['57P01', '57P02', '57P03', '53300', '3D000'].includes(sqlState);

/**
 * The driver's class of an error the server sent, known once the driver is loaded. Told by its
 * class, not its `name`: the bundle (dist/postgres.js) makes the class anonymous, so its
 * instances' name is empty there.
 */
let ServerError: (new (...args: never[]) => Error) | undefined;
const isServerError = (e: unknown): boolean => ServerError !== undefined && e instanceof ServerError;

/** The driver, imported on first use, so a command that does not use PostgreSQL never loads it. */
export const loadDriver = async () => {
  const { default: postgres } = await import('postgres');
  ServerError = postgres.PostgresError;
  return postgres;
};

/** Is this error the database being out of reach (as opposed to a query that failed)? */
export const isUnavailable = (e: unknown): boolean => {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  if (code in CONNECTION_CODES || code === 'CONNECT_TIMEOUT') return true;
  if (isServerError(e)) return isServerUnavailable(code);
  return /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_)/.test(code);
};

/**
 * Did this error end a connection the pool had made (the server restarted, or dropped it), as
 * opposed to the server being out of reach? A read that meets one is worth one more try at once,
 * on a new connection.
 */
export const isDroppedConnection = (e: unknown): boolean => {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  if (isServerError(e)) return code === '57P01' || code === '57P02' || code === '08006';
  return code === 'ECONNRESET' || code === 'CONNECTION_CLOSED' || code === 'CONNECTION_ENDED' || code === 'CONNECTION_DESTROYED';
};

/**
 * The driver starts TLS even when the server answers the SSL request with "no", and the server
 * then drops the connection: where encryption is required, that drop is most likely the reason
 * libpq would give ("server does not support SSL, but SSL was required").
 */
const sslRefusedHint = (code: string, target: DatabaseTarget): string =>
  ['ECONNRESET', 'CONNECTION_CLOSED'].includes(code) && ['require', 'verify-ca', 'verify-full'].includes(target.sslmode)
    ? ` (does the server offer SSL? sslmode=${target.sslmode} requires it)`
    : '';

/**
 * A driver error as one line a user can act on. The database being out of reach is
 * QUEUECTL_DATABASE_UNAVAILABLE (exit 1); anything else is a failed operation (QUEUECTL_FAILED).
 * The password is masked in either, whatever the original message held.
 */
export const databaseError = (e: unknown, target: DatabaseTarget): QueuectlError => {
  if (e instanceof QueuectlError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  const where = `PostgreSQL at ${serverName(target)}`;
  const line = (text: string) => redact(text, target).replace(/\s*\n\s*/g, ' ');
  if (code === '42501') {
    // insufficient_privilege: name what queuectl needs (README, "Privileges"), not just what failed
    const user = target.user === '' ? 'its user' : target.user;
    const fix = `queuectl needs CREATE on database ${target.database} (GRANT CREATE ON DATABASE ${target.database} TO ${user}) or to own a schema made for it (ALTER SCHEMA ${target.schema} OWNER TO ${user})`;
    return new QueuectlError('QUEUECTL_FAILED', line(`${where} failed: ${message}; ${fix}`));
  }
  if (!isUnavailable(e)) return new QueuectlError('QUEUECTL_FAILED', line(`${where} failed: ${message}`));
  const reason =
    code === 'CONNECT_TIMEOUT'
      ? `no answer within ${target.connectTimeout} s (raise ?connect_timeout= if the server is slow to answer)`
      : typeof code === 'string' && code in CONNECTION_CODES
        ? CONNECTION_CODES[code]! + sslRefusedHint(code, target)
        : isServerError(e)
          ? message
          : `TLS: ${message} (sslmode=${target.sslmode})`;
  return new QueuectlError('QUEUECTL_DATABASE_UNAVAILABLE', line(`cannot use ${where}: ${reason}`));
};
