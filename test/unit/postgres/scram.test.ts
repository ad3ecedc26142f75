// SCRAM-SHA-256 client: the RFC 7677 vector, a full exchange against an independent server-side
// computation, and every way a server can misbehave.
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { computeScramProof, createScramClient, SALTED_PASSWORD_CACHE_SIZE, saltedPasswordFor, saslprep, ScramError } from '../../../gateway/engines/postgres/scram.js';

// RFC 7677 §3.
const RFC = {
  password: 'pencil',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinalWithoutProof: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  proof: 'dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverSignature: '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};
const SALT = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');

/** What a server holds and checks (RFC 5802 §3), written independently of the client. */
function fakeServer(password: string, authMessage: string) {
  const salted = pbkdf2Sync(password, SALT, 4096, 32, 'sha256');
  const mac = (key: Buffer, data: string) => createHmac('sha256', key).update(data).digest();
  const storedKey = createHash('sha256').update(mac(salted, 'Client Key')).digest();
  return {
    acceptsProof(proofB64: string): boolean {
      const signature = mac(storedKey, authMessage);
      const clientKey = Buffer.from(proofB64, 'base64').map((b, k) => b ^ signature[k]!);
      return createHash('sha256').update(clientKey).digest().equals(storedKey);
    },
    serverFinal: `v=${mac(mac(salted, 'Server Key'), authMessage).toString('base64')}`,
  };
}

function exchange(password = RFC.password) {
  const client = createScramClient(password, RFC.clientNonce);
  const clientFinal = client.handleServerFirst(RFC.serverFirst);
  return { client, clientFinal };
}

describe('computeScramProof', () => {
  it('reproduces the RFC 7677 test vector (user "user")', () => {
    const authMessage = `n=user,r=${RFC.clientNonce},${RFC.serverFirst},${RFC.clientFinalWithoutProof}`;
    const { clientProof, serverSignature } = computeScramProof(RFC.password, SALT, 4096, authMessage);
    expect(clientProof.toString('base64')).toBe(RFC.proof);
    expect(serverSignature.toString('base64')).toBe(RFC.serverSignature);
  });
});

describe('createScramClient (PostgreSQL form: empty user name, no channel binding)', () => {
  it('sends the gs2 header, an empty user name and the nonce', () => {
    expect(createScramClient(RFC.password, RFC.clientNonce).clientFirstMessage()).toBe(`n,,n=,r=${RFC.clientNonce}`);
  });

  it('makes a random printable nonce by default, different each time', () => {
    const a = createScramClient('x').clientFirstMessage();
    const b = createScramClient('x').clientFirstMessage();
    expect(a).toMatch(/^n,,n=,r=[\x21-\x2b\x2d-\x7e]{24}$/);
    expect(a).not.toBe(b);
  });

  it('completes the RFC 7677 exchange with the empty user name', () => {
    const { client, clientFinal } = exchange();
    const authMessage = `n=,r=${RFC.clientNonce},${RFC.serverFirst},${RFC.clientFinalWithoutProof}`;
    const server = fakeServer(RFC.password, authMessage);
    const [withoutProof, proof] = clientFinal.split(',p=');
    expect(withoutProof).toBe(RFC.clientFinalWithoutProof);
    expect(proof).not.toBe(RFC.proof); // the AuthMessage differs from the RFC's
    expect(server.acceptsProof(proof!)).toBe(true);
    expect(() => client.verifyServerFinal(server.serverFinal)).not.toThrow();
  });

  it('produces a proof the server rejects for a wrong password', () => {
    const { clientFinal } = exchange('pencil2');
    const authMessage = `n=,r=${RFC.clientNonce},${RFC.serverFirst},${RFC.clientFinalWithoutProof}`;
    expect(fakeServer(RFC.password, authMessage).acceptsProof(clientFinal.split(',p=')[1]!)).toBe(false);
  });

  it('rejects a tampered server signature', () => {
    const { client } = exchange();
    const authMessage = `n=,r=${RFC.clientNonce},${RFC.serverFirst},${RFC.clientFinalWithoutProof}`;
    const good = Buffer.from(fakeServer(RFC.password, authMessage).serverFinal.slice(2), 'base64');
    good[0]! ^= 1;
    expect(() => client.verifyServerFinal(`v=${good.toString('base64')}`)).toThrow(ScramError);
  });

  it.each([
    ['missing', ''],
    ['not base64', 'v=not*base64'],
    ['truncated', 'v=6rriTRBi23WpRR/wtup+'],
    ['from another AuthMessage', `v=${RFC.serverSignature}`],
  ])('rejects a %s server signature', (_label, serverFinal) => {
    expect(() => exchange().client.verifyServerFinal(serverFinal)).toThrow(ScramError);
  });

  it('reports a server error (e=) as ScramError', () => {
    expect(() => exchange().client.verifyServerFinal('e=invalid-proof')).toThrow(/invalid-proof/);
  });

  it.each([
    ['another nonce', RFC.serverFirst.replace('r=rOprNG', 'r=XOprNG')],
    ['only the client nonce', `r=${RFC.clientNonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['a shorter nonce', 'r=rOprNGfwEb,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'],
  ])('rejects a server nonce that is %s', (_label, serverFirst) => {
    const client = createScramClient(RFC.password, RFC.clientNonce);
    expect(() => client.handleServerFirst(serverFirst)).toThrow(/nonce/);
  });

  it.each([
    ['iteration count 0', 'i=0'],
    ['negative iteration count', 'i=-1'],
    ['absurd iteration count', 'i=10000001'],
    ['non-numeric iteration count', 'i=4096x'],
    ['salt that is not base64', 's=W22Za*0SNY7soEsUEjb6gQ=='],
    ['empty salt', 's='],
    ['mandatory extension', 'm=ext'],
    ['attributes out of order', 'swap'],
  ])('rejects a server-first with %s', (_label, change) => {
    const [r, s, i] = RFC.serverFirst.split(',');
    const serverFirst =
      change === 'swap' ? [s, r, i].join(',')
        : change.startsWith('m=') ? `${change},${RFC.serverFirst}`
          : change.startsWith('s=') ? [r, change, i].join(',')
            : [r, s, change].join(',');
    const client = createScramClient(RFC.password, RFC.clientNonce);
    expect(() => client.handleServerFirst(serverFirst)).toThrow(ScramError);
  });

  it('accepts iteration counts PostgreSQL allows below 4096', () => {
    const client = createScramClient(RFC.password, RFC.clientNonce);
    expect(client.handleServerFirst(RFC.serverFirst.replace('i=4096', 'i=1'))).toMatch(/^c=biws,r=.+,p=/);
  });

  it('enforces the order of the exchange', () => {
    const fresh = createScramClient(RFC.password, RFC.clientNonce);
    expect(() => fresh.verifyServerFinal(`v=${RFC.serverSignature}`)).toThrow(ScramError);
    const { client } = exchange();
    expect(() => client.handleServerFirst(RFC.serverFirst)).toThrow(ScramError);
  });

  it('rejects a client nonce that is not printable', () => {
    expect(() => createScramClient('x', 'a,b')).toThrow(ScramError);
    expect(() => createScramClient('x', '')).toThrow(ScramError);
  });

  it('never puts the password in an error', () => {
    const password = 'correct horse battery staple';
    const failures: unknown[] = [];
    const attempts: ((c: ReturnType<typeof createScramClient>) => void)[] = [
      (c) => c.handleServerFirst('garbage'),
      (c) => c.handleServerFirst(`r=${password},s=AAAA,i=1`),
      (c) => { c.handleServerFirst(RFC.serverFirst); c.verifyServerFinal(`v=${RFC.serverSignature}`); },
      (c) => { c.handleServerFirst(RFC.serverFirst); c.verifyServerFinal('e=other-error'); },
    ];
    for (const attempt of attempts) {
      try {
        attempt(createScramClient(password, RFC.clientNonce));
      } catch (err) {
        failures.push(err);
      }
    }
    expect(failures).toHaveLength(attempts.length);
    for (const err of failures) {
      expect(err).toBeInstanceOf(ScramError);
      expect(JSON.stringify({ ...(err as object), message: (err as Error).message, stack: (err as Error).stack })).not.toContain('horse');
    }
  });
});

describe('saslprep (as PostgreSQL prepares passwords)', () => {
  it.each([
    ['ASCII, even with control characters, unchanged', 'pa\tss', 'pa\tss'],
    ['non-ASCII space mapped to U+0020', 'a\u3000b', 'a b'],
    ['soft hyphen and zero-width joiner removed', 'a\u00adb\u200dc', 'abc'],
    ['NFKC applied', '\uff21\u2168\ufb01', 'AIXfi'],
    ['right-to-left string kept', '\u05d0\u05d1', '\u05d0\u05d1'],
    ['mixed directions: raw', 'a\u05d0\uff41', 'a\u05d0\uff41'],
    ['right-to-left not at both ends: raw', '\u05d0\uff11', '\u05d0\uff11'],
    ['prohibited character: raw', '\u0007\uff41', '\u0007\uff41'],
    ['private use: raw', '\ue000\uff41', '\ue000\uff41'],
    ['unassigned in Unicode 3.2: raw', '\u{1F511}\uff41', '\u{1F511}\uff41'],
    ['nothing left after mapping: raw', '\u00ad', '\u00ad'],
    ['lone surrogate: raw', '\ud800\uff41', '\ud800\uff41'],
  ])('%s', (_label, input, expected) => {
    expect(saslprep(input)).toBe(expected);
  });
});

describe('saltedPasswordFor', () => {
  it('derives once per (password, salt, iterations) and matches an independent PBKDF2', () => {
    const first = saltedPasswordFor('cache-pw', SALT, 4096);
    expect(first.equals(pbkdf2Sync('cache-pw', SALT, 4096, 32, 'sha256'))).toBe(true);
    // The same Buffer: the 4096 rounds did not run again.
    expect(saltedPasswordFor('cache-pw', SALT, 4096)).toBe(first);
    const otherSalt = Buffer.from('another salt');
    for (const [password, salt, iterations] of [['cache-pw2', SALT, 4096], ['cache-pw', otherSalt, 4096], ['cache-pw', SALT, 4095]] as const) {
      const derived = saltedPasswordFor(password, salt, iterations);
      expect(derived).not.toBe(first);
      expect(derived.equals(pbkdf2Sync(password, salt, iterations, 32, 'sha256'))).toBe(true);
    }
  });

  it('stays bounded: a target offering a new salt each time pushes out the oldest entry', () => {
    const first = saltedPasswordFor('bounded-pw', Buffer.from('salt 0'), 2);
    for (let k = 1; k <= SALTED_PASSWORD_CACHE_SIZE; k++) saltedPasswordFor('bounded-pw', Buffer.from(`salt ${k}`), 2);
    const again = saltedPasswordFor('bounded-pw', Buffer.from('salt 0'), 2);
    expect(again).not.toBe(first);
    expect(again.equals(first)).toBe(true);
  });

  it('a cached login still fails for a server that does not know the password', () => {
    exchange();
    const { client } = exchange();
    expect(() => client.verifyServerFinal(`v=${Buffer.alloc(32).toString('base64')}`)).toThrow(ScramError);
  });
});
