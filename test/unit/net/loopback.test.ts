// The loopback rule that lets plain http:// through, as a table: every spelling an attacker could
// use to make a remote host look local, and every honest loopback spelling that must keep working.
import { describe, expect, it } from 'vitest';
import { normaliseGatewayUrl } from '../../../src/api/endpoint.js';
import { isLoopbackHost, isLoopbackUrl } from '../../../src/net/loopback.js';
import { UsageError } from '../../../src/errors.js';

const LOOPBACK_URLS = [
  'http://127.0.0.1:8443',
  'http://127.255.255.254',
  'http://127.1', // the WHATWG parser reads it as 127.0.0.1
  'http://0x7f.0.0.1',
  'http://2130706433',
  'http://127.0.0.1.', // a trailing dot after an IPv4 literal is dropped by the parser
  'http://[::1]:8443',
  'http://[0:0:0:0:0:0:0:1]',
  'http://localhost:8443',
  'http://LOCALHOST',
];

const REMOTE_URLS = [
  'http://127.attacker.example',
  'http://127.0.0.1.nip.io',
  'http://127-0-0-1.nip.io',
  'http://localhost.evil',
  'http://localhost.',
  'http://localhost.localdomain',
  'http://evil-localhost',
  'http://127.0.0.1%2eevil', // percent-decoded to the name 127.0.0.1.evil
  'http://127.0.0.1@evil.example', // userinfo: the host is evil.example
  'http://localhost@evil.example',
  'http://evil@127.0.0.1', // userinfo on a loopback host: refused, never a configuration
  'http://user:pw@localhost',
  'http://[::ffff:7f00:1]', // IPv4-mapped: refused by decision (docs)
  'http://[::ffff:127.0.0.1]',
  'http://[::]',
  'http://0.0.0.0',
  'http://0',
  'http://128.0.0.1',
  'http://[::2]',
  'http://[fe80::1]',
  'http://10.0.0.1',
  'http://example.com',
];

describe('isLoopbackUrl', () => {
  it.each(LOOPBACK_URLS)('accepts %s', (u) => expect(isLoopbackUrl(new URL(u))).toBe(true));
  it.each(REMOTE_URLS)('refuses %s', (u) => expect(isLoopbackUrl(new URL(u))).toBe(false));
});

describe('isLoopbackHost (a bare host, e.g. a listen address)', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.10.20.30', true],
    ['::1', true],
    ['[::1]', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::0:1', true],
    ['localhost', true],
    ['Localhost', true],
    ['127.1', false], // a bare host is not parsed as a URL: only canonical dotted quads
    ['127.000.0.1', false],
    ['0127.0.0.1', false],
    ['127.attacker.example', false],
    ['localhost.', false],
    ['::1%lo', false],
    ['::ffff:127.0.0.1', false],
    ['::', false],
    ['0.0.0.0', false],
    ['', false],
    ['1::', false],
    ['::1:0', false],
  ])('%s → %s', (host, expected) => expect(isLoopbackHost(host)).toBe(expected));
});

describe('normaliseGatewayUrl', () => {
  it.each(REMOTE_URLS)('refuses %s with a usage error', (u) => expect(() => normaliseGatewayUrl(u)).toThrow(UsageError));
  it('names the rule in the refusal', () => {
    expect(() => normaliseGatewayUrl('http://127.attacker.example')).toThrow(/refusing plain http:\/\/ for 127\.attacker\.example.*127\.0\.0\.0\/8, \[::1\] and localhost/);
    expect(() => normaliseGatewayUrl('https://user:pw@gw.example')).toThrow(/must not contain "user:password@"/);
  });
  it.each(LOOPBACK_URLS)('accepts %s', (u) => expect(normaliseGatewayUrl(u)).toMatch(/^http:\/\//));
  it('keeps https to any host', () => expect(normaliseGatewayUrl('https://127.attacker.example:8443/')).toBe('https://127.attacker.example:8443'));
});
