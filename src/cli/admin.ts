// dlq, config, events, projections, repair.
import { connect } from 'node:net';
import { basename, join } from 'node:path';
import { CONFIG_KEYS, CONFIG_RULES, type Config, isConfigKey, parseConfigValue } from '../domain/config.ts';
import { QueuectlError } from '../errors.ts';
import { prepareHome } from '../home.ts';
import { colors, database, type GlobalOptions, home, invalid, iso, jobJson, LONG_LIVED, parseInteger, printJson, printTable, withQueue } from './context.ts';
import { oneLine } from './escape.ts';
import { COMMAND_CELL, describeEvent } from './jobs.ts';

const unknownAction = (group: string, action: string, valid: string): never =>
  invalid(`unknown action '${group} ${action}'; use ${valid}`);

export const dlq = async (action: string, ids: string[], o: GlobalOptions & { all?: boolean }): Promise<void> => {
  if (action === 'list') {
    if (ids.length > 0) invalid(`'dlq list' takes no ids; to retry use: queuectl dlq retry ${ids.join(' ')}`);
    const [entries, config] = await withQueue(o, (q) => Promise.all([q.call('dlq', {}), q.call('config', {})]));
    if (o.json) return printJson(entries.filter((e) => e.job).map((e) => ({ ...jobJson(e.job!, config), dead_at: iso(e.at) })));
    if (entries.length === 0) {
      process.stdout.write('the DLQ is empty\n');
      return;
    }
    await printTable(
      ['ID', 'DIED', 'ATTEMPTS', 'LAST ERROR', 'COMMAND'],
      entries.map((e) => [oneLine(e.id), iso(e.at), e.job?.attempts ?? e.attempt, oneLine(String(e.error), COMMAND_CELL), e.job ? oneLine(e.job.command, COMMAND_CELL) : null]),
    );
    return;
  }
  if (action === 'retry') {
    if (o.all && ids.length > 0) invalid('give job ids or --all, not both');
    if (!o.all && ids.length === 0) invalid('name the dead jobs to retry, or use --all: queuectl dlq retry <id>... | --all');
    const retried = await withQueue(o, (q) => q.call('retry', { ids, all: Boolean(o.all) }));
    if (o.json) return printJson(retried);
    process.stdout.write(retried.length === 0 ? 'the DLQ is empty: nothing to retry\n' : `${retried.map((id) => `retrying ${id}`).join('\n')}\n`);
    return;
  }
  unknownAction('dlq', action, "'dlq list' or 'dlq retry <id>... | --all'");
};

export const config = async (action: string, key: string | undefined, value: string | undefined, o: GlobalOptions): Promise<void> => {
  const print = (c: Config, keys: readonly (keyof Config)[]) => {
    if (o.json) return printJson(key === undefined ? c : c[keys[0]!]);
    for (const k of keys) process.stdout.write(`${k} = ${c[k]}${colors.dim(`  # ${CONFIG_RULES[k].describe}`)}\n`);
  };
  if (action === 'get') {
    if (value !== undefined) invalid("'config get' takes at most one key");
    if (key !== undefined && !isConfigKey(key)) {
      throw new QueuectlError('QUEUECTL_UNKNOWN_CONFIG_KEY', `unknown config key '${key}'; valid keys: ${CONFIG_KEYS.join(', ')}`);
    }
    const c = await withQueue(o, (q) => q.call('config', {}));
    return print(c, key === undefined ? CONFIG_KEYS : [key as keyof Config]);
  }
  if (action === 'set') {
    if (key === undefined || value === undefined) invalid('usage: queuectl config set <key> <value>');
    // validated here too, so a bad value never needs the database
    const parsed = parseConfigValue(key!, value);
    const c = await withQueue(o, (q) => q.call('configSet', { key: parsed.key, value: String(value) }));
    return print(c, [parsed.key]);
  }
  unknownAction('config', action, "'config get [key]' or 'config set <key> <value>'");
};

export const events = async (o: GlobalOptions & { from?: unknown; follow?: boolean }): Promise<void> => {
  let from = parseInteger(o.from ?? 0, '--from', 0);
  await withQueue(o, async (q) => {
    for (;;) {
      const batch = await q.call('events', { from, limit: 1000, waitMs: o.follow ? 10_000 : 0 });
      for (const e of batch) {
        process.stdout.write(o.json ? `${JSON.stringify(e)}\n` : `${String(e.pos).padStart(6)}  ${iso(e.at)}  ${oneLine(String(e.type), 40).padEnd(15)}  ${'jobId' in e ? `${oneLine(String(e.jobId))}  ` : ''}${describeEvent(e)}\n`);
      }
      if (batch.length > 0) from = batch[batch.length - 1]!.pos + 1;
      else if (!o.follow) return;
    }
  }, o.follow ? LONG_LIVED : undefined);
};

export const projections = async (action: string, o: GlobalOptions): Promise<void> => {
  if (action === 'rebuild') {
    const r = await withQueue(o, (q) => q.call('rebuild', {}));
    if (o.json) return printJson(r);
    process.stdout.write(`rebuilt every projection from ${r.events} events\n`);
    return;
  }
  if (action === 'verify') {
    const r = await withQueue(o, (q) => q.call('verify', {}));
    if (o.json) printJson(r);
    else if (r.differences.length === 0) process.stdout.write(`projections match the log (${r.events} events)\n`);
    else process.stdout.write(`${r.differences.join('\n')}\n`);
    if (r.differences.length > 0) {
      throw new QueuectlError('QUEUECTL_FAILED', `projections differ from the log in ${r.differences.length} place(s); fix with: queuectl projections rebuild`);
    }
    return;
  }
  unknownAction('projections', action, "'projections rebuild' or 'projections verify'");
};

/** Whether a host answers on the socket (it then has the database open). */
const hostAnswers = (socket: string): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

export const repair = async (o: GlobalOptions): Promise<void> => {
  // LevelDB's files are what it mends: pointed at PostgreSQL, it must not touch --home instead
  if (database(o)) {
    invalid(
      'repair mends the LevelDB directory in --home, not a PostgreSQL queue (--database-url or QUEUECTL_DATABASE_URL is set): ' +
        "check and recompute the projections with 'queuectl projections verify' and 'projections rebuild'; damage to the database itself is PostgreSQL's to mend (amcheck, a restore from backup)",
    );
  }
  const named = home(o);
  const h = prepareHome(named); // through the checked directory's handle
  if (await hostAnswers(h.socket)) {
    throw new QueuectlError('QUEUECTL_BUSY', `a queuectl host is using ${h.dir}; stop it first (queuectl worker stop), then run queuectl repair again`);
  }
  const { repairDatabase } = await import('../store/leveldb/repair.ts');
  const repaired = await repairDatabase(h.db, named.db);
  // messages name the directory as the user gave it, not the handle it was reached through
  const r = { ...repaired, backup: join(named.dir, basename(repaired.backup)) };
  if (o.json) return printJson(r);
  const which = r.lost.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ');
  process.stdout.write(
    `repaired ${named.db}: ${r.kept} events kept, ${r.lostCount} lost${r.lostCount > 0 ? ` (positions ${which})` : ''}\n` +
      `projections rebuilt and verified; the database as it was is kept in ${r.backup}\n`,
  );
};

/** `db migrate [--dry-run]`: create or upgrade the queue's schema in PostgreSQL (every host also does it on first use). */
export const db = async (action: string, o: GlobalOptions & { dryRun?: boolean }): Promise<void> => {
  if (action !== 'migrate') unknownAction('db', action, "'db migrate' or 'db migrate --dry-run'");
  const chosen = database(o);
  if (!chosen) invalid("'db migrate' works on a PostgreSQL queue: give --database-url postgres://user:password@host:5432/database or set QUEUECTL_DATABASE_URL (the LevelDB store needs no migration)");
  const { target } = chosen!;
  const [{ connect, databaseError }, { migrate }] = await Promise.all([import('../store/postgres/connect.ts'), import('../store/postgres/migrate.ts')]);
  const sql = await connect(target, { max: 1 });
  try {
    const r = await migrate(sql, target.schema, { dryRun: Boolean(o.dryRun) }).catch((e: unknown) => {
      throw databaseError(e, target);
    });
    if (o.json) return printJson({ schema: target.schema, from: r.from, to: r.to, applied: !o.dryRun && r.sql !== '', sql: r.sql });
    if (r.sql === '') process.stdout.write(`${o.dryRun ? '-- ' : ''}schema ${target.schema} is up to date (version ${r.to}): nothing to run\n`);
    else if (o.dryRun) process.stdout.write(`-- would migrate schema ${target.schema} from version ${r.from} to ${r.to}; nothing was run\n${r.sql}\n`);
    else process.stdout.write(`migrated schema ${target.schema} from version ${r.from} to ${r.to}\n`);
  } finally {
    await sql.end({ timeout: 1 });
  }
};
