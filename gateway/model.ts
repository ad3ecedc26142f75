// The gateway's model: who is on the other end of a tunnel (Identity), what they may reach
// (Connection, one variant per protocol) and the session that joins the two (SessionInfo).
// Config, auth, audit, reviews and every engine import these from here; nothing in this module
// knows a wire protocol, so a new engine adds its connection variant without touching the rest.
import type { CompiledPolicy } from './policy/schema.js';
import type { SshPolicy } from './engines/ssh/policy.js';
import type { KubernetesPolicy } from './engines/kubernetes/policy.js';
import type { HttpPolicy } from './engines/http/policy.js';

/** Who is on the other end of a tunnel, as established by the gateway's authentication. */
export interface Identity {
  /** `sub` of a human's access token, or `token:<name>` for a service token. */
  readonly subject: string;
  /** Shown to people and used for `application_name`: the email, else the token name. */
  readonly name: string;
  readonly email?: string;
  readonly groups: readonly string[];
  readonly kind: 'human' | 'service';
  /** Epoch seconds at which the credential stops being accepted. */
  readonly expiresAt?: number;
}

/** What every connection has, whatever its protocol: the gateway core reads only these fields. */
export interface ConnectionBase {
  readonly name: string;
  /** Selects the engine (engines/registry.ts) and the CLI's local side (src/tunnel/localSide.ts). */
  readonly type: string;
  readonly description?: string;
  readonly allow: { readonly groups: readonly string[] };
  /**
   * What the audit trail keeps of its sessions: `statements` (every action, decision and result)
   * or `sessions` (who connected when, bytes and counts, plus every action the policy blocked or
   * held for review, with its decision) — docs/audit.md.
   */
  readonly record: 'statements' | 'sessions';
}

export type SslMode = 'disable' | 'require' | 'verify-full';

/** A PostgreSQL target with its secret already resolved (never logged, never sent to a client). */
export interface PostgresTarget {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly sslmode: SslMode;
  /** PEM text of the CA that signs the target's certificate (for verify-full). */
  readonly ca?: string;
}

export interface PostgresConnection extends ConnectionBase {
  readonly type: 'postgres';
  readonly target: PostgresTarget;
  /** Databases a client may ask for besides `target.database`. */
  readonly databases: readonly string[];
  /** The connection's compiled `policy:` (absent: none configured); the server passes it to SessionContext.policy. */
  readonly policy?: CompiledPolicy;
}

/**
 * Every kind of connection the gateway serves, discriminated by `type`. A protocol adds its
 * variant here (e.g. `| SshConnection`) and its engine to engines/registry.ts.
 */
/** An SSH host reached with a key the gateway holds (never logged, never sent to a client). */
export interface SshTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** The private key's text (OpenSSH or PEM format, unencrypted). */
  readonly privateKey: string;
  /** The pinned host key, `ssh-ed25519 AAAA…`: the target must present exactly this key. */
  readonly hostKey: string;
}

export interface SshConnection extends ConnectionBase {
  readonly type: 'ssh';
  readonly target: SshTarget;
  /** The connection's compiled ssh `policy:` (absent: exec and shells allowed, forwarding refused). */
  readonly policy?: SshPolicy;
}

/**
 * A Kubernetes API server reached with a credential the gateway holds: a bearer token or a client
 * certificate and key (never logged, never sent to a client).
 */
export interface KubernetesTarget {
  /** `https://HOST:PORT`, with no path. */
  readonly server: string;
  /** PEM text of the CA that signs the API server's certificate; absent: the system's CAs. */
  readonly ca?: string;
  readonly token?: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
}

export interface KubernetesConnection extends ConnectionBase {
  readonly type: 'kubernetes';
  readonly target: KubernetesTarget;
  /** The connection's compiled kubernetes `policy:` (absent: every request allowed and recorded). */
  readonly policy?: KubernetesPolicy;
}

/** An HTTP(S) service reached with headers the gateway holds (never logged, never sent to a client). */
export interface HttpTarget {
  /** The service's origin, `https://host:port` (a path prefix is not supported). */
  readonly url: string;
  /** PEM text of the CA the service's certificate must chain to; absent: the system's roots. */
  readonly ca?: string;
  /** Headers set on every forwarded request, replacing the client's (credentials), secrets resolved. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface HttpConnection extends ConnectionBase {
  readonly type: 'http';
  readonly target: HttpTarget;
  /** The connection's compiled http `policy:` (absent: every request allowed, nothing masked). */
  readonly policy?: HttpPolicy;
}

export type Connection = PostgresConnection | SshConnection | HttpConnection | KubernetesConnection;

/** One tunnel session: the identity that opened it on the connection it reached. */
export interface SessionInfo {
  /** `s_…`, the session's id in the audit trail and the API. */
  readonly id: string;
  readonly identity: Identity;
  readonly connection: Connection;
}
