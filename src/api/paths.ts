// The gateway API's paths and header names: part of the contract (contract.ts re-exports them), kept
// in a module of their own so that the CLI's fastest path, `sluice exec`, imports them without zod.

export const TUNNEL_PROTOCOL = 'sluice-tunnel/1';
export const SESSION_HEADER = 'sluice-session';
/** On a tunnel request: `cancel` when the stream will carry only a CancelRequest. */
export const PURPOSE_HEADER = 'sluice-purpose';
/**
 * On a tunnel request for an ssh connection opened with `--local-password`: `sha256:<64 hex>`, the
 * digest of the one-time password the gateway's ssh server must then be given. Never the password
 * itself: the digest is all the gateway needs to check it, and all a log line could leak.
 */
export const LOCAL_PASSWORD_HEADER = 'sluice-local-password';

export const paths = {
  health: '/healthz',
  authConfig: '/v1/auth/config',
  me: '/v1/me',
  connections: '/v1/connections',
  connection: (name: string) => `/v1/connections/${encodeURIComponent(name)}`,
  tunnel: (name: string) => `/v1/connections/${encodeURIComponent(name)}/tunnel`,
  sessions: '/v1/sessions',
  session: (id: string) => `/v1/sessions/${encodeURIComponent(id)}`,
  auditExport: '/v1/audit/export',
  auditKey: '/v1/audit/key',
  reviews: '/v1/reviews',
  review: (id: string) => `/v1/reviews/${encodeURIComponent(id)}`,
  reviewApprove: (id: string) => `/v1/reviews/${encodeURIComponent(id)}/approve`,
  reviewReject: (id: string) => `/v1/reviews/${encodeURIComponent(id)}/reject`,
  exec: (name: string) => `/v1/connections/${encodeURIComponent(name)}/exec`,
  /** POST: a short-lived password for the direct PostgreSQL listener (docs/direct.md). */
  credentials: (name: string) => `/v1/connections/${encodeURIComponent(name)}/credentials`,
  /** POST: moves the credential's expiry to a full TTL from now (only while it is valid). */
  credentialRenew: (id: string) => `/v1/credentials/${encodeURIComponent(id)}/renew`,
  /** POST: revokes the credential (new connections with it are refused). */
  credentialRevoke: (id: string) => `/v1/credentials/${encodeURIComponent(id)}/revoke`,
} as const;

/** The exec answer's content type: NDJSON, one event per line. */
export const EXEC_CONTENT_TYPE = 'application/x-ndjson';
