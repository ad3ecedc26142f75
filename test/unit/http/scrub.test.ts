import { describe, expect, it } from 'vitest';
import { secretValues } from '../../../gateway/httpProxy/credentialEcho.js';

describe('credential scrubbing', () => {
  it('does not scrub values too short to be credentials', () => {
    expect(secretValues({ 'X-Tenant': '42', Authorization: 'Bearer abcdefgh12' })).toEqual(['Bearer abcdefgh12', 'abcdefgh12']);
  });
});
