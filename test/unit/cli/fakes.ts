// A fake factory for command unit tests: buffer streams, a fixed clock, Map-backed settings and
// token store, and a gateway whose every call fails unless the test supplies it. Runs commands
// through the real `main` (real commander tree, real exit-code mapping) with no network.
import { PassThrough } from 'node:stream';
import type { ConnectionInfo, Me, ReviewInfo, SessionDetail, SessionSummary } from '../../../src/api/contract.js';
import type { Endpoint } from '../../../src/api/endpoint.js';
import type { AuditApi, DirectCredentialsApi, Gateway, ReviewsApi } from '../../../src/api/gateway.js';
import type { CredentialSource } from '../../../src/auth/credentials.js';
import type { StoredTokens, TokenStore } from '../../../src/auth/tokenStore.js';
import type { Clock, Factory, GatewayFlags } from '../../../src/factory.js';
import type { Io } from '../../../src/io.js';
import { main } from '../../../src/main.js';
import type { Settings, SettingsStore } from '../../../src/settings.js';

export const NOW = Date.parse('2026-11-05T12:00:00Z');
export const GATEWAY_URL = 'https://gw.example.test:8443';

export interface GatewayOverrides extends Partial<Omit<Gateway, 'reviews' | 'audit' | 'direct'>> {
  reviews?: Partial<ReviewsApi>;
  direct?: Partial<DirectCredentialsApi>;
  audit?: Partial<AuditApi>;
}

export interface FakeFactory extends Factory {
  out(): string;
  err(): string;
  /** Every gateway call as `name(args…)`, in order. */
  readonly calls: string[];
  /** The flags each `gateway()`/`endpoint()` call got. */
  readonly flags: GatewayFlags[];
  readonly settingsMap: Map<keyof Settings, unknown>;
  readonly tokens: Map<string, StoredTokens>;
  /** Aborts the signal `interruptible` hands out (Ctrl-C). */
  readonly interrupt: AbortController;
  stdin: PassThrough;
}

export function fakeFactory(opts: { gateway?: GatewayOverrides; env?: NodeJS.ProcessEnv; tty?: boolean } = {}): FakeFactory {
  const stdin = new PassThrough();
  const stdout = Object.assign(new PassThrough(), { isTTY: opts.tty ?? false });
  const stderr = Object.assign(new PassThrough(), { isTTY: opts.tty ?? false });
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const io: Io = { stdin, stdout, stderr, env: opts.env ?? {} };
  const calls: string[] = [];
  const flags: GatewayFlags[] = [];
  const settingsMap = new Map<keyof Settings, unknown>();
  const tokens = new Map<string, StoredTokens>();
  const interrupt = new AbortController();
  const clock: Clock = {
    now: () => NOW,
    sleep: (_ms, signal) => (signal?.aborted ? Promise.reject(signal.reason) : Promise.resolve()),
  };
  const settings: SettingsStore = {
    path: '/nonexistent/sluice/settings.json',
    get: <K extends keyof Settings>(k: K) => settingsMap.get(k) as Settings[K] | undefined,
    set: async (k, v) => void settingsMap.set(k, v),
  };
  const store: TokenStore = {
    kind: 'file',
    location: '/nonexistent/sluice/tokens.json',
    load: (g) => tokens.get(g),
    save: (g, t) => void tokens.set(g, t),
    remove: (g) => tokens.delete(g),
  };
  const endpoint: Endpoint = {
    url: GATEWAY_URL,
    dispatcher: () => Promise.reject(new Error('the fake endpoint has no network')),
    fetch: (() => Promise.reject(new Error('the fake endpoint has no network'))) as typeof fetch,
  };
  const credentials: CredentialSource = { kind: io.env.SLUICE_TOKEN ? 'env' : 'login', token: async () => 'fake-token' };
  const gateway = fakeGateway(opts.gateway ?? {}, calls, endpoint, credentials);
  const f: FakeFactory = {
    io,
    clock,
    stdin,
    out: () => out,
    err: () => err,
    calls,
    flags,
    settingsMap,
    tokens,
    interrupt,
    settings: async () => settings,
    endpoint: async (fl) => (flags.push(fl), endpoint),
    credentials: async () => credentials,
    gateway: async (fl) => (flags.push(fl), gateway),
    pinnedGateway: async (fl) => (flags.push(fl), { ...gateway, identity: { subject: 'alice', label: 'alice@example.com' } }),
    tokenStore: async () => store,
    interruptible: (fn) => fn(interrupt.signal),
  };
  return f;
}

/** Runs `sluice ARGV` with the fake factory; returns the exit code. */
export function run(f: Factory, ...argv: string[]): Promise<number> {
  return main(argv, f);
}

function fakeGateway(o: GatewayOverrides, calls: string[], endpoint: Endpoint, credentials: CredentialSource): Gateway {
  const missing = (name: string) => () => Promise.reject(new Error(`unexpected gateway call ${name}`));
  const record =
    <A extends unknown[], R>(name: string, fn: ((...a: A) => Promise<R>) | undefined) =>
    (...a: A): Promise<R> => {
      calls.push(`${name}(${a.map((x) => JSON.stringify(x)).join(', ')})`);
      return (fn ?? (missing(name) as (...a: A) => Promise<R>))(...a);
    };
  return {
    url: endpoint.url,
    endpoint: o.endpoint ?? endpoint,
    credentials,
    authConfig: record('authConfig', o.authConfig),
    me: record('me', o.me),
    connections: record('connections', o.connections),
    connection: record('connection', o.connection),
    reviews: {
      list: record('reviews.list', o.reviews?.list),
      get: record('reviews.get', o.reviews?.get),
      approve: record('reviews.approve', o.reviews?.approve),
      reject: record('reviews.reject', o.reviews?.reject),
    },
    audit: {
      sessions: record('audit.sessions', o.audit?.sessions),
      session: record('audit.session', o.audit?.session),
      exportTrail: record('audit.exportTrail', o.audit?.exportTrail),
      publicKey: record('audit.publicKey', o.audit?.publicKey),
    },
    direct: {
      issue: record('direct.issue', o.direct?.issue),
      renew: record('direct.renew', o.direct?.renew),
      revoke: record('direct.revoke', o.direct?.revoke),
    },
  };
}

export const alice: Me = { subject: 'sub-alice', name: 'alice', email: 'alice@example.com', groups: ['eng', 'dba'], kind: 'human' };

export const pgProd: ConnectionInfo = { name: 'pg-prod', type: 'postgres', database: 'app', databases: ['app'], policy: 'read-only', description: 'production' };

export function session(over: Partial<SessionSummary> = {}): SessionSummary {
  return {
    id: 'S-1',
    connection: 'pg-prod',
    protocol: 'postgres',
    subject: 'sub-alice',
    user: 'alice',
    email: 'alice@example.com',
    kind: 'human',
    groups: ['eng'],
    origin: 'connect',
    clientAddress: '127.0.0.1',
    database: 'app',
    startedAt: '2026-11-05T11:00:00Z',
    endedAt: '2026-11-05T11:02:05Z',
    status: 'ok',
    error: null,
    bytesFromClient: 10,
    bytesToClient: 20,
    queries: 3,
    events: 8,
    ledgerSeq: 4,
    purgedAt: null,
    ...over,
  };
}

export function detail(over: Partial<SessionSummary> = {}): SessionDetail {
  return { session: session(over), events: [] };
}

export function review(over: Partial<ReviewInfo> = {}): ReviewInfo {
  return {
    id: 'R-8F3K',
    status: 'pending',
    session: 'S-1',
    connection: 'pg-prod',
    requester: { subject: 'sub-bob', name: 'bob', email: 'bob@example.com' },
    sql: 'delete from orders\nwhere id = 7',
    rule: 'deletes-need-review',
    approvers: ['dba'],
    createdAt: '2026-11-05T11:55:00Z',
    expiresAt: '2026-11-05T12:05:00Z',
    canDecide: true,
    ...over,
  };
}
