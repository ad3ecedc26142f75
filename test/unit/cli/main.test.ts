// The assembled command tree: help and version on stdout, usage errors (exit 2) from commander,
// and the one place typed errors become exit codes and `sluice: …` lines on stderr.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AuthError, CliError, ExitCode, InterruptedError, LimitError, SilentExit, UsageError } from '../../../src/errors.js';
import { alice, fakeFactory, run } from './fakes.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

describe('sluice (main)', () => {
  it('--version and -V print the package version on stdout', async () => {
    for (const flag of ['--version', '-V']) {
      const f = fakeFactory();
      expect(await run(f, flag)).toBe(0);
      expect(f.out()).toBe(`${pkg.version}\n`);
      expect(f.err()).toBe('');
    }
  });

  it('--help lists every command on stdout and exits 0', async () => {
    const f = fakeFactory();
    expect(await run(f, '--help')).toBe(0);
    for (const name of ['login', 'logout', 'whoami', 'connections|ls', 'connect', 'sessions', 'reviews', 'audit', 'config']) expect(f.out()).toContain(name);
    expect(f.err()).toBe('');
  });

  it('a subcommand help goes to stdout too (settings reach nested commands)', async () => {
    const f = fakeFactory();
    expect(await run(f, 'sessions', 'show', '--help')).toBe(0);
    expect(f.out()).toContain('Usage: sluice sessions show [options] <id>');
  });

  it.each([
    [['bogus'], /unknown command 'bogus'/],
    [['whoami', '--bogus'], /unknown option '--bogus'/],
    [['sessions', 'ls', '--limit', '0'], /option '--limit <n>' argument '0' is invalid. expected a whole number ≥ 1/],
    [['reviews', 'reject', 'R-1'], /required option '--reason <text>' not specified/],
    [['audit', 'verify', 'x.jsonl'], /required option '--key <file>' not specified/],
    [['sessions', 'show'], /missing required argument 'id'/],
    [['config', 'set', 'gateway'], /missing required argument 'value'/],
  ])('usage error %j exits 2 with the reason on stderr and nothing on stdout', async (argv, message) => {
    const f = fakeFactory();
    expect(await run(f, ...argv)).toBe(ExitCode.usage);
    expect(f.err()).toMatch(message);
    expect(f.err()).toContain('(run with --help for usage)');
    expect(f.out()).toBe('');
    expect(f.calls).toEqual([]);
  });

  it.each([
    [new CliError('boom'), 1],
    [new Error('plain failure'), 1],
    [new UsageError('bad value'), 2],
    [new AuthError('not logged in to x: run `sluice login`', 401), 4],
    [new LimitError('too many sessions'), 1],
    [new InterruptedError('login cancelled'), 130],
  ])('maps %s to exit %i with "sluice: message" on stderr', async (error, code) => {
    const f = fakeFactory({ gateway: { me: () => Promise.reject(error) } });
    expect(await run(f, 'whoami')).toBe(code);
    expect(f.err()).toBe(`sluice: ${error.message}\n`);
    expect(f.out()).toBe('');
  });

  it('SilentExit ends with its code and prints nothing of ours', async () => {
    const f = fakeFactory({ gateway: { me: () => Promise.reject(new SilentExit(42)) } });
    expect(await run(f, 'whoami')).toBe(42);
    expect(f.err()).toBe('');
  });

  it('passes --gateway and --ca to the factory', async () => {
    const f = fakeFactory({ gateway: { me: async () => alice } });
    expect(await run(f, 'whoami', '--gateway', 'https://other.example', '--ca', 'ca.pem')).toBe(0);
    expect(f.flags).toEqual([expect.objectContaining({ gateway: 'https://other.example', ca: 'ca.pem' })]);
  });
});
