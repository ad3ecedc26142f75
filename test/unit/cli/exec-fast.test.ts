// The exec fast path's own parts: its flag parser must read every command line it accepts exactly as
// commander does (checked against the real `exec` definition) and decline the rest; the agent
// socket checks refuse anything not ours or looser than 0700/0600.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { agentSocketPath, checkAgentSocket } from '../../../src/agent/socket.js';
import { defineExec } from '../../../src/commands/exec.js';
import { parseFastArgs } from '../../../src/commands/exec/fast.js';
import { createFactory } from '../../../src/factory.js';
import { BufferStream, stdinOf } from './execFakes.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-exec-fast-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What commander hands the exec action for `argv` (after `exec`). */
async function commanderOptions(argv: string[]): Promise<Record<string, unknown>> {
  const io = { stdout: new BufferStream(), stderr: new BufferStream(), env: { SLUICE_CONFIG_DIR: dir }, stdin: stdinOf(undefined) };
  let seen: Record<string, unknown> = {};
  const cmd = defineExec(createFactory(io))
    .exitOverride()
    .action((name: string, command: string[], o: Record<string, unknown>) => {
      seen = { name, command, ...o };
    });
  await cmd.parseAsync(argv, { from: 'user' });
  return seen;
}

describe('parseFastArgs', () => {
  const accepted = [
    ['pg', '-i', 'select 1'],
    ['-i', 'select 1', 'pg'],
    ['pg', '-iselect 1', '--format', 'csv'],
    ['pg', '--input=select 1', '--format=json'],
    ['pg', '-f', '-', '--json', '--no-wait'],
    ['pg', '-f-'],
    ['pg', '--file', 'x.sql', '--review', 'R-8F3K', '--timeout', '5s'],
    ['pg', '-i', 'select 1', '--gateway', 'https://gw.example', '--ca', '/tmp/ca.pem'],
    ['pg'],
  ];
  for (const argv of accepted) {
    it(`reads ${JSON.stringify(argv)} as commander does`, async () => {
      const fast = parseFastArgs(['exec', ...argv]);
      expect(fast).toBeDefined();
      const { command, ...full } = await commanderOptions(argv);
      expect(command).toEqual([]);
      expect({ ...fast, json: fast?.json || undefined }).toEqual({ ...full, json: full.json });
    });
  }

  const declined = [
    ['pg', '--', 'uptime'],
    ['pg', '--help'],
    ['pg', '-h'],
    ['pg', '-i', 'select 1', '-i', 'select 2'],
    ['pg', '--json', '--json'],
    ['pg', 'other', '-i', 'select 1'],
    ['-i', 'select 1'],
    ['pg', '-i'],
    ['pg', '-i', '--json'],
    ['pg', '--verbose'],
    ['pg', '-x'],
  ];
  for (const argv of declined) {
    it(`leaves ${JSON.stringify(argv)} to the full CLI`, () => {
      expect(parseFastArgs(['exec', ...argv])).toBeUndefined();
    });
  }

  it('only takes exec', () => {
    expect(parseFastArgs(['connect', 'pg'])).toBeUndefined();
  });
});

describe('checkAgentSocket', () => {
  const io = { stdout: new BufferStream(), stderr: new BufferStream(), env: { SLUICE_CONFIG_DIR: join(dir, 'cfg') }, stdin: stdinOf(undefined) };
  const listen = async (path: string): Promise<Server> => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(path, r));
    return s;
  };

  it('names one socket per gateway URL and CA', () => {
    const a = agentSocketPath(io, { url: 'https://gw.example' });
    expect(agentSocketPath(io, { url: 'https://gw.example' })).toBe(a);
    expect(agentSocketPath(io, { url: 'https://gw.example', ca: 'PEM' })).not.toBe(a);
    expect(agentSocketPath(io, { url: 'https://other.example' })).not.toBe(a);
    expect(a.startsWith(join(dir, 'cfg', 'agent'))).toBe(true);
  });

  it('accepts only a socket of ours, 0600, in a directory of ours, 0700', async () => {
    const socket = agentSocketPath(io, { url: 'https://gw.example' });
    expect(checkAgentSocket(socket)).toEqual({ state: 'missing' });
    mkdirSync(join(socket, '..'), { recursive: true, mode: 0o700 });
    expect(checkAgentSocket(socket)).toEqual({ state: 'missing' });
    const server = await listen(socket);
    try {
      chmodSync(socket, 0o600);
      expect(checkAgentSocket(socket)).toEqual({ state: 'ok' });
      chmodSync(socket, 0o660);
      expect(checkAgentSocket(socket)).toMatchObject({ state: 'unsafe', problem: expect.stringMatching(/mode 0660 is looser than 0600/) });
      chmodSync(socket, 0o600);
      chmodSync(join(socket, '..'), 0o711);
      expect(checkAgentSocket(socket)).toMatchObject({ state: 'unsafe', problem: expect.stringMatching(/mode 0711 is looser than 0700/) });
      chmodSync(join(socket, '..'), 0o700);
    } finally {
      server.close();
    }
    writeFileSync(socket, 'not a socket', { mode: 0o600 });
    expect(checkAgentSocket(socket)).toMatchObject({ state: 'unsafe', problem: expect.stringMatching(/not a socket/) });
  });
});
