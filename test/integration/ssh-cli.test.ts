// The CLI side of ssh through the gateway, end to end: a real OpenSSH server (test/support/sshd.ts),
// the real gateway and `sluice` binaries, and the real ssh, scp and sftp clients. One gateway and
// one sshd for the file; each test uses its own commands, so they share them safely.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionDetail, SessionList } from '../../src/api/contract.js';
import { cliEnv, CLI_BIN, openTunnel, runCli, serviceToken, startGateway, tokenCtx, type CliEnv, type GatewayProcess, type Tunnel } from '../support/binaries.js';
import { startSshd, type Sshd } from '../support/sshd.js';

const execFileAsync = promisify(execFile);

let sshd: Sshd;
let gw: GatewayProcess;
let ctx: CliEnv & { env: Record<string, string> };
let work: string;
const MARKER = () => join(work, 'blocked-marker');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'sluice-sshcli-'));
  sshd = await startSshd();
  gw = await startGateway({
    connections: [
      {
        name: 'web-1',
        type: 'ssh',
        target: { host: sshd.host, port: sshd.port, user: sshd.user, privateKey: { file: sshd.userKeyFile }, hostKey: sshd.hostKey },
        allow: { groups: ['ops'] },
        policy: { rules: [{ id: 'no-marker', block: { commands: ['touch *blocked-marker*'] } }] },
      },
      {
        name: 'web-agent',
        type: 'ssh',
        target: { host: sshd.host, port: sshd.port, user: sshd.user, privateKey: { file: sshd.userKeyFile }, hostKey: sshd.hostKey },
        allow: { groups: ['ops'] },
        policy: { rules: [{ id: 'agent-for-ops', allow: { forwarding: ['agent'] }, for: { groups: ['ops'] } }] },
      },
    ],
  });
  ctx = tokenCtx(gw, serviceToken(gw, 'ci', 'ops'));
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await sshd?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('sluice ssh / exec', () => {
  it('`sluice ssh web-1 -- uptime` prints the host\'s uptime and exits 0; a failing command keeps its status', async () => {
    const ok = await runCli(['ssh', 'web-1', '--', 'uptime'], ctx);
    expect(ok.stderr).not.toContain('sluice:');
    expect(ok.stdout).toMatch(/load average/);
    expect(ok.code).toBe(0);
    const failed = await runCli(['ssh', 'web-1', '--', 'exit', '7'], ctx);
    expect(failed.code).toBe(7);
  });

  it('`sluice exec web-1 -- …` streams stdout and stderr apart and exits with the remote status', async () => {
    const r = await runCli(['exec', 'web-1', '--', 'echo out; echo err 1>&2; exit 4'], ctx);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toContain('err\n');
    expect(r.code).toBe(4);
  });

  it('a blocked command exits 3 with the rule named, and nothing ran on the host', async () => {
    const r = await runCli(['exec', 'web-1', '--', 'touch', MARKER()], ctx);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('no-marker');
    expect(existsSync(MARKER())).toBe(false);
    const viaSsh = await runCli(['ssh', 'web-1', '--', 'touch', MARKER()], ctx);
    expect(viaSsh.code).toBe(3);
    expect(existsSync(MARKER())).toBe(false);
  });

  it('an interactive session through a pty: typed commands run and `exit 3` is the status', async () => {
    // script(1) gives `sluice ssh` a terminal, so ssh asks the gateway for a pty and a shell.
    const child = spawn('script', ['-qefc', `${process.execPath} ${CLI_BIN} ssh web-1`, '/dev/null'], { env: cliEnv(ctx), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const saw = (re: RegExp) =>
      new Promise<void>((resolve) => {
        const check = () => re.test(out) && (child.stdout.off('data', check), resolve());
        child.stdout.on('data', check);
        check();
      });
    const exited = once(child, 'exit');
    child.stdin.write('echo hel""lo\r');
    await saw(/[\r\n]hello\r?\n/);
    child.stdin.write('exit 3\r');
    const [code] = (await exited) as [number];
    expect(out).toContain('hello');
    expect(code).toBe(3);
  }, 60_000);
});

describe('sluice connect + scp / sftp', () => {
  let tunnel: Tunnel;
  let sshOpts: string[];
  beforeAll(async () => {
    tunnel = await openTunnel('web-1', ctx);
    const info = tunnel.info as unknown as { user: string; knownHosts: string; hostKeyAlias: string };
    sshOpts = ['-o', `UserKnownHostsFile=${info.knownHosts}`, '-o', `HostKeyAlias=${info.hostKeyAlias}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes'];
  });
  afterAll(() => tunnel?.stop());

  it('scp of a 100 MB file both ways keeps its checksum', async () => {
    const src = join(work, 'up.bin');
    writeFileSync(src, randomBytes(100 * 1024 * 1024));
    const remote = join(work, 'remote.bin');
    const back = join(work, 'back.bin');
    const at = `${sshd.user}@127.0.0.1`;
    await execFileAsync('scp', ['-q', '-P', String(tunnel.port), ...sshOpts, src, `${at}:${remote}`]);
    await execFileAsync('scp', ['-q', '-P', String(tunnel.port), ...sshOpts, `${at}:${remote}`, back]);
    const [a, b, c] = await Promise.all([sha256(src), sha256(remote), sha256(back)]);
    expect(b).toBe(a);
    expect(c).toBe(a);
  }, 120_000);

  it('agent forwarding (`ssh -A` with a real ssh-agent) is refused by default: the host sees no agent, the trail has the refusal', async () => {
    await withAgent(async (agent) => {
      const r = await execFileAsync('ssh', ['-A', '-p', String(tunnel.port), ...sshOpts, `${sshd.user}@127.0.0.1`, 'ssh-add -l 2>&1; echo "rc=$?"'], { env: agent.env });
      expect(r.stdout).toContain('Could not open a connection to your authentication agent');
      expect(r.stdout).not.toContain('agent-probe');
      expect(r.stdout).toContain('rc=2');
      const trail = await lastSessionTrail('web-1');
      expect(trail).toMatch(/"text":\s*"agent"/);
      expect(trail).toContain('ssh.forwarding');
      expect(trail).toContain('agent forwarding is refused unless a rule allows it');
      expect(trail).not.toContain('ssh.agent');
    });
  });

  it('with `allow: { forwarding: [agent] }` the host lists the client\'s key and a second hop logs in with it; each agent channel is recorded, no key material', async () => {
    const agentTunnel = await openTunnel('web-agent', ctx);
    try {
      const info = agentTunnel.info as unknown as { knownHosts: string; hostKeyAlias: string };
      const opts = ['-o', `UserKnownHostsFile=${info.knownHosts}`, '-o', `HostKeyAlias=${info.hostKeyAlias}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes'];
      await withAgent(async (agent) => {
        // The second hop: the same sshd, reached from the host with the forwarded agent only (the
        // agent's key is authorized there; the host's known_hosts pins sshd's key).
        writeFileSync(join(sshd.dir, 'authorized_keys'), `${readFileSync(join(sshd.dir, 'authorized_keys'), 'utf8')}${agent.publicKey}\n`);
        const knownHosts = join(work, 'second-hop-known-hosts');
        writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostKey}\n`);
        const hop = `ssh -F /dev/null -o BatchMode=yes -o IdentityFile=${join(work, 'no-such-key')} -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes -p ${sshd.port} ${sshd.user}@127.0.0.1 echo second-hop-ok`;
        const r = await execFileAsync('ssh', ['-A', '-p', String(agentTunnel.port), ...opts, `${sshd.user}@127.0.0.1`, `ssh-add -l; echo "rc=$?"; ${hop}`], { env: agent.env });
        expect(r.stdout).toContain(agent.fingerprint);
        expect(r.stdout).toContain('agent-probe');
        expect(r.stdout).toContain('rc=0');
        expect(r.stdout).toContain('second-hop-ok');
        // sshd logged the second hop's login with the agent's key, not another one.
        expect(sshd.output()).toContain(`ED25519 ${agent.fingerprint}`);

        const trail = await lastSessionTrail('web-agent');
        expect(trail).toContain('agent-for-ops');
        const events = (JSON.parse(trail) as SessionDetail).events.filter((e) => e.kind === 'ssh.agent').map((e) => e.data as { event: string; toClient?: number; fromClient?: number });
        // ssh-add -l opens one agent channel, the second hop another: each opened and closed with its bytes.
        expect(events.filter((e) => e.event === 'opened').length).toBeGreaterThanOrEqual(2);
        const closed = events.filter((e) => e.event === 'closed');
        expect(closed.length).toBeGreaterThanOrEqual(2);
        for (const c of closed) {
          expect(c.toClient).toBeGreaterThan(0);
          expect(c.fromClient).toBeGreaterThan(0);
        }
        // The agent protocol's bytes (the public key blob, signatures) are not in the trail.
        expect(trail).not.toContain(agent.publicKey.split(' ')[1] as string);

        // `sluice ssh -A` asks for the same forwarding.
        const viaCli = await runCli(['ssh', 'web-agent', '-A', '--', 'ssh-add', '-l'], { ...ctx, env: { ...ctx.env, SSH_AUTH_SOCK: agent.env.SSH_AUTH_SOCK as string } });
        expect(viaCli.stdout).toContain(agent.fingerprint);
        expect(viaCli.code).toBe(0);
        expect(await lastSessionTrail('web-agent')).toMatch(/"event":\s*"opened"/);
      });
    } finally {
      agentTunnel.stop();
    }
  }, 60_000);

  it('sftp lists a directory', async () => {
    writeFileSync(join(work, 'listed-file.txt'), 'x');
    const batch = join(work, 'batch');
    writeFileSync(batch, `ls -1 ${work}\n`);
    const { stdout } = await execFileAsync('sftp', ['-q', '-P', String(tunnel.port), ...sshOpts, '-b', batch, `${sshd.user}@127.0.0.1`]);
    expect(stdout).toContain('listed-file.txt');
  });

  it('the local leg negotiates AES-GCM without compression; a client offering only chacha20-poly1305 or CBC is refused, and the tunnel keeps serving', async () => {
    const at = `${sshd.user}@127.0.0.1`;
    // OpenSSH's own first choice is chacha20-poly1305; -C asks for compression.
    const ok = await execFileAsync('ssh', ['-v', '-C', '-p', String(tunnel.port), ...sshOpts, at, 'echo gcm-ok']);
    expect(ok.stdout).toBe('gcm-ok\n');
    expect(ok.stderr).toMatch(/kex: client->server cipher: aes(128|256)-gcm@openssh\.com MAC: <implicit> compression: none/);
    expect(ok.stderr).toMatch(/kex: server->client cipher: aes(128|256)-gcm@openssh\.com MAC: <implicit> compression: none/);
    for (const cipher of ['chacha20-poly1305@openssh.com', 'aes128-cbc', 'aes256-ctr']) {
      const refused = await execFileAsync('ssh', ['-o', `Ciphers=${cipher}`, '-p', String(tunnel.port), ...sshOpts, at, 'true']).then(
        () => undefined,
        (err: { code: number; stderr: string }) => err,
      );
      expect(refused?.code).toBe(255);
      expect(refused?.stderr).toMatch(/no matching cipher found/);
      // The gateway records why and does not keep the target connection it had begun.
      const trail = await lastSessionTrail('web-1');
      expect(trail).toMatch(/"status":"error","error":"the local ssh client's connection failed: [^"]*no matching [^"]*cipher/);
      await targetConnectionsClosed();
    }
    const again = await execFileAsync('ssh', ['-p', String(tunnel.port), ...sshOpts, at, 'echo still-serving']);
    expect(again.stdout).toBe('still-serving\n');
  }, 60_000);
});

describe('sluice connect --local-password (ssh)', () => {
  let tunnel: Tunnel;
  let password: string;
  let sshOpts: string[];
  beforeAll(async () => {
    tunnel = await openTunnel('web-1', ctx, ['--local-password']);
    password = (await stderrMatch(tunnel, /local password \(required[^)]*\): (\S+)/))[1] as string;
    const info = tunnel.info as unknown as { knownHosts: string; hostKeyAlias: string };
    // No BatchMode: it forbids the password prompt, which SSH_ASKPASS answers here.
    sshOpts = ['-p', String(tunnel.port), '-o', `UserKnownHostsFile=${info.knownHosts}`, '-o', `HostKeyAlias=${info.hostKeyAlias}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'NumberOfPasswordPrompts=1'];
  });
  afterAll(() => tunnel?.stop());

  /** The real ssh client, its password prompt answered with `given` through SSH_ASKPASS. */
  function sshWith(given: string, command: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const askpass = join(work, `askpass-${randomBytes(4).toString('hex')}.sh`);
    writeFileSync(askpass, `#!/bin/sh\nprintf '%s\\n' '${given}'\n`, { mode: 0o700 });
    return new Promise((resolve) => {
      execFile('ssh', [...sshOpts, `${sshd.user}@127.0.0.1`, command], { env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  it('the printed password opens the session; a wrong one is Permission denied and recorded', async () => {
    const ok = await sshWith(password, 'echo through');
    expect(ok.stderr).not.toContain('Permission denied');
    expect(ok.stdout).toBe('through\n');
    expect(ok.code).toBe(0);

    const wrong = await sshWith(`${password}x`, 'echo never');
    expect(wrong.code).toBe(255);
    expect(wrong.stderr).toContain('Permission denied');
    expect(wrong.stdout).toBe('');
    const trail = await lastSessionTrail();
    expect(trail).toContain('ssh.local_password');
    expect(trail).toContain('wrong local password');
    expect(trail).not.toContain(password);
  }, 60_000);
});

describe('replay and asciicast', () => {
  it('replay reproduces the output; the .cast file is valid asciicast v2', async () => {
    const r = await runCli(['exec', 'web-1', '--', 'printf', "'line one\\nline two\\n'"], ctx);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('line one\nline two\n');
    const list = JSON.parse((await runCli(['sessions', '--json', '--connection', 'web-1', '--limit', '1'], ctx)).stdout) as SessionList | SessionList['sessions'];
    const sessions = Array.isArray(list) ? list : list.sessions;
    const id = sessions[0]?.id as string;
    expect(id).toBeTruthy();

    const replay = await runCli(['sessions', 'replay', id, '--speed', '0'], ctx);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toBe(r.stdout);

    const cast = await runCli(['sessions', 'export', id, '--cast'], ctx);
    expect(cast.code).toBe(0);
    const [header, ...events] = cast.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, width: expect.any(Number), height: expect.any(Number), timestamp: expect.any(Number) });
    let last = 0;
    for (const e of events as [number, string, string][]) {
      expect(e).toHaveLength(3);
      expect(e[0]).toBeGreaterThanOrEqual(last);
      last = e[0];
      expect(['o', 'i', 'r']).toContain(e[1]);
    }
    expect((events as [number, string, string][]).filter((e) => e[1] === 'o').map((e) => e[2]).join('')).toBe(r.stdout);
  });
});

/** A real ssh-agent on its own socket holding one fresh ed25519 key (comment `agent-probe`). */
async function withAgent(fn: (agent: { env: NodeJS.ProcessEnv; publicKey: string; fingerprint: string }) => Promise<void>): Promise<void> {
  const agentDir = mkdtempSync(join(tmpdir(), 'sluice-agent-'));
  const sock = join(agentDir, 'agent.sock');
  // `ssh-agent -a` forks and exits once the socket is listening; its pid is in its output.
  const started = await execFileAsync('ssh-agent', ['-s', '-a', sock]);
  const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(started.stdout)?.[1]);
  try {
    const env = { ...process.env, SSH_AUTH_SOCK: sock };
    const key = join(agentDir, 'k');
    await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'agent-probe', '-f', key]);
    await execFileAsync('ssh-add', [key], { env });
    expect((await execFileAsync('ssh-add', ['-l'], { env })).stdout).toContain('agent-probe');
    const fingerprint = (await execFileAsync('ssh-keygen', ['-lf', `${key}.pub`])).stdout.split(' ')[1] as string;
    await fn({ env, publicKey: readFileSync(`${key}.pub`, 'utf8').trim(), fingerprint });
  } finally {
    if (pid > 0) process.kill(pid);
    rmSync(agentDir, { recursive: true, force: true });
  }
}

/** `sluice sessions show --json` of the connection's latest session, once its end is recorded. */
async function lastSessionTrail(connection = 'web-1'): Promise<string> {
  for (;;) {
    const list = JSON.parse((await runCli(['sessions', '--json', '--connection', connection, '--limit', '1'], ctx)).stdout) as SessionList | SessionList['sessions'];
    const id = (Array.isArray(list) ? list : list.sessions)[0]?.id as string;
    const shown = (await runCli(['sessions', 'show', id, '--json'], ctx)).stdout;
    if (shown.includes('session.end')) return shown;
  }
}

/** Resolves once no TCP connection to the test's sshd is established (polling `ss`). */
async function targetConnectionsClosed(): Promise<void> {
  for (;;) {
    const { stdout } = await execFileAsync('ss', ['-Htn', 'state', 'established', `( dport = :${sshd.port} )`]);
    if (stdout.trim() === '') return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function stderrMatch(t: Tunnel, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve) => {
    const check = () => {
      const m = re.exec(t.stderr());
      if (!m) return;
      t.child.stderr?.off('data', check);
      resolve(m);
    };
    t.child.stderr?.on('data', check);
    check();
  });
}

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file).on('data', (d) => h.update(d)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}
