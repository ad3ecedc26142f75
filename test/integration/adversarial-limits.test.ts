// The adversarial corpus of resource limits and timeouts (issue 13, items 7 and 8): a caller who
// cannot get a statement past the policy tries to take the gateway's memory, connection slots or
// patience from everyone else, to outlive the revocation of its credential, to write into the
// audit trail what a reader will misread, or to talk the CLI into sending its token in clear.
// Everything runs through the real binaries; effects are checked on the gateway process (its
// memory, its sockets, its state directory) and on the target (pg_stat_activity).
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startArena, type Arena } from '../support/arena.js';
import { GATEWAY_BIN, newConfigDir, openTunnel, runCli, serviceToken, startGateway, tokenCtx, writeGatewayConfig, type GatewayProcess, type Tunnel } from '../support/binaries.js';
import { waitFor } from '../support/pgEngineHarness.js';
import { errorsIn, localProbe, messageHeader, pgProbe, rssMiB, startupPacket, stateContains, tcpProbe, tlsProbe, upgrade, type Probe } from '../support/limitsProbes.js';

const cluster = inject('pgCluster');
const MiB = 1024 * 1024;
const HEADERS_TIMEOUT_MS = 1_000;
const CONNECT_TIMEOUT_MS = 2_000;
/** Slack for a loaded two-core machine on top of a configured timeout. */
const SLACK_MS = 2_500;

let arena: Arena;
let lean: GatewayProcess;
const cleanups: (() => Promise<unknown> | void)[] = [];

beforeAll(async () => {
  arena = await startArena(cluster, {
    prefix: 'adv_limits',
    gateway: {
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      limits: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: 1_000, revocationCheckMs: 200, sessionsPerIdentity: 30 },
    },
  });
  // A second gateway on the same database: two sessions per identity, and a log file that can
  // never be written (every write to /dev/full fails with ENOSPC).
  const su = cluster.roles.superuser;
  lean = await startGateway({
    env: { LEAN_PG_PASSWORD: su.password },
    connections: [
      {
        name: 'pg-lean',
        type: 'postgres',
        target: { host: cluster.host, port: cluster.port, database: arena.database, user: su.user, password: { env: 'LEAN_PG_PASSWORD' }, sslmode: 'disable' },
        allow: { groups: ['eng'] },
      },
    ],
    extra: { log: { level: 'debug', file: '/dev/full' }, limits: { sessionsPerIdentity: 2 } },
  });
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await lean?.stop();
  await arena?.stop();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const startup = (params: [string, Buffer | string][] = []) => startupPacket([['user', 'attacker'], ['database', arena.database], ...params]);

async function tunnelOn(gw: GatewayProcess, connection: string, tokenName: string, extra: string[] = []): Promise<Tunnel> {
  const tunnel = await openTunnel(connection, tokenCtx(gw, serviceToken(gw, tokenName, 'eng')), extra);
  cleanups.push(() => tunnel.stop());
  return tunnel;
}

describe('one unfinished client message cannot hold more than its cap of gateway memory', () => {
  it('a Query declared one byte over limits.messageBytes ends that session with FATAL 54000 before any of it is buffered', async () => {
    const p = await pgProbe(arena.port, startup());
    p.socket.write(Buffer.concat([messageHeader('Q', MiB + 1), Buffer.from('select 1')]));
    await p.closed;
    expect(errorsIn(p.received())).toContainEqual({ severity: 'FATAL', code: '54000', message: expect.stringContaining(`cap of ${MiB} bytes (limits.messageBytes)`) });
    expect((await arena.psql('select 1')).stdout.trim()).toBe('1');
  });

  it('a Bind over limits.bindBytes (16 MiB) likewise; the session end is recorded with the reason', async () => {
    const p = await pgProbe(arena.port, startup());
    p.socket.write(messageHeader('B', 16 * MiB + 1));
    await p.closed;
    expect(errorsIn(p.received())).toContainEqual(expect.objectContaining({ code: '54000', message: expect.stringContaining('(limits.bindBytes)') }));
    await waitFor('the session end in the audit store', () => stateContains(arena.gw, 'cap of 16777216 bytes (limits.bindBytes)'));
  });

  it('still serves a 900 KiB statement and an 8 MiB parameter', async () => {
    const c = await arena.client();
    try {
      const text = await c.query<{ n: number }>(`select length('${'x'.repeat(900 * 1024)}') as n`);
      expect(text.rows[0]?.n).toBe(900 * 1024);
      const bound = await c.query<{ n: number }>('select length($1::text) as n', ['y'.repeat(8 * MiB)]);
      expect(bound.rows[0]?.n).toBe(8 * MiB);
    } finally {
      await c.end();
    }
  });

  it('twelve sessions each declaring 64 MiB are closed at the header; twelve at the cap cost about their cap (RSS measured)', async () => {
    const before = rssMiB(arena.gw);
    const greedy = await Promise.all(Array.from({ length: 12 }, () => pgProbe(arena.port, startup())));
    for (const p of greedy) p.socket.write(Buffer.concat([messageHeader('Q', 64 * MiB), Buffer.alloc(MiB, 0x61)]));
    await Promise.all(greedy.map((p) => p.closed));
    for (const p of greedy) expect(errorsIn(p.received()).map((e) => e.code)).toContain('54000');
    const afterGreedy = rssMiB(arena.gw);

    const atCap: Probe[] = await Promise.all(Array.from({ length: 12 }, () => pgProbe(arena.port, startup())));
    cleanups.push(() => atCap.forEach((p) => p.socket.destroy()));
    await Promise.all(atCap.map((p) => new Promise((r) => p.socket.write(Buffer.concat([messageHeader('Q', MiB), Buffer.alloc(MiB - 5, 0x61)]), r))));
    // The bytes cross `sluice connect` first: wait until the gateway's memory stops growing.
    let last = rssMiB(arena.gw);
    await waitFor('RSS to settle', async () => {
      await new Promise((r) => setTimeout(r, 150));
      const now = rssMiB(arena.gw);
      const settled = Math.abs(now - last) < 0.5;
      last = now;
      return settled;
    });
    const afterAtCap = rssMiB(arena.gw);
    // Every at-cap session is still open, waiting for its last byte: the cap is not a refusal of honest sizes.
    for (const p of atCap) expect(errorsIn(p.received())).toEqual([]);
    for (const p of atCap) expect(p.socket.readyState).toBe('open');
    console.log(`gateway RSS: ${before} MiB before; ${afterGreedy} MiB after 12 sessions declaring 64 MiB; ${afterAtCap} MiB with 12 sessions holding 1 MiB less one byte each`);
    // Loose bounds (RSS moves with the collector and with every session's own state on a shared
    // machine): they catch a gateway that reserves or buffers by declared length (12 × 64 MiB).
    expect(afterGreedy - before).toBeLessThan(160);
    expect(afterAtCap - before).toBeLessThan(240);
    // The gateway held every byte: the last one completes each statement, which is then answered.
    await Promise.all(
      atCap.map(async (p) => {
        p.socket.write(Buffer.from([0]));
        await waitFor('an answer', () => errorsIn(p.received()).length > 0);
        // Not SQL: refused by the policy (42501, it cannot parse what it judges) rather than the session ended.
        expect(errorsIn(p.received())[0]).toMatchObject({ severity: 'ERROR', code: expect.stringMatching(/^42[56]01$/) });
      }),
    );
    for (const p of atCap) p.socket.destroy();
  });
});

describe('one identity cannot take every session slot', () => {
  it('the third concurrent session of a token limited to two is refused with 429 / 53300, recorded, and the CLI says why', async () => {
    const tunnel = await tunnelOn(lean, 'pg-lean', 'greedy');
    const clients = await Promise.all([0, 1].map(async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'x', database: arena.database });
      await c.connect();
      return c;
    }));
    try {
      const third = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'x', database: arena.database });
      const err = (await third.connect().then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string } | undefined;
      expect(err?.code).toBe('53300');
      expect(err?.message).toMatch(/greedy already has 2 open sessions.*limits\.sessionsPerIdentity/);
      expect(tunnel.stderr()).toMatch(/could not be connected: greedy already has 2 open sessions/);
      await waitFor('the refusal in the audit store', () => stateContains(lean, 'greedy already has 2 open sessions'));

      // Another identity is not affected, and the refusal never reached the target.
      const other = await tunnelOn(lean, 'pg-lean', 'bystander');
      const c = new pg.Client({ host: '127.0.0.1', port: other.port, user: 'x', database: arena.database });
      await c.connect();
      await c.end();
      const backends = await arena.admin.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where application_name = 'sluice:greedy'`);
      expect(backends.rows[0]?.n).toBe(2);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
    // Slots are released when sessions end.
    const again = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'x', database: arena.database });
    await again.connect();
    await again.end();
  });

  it('at the limit the identity can still cancel its own statements, and a cancel tunnel carries nothing else', async () => {
    const tunnel = await tunnelOn(lean, 'pg-lean', 'full-pool');
    const clients = await Promise.all([0, 1].map(async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'x', database: arena.database });
      await c.connect();
      return c;
    }));
    const running = clients[0]!.query(`select pg_sleep(30), 'cancel-me'`).then(() => 'finished', (e: { code?: string }) => e.code);
    await waitFor('the statement to run', async () => (await arena.admin.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where query like '%cancel-me%' and pid <> pg_backend_pid()`)).rows[0]?.n === 1);
    // The CancelRequest with the gateway-issued key, as libpq sends it on a connection of its own.
    const { processID, secretKey } = clients[0] as unknown as { processID: number; secretKey: number };
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(processID, 8);
    cancel.writeInt32BE(secretKey, 12);
    const c = await localProbe(tunnel.port);
    c.socket.write(cancel);
    expect(await running).toBe('57014');
    await Promise.all(clients.map((cl) => cl.end()));

    // A tunnel that says it is for a cancel cannot be used for a session past the limit.
    const token = serviceToken(lean, 'sneaky', 'eng');
    const held = await Promise.all([0, 1].map(async () => {
      const p = await tlsProbe(lean);
      await upgrade(p, 'pg-lean', token);
      return p;
    }));
    const p = await tlsProbe(lean);
    expect(await upgrade(p, 'pg-lean', token, ['sluice-purpose: cancel'])).toBe('HTTP/1.1 101 Switching Protocols');
    p.socket.write(startup());
    await p.closed;
    expect(errorsIn(p.received().subarray(p.received().indexOf('\r\n\r\n') + 4))).toContainEqual(expect.objectContaining({ code: '08P01', message: expect.stringContaining('CancelRequest only') }));
    held.forEach((h) => h.socket.destroy());
  });

  it('over the raw upgrade the answer is HTTP 429 with the JSON error', async () => {
    const token = serviceToken(lean, 'raw-greedy', 'eng');
    const held = await Promise.all([0, 1].map(async () => {
      const p = await tlsProbe(lean);
      expect(await upgrade(p, 'pg-lean', token)).toBe('HTTP/1.1 101 Switching Protocols');
      return p;
    }));
    const p = await tlsProbe(lean);
    expect(await upgrade(p, 'pg-lean', token)).toBe('HTTP/1.1 429 Too Many Requests');
    await p.closed;
    expect(p.received().toString()).toContain('"code":"too_many_sessions"');
    held.forEach((h) => h.socket.destroy());
  });
});

describe('a log file that can no longer be written does not take the gateway down', () => {
  it('keeps serving, reports once on stderr, and the audit trail records as before', async () => {
    const tunnel = await tunnelOn(lean, 'pg-lean', 'logger');
    for (const n of [1, 2, 3]) {
      const c = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'x', database: arena.database });
      await c.connect();
      expect((await c.query(`select 'log-full-marker-${n}' as m`)).rows[0]).toEqual({ m: `log-full-marker-${n}` });
      await c.end();
    }
    expect(lean.child.exitCode).toBeNull();
    await waitFor('the statements in the audit store', () => stateContains(lean, 'log-full-marker-3'));
    const reports = lean.output().split('\n').filter((l) => l.includes('cannot write the log file'));
    expect(reports).toEqual(['sluice-gateway: cannot write the log file /dev/full (ENOSPC); log lines are dropped until it can be written again. The audit trail is not affected.']);
  });
});

describe('a gateway whose stderr is a full disk', () => {
  it('starts, serves sessions and records them (it used to stop answering)', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'sluice-gw-full-'));
    const su = cluster.roles.superuser;
    const configFile = writeGatewayConfig(dir, {
      port,
      tls: false,
      connections: [
        {
          name: 'pg-full',
          type: 'postgres',
          target: { host: cluster.host, port: cluster.port, database: arena.database, user: su.user, password: { env: 'FULL_PG_PASSWORD' }, sslmode: 'disable' },
          allow: { groups: ['eng'] },
        },
      ],
      extra: { log: { level: 'debug' } },
    });
    const stderr = openSync('/dev/full', 'w');
    const child = spawn(process.execPath, [GATEWAY_BIN, '--config', configFile], { env: { ...process.env, FULL_PG_PASSWORD: su.password }, stdio: ['ignore', 'ignore', stderr] });
    closeSync(stderr);
    const gw: GatewayProcess = {
      url: `http://127.0.0.1:${port}`,
      caFile: undefined,
      configFile,
      dir,
      child,
      output: () => '',
      stop: async () => {
        if (child.exitCode !== null) return child.exitCode;
        child.kill('SIGTERM');
        return (await once(child, 'exit'))[0] as number | null;
      },
    };
    cleanups.push(async () => {
      await gw.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    // A request that arrives while the gateway is still starting is not answered (see the report), hence the per-try timeout.
    await waitFor('the gateway to answer', () => fetch(`${gw.url}/healthz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false), 20_000);
    const tunnel = await tunnelOn(gw, 'pg-full', 'full-disk');
    const c = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'x', database: arena.database });
    await c.connect();
    expect((await c.query(`select 'stderr-full-marker' as m`)).rows).toEqual([{ m: 'stderr-full-marker' }]);
    await c.end();
    expect(child.exitCode).toBeNull();
    await waitFor('the statement in the audit store', () => stateContains(gw, 'stderr-full-marker'));
  });
});

describe('timeouts: a silent client is let go', () => {
  it('a TCP connection that never starts TLS is closed after limits.headersTimeoutMs', async () => {
    const p = await tcpProbe(arena.gw);
    expect(await p.closed).toBeLessThan(HEADERS_TIMEOUT_MS + SLACK_MS);
  });

  it('an HTTP request whose headers never finish is closed after limits.headersTimeoutMs', async () => {
    const p = await tlsProbe(arena.gw);
    p.socket.write('GET /v1/health HTTP/1.1\r\nhost: localhost\r\nx-slow: ');
    expect(await p.closed).toBeLessThan(HEADERS_TIMEOUT_MS + SLACK_MS);
  });

  it('an upgraded tunnel that never sends its startup is closed after connectTimeoutMs', async () => {
    const token = serviceToken(arena.gw, 'silent', 'eng');
    const p = await tlsProbe(arena.gw);
    expect(await upgrade(p, 'pg-prod', token)).toBe('HTTP/1.1 101 Switching Protocols');
    p.socket.write(Buffer.from([0, 0, 0])); // three bytes of a startup packet, then nothing
    expect(await p.closed).toBeLessThan(CONNECT_TIMEOUT_MS + SLACK_MS);
  });

  it('a tunnel in use outlives limits.requestTimeoutMs (the HTTP timeouts stop at the upgrade)', async () => {
    const r = await arena.psql(`select pg_sleep(1.5), 'still here'`);
    expect(r.stdout.trim()).toBe('|still here');
  });

  it('sluice connect closes a local client that sends half a startup packet, and says so', async () => {
    const tunnel = await tunnelOn(arena.gw, 'pg-prod', 'half-startup', ['--startup-timeout', '1']);
    const half = await localProbe(tunnel.port);
    half.socket.write(Buffer.from([0, 0, 0, 40, 0, 3]));
    const silent = await localProbe(tunnel.port);
    expect(await half.closed).toBeLessThan(1_000 + SLACK_MS);
    expect(await silent.closed).toBeLessThan(1_000 + SLACK_MS);
    expect(tunnel.stderr()).toContain('a local client did not send its startup packet in time; closed');
  });
});

describe('revoking a service token ends its open sessions', () => {
  it('within seconds: the client gets FATAL 28000, the target backend is gone, the audit says why', async () => {
    const tunnel = await tunnelOn(arena.gw, 'pg-prod', 'doomed');
    const c = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'x', database: arena.database });
    await c.connect();
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    const failed = once(c, 'error') as Promise<[{ code?: string; message: string }]>;
    execFileSync(process.execPath, [GATEWAY_BIN, 'token', 'revoke', 'doomed', '--config', arena.gw.configFile], { stdio: 'ignore' });
    const revokedAt = Date.now();
    const [err] = await failed;
    expect(Date.now() - revokedAt).toBeLessThan(3_000);
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/^terminating connection: service token "doomed" was revoked at /);
    await c.end().catch(() => undefined);
    await waitFor('the backend to go', async () => {
      const r = await arena.admin.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where application_name = 'sluice:doomed'`);
      return r.rows[0]?.n === 0;
    });
    await waitFor('the reason in the audit store', () => stateContains(arena.gw, 'service token \\"doomed\\" was revoked'));
    const retry = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'x', database: arena.database });
    await expect(retry.connect()).rejects.toMatchObject({ code: '28000', message: expect.stringContaining('service token "doomed" was revoked') });
  });

  it('also stops a statement the revoked token has running on the target', async () => {
    const tunnel = await tunnelOn(arena.gw, 'pg-prod', 'doomed-busy');
    const c = new pg.Client({ host: '127.0.0.1', port: tunnel.port, user: 'x', database: arena.database });
    await c.connect();
    c.on('error', () => undefined);
    const running = c.query(`select pg_sleep(60), 'busy-marker'`).then(() => 'finished', (e: { code?: string }) => e.code ?? 'failed');
    const busy = `select count(*)::int as n from pg_stat_activity where query like '%busy-marker%' and pid <> pg_backend_pid()`;
    await waitFor('the statement to run', async () => (await arena.admin.query<{ n: number }>(busy)).rows[0]?.n === 1);
    execFileSync(process.execPath, [GATEWAY_BIN, 'token', 'revoke', 'doomed-busy', '--config', arena.gw.configFile], { stdio: 'ignore' });
    expect(await running).not.toBe('finished');
    await waitFor('the statement to stop on the target', async () => (await arena.admin.query<{ n: number }>(busy)).rows[0]?.n === 0, 5_000);
    await c.end().catch(() => undefined);
  });
});

describe('client-supplied text reaches the audit trail escaped and capped', () => {
  it('refuses a sluice-origin header that is not a short lower-case word (latin-1 bytes, 100 characters)', async () => {
    const token = serviceToken(arena.gw, 'origin', 'eng');
    for (const origin of ['connect\xe9', 'x'.repeat(100), 'Connect', 'a b']) {
      const p = await tlsProbe(arena.gw);
      p.socket.write(Buffer.from(`GET /v1/connections/pg-prod/tunnel HTTP/1.1\r\nhost: localhost\r\nupgrade: sluice-tunnel/1\r\nconnection: upgrade\r\nauthorization: Bearer ${token}\r\nsluice-origin: ${origin}\r\n\r\n`, 'latin1'));
      await p.closed;
      expect(p.received().toString('latin1')).toMatch(/^HTTP\/1\.1 400 Bad Request[\s\S]*invalid sluice-origin header/);
    }
    const ok = await tlsProbe(arena.gw);
    expect(await upgrade(ok, 'pg-prod', token, ['sluice-origin: exec'])).toBe('HTTP/1.1 101 Switching Protocols');
    ok.socket.destroy();
  });

  it('escapes terminal escapes, bidi overrides and invalid UTF-8 in startup names, and cuts them to 63 characters', async () => {
    const application = Buffer.concat([Buffer.from('\x1b]0;pwned\x07\u202e', 'utf8'), Buffer.from('Q'.repeat(200))]);
    const p = await pgProbe(arena.port, startupPacket([['user', Buffer.from([0x61, 0xff, 0x62, 0x0a, 0x63])], ['database', arena.database], ['application_name', application]]));
    p.socket.destroy();
    await waitFor('the session start in the audit store', () => stateContains(arena.gw, String.raw`\\u{1b}]0;pwned\\u{7}\\u{202e}QQQ`));
    expect(stateContains(arena.gw, String.raw`a\\u{fffd}b\\u{a}c`)).toBe(true);
    expect(stateContains(arena.gw, 'Q'.repeat(63))).toBe(false);
    expect(stateContains(arena.gw, String.raw`\u001b]0;pwned`)).toBe(false);
  });
});

describe('the CLI sends a token over plain http only to a real loopback address', () => {
  it.each(['http://127.attacker.example', 'http://127.0.0.1.nip.io:8443', 'http://localhost.evil', 'http://[::ffff:7f00:1]'])(
    'sluice login --gateway %s is refused with exit code 2',
    async (url) => {
      const r = await runCli(['login', '--gateway', url, '--no-browser'], { configDir: newConfigDir() });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/refusing plain http:\/\/ for .*http is allowed only for 127\.0\.0\.0\/8, \[::1\] and localhost/);
    },
  );

  it('sluice config set gateway refuses the same, and userinfo in any URL', async () => {
    const configDir = newConfigDir();
    expect((await runCli(['config', 'set', 'gateway', 'http://127.attacker.example'], { configDir })).code).toBe(2);
    for (const url of ['http://127.0.0.1@evil.example', 'https://user:secret@gw.example']) {
      const userinfo = await runCli(['login', '--gateway', url, '--no-browser'], { configDir });
      expect(userinfo.code).toBe(2);
      expect(userinfo.stderr).toContain('must not contain "user:password@"');
      expect(userinfo.stderr).not.toContain('secret');
    }
  });
});
