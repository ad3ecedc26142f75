// The gateway's own connection to a PostgreSQL target: TCP, TLS per sslmode, a StartupMessage
// the gateway composes, login with the credential the gateway holds (SCRAM-SHA-256 with the
// server's signature checked, MD5 or cleartext), then ParameterStatus and BackendKeyData until
// ReadyForQuery. Every failure becomes an UpstreamError whose SQLSTATE and message are fit to
// send to the client as they are: they name the connection and never contain the password.
import { createHash } from 'node:crypto';
import { isIP, Socket, connect as connectTcp } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { PostgresTarget } from '../../model.js';
import { decodeAuthentication, decodeBackendKeyData, decodeErrorFields, decodeParameterStatus, decodeReadyForQuery } from './codec/backend.js';
import type { TransactionStatus } from './codec/backend.js';
import { createBackendFramer, describeType } from './codec/framer.js';
import {
  encodeCancelRequest,
  encodePasswordMessage,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeSSLRequest,
  encodeStartupMessage,
} from './codec/frontend.js';
import { PgProtocolError } from './codec/wire.js';
import { createScramClient, ScramError } from './scram.js';
import type { ScramClient } from './scram.js';

/** What went wrong, for callers and tests; `sqlstate` is what the client is told. */
export type UpstreamErrorCode =
  /** Refused, unreachable, reset, timed out or closed before ReadyForQuery (08006). */
  | 'unreachable'
  /** TLS was required but refused, or the certificate did not verify (08006). */
  | 'tls'
  /** The target rejected the gateway's credential (28P01). */
  | 'credential-rejected'
  /** The target asked for an authentication method the gateway does not implement (28000). */
  | 'auth-unsupported'
  /** The target could not prove it knows the password (SCRAM signature) or broke the protocol (08006). */
  | 'target-misbehaved'
  /** The target answered the startup with an error of its own; its SQLSTATE is kept. */
  | 'refused'
  /** The gateway is shutting down (57P01). */
  | 'aborted';

/** A failure to open or authenticate the upstream connection. Safe to show and to log. */
export class UpstreamError extends Error {
  constructor(
    readonly code: UpstreamErrorCode,
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/** What `connectUpstream` needs; the password travels only inside `target`. */
export interface UpstreamOptions {
  /** The connection's name, used in every error message. */
  readonly connectionName: string;
  readonly target: PostgresTarget;
  /** The database to open: `target.database` or one of the connection's other databases. */
  readonly database: string;
  /** Startup parameters besides user and database (application_name, client_encoding, …). */
  readonly parameters: Iterable<readonly [string, string]>;
  /** Budget for TCP connect, TLS, authentication and startup together. */
  readonly timeoutMs: number;
  /** Aborts the attempt (gateway shutdown). */
  readonly signal?: AbortSignal;
}

/** An authenticated upstream connection, paused, ready for the relay to take over. */
export interface UpstreamConnection {
  /** The TCP or TLS socket; paused, with no listeners of ours left on it except 'error'. */
  readonly socket: Socket;
  /** ParameterStatus and NoticeResponse frames of the startup, in order, to replay to the client. */
  readonly startupFrames: readonly Buffer[];
  readonly parameters: ReadonlyMap<string, string>;
  /** The target's cancel key; absent if it sent none (some poolers do not). */
  readonly backendKey?: { readonly pid: number; readonly secret: number };
  readonly transactionStatus: TransactionStatus;
  /** Bytes that arrived after ReadyForQuery (normally none); relay them before anything else. */
  readonly pending: Buffer;
}

/** The target only sends small messages before ReadyForQuery; a megabyte is generous. */
const STARTUP_MESSAGE_CAP = 1024 * 1024;

/**
 * Opens and authenticates a connection to the target as the gateway's own user.
 * @throws UpstreamError, and nothing else.
 */
export async function connectUpstream(opts: UpstreamOptions): Promise<UpstreamConnection> {
  const signal = deadline(opts.timeoutMs, opts.signal);
  const socket = await openTransport(opts.connectionName, opts.target, signal);
  try {
    return await startup(socket, opts, signal);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/**
 * Sends a CancelRequest for the target's backend (pid, secret) on a new connection, with TLS as
 * the target's sslmode says, and waits until the target closes it.
 * @throws UpstreamError when the target cannot be reached.
 */
export async function cancelUpstream(opts: {
  readonly connectionName: string;
  readonly target: PostgresTarget;
  readonly pid: number;
  readonly secret: number;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}): Promise<void> {
  const signal = deadline(opts.timeoutMs, opts.signal);
  const socket = await openTransport(opts.connectionName, opts.target, signal);
  try {
    socket.write(encodeCancelRequest(opts.pid, opts.secret));
    // The server acts on the request and closes without a reply; wait for that (or the deadline).
    await step<void>(socket, opts.connectionName, signal, (resolve) => {
      socket.on('end', resolve);
      socket.resume();
      return () => socket.off('end', resolve);
    }, true);
  } finally {
    socket.destroy();
  }
}

function ignore(): void {}

function deadline(timeoutMs: number, outer?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return outer ? AbortSignal.any([timeout, outer]) : timeout;
}

async function openTransport(name: string, target: PostgresTarget, signal: AbortSignal): Promise<Socket> {
  const raw = connectTcp({ host: target.host, port: target.port, noDelay: true });
  // A socket error with no listener would crash the process; each step and later the relay add
  // their own listener, this one covers the gaps between them.
  raw.on('error', ignore);
  try {
    await step<void>(raw, name, signal, (resolve) => {
      raw.once('connect', resolve);
      return () => raw.off('connect', resolve);
    });
    if (target.sslmode === 'disable') return raw;
    raw.write(encodeSSLRequest());
    const answer = await step<Buffer>(raw, name, signal, (resolve) => {
      const onData = (chunk: Buffer) => {
        raw.pause(); // nothing may be read in clear past this byte
        resolve(chunk);
      };
      raw.once('data', onData);
      return () => raw.off('data', onData);
    });
    // Exactly one byte: anything after it would be cleartext injected ahead of the TLS handshake
    // (CVE-2021-23222), so it is refused rather than read.
    if (answer.length !== 1 || (answer[0] !== 0x53 && answer[0] !== 0x4e)) {
      throw new UpstreamError('target-misbehaved', '08006', `the target of connection ${name} sent an invalid answer to SSLRequest`);
    }
    if (answer[0] === 0x4e) {
      throw new UpstreamError('tls', '08006', `cannot reach the target of connection ${name}: it does not accept TLS (sslmode ${target.sslmode})`);
    }
    const verify = target.sslmode === 'verify-full';
    const secure = connectTls({
      socket: raw,
      host: target.host,
      ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
      rejectUnauthorized: verify,
      ...(verify && target.ca !== undefined ? { ca: target.ca } : {}),
    });
    secure.on('error', ignore);
    secure.setNoDelay(true);
    await step<void>(secure, name, signal, (resolve) => {
      secure.once('secureConnect', resolve);
      return () => secure.off('secureConnect', resolve);
    });
    return secure;
  } catch (err) {
    raw.destroy();
    throw err;
  }
}

/**
 * Waits for one step of the exchange: `setup` arms the success path and returns its cleanup;
 * socket errors, an early close and the deadline reject with an UpstreamError. With `closeIsOk`
 * a close (after a cancel) counts as success.
 */
function step<T>(
  socket: Socket,
  name: string,
  signal: AbortSignal,
  setup: (resolve: (value: T) => void, reject: (err: unknown) => void) => () => void,
  closeIsOk = false,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let disarm = (): void => undefined;
    const done = (fn: () => void) => {
      disarm();
      socket.off('error', onError);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    const onError = (err: Error) => done(() => reject(socketError(name, err)));
    const onClose = () =>
      done(() => (closeIsOk ? resolve(undefined as T) : reject(unreachable(name, 'the target closed the connection during startup'))));
    const onAbort = () => {
      socket.destroy();
      done(() => reject(abortError(name, signal)));
    };
    if (signal.aborted) return onAbort();
    socket.on('error', onError);
    socket.on('close', onClose);
    signal.addEventListener('abort', onAbort);
    disarm = setup(
      (value) => done(() => resolve(value)),
      (err) => done(() => reject(err)),
    );
  });
}

function startup(socket: Socket, opts: UpstreamOptions, signal: AbortSignal): Promise<UpstreamConnection> {
  const { target, connectionName: name } = opts;
  const framer = createBackendFramer(STARTUP_MESSAGE_CAP);
  const startupFrames: Buffer[] = [];
  const parameters = new Map<string, string>();
  let backendKey: { pid: number; secret: number } | undefined;
  let scram: ScramClient | undefined;
  let scramVerified = false;
  let authenticated = false;

  const broke = (what: string) => new UpstreamError('target-misbehaved', '08006', `the target of connection ${name} broke the protocol: ${what}`);

  /** Handles one frame; returns the connection once ReadyForQuery arrives. */
  const onFrame = (type: number, body: Buffer): UpstreamConnection | undefined => {
    switch (type) {
      case 0x52 /* R */: {
        if (authenticated) throw broke('authentication request after AuthenticationOk');
        const req = decodeAuthentication(body);
        switch (req.kind) {
          case 'ok':
            // A server that skips SASLFinal never proved it knows the password (libpq refuses too).
            if (scram && !scramVerified) throw broke('AuthenticationOk before the SCRAM exchange finished');
            authenticated = true;
            return undefined;
          case 'cleartext':
            if (scram) throw broke('password request during a SCRAM exchange');
            socket.write(encodePasswordMessage(target.password));
            return undefined;
          case 'md5':
            if (scram) throw broke('password request during a SCRAM exchange');
            socket.write(encodePasswordMessage(md5Password(target.user, target.password, req.salt)));
            return undefined;
          case 'sasl':
            if (scram) throw broke('a second SASL request');
            if (!req.mechanisms.includes('SCRAM-SHA-256')) {
              throw authUnsupported(name, `SASL ${req.mechanisms.join(', ') || '(none offered)'}`);
            }
            scram = createScramClient(target.password);
            socket.write(encodeSASLInitialResponse('SCRAM-SHA-256', scram.clientFirstMessage()));
            return undefined;
          case 'sasl-continue':
            if (!scram || scramVerified) throw broke('SASLContinue outside a SCRAM exchange');
            socket.write(encodeSASLResponse(scram.handleServerFirst(req.data.toString('utf8'))));
            return undefined;
          case 'sasl-final':
            if (!scram || scramVerified) throw broke('SASLFinal outside a SCRAM exchange');
            scram.verifyServerFinal(req.data.toString('utf8'));
            scramVerified = true;
            return undefined;
          case 'unsupported':
            throw authUnsupported(name, req.method);
        }
        break;
      }
      case 0x45 /* E */: {
        const e = decodeErrorFields(body);
        // Class 28 is invalid_authorization_specification: wrong password, pg_hba rejection, …
        if (!authenticated && e.code.startsWith('28')) {
          throw new UpstreamError('credential-rejected', '28P01', `the gateway's credential for ${name} was rejected`);
        }
        const sqlstate = /^[0-9A-Z]{5}$/.test(e.code) ? e.code : '08006';
        throw new UpstreamError('refused', sqlstate, `the target of connection ${name} refused the session: ${e.message}`);
      }
      case 0x53 /* S */: {
        if (!authenticated) throw broke('ParameterStatus before authentication');
        const p = decodeParameterStatus(body);
        parameters.set(p.name, p.value);
        startupFrames.push(Buffer.from(framer.frame));
        return undefined;
      }
      case 0x4e /* N */:
        startupFrames.push(Buffer.from(framer.frame));
        return undefined;
      case 0x4b /* K */:
        backendKey = decodeBackendKeyData(body);
        return undefined;
      case 0x76 /* v: NegotiateProtocolVersion; the gateway asks for 3.0 and no options */:
        return undefined;
      case 0x5a /* Z */: {
        if (!authenticated) throw broke('ReadyForQuery before authentication');
        const transactionStatus = decodeReadyForQuery(body);
        return { socket, startupFrames, parameters, ...(backendKey ? { backendKey } : {}), transactionStatus, pending: framer.takeRest() };
      }
    }
    throw broke(`unexpected message ${describeType(type)} during startup`);
  };

  return step<UpstreamConnection>(socket, name, signal, (resolve, reject) => {
    const onData = (chunk: Buffer) => {
      try {
        framer.push(chunk);
        while (framer.next()) {
          const ready = onFrame(framer.type, framer.body);
          if (ready) {
            socket.pause();
            return resolve(ready);
          }
        }
      } catch (err) {
        reject(translate(name, err));
      }
    };
    socket.on('data', onData);
    socket.write(encodeStartupMessage([['user', target.user], ['database', opts.database], ...opts.parameters]));
    return () => socket.off('data', onData);
  });
}

/** PostgreSQL's MD5 scheme: "md5" + md5hex(md5hex(password + user) + salt). */
function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user, 'utf8').digest('hex');
  return `md5${createHash('md5').update(inner, 'utf8').update(salt).digest('hex')}`;
}

function translate(name: string, err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof ScramError) {
    // ScramError messages never hold the password (scram.ts guarantees it), and a bad signature
    // means whoever answered does not know the password: possibly not the real server.
    return new UpstreamError('target-misbehaved', '08006', `the target of connection ${name} failed SCRAM authentication: ${err.message}`);
  }
  if (err instanceof PgProtocolError) {
    return new UpstreamError('target-misbehaved', '08006', `the target of connection ${name} broke the protocol: ${err.message}`);
  }
  return new UpstreamError('target-misbehaved', '08006', `the target of connection ${name} could not be used: ${String(err)}`);
}

function authUnsupported(name: string, method: string): UpstreamError {
  return new UpstreamError('auth-unsupported', '28000', `the target of connection ${name} asks for ${method} authentication, which the gateway does not support`);
}

function unreachable(name: string, why: string): UpstreamError {
  return new UpstreamError('unreachable', '08006', `cannot reach the target of connection ${name}: ${why}`);
}

function abortError(name: string, signal: AbortSignal): UpstreamError {
  const reason: unknown = signal.reason;
  if (reason instanceof DOMException && reason.name === 'TimeoutError') return unreachable(name, 'timed out');
  return new UpstreamError('aborted', '57P01', 'the gateway is shutting down');
}

const SOCKET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

function socketError(name: string, err: Error): UpstreamError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const known = SOCKET_ERRORS[code];
  if (known) return unreachable(name, known);
  // OpenSSL verification codes (CERT_HAS_EXPIRED, …) and Node's hostname check; their messages
  // describe the certificate, not anything secret.
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO|ALTNAME/.test(code)) {
    return new UpstreamError('tls', '08006', `cannot reach the target of connection ${name}: its TLS certificate was not accepted: ${err.message}`);
  }
  return unreachable(name, code || 'connection failed');
}
