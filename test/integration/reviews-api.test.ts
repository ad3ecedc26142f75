// The reviews API and `sluice reviews` over real HTTPS: the gateway runs in this process (so the
// test can hold statements through its review service as an engine would), identities are real
// service tokens from `sluice-gateway token create` and a real device-flow login, and the CLI is
// the real `sluice` binary (run `npm run build` first). test/integration/reviews.test.ts holds
// statements through psql instead.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config/load.js';
import type { Identity } from '../../gateway/model.js';
import type { ReviewOutcome, ReviewRequest } from '../../gateway/reviews/contract.js';
import { startGateway, type Gateway } from '../../gateway/server.js';
import type { ReviewInfo } from '../../src/api/contract.js';
import { GATEWAY_BIN, login, newConfigDir, runCli, writeGatewayConfig, type GatewayProcess } from '../support/binaries.js';

let gw: Gateway;
let configFile: string;
let dispatcher: Agent;
const tokens: Record<string, string> = {};
let alice: Identity;
let aliceDir: string;

const REQ: ReviewRequest = { action: 'insert into orders (id, total)\nvalues (7, 19.99)', kind: 'sql', rule: 'writes-need-review', approvers: ['dba'], timeoutMs: 60_000, reason: 'held for review by rule writes-need-review: statement insert' };
const DEV: Identity = { subject: 'token:dev', name: 'dev', groups: ['eng'], kind: 'service' };

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-reviews-'));
  configFile = writeGatewayConfig(dir, { extra: { audit: { readers: ['audit'] } } });
  gw = await startGateway(loadConfig(configFile), pino({ level: 'silent' }));
  dispatcher = new Agent({ connect: { ca: gw.tls?.cert } });
  for (const [name, groups] of [['dev', 'eng'], ['oncall', 'dba'], ['sales', 'sales'], ['auditor', 'audit']]) {
    tokens[name as string] = execFileSync(process.execPath, [GATEWAY_BIN, 'token', 'create', '--config', configFile, '--name', name as string, '--groups', groups as string], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  }
  aliceDir = newConfigDir();
  const asProcess = { url: gw.url, caFile: gw.tls?.certFile } as GatewayProcess;
  // The file store, so the test can also present alice's access token to the API itself.
  const res = await login(asProcess, aliceDir, 'alice', ['--insecure-storage']);
  expect(res.code, res.stderr).toBe(0);
  const me = JSON.parse((await runCli(['whoami', '--json'], { configDir: aliceDir })).stdout) as { subject: string; email: string; groups: string[] };
  alice = { subject: me.subject, name: me.email, email: me.email, groups: me.groups, kind: 'human' };
});
afterAll(async () => {
  await gw?.close();
  await dispatcher?.close();
});

/** Holds a statement as an engine would, for `who` on connection pg-prod. */
function hold(who: Identity, req: Partial<ReviewRequest> = {}): { id: string; outcome: Promise<ReviewOutcome>; abort: AbortController } {
  const abort = new AbortController();
  return { ...gw.reviews.forSession({ sessionId: 's_api', identity: who, connection: 'pg-prod' }).request({ ...REQ, ...req }, abort.signal), abort };
}

async function api(path: string, opts: { token?: string; method?: string; body?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(gw.url + path, {
    dispatcher,
    method: opts.method ?? 'GET',
    headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
    ...(opts.body !== undefined ? { body: opts.body } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as Record<string, unknown> & { error?: { code: string; message: string } } };
}
const decide = (id: string, verb: 'approve' | 'reject', token: string, body: unknown = {}) => api(`/v1/reviews/${id}/${verb}`, { token, method: 'POST', body: JSON.stringify(body) });

describe('the reviews API', () => {
  it('needs a credential like the rest of the API', async () => {
    const { id } = hold(DEV);
    expect((await api('/v1/reviews')).status).toBe(401);
    const r = await api(`/v1/reviews/${id}/approve`, { method: 'POST', body: '{}' });
    expect([r.status, r.body.error?.code]).toEqual([401, 'missing_token']);
    expect((await decide(id, 'approve', 'slc_not-a-real-token')).status).toBe(401);
  });

  it('lists a review to its requester, its approvers and audit readers, with whether they may decide', async () => {
    const { id } = hold(DEV);
    const seen = async (who: string) => ((await api('/v1/reviews', { token: tokens[who] })).body.reviews as ReviewInfo[]).find((r) => r.id === id);
    expect(await seen('dev')).toMatchObject({ id, status: 'pending', canDecide: false, requester: { subject: 'token:dev', name: 'dev' }, sql: REQ.action, action: REQ.action, kind: 'sql', rule: 'writes-need-review', approvers: ['dba'], connection: 'pg-prod', session: 's_api' });
    expect(await seen('oncall')).toMatchObject({ canDecide: true });
    expect(await seen('auditor')).toMatchObject({ canDecide: false });
    expect(await seen('sales')).toBeUndefined();
    const one = await api(`/v1/reviews/${id.toLowerCase()}`, { token: tokens.oncall });
    expect([one.status, one.body.id]).toEqual([200, id]);
    const hidden = await api(`/v1/reviews/${id}`, { token: tokens.sales });
    expect([hidden.status, hidden.body.error?.code]).toEqual([403, 'forbidden']);
    expect((await api('/v1/reviews/R-2222', { token: tokens.oncall })).status).toBe(404);
  });

  it('approval releases the statement; the same review cannot be decided again (409)', async () => {
    const { id, outcome } = hold(DEV);
    const r = await decide(id, 'approve', tokens.oncall as string, { reason: 'ticket OPS-12' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id, status: 'approved', decidedBy: { subject: 'token:oncall', name: 'oncall' }, decisionReason: 'ticket OPS-12', canDecide: false });
    expect(await outcome).toEqual({ status: 'approved', by: 'oncall', reason: 'ticket OPS-12' });
    const again = await decide(id, 'reject', tokens.oncall as string, { reason: 'too late' });
    expect([again.status, again.body.error?.code]).toEqual([409, 'conflict']);
    expect(again.body.error?.message).toContain('already approved by oncall');
    const all = (await api('/v1/reviews?all=1', { token: tokens.oncall })).body.reviews as ReviewInfo[];
    expect(all.find((x) => x.id === id)?.status).toBe('approved');
    expect(((await api('/v1/reviews', { token: tokens.oncall })).body.reviews as ReviewInfo[]).find((x) => x.id === id)).toBeUndefined();
  });

  it('refuses self-approval and approvers outside the groups with 403 and says why', async () => {
    const { id, outcome } = hold(alice);
    const self = await api(`/v1/reviews/${id}/approve`, { token: readFileTokenOf(aliceDir), method: 'POST' });
    expect([self.status, self.body.error?.code]).toEqual([403, 'forbidden']);
    expect(self.body.error?.message).toBe(`alice@example.com requested review ${id} and may not approve it: another member of dba must decide (to withdraw the statement, cancel it in your client (Ctrl-C in psql) or close the connection)`);
    const outsider = await decide(id, 'approve', tokens.sales as string);
    expect(outsider.status).toBe(403);
    expect(outsider.body.error?.message).toBe(`sales may not approve review ${id}: it needs a member of dba (you are in sales)`);
    const reader = await decide(id, 'reject', tokens.auditor as string, { reason: 'x' });
    expect(reader.status).toBe(403);
    await decide(id, 'reject', tokens.oncall as string, { reason: 'not during the freeze' });
    expect(await outcome).toEqual({ status: 'rejected', by: 'oncall', reason: 'not during the freeze' });
  });

  it('answers bad bodies and methods with 400 and 405', async () => {
    const { id, abort } = hold(DEV);
    const noReason = await decide(id, 'reject', tokens.oncall as string);
    expect([noReason.status, noReason.body.error?.message]).toEqual([400, `rejecting review ${id} needs a reason (it is sent to the client)`]);
    expect((await api(`/v1/reviews/${id}/approve`, { token: tokens.oncall, method: 'POST', body: 'not json' })).status).toBe(400);
    expect((await decide(id, 'approve', tokens.oncall as string, { reason: 'x', extra: 1 })).status).toBe(400);
    expect((await decide(id, 'approve', tokens.oncall as string, { reason: 7 })).status).toBe(400);
    expect((await decide(id, 'approve', tokens.oncall as string, { reason: 'x'.repeat(20_000) })).body.error?.message).toContain('larger than');
    const get = await api(`/v1/reviews/${id}/approve`, { token: tokens.oncall });
    expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);
    expect((await api('/v1/reviews', { token: tokens.oncall, method: 'POST', body: '{}' })).status).toBe(405);
    // Other endpoints still take GET only.
    expect((await api('/v1/me', { token: tokens.oncall, method: 'POST', body: '{}' })).status).toBe(405);
    expect((await api(`/v1/reviews/${id}`, { token: tokens.oncall })).body.status).toBe('pending');
    abort.abort();
    expect((await api(`/v1/reviews/${id}`, { token: tokens.oncall })).body.status).toBe('cancelled');
  });
});

/** The access token `sluice login --insecure-storage` stored in DIR. */
function readFileTokenOf(dir: string): string {
  const file = JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as Record<string, { accessToken: string }>;
  return (Object.values(file)[0] as { accessToken: string }).accessToken;
}

describe('sluice reviews', () => {
  const as = (who: string) => ({ configDir: newConfigDir(), env: { SLUICE_TOKEN: tokens[who], SLUICE_GATEWAY: gw.url, SLUICE_CA: gw.tls?.certFile as string } });

  it('lists what waits on you as a table, and as JSON', async () => {
    const { id, abort } = hold(DEV, { action: 'update accounts   set balance = 0\n where id = 42' });
    try {
      const table = await runCli(['reviews'], as('oncall'));
      expect(table.code, table.stderr).toBe(0);
      const lines = table.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^ID\s+STATUS\s+REQUESTED\s+BY\s+CONNECTION\s+RULE\s+YOU\s+STATEMENT$/);
      const row = lines.find((l) => l.startsWith(id));
      expect(row).toMatch(/pending, expires in (\d+m )?\d+s\s+.*\s+dev\s+pg-prod\s+writes-need-review\s+may decide\s+update accounts set balance = 0 where id = 42$/);
      expect(table.stderr).toContain('sluice reviews approve R-');
      const json = await runCli(['reviews', 'ls', '--json'], as('dev'));
      expect((JSON.parse(json.stdout) as ReviewInfo[]).find((r) => r.id === id)).toMatchObject({ canDecide: false, status: 'pending' });
      const none = await runCli(['reviews'], as('sales'));
      expect([none.code, none.stdout, none.stderr]).toEqual([0, '', 'no reviews are waiting for you or on you\n']);
      const show = await runCli(['reviews', 'show', id], as('oncall'));
      expect(show.stdout).toContain('  statement\n    update accounts   set balance = 0\n     where id = 42\n');
      expect(show.stdout).toContain('members of dba (you may decide)');
    } finally {
      abort.abort();
    }
  });

  it('approve and reject release the statement; a second decision fails (exit 1)', async () => {
    const a = hold(DEV);
    const ok = await runCli(['reviews', 'approve', a.id.toLowerCase(), '--reason', 'fine'], as('oncall'));
    expect([ok.code, ok.stdout], ok.stderr).toEqual([0, '']);
    expect(ok.stderr).toBe(`approved ${a.id}: dev's statement on pg-prod runs now\n`);
    expect(await a.outcome).toEqual({ status: 'approved', by: 'oncall', reason: 'fine' });

    const b = hold(DEV);
    const no = await runCli(['reviews', 'reject', b.id, '--reason', 'use a migration', '--json'], as('oncall'));
    expect(no.code, no.stderr).toBe(0);
    expect(JSON.parse(no.stdout)).toMatchObject({ id: b.id, status: 'rejected', decisionReason: 'use a migration' });
    expect(await b.outcome).toEqual({ status: 'rejected', by: 'oncall', reason: 'use a migration' });
    const again = await runCli(['reviews', 'approve', b.id], as('oncall'));
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`review ${b.id} cannot be decided: it was already rejected by oncall`);

    const all = JSON.parse((await runCli(['reviews', '--all', '--json'], as('oncall'))).stdout) as ReviewInfo[];
    expect(all.filter((r) => [a.id, b.id].includes(r.id)).map((r) => r.status).sort()).toEqual(['approved', 'rejected']);
  });

  it('refusals map to exit codes: own request 4, outsider 4, unknown id 1, reject without --reason 2', async () => {
    const { id, abort } = hold(alice);
    try {
      const self = await runCli(['reviews', 'approve', id], { configDir: aliceDir });
      expect(self.code).toBe(4);
      expect(self.stderr).toContain(`alice@example.com requested review ${id} and may not approve it`);
      const outsider = await runCli(['reviews', 'reject', id, '--reason', 'no'], as('sales'));
      expect(outsider.code).toBe(4);
      expect(outsider.stderr).toContain('it needs a member of dba');
      const unknown = await runCli(['reviews', 'approve', 'R-2222'], as('oncall'));
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('no review R-2222');
      const usage = await runCli(['reviews', 'reject', id], as('oncall'));
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain("required option '--reason <text>' not specified");
      expect((await runCli(['reviews', 'reject', id, '--reason', '  '], as('oncall'))).code).toBe(2);
      expect((await gw.reviews.get(id, alice)).status).toBe('pending');
    } finally {
      abort.abort();
    }
  });
});
