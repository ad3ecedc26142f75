// `type: http` connections in the gateway's configuration: the issue's YAML loads; every mistake
// is reported as FILE: key: message; secrets are read from env or file and never echoed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../gateway/config/load.js';
import type { HttpConnection } from '../../../gateway/model.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-httpconfig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function write(text: string): string {
  const file = join(dir, `gateway-${++n}.yaml`);
  writeFileSync(file, text);
  return file;
}
writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
writeFileSync(join(dir, 'token'), 'Bearer from-a-file-0123\n');

const identity = `identity: { dev: { users: [{ name: alice, email: alice@example.com, groups: [eng] }] } }\n`;
const http = (target: string, policy = '') => `${identity}connections:\n  - name: billing-api\n    type: http\n    target: ${target}\n    allow: { groups: [eng] }\n${policy}`;

const ISSUE_POLICY = `    policy:
      rules:
        - id: read-only
          block: { methods: [DELETE], paths: ["/admin/**"] }
        - id: refunds-need-review
          review: { methods: [POST], paths: ["/v1/refunds"], approvers: [finance] }
        - id: pii
          mask: { json: ["$.customers[*].email", "$..card_number"], strategy: partial }
`;

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

describe('type: http connections', () => {
  it('loads the issue\'s example, secrets resolved from env and file', () => {
    const cfg = loadConfig(write(http('{ url: "https://billing.internal:8443", ca: ca.pem, headers: { Authorization: { env: BILLING_TOKEN }, X-Api-Key: { file: token } } }', ISSUE_POLICY)), { BILLING_TOKEN: 'Bearer t0ken-value-1' });
    const c = cfg.connections[0] as HttpConnection;
    expect(c.type).toBe('http');
    expect(c.target.url).toBe('https://billing.internal:8443');
    expect(c.target.ca).toContain('BEGIN CERTIFICATE');
    expect(c.target.headers).toEqual({ Authorization: 'Bearer t0ken-value-1', 'X-Api-Key': 'Bearer from-a-file-0123' });
    expect(c.policy?.rules.map((r) => r.action)).toEqual(['block', 'review', 'mask']);
  });

  it('names the file and key of each mistake, never a secret', () => {
    const p = problems(
      http(
        '{ url: "https://billing.internal:8443/v1?x=1", ca: missing.pem, headers: { Authorization: { env: NOPE }, Host: { env: H } } }',
        `    policy:\n      rules:\n        - id: bad\n          block: { paths: ["admin/**"] }\n        - id: m\n          mask: { json: ["customers"] }\n`,
      ),
      { H: 'x' },
    );
    const joined = p.join('\n');
    expect(joined).toMatch(/connections\.0\.target\.url: expected an origin only/);
    expect(joined).toMatch(/connections\.0\.target\.headers\.Host: this header is set by the gateway/);
    expect(joined).toMatch(/connections\.0\.policy\.rules\.0\.block\.paths\.0: expected a path pattern starting with "\/"/);
    expect(joined).toMatch(/connections\.0\.policy\.rules\.1\.mask\.json\.0: invalid JSON path/);
    const inline = problems(http('{ url: "https://b.internal", headers: { Inline: "Bearer abc" } }')).join('\n');
    expect(inline).toMatch(/connections\.0\.target\.headers\.Inline: expected `\{ env: NAME \}` or `\{ file: PATH \}`/);
    expect(inline).not.toContain('Bearer abc');
  });

  it('reports an unset variable and an unreadable CA by key', () => {
    const p = problems(http('{ url: "https://b.internal", ca: missing.pem, headers: { Authorization: { env: NOPE } } }'));
    expect(p.join('\n')).toMatch(/connections\.0\.target\.headers\.Authorization: connection "billing-api": environment variable NOPE is not set/);
    expect(p.join('\n')).toMatch(/connections\.0\.target\.ca: connection "billing-api": cannot read .*missing\.pem: ENOENT/);
  });

  it('refuses a header value with a line break', () => {
    const p = problems(http('{ url: "https://b.internal", headers: { Authorization: { env: T } } }'), { T: 'Bearer x\r\nX-Evil: 1' });
    expect(p.join('\n')).toMatch(/headers\.Authorization: .*line break/);
    expect(p.join('\n')).not.toContain('X-Evil');
  });
});
