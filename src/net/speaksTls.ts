// Whether a server answers TLS on a port. Used only to explain a failure: a plain-http request to
// a TLS gateway ends with the server hanging up (Node's TLS server drops a clear-text request
// without a word; undici reports UND_ERR_SOCKET "other side closed"), which says nothing by
// itself. A handshake that completes proves the fix is `https://`. The probe sends no request and
// no token, and it does not verify the certificate: it asks only "is this TLS?".
import { connect } from 'node:tls';

export function speaksTls(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, rejectUnauthorized: false, ...(/^[\d.:[\]]+$/.test(host) ? {} : { servername: host }) });
    const done = (yes: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(yes);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
  });
}
