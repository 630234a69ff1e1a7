// The wire between clients and the host: newline-delimited JSON over a Unix socket in the
// data directory. A connection opens with a hello naming the protocol version; a host and a
// client of different versions refuse each other with a clear message.
import type { Socket } from 'node:net';

export const PROTOCOL_VERSION = 1;

export interface Request { id: number; method: string; params?: unknown }
export interface Response { id: number; result?: unknown; error?: { code: string; message: string } }
export interface Hello { hello: 'queuectl'; protocol: number; pid: number }

/** Call `onMessage` for every complete JSON line received on the socket. */
export const readLines = (socket: Socket, onMessage: (msg: unknown) => void): void => {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim() === '') continue;
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        // Not our protocol: drop the peer, never the process.
        socket.destroy();
        return;
      }
      onMessage(msg);
    }
  });
};

export const send = (socket: Socket, msg: unknown): void => {
  if (!socket.destroyed) socket.write(`${JSON.stringify(msg)}\n`);
};
