// Value detectors: what each one must find, what it must leave alone (checksums and formats keep
// ordinary numbers unmasked), and how spans from several detectors merge.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DETECTOR_NAMES, findSpans, ibanValid, luhnValid, screenBytes, type DetectorName } from '../../../gateway/policy/mask/detectors.js';

const found = (s: string, d: DetectorName) => findSpans(s, [d]).map((sp) => s.slice(sp.start, sp.end));

describe('credit cards', () => {
  it.each([
    '4111111111111111',
    '4111 1111 1111 1111',
    '4111-1111-1111-1111',
    '378282246310005', // Amex, 15 digits
    '5555555555554444',
    '2223003122003222', // Mastercard 2-series
    '6011111111111117',
    '3530111333300000',
    '30569309025904', // Diners, 14 digits
    '4222222222222', // 13 digits
  ])('finds %s', (card) => {
    expect(found(`card: ${card}.`, 'credit_card')).toEqual([card]);
  });

  it.each([
    '4111111111111112', // Luhn fails
    '4111 1111 1111 1112',
    '1234567812345670', // Luhn-valid, but no card network starts with 1
    '411111111111', // 12 digits
    '41111111111111111111111', // 23 digits: a long number, not a card
    '2024-01-15 10:30:00',
    '+1 415 555 2671',
  ])('leaves %s alone', (s) => {
    expect(found(s, 'credit_card')).toEqual([]);
  });

  it('finds a card among neighbouring numbers', () => {
    expect(found('order 12 4111 1111 1111 1111 99 shipped', 'credit_card')).toEqual(['4111 1111 1111 1111']);
    expect(found('x4111111111111111y', 'credit_card')).toEqual(['4111111111111111']);
    expect(found('4111111111111111,5555555555554444', 'credit_card')).toEqual(['4111111111111111', '5555555555554444']);
  });

  it('implements Luhn', () => {
    expect(luhnValid('79927398713')).toBe(true);
    expect(luhnValid('79927398710')).toBe(false);
  });
});

describe('email', () => {
  it.each([
    ['alice@example.com', 'alice@example.com'],
    ['Contact: bob.smith+tag@sub.example.co.uk.', 'bob.smith+tag@sub.example.co.uk'],
    ['<carol_x@example.org>', 'carol_x@example.org'],
    ['{"email":"dave@example.io"}', 'dave@example.io'],
    ['jörg@bücher.de', 'jörg@bücher.de'],
    ['UPPER@EXAMPLE.COM', 'UPPER@EXAMPLE.COM'],
  ])('finds it in %s', (s, email) => {
    expect(found(s, 'email')).toEqual([email]);
  });

  it.each(['@handle', 'a@b', 'foo@bar.1', 'x @ y.com', 'user@.com', 'no at sign'])('leaves %s alone', (s) => {
    expect(found(s, 'email')).toEqual([]);
  });
});

describe('US SSN', () => {
  it.each(['123-45-6789', '078 05 1120'])('finds %s', (ssn) => {
    expect(found(`ssn ${ssn}`, 'us_ssn')).toEqual([ssn]);
  });

  it.each(['000-12-3456', '666-12-3456', '900-12-3456', '123-00-4567', '123-45-0000', '123-45 6789', '1-123-45-6789', '123456789', '2024-01-15'])('leaves %s alone', (s) => {
    expect(found(s, 'us_ssn')).toEqual([]);
  });
});

describe('IBAN', () => {
  it.each(['DE89370400440532013000', 'GB82WEST12345698765432', 'GB82 WEST 1234 5698 7654 32', 'FR1420041010050500013M02606', 'NL91ABNA0417164300', 'de89370400440532013000'])('finds %s', (iban) => {
    expect(found(`IBAN: ${iban} is mine`, 'iban')).toEqual([iban]);
  });

  it('drops a trailing word taken for a group', () => {
    expect(found('DE89 3704 0044 0532 0130 00 ok', 'iban')).toEqual(['DE89 3704 0044 0532 0130 00']);
  });

  it.each(['DE89370400440532013001', 'XX00 0000 0000 0000', 'AB12CDEFGHIJKLMNOP'])('leaves %s alone (mod-97 fails)', (s) => {
    expect(found(s, 'iban')).toEqual([]);
  });

  it('implements mod-97', () => {
    expect(ibanValid('GB82 WEST 1234 5698 7654 32')).toBe(true);
    expect(ibanValid('GB83 WEST 1234 5698 7654 32')).toBe(false);
  });
});

describe('phone numbers', () => {
  it.each(['+1 415 555 2671', '+44 20 7946 0958', '+4930123456', '(415) 555-2671', '415-555-2671', '415.555.2671', '+33 (0)1 42 68 53 00'])('finds %s', (phone) => {
    expect(found(`call ${phone} now`, 'phone')).toEqual([phone]);
  });

  it.each(['2024-01-15', '12:30:45', '1700000000', 'v1.2.3', '4155552671', '+12', '10.0.0.1'])('leaves %s alone', (s) => {
    expect(found(s, 'phone')).toEqual([]);
  });
});

describe('secrets', () => {
  const jwt = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
  const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc==\n-----END RSA PRIVATE KEY-----';
  it.each([
    ['AWS access key id', 'AKIAIOSFODNN7EXAMPLE'],
    ['AWS temporary key id', 'ASIAY34FZKBOKMUTVV7A'],
    ['AWS secret access key', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'],
    ['PEM private key', pem],
    ['OpenSSH private key', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----'],
    ['JWT', jwt],
    ['GitHub classic token', `ghp_${'a1B2'.repeat(9)}`],
    ['GitHub OAuth token', `gho_${'Z9y8'.repeat(9)}`],
    ['GitHub fine-grained token', `github_pat_11ABCDEFG0${'x'.repeat(12)}_${'y'.repeat(59)}`],
    ['Slack bot token', 'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx'],
    ['Slack webhook', 'https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX'],
    ['Google API key', `AIza${'S'.repeat(20)}${'y'.repeat(15)}`],
    ['Stripe key', `sk_live_${'4eC39HqLyjWDarjtT1zdp7dc'}`],
  ])('finds a %s', (_label, secret) => {
    expect(found(`value: ${secret} end`, 'secret')).toEqual([secret]);
  });

  it('masks an unterminated private key block (a truncated value) to the end', () => {
    expect(found('key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC', 'secret')).toEqual(['-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC']);
  });

  it.each([
    ['a SHA-1 hex digest', 'da39a3ee5e6b4b0d3255bfef95601890afd80709'],
    ['a UUID', '123e4567-e89b-12d3-a456-426614174000'],
    ['a long word', 'Pneumonoultramicroscopicsilicovolcanoconiosis'],
    ['a public key', '-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0B\n-----END PUBLIC KEY-----'],
    ['an AKIA prefix that is too short', 'AKIAIOSFODNN7'],
    ['ghp_ with a short tail', 'ghp_abc'],
  ])('leaves %s alone', (_label, s) => {
    expect(found(s, 'secret')).toEqual([]);
  });
});

describe('findSpans', () => {
  it('merges overlapping spans from different detectors and sorts them', () => {
    const s = 'ssn 123-45-6789, mail a@example.com, card 4111111111111111';
    const spans = findSpans(s, DETECTOR_NAMES);
    expect(spans.map((sp) => [s.slice(sp.start, sp.end), sp.detector])).toEqual([
      ['123-45-6789', 'us_ssn'],
      ['a@example.com', 'email'],
      ['4111111111111111', 'credit_card'],
    ]);
  });

  it('runs only the detectors asked for', () => {
    expect(findSpans('a@example.com 4111111111111111', ['credit_card']).map((s) => s.detector)).toEqual(['credit_card']);
    expect(findSpans('a@example.com', [])).toEqual([]);
  });

  it('finds nothing in ordinary text', () => {
    expect(findSpans('The quick brown fox jumps over the lazy dog, 42 times in 2024.', DETECTOR_NAMES)).toEqual([]);
  });
});

describe('the byte screen before decoding', () => {
  // Pieces that make every detector fire now and then, glued by what separates them in real text.
  const SAMPLES = ['4111 1111 1111 1111', '4111111111111111', 'a.b@example.com', 'x@y', '123-45-6789', '123 45 6789', 'GB82 WEST 1234 5698 7654 32', 'GB82WEST12345698765432', '+44 20 7946 0958', '(212) 555-0187', '212.555.0187', 'AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'ghp_' + 'a'.repeat(36), 'é', '€'];
  const piece = fc.oneof(
    fc.constantFrom(...SAMPLES),
    fc.stringMatching(/^[0-9]{1,12}$/),
    fc.constantFrom(' ', '-', '.', '+', '@', '(', ')', '/', 'ab', 'Z', '_'),
    fc.string({ maxLength: 6 }),
  );
  const text = fc.array(piece, { maxLength: 12 }).map((parts) => parts.join(''));

  it('leaves out only detectors that find nothing in the value', () => {
    fc.assert(
      fc.property(text, (s) => {
        const bytes = Buffer.from(s, 'utf8');
        const latin1 = bytes.toString('latin1');
        const possible = screenBytes(bytes, 0, bytes.length, DETECTOR_NAMES);
        for (const d of DETECTOR_NAMES) if (!possible.includes(d)) expect(findSpans(latin1, [d])).toEqual([]);
        expect(findSpans(latin1, possible)).toEqual(findSpans(latin1, DETECTOR_NAMES));
      }),
      { numRuns: 5_000 },
    );
  });

  it('reads only the bytes it is given', () => {
    const bytes = Buffer.from('4111111111111111 x@y.com customer 1234');
    expect(screenBytes(bytes, 17, 24, DETECTOR_NAMES)).toEqual(['email']);
    expect(screenBytes(bytes, 25, bytes.length, DETECTOR_NAMES)).toEqual([]);
    expect(screenBytes(bytes, 0, 16, DETECTOR_NAMES)).toEqual(['credit_card']);
  });
});
