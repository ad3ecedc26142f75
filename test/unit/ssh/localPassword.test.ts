// The local password of `sluice connect --local-password` for ssh: the digest the CLI sends with
// the tunnel request, how the gateway reads that header, and the constant-time check of a login.
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { LOCAL_PASSWORD_HEADER } from '../../../src/api/contract.js';
import { localPasswordDigest, localSideFor } from '../../../src/tunnel/localSide.js';
import { parseLocalPasswordDigest } from '../../../gateway/clientText.js';
import { localPasswordMatches } from '../../../gateway/engines/ssh/localPassword.js';

describe('local password for ssh', () => {
  it('the CLI sends sha256:<hex> of the password, never the password itself', async () => {
    const opening = await localSideFor('ssh').open({} as Socket, 'p4ss-word');
    const header = opening?.headers?.[LOCAL_PASSWORD_HEADER];
    expect(header).toBe(`sha256:${createHash('sha256').update('p4ss-word').digest('hex')}`);
    expect(header).not.toContain('p4ss-word');
    expect(header).toBe(localPasswordDigest('p4ss-word'));
  });

  it('without --local-password the ssh tunnel request carries no such header', async () => {
    const opening = await localSideFor('ssh').open({} as Socket, undefined);
    expect(opening?.headers).toBeUndefined();
  });

  it('the gateway reads the header: absent, well-formed, or malformed (refused)', () => {
    expect(parseLocalPasswordDigest(undefined)).toBeUndefined();
    const digest = parseLocalPasswordDigest(localPasswordDigest('secret'));
    expect(digest).toEqual(createHash('sha256').update('secret').digest());
    for (const bad of ['secret', 'sha256:', `sha256:${'a'.repeat(63)}`, `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(64)}`, ['x', 'y']]) {
      expect(parseLocalPasswordDigest(bad)).toBeNull();
    }
  });

  it('only the password whose digest was sent matches', () => {
    const digest = parseLocalPasswordDigest(localPasswordDigest('right one')) as Buffer;
    expect(localPasswordMatches(digest, 'right one')).toBe(true);
    expect(localPasswordMatches(digest, 'right one ')).toBe(false);
    expect(localPasswordMatches(digest, '')).toBe(false);
    expect(localPasswordMatches(Buffer.alloc(16), 'right one')).toBe(false);
  });
});
