// Loads the gateway's YAML configuration: parse, validate with zod, resolve relative paths and
// secrets, and freeze. Every problem is reported at once as `FILE: key.path: message`, so an
// operator fixes the file in one pass instead of one error per restart.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import type { AuditSettings } from '../audit/service.js';
import type { Connection } from '../model.js';
import { randomBytes } from 'node:crypto';
import { parseDuration } from '../../src/duration.js';
import { resolveLimits, type GatewayLimits } from './limits.js';
import { compileConnectionPolicy, loadMaskingKey, usesHashMasking } from './policy.js';
import { resolveSshConnection } from './sshConnection.js';
import { resolveKubernetesConnection } from './kubernetesConnection.js';
import { resolveHttpConnection } from './httpConnection.js';
import { gatewayConfigSchema, isLoopback, type ParsedGatewayConfig } from './schema.js';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

export type IdentityConfig =
  | { kind: 'oidc'; issuer: string; audience: string; clientId: string; groupsClaim: string; scopes: readonly string[]; audienceParameter?: 'audience' | 'resource' }
  | {
      kind: 'dev';
      audience: string;
      clientId: string;
      groupsClaim: 'groups';
      scopes: readonly string[];
      accessTokenTtlSeconds: number;
      users: readonly { name: string; email: string; groups: readonly string[] }[];
    };

export interface GatewayConfig {
  readonly file: string;
  readonly listen: { readonly host: string; readonly port: number };
  /** Base URL clients use; the dev IdP's issuer is derived from it. */
  readonly url: string;
  readonly tls: false | { readonly selfSigned: true } | { readonly cert: string; readonly key: string };
  readonly identity: IdentityConfig;
  /** Exactly one of `sqlite` (absolute path) and `postgres` (URL; `password` resolved) is set. */
  readonly store: { readonly sqlite?: string; readonly postgres?: string; readonly password?: string };
  readonly audit: AuditSettings;
  /** Directory for generated state (self-signed cert, dev IdP keys, audit key): next to the SQLite store, else next to this file. */
  readonly stateDir: string;
  readonly connections: readonly Connection[];
  readonly logLevel: ParsedGatewayConfig['log']['level'];
  /** Absolute path of the log file; absent: stderr. */
  readonly logFile?: string;
  readonly connectTimeoutMs: number;
  readonly limits: GatewayLimits;
  /** The direct PostgreSQL listener (docs/direct.md); absent: off. */
  readonly listeners: { readonly postgres?: { readonly host: string; readonly port: number } };
  /** Lifetime of a credential the gateway issues for a direct listener. */
  readonly credentialTtlMs: number;
  /** Review events are POSTed here (docs/reviews.md). */
  readonly notify?: { readonly webhook: string };
}

/**
 * Reads and validates FILE; throws ConfigError listing every problem. `resolveSecrets: false`
 * skips reading connection passwords (token management needs the store, not the targets).
 */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env, opts: { resolveSecrets?: boolean } = {}): GatewayConfig {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`${path}: cannot read the configuration file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
  }
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    throw new ConfigError(
      path,
      doc.errors.map((e) => `${path}: line ${e.linePos?.[0]?.line ?? '?'}: invalid YAML: ${e.message.split('\n')[0]}`),
    );
  }
  const result = gatewayConfigSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) throw new ConfigError(path, result.error.issues.map((i) => formatIssue(path, i)));
  return resolveConfig(path, result.data, env, opts.resolveSecrets ?? true);
}

function formatIssue(file: string, issue: z.core.$ZodIssue): string {
  const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_type' && message.startsWith('Invalid input: ')) message = message.slice('Invalid input: '.length).replace('received', 'found');
  return `${file}: ${key}: ${message}`;
}

/** "HOST:PORT" (already validated by the schema) as its parts, IPv6 brackets removed. */
function splitHostPort(hostPort: string): { host: string; port: number } {
  const sep = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, sep).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(sep + 1)) };
}

function resolveConfig(file: string, cfg: ParsedGatewayConfig, env: NodeJS.ProcessEnv, resolveSecrets: boolean): GatewayConfig {
  const base = dirname(file);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const problems: string[] = [];

  const { host, port } = splitHostPort(cfg.listen);
  const scheme = cfg.tls === false ? 'http' : 'https';
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = (cfg.url ?? `${scheme}://${urlHost}:${port}`).replace(/\/+$/, '');

  const storePassword = (ref: { env: string } | { file: string } | undefined): string | undefined => {
    if (ref === undefined) return undefined;
    if ('env' in ref) {
      const v = env[ref.env];
      if (v === undefined || v === '') problems.push(`${file}: store.password: environment variable ${ref.env} is not set`);
      return v;
    }
    try {
      return readFileSync(abs(ref.file), 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      problems.push(`${file}: store.password: cannot read ${abs(ref.file)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      return undefined;
    }
  };
  const store = 'sqlite' in cfg.store ? { sqlite: abs(cfg.store.sqlite) } : { postgres: cfg.store.postgres, password: storePassword(cfg.store.password) };
  const stateDir = store.sqlite !== undefined ? dirname(store.sqlite) : base;
  const hashKey = maskingKey(cfg, stateDir, abs, env, resolveSecrets, (p) => problems.push(`${file}: ${p}`));
  const connections = cfg.connections.map((c, i): Connection => {
    if (c.type === 'ssh') return resolveSshConnection(c, i, { file, env, abs, resolveSecrets, problem: (p) => problems.push(p) });
    if (c.type === 'kubernetes') return resolveKubernetesConnection(c, i, { file, env, abs, resolveSecrets, problem: (p) => problems.push(p) });
    if (c.type === 'http') return resolveHttpConnection(c, i, { file, env, abs, resolveSecrets, hashKey, problem: (p) => problems.push(p) });
    const where = `connections.${i}.target`;
    let password = '';
    if (!resolveSecrets) {
      // left empty: this config is used for store maintenance only
    } else if ('env' in c.target.password) {
      const v = env[c.target.password.env];
      if (v === undefined || v === '') problems.push(`${file}: ${where}.password: connection "${c.name}": environment variable ${c.target.password.env} is not set`);
      else password = v;
    } else {
      const p = abs(c.target.password.file);
      try {
        password = readFileSync(p, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        problems.push(`${file}: ${where}.password: connection "${c.name}": cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
    let ca: string | undefined;
    if (c.target.ca !== undefined) {
      const p = abs(c.target.ca);
      try {
        ca = readFileSync(p, 'utf8');
      } catch (err) {
        problems.push(`${file}: ${where}.ca: connection "${c.name}": cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
    let policy;
    if (c.policy !== undefined) {
      const compiled = compileConnectionPolicy(c.policy, hashKey);
      if ('problem' in compiled) problems.push(`${file}: connections.${i}.policy: connection "${c.name}": ${compiled.problem}`);
      else policy = compiled.policy;
    }
    return Object.freeze({
      name: c.name,
      type: c.type,
      description: c.description,
      target: Object.freeze({ ...c.target, password, ca }),
      databases: Object.freeze([...c.databases]),
      allow: Object.freeze({ groups: Object.freeze([...c.allow.groups]) }),
      ...(policy !== undefined ? { policy } : {}),
      record: c.record,
    });
  });

  const tlsCfg = cfg.tls === false || 'selfSigned' in cfg.tls ? cfg.tls : { cert: abs(cfg.tls.cert), key: abs(cfg.tls.key) };
  if (tlsCfg !== false && 'cert' in tlsCfg) {
    for (const [k, p] of [['cert', tlsCfg.cert], ['key', tlsCfg.key]] as const) {
      try {
        readFileSync(p);
      } catch (err) {
        problems.push(`${file}: tls.${k}: cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(file, problems);

  const identity: IdentityConfig =
    'dev' in cfg.identity
      ? {
          kind: 'dev',
          audience: cfg.identity.dev.audience,
          clientId: cfg.identity.dev.clientId,
          groupsClaim: 'groups',
          scopes: ['openid', 'email', 'profile', 'offline_access'],
          accessTokenTtlSeconds: cfg.identity.dev.accessTokenTtlSeconds,
          users: cfg.identity.dev.users,
        }
      : { kind: 'oidc', ...cfg.identity };

  const units: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 * 1024 };
  const maxBytes = typeof cfg.audit.maxBytes === 'number' ? cfg.audit.maxBytes : Number(/^\d+/.exec(cfg.audit.maxBytes)?.[0]) * (units[/[A-Za-z]+$/.exec(cfg.audit.maxBytes)?.[0] ?? 'B'] ?? 1);
  const audit: AuditSettings = Object.freeze({
    durability: cfg.audit.durability,
    maxRows: cfg.audit.maxRows,
    maxBytes,
    ...(cfg.audit.retainDays !== undefined ? { retainDays: cfg.audit.retainDays } : {}),
    readers: Object.freeze([...cfg.audit.readers]),
    journalDir: stateDir,
    keyFile: cfg.audit.key !== undefined ? abs(cfg.audit.key) : resolve(stateDir, 'audit-ed25519.pem'),
    checkpoint: Object.freeze({ ...cfg.audit.checkpoint }),
    ...(cfg.audit.witness !== undefined ? { witnessFile: abs(cfg.audit.witness.file) } : {}),
  });
  return Object.freeze({
    file,
    listen: { host, port },
    url,
    listeners: cfg.listeners.postgres !== undefined ? { postgres: splitHostPort(cfg.listeners.postgres) } : {},
    credentialTtlMs: parseDuration(cfg.credentials.ttl) as number,
    tls: tlsCfg,
    identity,
    store: Object.freeze(store),
    audit,
    stateDir,
    connections: Object.freeze(connections),
    logLevel: cfg.log.level,
    ...(cfg.log.file !== undefined ? { logFile: abs(cfg.log.file) } : {}),
    connectTimeoutMs: cfg.connectTimeoutMs,
    limits: resolveLimits(cfg.limits),
    ...(cfg.notify ? { notify: { webhook: cfg.notify.webhook } } : {}),
  });
}

/**
 * The key for `with: hash` masks: `masking.hashKey` when configured, else (only when some policy
 * needs it) the state directory's generated key. Without secrets (store maintenance) a throwaway
 * key, since no policy runs then.
 */
function maskingKey(
  cfg: ParsedGatewayConfig,
  stateDir: string,
  abs: (p: string) => string,
  env: NodeJS.ProcessEnv,
  resolveSecrets: boolean,
  problem: (p: string) => void,
): Buffer | undefined {
  const configured = cfg.masking.hashKey;
  const needed = cfg.connections.some(
    (c) => (c.type === 'postgres' && c.policy !== undefined && usesHashMasking(c.policy)) || (c.type === 'http' && (c.policy?.rules ?? []).some((r) => r.mask?.strategy === 'hash')),
  );
  if (configured === undefined && !needed) return undefined;
  if (!resolveSecrets) return randomBytes(32);
  const source = configured === undefined ? { generatedIn: stateDir } : 'env' in configured ? configured : { file: abs(configured.file) };
  const loaded = loadMaskingKey(source, env);
  if ('problem' in loaded) {
    problem(`masking.hashKey: ${loaded.problem}`);
    return undefined;
  }
  return loaded.key;
}

export { isLoopback };
