// The audit trail end to end: the real gateway and CLI binaries, sessions through the tunnel with
// real psql, `sluice sessions …`, `sluice audit export | verify | key`, who may read what,
// tampering detected by the real `sluice audit verify`, and no secret in the store's files.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SessionDetail, SessionSummary } from '../../src/api/contract.js';
import { newConfigDir, runCli, serviceToken, startGateway, type GatewayProcess } from '../support/binaries.js';

const cluster = inject('pgCluster');
const PSQL = cluster.psqlPath;
const PASSWORD_ENV = 'PG_TEST_PASSWORD';
const MARKER = `audit-marker-${randomBytes(4).toString('hex')}`;

let gw: GatewayProcess;
let configDir: string;
let readerToken: string;
let userToken: string;
let work: string;

const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };

function token(g: GatewayProcess, name: string, groups: string): string {
  return serviceToken(g, name, groups);
}
const ctx = (tok: string, g = gw) => ({ configDir, env: { SLUICE_TOKEN: tok, SLUICE_GATEWAY: g.url, SLUICE_CA: g.caFile as string } });
const cli = (args: string[], tok = readerToken, g = gw) => runCli(args, ctx(tok, g));
async function psqlThrough(tok: string, script: string[], g = gw) {
  const res = await runCli(['connect', 'pg-test', '--port', '0', '--', PSQL, '-X', '-v', 'ON_ERROR_STOP=0', ...script.flatMap((s) => ['-c', s])], ctx(tok, g));
  return res;
}
async function sessions(tok = readerToken, extra: string[] = []): Promise<SessionSummary[]> {
  const res = await cli(['sessions', '--json', ...extra], tok);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as SessionSummary[];
}

beforeAll(async () => {
  gw = await startGateway({
    env: { [PASSWORD_ENV]: cluster.password },
    connections: [{ name: 'pg-test', type: 'postgres', target, allow: { groups: ['eng'] } }],
    extra: { audit: { readers: ['auditors'], checkpoint: { sessions: 1, seconds: 1 } } },
  });
  readerToken = token(gw, 'auditor', 'eng,auditors');
  userToken = token(gw, 'dev', 'eng');
  configDir = newConfigDir();
  work = gw.dir;
  const a = await psqlThrough(readerToken, [`select 40 + 2 as answer, '${MARKER}' as marker`, 'select 1/0', 'create temp table t (id int)']);
  expect(a.code, a.stderr).toBe(0);
  const b = await psqlThrough(userToken, ['select 7 as seven']);
  expect(b.code, b.stderr).toBe(0);
  // Seals are committed on the writer's next turn; let the checkpoint timer run once.
  await new Promise((r) => setTimeout(r, 1_500));
});
afterAll(async () => {
  await gw?.stop();
});

describe('sluice sessions', () => {
  it('lists every session for an audit reader and only their own for anyone else', async () => {
    const all = await sessions();
    expect(all.map((s) => s.user).sort()).toEqual(['auditor', 'dev']);
    expect(all.every((s) => s.status === 'ok' && s.ledgerSeq !== null)).toBe(true);
    const mine = await sessions(userToken);
    expect(mine.map((s) => s.user)).toEqual(['dev']);
    expect((await sessions(readerToken, ['--user', 'dev'])).map((s) => s.user)).toEqual(['dev']);
    expect(await sessions(readerToken, ['--connection', 'nope'])).toEqual([]);
    expect((await sessions(readerToken, ['--since', '1h'])).length).toBe(2);
    const human = await cli(['sessions']);
    expect(human.stdout).toMatch(/^ID\s+STARTED\s+USER\s+CONNECTION\s+STATUS\s+QUERIES\s+BLOCKED\s+REVIEWED\s+DURATION\n/);
    expect(human.stdout).toMatch(/auditor\s+pg-test\s+ok\s+3\s/);
  });

  it('shows a timeline with each statement, its outcome and rows', async () => {
    const [s] = await sessions(readerToken, ['--user', 'auditor']);
    const res = await cli(['sessions', 'show', s!.id]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`session ${s!.id} · pg-test (postgres, database ${cluster.database})`);
    expect(res.stdout).toContain('who     auditor (service token; groups: eng, auditors)');
    expect(res.stdout).toMatch(/#1 {2}select 40 \+ 2 as answer/);
    expect(res.stdout).toMatch(/recorded → SELECT 1 · 1 row · [\d.]+ ms/);
    expect(res.stdout).toContain('recorded → error 22012: division by zero');
    expect(res.stdout).toContain('recorded → CREATE TABLE');
    const json = JSON.parse((await cli(['sessions', 'show', s!.id, '--json'])).stdout) as SessionDetail;
    expect(json.events.map((e) => e.kind)).toEqual(['session.start', 'query', 'result', 'query', 'result', 'query', 'result', 'session.end']);
    expect(json.events.every((e) => /^[0-9a-f]{64}$/.test(e.hash))).toBe(true);
  });

  it('refuses someone else\u2019s session to a non-reader (as if it did not exist)', async () => {
    const [s] = await sessions(readerToken, ['--user', 'auditor']);
    const res = await cli(['sessions', 'show', s!.id], userToken);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`no session "${s!.id}" that you may read`);
  });

  it('replays statements and their results in order', async () => {
    const [s] = await sessions(readerToken, ['--user', 'auditor']);
    const res = await cli(['sessions', 'replay', s!.id, '--speed', '0']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe(
      [
        `${cluster.database}=> select 40 + 2 as answer, '${MARKER}' as marker`,
        // The engine records each result's columns and first rows (onColumns/onRow).
        ` answer | ${' '.repeat(Math.floor((MARKER.length - 6) / 2))}marker${' '.repeat(Math.ceil((MARKER.length - 6) / 2))} `,
        `--------+-${'-'.repeat(MARKER.length)}-`,
        `     42 | ${MARKER}`,
        '(1 row)',
        '',
        `${cluster.database}=> select 1/0`,
        'ERROR:  division by zero',
        `${cluster.database}=> create temp table t (id int)`,
        'CREATE TABLE',
        '',
      ].join('\n'),
    );
    expect(res.stderr).toContain(`replaying session ${s!.id}`);
    expect(res.stderr).toMatch(/session ended .*: ok/);
  });
});

describe('sluice audit export and verify', () => {
  let trail: string;
  let pub: string;
  beforeAll(async () => {
    const key = await cli(['audit', 'key']);
    expect(key.code, key.stderr).toBe(0);
    expect(key.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    pub = join(work, 'gateway.pub');
    writeFileSync(pub, key.stdout);
    const exp = await cli(['audit', 'export']);
    expect(exp.code, exp.stderr).toBe(0);
    trail = exp.stdout;
  });

  const verify = async (text: string, keyFile = pub) => {
    const file = join(work, `trail-${randomBytes(3).toString('hex')}.jsonl`);
    writeFileSync(file, text);
    return runCli(['audit', 'verify', file, '--key', keyFile], { configDir: newConfigDir() }); // offline: no gateway configured
  };
  const lines = () => trail.trimEnd().split('\n');
  const eventIndex = (l: string[], kind: string, nth = 0) => l.map((x, i) => [x, i] as const).filter(([x]) => x.includes(`"kind":"${kind}"`) && x.includes('"type":"event"'))[nth]![1];

  it('an untouched export verifies offline (exit 0)', async () => {
    const res = await verify(trail);
    expect(res.stderr).toMatch(/^verified: 2 sessions \(2 sealed, 0 still open\), 12 events, ledger #1–#2, \d+ signed checkpoints and the signed end line, with key [0-9a-f]{16}\n$/);
    expect(res.code).toBe(0);
  });

  it('verifies an export piped to stdin (`-`), and names an edit in it the same way', async () => {
    const piped = await runCli(['audit', 'verify', '-', '--key', pub], { configDir: newConfigDir() }, trail);
    expect(piped.stderr).toMatch(/^verified: 2 sessions \(2 sealed, 0 still open\), 12 events/);
    expect(piped.code).toBe(0);
    const l = lines();
    const i = eventIndex(l, 'query');
    l[i] = l[i]!.replace('40 + 2', '40 + 3');
    const edited = await runCli(['audit', 'verify', '-', '--key', pub], { configDir: newConfigDir() }, l.join('\n'));
    expect(edited.code).toBe(1);
    expect(edited.stderr).toContain(`line ${i + 1}: session s_`);
  });

  it('reads lines ending at LF only (a stray CR is whitespace), and calls a file with nothing readable empty', async () => {
    const l = lines();
    l[1] = l[1]!.replace('{', '{\r');
    const crlf = await verify(`${l.join('\r\n')}\r\n`);
    expect(crlf.stderr).toMatch(/^verified: 2 sessions/);
    expect(crlf.code).toBe(0);
    const garbage = await verify('this is not\nan export\n');
    expect(garbage.stderr).toBe('sluice: the audit trail does NOT verify: the export is empty\n');
    expect(garbage.code).toBe(1);
  });

  it('an edited payload: exit 1, names the session, the event and why', async () => {
    const l = lines();
    const i = eventIndex(l, 'query');
    l[i] = l[i]!.replace('40 + 2', '40 + 3');
    const res = await verify(l.join('\n'));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`sluice: the audit trail does NOT verify: line ${i + 1}: session s_\\S+ event #2 \\(query\\): its content does not match its hash: it was changed after it was recorded`));
  });

  it('a deleted event', async () => {
    const l = lines();
    l.splice(eventIndex(l, 'result'), 1);
    const res = await verify(l.join('\n'));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/line \d+: session s_\S+: event #3 is missing \(the export goes from #2 to #4\)/);
  });

  it('two events reordered', async () => {
    const l = lines();
    const i = eventIndex(l, 'query', 1);
    [l[i], l[i + 1]] = [l[i + 1]!, l[i]!];
    const res = await verify(l.join('\n'));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/session s_\S+: events are out of order: #5 \(line \d+\) comes before #4 \(line \d+\)/);
  });

  it('a whole session deleted', async () => {
    const l = lines();
    const victim = (JSON.parse(l[1]!) as { session: string }).session;
    const res = await verify(l.filter((x) => !x.includes(`"session":"${victim}"`) || !x.includes('"type":"event"')).join('\n'));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`session ${victim} was sealed in ledger #\\d \\(\\d+ events\\) but its events are not in the export: the session was deleted`));
  });

  it('the tail truncated', async () => {
    const l = lines();
    const res = await verify(l.slice(0, l.length - 3).join('\n') + '\n');
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/the audit trail does NOT verify: line \d+: the export has no signed end line: it was truncated after line \d+/);
  });

  it('another key', async () => {
    const other = join(work, 'other.pub');
    writeFileSync(other, execFileSync('openssl', ['pkey', '-pubout'], { input: execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519']) }));
    const res = await verify(trail, other);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/signature does not verify with the given key \(signed by key [0-9a-f]{16}, not the given key [0-9a-f]{16}\)/);
  });

  it('a non-reader may export and verify only their own session', async () => {
    const refused = await cli(['audit', 'export'], userToken);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('exporting more than one of your own sessions needs one of the audit reader groups (auditors)');
    const [own] = await sessions(userToken);
    const mine = await cli(['audit', 'export', '--session', own!.id], userToken);
    expect(mine.code, mine.stderr).toBe(0);
    const res = await verify(mine.stdout);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('verified: 1 sessions (1 sealed, 0 still open), 4 events');
  });
});

describe('what the store holds', () => {
  it('never the held database password or a service token, though statements are there', async () => {
    const files = ['sluice.db', 'sluice.db-wal', 'audit-journal-a.jsonl', 'audit-journal-b.jsonl'].map((f) => join(work, 'state', f));
    const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
    expect(bytes.includes(Buffer.from(MARKER))).toBe(true); // the right files: statements are recorded
    expect(bytes.includes(Buffer.from(cluster.password))).toBe(false);
    expect(bytes.includes(Buffer.from(readerToken))).toBe(false);
    expect(bytes.includes(Buffer.from(userToken))).toBe(false);
    expect(readFileSync(join(work, 'state', 'audit-ed25519.pem'), 'utf8')).toContain('PRIVATE KEY'); // the key lives beside the store…
    expect(bytes.includes(Buffer.from('PRIVATE KEY'))).toBe(false); // …never in it
  });

  it('GET /v1/audit/key is public; /healthz reports the audit', async () => {
    const ca = gw.caFile ? readFileSync(gw.caFile) : undefined;
    const { Agent, fetch } = await import('undici');
    const dispatcher = new Agent({ connect: ca ? { ca } : {} });
    const key = await fetch(`${gw.url}/v1/audit/key`, { dispatcher });
    expect(key.status).toBe(200);
    expect(key.headers.get('sluice-key-id')).toMatch(/^[0-9a-f]{16}$/);
    const health = await fetch(`${gw.url}/healthz`, { dispatcher });
    expect(await health.json()).toEqual({ status: 'ok', audit: 'ok' });
  });
});

describe('with the PostgreSQL store', () => {
  it('records sessions in a shared database, and the export verifies', async () => {
    const db = `sluice_gw_${randomBytes(4).toString('hex')}`;
    const su = cluster.roles.superuser;
    const admin = new pg.Client({ host: cluster.host, port: cluster.port, user: su.user, password: su.password, database: 'postgres' });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${db}`);
    await admin.end();
    const pgw = await startGateway({
      env: { [PASSWORD_ENV]: cluster.password, STORE_PASSWORD: su.password },
      connections: [{ name: 'pg-test', type: 'postgres', target, allow: { groups: ['eng'] } }],
      extra: { store: { postgres: `postgresql://${su.user}@${cluster.host}:${cluster.port}/${db}`, password: { env: 'STORE_PASSWORD' } }, audit: { readers: ['auditors'] } },
    });
    try {
      const tok = serviceToken(pgw, 'pg-auditor', 'eng,auditors', { STORE_PASSWORD: su.password });
      const run = await psqlThrough(tok, ['select 1', 'select 2'], pgw);
      expect(run.code, run.stderr).toBe(0);
      await new Promise((r) => setTimeout(r, 300));
      const list = JSON.parse((await cli(['sessions', '--json'], tok, pgw)).stdout) as SessionSummary[];
      expect(list).toHaveLength(1);
      expect(list[0]).toMatchObject({ user: 'pg-auditor', status: 'ok', queries: 2 });
      const pubKey = (await cli(['audit', 'key'], tok, pgw)).stdout;
      const exp = await cli(['audit', 'export'], tok, pgw);
      expect(exp.code, exp.stderr).toBe(0);
      writeFileSync(join(pgw.dir, 'pg.pub'), pubKey);
      writeFileSync(join(pgw.dir, 'pg-trail.jsonl'), exp.stdout);
      const v = await runCli(['audit', 'verify', join(pgw.dir, 'pg-trail.jsonl'), '--key', join(pgw.dir, 'pg.pub')], { configDir: newConfigDir() });
      expect(v.code, v.stderr).toBe(0);
      expect(pgw.output()).not.toContain(su.password);
    } finally {
      await pgw.stop();
    }
  });
});
