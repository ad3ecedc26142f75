// Reading a plaintext target socket into one reused buffer (net.Socket `onread`) instead of a
// new one per read: Node otherwise allocates 64 KiB, shrinks it and wraps it in a new Buffer for
// every read, which at a round trip per statement is an allocation and garbage per statement.
//
// Until the session takes the reads over, each read is pushed as a copy, so the socket behaves as
// an ordinary one ('data' events, pause and resume, buffering while nobody listens): the login
// and a CancelRequest's connection need nothing of this. Once taken, the session's sink receives
// a view of the shared buffer that is valid only during the call; the sink answers whether
// anything may still refer to those bytes after it returned (a write that did not complete at
// once, a message the relay holds across reads), and then the next read goes to a fresh buffer,
// so bytes something still refers to are never overwritten.
import { connect as connectTcp, type Socket } from 'node:net';

/** A read fills at most this much (what Node itself offers a read of a TCP socket). */
const READ_BUFFER_BYTES = 64 * 1024;

/** Receives a read; returns true when something may still refer to `view` after the call. */
export type ReadSink = (view: Buffer) => boolean;

export class UpstreamReads {
  private buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  private sink: ReadSink | undefined;
  /** Reads that had to leave their buffer to a later reader (a fresh buffer was taken after each). */
  retained = 0;

  private socket!: Socket;

  private constructor() {}

  /** A TCP connection whose reads go through an UpstreamReads. */
  static connect(host: string, port: number): { socket: Socket; reads: UpstreamReads } {
    const reads = new UpstreamReads();
    const socket = (reads.socket = connectTcp({ host, port, noDelay: true, onread: { buffer: () => reads.buffer, callback: (n, buf) => reads.onRead(n, buf as Buffer) } }));
    return { socket, reads };
  }

  /**
   * Delivers every later read to `sink` instead of as 'data'. Refused (false) while copies the
   * socket pushed are still unread: they must come first, and only the stream can deliver them.
   */
  take(sink: ReadSink): boolean {
    if (this.socket.readableLength > 0) return false;
    this.sink = sink;
    return true;
  }

  /** Always true: `false` would pause the socket, and pausing is the reader's to do (socket.pause()). */
  private onRead(n: number, buf: Buffer): true {
    const view = buf.subarray(0, n);
    const sink = this.sink;
    if (sink === undefined) {
      this.socket.push(Buffer.from(view));
      return true;
    }
    if (sink(view)) {
      this.retained++;
      this.buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    }
    return true;
  }
}
