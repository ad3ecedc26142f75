// The real-terminal harness itself (test/support/tmux.ts), with plain shell commands: the size
// the program sees, keys in and screen out, resize, the exit status, and — what the picker's
// test relies on — that it tells a terminal left raw or on the alternate screen from a restored one.
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { parseStty, startTmux, type TmuxOptions, type TmuxSession } from '../support/tmux.js';

const sessions: TmuxSession[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.kill();
});

async function start(script: string, opts: Partial<TmuxOptions> = {}): Promise<TmuxSession> {
  const s = await startTmux({ command: ['bash', '--norc', '--noprofile', '-c', script], ...opts });
  sessions.push(s);
  return s;
}

describe('tmux harness', () => {
  it('runs the command at 80×24 with the given environment; typed keys reach it; a clean exit leaves cooked mode', async () => {
    const t = await start('stty size; echo "value=$HARNESS_VALUE"; read -r line; echo "got:$line"', { env: { ...process.env, HARNESS_VALUE: 'from-test' } });
    const { screen } = await t.waitFor('value=from-test');
    expect(screen.split('\n')[0]).toBe('24 80');
    await t.type('a b/c');
    await t.keys('Enter');
    await t.waitFor('got:a b/c');
    const exit = await t.waitForExit();
    expect(exit.code).toBe(0);
    expect(exit.modes).toMatchObject({ icanon: true, echo: true, isig: true, icrnl: true, opost: true });
    expect(await t.alternateScreen()).toBe(false);
    expect(await t.clipboard()).toBeUndefined();
    // The wrapper's report is on the screen too, for a person reading a failure.
    expect(await t.capture()).toMatch(/\[sluice-test: exited 0\][\s\S]*\bicanon\b/);
  });

  it('reports a terminal left in raw mode without echo, and the exit status', async () => {
    const t = await start('stty raw -echo; exit 3');
    const exit = await t.waitForExit();
    expect(exit.code).toBe(3);
    expect(exit.modes).toMatchObject({ icanon: false, echo: false, isig: false });
  });

  it('reports a terminal left on the alternate screen, and one that left it', async () => {
    const stuck = await start('tput smcup; echo inside; read -r _');
    await stuck.waitFor('inside');
    expect(await stuck.alternateScreen()).toBe(true);
    await stuck.keys('Enter');
    await stuck.waitForExit();
    expect(await stuck.alternateScreen()).toBe(true);

    const clean = await start('tput smcup; echo inside; read -r _; tput rmcup');
    await clean.waitFor('inside');
    await clean.keys('Enter');
    await clean.waitForExit();
    expect(await clean.alternateScreen()).toBe(false);
  });

  it('what a program copies with OSC 52 can be read back', async () => {
    const t = await start('printf "\\033]52;c;%s\\007" "$(printf copied-text | base64)"; echo sent; exec sleep 60');
    await t.waitFor('sent');
    expect(await t.clipboard()).toBe('copied-text');
  });

  it('signals reach the command by its pid; a death by signal is 128+N', async () => {
    const t = await start('echo ready; exec sleep 60');
    await t.waitFor('ready');
    process.kill(await t.commandPid(), 'SIGTERM');
    expect((await t.waitForExit()).code).toBe(128 + 15);
  });

  it('resizes the window; the program sees the new size', async () => {
    const t = await start('while read -r _; do stty size; done');
    await t.keys('Enter');
    await t.waitFor(/^24 80$/m);
    await t.resize(100, 30);
    await t.keys('Enter');
    await t.waitFor(/^30 100$/m);
  });

  it('a wait that times out says what it waited for and shows the screen', async () => {
    const t = await start('echo on-screen; exec sleep 60');
    await t.waitFor('on-screen');
    await expect(t.waitFor('never shown', { timeout: 300 })).rejects.toThrow(/timed out after 300 ms waiting for \/never shown\/; the screen:\non-screen/);
  });

  it('kill() stops the server and removes its directory; a second kill() is harmless', async () => {
    const t = await start('exec sleep 60');
    expect(existsSync(t.dir)).toBe(true);
    const pid = await t.commandPid();
    await t.kill();
    expect(existsSync(t.dir)).toBe(false);
    await expect.poll(() => alive(pid)).toBe(false);
    await t.kill();
  });
});

describe('parseStty', () => {
  it('reads flags with and without the leading dash and refuses output that lacks one', () => {
    expect(parseStty('speed 38400 baud; rows 24; columns 80;\n-icanon -echo isig icrnl opost')).toMatchObject({ icanon: false, echo: false, isig: true, icrnl: true, opost: true });
    expect(() => parseStty('speed 38400 baud')).toThrow(/names neither icanon nor -icanon/);
  });
});

/** Whether `pid` runs; a zombie waiting for a parent that never reaps it counts as gone. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
