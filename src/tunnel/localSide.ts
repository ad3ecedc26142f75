// What the CLI does on the local hop of `sluice connect` before a tunnel exists, chosen by the
// connection's type: PostgreSQL reads the client's startup packet first (to answer SSLRequest, to
// ask for the local password, and to report a refusal as an ErrorResponse the client shows);
// a protocol without such a step (ssh: its own handshake runs end to end through the tunnel, and
// the gateway's ssh server asks for the local password, whose digest the tunnel request carries)
// is a plain byte relay. After this step, bytes are
// piped untouched either way.
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import { LOCAL_PASSWORD_HEADER } from '../api/contract.js';
import { AuthError, CliError, LimitError } from '../errors.js';
import { checkLocalPassword, readLocalStartup, sendFatal } from './pgLocal.js';

/** What the local step read: what to send first into the tunnel and which kind of tunnel to open. */
export interface LocalOpening {
  readonly purpose: 'session' | 'cancel';
  /** Bytes the local step consumed from the client, replayed into the tunnel before anything else. */
  readonly firstBytes: Buffer;
  /** Whether the client is waiting for a protocol answer, so a refusal can be told in its terms. */
  readonly answerable: boolean;
  /** Headers for the tunnel request (ssh: the local password's digest, for the gateway to check). */
  readonly headers?: Readonly<Record<string, string>>;
  /** The stream to relay when the local step replaced the accepted socket (TLS over it). */
  readonly client?: Socket;
}

export interface LocalSide {
  /** Whether the step reads from the client before dialing (and so is bound by the startup timeout). */
  readonly readsFirst: boolean;
  /**
   * Runs the protocol's local step on a freshly accepted client. Returns undefined when the client
   * was refused locally (and already told); throws when the client broke the protocol. `tls`: the
   * local certificate, for clients that ask for TLS on the local hop.
   */
  open(client: Socket, localPassword: string | undefined, tls?: SecureContext): Promise<LocalOpening | undefined>;
  /** Tells the client the tunnel could not be opened (`err`: what dialing threw), then ends it. */
  refuse(client: Socket, opening: LocalOpening, err: unknown, message: string): void;
}

const postgres: LocalSide = {
  readsFirst: true,
  async open(accepted, localPassword, tls) {
    const startup = await readLocalStartup(accepted, tls);
    const client = startup.socket;
    if (startup.kind === 'startup' && localPassword !== undefined && !(await checkLocalPassword(client, localPassword))) {
      sendFatal(client, '28P01', 'sluice connect: wrong local password (it was printed when `sluice connect` started)');
      return undefined;
    }
    return {
      purpose: startup.kind === 'cancel' ? 'cancel' : 'session',
      firstBytes: startup.bytes,
      answerable: startup.kind === 'startup',
      ...(client !== accepted ? { client } : {}),
    };
  },
  refuse(client, opening, err, message) {
    // 53300 is PostgreSQL's own "too many connections": drivers and poolers know to back off.
    const sqlstate = err instanceof AuthError ? '28000' : err instanceof LimitError ? '53300' : '08006';
    if (opening.answerable) sendFatal(client, sqlstate, `sluice: ${message}`);
    else client.destroy();
  },
};

const EMPTY = Buffer.alloc(0);

/** For protocols whose whole conversation, handshake included, is the gateway engine's. */
export const byteRelay: LocalSide = {
  readsFirst: false,
  open: () => Promise.resolve({ purpose: 'session', firstBytes: EMPTY, answerable: false }),
  // Nothing the client would understand can be said before its own handshake: the
  // listener's onClientError tells the person running `sluice connect`.
  refuse: (client) => void client.destroy(),
};

/** `sha256:<hex>` of the one-time password, as LOCAL_PASSWORD_HEADER carries it. */
export function localPasswordDigest(password: string): string {
  return `sha256:${createHash('sha256').update(password, 'utf8').digest('hex')}`;
}

/**
 * ssh: a byte relay whose tunnel carries the local password's digest, so that the gateway's ssh
 * server (the only one that sees the client's login) asks for the password and checks it.
 */
const ssh: LocalSide = {
  ...byteRelay,
  open: (client, localPassword) =>
    Promise.resolve({
      purpose: 'session',
      firstBytes: EMPTY,
      answerable: false,
      ...(localPassword !== undefined ? { headers: { [LOCAL_PASSWORD_HEADER]: localPasswordDigest(localPassword) } } : {}),
    }),
};

/**
 * Connection types and their local sides; ssh's handshake runs end to end through the tunnel, and
 * http is a byte relay too: each local client connection is one tunnel whose HTTP/1.1 requests the
 * gateway's http engine parses and judges (so nothing here needs to understand HTTP); kubernetes
 * is the same relay, kubectl's HTTP/1.1 parsed and judged by the kubernetes engine.
 */
const sides: Readonly<Record<string, LocalSide>> = { postgres, ssh, http: byteRelay, kubernetes: byteRelay };

/** The base URL a local HTTP client uses for a tunnel on host:port (IPv6 in brackets). */
export function localHttpUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/** The local side for a connection type (ConnectionInfo.type). */
export function localSideFor(type: string): LocalSide {
  const side = sides[type];
  // Fail closed: a type this CLI does not know may need a local step it cannot do.
  if (side === undefined) throw new CliError(`this sluice does not know connections of type "${type}"; upgrade the CLI`);
  return side;
}
