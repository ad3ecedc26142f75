// Two in-memory Duplex streams joined back to back: what one side writes, the other reads. The
// exec endpoint hands one side to the PostgreSQL engine as if it were a tunnelled client socket
// and speaks the frontend protocol on the other. Node 20 has no `stream.duplexPair` (added in 22),
// so this is ours. Backpressure is end to end: a write is acknowledged only once the reading side
// has room (its push() returned true, or it asked for more with _read), so a reader that stops
// reading stops the writer, and through the engine, the target.
import { Duplex } from 'node:stream';

type WriteCallback = (err?: Error | null) => void;

class DuplexSide extends Duplex {
  peer: DuplexSide | undefined;
  /** The peer's write waiting for this side's reader to want more. */
  private waitingWrite: WriteCallback | undefined;

  constructor(highWaterMark: number) {
    // A socket closes its writable half when the peer ends (allowHalfOpen false), and the engine
    // is written against sockets.
    super({ allowHalfOpen: false, highWaterMark });
  }

  override _read(): void {
    const cb = this.waitingWrite;
    this.waitingWrite = undefined;
    cb?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: WriteCallback): void {
    const peer = this.peer;
    if (peer === undefined || peer.destroyed || peer.readableEnded) {
      cb(new Error('the other side of the in-memory stream is closed'));
      return;
    }
    if (chunk.length === 0) {
      cb();
      return;
    }
    // Set before push(): a reader in flowing mode may call _read from inside it.
    peer.waitingWrite = cb;
    if (peer.push(chunk) && peer.waitingWrite === cb) {
      peer.waitingWrite = undefined;
      cb();
    }
  }

  override _final(cb: WriteCallback): void {
    const peer = this.peer;
    if (peer !== undefined && !peer.destroyed) peer.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: WriteCallback): void {
    const waiting = this.waitingWrite;
    this.waitingWrite = undefined;
    // A destroyed side is a reset connection: the peer closes too (without an error of its own,
    // as a socket sees the end of a connection the other side dropped).
    const peer = this.peer;
    if (peer !== undefined && !peer.destroyed) peer.destroy();
    waiting?.(new Error('the in-memory stream was destroyed'));
    cb(err);
  }
}

/**
 * Returns two connected Duplex streams. Each buffers at most about `highWaterMark` bytes of what
 * the other wrote before the writer's callbacks (and `write()`'s return value) signal backpressure.
 * Ending one side ends the other's readable; destroying one side destroys the other.
 */
export function duplexPair(highWaterMark = 64 * 1024): [Duplex, Duplex] {
  const a = new DuplexSide(highWaterMark);
  const b = new DuplexSide(highWaterMark);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
