// Direct mode end to end: the real gateway binary with `listeners.postgres`, the real CLI's
// `sluice dsn` and `sluice connect --direct`, the real psql and the pg driver against the global
// PostgreSQL cluster, over TLS verified against the gateway's certificate.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { once } from 'node:events';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { collect, GATEWAY_BIN, runCli, serviceToken, startGateway, tokenCtx, type GatewayProcess } from '../support/binaries.js';
import { freshDatabase } from '../support/pgEngineHarness.js';
import { errorsIn, startupPacket } from '../support/limitsProbes.js';

const cluster = inject('pgCluster');
const PSQL = cluster.psqlPath;
const PASSWORD_ENV = 'PG_TEST_PASSWORD';

let gw: GatewayProcess;
let token: string;
let benchDb: Awaited<ReturnType<typeof freshDatabase>>;

const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };

beforeAll(async () => {
  benchDb = await freshDatabase(cluster, 'direct_pgbench');
  gw = await startGateway({
    env: { [PASSWORD_ENV]: cluster.password },
    extra: { listeners: { postgres: '127.0.0.1:0' }, credentials: { ttl: '4s' }, audit: { readers: ['eng'] }, limits: { revocationCheckMs: 200 } },
    connections: [
      { name: 'pg-direct', type: 'postgres', target, allow: { groups: ['eng'] }, policy: { rules: [{ id: 'no-drop', block: { statements: ['drop'] } }] } },
      { name: 'pg-other', type: 'postgres', target, allow: { groups: ['eng'] } },
      { name: 'pg-dba', type: 'postgres', target, allow: { groups: ['dba'] } },
      { name: 'pg-bench', type: 'postgres', target: { ...target, database: benchDb.target.database }, allow: { groups: ['eng'] } },
    ],
  });
  token = serviceToken(gw, 'ci', 'eng');
});
afterAll(async () => {
  await gw?.stop();
  await benchDb?.drop();
});

interface Issued {
  id: string;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  dsn: string;
  url: string;
  sslrootcert: string;
}

async function dsn(name = 'pg-direct', ctx = tokenCtx(gw, token)): Promise<Issued> {
  const res = await runCli(['dsn', name, '--json'], ctx);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as Issued;
}

function psql(conninfo: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(PSQL, ['-X', '-v', 'ON_ERROR_STOP=1', '-At', conninfo, ...args], { env: { ...process.env, PGCONNECT_TIMEOUT: '10', ...env } });
  return collect(child);
}

describe('direct mode', () => {
  it('`psql "$(sluice dsn NAME)"`: one line on stdout, verify-full against the gateway CA, the session is audited with origin direct', async () => {
    const ctx = tokenCtx(gw, token);
    const res = await runCli(['dsn', 'pg-direct'], ctx);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^host=127\.0\.0\.1 port=\d+ dbname=\S+ user=pg-direct password=slp_\S+ sslmode=verify-full sslrootcert=\S+\n$/);
    expect(res.stdout).toContain(`sslrootcert=${gw.caFile}`);
    const out = await psql(res.stdout.trim(), ['-c', "select 'direct:' || current_database()", '-c', 'select ssl from pg_stat_ssl where pid = pg_backend_pid()']);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain(`direct:${cluster.database}`);
    // The gateway's own upstream connection is in clear here (sslmode: disable): the TLS is the client's.
    const sessions = await runCli(['sessions', 'ls', '--json', '--connection', 'pg-direct'], ctx);
    expect(sessions.code, sessions.stderr).toBe(0);
    expect(sessions.stdout).toContain('"origin":"direct"');
  });

  it('--url prints a postgresql:// URL the pg driver connects with (verify-full)', async () => {
    const res = await runCli(['dsn', 'pg-direct', '--url'], tokenCtx(gw, token));
    expect(res.code, res.stderr).toBe(0);
    const url = res.stdout.trim();
    expect(url).toMatch(/^postgresql:\/\/pg-direct:slp_[^@]+@127\.0\.0\.1:\d+\/[^?]+\?sslmode=verify-full&sslrootcert=/);
    const u = new URL(url);
    const client = new pg.Client({
      host: u.hostname,
      port: Number(u.port),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      database: decodeURIComponent(u.pathname.slice(1)),
      ssl: { ca: readFileSync(gw.caFile as string, 'utf8'), servername: 'localhost', checkServerIdentity: () => undefined },
    });
    // Hostname check is libpq's business in the other tests; here the CA chain is what is checked.
    await client.connect();
    try {
      const r = await client.query('select $1::int + 1 as n', [41]);
      expect(r.rows[0]).toEqual({ n: 42 });
    } finally {
      await client.end();
    }
  });

  it('a policy block works in direct mode, and the credential is in neither the gateway log nor the audit trail', async () => {
    const c = await dsn();
    const out = await psql(c.dsn, ['-c', 'drop table if exists nothing_here']);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('blocked by rule no-drop');
    expect(gw.output()).not.toContain(c.password);
    expect(gw.output()).not.toContain(c.password.slice(-43));
    const trail = await runCli(['audit', 'export'], tokenCtx(gw, token));
    expect(trail.code, trail.stderr).toBe(0);
    expect(trail.stdout).toContain('drop table if exists nothing_here');
    expect(trail.stdout).not.toContain(c.password.slice(-43));
    const db = readFileSync(`${gw.dir}/state/sluice.db`);
    expect(db.includes(Buffer.from(c.password.slice(-43)))).toBe(false);
  });

  it('refuses a wrong-connection, garbage, revoked and expired credential with 28P01/28000 and says what to do', async () => {
    const c = await dsn();
    const wrong = await psql(c.dsn.replace('user=pg-direct', 'user=pg-other'), ['-c', 'select 1']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('issued for connection "pg-direct", not "pg-other"');
    const garbage = await psql(c.dsn.replace(/password=\S+/, 'password=slp_nonsense'), ['-c', 'select 1']);
    expect(garbage.code).not.toBe(0);
    expect(garbage.stderr).toContain('run `sluice dsn pg-direct` again');
    const probe = await rawStartup(c, 'slp_0123456789abcdef_' + 'A'.repeat(43));
    expect(probe[0]).toMatchObject({ code: '28P01' });
    const wrongCode = await rawStartup({ ...c, user: 'pg-other' }, c.password);
    expect(wrongCode[0]).toMatchObject({ code: '28000' });

    // Revoked: through the API, as `connect --direct` does when its command exits.
    const res = await fetchAsToken(`/v1/credentials/${c.id}/revoke`);
    expect(res.status).toBe(200);
    const revoked = await rawStartup(c, c.password);
    expect(revoked[0]).toMatchObject({ code: '28P01' });
    expect(revoked[0]?.message).toContain('was revoked');

    const e = await dsn();
    await waitUntil(() => Date.now() > Date.parse((e as unknown as { expiresAt: string }).expiresAt) + 50);
    const expired = await rawStartup(e, e.password);
    expect(expired[0]).toMatchObject({ code: '28P01' });
    expect(expired[0]?.message).toContain('expired');
  });

  it('refuses a plaintext startup with a clear message, answers GSSENCRequest with N', async () => {
    const port = (await dsn()).port;
    const s = tcpConnect(port, '127.0.0.1');
    await once(s, 'connect');
    const gss = Buffer.alloc(8);
    gss.writeInt32BE(8, 0);
    gss.writeInt32BE(80877104, 4);
    s.write(gss);
    const [n] = (await once(s, 'data')) as [Buffer];
    expect(n.toString()).toBe('N');
    s.write(startupPacket([['user', 'pg-direct'], ['database', cluster.database]]));
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    await once(s, 'close');
    const errors = errorsIn(Buffer.concat(chunks));
    expect(errors[0]).toMatchObject({ code: '28000' });
    expect(errors[0]?.message).toContain('sslmode=require or sslmode=verify-full');
    const viaPsql = await psql(`host=127.0.0.1 port=${port} user=pg-direct sslmode=disable`, ['-c', 'select 1']);
    expect(viaPsql.code).not.toBe(0);
    expect(viaPsql.stderr).toContain('TLS only');
  });

  it('PostgreSQL 17 direct TLS: ALPN postgresql is served, a handshake without it is dropped', async () => {
    const c = await dsn();
    const ok = await rawStartup(c, c.password, { direct: true });
    expect(ok).toEqual([]);
    const bad = tlsConnect({ host: '127.0.0.1', port: c.port, ca: readFileSync(gw.caFile as string), servername: 'localhost' });
    bad.on('error', () => undefined);
    let received = 0;
    bad.on('data', (d: Buffer) => (received += d.length));
    bad.once('secureConnect', () => bad.write(startupPacket([['user', c.user], ['database', c.database]])));
    await once(bad, 'close');
    expect(bad.alpnProtocol).toBeFalsy();
    // No password request: the startup was never read.
    expect(received).toBe(0);
  });

  it('cancel on the direct port: pg_sleep is cancelled (57014) and is gone from pg_stat_activity', async () => {
    const c = await dsn();
    const client = new pg.Client({ host: c.host, port: c.port, user: c.user, password: c.password, database: c.database, ssl: { ca: readFileSync(gw.caFile as string, 'utf8'), servername: 'localhost' }, application_name: 'direct-cancel' });
    await client.connect();
    try {
      const sleeping = client.query('select pg_sleep(60)').then(
        () => undefined,
        (err: { code?: string }) => err.code,
      );
      const watcher = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: cluster.database });
      await watcher.connect();
      try {
        await waitUntilAsync(async () => (await watcher.query("select count(*)::int as n from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'")).rows[0].n === 1);
        // psql's Ctrl-C path: PQcancel sends the CancelRequest in clear on a connection of its own.
        const key = (client as unknown as { processID: number; secretKey: number });
        const s = tcpConnect(c.port, '127.0.0.1');
        await once(s, 'connect');
        const cancel = Buffer.alloc(16);
        cancel.writeInt32BE(16, 0);
        cancel.writeInt32BE(80877102, 4);
        cancel.writeInt32BE(key.processID, 8);
        cancel.writeInt32BE(key.secretKey, 12);
        s.end(cancel);
        await once(s, 'close');
        expect(await sleeping).toBe('57014');
        expect((await watcher.query("select count(*)::int as n from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'")).rows[0].n).toBe(0);
      } finally {
        await watcher.end();
      }
      expect((await client.query('select 1 as one')).rows[0]).toEqual({ one: 1 });
    } finally {
      await client.end();
    }
  });

  it('`sluice connect NAME --direct -- CMD`: PG* and DATABASE_URL set, renewed past the TTL, revoked at exit', async () => {
    const ctx = tokenCtx(gw, token);
    // The TTL is 4 s: the second psql connects after it has passed, with the same environment.
    const script = `${PSQL} -X -At -c "select 'first'" && sleep 6 && ${PSQL} -X -At -c "select 'second'" && echo "url=$DATABASE_URL" && echo "pass=$PGPASSWORD"`;
    const res = await runCli(['connect', 'pg-direct', '--direct', '--', 'sh', '-c', script], ctx);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('first');
    expect(res.stdout).toContain('second');
    expect(res.stdout).toMatch(/url=postgresql:\/\/pg-direct:slp_/);
    const password = /pass=(\S+)/.exec(res.stdout)?.[1] as string;
    const after = await rawStartup(await dsn(), password);
    expect(after[0]).toMatchObject({ code: '28P01' });
    expect(after[0]?.message).toContain('revoked');
  });

  it('pgbench runs in direct mode: -i and -S with several clients, given "$(sluice dsn NAME)"', async () => {
    const pgbench = cluster.psqlPath.replace(/psql$/, 'pgbench');
    const init = await runPgbench(pgbench, ['-i', '-s', '1', '-q', (await dsn('pg-bench')).dsn]);
    expect(init.code, init.stderr).toBe(0);
    const run = await runPgbench(pgbench, ['-S', '-c', '4', '-t', '25', '-n', (await dsn('pg-bench')).dsn]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/number of transactions actually processed: 100\/100/);
    expect(run.stdout).toMatch(/number of failed transactions: 0/);
  });

  it('revoking the service token that asked for the credential ends its open direct session (28000)', async () => {
    const doomed = serviceToken(gw, 'doomed', 'eng');
    const c = await dsn('pg-direct', tokenCtx(gw, doomed));
    const client = new pg.Client({ host: c.host, port: c.port, user: c.user, password: c.password, database: c.database, ssl: { ca: readFileSync(gw.caFile as string, 'utf8'), servername: 'localhost' } });
    const ended = new Promise<{ code?: string; message?: string }>((resolve) => client.on('error', (err: { code?: string; message?: string }) => resolve(err)));
    await client.connect();
    expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    execFileSync(process.execPath, [GATEWAY_BIN, 'token', 'revoke', 'doomed', '--config', gw.configFile], { stdio: 'ignore' });
    const err = await ended;
    expect(err.code).toBe('28000');
    expect(err.message).toContain('doomed');
    // And the password it issued opens nothing more: the token's identity is refused at admission.
    const again = await rawStartup(c, c.password);
    expect(again[0]?.code).toBe('28P01');
    await client.end().catch(() => undefined);
  });

  it('revoking a direct credential ends the sessions open with it (28000) and their backends on the target; expiry ends none', async () => {
    const admin = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: cluster.database });
    await admin.connect();
    const ssl = { ca: readFileSync(gw.caFile as string, 'utf8'), servername: 'localhost' };
    try {
      const c = await dsn();
      const open = (app: string) => {
        const client = new pg.Client({ host: c.host, port: c.port, user: c.user, password: c.password, database: c.database, ssl, application_name: app });
        const ended = new Promise<{ code?: string; message?: string }>((resolve) => client.on('error', (err: { code?: string; message?: string }) => resolve(err)));
        return { client, ended };
      };
      const a = open('revoke-a');
      const b = open('revoke-b');
      await a.client.connect();
      await b.client.connect();
      const backends = async () => (await admin.query("select count(*)::int as n from pg_stat_activity where application_name like 'sluice:ci:revoke-_'")).rows[0].n as number;
      expect(await backends()).toBe(2);
      // Past its 4 s TTL the sessions go on (VALID UNTIL semantics); only a new login is refused.
      await waitUntil(() => Date.now() > Date.parse((c as unknown as { expiresAt: string }).expiresAt) + 300);
      expect((await a.client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      expect((await rawStartup(c, c.password))[0]?.code).toBe('28P01');
      // A running statement is ended with the session.
      const running = b.client.query('select pg_sleep(60)').catch((err: { code?: string }) => err);
      const res = await fetchAsToken(`/v1/credentials/${c.id}/revoke`);
      expect(res.status).toBe(200);
      // The idle session hears it as an error event, the busy one as its statement's error.
      for (const ended of [a.ended, running]) {
        const err = (await ended) as { code?: string; message?: string };
        expect(err.code).toBe('28000');
        expect(err.message).toContain(`direct credential ${c.id} was revoked at`);
        expect(err.message).not.toContain(c.password.slice(-43));
      }
      await waitUntilAsync(async () => (await backends()) === 0);
      await a.client.end().catch(() => undefined);
      await b.client.end().catch(() => undefined);
      const trail = await runCli(['audit', 'export'], tokenCtx(gw, token));
      expect(trail.stdout).toContain(`direct credential ${c.id} was revoked at`);
      expect(trail.stdout).not.toContain(c.password.slice(-43));
    } finally {
      await admin.end();
    }
  });

  it('refused direct logins are in the audit trail, under the identity the password was issued to when known, never with the password', async () => {
    const c = await dsn();
    const garbage = 'slp_0123456789abcdef_' + 'Q'.repeat(43);
    const refusals = [
      await rawStartup(c, garbage),
      await rawStartup({ ...c, user: 'pg-other' }, c.password),
      await rawStartup({ ...c, user: 'no-such-connection' }, c.password),
    ];
    expect(refusals.map((r) => r[0]?.code)).toEqual(['28P01', '28000', '28000']);
    expect((await fetchAsToken(`/v1/credentials/${c.id}/revoke`)).status).toBe(200);
    expect((await rawStartup(c, c.password))[0]?.code).toBe('28P01');
    const list = async (connection: string) => {
      const res = await runCli(['sessions', 'ls', '--json', '--connection', connection], tokenCtx(gw, token));
      expect(res.code, res.stderr).toBe(0);
      return JSON.parse(res.stdout) as { user: string; subject: string; origin: string; status: string; error: string | null; clientAddress: string }[];
    };
    const direct = (await list('pg-direct')).filter((s) => s.status === 'error');
    expect(direct).toEqual(expect.arrayContaining([
      expect.objectContaining({ user: 'unauthenticated', origin: 'direct', clientAddress: '127.0.0.1', error: expect.stringContaining('not a credential this gateway issued') }),
      expect.objectContaining({ user: 'ci', subject: 'token:ci', origin: 'direct', error: expect.stringContaining(`was revoked at`) }),
    ]));
    expect((await list('pg-other')).filter((s) => s.status === 'error')).toEqual(expect.arrayContaining([expect.objectContaining({ user: 'ci', error: expect.stringContaining('issued for connection "pg-direct"') })]));
    expect((await list('no-such-connection'))).toEqual(expect.arrayContaining([expect.objectContaining({ user: 'ci', status: 'error', error: expect.stringContaining('issued for connection "pg-direct"') })]));
    const trail = await runCli(['audit', 'export'], tokenCtx(gw, token));
    expect(trail.code, trail.stderr).toBe(0);
    expect(trail.stdout).toContain('"sqlstate":"28P01"');
    for (const secret of [c.password.slice(-43), garbage.slice(-43)]) {
      expect(trail.stdout).not.toContain(secret);
      expect(gw.output()).not.toContain(secret);
      expect(readFileSync(`${gw.dir}/state/sluice.db`).includes(Buffer.from(secret))).toBe(false);
    }
  });

  it('a caller outside the connection\'s groups gets no credential', async () => {
    const res = await runCli(['dsn', 'pg-dba'], tokenCtx(gw, token));
    expect(res.code).not.toBe(0);
    expect(res.stdout).toBe('');
  });
});

describe('direct listener under a flood of unauthenticated connections', () => {
  const CAP = 4;
  const TIMEOUT_MS = 2_000;
  let flood: GatewayProcess;
  let floodToken: string;

  beforeAll(async () => {
    flood = await startGateway({
      env: { [PASSWORD_ENV]: cluster.password },
      extra: { listeners: { postgres: '127.0.0.1:0' }, limits: { unauthenticatedConnections: CAP, authenticationTimeoutMs: TIMEOUT_MS } },
      connections: [{ name: 'pg-direct', type: 'postgres', target, allow: { groups: ['eng'] } }],
    });
    floodToken = serviceToken(flood, 'ci', 'eng');
  });
  afterAll(async () => {
    await flood?.stop();
  });

  it('holds at most limits.unauthenticatedConnections, refuses the next with 53300 at once, times out the silent ones with 08P01, keeps serving', async () => {
    const issued = async () => {
      const res = await runCli(['dsn', 'pg-direct', '--json'], tokenCtx(flood, floodToken));
      expect(res.code, res.stderr).toBe(0);
      return JSON.parse(res.stdout) as Issued;
    };
    const c = await issued();
    const ca = readFileSync(flood.caFile as string);
    const watch = (s: import('node:net').Socket) => {
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', () => undefined);
      const closed = Promise.race([once(s, 'end'), once(s, 'close')]);
      return { received: () => Buffer.concat(chunks), closed };
    };
    // Two silent in clear, one stalled after 'S' (TLS never started), one silent inside TLS.
    const silent = [];
    for (let i = 0; i < 2; i++) {
      const s = tcpConnect(c.port, '127.0.0.1');
      await once(s, 'connect');
      silent.push(watch(s));
    }
    const stalled = tcpConnect(c.port, '127.0.0.1');
    await once(stalled, 'connect');
    const stalledProbe = watch(stalled);
    stalled.write(sslRequest());
    await waitUntil(() => stalledProbe.received().toString() === 'S');
    const raw = tcpConnect(c.port, '127.0.0.1');
    await once(raw, 'connect');
    raw.write(sslRequest());
    await once(raw, 'data');
    const inTls = tlsConnect({ socket: raw, ca, servername: 'localhost' });
    await once(inTls, 'secureConnect');
    const inTlsProbe = watch(inTls);

    // The fifth is refused before anything of it is read: FATAL 53300 in clear.
    const fifth = tcpConnect(c.port, '127.0.0.1');
    const fifthProbe = watch(fifth);
    fifth.write(sslRequest());
    await fifthProbe.closed;
    const refused = errorsIn(fifthProbe.received());
    expect(refused[0]).toMatchObject({ code: '53300' });
    expect(refused[0]?.message).toContain(`limits.unauthenticatedConnections: ${CAP}`);
    // psql is refused too, and the gateway's API still answers.
    const viaPsql = await psql(c.dsn, ['-c', 'select 1']);
    expect(viaPsql.code).not.toBe(0);
    await issued();

    // Each silent connection is refused after the timeout, on the layer it speaks.
    await Promise.all([...silent.map((p) => p.closed), stalledProbe.closed, inTlsProbe.closed]);
    for (const p of [...silent, inTlsProbe]) {
      const errs = errorsIn(p.received());
      expect(errs[0]).toMatchObject({ code: '08P01' });
      expect(errs[0]?.message).toContain('limits.authenticationTimeoutMs');
    }
    expect(stalledProbe.received().toString()).toBe('S');
    // The slots are free again: a real client gets in.
    const ok = await psql((await issued()).dsn, ['-c', "select 'after-flood'"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('after-flood');
    expect(flood.output()).toContain('too many connections waiting to authenticate');
  });
});

function sslRequest(): Buffer {
  const req = Buffer.alloc(8);
  req.writeInt32BE(8, 0);
  req.writeInt32BE(80877103, 4);
  return req;
}

/** Runs a TLS startup with `password` and returns the ErrorResponses the gateway sent (none: it authenticated). */
async function rawStartup(c: Pick<Issued, 'port' | 'user' | 'database'>, password: string, opts: { direct?: boolean } = {}): Promise<{ code: string; message: string }[]> {
  const ca = readFileSync(gw.caFile as string);
  let sock;
  if (opts.direct) {
    sock = tlsConnect({ host: '127.0.0.1', port: c.port, ca, servername: 'localhost', ALPNProtocols: ['postgresql'] });
    await once(sock, 'secureConnect');
  } else {
    const raw = tcpConnect(c.port, '127.0.0.1');
    await once(raw, 'connect');
    const req = Buffer.alloc(8);
    req.writeInt32BE(8, 0);
    req.writeInt32BE(80877103, 4);
    raw.write(req);
    const [answer] = (await once(raw, 'data')) as [Buffer];
    expect(answer.toString()).toBe('S');
    sock = tlsConnect({ socket: raw, ca, servername: 'localhost' });
    await once(sock, 'secureConnect');
  }
  const s = sock;
  s.on('error', () => undefined);
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  s.write(startupPacket([['user', c.user], ['database', c.database]]));
  await waitUntil(() => Buffer.concat(chunks).length >= 9);
  const pw = Buffer.from(`${password}\0`);
  const msg = Buffer.alloc(5);
  msg.write('p', 0);
  msg.writeInt32BE(4 + pw.length, 1);
  s.write(Buffer.concat([msg, pw]));
  await waitUntil(() => {
    const b = Buffer.concat(chunks);
    return errorsIn(b).length > 0 || b.includes(Buffer.from('Z\0\0\0\x05I'));
  });
  s.destroy();
  return errorsIn(Buffer.concat(chunks));
}

function runPgbench(bin: string, args: string[]) {
  return collect(spawn(bin, args, { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } }));
}

async function fetchAsToken(path: string): Promise<Response> {
  const { Agent, fetch } = await import('undici');
  const dispatcher = new Agent({ connect: { ca: readFileSync(gw.caFile as string, 'utf8') } });
  return (await fetch(gw.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}` }, dispatcher })) as unknown as Response;
}

async function waitUntil(cond: () => boolean, ms = 15_000): Promise<void> {
  return waitUntilAsync(async () => cond(), ms);
}

async function waitUntilAsync(cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
