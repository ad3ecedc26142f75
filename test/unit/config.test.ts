// Configuration errors: one test per class of mistake, each message naming the file and the key.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../gateway/config/load.js';
import { GATEWAY_BIN } from '../support/binaries.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
let n = 0;
function write(text: string): string {
  const file = join(dir, `gateway-${++n}.yaml`);
  writeFileSync(file, text);
  return file;
}

const identity = `identity: { dev: { users: [{ name: alice, email: alice@example.com, groups: [eng] }] } }\n`;
const pg = (target: string, extra = '') => `${identity}connections:\n  - name: pg-prod\n    type: postgres\n    target: ${target}\n    allow: { groups: [eng] }\n${extra}`;

function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  const file = write(text);
  try {
    loadConfig(file, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const p = (err as ConfigError).problems;
    for (const line of p) expect(line.startsWith(`${file}: `)).toBe(true);
    return p.map((l) => l.slice(file.length + 2));
  }
  throw new Error('expected a ConfigError');
}

describe('gateway configuration', () => {
  it('accepts a minimal file and fills in defaults', () => {
    const cfg = loadConfig(write(identity), {});
    expect(cfg.listen).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(cfg.url).toBe('https://127.0.0.1:8443');
    expect(cfg.tls).toEqual({ selfSigned: true });
    expect(cfg.identity).toMatchObject({ kind: 'dev', audience: 'urn:sluice:gateway', clientId: 'sluice-cli' });
    expect(cfg.store.sqlite).toBe(join(dir, 'sluice.db'));
    expect(Object.isFrozen(cfg)).toBe(true);
  });

  it('resolves a password from the environment and from a file, relative to the config file', () => {
    writeFileSync(join(dir, 'pg.pass'), 's3cret\n');
    const a = loadConfig(write(pg('{ host: db, database: app, user: app, password: { env: PGPASS } }')), { PGPASS: 'hunter2' });
    expect(a.connections[0]?.target).toMatchObject({ password: 'hunter2', port: 5432, sslmode: 'verify-full' });
    const b = loadConfig(write(pg('{ host: db, database: app, user: app, password: { file: pg.pass } }')), {});
    expect(b.connections[0]?.target).toMatchObject({ password: 's3cret' });
  });

  it('reports invalid YAML with its line', () => {
    expect(problems('listen: [\n')).toEqual([expect.stringMatching(/^line \d+: invalid YAML: /)]);
  });

  it('reports an unknown key (a typo) with its path', () => {
    expect(problems(`${identity}lisen: "127.0.0.1:1"\n`)).toEqual(['(top level): unknown key "lisen"']);
  });

  it('reports a wrong type with what was expected and found', () => {
    expect(problems(`${identity}connectTimeoutMs: soon\n`)).toEqual(['connectTimeoutMs: expected number, found string']);
  });

  it('reports a missing identity', () => {
    expect(problems('listen: "127.0.0.1:8443"\n')).toEqual([expect.stringMatching(/^identity: expected `{ issuer, audience, clientId }`/)]);
  });

  it('reports a malformed listen address', () => {
    expect(problems(`${identity}listen: "8443"\n`)).toEqual(['listen: expected "HOST:PORT", e.g. "127.0.0.1:8443"']);
  });

  it('refuses plain HTTP on a non-loopback address', () => {
    expect(problems(`${identity}listen: "0.0.0.0:8080"\ntls: false\n`)).toEqual([
      'tls: plain HTTP (tls: false) is only allowed on a loopback listen address, found listen "0.0.0.0:8080"',
    ]);
  });

  it('the direct PostgreSQL listener is off by default; on, it needs TLS; credentials live 15 minutes unless configured', () => {
    const off = loadConfig(write(identity), {});
    expect(off.listeners).toEqual({});
    expect(off.credentialTtlMs).toBe(900_000);
    const on = loadConfig(write(`${identity}listeners: { postgres: "[::1]:5432" }\ncredentials: { ttl: 2m }\n`), {});
    expect(on.listeners).toEqual({ postgres: { host: '::1', port: 5432 } });
    expect(on.credentialTtlMs).toBe(120_000);
    expect(problems(`${identity}listeners: { postgres: "127.0.0.1:6432" }\ntls: false\n`)).toEqual([
      'listeners.postgres: the PostgreSQL listener serves TLS only (its clients send a password): set `tls`, or remove listeners.postgres',
    ]);
    expect(problems(`${identity}listeners: { postgres: "127.0.0.1:99999" }\ncredentials: { ttl: 3d }\n`)).toEqual([
      'listeners.postgres: port must be 0-65535',
      'credentials.ttl: expected a duration of at most 24h, e.g. "15m"',
    ]);
  });

  it('refuses an inline password: secrets come from env or file', () => {
    expect(problems(pg('{ host: db, database: app, user: app, password: hunter2 }'))).toEqual([
      'connections.0.target.password: expected `{ env: NAME }` or `{ file: PATH }` (secrets are never written inline)',
    ]);
  });

  it('names the connection whose secret is missing, and never prints a secret', () => {
    expect(problems(pg('{ host: db, database: app, user: app, password: { env: NOPE } }'))).toEqual([
      'connections.0.target.password: connection "pg-prod": environment variable NOPE is not set',
    ]);
    expect(problems(pg('{ host: db, database: app, user: app, password: { file: missing.pass } }'))).toEqual([
      `connections.0.target.password: connection "pg-prod": cannot read ${join(dir, 'missing.pass')}: ENOENT`,
    ]);
  });

  it('reports a bad sslmode and a duplicate connection name together', () => {
    const text = pg('{ host: db, database: app, user: app, password: { env: P }, sslmode: prefer }') +
      '  - name: pg-prod\n    type: postgres\n    target: { host: db, database: app, user: app, password: { env: P } }\n    allow: { groups: [eng] }\n';
    const p = problems(text, { P: 'x' });
    expect(p).toContain('connections.0.target.sslmode: Invalid option: expected one of "disable"|"require"|"verify-full"');
    expect(p).toHaveLength(1); // the duplicate is found once the shape is valid
  });

  it('reports unreadable TLS files', () => {
    expect(problems(`${identity}tls: { cert: nope.pem, key: nope.key }\n`)).toEqual([
      `tls.cert: cannot read ${join(dir, 'nope.pem')}: ENOENT`,
      `tls.key: cannot read ${join(dir, 'nope.key')}: ENOENT`,
    ]);
  });

  it('the real binary lists every problem and exits 1', () => {
    const file = write(`${identity}lisen: x\nconnectTimeoutMs: soon\n`);
    let stderr = '';
    let status: number | null = 0;
    try {
      execFileSync(process.execPath, [GATEWAY_BIN, '--config', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      ({ stderr, status } = err as { stderr: string; status: number });
    }
    expect(status).toBe(1);
    expect(stderr).toContain(`${file}: (top level): unknown key "lisen"`);
    expect(stderr).toContain(`${file}: connectTimeoutMs: expected number, found string`);
  });

  it('the real binary without a config is a usage error (exit 2)', () => {
    let status: number | null = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [GATEWAY_BIN], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLUICE_CONFIG: '' } });
    } catch (err) {
      ({ stderr, status } = err as { stderr: string; status: number });
    }
    expect(status).toBe(2);
    expect(stderr).toContain('no configuration: pass --config FILE or set SLUICE_CONFIG');
  });
});
