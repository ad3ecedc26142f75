// The other readings of one request a service may make (method overrides, path-override headers,
// format suffixes, trailing dots, Unicode normalisation), and the policy judging each of them.
import { describe, expect, it } from 'vitest';
import { compileHttpPolicy, httpPolicySchema, judgeRequest } from '../../../gateway/engines/http/policy.js';
import { alternateReadings, pathSpellings } from '../../../gateway/engines/http/readings.js';

const policy = compileHttpPolicy(
  httpPolicySchema.parse({
    rules: [
      { id: 'read-only', block: { methods: ['DELETE'], paths: ['/admin/**'] } },
      { id: 'refunds-need-review', review: { methods: ['POST'], paths: ['/v1/refunds'], approvers: ['finance'] } },
      { id: 'internal', block: { paths: ['/internal/**'] } },
      { id: 'pii', mask: { json: ['$..email'], paths: ['/v1/customers'] } },
    ],
  }),
);

/** Judges a request as the http engine's classify does: every reading, every spelling. */
function judge(method: string, target: string, headers: string[] = []) {
  const also = alternateReadings(method, target, headers);
  if ('reason' in also) return { refused: also.reason };
  const path = target.split('?')[0]!;
  const paths: string[] = [];
  for (const p of [path, ...also.paths]) {
    const s = pathSpellings(p);
    if ('reason' in s) return { refused: s.reason };
    paths.push(...s);
  }
  return judgeRequest(policy, policy.rules, method, path, { methods: also.methods, paths: paths.slice(1) });
}

describe('method overrides', () => {
  it.each([
    ['X-HTTP-Method-Override', 'DELETE'],
    ['X-HTTP-Method', 'delete'],
    ['X-Method-Override', ' Delete '],
    ['x-http-method-override', 'GET, DELETE'],
  ])('%s: %s is judged as well as the request line', (name, value) => {
    const v = judge('POST', '/admin/users/1', [name, value]);
    expect(v).toMatchObject({ verdict: 'block', rule: 'read-only' });
    expect((v as { reason: string }).reason).toMatch(/read as DELETE \/admin\/users\/1/);
  });

  it('a _method query parameter and a form POST (whose body may hold _method) are judged as the methods they may claim', () => {
    expect(judge('POST', '/admin/users/1?_method=DELETE')).toMatchObject({ verdict: 'block', rule: 'read-only' });
    expect(judge('GET', '/admin/users/1?a=1&_method=delete')).toMatchObject({ verdict: 'block', rule: 'read-only' });
    expect(judge('POST', '/admin/users/1', ['Content-Type', 'application/x-www-form-urlencoded'])).toMatchObject({ verdict: 'block', rule: 'read-only' });
    expect(judge('POST', '/admin/users/1', ['content-type', 'multipart/form-data; boundary=x'])).toMatchObject({ verdict: 'block', rule: 'read-only' });
    expect(judge('POST', '/admin/users/1', ['content-type', 'application/json'])).toEqual({ verdict: 'allow' });
    expect(judge('PUT', '/admin/users/1', ['content-type', 'application/x-www-form-urlencoded'])).toEqual({ verdict: 'allow' });
    expect(judge('GET', '/v1/refunds', ['X-HTTP-Method-Override', 'POST'])).toMatchObject({ verdict: 'review', rule: 'refunds-need-review' });
  });

  it('an override that names no method refuses the request', () => {
    expect(judge('POST', '/x', ['X-HTTP-Method-Override', 'DEL ETE'])).toMatchObject({ refused: expect.stringMatching(/x-http-method-override header names no method/) });
    expect(judge('POST', '/x?_method=%00')).toMatchObject({ refused: expect.stringMatching(/_method parameter/) });
  });

  it('requests without overrides are judged as before', () => {
    expect(judge('POST', '/admin/users/1')).toEqual({ verdict: 'allow' });
    expect(judge('GET', '/v1/customers')).toMatchObject({ verdict: 'allow', mask: {} });
  });
});

describe('path readings', () => {
  it('X-Original-URL and X-Rewrite-URL are judged as paths, and refused when they cannot be', () => {
    expect(judge('GET', '/', ['X-Original-URL', '/internal/keys'])).toMatchObject({ verdict: 'block', rule: 'internal' });
    expect(judge('GET', '/public', ['x-rewrite-url', '/public/../internal/keys?x=1'])).toMatchObject({ verdict: 'block', rule: 'internal' });
    expect(judge('GET', '/', ['X-Original-URL', '/intern%61l/keys'])).toMatchObject({ verdict: 'block', rule: 'internal' });
    expect(judge('GET', '/', ['X-Original-URL', 'http://h/internal'])).toMatchObject({ refused: expect.stringMatching(/x-original-url header/) });
    expect(judge('GET', '/', ['X-Original-URL', '/a%2finternal'])).toMatchObject({ refused: expect.stringMatching(/x-original-url header/) });
  });

  it.each(['/internal./keys', '/internal /keys', '/internal.json', '/internal/keys.', '/v1/refunds.json', '/ｉｎｔｅｒｎａｌ/keys', '/INTERNAL.xml'])('%s is judged in the spelling the service may route it by', (path) => {
    const v = judge('POST', path);
    expect(v).toMatchObject({ verdict: expect.stringMatching(/^(block|review)$/) });
  });

  it('a format suffix reaches a mask rule', () => {
    expect(judge('GET', '/v1/customers.json')).toMatchObject({ verdict: 'allow', mask: { paths: [{ rule: 'pii' }] } });
  });

  it('a Unicode-normalised form that makes separators or dot segments is refused', () => {
    expect(judge('GET', '/public\uFF0F..\uFF0Finternal')).toMatchObject({ refused: expect.stringMatching(/NFKC/) });
    expect(judge('GET', '/public/\uFF0E\uFF0E/internal')).toMatchObject({ refused: expect.stringMatching(/NFKC/) });
  });

  it('spellings: the path itself first, duplicates dropped', () => {
    expect(pathSpellings('/v1/customers')).toEqual(['/v1/customers']);
    expect(pathSpellings('/a./b.json')).toEqual(['/a./b.json', '/a/b.json', '/a/b']);
    expect(pathSpellings('/a/')).toEqual(['/a/']);
    expect(pathSpellings('/.well-known/x')).toEqual(['/.well-known/x']);
  });
});

describe('WebDAV Destination', () => {
  it('MOVE and COPY are judged at their Destination as PUT (and a MOVE at its own path as DELETE)', () => {
    for (const dest of ['http://svc.internal/internal/keys', '/internal/keys', 'https://other:8443/a/../internal/keys', 'http://svc/%69nternal/keys#x']) {
      expect(judge('MOVE', '/public/notes', ['Destination', dest]), dest).toMatchObject({ verdict: 'block', rule: 'internal' });
      expect(judge('COPY', '/public/notes', ['Destination', dest]), dest).toMatchObject({ verdict: 'block', rule: 'internal' });
    }
    // A MOVE out of /admin removes what it moves: judged as DELETE there.
    expect(judge('MOVE', '/admin/users/1', ['Destination', '/public/x'])).toMatchObject({ verdict: 'block', rule: 'read-only' });
    expect(judge('COPY', '/admin/users/1', ['Destination', '/public/x'])).toEqual({ verdict: 'allow' });
    expect(judge('MOVE', '/public/a', ['Destination', 'http://svc/public/b'])).toEqual({ verdict: 'allow' });
  });

  it('a Destination that cannot be judged refuses the request', () => {
    expect(judge('MOVE', '/public/a', ['Destination', 'http://svc/internal%2Fkeys'])).toMatchObject({ refused: expect.stringMatching(/Destination header/) });
    expect(judge('COPY', '/public/a', ['Destination', 'internal/keys'])).toMatchObject({ refused: expect.stringMatching(/Destination header/) });
  });
});
