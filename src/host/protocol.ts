// The wire between clients and the host: newline-delimited JSON over a Unix socket in the
// data directory. A connection opens with a hello naming the protocol version; a host and a
// client of different versions refuse each other with a clear message.
import type { Backend } from './host.ts';
import type { Socket } from 'node:net';
import { QueuectlError } from '../errors.ts';

export const PROTOCOL_VERSION = 1;

/**
 * The most one call may carry, in bytes of its JSON line. A host drops a peer that sends more
 * without a newline; a client refuses to send more (the largest calls are `enqueue --file`
 * batches, which the domain bounds at MAX_BATCH_BYTES, 256 MiB by its count: this leaves room for
 * JSON's escapes, and stays under the longest string V8 can build, 512 MiB).
 */
export const MAX_MESSAGE_BYTES = 384 * 1024 * 1024;

export interface Request { id: number; method: string; params?: unknown }
export interface Response { id: number; result?: unknown; error?: { code: string; message: string } }
export interface Hello {
  hello: 'queuectl';
  protocol: number;
  pid: number;
  /** The host's answer names where it keeps the queue, so a client pointed elsewhere (--database-url) can refuse. */
  backend?: Backend | null;
}

const NEWLINE = 0x0a;

/**
 * Call `onMessage` for every complete JSON line received on the socket. The bytes of a line not
 * yet complete are kept as a list of chunks and joined once its newline comes (appending to a
 * string instead costs time quadratic in the line's length). A line longer than `maxBytes`
 * calls `onTooLong` and nothing more is read; a line that is not JSON drops the peer.
 */
export const readLines = (
  socket: Socket,
  onMessage: (msg: unknown) => void,
  maxBytes = Number.POSITIVE_INFINITY,
  onTooLong: () => void = () => socket.destroy(),
): void => {
  let chunks: Buffer[] = [];
  let buffered = 0;
  let stopped = false;
  const stop = (): void => {
    stopped = true;
    chunks = [];
  };
  const line = (bytes: Buffer): void => {
    const text = bytes.toString('utf8');
    if (text.trim() === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      // Not our protocol: drop the peer, never the process.
      stop();
      socket.destroy();
      return;
    }
    onMessage(msg);
  };
  socket.on('data', (chunk: Buffer) => {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl >= 0 && !stopped && !socket.destroyed; nl = chunk.indexOf(NEWLINE, start)) {
      const tail = chunk.subarray(start, nl);
      start = nl + 1;
      if (buffered + tail.length > maxBytes) {
        stop();
        onTooLong();
        return;
      }
      const whole = chunks.length === 0 ? tail : Buffer.concat([...chunks, tail], buffered + tail.length);
      chunks = [];
      buffered = 0;
      line(whole);
    }
    if (stopped || socket.destroyed || start === chunk.length) return;
    const rest = chunk.subarray(start);
    buffered += rest.length;
    if (buffered > maxBytes) {
      stop();
      onTooLong();
      return;
    }
    chunks.push(rest);
  });
};

export const send = (socket: Socket, msg: unknown): void => {
  if (!socket.destroyed) socket.write(`${JSON.stringify(msg)}\n`);
};

/** A call's params as JSON, refused before anything is sent when its line would be over MAX_MESSAGE_BYTES. */
export const encodeParams = (method: string, params: unknown): string => {
  const json = JSON.stringify(params ?? {});
  // a UTF-16 unit is at most 3 bytes of UTF-8: count the bytes only when the limit may be near
  if (json.length * 3 > MAX_MESSAGE_BYTES - 1024 && Buffer.byteLength(json) > MAX_MESSAGE_BYTES - 1024) {
    const mib = (Buffer.byteLength(json) / 2 ** 20).toFixed(1);
    throw new QueuectlError(
      'QUEUECTL_INVALID_INPUT',
      `the '${method}' call would be ${mib} MiB, over the ${MAX_MESSAGE_BYTES / 2 ** 20} MiB one call to the queue may carry${method === 'enqueue' ? '; enqueue the jobs in smaller files' : ''}`,
    );
  }
  return json;
};
