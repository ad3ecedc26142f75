// Exports edited so that `sluice audit verify` reads one thing and another reader another, through
// the real binaries: a gateway records real psql sessions, `sluice audit export` writes the trail,
// and each edit below keeps every hash and signature this verifier checks intact — the statement
// hidden behind a repeated key, a `__proto__` member, escapes and number forms, bytes that are not
// UTF-8 standing in for a recorded U+FFFD, the unsigned header relabelled — yet the real
// `sluice audit verify` must exit 1 naming the line and why. A line far longer than any export's
// is refused without reading it whole.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newConfigDir, runCli, serviceToken, startGateway, tokenCtx, type CliEnv, type CliResult, type GatewayProcess } from '../support/binaries.js';

const cluster = inject('pgCluster');
const PASSWORD_ENV = 'PG_TEST_PASSWORD';
const target = { host: cluster.host, port: cluster.port, database: cluster.database, user: cluster.user, password: { env: PASSWORD_ENV }, sslmode: 'disable' };
const EVIDENCE = 'delete from accounts where owner = $$evidence$$';
// A statement holding U+FFFD, which a decoder also makes of any byte that is not UTF-8.
const REPLACEMENT = 'select $$caf\ufffd$$ as name';

let gw: GatewayProcess;
let ctx: CliEnv;
let work: string;
let trail: string;
let pub: string;

beforeAll(async () => {
  gw = await startGateway({
    env: { [PASSWORD_ENV]: cluster.password },
    connections: [{ name: 'pg-test', type: 'postgres', target, allow: { groups: ['eng'] } }],
    extra: { audit: { readers: ['eng'], checkpoint: { sessions: 1, seconds: 60 } } },
  });
  ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'eng'));
  for (const s of [`select '${EVIDENCE}' as evidence`, REPLACEMENT]) {
    const r = await runCli(['connect', 'pg-test', '--port', '0', '--', cluster.psqlPath, '-X', '-v', 'ON_ERROR_STOP=1', '-c', s], ctx);
    expect(r.code, r.stderr).toBe(0);
  }
  const exp = await runCli(['audit', 'export'], ctx);
  expect(exp.code, exp.stderr).toBe(0);
  trail = exp.stdout;
  work = mkdtempSync(join(tmpdir(), 'sluice-adv-export-'));
  pub = join(work, 'gateway.pub');
  writeFileSync(pub, (await runCli(['audit', 'key'], ctx)).stdout);
});
afterAll(async () => {
  await gw?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

let n = 0;
async function verify(content: string | Buffer): Promise<CliResult> {
  const file = join(work, `edited-${++n}.jsonl`);
  writeFileSync(file, content);
  return runCli(['audit', 'verify', file, '--key', pub], { configDir: newConfigDir() });
}

const lines = () => trail.trimEnd().split('\n');
const lineOf = (l: string[], needle: string) => {
  const i = l.findIndex((x) => x.includes('"type":"event"') && x.includes(needle));
  expect(i).toBeGreaterThan(0);
  return i;
};
/** The export with line `i` replaced by what `f` makes of it. */
const editLine = (i: number, f: (line: string) => string) => {
  const l = lines();
  const edited = f(l[i]!);
  expect(edited).not.toBe(l[i]);
  l[i] = edited;
  return `${l.join('\n')}\n`;
};
const NOT_AS_WRITTEN = /the line is not written as the gateway writes it \(it differs at character \d+, near .+\): a repeated key, an escape, a number's form or spacing that readers may take differently; it was altered/;

describe('an export that reads one way to the verifier and another to other readers', () => {
  it('the untouched export verifies, its header signed through the end line', async () => {
    const res = await verify(trail);
    expect(res.stderr).toMatch(/^verified: 2 sessions \(2 sealed, 0 still open\)/);
    expect(res.code).toBe(0);
    const [header, end] = [JSON.parse(lines()[0]!) as { gateway?: string; at: string }, JSON.parse(lines().at(-1)!) as { gateway?: string; at: string }];
    expect(header.gateway).toBe(gw.url);
    expect(end).toMatchObject({ gateway: gw.url, at: header.at });
  });

  it('a repeated key: first-wins readers see a harmless statement where the verifier sees the recorded one', async () => {
    const i = lineOf(lines(), 'evidence');
    const res = await verify(editLine(i, (x) => x.replace('"text":', '"text":"select 1","text":')));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`line ${i + 1}: ${NOT_AS_WRITTEN.source}`));
  });

  it('a repeated `data` member, a `__proto__` member inside data and one at the top of the line', async () => {
    const i = lineOf(lines(), 'evidence');
    const twice = await verify(editLine(i, (x) => x.replace('"data":{', '"data":{"text":"select 1"},"data":{')));
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(new RegExp(`line ${i + 1}: ${NOT_AS_WRITTEN.source}`));
    // JSON.parse keeps `__proto__` as a member; a schema's copy drops it. The hash must cover it.
    const proto = await verify(editLine(i, (x) => x.replace('"data":{', '"data":{"__proto__":{"text":"select 1"},')));
    expect(proto.code).toBe(1);
    expect(proto.stderr).toMatch(new RegExp(`line ${i + 1}: session s_\\S+ event #\\d+ \\(query\\): its content does not match its hash`));
    const top = await verify(editLine(i, (x) => x.replace('{"type":"event"', '{"__proto__":{"seq":1},"type":"event"')));
    expect(top.code).toBe(1);
    expect(top.stderr).toContain(`line ${i + 1}: malformed event line: (line): Unrecognized key: "__proto__"`);
  });

  it('escapes, spacing and number forms that JSON.parse reads as the recorded values', async () => {
    const i = lineOf(lines(), 'evidence');
    for (const f of [
      (x: string) => x.replace('delete from', '\\u0064elete from'),
      (x: string) => x.replace('"data":{', '"data" : {'),
      (x: string) => x.replace(/"seq":(\d+)/, '"seq":$1.0'),
      (x: string) => x.replace(/"seq":(\d+)/, '"seq":$1e0'),
      (x: string) => x.replace(/"q":(\d+)/, '"q":$1.00000000000000000001'),
    ]) {
      const res = await verify(editLine(i, f));
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(new RegExp(`line ${i + 1}: ${NOT_AS_WRITTEN.source}`));
    }
  });

  it('a number no double holds is named, not a crash', async () => {
    const i = lineOf(lines(), 'evidence');
    const res = await verify(editLine(i, (x) => x.replace(/"q":(\d+)/, '"q":1e400')));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`line ${i + 1}: ${NOT_AS_WRITTEN.source}`));
    expect(res.stderr).not.toContain('canonical JSON has no form');
  });

  it('bytes that are not UTF-8 in place of a recorded U+FFFD', async () => {
    const raw = Buffer.from(trail);
    const at = raw.indexOf(Buffer.from('caf\ufffd'));
    expect(at).toBeGreaterThan(0);
    const i = lineOf(lines(), 'caf\ufffd');
    // 0xff decodes to U+FFFD just as the recorded EF BF BD does: the hash alone would still match.
    const edited = Buffer.concat([raw.subarray(0, at + 3), Buffer.from([0xff]), raw.subarray(at + 6)]);
    const res = await verify(edited);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`line ${i + 1}: the line is not valid UTF-8 (the gateway writes UTF-8 only): it was altered or damaged`);
  });

  it('a byte-order mark is named as such', async () => {
    const res = await verify(`\ufeff${trail}`);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('line 1: not a JSON object (it starts with a byte-order mark, which the gateway never writes)');
  });

  it('the unsigned header relabelled: another gateway, another time, another key id', async () => {
    const relabel = (f: (h: Record<string, unknown>) => void) => {
      const l = lines();
      const h = JSON.parse(l[0]!) as Record<string, unknown>;
      f(h);
      l[0] = JSON.stringify(h);
      return `${l.join('\n')}\n`;
    };
    const other = await verify(relabel((h) => (h.gateway = 'https://prod.example.com')));
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`line 1: the header names the gateway "https://prod.example.com" but the signed end line names ${JSON.stringify(gw.url)}: the header was edited`);
    const earlier = await verify(relabel((h) => (h.at = '2020-01-01T00:00:00.000Z')));
    expect(earlier.code).toBe(1);
    expect(earlier.stderr).toMatch(/line 1: the header's time \(2020-01-01T00:00:00\.000Z\) differs from the signed end line's \(\S+\): the header was edited/);
    const key = await verify(relabel((h) => (h.key = '0123456789abcdef')));
    expect(key.code).toBe(1);
    expect(key.stderr).toContain("line 1: the header's key (0123456789abcdef) differs from the signed end line's");
  });

  it('a member added to a session of the signed end line, which the signature does not cover', async () => {
    const l = lines();
    const end = JSON.parse(l.at(-1)!) as { sessions: Record<string, unknown>[] };
    end.sessions[0]!.deleted = true;
    l[l.length - 1] = JSON.stringify(end);
    const res = await verify(`${l.join('\n')}\n`);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`line ${l.length}: malformed end line: sessions.0: Unrecognized key: "deleted"`);
  });

  it('a time in a form readers parse differently (no zone: local time to some)', async () => {
    const l = lines();
    const ci = l.findIndex((x) => x.includes('"type":"checkpoint"'));
    const c = JSON.parse(l[ci]!) as { at: string };
    c.at = c.at.replace('Z', '');
    l[ci] = JSON.stringify(c);
    const res = await verify(`${l.join('\n')}\n`);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`line ${ci + 1}: malformed checkpoint line: at: not a UTC time as the gateway writes it (YYYY-MM-DDTHH:MM:SS.sssZ)`);
  });

  it('a long line without JSON in it is one problem of that line, and the rest is still checked', async () => {
    const l = lines();
    l.splice(2, 0, `{"type":"event","pad":"${'a'.repeat(8 * 1024 * 1024)}"}`);
    const res = await verify(`${l.join('\n')}\n`);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('line 3: malformed event line');
  });
});
