import { describe, expect, it } from 'vitest';
import { normaliseTarget } from '../../../gateway/engines/http/path.js';

const ok = (raw: string) => {
  const n = normaliseTarget(raw);
  if (!n.ok) throw new Error(`refused ${raw}: ${n.reason}`);
  return n;
};

describe('normaliseTarget', () => {
  it.each([
    ['/v1/refunds', '/v1/refunds', '/v1/refunds'],
    ['/v1/refunds?x=%2f..', '/v1/refunds', '/v1/refunds?x=%2f..'],
    ['/', '/', '/'],
    ['//admin///users', '/admin/users', '/admin/users'],
    ['/v1/./admin', '/v1/admin', '/v1/admin'],
    ['/v1/x/../admin/', '/v1/admin/', '/v1/admin/'],
    ['/%61dmin/users', '/admin/users', '/admin/users'],
    ['/%2e%2e%2fadmin'.replace('%2f', '/'), '', ''],
    ['/v1/%2E/admin', '/v1/admin', '/v1/admin'],
    ['/a%20b', '/a b', '/a%20b'],
    ['/caf%C3%A9', '/café', '/caf%C3%A9'],
  ])('%s → path %s, forwarded %s', (raw, path, target) => {
    if (path === '') return expect(normaliseTarget(raw).ok).toBe(false);
    const n = ok(raw);
    expect(n.path).toBe(path);
    expect(n.target).toBe(target);
  });

  it.each([
    ['/admin%2fusers', 'encoded "/"'],
    ['/admin%2Fusers', 'encoded "/"'],
    ['/admin%5cusers', 'encoded "/" or "\\"'],
    ['/admin\\users', 'backslash'],
    ['/admin%00', 'control character'],
    ['/admin%0d%0a', 'control character'],
    ['/%252e%252e/admin', 'double encoding'],
    ['/admin;jsessionid=1/users', '";"'],
    ['/admin%3bx/users', '";"'],
    ['/..', 'climbs above the root'],
    ['/v1/../../admin', 'climbs above the root'],
    ['/%2e%2e/admin', 'climbs above the root'],
    ['/%zz', 'two hex digits'],
    ['/%c3', 'UTF-8'],
    ['http://evil/admin', 'origin-form'],
    ['*', 'origin-form'],
    ['/admin#x', '"#"'],
  ])('refuses %s (%s)', (raw, why) => {
    const n = normaliseTarget(raw);
    expect(n.ok).toBe(false);
    if (!n.ok) expect(n.reason).toContain(why);
  });

  it('is idempotent: a forwarded target normalises to itself', () => {
    for (const raw of ['//a/./b/../c/', '/%61%62/c%20d', '/x/y?q=1', '/caf%c3%a9']) {
      const once = ok(raw);
      const twice = ok(once.target);
      expect(twice.target).toBe(once.target);
      expect(twice.path).toBe(once.path);
    }
  });
});
