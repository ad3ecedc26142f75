// The `policy:` key of a connection and the masking key: validated and compiled at load, errors
// naming the file and key, the generated key file (0600, stable across loads), and the summary
// GET /v1/connections shows.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../gateway/config/load.js';
import { describePolicy, MASKING_KEY_FILE } from '../../gateway/config/policy.js';
import type { PostgresConnection } from '../../gateway/model.js';

const identity = `identity: { dev: { users: [{ name: alice, email: alice@example.com, groups: [eng] }] } }\n`;
const withPolicy = (policy: string, extra = '') =>
  `${identity}${extra}connections:\n  - name: pg-prod\n    type: postgres\n    target: { host: db, database: app, user: app, password: { env: PGPASS } }\n    allow: { groups: [eng] }\n    policy:\n${policy
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n')}\n`;

function fresh(text: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-policy-'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, text);
  return { dir, file };
}

function problems(text: string, env: NodeJS.ProcessEnv = { PGPASS: 'x' }): string[] {
  const { file } = fresh(text);
  try {
    loadConfig(file, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((l) => l.slice(file.length + 2));
  }
  throw new Error('expected a ConfigError');
}

const EXAMPLE = `rules:
  - id: no-ddl
    block: { statements: [drop, truncate, alter] }
    message: DDL is not allowed on production
  - id: writes-need-review
    review: { statements: [insert, update, delete], approvers: [dba], timeout: 10m }
  - id: pii
    mask: { columns: [customers.email], with: hash }
  - id: pii-anywhere
    mask: { detect: [credit_card, email], with: redact }`;

describe('connection policy in the configuration', () => {
  it('compiles the policy and generates a 0600 masking key once, in the state directory', () => {
    const { dir, file } = fresh(withPolicy(EXAMPLE));
    const cfg = loadConfig(file, { PGPASS: 'x' });
    const policy = (cfg.connections[0] as PostgresConnection | undefined)?.policy;
    expect(policy?.rules.map((r) => [r.id, r.action])).toEqual([
      ['no-ddl', 'block'],
      ['writes-need-review', 'review'],
      ['pii', 'mask'],
      ['pii-anywhere', 'mask'],
    ]);
    const keyFile = join(dir, MASKING_KEY_FILE);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    expect(policy?.hashKey?.toString('utf8')).toBe(readFileSync(keyFile, 'utf8').trim());
    // A restart reads the same key: hashes stay comparable across restarts.
    expect((loadConfig(file, { PGPASS: 'x' }).connections[0] as PostgresConnection | undefined)?.policy?.hashKey).toEqual(policy?.hashKey);
    expect(describePolicy(policy)).toBe('blocks: no-ddl; reviews: writes-need-review (dba); masks: pii (hash), pii-anywhere (redact)');
  });

  it('takes the masking key from masking.hashKey and creates no file', () => {
    const { dir, file } = fresh(withPolicy(EXAMPLE, 'masking: { hashKey: { env: MASK_KEY } }\n'));
    const cfg = loadConfig(file, { PGPASS: 'x', MASK_KEY: 'a-shared-secret-of-replicas' });
    expect((cfg.connections[0] as PostgresConnection | undefined)?.policy?.hashKey?.toString()).toBe('a-shared-secret-of-replicas');
    expect(() => statSync(join(dir, MASKING_KEY_FILE))).toThrow();
  });

  it('creates no key when no rule hashes', () => {
    const { dir, file } = fresh(withPolicy('rules: [{ id: no-ddl, block: { statements: [drop] } }]'));
    expect((loadConfig(file, { PGPASS: 'x' }).connections[0] as PostgresConnection | undefined)?.policy?.hashKey).toBeUndefined();
    expect(() => statSync(join(dir, MASKING_KEY_FILE))).toThrow();
  });

  it('reports policy mistakes with their path', () => {
    expect(problems(withPolicy('rules: [{ id: a, block: { statement: [drop] } }]'))).toContain('connections.0.policy.rules.0.block: unknown key "statement"');
    expect(problems(withPolicy('rules: [{ id: a, block: { statements: [drop tabel] } }]'))[0]).toMatch(/^connections\.0\.policy\.rules\.0\.block\.statements\.0: unknown statement "drop tabel"/);
    expect(problems(withPolicy('rules: [{ id: a, mask: { columns: [email] } }]'))[0]).toMatch(/^connections\.0\.policy\.rules\.0\.mask\.columns\.0: invalid column "email"/);
    expect(problems(withPolicy(EXAMPLE, 'masking: { hashKey: { env: MASK_KEY } }\n'))).toEqual(['masking.hashKey: environment variable MASK_KEY is not set', expect.stringMatching(/^connections\.0\.policy: connection "pg-prod": a mask rule uses `with: hash`/)]);
    expect(problems(withPolicy(EXAMPLE, 'masking: { hashKey: { env: MASK_KEY } }\n'), { PGPASS: 'x', MASK_KEY: 'short' })[0]).toBe('masking.hashKey: environment variable MASK_KEY holds 5 bytes; the masking key needs at least 16');
  });

  it('summarises a connection without a policy', () => {
    expect(describePolicy(undefined)).toBe('none (statements are recorded)');
  });
});
