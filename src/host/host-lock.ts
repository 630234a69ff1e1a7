// Who is the host of a data directory whose queue is in PostgreSQL. With LevelDB, LevelDB's own
// LOCK decides it (a second open fails with LEVEL_LOCKED); with PostgreSQL nothing in the data
// directory is opened, so this lock stands in for it, with the same property: the kernel holds
// it for the process, and frees it the moment the process dies (kill -9 included), with no stale
// file to judge by a pid that may have been reused.
//
// Node has no flock(2). A Linux abstract Unix socket (a name starting with NUL) is such a lock:
// only one process can listen on a name, the name exists only while the socket is open, and it
// leaves nothing on disk. The name is the data directory's device and inode, read from the
// checked directory handle (home.ts), so every path to the same directory names the same lock.
// Its scope is this machine (this network namespace), which is what "one host per --home on
// each machine" asks for: other machines share the database, not the lock.
import { fstatSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Home } from '../home.ts';

/** Thrown when another process holds the lock: connect.ts treats it as LevelDB's LEVEL_LOCKED. */
export class HostLockHeld extends Error {
  readonly code = 'QUEUECTL_HOST_LOCK_HELD';
}

/** Take the host lock of `home` (as prepareHome returned it); resolves to its release. */
export const takeHostLock = (home: Home): Promise<() => Promise<void>> => {
  const st = fstatSync(home.fd!);
  const name = `\0queuectl-host-${st.dev}-${st.ino}`;
  const server = createServer((socket) => socket.destroy()); // nobody is meant to connect
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new HostLockHeld(`another process hosts ${home.dir}`) : e));
    server.listen(name, () => {
      server.unref(); // the lock must not keep a finished command alive
      resolve(() => new Promise<void>((r) => server.close(() => r())));
    });
  });
};
