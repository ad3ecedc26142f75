// Watches an sftp stream as it passes (it is relayed unchanged) and records the file operations:
// open with path, flags and the bytes read and written through the handle (at close), remove,
// rename, mkdir and rmdir with their paths (`ssh.sftp` events). Packets are framed incrementally
// with a cap on the declared length; a malformed stream stops the recording, never the relay.
import type { SshAudit } from './recorder.js';

/** SSH_FXP_* packet types (draft-ietf-secsh-filexfer-02) this tap reads. */
enum Fxp {
  OPEN = 3,
  CLOSE = 4,
  READ = 5,
  WRITE = 6,
  REMOVE = 13,
  MKDIR = 14,
  RMDIR = 15,
  RENAME = 18,
  HANDLE = 102,
  DATA = 103,
}

/** Larger than any packet OpenSSH sends (256 KiB); a longer declared length stops the tap. */
const MAX_PACKET = 1024 * 1024;

interface OpenFile {
  path: string;
  flags: number;
  read: number;
  written: number;
}

/**
 * The body bytes (after the type) the tap reads of a WRITE or DATA packet: its header, never the
 * file data, which is skipped rather than buffered (a WRITE's handle is at most 256 bytes, RFC
 * draft-ietf-secsh-filexfer-02 §3; a longer one stops the tap).
 */
const WRITE_HEAD = 4 + 4 + 256 + 8 + 4;
const DATA_HEAD = 4 + 4;

const EMPTY = Buffer.alloc(0);

/** Frames packets incrementally; file data passes through without being copied or kept. */
class Framer {
  private buf: Buffer = EMPTY;
  /** Bytes of the current packet still to pass over (its file data). */
  private skip = 0;
  broken = false;
  constructor(
    private readonly onPacket: (type: number, body: Buffer) => void,
    private readonly headOf: (type: number) => number | undefined,
  ) {}
  push(chunk: Buffer): void {
    if (this.broken) return;
    if (this.skip > 0) {
      if (chunk.length <= this.skip) {
        this.skip -= chunk.length;
        return;
      }
      chunk = chunk.subarray(this.skip);
      this.skip = 0;
    }
    // A partial packet header waits for the next chunk: join it with that chunk's start only, so a
    // packet straddling two chunks does not copy the second one whole.
    if (this.buf.length > 0 && chunk.length > 2 * WRITE_HEAD) {
      this.push(chunk.subarray(0, WRITE_HEAD));
      this.push(chunk.subarray(WRITE_HEAD));
      return;
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let off = 0;
    while (this.buf.length - off >= 5) {
      const len = this.buf.readUInt32BE(off);
      if (len < 1 || len > MAX_PACKET) {
        this.broken = true;
        return;
      }
      const type = this.buf[off + 4] as number;
      const need = Math.min(len - 1, this.headOf(type) ?? len - 1);
      if (this.buf.length - off < 5 + need) break;
      this.onPacket(type, this.buf.subarray(off + 5, off + 5 + need));
      const have = this.buf.length - off;
      if (have < 4 + len) {
        this.skip = 4 + len - have;
        off = this.buf.length;
        break;
      }
      off += 4 + len;
    }
    this.buf = off === this.buf.length ? EMPTY : Buffer.from(this.buf.subarray(off));
  }
}

/** An SSH string at `off`; a length past the packet's end throws (the tap then stops). */
function str(b: Buffer, off: number): [Buffer, number] {
  const len = b.readUInt32BE(off);
  if (off + 4 + len > b.length) throw new RangeError('sftp string runs past its packet');
  return [b.subarray(off + 4, off + 4 + len), off + 4 + len];
}

export function tapSftp(audit: SshAudit, action: number): { fromClient(d: Buffer): void; fromServer(d: Buffer): void; end(): void } {
  const pendingOpen = new Map<number, { path: string; flags: number }>();
  const pendingRead = new Map<number, string>();
  const handles = new Map<string, OpenFile>();
  const event = (data: Record<string, unknown>) => audit.onEvent('ssh.sftp', { action, ...data });
  const closeFile = (h: string) => {
    const f = handles.get(h);
    if (!f) return;
    handles.delete(h);
    event({ op: 'open', path: f.path, flags: f.flags, read: f.read, written: f.written });
  };
  const client = new Framer((type, body) => {
    try {
      const id = body.readUInt32BE(0);
      if (type === Fxp.OPEN) {
        const [path, off] = str(body, 4);
        pendingOpen.set(id, { path: path.toString('utf8'), flags: body.readUInt32BE(off) });
      } else if (type === Fxp.CLOSE) closeFile(str(body, 4)[0].toString('hex'));
      else if (type === Fxp.READ) pendingRead.set(id, str(body, 4)[0].toString('hex'));
      else if (type === Fxp.WRITE) {
        const [h, off] = str(body, 4);
        const f = handles.get(h.toString('hex'));
        if (f) f.written += body.readUInt32BE(off + 8);
      } else if (type === Fxp.REMOVE || type === Fxp.MKDIR || type === Fxp.RMDIR) {
        event({ op: type === Fxp.REMOVE ? 'remove' : type === Fxp.MKDIR ? 'mkdir' : 'rmdir', path: str(body, 4)[0].toString('utf8') });
      } else if (type === Fxp.RENAME) {
        const [from, off] = str(body, 4);
        event({ op: 'rename', path: from.toString('utf8'), to: str(body, off)[0].toString('utf8') });
      }
    } catch {
      client.broken = true;
    }
  }, (type) => (type === Fxp.WRITE ? WRITE_HEAD : undefined));
  const server = new Framer((type, body) => {
    try {
      const id = body.readUInt32BE(0);
      if (type === Fxp.HANDLE) {
        const open = pendingOpen.get(id);
        pendingOpen.delete(id);
        if (open) handles.set(str(body, 4)[0].toString('hex'), { ...open, read: 0, written: 0 });
      } else if (type === Fxp.DATA) {
        const h = pendingRead.get(id);
        pendingRead.delete(id);
        const f = h === undefined ? undefined : handles.get(h);
        if (f) f.read += body.readUInt32BE(4);
      } else {
        pendingOpen.delete(id);
        pendingRead.delete(id);
      }
    } catch {
      server.broken = true;
    }
  }, (type) => (type === Fxp.DATA ? DATA_HEAD : undefined));
  return {
    fromClient: (d) => client.push(d),
    fromServer: (d) => server.push(d),
    end: () => {
      for (const h of [...handles.keys()]) closeFile(h);
    },
  };
}
