// sluice audit export/key/verify with a fake gateway and temp files.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fakeFactory, GATEWAY_URL, run } from './fakes.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-audit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const edPem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
const keyFile = join(dir, 'gateway.pub');
writeFileSync(keyFile, edPem);

async function* chunks(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
}

describe('sluice audit export', () => {
  it('streams the export to stdout byte for byte; the count and next step go to stderr', async () => {
    const f = fakeFactory({ gateway: { audit: { exportTrail: async () => chunks('{"type":"session"}\n{"type":', '"end"}\n') } } });
    expect(await run(f, 'audit', 'export', '--since', '24h')).toBe(0);
    expect(f.calls).toEqual(['audit.exportTrail({"since":"2026-11-04T12:00:00.000Z"})']);
    expect(f.out()).toBe('{"type":"session"}\n{"type":"end"}\n');
    expect(f.err()).toBe(`exported 2 lines from ${GATEWAY_URL}; check them with: sluice audit verify FILE --key gateway.pub\n`);
  });

  it('--session and --since together are a usage error', async () => {
    const f = fakeFactory();
    expect(await run(f, 'audit', 'export', '--session', 'S-1', '--since', '2h')).toBe(2);
    expect(f.err()).toBe('sluice: give either --session or --since, not both\n');
    expect(f.calls).toEqual([]);
  });
});

describe('sluice audit key', () => {
  it('prints the PEM on stdout and its key id on stderr', async () => {
    const f = fakeFactory({ gateway: { audit: { publicKey: async () => edPem } } });
    expect(await run(f, 'audit', 'key')).toBe(0);
    expect(f.out()).toBe(edPem);
    expect(f.err()).toMatch(new RegExp(`^audit key \\S+ of ${GATEWAY_URL.replace(/\./g, '\\.')}\\n$`));
  });
});

describe('sluice audit verify', () => {
  it('a broken export exits 1 naming the first problem', async () => {
    const file = join(dir, 'broken.jsonl');
    writeFileSync(file, '{"type":"nonsense"}\n');
    const f = fakeFactory();
    expect(await run(f, 'audit', 'verify', file, '--key', keyFile)).toBe(1);
    expect(f.err()).toContain('2 problems:\n  line 1: the export does not start with its header line');
    expect(f.err()).toMatch(/\nsluice: the audit trail does NOT verify: line 1: .* \(and 1 more problem\)\n$/);
    expect(f.out()).toBe('');
  });

  it('--json puts the result on stdout and still exits 1; `-` reads stdin', async () => {
    const f = fakeFactory();
    f.stdin.end('not json\n');
    expect(await run(f, 'audit', 'verify', '-', '--key', keyFile, '--json')).toBe(1);
    const result = JSON.parse(f.out()) as { ok: boolean; problems: unknown[] };
    expect(result.ok).toBe(false);
    expect(result.problems.length).toBeGreaterThan(0);
  });

  it('a key that is not Ed25519, or no key at all, is a usage error', async () => {
    const rsa = join(dir, 'rsa.pub');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const f = fakeFactory();
    expect(await run(f, 'audit', 'verify', '-', '--key', rsa)).toBe(2);
    expect(f.err()).toContain('is a rsa key; the gateway signs with Ed25519');
    const g = fakeFactory();
    expect(await run(g, 'audit', 'verify', '-', '--key', join(dir, 'missing.pub'))).toBe(2);
    expect(g.err()).toContain(`cannot read the public key ${join(dir, 'missing.pub')}: ENOENT`);
  });

  it('an unreadable anchor is a usage error naming it', async () => {
    const f = fakeFactory();
    expect(await run(f, 'audit', 'verify', '-', '--key', keyFile, '--anchor', join(dir, 'nope.jsonl'))).toBe(2);
    expect(f.err()).toContain(`cannot read the anchor ${join(dir, 'nope.jsonl')}: ENOENT`);
  });
});
