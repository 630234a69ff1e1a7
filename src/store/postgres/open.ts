// Opening the PostgreSQL store a URL names, for the process that becomes a host (mirrors
// leveldb/open.ts). Small: the `postgres` client and the store's code are imported only when
// called, so a command on the LevelDB store never loads them.
import type { Store } from '../port.ts';
import { parseDatabaseUrl, type UrlSource } from './url.ts';

/**
 * Connect to the database `url` names (its connect timeout; errors one line, password
 * masked: QUEUECTL_INVALID_INPUT for a malformed URL, QUEUECTL_DATABASE_UNAVAILABLE when it
 * cannot be reached), bring the queue's schema up to date, open the store. `meanwhile` runs
 * while the client loads and connects; its result comes back with the store.
 */
export const openPostgresBackend = async <T>(
  url: string,
  meanwhile: () => Promise<T>,
  options: { source?: UrlSource; /** the pool's size (connect.ts's default when not given) */ connections?: number } = {},
): Promise<[Store, T]> => {
  const target = parseDatabaseUrl(url, options.source ?? 'QUEUECTL_DATABASE_URL');
  const [{ connectWith, databaseError }, { migrate, schemaVersion }, { PgStore }, extra] = await Promise.all([
    import('./connect.ts'),
    import('./migrate.ts'),
    import('./store.ts'),
    meanwhile(),
  ]);
  // the schema's version and the store's clock (it needs no schema) prove the connection: one
  // round trip once connected, and no other when the schema is up to date
  const [sql, [found, store]] = await connectWith(target, { max: options.connections }, (sql) =>
    Promise.all([schemaVersion(sql, target.schema), PgStore.open(sql, { schema: target.schema, explain: (e) => databaseError(e, target) })]),
  );
  try {
    await migrate(sql, target.schema, { found });
    return [store, extra];
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw databaseError(e, target);
  }
};
