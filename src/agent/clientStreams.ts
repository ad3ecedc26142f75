// The streams of one exec client, as the agent's runExec sees them: stdout and stderr that write
// frames to the client's connection (with the connection's backpressure, which the client passes
// on from its own stdout), a stdin that asks the client for its input only when the exec reads it,
// and the terminal facts the full CLI would have read from its own process (isTTY, columns).
import { clearLine, cursorTo, moveCursor } from 'node:readline';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { Frame, frame, MAX_FRAME_BYTES } from './client.js';

/** Stdin bytes held for an exec that has not read them yet before the client is told to wait. */
const STDIN_HIGH_WATER = 1024 * 1024;

/** stdout or stderr of the client, as frames on its connection. */
export class FrameWritable extends Writable {
  readonly isTTY: boolean;
  readonly columns: number | undefined;

  constructor(
    private readonly conn: Socket,
    private readonly type: number,
    tty: { isTTY: boolean; columns?: number },
  ) {
    super({ decodeStrings: true });
    this.isTTY = tty.isTTY;
    this.columns = tty.isTTY ? tty.columns : undefined;
    // A client that went away destroys this stream with an error its writer reports (StdoutSink);
    // with no writer listening, the error must not take the agent down.
    this.on('error', () => {});
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    let ok = true;
    for (let at = 0; at < chunk.length; at += MAX_FRAME_BYTES) ok = this.conn.write(frame(this.type, chunk.subarray(at, at + MAX_FRAME_BYTES)));
    if (ok) return done();
    const drained = () => {
      this.conn.off('close', drained);
      this.conn.off('drain', drained);
      done();
    };
    this.conn.once('drain', drained);
    this.conn.once('close', drained);
  }

  // What tty.WriteStream offers and the review spinner (yocto-spinner) calls on a terminal.
  cursorTo(x: number, y?: number, callback?: () => void): boolean {
    return cursorTo(this, x, y, callback);
  }

  moveCursor(dx: number, dy: number, callback?: () => void): boolean {
    return moveCursor(this, dx, dy, callback);
  }

  clearLine(dir: -1 | 0 | 1, callback?: () => void): boolean {
    return clearLine(this, dir, callback);
  }
}

/** The client's stdin: nothing is asked of the client until the exec iterates it. */
export class FrameStdin implements AsyncIterable<Buffer> {
  private readonly chunks: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private requested = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly conn: Socket,
    readonly isTTY: boolean,
  ) {}

  /** A stdin frame arrived. */
  push(chunk: Buffer): void {
    if (this.ended) return;
    // The frame is a view of the connection's read buffer: keep a copy of our own.
    this.chunks.push(Buffer.from(chunk));
    this.queued += chunk.length;
    if (this.queued > STDIN_HIGH_WATER) this.conn.pause();
    this.notify();
  }

  /** The client's stdin ended, or the client went away. */
  end(): void {
    this.ended = true;
    this.notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (!this.requested) {
      this.requested = true;
      this.conn.write(frame(Frame.readStdin));
    }
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        this.queued -= chunk.length;
        if (this.queued <= STDIN_HIGH_WATER) this.conn.resume();
        yield chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
