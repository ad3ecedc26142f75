// The terminal timeline, the asciicast v2 writer and the terminal replay, from fixtures in the
// shapes the gateway's ssh engine records (test/unit/cli/sshFixtures.ts).
import { describe, expect, it } from 'vitest';
import { asciicastLines } from '../../../src/commands/sessions/cast.js';
import { terminalTimeline } from '../../../src/commands/sessions/terminal.js';
import { replayTerminal } from '../../../src/commands/sessions/terminalReplay.js';
import { detail, fakeFactory, run } from './fakes.js';
import { execSession, shellSession } from './sshFixtures.js';

describe('terminalTimeline', () => {
  it('orders frames by the channel time `t`, anchored at the channel\'s first event', () => {
    const tl = terminalTimeline(shellSession());
    expect({ width: tl.width, height: tl.height, truncated: tl.truncated }).toEqual({ width: 100, height: 30, truncated: false });
    expect(tl.frames.map((f) => [f.time, f.type, f.data])).toEqual([
      [0.2, 'r', '100x30'],
      [0.3, 'o', '$ '],
      [1.3, 'i', 'echo hello\r'],
      [1.31, 'o', 'echo hello\r\nhello\r\n$ '],
      [1.7, 'i', 'exit 3\r'],
      [2, 'r', '120x40'],
      [9.01, 'o', 'exit 3\r\n'],
    ]);
  });

  it('an exec without a pty has the default 80x24 and marks stderr', () => {
    const tl = terminalTimeline(execSession());
    expect([tl.width, tl.height]).toEqual([80, 24]);
    expect(tl.frames.filter((f) => f.stderr).map((f) => f.data)).toEqual(['warn\n']);
  });
});

describe('asciicast v2', () => {
  it('writes a header line and [time, code, data] events in time order', () => {
    const lines = [...asciicastLines(terminalTimeline(shellSession()), { timestamp: Date.parse('2026-11-05T11:00:00Z') / 1000, title: 'web-1' })];
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true);
    const [header, ...events] = lines.map((l) => JSON.parse(l) as unknown);
    expect(header).toEqual({ version: 2, width: 100, height: 30, timestamp: 1793876400, title: 'web-1' });
    expect(events[0]).toEqual([0.2, 'r', '100x30']);
    expect(events[3]).toEqual([1.31, 'o', 'echo hello\r\nhello\r\n$ ']);
    const times = (events as [number, string, string][]).map((e) => e[0]);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    for (const e of events as unknown[][]) {
      expect(e).toHaveLength(3);
      expect(['o', 'i', 'r']).toContain(e[1]);
      expect(typeof e[2]).toBe('string');
    }
  });

  it('`sessions export ID --cast` prints the file; without --cast, or for a SQL session, exit 2', async () => {
    const f = fakeFactory({ gateway: { audit: { session: async () => shellSession() } } });
    expect(await run(f, 'sessions', 'export', 'S-ssh', '--cast')).toBe(0);
    const lines = f.out().trimEnd().split('\n');
    expect(JSON.parse(lines[0] as string)).toMatchObject({ version: 2, width: 100, height: 30 });
    expect(lines).toHaveLength(8);

    const g = fakeFactory({ gateway: { audit: { session: async () => shellSession() } } });
    expect(await run(g, 'sessions', 'export', 'S-ssh')).toBe(2);
    expect(g.err()).toContain('say which format: --cast');

    const h = fakeFactory({ gateway: { audit: { session: async () => detail() } } });
    expect(await run(h, 'sessions', 'export', 'S-1', '--cast')).toBe(2);
    expect(h.err()).toContain('session S-1 is a postgres session: only ssh sessions have a terminal recording');
  });
});

describe('terminal replay', () => {
  it('writes the output as recorded, waiting the recorded gaps divided by --speed, capped', async () => {
    const f = fakeFactory();
    const waits: number[] = [];
    await replayTerminal(f.io, shellSession(), 2, 2000, new AbortController().signal, async (ms) => void waits.push(ms));
    expect(f.out()).toBe('$ echo hello\r\nhello\r\n$ exit 3\r\n');
    expect(waits.map((w) => Math.round(w))).toEqual([50, 100, 505, 2000]);
    expect(f.err()).toContain('-- shell: shell (xterm 100x30)');
    expect(f.err()).toContain('-- exit 3');
  });

  it('keeps stdout and stderr apart and shows blocked commands', async () => {
    const f = fakeFactory({ gateway: { audit: { session: async () => execSession() } } });
    expect(await run(f, 'sessions', 'replay', 'S-exec', '--speed', '0')).toBe(0);
    expect(f.out()).toBe(' 11:00:00 up 1 day\n');
    expect(f.err()).toContain('warn\n');
    expect(f.err()).toContain('-- exec: rm -rf /*\n-- block by rule no-destroy');
  });
});
