import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { createScrubber } from '../../../gateway/httpProxy/scrub.js';
import { secretValues } from '../../../gateway/httpProxy/credentialEcho.js';

describe('credential scrubbing', () => {
  it('overwrites the secret across every chunk boundary, keeping the length', async () => {
    const secret = 'Bearer s3cr3t-token-value';
    const secrets = secretValues({ Authorization: secret }).map((s) => Buffer.from(s));
    const text = `head ${secret} middle s3cr3t-token-value tail`;
    for (let size = 1; size <= text.length; size++) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < text.length; i += size) chunks.push(Buffer.from(text.slice(i, i + size)));
      const out = (await buffer(Readable.from(chunks).pipe(createScrubber(secrets)))).toString();
      expect(out.length).toBe(text.length);
      expect(out).not.toContain('s3cr3t');
      expect(out.startsWith('head ')).toBe(true);
      expect(out.endsWith(' tail')).toBe(true);
    }
  });

  it('does not scrub values too short to be credentials', () => {
    expect(secretValues({ 'X-Tenant': '42', Authorization: 'Bearer abcdefgh12' })).toEqual(['Bearer abcdefgh12', 'abcdefgh12']);
  });
});
