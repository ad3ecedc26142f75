// Startup rules apart from sockets: which databases a connection serves, which client startup
// parameters reach the target, protocol negotiation, and the gateway-issued cancel keys.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CancelKeyRegistry, ShutdownFanout } from '../../../gateway/engines/postgres/engine.js';
import { acceptStartup, StartupRefusal } from '../../../gateway/engines/postgres/startup.js';
import { forwardedName, startupSettings } from '../../../gateway/engines/postgres/startupSettings.js';
import type { PgSessionContext } from '../../../gateway/engines/postgres/context.js';
import { build } from './builder.js';

const target = { host: 'db', port: 5432, database: 'shop', user: 'gw', password: 'pw', sslmode: 'disable' as const };
const ctx = {
  id: 's1',
  identity: { subject: 'user:alice', name: 'alice@example.com', groups: [], kind: 'human' },
  connection: { name: 'pg-prod', type: 'postgres', target, databases: ['reports'], allow: { groups: [] } },
} as unknown as PgSessionContext;

const startup = (params: Record<string, string>, minor = 0) => ({ kind: 'startup' as const, major: 3, minor, params: new Map(Object.entries(params)) });

function refusal(fn: () => unknown): StartupRefusal {
  try {
    fn();
  } catch (err) {
    if (err instanceof StartupRefusal) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('acceptStartup', () => {
  it("defaults to the connection's database and names the gateway user's session after the identity", () => {
    const a = acceptStartup(startup({ user: 'me' }), ctx);
    expect(a.audit).toEqual({ target: 'shop', clientUser: 'me' });
    expect(a.upstreamParameters).toEqual([['application_name', 'sluice:alice@example.com']]);
    expect(a.settings.size).toBe(0);
  });

  it('serves the listed databases and refuses others with 3D000, naming those it serves', () => {
    expect(acceptStartup(startup({ user: 'me', database: 'reports' }), ctx).audit.target).toBe('reports');
    expect(refusal(() => acceptStartup(startup({ user: 'me', database: 'postgres' }), ctx))).toMatchObject({
      sqlstate: '3D000',
      message: 'connection "pg-prod" does not serve database "postgres"; it serves: shop, reports',
    });
  });

  it('refuses a missing user (28000) and replication (0A000)', () => {
    expect(refusal(() => acceptStartup(startup({ database: 'shop' }), ctx)).sqlstate).toBe('28000');
    expect(refusal(() => acceptStartup(startup({ user: 'me', replication: 'database' }), ctx)).sqlstate).toBe('0A000');
    expect(acceptStartup(startup({ user: 'me', replication: 'false' }), ctx).audit.target).toBe('shop');
  });

  it("forwards the allow-listed settings, from options too, and keeps the client's program beside the identity", () => {
    const a = acceptStartup(
      startup({
        user: 'me',
        application_name: 'psql',
        client_encoding: 'UTF8',
        datestyle: 'ISO',
        options: '-c statement_timeout=5s --lock-timeout=2s -csearch_path=a,\\ b -c app.tenant=7 -c TimeZone=UTC',
        search_path: 'x',
      }),
      ctx,
    );
    expect(a.audit.clientApplication).toBe('psql');
    expect(a.upstreamParameters).toEqual([
      ['application_name', 'sluice:alice@example.com:psql'],
      ['statement_timeout', '5s'],
      ['lock_timeout', '2s'],
      // The startup parameter wins over the same setting in options, as in PostgreSQL.
      ['search_path', 'x'],
      ['app.tenant', '7'],
      ['TimeZone', 'UTC'],
      ['client_encoding', 'UTF8'],
      ['DateStyle', 'ISO'],
    ]);
    expect(a.audit.clientSettings).toMatchObject({ statement_timeout: '5s', search_path: 'x', 'app.tenant': '7' });
  });

  it('refuses settings off the allow-list (42501) and malformed options (08P01), naming them', () => {
    for (const params of <Record<string, string>[]>[
      { options: '-c session_replication_role=replica' },
      { options: '--session-replication-role=replica' },
      { options: '-c role=admin' },
      { role: 'admin' },
      { session_authorization: 'postgres' },
      { default_transaction_read_only: 'off' },
      { work_mem: '1GB' },
    ]) {
      const r = refusal(() => acceptStartup(startup({ user: 'me', ...params }), ctx));
      expect(r.sqlstate).toBe('42501');
      expect(r.message).toMatch(/does not pass the startup setting "(session_replication_role|role|session_authorization|default_transaction_read_only|work_mem)"/);
    }
    for (const options of ['-B 100', '-c', '-c statement_timeout', 'statement_timeout=1', '-c =1']) {
      expect(refusal(() => acceptStartup(startup({ user: 'me', options }), ctx)).sqlstate).toBe('08P01');
    }
  });

  it('takes application_name from options too (the parameter wins), beside the identity', () => {
    const up = (params: Record<string, string>) => acceptStartup(startup({ user: 'me', ...params }), ctx);
    expect(up({ options: '-c application_name=etl' }).upstreamParameters[0]).toEqual(['application_name', 'sluice:alice@example.com:etl']);
    expect(up({ options: '-c application_name=etl' }).audit.clientApplication).toBe('etl');
    expect(up({ options: '-c application_name=etl', application_name: 'psql' }).upstreamParameters[0]).toEqual(['application_name', 'sluice:alice@example.com:psql']);
  });

  it("cannot pass for another identity through application_name, and fits the target's 63 bytes", () => {
    const up = (app: string) => acceptStartup(startup({ user: 'me', application_name: app }), ctx).upstreamParameters[0]?.[1];
    expect(up('x:sluice:bob@example.com')).toBe('sluice:alice@example.com:x_sluice_bob_example.com');
    expect(up('né\u0000\n')).toMatch(/^sluice:alice@example\.com:n_/);
    expect(Buffer.byteLength(up('p'.repeat(200)) ?? '')).toBeLessThanOrEqual(63);
    expect(up('')).toBe('sluice:alice@example.com');
    const long = { ...ctx, identity: { ...ctx.identity, name: 'a'.repeat(70) } } as PgSessionContext;
    expect(acceptStartup(startup({ user: 'me', application_name: 'psql' }), long).upstreamParameters[0]?.[1]).toBe(`sluice:${'a'.repeat(70)}`);
  });

  it('greets with AuthenticationOk, the target parameters, its own key and ReadyForQuery', () => {
    const status = build().cstring('server_version').cstring('15').typed('S');
    const greeting = acceptStartup(startup({ user: 'me' }), ctx).greeting([status], { pid: 5, secret: 6 }, 'I');
    expect(greeting).toEqual(Buffer.concat([build().int32(0).typed('R'), status, build().int32(5).int32(6).typed('K'), build().byte('I').typed('Z')]));
  });

  it("shows the client its own application_name in the greeting's ParameterStatus; other parameters pass as they are", () => {
    const accepted = acceptStartup(startup({ user: 'me', application_name: 'x:sluice:bob@example.com' }), ctx);
    const upstream = accepted.upstreamParameters[0]?.[1] as string;
    const fromTarget = [build().cstring('application_name').cstring(upstream).typed('S'), build().cstring('TimeZone').cstring('UTC').typed('S')];
    const greeting = accepted.greeting(fromTarget, { pid: 5, secret: 6 }, 'I');
    const own = build().cstring('application_name').cstring('x:sluice:bob@example.com').typed('S');
    expect(greeting).toEqual(Buffer.concat([build().int32(0).typed('R'), own, fromTarget[1] as Buffer, build().int32(5).int32(6).typed('K'), build().byte('I').typed('Z')]));
    // A value the gateway did not give (not the startup's) is not rewritten.
    const other = build().cstring('application_name').cstring('sluice:alice@example.com:other').typed('S');
    expect(accepted.greeting([other], { pid: 5, secret: 6 }, 'I').subarray(9, 9 + other.length)).toEqual(other);
    const none = acceptStartup(startup({ user: 'me' }), ctx);
    const bare = build().cstring('application_name').cstring(none.upstreamParameters[0]?.[1] as string).typed('S');
    expect(none.greeting([bare], { pid: 5, secret: 6 }, 'I').subarray(9, 9 + 23)).toEqual(build().cstring('application_name').cstring('').typed('S'));
  });

  it('negotiates a newer minor version and _pq_ options down to 3.0', () => {
    const greeting = acceptStartup(startup({ user: 'me', '_pq_.x': '1' }, 2), ctx).greeting([], { pid: 1, secret: 1 }, 'I');
    expect(greeting.subarray(0, 20)).toEqual(build().int32(0).int32(1).cstring('_pq_.x').typed('v'));
  });
});

describe('startupSettings (property)', () => {
  const word = fc.string({ maxLength: 12 });
  it('any options and parameters: a StartupRefusal or only allow-listed names, never another error', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(word, fc.constantFrom('-c', '--', '\\', ' ', '=', 'statement_timeout=1', 'role=x', 'a.b=1')), { maxLength: 8 }), fc.dictionary(word, word), (parts, params) => {
        const map = new Map(Object.entries({ ...params, options: parts.join(' ') }));
        try {
          for (const name of startupSettings(map).settings.keys()) expect(forwardedName(name)).toBe(name);
        } catch (err) {
          expect(err).toBeInstanceOf(StartupRefusal);
          expect(['42501', '08P01']).toContain((err as StartupRefusal).sqlstate);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('CancelKeyRegistry', () => {
  const route = { connectionName: 'pg-prod', subject: 'user:alice', target, upstreamKey: { pid: 1, secret: 2 } };

  it("issues the target's pid with a secret of its own and finds a route only with the right secret", () => {
    const r = new CancelKeyRegistry();
    const a = r.issue(route);
    expect(a.pid).toBe(1);
    expect(r.lookup(a.pid, a.secret)).toMatchObject({ upstreamKey: { pid: 1, secret: 2 } });
    expect(r.lookup(a.pid, a.secret ^ 1)).toBeUndefined();
    expect(r.lookup(12345, 0)).toBeUndefined();
    r.release(a);
    expect(r.lookup(a.pid, a.secret)).toBeUndefined();
    expect(r.size).toBe(0);
  });

  it('keeps two sessions whose targets share a pid apart by their secrets', () => {
    const r = new CancelKeyRegistry();
    const other = { ...route, connectionName: 'pg-other', upstreamKey: { pid: 1, secret: 9 } };
    const a = r.issue(route);
    const b = r.issue(other);
    expect(a.pid).toBe(b.pid);
    expect(r.lookup(b.pid, b.secret)).toMatchObject({ connectionName: 'pg-other', upstreamKey: { secret: 9 } });
    r.release(a);
    expect(r.lookup(a.pid, a.secret)).toBeUndefined();
    expect(r.lookup(b.pid, b.secret)).toMatchObject({ connectionName: 'pg-other' });
    expect(r.size).toBe(1);
  });

  it('issues a random positive pid when the target sent no key', () => {
    const r = new CancelKeyRegistry();
    const { upstreamKey: _, ...bare } = route;
    const a = r.issue(bare);
    expect(a.pid).toBeGreaterThan(0);
    expect(r.lookup(a.pid, a.secret)).toMatchObject({ connectionName: 'pg-prod' });
  });
});

describe('ShutdownFanout', () => {
  it('adds one listener per signal and reaches every subscriber still registered', () => {
    const fanout = new ShutdownFanout();
    const controller = new AbortController();
    const calls: string[] = [];
    fanout.subscribe(controller.signal, () => calls.push('a'));
    const unsubscribe = fanout.subscribe(controller.signal, () => calls.push('b'));
    for (let k = 0; k < 20; k++) fanout.subscribe(controller.signal, () => undefined);
    unsubscribe();
    controller.abort();
    expect(calls).toEqual(['a']);
  });
});
