// STAND-IN, to be replaced by branch pg-store's open.ts (PgStore) when the two are merged: take
// that branch's version of this file. It has the agreed signature and reaches the server (so a
// URL pointing nowhere fails here as it will there), then says the store is not built yet.
import { QueuectlError } from '../../errors.ts';
import type { Store } from '../port.ts';
import { connect } from './connect.ts';
import { parseDatabaseUrl } from './url.ts';

export const openPostgresBackend = async <T>(url: string, meanwhile: () => Promise<T>): Promise<[Store, T]> => {
  const target = parseDatabaseUrl(url, 'QUEUECTL_DATABASE_URL');
  const [sql] = await Promise.all([connect(target, { max: 1 }), meanwhile()]);
  await sql.end({ timeout: 1 });
  throw new QueuectlError('QUEUECTL_FAILED', `PostgreSQL at ${target.display} was reached, but this build of queuectl has no PostgreSQL store yet (in progress)`);
};
