// Masking strategies and value masking, with properties: masking never produces invalid UTF-8,
// never cuts a multi-byte character, and never changes what it does not mask.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DETECTOR_NAMES } from '../../../gateway/policy/mask/detectors.js';
import { hashBytes, maskValue, maskValueBytes, partialBytes, partialKeep, REDACTED, type DetectPlan, type MaskStrategy } from '../../../gateway/policy/mask/strategies.js';
import { HASH_KEY } from './fixtures.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const isValidUtf8 = (b: Uint8Array) => {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
};

const allDetectors = (strategy: MaskStrategy): DetectPlan => new Map(DETECTOR_NAMES.map((d) => [d, strategy]));
const STRATEGIES: readonly MaskStrategy[] = ['redact', 'partial', 'hash'];

describe('strategies', () => {
  it('redact replaces the value with a fixed marker', () => {
    expect(maskValue('4111111111111111', { whole: 'redact' })).toBe(REDACTED);
    expect(maskValue('', { whole: 'redact' })).toBe(REDACTED);
  });

  it('partial keeps the last 4 characters, never more than half', () => {
    expect(partialBytes(Buffer.from('4111111111111111')).toString()).toBe('************1111');
    expect(partialBytes(Buffer.from('alice@example.com')).toString()).toBe('*************.com');
    expect(partialBytes(Buffer.from('1234')).toString()).toBe('**34');
    expect(partialBytes(Buffer.from('abc')).toString()).toBe('**c');
    expect(partialBytes(Buffer.from('a')).toString()).toBe('*');
    expect(partialBytes(Buffer.from('')).toString()).toBe('');
    expect([0, 1, 2, 3, 7, 8, 9, 100].map(partialKeep)).toEqual([0, 0, 1, 1, 3, 4, 4, 4]);
  });

  it('partial counts characters, not bytes, and keeps whole characters', () => {
    expect(partialBytes(Buffer.from('Zoë Ünïcødé')).toString()).toBe('*******cødé');
    expect(partialBytes(Buffer.from('日本語のテキスト')).toString()).toBe('****テキスト');
    expect(partialBytes(Buffer.from('a🙂b🙂c🙂d🙂')).toString()).toBe('****c🙂d🙂');
  });

  it('hash is keyed, stable and short', () => {
    const a = hashBytes(Buffer.from('alice@example.com'), HASH_KEY).toString();
    expect(a).toMatch(/^h:[0-9a-f]{16}$/);
    expect(hashBytes(Buffer.from('alice@example.com'), HASH_KEY).toString()).toBe(a);
    expect(hashBytes(Buffer.from('bob@example.com'), HASH_KEY).toString()).not.toBe(a);
    expect(hashBytes(Buffer.from('alice@example.com'), Buffer.from('another key of 16+ bytes')).toString()).not.toBe(a);
  });

  it('hash without a key refuses rather than falling back', () => {
    expect(() => maskValue('x', { whole: 'hash' })).toThrow(/masking key/);
  });
});

describe('maskValue with detectors', () => {
  it('replaces only what the detectors find', () => {
    const text = 'Card 4111 1111 1111 1111, mail ann@example.com, ssn 123-45-6789.';
    expect(maskValue(text, { detect: allDetectors('redact') })).toBe('Card [redacted], mail [redacted], ssn [redacted].');
    expect(maskValue(text, { detect: allDetectors('partial') })).toBe('Card ***************1111, mail ***********.com, ssn *******6789.');
    expect(maskValue(text, { detect: allDetectors('hash'), hashKey: HASH_KEY })).toMatch(/^Card h:[0-9a-f]{16}, mail h:[0-9a-f]{16}, ssn h:[0-9a-f]{16}\.$/);
  });

  it('applies each detector its own strategy', () => {
    const plan: DetectPlan = new Map([
      ['email', 'partial'],
      ['credit_card', 'redact'],
    ]);
    expect(maskValue('ann@example.com 4111111111111111', { detect: plan })).toBe('***********.com [redacted]');
  });

  it('returns undefined (keep the bytes) when nothing is found', () => {
    const b = Buffer.from('nothing to see, 42');
    expect(maskValueBytes(b, 0, b.length, { detect: allDetectors('redact') })).toBeUndefined();
    expect(maskValueBytes(b, 0, b.length, {})).toBeUndefined();
  });

  it('masks unicode emails whole and leaves neighbouring multi-byte text intact', () => {
    expect(maskValue('<jörg@bücher.de>', { detect: allDetectors('redact') })).toBe('<[redacted]>');
    // Detectors read bytes, not Unicode classes: non-ASCII glued to an email is taken with it.
    expect(maskValue('→jörg@bücher.de←', { detect: allDetectors('redact') })).toBe('[redacted]');
    expect(maskValue('日本 4111111111111111 日本', { detect: allDetectors('partial') })).toBe('日本 ************1111 日本');
  });
});

// Text that cannot contain any detector match: no digits, no @, no '-', '_', '/', '+', and only
// lower-case ASCII letters among the Latin ones (secrets need upper case or a prefix with '_'/'-').
const safeChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz ,.;:!?()[]{}"\'éüßçøæ日本語中文한국어🙂👍🏽\u0301\t\n'.match(/[\s\S]/gu) as string[]);
const safeText = fc.array(safeChar, { maxLength: 40 }).map((a) => a.join(''));
const sensitive = fc.constantFrom(
  '4111111111111111',
  '5555 5555 5555 4444',
  'ann@example.com',
  'jörg@bücher.de',
  '123-45-6789',
  'DE89370400440532013000',
  '+44 20 7946 0958',
  '(415) 555-2671',
  'AKIAIOSFODNN7EXAMPLE',
  `ghp_${'a1B2'.repeat(9)}`,
  'xoxb-123456789012-abcdefghij',
);

describe('masking properties', () => {
  it('never produces invalid UTF-8, whatever the input and strategy', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string({ unit: 'binary' }), sensitive), { maxLength: 6 }), fc.constantFrom(...STRATEGIES), (pieces, strategy) => {
        const bytes = Buffer.from(pieces.join(' '), 'utf8');
        const whole = maskValueBytes(bytes, 0, bytes.length, { whole: strategy, hashKey: HASH_KEY }) as Buffer;
        expect(isValidUtf8(whole)).toBe(true);
        const spans = maskValueBytes(bytes, 0, bytes.length, { detect: allDetectors(strategy), hashKey: HASH_KEY });
        if (spans !== undefined) expect(isValidUtf8(spans)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('partial of valid UTF-8 is valid UTF-8 with the same number of characters', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const out = partialBytes(Buffer.from(s, 'utf8'));
        expect(isValidUtf8(out)).toBe(true);
        expect([...out.toString('utf8')].length).toBe([...s].length);
        expect(out.toString('utf8').endsWith([...s].slice([...s].length - partialKeep([...s].length)).join(''))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('never changes text around what it masks, nor text without anything to mask', () => {
    fc.assert(
      fc.property(safeText, fc.option(sensitive, { nil: undefined }), safeText, fc.constantFrom(...STRATEGIES), (before, secret, after, strategy) => {
        const mask = { detect: allDetectors(strategy), hashKey: HASH_KEY };
        if (secret === undefined) {
          const text = before + after;
          expect(maskValue(text, mask)).toBe(text);
          return;
        }
        const text = `${before} ${secret} ${after}`;
        const replacement = maskValue(secret, mask);
        expect(replacement).not.toBe(secret);
        expect(maskValue(text, mask)).toBe(`${before} ${replacement} ${after}`);
      }),
      { numRuns: 1000 },
    );
  });
});
