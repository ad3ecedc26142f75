// Startup rules apart from sockets: which databases a connection serves, which client startup
// parameters reach the target, protocol negotiation, and the gateway-issued cancel keys.
import { describe, expect, it } from 'vitest';
import { CancelKeyRegistry, ShutdownFanout } from '../../../gateway/engines/postgres/engine.js';
import { acceptStartup, StartupRefusal } from '../../../gateway/engines/postgres/startup.js';
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

  it('forwards only formatting parameters, never options', () => {
    const a = acceptStartup(
      startup({ user: 'me', application_name: 'psql', client_encoding: 'UTF8', datestyle: 'ISO', options: '-c role=admin', search_path: 'x' }),
      ctx,
    );
    expect(a.audit.clientApplication).toBe('psql');
    expect(a.upstreamParameters).toEqual([
      ['application_name', 'sluice:alice@example.com'],
      ['client_encoding', 'UTF8'],
      ['DateStyle', 'ISO'],
    ]);
  });

  it('greets with AuthenticationOk, the target parameters, its own key and ReadyForQuery', () => {
    const status = build().cstring('server_version').cstring('15').typed('S');
    const greeting = acceptStartup(startup({ user: 'me' }), ctx).greeting([status], { pid: 5, secret: 6 }, 'I');
    expect(greeting).toEqual(Buffer.concat([build().int32(0).typed('R'), status, build().int32(5).int32(6).typed('K'), build().byte('I').typed('Z')]));
  });

  it('negotiates a newer minor version and _pq_ options down to 3.0', () => {
    const greeting = acceptStartup(startup({ user: 'me', '_pq_.x': '1' }, 2), ctx).greeting([], { pid: 1, secret: 1 }, 'I');
    expect(greeting.subarray(0, 20)).toEqual(build().int32(0).int32(1).cstring('_pq_.x').typed('v'));
  });
});

describe('CancelKeyRegistry', () => {
  const route = { connectionName: 'pg-prod', subject: 'user:alice', target, upstreamKey: { pid: 1, secret: 2 } };

  it('issues distinct keys and finds a route only with the right secret', () => {
    const r = new CancelKeyRegistry();
    const a = r.issue(route);
    const b = r.issue(route);
    expect(a.pid).not.toBe(b.pid);
    expect(a.pid).toBeGreaterThan(0);
    expect(r.lookup(a.pid, a.secret)).toMatchObject({ upstreamKey: { pid: 1, secret: 2 } });
    expect(r.lookup(a.pid, a.secret ^ 1)).toBeUndefined();
    expect(r.lookup(12345, 0)).toBeUndefined();
    r.release(a.pid);
    expect(r.lookup(a.pid, a.secret)).toBeUndefined();
    expect(r.size).toBe(1);
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
