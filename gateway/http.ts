// Small HTTP helpers shared by the API routes and the tunnel upgrade path: JSON replies and
// errors in the contract's `{ error: { code, message } }` shape, on a response or a raw socket.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ErrorCode } from '../src/api/contract.js';
import { AuthError, type Authenticator } from './auth/authenticate.js';
import type { Identity } from './model.js';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  sendJson(res, status, { error: { code, message } }, status === 401 ? { 'www-authenticate': 'Bearer' } : {});
}

/** Refuses an upgrade request on the raw socket (no ServerResponse exists for upgrades). */
export function refuseUpgrade(socket: Duplex, status: number, code: ErrorCode, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'content-type: application/json\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      (status === 401 ? 'www-authenticate: Bearer\r\n' : '') +
      'connection: close\r\n\r\n' +
      body,
  );
}

/**
 * Who is calling, or undefined once the refusal (401, the AuthError's code and message) has been
 * sent. Anything but an AuthError is thrown on: that is a bug, not a refusal.
 */
export async function authenticateOrRefuse(authenticate: Authenticator, req: IncomingMessage, res: ServerResponse, log?: Logger): Promise<Identity | undefined> {
  try {
    return await authenticate(req.headers.authorization);
  } catch (err) {
    if (!(err instanceof AuthError)) throw err;
    log?.info({ code: err.code }, 'refused: %s', err.message);
    sendError(res, err.status, err.code, err.message);
    return undefined;
  }
}
