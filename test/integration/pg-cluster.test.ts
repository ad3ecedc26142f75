// The test PostgreSQL cluster: each role logs in with the method it is meant to exercise, a wrong
// password is refused with 28P01, psql works, and the server's SCRAM verifiers agree with the
// gateway's SASLprep for non-ASCII passwords.
import { execFile } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saslprep } from '../../gateway/engines/postgres/scram.js';
import type { PgClusterDetails, PgRole } from '../support/pgCluster.js';
import setup from '../support/pgClusterGlobal.js';

const execFileAsync = promisify(execFile);

let cluster: PgClusterDetails;
let teardown: () => Promise<void>;

beforeAll(async () => {
  // Drive the globalSetup entry point itself, with a stand-in for vitest's project.
  let provided: PgClusterDetails | undefined;
  teardown = await setup({
    provide: (key, value) => {
      if (key === 'pgCluster') provided = value;
    },
  });
  if (!provided) throw new Error('globalSetup did not provide pgCluster');
  cluster = provided;
});

afterAll(async () => {
  await teardown?.();
});

async function withClient<T>(role: PgRole, fn: (client: pg.Client) => Promise<T>, database = cluster.database): Promise<T> {
  const client = new pg.Client({ host: cluster.host, port: cluster.port, database, user: role.user, password: role.password });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function currentUser(role: PgRole): Promise<string> {
  return withClient(role, async (c) => (await c.query<{ u: string }>('select current_user as u')).rows[0]!.u);
}

describe('test PostgreSQL cluster', () => {
  it('gives the app role (SCRAM-SHA-256) its own database by default', async () => {
    expect(cluster.user).toBe('app');
    expect(cluster.password).toBe(cluster.roles.app.password);
    await withClient(cluster.roles.app, async (c) => {
      const { rows } = await c.query('select current_user, current_database(), version()');
      expect(rows[0]).toMatchObject({ current_user: 'app', current_database: 'app' });
      expect(rows[0].version).toMatch(/^PostgreSQL 15\./);
    });
  });

  it('stores each role password in the form its pg_hba method needs', async () => {
    const rows = await withClient(
      cluster.roles.superuser,
      async (c) => (await c.query<{ rolname: string; kind: string }>(
        "select rolname, split_part(rolpassword, '$', 1) as kind from pg_authid where rolname like 'app%' order by 1",
      )).rows,
      'postgres',
    );
    expect(rows.map((r) => [r.rolname, r.kind.startsWith('md5') ? 'md5' : r.kind])).toEqual([
      ['app', 'SCRAM-SHA-256'],
      ['app_clear', 'SCRAM-SHA-256'],
      ['app_md5', 'md5'],
    ]);
  });

  it('logs in app_md5 (MD5) and app_clear (cleartext) and the superuser', async () => {
    expect(await currentUser(cluster.roles.md5)).toBe('app_md5');
    expect(await currentUser(cluster.roles.cleartext)).toBe('app_clear');
    expect(await currentUser(cluster.roles.superuser)).toBe('postgres');
  });

  it.each(['app', 'md5', 'cleartext'] as const)('refuses a wrong password for %s with 28P01', async (name) => {
    const role = cluster.roles[name];
    await expect(currentUser({ user: role.user, password: `${role.password}x` })).rejects.toMatchObject({ code: '28P01' });
  });

  it('serves psql', async () => {
    const { stdout } = await execFileAsync(
      cluster.psqlPath,
      ['-h', cluster.host, '-p', String(cluster.port), '-U', cluster.user, '-d', cluster.database, '-XAtc', 'select current_user'],
      { env: { ...process.env, PGPASSWORD: cluster.password } },
    );
    expect(stdout.trim()).toBe('app');
  });
});

describe('SASLprep agrees with PostgreSQL', () => {
  // Each password is stored by the server (which runs its own SASLprep); the StoredKey we derive
  // from our SASLprep must equal the one in pg_authid.
  const passwords = [
    'plain-ascii',
    'p\u00e4ssw\u00f6rd', // precomposed, unchanged by NFKC
    'pa\u0308ssword', // combining diaeresis: NFKC composes it
    '\uff50\uff41\uff53\uff53', // fullwidth letters: NFKC folds them
    'pass\u00a0word', // non-ASCII space mapped to U+0020
    'pass\u00adword', // soft hyphen mapped to nothing
    '\ufb01x\u2168', // ligature and roman numeral, compatibility-decomposed
    '\u05d0\u05d1\u05d2', // right-to-left only: allowed
    'a\u05d0\uff41', // mixed bidi: prohibited, so the raw (not NFKC) password is used
    '\u05d0\uff11', // right-to-left but ends in a digit: prohibited, raw password
    'x\u0007\uff41', // control character: prohibited, raw password
    '\u{1F511}\uff41', // emoji: unassigned in Unicode 3.2, raw password
    '\u00ad', // nothing left after mapping: raw password
  ];

  it.each(passwords)('%j', async (password) => {
    const stored = await withClient(
      cluster.roles.superuser,
      async (c) => {
        await c.query('drop role if exists saslprep_probe');
        await c.query(`create role saslprep_probe password ${c.escapeLiteral(password)}`);
        return (await c.query<{ p: string }>("select rolpassword as p from pg_authid where rolname = 'saslprep_probe'")).rows[0]!.p;
      },
      'postgres',
    );
    const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):/.exec(stored);
    expect(match).not.toBeNull();
    const [, iterations, salt, storedKey] = match!;
    const salted = pbkdf2Sync(saslprep(password), Buffer.from(salt!, 'base64'), Number(iterations), 32, 'sha256');
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    expect(createHash('sha256').update(clientKey).digest('base64')).toBe(storedKey);
  });
});
