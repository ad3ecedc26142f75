// The ssh engine end to end: the real gateway binary in front of a throwaway OpenSSH server, the
// tunnel opened by hand (an HTTPS Upgrade with a service token) and an ssh2 client speaking over
// it, as `ssh -o ProxyCommand` would. Effects are checked on the host itself (marker files).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paths, SESSION_HEADER, TUNNEL_PROTOCOL, type SessionDetail } from '../../src/api/contract.js';
import { serviceToken, startGateway, type GatewayProcess } from '../support/binaries.js';
import { startSshd, type Sshd } from '../support/sshd.js';

let sshd: Sshd;
let gw: GatewayProcess;
let dir: string;
let ops: string;
let lead: string;
let dispatcher: Agent;

beforeAll(async () => {
  sshd = await startSshd();
  dir = mkdtempSync(join(tmpdir(), 'sluice-ssh-test-'));
  const keyFile = join(dir, 'web-key');
  writeFileSync(keyFile, sshd.userKey, { mode: 0o600 });
  const target = { host: sshd.host, port: sshd.port, user: sshd.user, privateKey: { file: keyFile }, hostKey: sshd.hostKey };
  const otherKey = ssh2.utils.generateKeyPairSync('ed25519').public.split(' ').slice(0, 2).join(' ');
  gw = await startGateway({
    connections: [
      {
        name: 'web-1',
        type: 'ssh',
        target,
        allow: { groups: ['ops'] },
        policy: {
          rules: [
            { id: 'no-destroy', block: { commands: ['rm -rf /*', 'shutdown*', `touch ${sshd.dir}/blocked*`] } },
            { id: 'sudo-needs-review', review: { commands: ['sudo *'], approvers: ['ops-leads'], timeout: '5m' } },
          ],
        },
      },
      { name: 'web-fwd', type: 'ssh', target, allow: { groups: ['ops'] }, policy: { rules: [{ id: 'tunnels', allow: { forwarding: ['local', 'x11'] }, for: { groups: ['ops'] } }] } },
      { name: 'web-wrongkey', type: 'ssh', target: { ...target, hostKey: otherKey }, allow: { groups: ['ops'] } },
    ],
  });
  ops = serviceToken(gw, 'deployer', 'ops');
  lead = serviceToken(gw, 'lead', 'ops-leads');
  dispatcher = new Agent({ connect: gw.caFile ? { ca: readFileSync(gw.caFile) } : {} });
}, 60_000);

afterAll(async () => {
  await dispatcher?.close();
  await gw?.stop();
  await sshd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (gw) rmSync(gw.dir, { recursive: true, force: true });
});

/** Session ids of the tunnels opened, in order. */
const sessionIds: string[] = [];

/** Opens a tunnel to NAME (the HTTP Upgrade `sluice connect` does) and resolves with the raw stream. */
function tunnel(name: string): Promise<Socket> {
  const url = new URL(`${gw.url}/v1/connections/${name}/tunnel`);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      headers: { authorization: `Bearer ${ops}`, connection: 'Upgrade', upgrade: TUNNEL_PROTOCOL },
      ...(gw.caFile ? { ca: readFileSync(gw.caFile) } : {}),
    });
    req.on('upgrade', (res, socket) => {
      sessionIds.push(String(res.headers[SESSION_HEADER.toLowerCase()]));
      resolve(socket);
    });
    req.on('response', (res) => reject(new Error(`tunnel refused: HTTP ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
}

/** An ssh2 client over a fresh tunnel; `hostKeys` collects what the gateway presented. */
async function connect(name = 'web-1'): Promise<ssh2.Client> {
  const sock = await tunnel(name);
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', reject);
    client.connect({ sock, username: 'anyone', hostVerifier: () => true, readyTimeout: 20_000 });
  });
  return client;
}

interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

function run(client: ssh2.Client, command: string, onStderr?: (text: string) => void): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      ch.on('data', (d: Buffer) => (stdout += d.toString()));
      ch.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        onStderr?.(stderr);
      });
      ch.on('exit', (c: number | null) => (code = c));
      ch.on('close', () => resolve({ stdout, stderr, code }));
    });
  });
}

/** The audit trail of a session, once it has ended (the seal is written after the client leaves). */
async function trail(id: string): Promise<SessionDetail> {
  for (;;) {
    const res = await fetch(`${gw.url}${paths.session(id)}`, { headers: { authorization: `Bearer ${ops}` }, dispatcher });
    const body = (await res.json()) as SessionDetail;
    if (body.events.some((e) => e.kind === 'session.end')) return body;
    await new Promise((r) => setImmediate(r));
  }
}

async function decide(id: string, approve: boolean): Promise<void> {
  const res = await fetch(`${gw.url}${approve ? paths.reviewApprove(id) : paths.reviewReject(id)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${lead}`, 'content-type': 'application/json' },
    body: JSON.stringify(approve ? {} : { reason: 'not today' }),
    dispatcher,
  });
  expect(res.status).toBe(200);
}

describe('ssh through the gateway', () => {
  it('runs exec commands with their output and exit status', async () => {
    const c = await connect();
    try {
      const ok = await run(c, 'echo hello; echo oops >&2');
      expect(ok).toEqual({ stdout: 'hello\n', stderr: 'oops\n', code: 0 });
      expect((await run(c, 'exit 7')).code).toBe(7);
    } finally {
      c.end();
    }
  });

  it('drives an interactive shell through a pty, with window changes', async () => {
    const c = await connect();
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        c.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, ch) => {
          if (err) return reject(err);
          let seen = '';
          let exit: number | null = null;
          let sent = false;
          ch.on('data', (d: Buffer) => {
            seen += d.toString();
            if (!sent && seen.includes('hello-from-pty')) {
              sent = true;
              ch.setWindow(50, 132, 0, 0);
              ch.write('stty size\n');
            }
            if (sent && seen.includes('50 132')) ch.write('exit 3\n');
          });
          ch.on('exit', (c2: number | null) => (exit = c2));
          ch.on('close', () => resolve(exit));
          ch.write('echo hello-from-$((1+0))pty | tr -d 1\necho hello-from-pty\n');
        });
      });
      expect(code).toBe(3);
    } finally {
      c.end();
    }
    const { events } = await trail(sessionIds.at(-1) as string);
    const kinds = events.map((e) => e.kind);
    expect(kinds).toContain('ssh.input');
    const output = events.filter((e) => e.kind === 'ssh.output').map((e) => e.data.data).join('');
    expect(output).toContain('hello-from-pty');
    expect(output).toContain('50 132');
    expect(events.filter((e) => e.kind === 'ssh.resize').map((e) => [e.data.cols, e.data.rows])).toEqual([[80, 24], [132, 50]]);
    expect(events.find((e) => e.kind === 'result')?.data).toMatchObject({ status: 'error', code: '3' });
  });

  it('copies a file both ways over sftp with equal checksums', async () => {
    const c = await connect();
    const src = join(dir, 'upload.bin');
    const back = join(dir, 'download.bin');
    const remote = join(sshd.dir, 'remote.bin');
    writeFileSync(src, randomBytes(3 * 1024 * 1024));
    try {
      const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
      await new Promise<void>((resolve, reject) => sftp.fastPut(src, remote, (err) => (err ? reject(err) : resolve())));
      await new Promise<void>((resolve, reject) => sftp.fastGet(remote, back, (err) => (err ? reject(err) : resolve())));
      const sum = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
      expect(sum(remote)).toBe(sum(src));
      expect(sum(back)).toBe(sum(src));
      await new Promise<void>((resolve, reject) => sftp.rename(remote, `${remote}.old`, (err) => (err ? reject(err) : resolve())));
      await new Promise<void>((resolve, reject) => sftp.unlink(`${remote}.old`, (err) => (err ? reject(err) : resolve())));
      sftp.end();
    } finally {
      c.end();
    }
    const size = 3 * 1024 * 1024;
    const ops = (await trail(sessionIds.at(-1) as string)).events.filter((e) => e.kind === 'ssh.sftp').map((e) => e.data);
    expect(ops).toEqual([
      expect.objectContaining({ op: 'open', path: remote, written: size, read: 0 }),
      expect.objectContaining({ op: 'open', path: remote, written: 0, read: size }),
      expect.objectContaining({ op: 'rename', path: remote, to: `${remote}.old` }),
      expect.objectContaining({ op: 'remove', path: `${remote}.old` }),
    ]);
  });

  it('refuses a target whose host key does not match the pin, and says so', async () => {
    const c = await connect('web-wrongkey');
    try {
      const r = await run(c, 'echo should-not-run');
      expect(r.code).toBe(255);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^sluice: the host key of the target does not match the pinned hostKey \(pinned SHA256:\S+, presented SHA256:\S+\)/);
    } finally {
      c.end();
    }
  });

  it('blocks a command by rule: exit status 3, a message, and nothing ran on the host', async () => {
    const c = await connect();
    try {
      const marker = join(sshd.dir, 'blocked-marker');
      const r = await run(c, `touch ${marker}`);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/blocked by rule no-destroy/);
      expect(existsSync(marker)).toBe(false);
      const chained = await run(c, `true && touch ${marker}`);
      expect(chained.code).toBe(3);
      const hidden = await run(c, `sh -c "touch ${marker}"`);
      expect(hidden.code).toBe(3);
      expect(hidden.stderr).toMatch(/cannot be checked/);
      expect(existsSync(marker)).toBe(false);
    } finally {
      c.end();
    }
  });

  it('holds a command for review: approved runs it, rejected exits 5 and nothing ran', async () => {
    const c = await connect();
    try {
      const approvedMarker = join(sshd.dir, 'approved-marker');
      let asked = false;
      const approved = run(c, `sudo -n true 2>/dev/null; touch ${approvedMarker}`, (text) => {
        const m = /held for review (\S+)/.exec(text);
        if (m && !asked) {
          asked = true;
          void decide(m[1] as string, true);
        }
      });
      // `sudo *` holds the whole line; once approved it runs unchanged.
      const a = await approved;
      expect(a.stderr).toMatch(/held for review/);
      expect(existsSync(approvedMarker)).toBe(true);

      const rejectedMarker = join(sshd.dir, 'rejected-marker');
      let askedAgain = false;
      const r = await run(c, `sudo touch ${rejectedMarker}`, (text) => {
        const m = /held for review (\S+)/.exec(text);
        if (m && !askedAgain) {
          askedAgain = true;
          void decide(m[1] as string, false);
        }
      });
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/rejected by .*not today/);
      expect(existsSync(rejectedMarker)).toBe(false);
    } finally {
      c.end();
    }
  });

  it('refuses port forwarding', async () => {
    const c = await connect();
    try {
      const err = await new Promise<Error | undefined>((resolve) => c.forwardOut('127.0.0.1', 0, '127.0.0.1', sshd.port, (e) => resolve(e)));
      expect(err).toBeInstanceOf(Error);
      const remote = await new Promise<Error | undefined>((resolve) => c.forwardIn('127.0.0.1', 0, (e) => resolve(e)));
      expect(remote).toBeInstanceOf(Error);
    } finally {
      c.end();
    }
  });

  it('forwards a local port when a rule allows it', async () => {
    const c = await connect('web-fwd');
    try {
      const banner = await new Promise<string>((resolve, reject) =>
        c.forwardOut('127.0.0.1', 0, '127.0.0.1', sshd.port, (err, ch) => {
          if (err) return reject(err);
          ch.once('data', (d: Buffer) => {
            resolve(d.toString());
            ch.close();
          });
        }),
      );
      expect(banner).toMatch(/^SSH-2\.0-OpenSSH/);
    } finally {
      c.end();
    }
  });

  it('refuses an x11-req by default; a rule lets it through, and the x11 channels the target opens are relayed and recorded', async () => {
    const x11 = { single: false, screen: 0 };
    const refused = await connect();
    try {
      const err = await new Promise<Error | undefined>((resolve) => refused.exec('echo "[$DISPLAY]"', { x11 }, (e, ch) => (e ? resolve(e) : (ch.close(), resolve(undefined)))));
      expect(err?.message).toMatch(/X11/);
    } finally {
      refused.end();
    }
    const allowed = await connect('web-fwd');
    // The target's program dials its DISPLAY; the x11 channel that opens reaches this client.
    let heard = '';
    allowed.on('x11', (_info, accept) => {
      const ch = accept();
      ch.once('data', (d: Buffer) => {
        heard = d.toString();
        ch.end('pong');
      });
    });
    const dial = `bash -c 'd=\${DISPLAY#*:}; d=\${d%%.*}; echo "[$DISPLAY]"; exec 3<>/dev/tcp/127.0.0.1/$((6000+d)); printf ping >&3; head -c 4 <&3'`;
    try {
      const r = await new Promise<ExecResult>((resolve, reject) =>
        allowed.exec(dial, { x11 }, (e, ch) => {
          if (e) return reject(e);
          let stdout = '';
          ch.on('data', (d: Buffer) => (stdout += d.toString()));
          ch.stderr.on('data', () => undefined);
          ch.on('close', () => resolve({ stdout, stderr: '', code: 0 }));
        }),
      );
      expect(r.stdout).toMatch(/^\[localhost:\d+\.0\]\n/);
      expect(r.stdout.endsWith('pong')).toBe(true);
      expect(heard).toBe('ping');
    } finally {
      allowed.end();
    }
    const { events } = await trail(sessionIds.at(-1) as string);
    expect(events.some((e) => e.kind === 'decision' && JSON.stringify(e.data).includes('tunnels'))).toBe(true);
    const x11Events = events.filter((e) => e.kind === 'ssh.x11').map((e) => e.data as Record<string, unknown>);
    expect(x11Events[0]).toMatchObject({ event: 'opened' });
    expect(x11Events.at(-1)).toMatchObject({ event: 'closed', toClient: 4, fromClient: 4 });
  });

  it("never lets the host's private key reach the client, the log or the audit store", async () => {
    const c = await connect();
    try {
      const r = await run(c, 'echo done');
      expect(r.stdout).toBe('done\n');
    } finally {
      c.end();
    }
    const keyBody = sshd.userKey.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    const needles = [keyBody.slice(0, 40), keyBody.slice(-40)];
    const store = readFileSync(join(gw.dir, 'state', 'sluice.db')).toString('latin1');
    const info = await (await fetch(`${gw.url}/v1/connections/web-1`, { headers: { authorization: `Bearer ${ops}` }, dispatcher })).text();
    expect(info).not.toContain(sshd.hostKey.split(' ')[1]);
    for (const n of needles) {
      expect(info).not.toContain(n);
      expect(gw.output()).not.toContain(n);
      expect(store).not.toContain(n);
    }
  });
});
