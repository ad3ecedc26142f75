// The little PostgreSQL the CLI itself must speak on the local hop, before a tunnel exists:
// answer SSLRequest (with 'S' and TLS when the CLI has its local certificate, else 'N') and
// GSSENCRequest ('N'), accept PostgreSQL 17's direct TLS (ALPN `postgresql`), read the
// StartupMessage (so a refusal can be told to the client as an ErrorResponse rather than a
// dropped socket), and optionally ask for the one-time local password. Everything else is the
// gateway's engine's job.
import { timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** A startup packet is small; anything larger is not a PostgreSQL client. */
const MAX_STARTUP = 10_000;
/** The first byte of a TLS handshake record: a client doing PostgreSQL 17's direct TLS. */
const TLS_HANDSHAKE = 0x16;
/** The ALPN protocol PostgreSQL registers; direct TLS without it is refused, as PostgreSQL does. */
const ALPN = 'postgresql';

export interface LocalStartup {
  kind: 'startup' | 'cancel';
  /** The exact bytes to replay into the tunnel. */
  bytes: Buffer;
  params: Record<string, string>;
  /** Where the conversation continues: the accepted socket, or the TLS socket over it. */
  socket: Socket;
}

/**
 * Reads from `socket` until a StartupMessage or CancelRequest has arrived. With `tls`, a client's
 * SSLRequest is answered 'S' and direct TLS is accepted; the rest is read over TLS.
 */
export async function readLocalStartup(socket: Socket, tls?: SecureContext): Promise<LocalStartup> {
  let current = socket;
  let secure = false;
  let buf = Buffer.alloc(0);
  for (;;) {
    const chunk = await nextChunk(current);
    if (tls !== undefined && !secure && buf.length === 0 && chunk[0] === TLS_HANDSHAKE) {
      current.unshift(chunk);
      current = await startTls(current, tls, true);
      secure = true;
      continue;
    }
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 8) {
      const len = buf.readInt32BE(0);
      if (len < 8 || len > MAX_STARTUP) throw new Error('invalid startup packet length');
      if (buf.length < len) break;
      const code = buf.readInt32BE(4);
      const packet = buf.subarray(0, len);
      buf = buf.subarray(len);
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        if (secure) throw new Error('an encryption request inside TLS');
        if (code === SSL_REQUEST && tls !== undefined) {
          // Bytes sent before the handshake would be read as if they had come over TLS
          // (CVE-2021-23214): PostgreSQL refuses them, and so does this.
          if (buf.length > 0) throw new Error('unexpected bytes after SSLRequest');
          current.write('S');
          current = await startTls(current, tls, false);
          secure = true;
          continue;
        }
        current.write('N');
        continue;
      }
      if (buf.length > 0) throw new Error('unexpected bytes after the startup packet');
      if (code === CANCEL_REQUEST) return { kind: 'cancel', bytes: Buffer.from(packet), params: {}, socket: current };
      return { kind: 'startup', bytes: Buffer.from(packet), params: parseParams(packet.subarray(8)), socket: current };
    }
  }
}

/** Runs the server side of a TLS handshake over `socket`; direct TLS must name ALPN `postgresql`. */
function startTls(socket: Socket, context: SecureContext, direct: boolean): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = new TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: [ALPN] });
    // Whoever holds the accepted socket (the listener's close, the startup timer) ends both.
    socket.once('close', () => secure.destroy());
    const fail = (err: Error) => {
      secure.destroy();
      reject(err);
    };
    const closed = () => fail(new Error('the client closed the connection during the TLS handshake'));
    secure.once('error', fail);
    secure.once('close', closed);
    secure.once('secure', () => {
      secure.off('error', fail);
      secure.off('close', closed);
      // Until the relay takes over: a late TLS error must not go unhandled.
      secure.on('error', () => secure.destroy());
      if (direct && secure.alpnProtocol !== ALPN) return fail(new Error(`direct TLS without ALPN "${ALPN}"`));
      resolve(secure);
    });
  });
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
