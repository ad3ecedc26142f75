// Opens one tunnel stream: an HTTP/1.1 Upgrade to `sluice-tunnel/1` on the gateway. After 101
// the socket is a raw byte pipe to the engine. undici's Client.upgrade() hides the status and
// body of a refusal, so this dispatches by hand to surface the gateway's JSON error.
import type { Duplex } from 'node:stream';
import { errorFromResponse, describeNetworkError } from '../api/client.js';
import { paths, PURPOSE_HEADER, SESSION_HEADER, TUNNEL_PROTOCOL } from '../api/contract.js';
import type { Endpoint } from '../api/endpoint.js';
import { CliError } from '../errors.js';

export interface Tunnel {
  socket: Duplex;
  sessionId: string;
}

/**
 * `purpose: 'cancel'` says the stream will carry only a CancelRequest: the gateway lets such a
 * tunnel past the caller's session limit (a full pool must still be able to cancel) and refuses
 * anything else on it.
 */
export async function dialTunnel(
  endpoint: Endpoint,
  connection: string,
  token: string,
  origin: 'connect' | 'exec' = 'connect',
  purpose: 'session' | 'cancel' = 'session',
  extraHeaders: Readonly<Record<string, string>> = {},
): Promise<Tunnel> {
  const url = new URL(endpoint.url + paths.tunnel(connection));
  const dispatcher = await endpoint.dispatcher();
  return new Promise<Tunnel>((resolve, reject) => {
    let status = 0;
    const chunks: Buffer[] = [];
    dispatcher.dispatch(
      {
        origin: url.origin,
        path: url.pathname,
        method: 'GET',
        upgrade: TUNNEL_PROTOCOL,
        headers: { authorization: `Bearer ${token}`, 'sluice-origin': origin, ...(purpose === 'cancel' ? { [PURPOSE_HEADER]: 'cancel' } : {}), ...extraHeaders },
      },
      {
        // undici treats a handler as the new (controller) kind only when this method exists.
        onRequestStart() {},
        onRequestUpgrade(_controller, _statusCode, headers, socket) {
          const id = headers[SESSION_HEADER];
          resolve({ socket, sessionId: Array.isArray(id) ? (id[0] ?? '') : (id ?? '') });
        },
        onResponseStart(_controller, statusCode) {
          status = statusCode;
        },
        onResponseData(_controller, chunk) {
          chunks.push(chunk);
        },
        onResponseEnd() {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          reject(errorFromResponse(status, body));
        },
        onResponseError(_controller, err) {
          reject(err instanceof CliError ? err : new CliError(describeNetworkError(endpoint, err)));
        },
      },
    );
  });
}
