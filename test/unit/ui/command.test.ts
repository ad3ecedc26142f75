// `sluice` alone and `sluice ui` without a terminal: help and exit 0, or a usage error (exit 2)
// saying the picker needs a terminal. Neither touches the gateway.
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../../src/errors.js';
import { fakeFactory, run } from '../cli/fakes.js';

describe('sluice ui without a terminal', () => {
  it('`sluice` alone prints the help on stdout and exits 0', async () => {
    const f = fakeFactory();
    expect(await run(f)).toBe(ExitCode.ok);
    expect(f.out()).toContain('Usage: sluice [options] [command]');
    expect(f.out()).toContain('ui [options]');
    expect(f.err()).toBe('');
    expect(f.calls).toEqual([]);
  });

  it('`sluice ui` is a usage error naming what it needs', async () => {
    const f = fakeFactory();
    expect(await run(f, 'ui')).toBe(ExitCode.usage);
    expect(f.err()).toBe(
      'sluice: sluice ui needs a terminal (stdin and stdout must be a TTY); in scripts use `sluice connections`, `sluice connect`, `sluice sessions` and `sluice reviews`\n',
    );
    expect(f.flags).toEqual([]);
  });

  it('`sluice ui` with only stdout on a terminal is refused too', async () => {
    const f = fakeFactory();
    Object.assign(f.io.stdout, { isTTY: true });
    expect(await run(f, 'ui')).toBe(ExitCode.usage);
  });
});
