// The gateway's configuration file, as a zod schema. Validation happens once, at load time
// (gateway/config/load.ts); everything past that point receives the typed, frozen result.
import { z } from 'zod';
import { isLoopbackHost } from '../../src/net/loopback.js';
import { policySchema } from '../policy/index.js';
import { sshPolicySchema } from '../engines/ssh/policy.js';
import { kubernetesPolicySchema } from '../engines/kubernetes/policy.js';
import { httpPolicySchema } from '../engines/http/policy.js';
import { limitsSchema } from './limits.js';
import { parseDuration } from '../../src/duration.js';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, { message: 'expected "HOST:PORT", e.g. "127.0.0.1:8443"' })
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, { message: 'port must be 0-65535' });

const nonEmpty = z.string().min(1, { message: 'expected a non-empty string' });

const tls = z.union(
  [
    z.literal(false),
    z.strictObject({ selfSigned: z.literal(true) }),
    z.strictObject({ cert: nonEmpty, key: nonEmpty }),
  ],
  { error: () => 'expected `false`, `{ selfSigned: true }` or `{ cert: PATH, key: PATH }`' },
);

const devUser = z.strictObject({
  name: nonEmpty,
  email: z.email({ message: 'expected an email address' }),
  groups: z.array(nonEmpty).default([]),
});

const oidcIdentity = z.strictObject({
  issuer: z.url({ message: 'expected the issuer URL' }),
  audience: nonEmpty,
  clientId: nonEmpty,
  groupsClaim: nonEmpty.default('groups'),
  scopes: z.array(nonEmpty).default(['openid', 'email', 'profile', 'offline_access']),
  /**
   * The request parameter that names the audience when the CLI starts a device login: `audience`
   * (Auth0 issues a JWT for the API only when asked this way) or `resource` (RFC 8707). Absent:
   * none, for IdPs that set the audience themselves (Keycloak mappers, Okta authorization servers).
   */
  audienceParameter: z.enum(['audience', 'resource']).optional(),
});

const devIdentity = z.strictObject({
  dev: z.strictObject({
    users: z.array(devUser).min(1, { message: 'expected at least one user' }),
    /** oidc-provider's resource indicators require an absolute URI (RFC 8707). */
    audience: z.string().regex(/^[a-z][a-z0-9+.-]*:\S+$/i, { message: 'expected an absolute URI, e.g. "urn:sluice:gateway"' }).default('urn:sluice:gateway'),
    clientId: nonEmpty.default('sluice-cli'),
    /** Short lifetimes let tests and demos exercise silent refresh. */
    accessTokenTtlSeconds: z.number().int().min(1).max(86_400).default(900),
  }),
});

const secretRef = z.union(
  [z.strictObject({ env: nonEmpty }), z.strictObject({ file: nonEmpty })],
  { error: () => 'expected `{ env: NAME }` or `{ file: PATH }` (secrets are never written inline)' },
);

const postgresTarget = z.strictObject({
  host: nonEmpty,
  port: z.number().int().min(1).max(65535).default(5432),
  database: nonEmpty,
  user: nonEmpty,
  password: secretRef,
  sslmode: z.enum(['disable', 'require', 'verify-full']).default('verify-full'),
  ca: nonEmpty.optional(),
});

const connectionName = z.string().regex(/^[a-z0-9][a-z0-9-_]{0,62}$/, { message: 'expected lower-case letters, digits, - or _' });

/** Host key algorithms a pin may name (what ssh2 verifies); the key blob must carry the same name. */
export const SSH_HOST_KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'] as const;

const hostKeyPin = z
  .string({ error: () => 'expected the host\'s public key, e.g. "ssh-ed25519 AAAA…" (ssh-keyscan -t ed25519 HOST)' })
  .transform((s) => s.trim().split(/\s+/).slice(0, 2).join(' '))
  .refine((s) => sshHostKeyProblem(s) === undefined, { error: (iss) => sshHostKeyProblem(String(iss.input).trim().split(/\s+/).slice(0, 2).join(' ')) ?? 'invalid host key' });

/** Why a pinned host key line is unusable, or undefined when it is well formed. */
export function sshHostKeyProblem(line: string): string | undefined {
  const [type, b64] = line.split(' ');
  if (!(SSH_HOST_KEY_TYPES as readonly string[]).includes(type ?? '') || b64 === undefined) {
    return `expected "TYPE BASE64" with TYPE one of ${SSH_HOST_KEY_TYPES.join(', ')}, e.g. "ssh-ed25519 AAAA…" (ssh-keyscan -t ed25519 HOST prints it)`;
  }
  const blob = /^[A-Za-z0-9+/]+={0,2}$/.test(b64) ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len < 0 || 4 + len > blob.length || blob.subarray(4, 4 + len).toString('latin1') !== type) return `the key data does not hold a ${type} key (copy the whole line from ssh-keyscan or the host's /etc/ssh/ssh_host_*_key.pub)`;
  return undefined;
}

const sshTarget = z.strictObject({
  host: nonEmpty,
  port: z.number().int().min(1).max(65535).default(22),
  user: nonEmpty,
  privateKey: secretRef,
  /** Required: the gateway never trusts a host key on first use. */
  hostKey: hostKeyPin,
});

const sshConnection = z.strictObject({
  name: connectionName,
  type: z.literal('ssh'),
  description: z.string().optional(),
  target: sshTarget,
  allow: z.strictObject({ groups: z.array(nonEmpty).min(1, { message: 'expected at least one group' }) }),
  /** Command rules and the forwarding allowances (docs/policy.md, "SSH rules"). */
  policy: sshPolicySchema.optional(),
  /** What the audit trail keeps: everything (the default) or sessions and refusals only (docs/audit.md). */
  record: z.enum(['statements', 'sessions']).default('statements'),
});

const kubernetesTarget = z
  .strictObject({
    /** The credential goes over this connection: only https, and only a bare origin. */
    server: z.url({ message: 'expected the API server URL, e.g. "https://10.0.0.9:6443"' }).refine((u) => /^https:\/\/[^/?#]+\/?$/.test(u), { message: 'expected an https:// URL with no path, e.g. "https://10.0.0.9:6443"' }),
    ca: nonEmpty.optional(),
    token: secretRef.optional(),
    clientCert: nonEmpty.optional(),
    clientKey: secretRef.optional(),
  })
  .superRefine((t, ctx) => {
    const cert = t.clientCert !== undefined || t.clientKey !== undefined;
    if (t.token !== undefined && cert) ctx.addIssue({ code: 'custom', message: 'expected either `token` or `clientCert` and `clientKey`, not both' });
    else if (t.token === undefined && !cert) ctx.addIssue({ code: 'custom', message: 'expected `token: { file | env }`, or `clientCert: PATH` and `clientKey: { file | env }` (the credential the gateway holds)' });
    else if (cert && (t.clientCert === undefined || t.clientKey === undefined)) ctx.addIssue({ code: 'custom', path: [t.clientCert === undefined ? 'clientCert' : 'clientKey'], message: 'a client certificate needs both `clientCert` and `clientKey`' });
  });

const kubernetesConnection = z.strictObject({
  name: connectionName,
  type: z.literal('kubernetes'),
  description: z.string().optional(),
  target: kubernetesTarget,
  allow: z.strictObject({ groups: z.array(nonEmpty).min(1, { message: 'expected at least one group' }) }),
  /** Rules on verbs, resources, apiGroups, namespaces and names (docs/kubernetes.md). */
  policy: kubernetesPolicySchema.optional(),
  /** What the audit trail keeps: every request (the default) or sessions and refusals only (docs/audit.md). */
  record: z.enum(['statements', 'sessions']).default('statements'),
});

/** Headers the gateway sets itself or that describe one hop (RFC 9110 §7.6.1): never injected. */
const NOT_INJECTABLE = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'keep-alive', 'proxy-connection', 'expect']);

const injectedHeaders = z.record(z.string(), secretRef).superRefine((headers, ctx) => {
  for (const name of Object.keys(headers)) {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: 'expected an HTTP header name' });
    else if (NOT_INJECTABLE.has(name.toLowerCase())) ctx.addIssue({ code: 'custom', path: [name], message: 'this header is set by the gateway itself or is hop-by-hop; it cannot be injected' });
  }
  const lower = Object.keys(headers).map((n) => n.toLowerCase());
  const dup = lower.find((n, i) => lower.indexOf(n) !== i);
  if (dup !== undefined) ctx.addIssue({ code: 'custom', message: `header "${dup}" is listed twice (names are case-insensitive)` });
});

const httpTarget = z.strictObject({
  url: z
    .url({ message: 'expected the service URL, e.g. "https://billing.internal:8443"' })
    .refine((u) => /^https?:$/.test(new URL(u).protocol), { message: 'expected an http:// or https:// URL' })
    .refine((u) => ['', '/'].includes(new URL(u).pathname) && new URL(u).search === '' && new URL(u).username === '', { message: 'expected an origin only (scheme, host, port): no path, query or credentials' }),
  ca: nonEmpty.optional(),
  /** Injected on every request, replacing what the client sends under the same name. */
  headers: injectedHeaders.default({}),
});

const httpConnection = z.strictObject({
  name: connectionName,
  type: z.literal('http'),
  description: z.string().optional(),
  target: httpTarget,
  allow: z.strictObject({ groups: z.array(nonEmpty).min(1, { message: 'expected at least one group' }) }),
  /** Method and path rules, JSON masks (docs/http.md). */
  policy: httpPolicySchema.optional(),
  record: z.enum(['statements', 'sessions']).default('statements'),
});

const postgresConnection = z.strictObject({
  name: connectionName,
  type: z.literal('postgres'),
  description: z.string().optional(),
  target: postgresTarget,
  databases: z.array(nonEmpty).default([]),
  allow: z.strictObject({ groups: z.array(nonEmpty).min(1, { message: 'expected at least one group' }) }),
  /** Block, review and mask rules (docs/policy.md); absent = everything allowed, nothing masked. */
  policy: policySchema.optional(),
  /** What the audit trail keeps: every statement (the default) or sessions and refusals only (docs/audit.md). */
  record: z.enum(['statements', 'sessions']).default('statements'),
});

export const gatewayConfigSchema = z
  .strictObject({
    listen: hostPort.default('127.0.0.1:8443'),
    /** The URL clients use to reach this gateway; derived from `listen` and `tls` when absent. */
    url: z.url().optional(),
    tls: tls.default({ selfSigned: true }),
    /** Extra listeners besides the HTTPS API; each is off unless set (docs/direct.md). */
    listeners: z.strictObject({ postgres: hostPort.optional() }).default({}),
    /** Short-lived passwords the gateway issues for its direct listeners (`sluice dsn`). */
    credentials: z
      .strictObject({ ttl: z
          .string()
          .refine((v) => (parseDuration(v) ?? 0) > 0 && (parseDuration(v) ?? 0) <= 86_400_000, { message: 'expected a duration of at most 24h, e.g. "15m"' })
          .default('15m'), })
      .default({ ttl: '15m' }),
    identity: z.union([devIdentity, oidcIdentity], {
      error: () => 'expected `{ issuer, audience, clientId }` for an OIDC provider or `{ dev: { users: [...] } }`',
    }),
    store: z
      .union([z.strictObject({ sqlite: nonEmpty }), z.strictObject({ postgres: z.string().regex(/^postgres(ql)?:\/\//, { message: 'expected a postgres:// URL' }), password: secretRef.optional() })], {
        error: () => 'expected `{ sqlite: PATH }` or `{ postgres: URL, password?: { env | file } }`',
      })
      .default({ sqlite: 'sluice.db' }),
    audit: z
      .strictObject({
        /** process: committed events survive a gateway crash; fsync: also power loss (slower). */
        durability: z.enum(['process', 'fsync']).default('process'),
        /** Caps on each result's recorded sample; the true totals are always recorded. */
        maxRows: z.number().int().min(0).max(100_000).default(100),
        maxBytes: z.union([z.number().int().min(0), z.string().regex(/^\d+\s*(B|KiB|MiB)$/, { message: 'expected bytes, e.g. 65536 or "64KiB"' })]).default(65_536),
        retainDays: z.number().int().min(1).optional(),
        readers: z.array(nonEmpty).default([]),
        /** Ed25519 signing key; created 0600 on first start. Default: audit-ed25519.pem in the state directory. */
        key: nonEmpty.optional(),
        checkpoint: z
          .strictObject({ sessions: z.number().int().min(1).default(100), seconds: z.number().int().min(1).default(60) })
          .default({ sessions: 100, seconds: 60 }),
        /** An append-only file that receives every checkpoint the gateway signs (`sluice audit verify --witness`). */
        witness: z.strictObject({ file: nonEmpty }).optional(),
      })
      .default({ durability: 'process', maxRows: 100, maxBytes: 65_536, readers: [], checkpoint: { sessions: 100, seconds: 60 } }),
    connections: z
      .array(
        z.discriminatedUnion('type', [postgresConnection, sshConnection, httpConnection, kubernetesConnection], {
          error: () => 'expected `type: postgres`, `type: ssh`, `type: http` or `type: kubernetes`',
        }),
      )
      .default([]),
    /** Where review events are posted (a Slack-compatible incoming webhook works). */
    notify: z.strictObject({ webhook: z.url({ message: 'expected the webhook URL' }) }).optional(),
    /** The key of the `hash` masking strategy; default: `masking-key` in the state directory, created 0600. */
    masking: z.strictObject({ hashKey: secretRef.optional() }).default({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** Append log lines to this file instead of stderr; a file that cannot be written is reported once on stderr. */
        file: nonEmpty.optional(),
      })
      .default({ level: 'info' }),
    /** How long the gateway waits for a target to accept and authenticate a session. */
    connectTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
    /** Resource limits and timeouts (gateway/config/limits.ts). */
    limits: limitsSchema,
  })
  .superRefine((cfg, ctx) => {
    if (cfg.tls === false) {
      const host = cfg.listen.slice(0, cfg.listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
      if (!isLoopback(host)) {
        ctx.addIssue({
          code: 'custom',
          path: ['tls'],
          message: `plain HTTP (tls: false) is only allowed on a loopback listen address, found listen "${cfg.listen}"`,
        });
      }
    }
    if (cfg.listeners.postgres !== undefined && cfg.tls === false) {
      ctx.addIssue({ code: 'custom', path: ['listeners', 'postgres'], message: 'the PostgreSQL listener serves TLS only (its clients send a password): set `tls`, or remove listeners.postgres' });
    }
    const seen = new Set<string>();
    cfg.connections.forEach((c, i) => {
      if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: ['connections', i, 'name'], message: `duplicate connection name "${c.name}"` });
      seen.add(c.name);
    });
  });

export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>;
export type ParsedGatewayConfig = z.output<typeof gatewayConfigSchema>;

/** Whether a listen host is loopback (the one vetted rule: src/net/loopback.ts). */
export function isLoopback(host: string): boolean {
  return isLoopbackHost(host);
}
