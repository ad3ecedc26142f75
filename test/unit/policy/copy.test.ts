// COPY TO STDOUT rows, text and CSV: fields split with escapes and quotes respected, masked
// fields rewritten in the same format, everything else byte-identical.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCopyMasker, maskCopyLine, type CopyMaskOptions } from '../../../gateway/policy/mask/copy.js';
import { DETECTOR_NAMES } from '../../../gateway/policy/mask/detectors.js';
import { newMaskStats, REDACTED, type MaskStrategy } from '../../../gateway/policy/mask/strategies.js';

const line = (s: string) => Buffer.from(s, 'utf8');
const cols = (entries: [number, MaskStrategy][]) => new Map(entries);
const text = (s: string, opts: Partial<CopyMaskOptions> = {}) => maskCopyLine(line(s), { format: 'text', columns: cols([[1, 'redact']]), ...opts }).toString('utf8');
const csv = (s: string, opts: Partial<CopyMaskOptions> = {}) => maskCopyLine(line(s), { format: 'csv', columns: cols([[1, 'redact']]), ...opts }).toString('utf8');

describe('COPY text format', () => {
  it('masks the masked column only', () => {
    expect(text('1\talice@example.com\tAlice\n')).toBe(`1\t${REDACTED}\tAlice\n`);
  });

  it('keeps \\N (NULL) and a custom NULL string', () => {
    expect(text('1\t\\N\tx\n')).toBe('1\t\\N\tx\n');
    expect(text('1\tNA\tx\n', { null: 'NA' })).toBe('1\tNA\tx\n');
  });

  it('does not split on an escaped delimiter, and masks the unescaped value', () => {
    // a\tb\\c is the 5 characters a, TAB, b, \, c: partial keeps the last 2
    expect(text('1\ta\\tb\\\\c\tz\n', { columns: cols([[1, 'partial']]) })).toBe('1\t***\\\\c\tz\n');
    expect(text('1|x\\|y|z\n', { delimiter: '|' })).toBe(`1|${REDACTED}|z\n`);
  });

  it('re-escapes what it keeps, the way PostgreSQL writes it', () => {
    // ab\ncd is a, b, LF, c, d: partial keeps "cd"
    expect(text('1\tab\\ncd\tz\n', { columns: cols([[1, 'partial']]) })).toBe('1\t***cd\tz\n');
    // abc\\\tz is a, b, c, \, TAB, z: partial keeps \, TAB, z, written \\ and \t again
    expect(text('1\tabc\\\\\\tz\tz\n', { columns: cols([[1, 'partial']]) })).toBe('1\t***\\\\\\tz\tz\n');
  });

  it('decodes octal and hex escapes before detecting', () => {
    expect(maskCopyLine(line('ann\\100example.com\t\\x34111111111111111\n'), { format: 'text', columns: cols([]), detect: new Map(DETECTOR_NAMES.map((d) => [d, 'redact'])) }).toString()).toBe(`${REDACTED}\t${REDACTED}\n`);
  });

  it('returns the same Buffer when nothing is masked', () => {
    const b = line('1\thello\tworld\n');
    expect(maskCopyLine(b, { format: 'text', columns: cols([]), detect: new Map([['email', 'redact']]) })).toBe(b);
    const nul = line('1\t\\N\tworld\n');
    expect(maskCopyLine(nul, { format: 'text', columns: cols([[1, 'redact']]) })).toBe(nul);
  });
});

describe('COPY CSV format', () => {
  it('masks unquoted and quoted fields, re-quoting what it writes', () => {
    expect(csv('1,alice@example.com,Alice\n')).toBe(`1,"${REDACTED}",Alice\n`);
    expect(csv('1,"a,b ""c""",Alice\n')).toBe(`1,"${REDACTED}",Alice\n`);
  });

  it('keeps unquoted empty (NULL) and masks quoted empty (empty string)', () => {
    expect(csv('1,,x\n')).toBe('1,,x\n');
    expect(csv('1,"",x\n')).toBe(`1,"${REDACTED}",x\n`);
  });

  it('handles embedded newlines, delimiters and quotes inside quotes', () => {
    // 16 characters: partial keeps ' "q"' and doubles its quotes again
    expect(csv('1,"line1\nline2, ""q""",z\n', { columns: cols([[1, 'partial']]) })).toBe('1,"************ ""q""",z\n');
  });

  it('honours DELIMITER, QUOTE and ESCAPE', () => {
    expect(csv("1;'x;y';z\n", { delimiter: ';', quote: "'" })).toBe(`1;'${REDACTED}';z\n`);
    expect(csv('1,"a\\"b",z\n', { escape: '\\', columns: cols([[1, 'partial']]) })).toBe('1,"**b",z\n');
    expect(csv('1,"abcdefg\\"h",z\n', { escape: '\\', columns: cols([[1, 'partial']]) })).toBe('1,"*****fg\\"h",z\n');
  });

  it('masks detector hits inside fields', () => {
    const out = maskCopyLine(line('7,"card 4111 1111 1111 1111, thanks",ann@example.com\r\n'), { format: 'csv', columns: cols([]), detect: new Map(DETECTOR_NAMES.map((d) => [d, 'redact'])) });
    expect(out.toString()).toBe(`7,"card ${REDACTED}, thanks","${REDACTED}"\r\n`);
  });

  it('refuses an unterminated quoted field', () => {
    expect(() => csv('1,"abc\n')).toThrow(/unterminated/);
  });
});

describe('createCopyMasker', () => {
  it('leaves the header row alone and counts what it masks', () => {
    const stats = newMaskStats();
    const mask = createCopyMasker({ format: 'csv', header: true, columns: cols([[1, 'redact']]) }, stats);
    expect(mask(line('id,email\n')).toString()).toBe('id,email\n');
    expect(mask(line('1,a@b.co\n')).toString()).toBe(`1,"${REDACTED}"\n`);
    expect(stats.valuesMasked).toBe(1);
  });
});

describe('COPY properties', () => {
  const field = fc.oneof(fc.constant(null), fc.string({ unit: 'binary', maxLength: 20 }));
  const escapeText = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
  const quoteCsv = (v: string) => `"${v.replace(/"/g, '""')}"`;

  it('unmasked fields keep their exact bytes; masked ones are replaced; NULLs stay', () => {
    fc.assert(
      fc.property(fc.array(field, { minLength: 1, maxLength: 6 }), fc.constantFrom<'text' | 'csv'>('text', 'csv'), fc.nat(5), (values, format, maskedIndex) => {
        const enc = values.map((v) => (v === null ? (format === 'text' ? '\\N' : '') : format === 'text' ? escapeText(v) : quoteCsv(v)));
        const row = line(`${enc.join(format === 'text' ? '\t' : ',')}\n`);
        const out = maskCopyLine(row, { format, columns: cols([[maskedIndex, 'redact']]) }).toString('utf8');
        const expected = enc.map((e, i) => (i === maskedIndex && values[i] !== null ? (format === 'text' ? REDACTED : `"${REDACTED}"`) : e));
        expect(out).toBe(`${expected.join(format === 'text' ? '\t' : ',')}\n`);
      }),
      { numRuns: 500 },
    );
  });
});
