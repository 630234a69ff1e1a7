// How any queuectl process reaches the queue: ask the host over the socket, or, when no host
// answers, open the database and become the host itself. When the host dies mid-call, the
// call is sent again to whoever takes over, but only where that is safe.
import { connect as netConnect, type Socket } from 'node:net';
import { environmentError, QueuectlError } from '../errors.ts';
import { type Home, prepareHome, checkOwnership } from '../home.ts';
import type { Backend, Host, Method, Params, Result } from './host.ts';
import { HostLockHeld, takeHostLock } from './host-lock.ts';
import { encodeParams, type Hello, PROTOCOL_VERSION, type Response, readLines, send } from './protocol.ts';
import { closeSync, fsyncSync, lstatSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { asDamage } from '../store/leveldb/leveldb-files.ts';
import { openLevelBackend } from '../store/leveldb/open.ts';
import type { DatabaseTarget } from '../store/postgres/url.ts';
import type { Store } from '../store/port.ts';

/** The PostgreSQL database a command is pointed at (--database-url or QUEUECTL_DATABASE_URL). */
export interface Database {
  /** as the user gave it: for the driver only, never shown */
  url: string;
  target: DatabaseTarget;
}

export interface ConnectOptions {
  /** Serve other processes when this one becomes the host (long-running processes: workers). */
  serve: boolean;
  /** Called each time this process becomes the host (at start or by taking over). */
  onHost?: (host: Host) => Promise<void>;
  /** How long to keep trying to reach or become a host. */
  patienceMs?: number;
}

/** Calls whose repetition after a lost answer cannot apply anything twice. */
const UNSAFE_TO_RESEND = new Set<Method>(['cancel', 'retry', 'configSet', 'rebuild']);

interface Link {
  /** `encoded`: the params as JSON (size-checked), for the wire. */
  call(method: string, params: unknown, encoded: string): Promise<unknown>;
  close(): Promise<void>;
  readonly lost: boolean;
}

const HELLO_TIMEOUT_MS = 3000;
/** How often a host that cannot write tries whether the disk takes writes again (a failed try costs a failed write). */
const RECOVERY_PROBE_MS = 1000;

const hostLost = (): QueuectlError => new QueuectlError('QUEUECTL_HOST_LOST', 'the queuectl host process went away');

/** The host serves as many connections as it takes: wait for a free place as for a host starting. */
class HostFull extends QueuectlError {}

class RemoteLink implements Link {
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private nextId = 1;
  lost = false;
  constructor(private readonly socket: Socket) {
    socket.on('close', () => {
      this.lost = true;
      for (const p of this.pending.values()) p.reject(hostLost());
      this.pending.clear();
    });
  }

  /** Where the host keeps the queue, as its hello said (undefined: it did not say). */
  backend: Backend | null | undefined;

  static async open(path: string, dir: string): Promise<RemoteLink> {
    const socket = netConnect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => {});
    const link = new RemoteLink(socket);
    const hello = await new Promise<Hello & Response>((resolve, reject) => {
      // A host that is stopped (Ctrl-Z) or hung accepts connections but never answers.
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new QueuectlError('QUEUECTL_BUSY', `the queuectl host of ${dir} does not answer; if it was stopped with Ctrl-Z, resume it (fg, or kill -CONT <pid>)`));
      }, HELLO_TIMEOUT_MS);
      let first = true;
      readLines(socket, (msg) => {
        if (first) {
          first = false;
          clearTimeout(timer);
          return resolve(msg as Hello & Response);
        }
        link.receive(msg as Response);
      });
      socket.once('close', () => {
        clearTimeout(timer);
        reject(hostLost());
      });
      send(socket, { hello: 'queuectl', protocol: PROTOCOL_VERSION, pid: process.pid } satisfies Hello);
    });
    if (hello.error) {
      socket.destroy();
      if (hello.error.code === 'QUEUECTL_BUSY') throw new HostFull('QUEUECTL_BUSY', hello.error.message);
      throw new QueuectlError('QUEUECTL_PROTOCOL_MISMATCH', hello.error.message);
    }
    socket.unref(); // an idle connection must not keep a finished command alive
    link.backend = hello.backend;
    return link;
  }

  private receive(res: Response): void {
    const p = this.pending.get(res.id);
    if (!p) return;
    this.pending.delete(res.id);
    if (this.pending.size === 0) this.socket.unref();
    if (res.error) p.reject(new QueuectlError(res.error.code as never, res.error.message));
    else p.resolve(res.result);
  }

  call(method: string, _params: unknown, encoded: string): Promise<unknown> {
    if (this.lost) return Promise.reject(hostLost());
    const id = this.nextId++;
    this.socket.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`{"id":${id},"method":${JSON.stringify(method)},"params":${encoded}}\n`);
    });
  }

  async close(): Promise<void> {
    this.socket.end();
    this.socket.destroy();
  }
}

class LocalLink implements Link {
  lost = false;
  constructor(
    readonly host: Host,
    /** Stops serving the socket (see server.ts); null when this process does not serve. */
    private readonly stopServing: (() => Promise<void>) | null,
    /** Lets another process become the host, once the store is closed (PostgreSQL: see host-lock.ts). */
    private readonly releaseHost: () => Promise<void> = async () => {},
  ) {}

  call(method: string, params: unknown): Promise<unknown> {
    if (this.lost) return Promise.reject(hostLost());
    const handler = this.host.api[method as Method] as (p: unknown) => Promise<unknown>;
    // A call under way while this process hands the database over (see Queue.recover) is
    // answered as a lost host: it is then sent again, where that is safe, to the next one.
    return handler(params).catch((e: unknown) => {
      throw this.lost ? hostLost() : (this.host.explain(e) ?? e);
    });
  }

  async close(): Promise<void> {
    // Stop first: waiting claims answer "nothing" while their clients can still hear it;
    // then the clients go (one of them takes over), then the database.
    this.host.stop();
    if (this.stopServing) await this.stopServing();
    // A short command (it does not serve) lets LevelDB finish a compaction it started, or none
    // would ever finish (see LogStore.close); a serving host does not make the clients that
    // take over wait: its compactions had the time to run.
    try {
      await this.host.engine.close({ letCompactionFinish: !this.stopServing });
    } finally {
      await this.releaseHost();
    }
  }
}

const isLocked = (e: unknown): boolean => {
  const err = e as { code?: string; cause?: { code?: string } };
  return e instanceof HostLockHeld || err?.code === 'LEVEL_LOCKED' || err?.cause?.code === 'LEVEL_LOCKED';
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Queue {
  private link: Link | null = null;
  private closed = false;
  constructor(
    private readonly home: Home,
    private readonly options: ConnectOptions,
    /** null: the LevelDB store in the data directory */
    private readonly database: Database | null = null,
  ) {}

  /** Where this command expects the queue to be kept. */
  private backend(): Backend {
    return this.database ? { type: 'postgresql', url: this.database.target.display } : { type: 'leveldb', path: join(this.home.dir, 'db') };
  }

  /** A host that keeps the queue elsewhere than this command was told (with or without --database-url) must not answer it. */
  private checkSameBackend(link: RemoteLink): void {
    const theirs = link.backend;
    if (theirs === undefined || theirs === null) return;
    const ours = this.backend();
    const name = (b: Backend) => (b.type === 'leveldb' ? 'the LevelDB store in the data directory' : `PostgreSQL at ${b.url}`);
    if (theirs.type === ours.type && (theirs.type === 'leveldb' || theirs.url === (ours as { url: string }).url)) return;
    void link.close();
    throw new QueuectlError(
      'QUEUECTL_INVALID_INPUT',
      `the queuectl host of ${this.home.dir} uses ${name(theirs)}, but this command was pointed at ${name(ours)}; give every command on this --home the same --database-url (or QUEUECTL_DATABASE_URL), or stop its workers first (queuectl worker stop)`,
    );
  }

  /** This process's Host, while it is the host. */
  get host(): Host | null {
    return this.link instanceof LocalLink ? this.link.host : null;
  }

  async call<M extends Method>(method: M, params: Params<M>): Promise<Result<M>> {
    // Checked whichever way the call goes, so a call too big for a host is refused with or without one.
    let encoded = encodeParams(method, params);
    for (let attempt = 0; ; attempt++) {
      const link = await this.establish();
      try {
        return (await link.call(method, params, encoded)) as Result<M>;
      } catch (e) {
        if (!(e instanceof QueuectlError && e.code === 'QUEUECTL_HOST_LOST') || this.closed) throw e;
        if (UNSAFE_TO_RESEND.has(method) || attempt >= 5) {
          throw new QueuectlError(
            'QUEUECTL_HOST_LOST',
            `the queuectl host went away before answering '${method}': it may or may not have been applied; check with \`queuectl show <id>\` or \`queuectl config get\` before trying again`,
          );
        }
        if (method === 'enqueue') {
          (params as { resent?: boolean }).resent = true;
          encoded = encodeParams(method, params);
        }
      }
    }
  }

  private establishing: Promise<Link> | null = null;

  /** Reach the current host, or become it; concurrent calls share one attempt (never open the database twice). */
  private establish(): Promise<Link> {
    if (this.link && !this.link.lost) return Promise.resolve(this.link);
    this.establishing ??= this.reach().finally(() => (this.establishing = null));
    return this.establishing;
  }

  private async reach(): Promise<Link> {
    this.link = null;
    const deadline = Date.now() + (this.options.patienceMs ?? 15_000);
    const home = prepareHome(this.home);
    let full: HostFull | null = null;
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      const sock = lstatSync(home.socket, { throwIfNoEntry: false });
      if (sock) {
        checkOwnership(join(home.dir, 'host.sock'), sock, 'socket');
        try {
          const link = await RemoteLink.open(home.socket, home.dir);
          this.checkSameBackend(link);
          this.link = link;
          return link;
        } catch (e) {
          if (e instanceof HostFull) full = e;
          else if (e instanceof QueuectlError && (e.code === 'QUEUECTL_PROTOCOL_MISMATCH' || e.code === 'QUEUECTL_BUSY' || e.code === 'QUEUECTL_INVALID_INPUT')) throw e;
        }
      }
      try {
        this.link = await this.becomeHost(home);
        return this.link;
      } catch (e) {
        if (!isLocked(e)) throw e;
      }
      if (Date.now() > deadline) {
        if (full) throw full;
        throw new QueuectlError('QUEUECTL_BUSY', `another queuectl process holds ${home.dir} but does not answer on its socket; if none is running, remove ${join(home.dir, 'host.sock')}`);
      }
      await sleep(delay);
    }
  }

  /** `home` as prepareHome returned it: the database and the socket are reached through its handle. */
  private async becomeHost(home: Home): Promise<LocalLink> {
    // Loaded only here: a client never pays for the store and the engine at start-up. The
    // engine's code loads (main thread) while the database opens (its own thread, or the network).
    const backend = this.backend();
    let store: Store;
    let local: typeof import('./local.ts');
    let explain: (e: unknown) => QueuectlError | null;
    let releaseHost = async () => {};
    if (this.database) {
      const { target, url } = this.database;
      releaseHost = await takeHostLock(home); // thrown HostLockHeld: another process hosts this --home
      try {
        const [{ openPostgresBackend }, { databaseError, isUnavailable }] = await Promise.all([import('../store/postgres/open.ts'), import('../store/postgres/connect.ts')]);
        explain = (e) => (isUnavailable(e) ? databaseError(e, target) : null);
        try {
          // a short command makes its queries one after another, or pipelined: one connection
          [store, local] = await openPostgresBackend(url, () => import('./local.ts'), { connections: this.options.serve ? undefined : 1 });
        } catch (e) {
          throw databaseError(e, target);
        }
      } catch (e) {
        await releaseHost();
        throw e;
      }
    } else {
      const shownDb = join(home.dir, 'db'); // what messages name: the path as the user gave it
      [store, local] = await openLevelBackend(home.db, shownDb, () => import('./local.ts'));
      explain = (e) => asDamage(e, shownDb, home.db) ?? environmentError(e, 'use the queue database in', shownDb);
    }
    const { Engine, Host, serve } = local;
    const engine = new Engine(store);
    const host = new Host(engine, explain, backend, this.options.serve);
    let stopServing: (() => Promise<void>) | null = null;
    try {
      if (this.options.serve) stopServing = await serve(host, home.socket);
    } catch (e) {
      await engine.close();
      await releaseHost();
      throw environmentError(e, 'serve on the socket', join(home.dir, 'host.sock')) ?? e;
    }
    const link = new LocalLink(host, stopServing, releaseHost);
    // a full disk under LevelDB: wait for room, then reopen (PostgreSQL's own disk is the server's)
    if (!this.database) store.onUnwritable = () => this.recover(link, home.db);
    await this.options.onHost?.(host);
    return link;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.establishing?.catch(() => {}); // a handover under way: close what it opened
    await this.link?.close();
    this.link = null;
  }

  private recovering: LocalLink | null = null;

  /**
   * This process hosts the database, and a write failed (a full disk, a permission): its
   * handle may write no more (see LogStore.broken), but it still answers reads. A host that
   * serves others (a worker) waits until the disk takes a write again, then hands the database
   * over: it closes it and reaches the queue again, reopening it (LevelDB recovers its log,
   * with every acknowledged write) unless another process was quicker. A short command just
   * fails: the next one opens the database anew.
   */
  private recover(link: LocalLink, db: string): void {
    if (!this.options.serve || this.recovering === link) return;
    this.recovering = link;
    void (async () => {
      while (!this.closed && this.link === link) {
        await new Promise<void>((r) => setTimeout(r, RECOVERY_PROBE_MS).unref());
        if (this.closed || this.link !== link || !hasRoom(db)) continue;
        link.lost = true; // calls from now on wait for the handover below
        const handover = (async () => {
          await link.close().catch(() => {});
          return this.reach();
        })().finally(() => (this.establishing = null));
        handover.catch(() => {}); // a failure reaches the next call, which tries again
        this.establishing = handover;
        return;
      }
    })();
  }
}

/**
 * Whether the database's directory takes a write again, and enough of it: reopening writes the
 * write-ahead log's content into a table, then a new log; what we append follows.
 */
const hasRoom = (dir: string): boolean => {
  const probe = join(dir, 'queuectl-space-probe.tmp');
  try {
    let need = 256 << 10;
    for (const name of readdirSync(dir)) if (name.endsWith('.log')) need += statSync(join(dir, name)).size;
    const fd = openSync(probe, 'w', 0o600);
    try {
      const zeros = Buffer.alloc(64 << 10);
      for (let written = 0; written < need; ) written += writeSync(fd, zeros);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { force: true });
  }
};

export const openQueue = (home: Home, options: ConnectOptions = { serve: false }, database: Database | null = null): Queue => new Queue(home, options, database);
