// An attempt's output sent to the database while it runs (a shared store, PostgreSQL), so
// `logs --follow` on another machine shows it as it is written. The job writes its output
// files under --home (run-job.ts); this reads what they gained since the last piece, at most
// every SEND_EVERY_MS and one piece in flight at a time, and sends it with its offsets. It
// runs beside the job, never in its way: a piece that cannot be sent now is sent with the next
// (the offsets only move on success), and what is left when the attempt ends is sent by
// `finish`, before the report, which throws for its caller to retry like the report itself.
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Queue } from '../host/connect.ts';
import type { Offsets } from '../host/host.ts';

/** How often a running attempt's new output is sent at most. */
const SEND_EVERY_MS = 500;
/** The most bytes of one stream one call carries (a bigger backlog goes in several calls). */
const PIECE_BYTES = 1024 * 1024;

const STREAMS = ['stdout', 'stderr'] as const;

export class OutputSender {
  /** What the database has of each stream (bytes from 0). */
  private readonly sent: Offsets = { stdout: 0, stderr: 0 };
  private inFlight: Promise<unknown> = Promise.resolve();
  private busy = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly queue: Queue,
    private readonly jobId: string,
    private readonly attempt: number,
    /** the job's output folder (its files are `<attempt>.stdout` and `<attempt>.stderr`) */
    private readonly dir: string,
    /** output_limit: bytes beyond it are not kept, so not sent */
    private readonly cap: number,
  ) {}

  /** Send new output every SEND_EVERY_MS while the attempt runs. */
  start(): void {
    this.timer = setInterval(() => {
      // one piece at a time: a slow database makes pieces bigger, never calls pile up
      if (this.busy) return;
      this.busy = true;
      this.inFlight = this.sendNext()
        .catch(() => {}) // sent with the next piece, or by finish()
        .finally(() => (this.busy = false));
    }, SEND_EVERY_MS);
    this.timer.unref();
  }

  /** The attempt ended: send all it wrote that the database lacks. Throws the call's error (the caller retries). */
  async finish(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.inFlight;
    while (await this.sendNext());
  }

  /** Send what the files gained (a piece per stream); false when there was nothing to send. */
  private async sendNext(): Promise<boolean> {
    const from = { ...this.sent };
    const [stdout, stderr] = await Promise.all(STREAMS.map((s) => this.readFrom(s, from[s])));
    if (stdout!.length === 0 && stderr!.length === 0) return false;
    await this.queue.call('keepOutput', { jobId: this.jobId, attempt: this.attempt, stdout: stdout!.toString('base64'), stderr: stderr!.toString('base64'), from });
    this.sent.stdout = from.stdout + stdout!.length;
    this.sent.stderr = from.stderr + stderr!.length;
    return true;
  }

  /** Bytes of a stream's file from `offset`, below the cap, one piece at most (none if there is no file). */
  private async readFrom(stream: 'stdout' | 'stderr', offset: number): Promise<Buffer> {
    const want = Math.min(PIECE_BYTES, this.cap - offset);
    if (want <= 0) return Buffer.alloc(0);
    try {
      const file = await open(join(this.dir, `${this.attempt}.${stream}`), 'r');
      try {
        const buf = Buffer.alloc(want);
        const { bytesRead } = await file.read(buf, 0, want, offset);
        return buf.subarray(0, bytesRead);
      } finally {
        await file.close();
      }
    } catch {
      return Buffer.alloc(0); // not made yet, or unreadable: the local `logs` says why
    }
  }
}
