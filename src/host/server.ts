// The host's socket: answers clients' API calls with the same handlers local callers use.
// Whatever a peer sends (a job's bug included: jobs run as the user who may talk to the socket),
// it costs the host one refused call or the peer's own connection, never the host: every call's
// params are checked (params.ts) and every call fails alone; a line is capped, a peer that does
// not greet or sits idle is dropped, one that floods or does not read waits, and the connections
// are counted.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { isQueuectlError } from '../errors.ts';
import { showPaths } from '../home.ts';
import type { Host, Method } from './host.ts';
import { type Hello, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, type Request, readLines, send } from './protocol.ts';

const ANSWER_GRACE_MS = 2000;

export interface ServeLimits {
  /** A connection must say hello within this time (a client does so at once). */
  greetingMs: number;
  /** A connection with no call under way is closed after this time (its client reconnects when it next calls). */
  idleMs: number;
  /** Connections at once; one more is told the host is busy (the client waits for a free place). */
  maxConnections: number;
  /** The longest line a peer may send, in bytes. */
  maxLineBytes: number;
  /** Calls under way on one connection before its input waits (a worker holds one or two per slot). */
  maxCallsPerConnection: number;
}

export const DEFAULT_LIMITS: ServeLimits = {
  greetingMs: 5_000,
  idleMs: 60_000,
  maxConnections: 256,
  maxLineBytes: MAX_MESSAGE_BYTES,
  maxCallsPerConnection: 256,
};


/**
 * A timer that, when it fires, first lets the I/O already waiting be read: when the host's event
 * loop was busy past the deadline, a hello or a call that arrived in time still counts.
 */
const deadline = (ms: number, expired: () => void): NodeJS.Timeout =>
  setTimeout(() => setImmediate(expired), ms).unref();

/**
 * Listen on the data directory's socket. Returns how to stop serving: the host has stopped
 * by then (its long polls answer at once), so the calls under way may answer, briefly (an
 * answer cut off at a handover, a claim above all, would leave its client guessing and the
 * claimed job unrun until its lease expires as "worker lost"); then every connection closes.
 */
export const serve = async (host: Host, socketPath: string, limits: ServeLimits = DEFAULT_LIMITS): Promise<() => Promise<void>> => {
  // Only a serving host loads the schemas (and valibot): a short command that opens the
  // database itself never serves.
  const { checkParams } = await import('./params.ts');
  const connections = new Set<Socket>();
  const calls = new Set<Promise<unknown>>();
  // We hold the database lock, so a socket file left here belongs to a dead host.
  rmSync(socketPath, { force: true });
  const server = createServer((socket) => {
    socket.on('error', () => {});
    if (connections.size >= limits.maxConnections) {
      socket.end(`${JSON.stringify({ error: { code: 'QUEUECTL_BUSY', message: `the queuectl host serves ${limits.maxConnections} connections, the most it takes; try again when some have closed` } })}\n`);
      return;
    }
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    handleConnection(host, socket, calls, limits, checkParams);
  });
  const umask = process.umask(0o077); // the socket is born 0600: nobody else may talk to it
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  chmodSync(socketPath, 0o600);
  server.unref();
  return async () => {
    if (calls.size > 0) await Promise.race([Promise.allSettled([...calls]), new Promise((r) => setTimeout(r, ANSWER_GRACE_MS).unref())]);
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const c of connections) c.destroy();
    });
  };
};

/** A backend's error a user can act on (LevelDB: damage and the way back) goes out explained. */
const refusal = (host: Host, e: unknown): { code: string; message: string } => {
  // paths reached through this process's handle on the data directory, as the user named them
  if (isQueuectlError(e)) return { code: e.code, message: showPaths(e.message) };
  const explained = host.explain(e);
  return explained ? { code: explained.code, message: showPaths(explained.message) } : { code: 'QUEUECTL_FAILED', message: showPaths(String((e as Error)?.message ?? e)) };
};

const handleConnection = (
  host: Host,
  socket: Socket,
  calls: Set<Promise<unknown>>,
  limits: ServeLimits,
  checkParams: typeof import('./params.ts').checkParams,
): void => {
  let greeted = false;
  let peerPid = 0;
  let underWay = 0;
  const workers = new Set<string>();
  // Long polls of this connection end when it closes: a claim must not outlive the client
  // that would run the job.
  const closed = new AbortController();
  let timer: NodeJS.Timeout | null = deadline(limits.greetingMs, () => {
    if (!greeted) socket.destroy();
  });
  const restartIdleTimer = (): void => {
    if (timer) clearTimeout(timer);
    timer = underWay > 0 ? null : deadline(limits.idleMs, () => {
      if (underWay === 0) socket.destroy();
    });
  };

  // A peer that sends calls faster than they end, or does not read its answers, waits: its
  // input is not read meanwhile, so neither calls nor unread answers pile up in the host.
  const throttle = (): void => {
    if (underWay >= limits.maxCallsPerConnection || socket.writableNeedDrain) socket.pause();
    else if (socket.isPaused()) socket.resume();
  };
  socket.on('drain', throttle);

  const greet = (msg: unknown): void => {
    const hello = msg as Partial<Hello> | null;
    if (hello?.hello !== 'queuectl' || hello.protocol !== PROTOCOL_VERSION || !Number.isSafeInteger(hello.pid)) {
      const theirs = typeof hello?.protocol === 'number' ? `protocol ${hello.protocol}` : 'something else';
      send(socket, { error: { code: 'QUEUECTL_PROTOCOL_MISMATCH', message: `this host speaks queuectl protocol ${PROTOCOL_VERSION} but the client speaks ${theirs}; run the same queuectl version everywhere (stop the workers and start them again)` } });
      socket.end();
      return;
    }
    greeted = true;
    peerPid = hello.pid!;
    restartIdleTimer();
    send(socket, { hello: 'queuectl', protocol: PROTOCOL_VERSION, pid: process.pid, backend: host.backend } satisfies Hello);
  };

  const call = (msg: unknown): void => {
    const req = (typeof msg === 'object' && msg !== null ? msg : {}) as Partial<Request>;
    const id = typeof req.id === 'number' ? req.id : null;
    const method = typeof req.method === 'string' ? req.method : '';
    // own properties only: `constructor` or `__proto__` are not calls
    if (id === null || !Object.hasOwn(host.api, method)) {
      send(socket, { id, error: { code: 'QUEUECTL_PROTOCOL_MISMATCH', message: `the host does not know the call '${method}'` } });
      return;
    }
    underWay++;
    restartIdleTimer();
    throttle();
    const answered = (async () => {
      try {
        const params = checkParams(method as Method, req.params);
        if (method === 'workerStart') workers.add((params as { workerId: string }).workerId);
        if (method === 'workerStop') workers.delete((params as { workerId: string }).workerId);
        const handler = host.api[method as Method] as (p: unknown, cancelled: AbortSignal) => Promise<unknown>;
        const result = await handler(params, closed.signal);
        send(socket, { id, result: result ?? null });
      } catch (e) {
        // a refusal, a failure, or an answer that cannot be sent (too big for one string)
        send(socket, { id, error: refusal(host, e) });
      } finally {
        underWay--;
        if (!socket.destroyed) {
          restartIdleTimer();
          throttle();
        }
      }
    })().catch(() => socket.destroy()); // not even the refusal could be sent: the peer goes, not the host
    calls.add(answered);
    void answered.finally(() => calls.delete(answered));
  };

  readLines(
    socket,
    (msg) => {
      if (socket.writableEnded) return; // refused or dropped: nothing more is answered
      try {
        if (greeted) call(msg);
        else greet(msg);
      } catch (e) {
        // a bug of ours on one message costs that peer its connection, never the host
        send(socket, { error: refusal(host, e) });
        socket.destroy();
      }
    },
    limits.maxLineBytes,
    () => {
      send(socket, { error: { code: 'QUEUECTL_INVALID_INPUT', message: `a message over ${limits.maxLineBytes / 2 ** 20} MiB; the connection is closed` } });
      socket.end();
      deadline(1000, () => socket.destroy());
    },
  );
  socket.on('close', () => {
    if (timer) clearTimeout(timer);
    closed.abort();
    // A client's workers that vanish with their process lose their jobs now, not a lease later.
    for (const workerId of workers) void host.workerGone(workerId, peerPid).catch(() => {});
  });
};
