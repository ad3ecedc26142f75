import { describe, expect, it } from 'vitest';
import { secretValues } from '../../../gateway/httpProxy/credentialEcho.js';

describe('credential scrubbing', () => {
  it('does not scrub values too short to be credentials', () => {
    expect(secretValues({ 'X-Tenant': '42', Authorization: 'Bearer abcdefgh12' })).toEqual(['Bearer abcdefgh12', 'abcdefgh12']);
  });

  it('scrubs a held value as JSON and URLs spell it, and what a Basic credential decodes to', () => {
    const token = 'ab/cd+ef"gh ij==';
    const held = secretValues({ 'X-Api-Key': token });
    for (const spelling of [token, 'ab/cd+ef\\"gh ij==', 'ab\\/cd+ef\\"gh ij==', encodeURIComponent(token), 'ab%2Fcd%2Bef%22gh+ij%3D%3D']) expect(held, spelling).toContain(spelling);
    const basic = secretValues({ Authorization: `Basic ${Buffer.from('svc-user:p4ssw0rd-long').toString('base64')}` });
    expect(basic).toContain('svc-user:p4ssw0rd-long');
    expect(basic).toContain('p4ssw0rd-long');
    // A short password is left alone, like any short value.
    expect(secretValues({ Authorization: `Basic ${Buffer.from('u:short').toString('base64')}` })).not.toContain('short');
  });
});
