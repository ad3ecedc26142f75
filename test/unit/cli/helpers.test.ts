// The shared value parsers and the progress line: one duration syntax everywhere, and no ANSI
// escapes when stderr is not a terminal.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseStartupTimeout } from '../../../src/commands/flags.js';
import { parseDuration, parseSince } from '../../../src/duration.js';
import { parseDuration as parseTokenTtl } from '../../../gateway/auth/serviceTokens.js';
import { parseDuration as parsePolicyDuration } from '../../../gateway/policy/schema.js';
import { createProgress } from '../../../src/output/progress.js';
import { NOW } from './fakes.js';

describe('durations', () => {
  it('--startup-timeout takes a duration; a bare number keeps meaning seconds', () => {
    expect(parseStartupTimeout('10')).toBe(10_000);
    expect(parseStartupTimeout('1.5')).toBe(1_500);
    expect(parseStartupTimeout('10s')).toBe(10_000);
    expect(parseStartupTimeout('500ms')).toBe(500);
    expect(parseStartupTimeout('1h')).toBe(3_600_000);
    for (const bad of ['0', '0s', '61m', 'ten', '-1', '']) expect(() => parseStartupTimeout(bad)).toThrow(/expected a duration/);
  });

  it('--since takes any duration, compound ones too, or an ISO time', () => {
    expect(parseSince('1h30m', NOW)).toBe('2026-11-05T10:30:00.000Z');
    expect(parseSince('2w', NOW)).toBe('2026-10-22T12:00:00.000Z');
    expect(parseSince('2026-11-01T00:00:00Z', NOW)).toBe('2026-11-01T00:00:00.000Z');
    expect(() => parseSince('yesterday', NOW)).toThrow('invalid --since "yesterday"');
  });

  it('the gateway parses with the same function and keeps its own messages', () => {
    expect(parsePolicyDuration).toBe(parseDuration);
    expect(parseTokenTtl('90d')).toBe(90 * 86_400_000);
    expect(parseTokenTtl('1h30m')).toBe(5_400_000);
    expect(parseTokenTtl('never')).toBeNull();
    expect(() => parseTokenTtl('soon')).toThrow('invalid duration "soon": expected a number and a unit (s, m, h, d, w), e.g. 90d, or "never"');
    expect(() => parseTokenTtl('0s')).toThrow('invalid duration "0s": must be greater than zero');
  });
});

describe('progress', () => {
  it('off a terminal: the text once as a plain line, no escapes', async () => {
    const stderr = Object.assign(new PassThrough(), { isTTY: false });
    let err = '';
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const p = await createProgress({ stdin: new PassThrough(), stdout: new PassThrough(), stderr, env: {} }, 'waiting for approval (Ctrl-C to cancel)');
    p.start();
    p.stop();
    expect(err).toBe('waiting for approval (Ctrl-C to cancel)\n');
    expect(err).not.toContain('\u001b');
  });
});
