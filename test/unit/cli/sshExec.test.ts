// `sluice exec NAME -- COMMAND` for ssh connections: the ssh2 client side against an in-process
// ssh2 server standing in for the gateway's ssh engine (loopback TCP, no sshd), and the command
// line's refusals before anything is dialled.
import { connect, type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import type { SshConnectionInfo } from '../../../src/api/contract.js';
import { runSshExec } from '../../../src/commands/exec/ssh.js';
import type { Io } from '../../../src/io.js';
import { fakeFactory, pgProd, run } from './fakes.js';
import { webOne } from './sshFixtures.js';

const { Server, utils } = ssh2;
const hostKey = utils.generateKeyPairSync('ed25519');
const otherKey = utils.generateKeyPairSync('ed25519');

/** What the stand-in engine saw: the user and each exec command line. */
const seen: { user?: string; commands: string[]; stdin: string } = { commands: [], stdin: '' };
let server: InstanceType<typeof Server>;
const clients = new Set<ssh2.Connection>();
let port = 0;

beforeAll(async () => {
  server = new Server({ hostKeys: [hostKey.private] }, (client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('authentication', (ctx) => {
      seen.user = ctx.username;
      if (ctx.method === 'none') ctx.accept();
      else ctx.reject();
    });
    client.on('error', () => undefined);
    client.on('session', (accept) => {
      accept().on('exec', (acceptExec, _reject, info) => {
        seen.commands.push(info.command);
        const ch = acceptExec();
        const done = (code: number) => {
          ch.exit(code);
          ch.end();
        };
        if (info.command === 'uptime') {
          ch.write(' 12:00:00 up 1 day\n');
          ch.stderr.write('a warning\n');
          done(0);
        } else if (info.command === 'false') done(1);
        else if (info.command === 'rm -rf /*') {
          ch.stderr.write('sluice: blocked by policy rule no-destroy\n');
          done(3);
        } else if (info.command === 'cat') {
          ch.on('data', (d: Buffer) => (seen.stdin += d.toString()));
          ch.on('end', () => {
            ch.write(seen.stdin.toUpperCase());
            done(0);
          });
        } else if (info.command === 'kill-me') {
          ch.exit('TERM', false, '');
          ch.end();
        } else if (info.command === 'hang') {
          // Never answers: only --timeout or Ctrl-C ends it.
        } else done(127);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(() => {
  for (const c of clients) c.end();
  return new Promise<void>((resolve) => server.close(() => resolve()));
});

function io(stdinText?: string): Io & { out(): string; err(): string } {
  const stdin = Object.assign(new PassThrough(), { isTTY: stdinText === undefined });
  if (stdinText !== undefined) stdin.end(stdinText);
  let out = '';
  let err = '';
  const stdout = new PassThrough().on('data', (d: Buffer) => (out += d.toString()));
  const stderr = new PassThrough().on('data', (d: Buffer) => (err += d.toString()));
  return { stdin, stdout, stderr, env: {}, out: () => out, err: () => err };
}

const info = (): SshConnectionInfo => ({ ...webOne, hostKey: hostKey.public });
const deps = (i: Io) => ({ io: i, clock: fakeFactory().clock, dial: async () => connect(port, '127.0.0.1') });

describe('runSshExec', () => {
  it('streams stdout and stderr separately and returns the remote exit status', async () => {
    const i = io();
    expect(await runSshExec({ name: 'web-1', command: ['uptime'] }, info(), deps(i))).toBe(0);
    expect(i.out()).toBe(' 12:00:00 up 1 day\n');
    expect(i.err()).toBe('a warning\n');
    expect(seen.user).toBe('deploy');
  });

  it('a non-zero status, a policy block (3) and a signal (128+N) come back as they are', async () => {
    expect(await runSshExec({ name: 'web-1', command: ['false'] }, info(), deps(io()))).toBe(1);
    const blocked = io();
    expect(await runSshExec({ name: 'web-1', command: ['rm', '-rf', '/*'] }, info(), deps(blocked))).toBe(3);
    expect(blocked.err()).toContain('blocked by policy rule no-destroy');
    expect(seen.commands).toContain('rm -rf /*');
    expect(await runSshExec({ name: 'web-1', command: ['kill-me'] }, info(), deps(io()))).toBe(143);
  });

  it('piped stdin reaches the command and ends with EOF', async () => {
    const i = io('hello\n');
    expect(await runSshExec({ name: 'web-1', command: ['cat'] }, info(), deps(i))).toBe(0);
    expect(i.out()).toBe('HELLO\n');
  });

  it('refuses a gateway whose ssh host key is not the one announced', async () => {
    const p = runSshExec({ name: 'web-1', command: ['uptime'] }, { ...info(), hostKey: otherKey.public }, deps(io()));
    await expect(p).rejects.toThrow("the gateway's ssh host key is not the one it announced for web-1");
  });

  it('--timeout ends a command that does not finish (exit 1, naming the flag); a bad duration is exit 2', async () => {
    // The fake clock's sleep returns at once: the timeout fires as soon as it is armed.
    await expect(runSshExec({ name: 'web-1', command: ['hang'], timeout: '5s' }, info(), deps(io()))).rejects.toThrow('cancelled after 5s (--timeout)');
    await expect(runSshExec({ name: 'web-1', command: ['hang'], timeout: 'soon' }, info(), deps(io()))).rejects.toMatchObject({ exitCode: 2 });
  });

  it('Ctrl-C ends the session with exit 130', async () => {
    const stop = new AbortController();
    const p = runSshExec({ name: 'web-1', command: ['hang'] }, info(), { ...deps(io()), signal: stop.signal });
    stop.abort();
    await expect(p).rejects.toMatchObject({ exitCode: 130 });
  });

  it('an empty command is a usage error', async () => {
    await expect(runSshExec({ name: 'web-1', command: [' '] }, info(), deps(io()))).rejects.toMatchObject({ exitCode: 2 });
  });
});

describe('sluice exec NAME -- COMMAND (command line)', () => {
  it('SQL-only flags with a command are a usage error before the gateway is asked', async () => {
    const f = fakeFactory();
    expect(await run(f, 'exec', 'web-1', '--format', 'csv', '--', 'uptime')).toBe(2);
    expect(f.err()).toContain('--format is for SQL connections; with a command after -- leave it out');
    expect(f.calls).toEqual([]);
  });

  it('a command for a PostgreSQL connection says to give SQL instead', async () => {
    const f = fakeFactory({ gateway: { connection: async () => pgProd } });
    expect(await run(f, 'exec', 'pg-prod', '--', 'uptime')).toBe(2);
    expect(f.err()).toContain('pg-prod is a postgres connection: give SQL with -i, -f or stdin');
  });
});
