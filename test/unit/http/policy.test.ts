import { describe, expect, it } from 'vitest';
import { compileHttpPolicy, httpPolicySchema, judgeRequest, pathGlobProblem, pathGlobToRegExp, rulesFor } from '../../../gateway/engines/http/policy.js';

describe('path globs', () => {
  it('* is one segment, ** any number (zero included)', () => {
    const admin = pathGlobToRegExp('/admin/**');
    expect(['/admin', '/admin/', '/admin/x', '/admin/x/y'].every((p) => admin.test(p))).toBe(true);
    expect(['/administrator', '/v1/admin', '/'].some((p) => admin.test(p))).toBe(false);
    const one = pathGlobToRegExp('/v1/customers/*/cards');
    expect(one.test('/v1/customers/42/cards')).toBe(true);
    expect(one.test('/v1/customers/42/x/cards')).toBe(false);
    expect(one.test('/v1/customers//cards')).toBe(false);
    expect(pathGlobToRegExp('/**').test('/')).toBe(true);
    expect(pathGlobToRegExp('/v1/refunds').test('/v1/refunds/')).toBe(true);
    expect(pathGlobToRegExp('/a.b').test('/aXb')).toBe(false);
  });

  it('rejects patterns that cannot match a normalised path', () => {
    expect(pathGlobProblem('admin/**')).toMatch(/starting with/);
    expect(pathGlobProblem('/admin/a**')).toMatch(/whole segment/);
    expect(pathGlobProblem('/admin/%2f')).toMatch(/decoded/);
    expect(pathGlobProblem('/a/../b')).toMatch(/"\.\."/);
  });
});

describe('judgeRequest', () => {
  const policy = compileHttpPolicy(
    httpPolicySchema.parse({
      rules: [
        { id: 'read-only', block: { methods: ['DELETE'], paths: ['/admin/**'] } },
        { id: 'refunds-need-review', review: { methods: ['post'], paths: ['/v1/refunds'], approvers: ['finance'] } },
        { id: 'pii', mask: { json: ['$.customers[*].email', '$..card_number'], strategy: 'partial' } },
        { id: 'ops-only', block: { paths: ['/ops/**'] }, except: { groups: ['ops'] } },
      ],
    }),
  );
  const judge = (groups: string[], method: string, path: string) => judgeRequest(policy, rulesFor(policy, groups), method, path);

  it('blocks by method and path, reviews, masks', () => {
    expect(judge(['eng'], 'DELETE', '/admin/users/1')).toMatchObject({ verdict: 'block', rule: 'read-only' });
    expect(judge(['eng'], 'GET', '/admin/users/1')).toMatchObject({ verdict: 'allow' });
    expect(judge(['eng'], 'POST', '/v1/refunds')).toMatchObject({ verdict: 'review', rule: 'refunds-need-review', approvers: ['finance'] });
    const masked = judge(['eng'], 'GET', '/v1/customers');
    expect(masked.verdict).toBe('allow');
    expect(masked.verdict === 'allow' && masked.mask?.paths.map((p) => p.path.text)).toEqual(['$.customers[*].email', '$..card_number']);
  });

  it('matches paths whatever their case, Unicode folds and the Turkish i included', () => {
    for (const p of ['/ADMIN/users/1', '/Admin', '/aDmIn/x/y', '/adm\u0130n/x', '/adm\u0131n', '/ADM\u0130N']) {
      expect(judge(['eng'], 'DELETE', p), p).toMatchObject({ verdict: 'block', rule: 'read-only' });
    }
    expect(judge(['eng'], 'post', '/V1/Refunds')).toMatchObject({ verdict: 'review', rule: 'refunds-need-review' });
    expect(judge(['eng'], 'GET', '/OPS/x')).toMatchObject({ verdict: 'block', rule: 'ops-only' });
    const kelvin = compileHttpPolicy(httpPolicySchema.parse({ rules: [{ id: 'keys', block: { paths: ['/keys/**', '/ssh'] } }] }));
    for (const p of ['/\u212Aeys/1', '/\u017Fsh', '/KEYS']) expect(judgeRequest(kelvin, kelvin.rules, 'GET', p), p).toMatchObject({ verdict: 'block' });
    expect(judge(['eng'], 'DELETE', '/administrator')).toMatchObject({ verdict: 'allow' });
  });

  it('caseSensitivePaths: true tells spellings apart', () => {
    const strict = compileHttpPolicy(httpPolicySchema.parse({ caseSensitivePaths: true, rules: [{ id: 'a', block: { paths: ['/admin/**'] } }] }));
    expect(judgeRequest(strict, strict.rules, 'GET', '/admin/x')).toMatchObject({ verdict: 'block' });
    expect(judgeRequest(strict, strict.rules, 'GET', '/ADMIN/x')).toMatchObject({ verdict: 'allow' });
    expect(httpPolicySchema.safeParse({ caseSensitivePaths: 'yes' }).error?.issues[0]).toMatchObject({ path: ['caseSensitivePaths'], message: 'expected true or false' });
  });

  it('honours for/except groups', () => {
    expect(judge(['eng'], 'GET', '/ops/x')).toMatchObject({ verdict: 'block', rule: 'ops-only' });
    expect(judge(['ops'], 'GET', '/ops/x')).toMatchObject({ verdict: 'allow' });
  });

  it('reports configuration mistakes with the key', () => {
    const bad = httpPolicySchema.safeParse({ rules: [{ id: 'x', block: {} }, { id: 'y', mask: { json: ['customers.email'] } }] });
    expect(bad.success).toBe(false);
    const messages = bad.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages.some((m) => m.startsWith('rules.0.block') && m.includes('`methods`, `paths`'))).toBe(true);
    expect(messages.some((m) => m.startsWith('rules.1.mask.json.0') && m.includes('must start with "$"'))).toBe(true);
  });
});
