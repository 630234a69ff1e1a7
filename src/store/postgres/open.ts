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
  const [{ connect, databaseError }, { migrate }, { PgStore }, extra] = await Promise.all([
    import('./connect.ts'),
    import('./migrate.ts'),
    import('./store.ts'),
    meanwhile(),
  ]);
  const sql = await connect(target, { max: options.connections });
  try {
    // sent together (pipelined: one round trip when up to date); the store's clock needs no schema
    const [, store] = await Promise.all([migrate(sql, target.schema), PgStore.open(sql, { schema: target.schema, explain: (e) => databaseError(e, target) })]);
    return [store, extra];
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw databaseError(e, target);
  }
};
