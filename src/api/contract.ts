// The one contract between the CLI and the gateway: paths, headers and response shapes.
// Both sides import this module (and nothing else of each other), so a change of shape is a
// compile error on both sides rather than a surprise at run time.
import { z } from 'zod';

// Paths and header names live in a module without zod, so that `sluice exec` can import them without
// loading zod; they are part of this contract all the same.
export { EXEC_CONTENT_TYPE, LOCAL_PASSWORD_HEADER, PURPOSE_HEADER, SESSION_HEADER, TUNNEL_PROTOCOL, paths } from './paths.js';

/** Machine-readable reasons a request was refused; the message carries the human detail. */
export const errorCodes = [
  'missing_token',
  'malformed_token',
  'invalid_signature',
  'unknown_key',
  'algorithm_not_allowed',
  'token_expired',
  'token_not_yet_valid',
  'invalid_issuer',
  'invalid_audience',
  'token_revoked',
  'forbidden',
  'not_found',
  /** The request is valid but the resource's state forbids it (a review already decided). */
  'conflict',
  'bad_request',
  'upgrade_required',
  'unavailable',
  /** The caller holds as many open sessions as one identity may (HTTP 429). */
  'too_many_sessions',
  'internal',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export const errorBody = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
export type ErrorBody = z.infer<typeof errorBody>;

export const authConfig = z.object({
  issuer: z.string(),
  clientId: z.string(),
  audience: z.string(),
  scopes: z.array(z.string()),
  /** Send `audience` under this parameter name when starting a device login (absent: do not send it). */
  audienceParameter: z.enum(['audience', 'resource']).optional(),
});
export type AuthConfig = z.infer<typeof authConfig>;

/** A direct-listener credential: everything a libpq client needs, password included (shown once). */
export const directCredential = z.object({
  id: z.string(),
  connection: z.string(),
  host: z.string(),
  port: z.number().int(),
  database: z.string(),
  /** The connection's name: the listener picks the connection by the startup's user name. */
  user: z.string(),
  password: z.string(),
  expiresAt: z.string(),
});
export type DirectCredential = z.infer<typeof directCredential>;

export const credentialExpiry = z.object({ id: z.string(), expiresAt: z.string() });
export type CredentialExpiry = z.infer<typeof credentialExpiry>;

export const me = z.object({
  subject: z.string(),
  name: z.string(),
  email: z.string().optional(),
  groups: z.array(z.string()),
  kind: z.enum(['human', 'service']),
  /** ISO-8601 time the presented credential expires, if it does. */
  expiresAt: z.string().optional(),
});
export type Me = z.infer<typeof me>;

const postgresConnectionInfo = z.object({
  name: z.string(),
  type: z.literal('postgres'),
  description: z.string().optional(),
  database: z.string(),
  databases: z.array(z.string()),
  /** A short human summary of what policy applies; never a secret. */
  policy: z.string(),
  /** What the audit trail keeps of sessions on it: every statement, or sessions and refusals only. */
  record: z.enum(['statements', 'sessions']).optional(),
});

/** The gateway's public host key in OpenSSH's one-line form (`ssh-ed25519 AAAA…`), for known_hosts. */
export const sshPublicKey = z.string().regex(/^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|rsa-sha2-(256|512)|ssh-rsa) [A-Za-z0-9+/]+={0,2}$/, 'an OpenSSH public key line');

const sshConnectionInfo = z.object({
  name: z.string(),
  type: z.literal('ssh'),
  description: z.string().optional(),
  /** The user on the target the client presents (the gateway logs in as it with the held key). */
  user: z.string(),
  /** What the local ssh client must find in its known_hosts: the gateway's own host key, never the target's. */
  hostKey: sshPublicKey,
  /** A short human summary of what policy applies; never a secret. */
  policy: z.string(),
  record: z.enum(['statements', 'sessions']).optional(),
});

const kubernetesConnectionInfo = z.object({
  name: z.string(),
  type: z.literal('kubernetes'),
  description: z.string().optional(),
  /** A short human summary of what policy applies; never a secret (nor the server's credential). */
  policy: z.string(),
  record: z.enum(['statements', 'sessions']).optional(),
});

const httpConnectionInfo = z.object({
  name: z.string(),
  type: z.literal('http'),
  description: z.string().optional(),
  /** The service's origin the gateway forwards to (for people; the client talks to its local port). */
  url: z.string(),
  /** Names of the headers the gateway injects (their values are never sent). */
  injectedHeaders: z.array(z.string()),
  /** A short human summary of what policy applies; never a secret. */
  policy: z.string(),
  record: z.enum(['statements', 'sessions']).optional(),
});

export const connectionInfo = z.discriminatedUnion('type', [postgresConnectionInfo, sshConnectionInfo, httpConnectionInfo, kubernetesConnectionInfo]);
export type ConnectionInfo = z.infer<typeof connectionInfo>;
export type PostgresConnectionInfo = z.infer<typeof postgresConnectionInfo>;
export type SshConnectionInfo = z.infer<typeof sshConnectionInfo>;
export type HttpConnectionInfo = z.infer<typeof httpConnectionInfo>;
export type KubernetesConnectionInfo = z.infer<typeof kubernetesConnectionInfo>;

export const connectionList = z.object({ connections: z.array(connectionInfo) });
export type ConnectionList = z.infer<typeof connectionList>;

/** A recorded session as listed by `GET /v1/sessions` (times ISO-8601). */
export const sessionSummary = z.object({
  id: z.string(),
  connection: z.string(),
  protocol: z.string(),
  subject: z.string(),
  user: z.string(),
  email: z.string().nullable(),
  kind: z.enum(['human', 'service']),
  groups: z.array(z.string()),
  origin: z.string(),
  clientAddress: z.string(),
  database: z.string().nullable(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  status: z.enum(['open', 'ok', 'error']),
  error: z.string().nullable(),
  bytesFromClient: z.number(),
  bytesToClient: z.number(),
  queries: z.number(),
  /** Statements refused by policy; absent from gateways older than the count. */
  blocked: z.number().optional(),
  /** Statements held for review, whatever the outcome; absent from older gateways. */
  reviewed: z.number().optional(),
  events: z.number(),
  /** Ledger entry that sealed it; null while open. */
  ledgerSeq: z.number().nullable(),
  /** When retention removed its events; null while kept. */
  purgedAt: z.string().nullable(),
});
export type SessionSummary = z.infer<typeof sessionSummary>;

export const sessionList = z.object({ sessions: z.array(sessionSummary) });
export type SessionList = z.infer<typeof sessionList>;

/** One event of a session's trail (see src/api/auditTrail.ts for what the hash covers). */
export const sessionEvent = z.object({ seq: z.number(), kind: z.string(), at: z.string(), data: z.record(z.string(), z.unknown()), hash: z.string() });
export type SessionEvent = z.infer<typeof sessionEvent>;

export const sessionDetail = z.object({ session: sessionSummary, events: z.array(sessionEvent) });
export type SessionDetail = z.infer<typeof sessionDetail>;

/** A person or service token named by a review (`subject` is what self-approval is judged on). */
export const reviewParty = z.object({ subject: z.string(), name: z.string(), email: z.string().optional() });

/**
 * One parameter of a statement held at an extended-protocol Bind: text as sent, binary as `\x`
 * hex, null for SQL NULL; `value` is cut after 1000 characters (binary: 500 bytes) and then says
 * `truncated`, with the full length in `bytes`.
 */
export const reviewParameter = z.object({ value: z.string().nullable(), binary: z.literal(true).optional(), bytes: z.number().int().nonnegative(), truncated: z.literal(true).optional() });

/**
 * A held action as `GET /v1/reviews[/ID]` and the decision routes return it (times ISO-8601).
 * `action` is what runs if approved and `kind` what it is (`sql`, `exec`, …); a statement is
 * also given as `sql`, as clients before `action` expect it.
 */
export const reviewInfo = z.object({
  id: z.string(),
  status: z.enum(['pending', 'approved', 'rejected', 'expired', 'cancelled']),
  session: z.string(),
  connection: z.string(),
  requester: reviewParty,
  /** The statement, for kind `sql` (absent for other kinds: read `action`). */
  sql: z.string().optional(),
  /** What runs if approved: the statement or the command line (absent only from gateways before this field). */
  action: z.string().optional(),
  /** What kind of action `action` is: `sql`, `exec`, … */
  kind: z.string().optional(),
  /** The Bind's values ($1, $2, …) when the statement came by the extended protocol; at most 100. */
  parameters: z.array(reviewParameter).optional(),
  /** Parameters beyond the first 100, not shown. */
  parametersOmitted: z.number().int().positive().optional(),
  rule: z.string(),
  reason: z.string().optional(),
  approvers: z.array(z.string()),
  createdAt: z.string(),
  expiresAt: z.string(),
  endedAt: z.string().optional(),
  decidedBy: reviewParty.optional(),
  decisionReason: z.string().optional(),
  /** Whether the caller may approve or reject it now. */
  canDecide: z.boolean(),
});
export type ReviewInfo = z.infer<typeof reviewInfo>;

export const reviewList = z.object({ reviews: z.array(reviewInfo) });
export type ReviewList = z.infer<typeof reviewList>;

/** The body of `POST /v1/reviews/ID/approve` (reason optional) and `…/reject` (reason required). */
export const reviewDecisionBody = z.strictObject({ reason: z.string().max(1000).optional() });
export type ReviewDecisionBody = z.infer<typeof reviewDecisionBody>;

/**
 * The body of `POST /v1/connections/NAME/exec`: the gateway runs `input` itself over its upstream
 * connection, through the same policy, masking, reviews and audit as a tunnel session (origin
 * `exec`), one statement after another, stopping at the first error.
 */
export const execRequest = z.strictObject({
  /** The SQL script (one or more statements). */
  input: z.string().max(16 * 1024 * 1024),
  /** Run the input a review approved earlier (`--review ID`): it must be exactly that review's input. */
  review: z.string().max(40).optional(),
  /** false (`--no-wait`): when the input needs a review, create it, answer `review` then `end`, and stop. */
  wait: z.boolean().optional(),
  /** Cancel the running statement on the target after this long. */
  timeoutMs: z.number().int().positive().max(7 * 24 * 3_600_000).optional(),
});
export type ExecRequest = z.infer<typeof execRequest>;

/** A result column: its name and PostgreSQL type (OID and name, for typed JSON output). */
export const execColumn = z.object({ name: z.string(), typeOid: z.number().int(), type: z.string() });
export type ExecColumn = z.infer<typeof execColumn>;

/** How an exec ended; the CLI's exit code follows from it (docs/cli.md). */
export const execEndStatus = z.enum(['ok', 'error', 'blocked', 'denied', 'review_pending', 'review_rejected', 'review_expired', 'timeout', 'cancelled']);
export type ExecEndStatus = z.infer<typeof execEndStatus>;

/**
 * The exec response body: NDJSON, one event per line, streamed as the target answers (rows come in
 * batches; the gateway never holds a whole result). `statement` is the 0-based index of the statement
 * in the input. The stream always ends with exactly one `end` event; a stream that stops without
 * one means the connection broke.
 */
export const execEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('session'), id: z.string() }),
  /** The input (or a statement of it) is held for review; sent again when its status changes. */
  z.object({
    type: z.literal('review'),
    id: z.string(),
    status: z.enum(['pending', 'approved', 'rejected', 'expired', 'cancelled']),
    rule: z.string().optional(),
    approvers: z.array(z.string()).optional(),
    expiresAt: z.string().optional(),
    by: z.string().optional(),
    reason: z.string().optional(),
  }),
  /** Sent every 15 s while a review is pending, so idle proxies keep the stream open. */
  z.object({ type: z.literal('waiting'), review: z.string() }),
  z.object({ type: z.literal('columns'), statement: z.number().int(), columns: z.array(execColumn) }),
  /** Rows as text (NULL as null), after masking, in order. */
  z.object({ type: z.literal('rows'), statement: z.number().int(), rows: z.array(z.array(z.string().nullable())) }),
  z.object({ type: z.literal('notice'), statement: z.number().int().optional(), severity: z.string(), message: z.string(), sqlstate: z.string().optional() }),
  /** A statement finished: its command tag (`INSERT 0 3`) and row count. */
  z.object({ type: z.literal('complete'), statement: z.number().int(), command: z.string(), rows: z.number().int().nullable() }),
  /** Why the exec stopped early: a SQL error, a policy refusal (`rule`), a review's end, a timeout. */
  z.object({
    type: z.literal('error'),
    statement: z.number().int().optional(),
    sqlstate: z.string().optional(),
    message: z.string(),
    rule: z.string().optional(),
  }),
  z.object({ type: z.literal('end'), status: execEndStatus, statements: z.number().int(), session: z.string().optional() }),
]);
export type ExecEvent = z.infer<typeof execEvent>;
