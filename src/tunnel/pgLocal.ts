// The little PostgreSQL the CLI itself must speak on the local hop, before a tunnel exists:
// answer SSLRequest/GSSENCRequest with 'N', read the StartupMessage (so a refusal can be told
// to the client as an ErrorResponse rather than a dropped socket), and optionally ask for the
// one-time local password. Everything else is the gateway's engine's job.
import { timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** A startup packet is small; anything larger is not a PostgreSQL client. */
const MAX_STARTUP = 10_000;

export interface LocalStartup {
  kind: 'startup' | 'cancel';
  /** The exact bytes to replay into the tunnel. */
  bytes: Buffer;
  params: Record<string, string>;
}

/** Reads from `socket` until a StartupMessage or CancelRequest has arrived. */
export async function readLocalStartup(socket: Socket): Promise<LocalStartup> {
  let buf = Buffer.alloc(0);
  for (;;) {
    const chunk = await nextChunk(socket);
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 8) {
      const len = buf.readInt32BE(0);
      if (len < 8 || len > MAX_STARTUP) throw new Error('invalid startup packet length');
      if (buf.length < len) break;
      const code = buf.readInt32BE(4);
      const packet = buf.subarray(0, len);
      buf = buf.subarray(len);
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        socket.write('N');
        continue;
      }
      if (buf.length > 0) throw new Error('unexpected bytes after the startup packet');
      if (code === CANCEL_REQUEST) return { kind: 'cancel', bytes: Buffer.from(packet), params: {} };
      return { kind: 'startup', bytes: Buffer.from(packet), params: parseParams(packet.subarray(8)) };
    }
  }
}

/** Asks for a cleartext password (AuthenticationCleartextPassword) and checks it. */
export async function checkLocalPassword(socket: Socket, expected: string): Promise<boolean> {
  socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]));
  let buf = Buffer.alloc(0);
  while (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) {
    buf = Buffer.concat([buf, await nextChunk(socket)]);
    if (buf.length >= 5 && (buf[0] !== 0x70 || buf.readInt32BE(1) > MAX_STARTUP)) return false;
  }
  const len = buf.readInt32BE(1);
  const given = Buffer.from(buf.subarray(5, 1 + len).toString('utf8').replace(/\0$/, ''));
  const want = Buffer.from(expected);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** An ErrorResponse (FATAL) with a real SQLSTATE, then the socket is ended. */
export function sendFatal(socket: Socket, sqlstate: string, message: string): void {
  const fields = [`SFATAL`, `VFATAL`, `C${sqlstate}`, `M${message}`].map((f) => Buffer.from(f + '\0', 'utf8'));
  const body = Buffer.concat([...fields, Buffer.from([0])]);
  const head = Buffer.alloc(5);
  head[0] = 0x45;
  head.writeInt32BE(body.length + 4, 1);
  socket.end(Buffer.concat([head, body]));
}

function parseParams(body: Buffer): Record<string, string> {
  const parts = body.toString('utf8').split('\0');
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < parts.length && parts[i] !== ''; i += 2) out[parts[i] as string] = parts[i + 1] as string;
  return out;
}

function nextChunk(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      cleanup();
      resolve(d);
    };
    const onEnd = () => {
      cleanup();
      reject(new Error('the client closed the connection'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      socket.pause();
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    socket.resume();
  });
}
