// The host's socket: answers clients' API calls with the same handlers local callers use.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { isQueuectlError } from '../errors.ts';
import type { Host, Method } from './host.ts';
import { type Hello, PROTOCOL_VERSION, type Request, readLines, send } from './protocol.ts';

const ANSWER_GRACE_MS = 2000;

/**
 * Listen on the data directory's socket. Returns how to stop serving: the host has stopped
 * by then (its long polls answer at once), so the calls under way may answer, briefly (an
 * answer cut off at a handover, a claim above all, would leave its client guessing and the
 * claimed job unrun until its lease expires as "worker lost"); then every connection closes.
 */
export const serve = async (host: Host, socketPath: string): Promise<() => Promise<void>> => {
  const connections = new Set<Socket>();
  const calls = new Set<Promise<unknown>>();
  // We hold the database lock, so a socket file left here belongs to a dead host.
  rmSync(socketPath, { force: true });
  const server = createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    handleConnection(host, socket, calls);
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

const handleConnection = (host: Host, socket: Socket, calls: Set<Promise<unknown>>): void => {
  let greeted = false;
  let peerPid = 0;
  const workers = new Set<string>();
  readLines(socket, (msg) => {
    if (!greeted) {
      const hello = msg as Hello;
      if (hello?.hello !== 'queuectl' || hello.protocol !== PROTOCOL_VERSION) {
        send(socket, { error: { code: 'QUEUECTL_PROTOCOL_MISMATCH', message: `this host speaks queuectl protocol ${PROTOCOL_VERSION} but the client speaks ${hello?.protocol}; run the same queuectl version everywhere (stop the workers and start them again)` } });
        socket.end();
        return;
      }
      greeted = true;
      peerPid = hello.pid;
      send(socket, { hello: 'queuectl', protocol: PROTOCOL_VERSION, pid: process.pid });
      return;
    }
    const req = msg as Request;
    const method = typeof req === 'object' && req !== null && typeof req.method === 'string' ? req.method : '';
    // own properties only: `constructor` or `__proto__` are not calls
    const handler = Object.hasOwn(host.api, method) ? (host.api[method as Method] as (p: unknown) => Promise<unknown>) : undefined;
    if (!handler || typeof req.id !== 'number') {
      send(socket, { id: req?.id ?? null, error: { code: 'QUEUECTL_PROTOCOL_MISMATCH', message: `the host does not know the call '${method}'` } });
      return;
    }
    if (req.method === 'workerStart') workers.add((req.params as { workerId: string }).workerId);
    if (req.method === 'workerStop') workers.delete((req.params as { workerId: string }).workerId);
    const answered = Promise.resolve()
      .then(() => handler(req.params))
      .then(
      (result) => send(socket, { id: req.id, result: result ?? null }),
      (e: unknown) => {
        const damage = host.explain(e);
        const error = isQueuectlError(e) ? { code: e.code, message: e.message } : damage ? damage.toJSON() : { code: 'QUEUECTL_FAILED', message: String((e as Error)?.message ?? e) };
        send(socket, { id: req.id, error });
      },
    );
    calls.add(answered);
    void answered.finally(() => calls.delete(answered));
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    // A client's workers that vanish with their process lose their jobs now, not a lease later.
    for (const workerId of workers) void host.workerGone(workerId, peerPid).catch(() => {});
  });
};
