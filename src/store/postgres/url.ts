// The database URL (`--database-url` or QUEUECTL_DATABASE_URL): parsed and checked here, with
// no database client loaded, so a malformed URL costs a short command nothing but this file.
//
// The driver never sees the URL itself: it gets the parts as options. That way a query
// parameter it does not know cannot become a server setting, `?schema=` stays ours, and the
// password is in one field only, which `redact` removes from anything shown to a user.
import { QueuectlError } from '../../errors.ts';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface DatabaseTarget {
  /** the URL without its password: for `status`, errors and logs */
  readonly display: string;
  /** TCP host name or address, or the directory of a Unix socket (from `?host=/dir`) */
  readonly host: string;
  readonly port: number;
  readonly database: string;
  /** empty: the driver takes PGUSER, else the OS user name, as libpq does */
  readonly user: string;
  /** empty: the driver takes PGPASSWORD, as libpq does */
  readonly password: string;
  /** the PostgreSQL schema holding this queue's tables */
  readonly schema: string;
  readonly sslmode: SslMode;
  /** a CA certificate file for verify-ca / verify-full (`sslrootcert`) */
  readonly sslrootcert: string | null;
  readonly sslcert: string | null;
  readonly sslkey: string | null;
  /** seconds to wait for a connection (TCP, TLS and authentication) before giving up */
  readonly connectTimeout: number;
  readonly applicationName: string;
}

export const DEFAULT_SCHEMA = 'queuectl';
/** libpq waits forever by default; a CLI must not hang on a server that does not answer */
export const DEFAULT_CONNECT_TIMEOUT_S = 5;

const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];
const PARAMETERS = ['schema', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'connect_timeout', 'application_name', 'host', 'port', 'user', 'password', 'dbname'];
/**
 * Lowercase so that it never needs quoting; pg_ names are reserved by PostgreSQL; at most 54
 * characters so that the NOTIFY channel `queuectl_<schema>` fits PostgreSQL's 63.
 */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,53}$/;

/** Where a URL came from, as the user would name it in an error. */
export type UrlSource = '--database-url' | 'QUEUECTL_DATABASE_URL';

const EXAMPLE = 'postgres://user:password@host:5432/database';

/**
 * Parse and check a database URL. Every refusal is a QUEUECTL_INVALID_INPUT (exit 2) naming
 * what is wrong, and never quotes the URL (it may hold a password).
 */
export const parseDatabaseUrl = (text: string, source: UrlSource): DatabaseTarget => {
  const bad = (what: string): never => {
    throw new QueuectlError('QUEUECTL_INVALID_INPUT', `${source} ${what}`);
  };
  if (text.trim() === '') bad(`is empty: set it to a URL like ${EXAMPLE}, or unset it to use the local store`);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1];
  if (scheme === undefined) bad(`must be a URL like ${EXAMPLE}`);
  if (scheme !== 'postgres' && scheme !== 'postgresql') bad(`must start with postgres:// or postgresql://, not ${scheme}://`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // WHATWG URL says only "Invalid URL"; the usual culprit is the port
    const port = /^[^:]+:\/\/(?:.*@)?[^/?#@]*:([^/?#@:\]]*)(?:[/?#]|$)/.exec(text)?.[1];
    if (port !== undefined && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) bad(`has a port that is not a number from 1 to 65535: '${port}'`);
    return bad(`is not a valid URL (check the host and port; special characters in the user name or password must be percent-encoded, e.g. @ as %40); expected ${EXAMPLE}`);
  }
  const decode = (part: string, what: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      return bad(`has a malformed percent-encoding in its ${what}`);
    }
  };
  const params = new Map<string, string>();
  for (const [key, value] of url.searchParams) {
    if (!PARAMETERS.includes(key)) bad(`has an unknown parameter '${key}' (known: ${PARAMETERS.join(', ')})`);
    if (params.has(key)) bad(`names the parameter '${key}' twice`);
    params.set(key, value);
  }
  // libpq lets query parameters stand in for the URL's parts (`postgres:///db?host=/run/postgresql`)
  const host = params.get('host') ?? decode(url.hostname.replace(/^\[(.*)\]$/, '$1'), 'host');
  if (host === '') bad(`names no host; expected ${EXAMPLE}`);
  if (host.includes(',')) bad('names several hosts; queuectl connects to one server');
  const portText = params.get('port') ?? url.port;
  const port = portText === '' ? 5432 : /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) bad(`has a port that is not a number from 1 to 65535: '${portText}'`);
  const path = decode(url.pathname.replace(/^\//, ''), 'database name');
  if (path.includes('/')) bad(`has a database name with a '/' in it: '${path}'`);
  const user = params.get('user') ?? decode(url.username, 'user name');
  const password = params.get('password') ?? decode(url.password, 'password');
  const database = params.get('dbname') ?? (path || user);

  const schema = params.get('schema') ?? DEFAULT_SCHEMA;
  if (!SCHEMA_NAME.test(schema) || schema.startsWith('pg_')) {
    bad(`?schema= takes a name of lowercase letters, digits and _ (not starting with a digit or pg_, at most 54), got '${schema}'`);
  }
  const sslmode = (params.get('sslmode') ?? 'prefer') as SslMode;
  if (!SSL_MODES.includes(sslmode)) bad(`?sslmode= takes one of ${SSL_MODES.join(', ')}, got '${sslmode}'`);
  const timeoutText = params.get('connect_timeout');
  const connectTimeout = timeoutText === undefined ? DEFAULT_CONNECT_TIMEOUT_S : /^\d+$/.test(timeoutText) ? Number(timeoutText) : 0;
  if (!(connectTimeout >= 1 && connectTimeout <= 3600)) bad(`?connect_timeout= takes a whole number of seconds from 1 to 3600, got '${timeoutText}'`);

  const shown = new URL(text);
  shown.password = '';
  shown.searchParams.delete('password');
  return {
    display: shown.toString(),
    host,
    port,
    database,
    user,
    password,
    schema,
    sslmode,
    sslrootcert: params.get('sslrootcert') ?? null,
    sslcert: params.get('sslcert') ?? null,
    sslkey: params.get('sslkey') ?? null,
    connectTimeout,
    applicationName: params.get('application_name') ?? 'queuectl',
  };
};

/**
 * The database this command is pointed at: `--database-url` wins over QUEUECTL_DATABASE_URL;
 * null when neither is set (the LevelDB store). An empty value counts as set, and is refused.
 */
export const databaseTargetFrom = (option: unknown, env: NodeJS.ProcessEnv = process.env): DatabaseTarget | null => {
  if (option !== undefined) {
    if (typeof option !== 'string') {
      throw new QueuectlError('QUEUECTL_INVALID_INPUT', `--database-url takes a URL like ${EXAMPLE}`);
    }
    return parseDatabaseUrl(option, '--database-url');
  }
  const fromEnv = env.QUEUECTL_DATABASE_URL;
  return fromEnv === undefined ? null : parseDatabaseUrl(fromEnv, 'QUEUECTL_DATABASE_URL');
};

/** `text` with every occurrence of the target's password (raw and percent-encoded) masked. */
export const redact = (text: string, target: Pick<DatabaseTarget, 'password'>): string => {
  if (target.password === '') return text;
  let out = text;
  for (const secret of new Set([target.password, encodeURIComponent(target.password)])) out = out.split(secret).join('***');
  return out;
};

/** host:port, or the socket directory, as errors name the server. */
export const serverName = (target: Pick<DatabaseTarget, 'host' | 'port'>): string =>
  target.host.startsWith('/') ? `${target.host} (Unix socket, port ${target.port})` : `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
