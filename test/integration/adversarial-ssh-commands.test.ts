// Attacks on an ssh connection's command rules: a blocked command run behind a shell keyword
// (`if`, `!`), behind a redirection written before the program, behind a wrapper's option that
// takes an argument (`exec -a`, `timeout -s`, `env -u`), from a program name the shell computes
// (a variable, a glob) and through an interpreter (awk's system()). The real gateway binary in
// front of a throwaway OpenSSH server, an ssh2 client over the tunnel (as `ssh -o ProxyCommand`
// would). Each attack is first run on a connection without rules, where it must create its marker
// file on the host (so the attack is real); then on the ruled connection it must end with exit
// status 3, leave no marker on the host and be in the trail with its rule. With `sftp: true`
// blocked, scp's legacy protocol (`scp -O`, an exec of `scp -t`) must not land a file either, nor
// may an sftp server be started as a command (`sftp -s /usr/lib/openssh/sftp-server`).
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
let dispatcher: Agent;
let ruled: ssh2.Client;
let open: ssh2.Client;
const sessionIds = new Map<string, string>();

beforeAll(async () => {
  sshd = await startSshd();
  dir = mkdtempSync(join(tmpdir(), 'sluice-ssh-adv-'));
  const keyFile = join(dir, 'web-key');
  writeFileSync(keyFile, sshd.userKey, { mode: 0o600 });
  const target = { host: sshd.host, port: sshd.port, user: sshd.user, privateKey: { file: keyFile }, hostKey: sshd.hostKey };
  gw = await startGateway({
    connections: [
      { name: 'ruled', type: 'ssh', target, allow: { groups: ['ops'] }, policy: { rules: [{ id: 'no-markers', block: { commands: [`touch ${sshd.dir}/*`] } }] } },
      { name: 'open', type: 'ssh', target, allow: { groups: ['ops'] } },
      { name: 'no-files', type: 'ssh', target, allow: { groups: ['ops'] }, policy: { rules: [{ id: 'no-files', block: { sftp: true } }] } },
    ],
  });
  ops = serviceToken(gw, 'attacker', 'ops');
  dispatcher = new Agent({ connect: gw.caFile ? { ca: readFileSync(gw.caFile) } : {} });
  ruled = await connect('ruled');
  open = await connect('open');
}, 60_000);

afterAll(async () => {
  ruled?.end();
  open?.end();
  await dispatcher?.close();
  await gw?.stop();
  await sshd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (gw) rmSync(gw.dir, { recursive: true, force: true });
});

function tunnel(name: string): Promise<Socket> {
  const url = new URL(`${gw.url}/v1/connections/${name}/tunnel`);
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { authorization: `Bearer ${ops}`, connection: 'Upgrade', upgrade: TUNNEL_PROTOCOL }, ...(gw.caFile ? { ca: readFileSync(gw.caFile) } : {}) });
    req.on('upgrade', (res, socket) => {
      sessionIds.set(name, String(res.headers[SESSION_HEADER.toLowerCase()]));
      resolve(socket);
    });
    req.on('response', (res) => reject(new Error(`tunnel refused: HTTP ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
}

async function connect(name: string): Promise<ssh2.Client> {
  const sock = await tunnel(name);
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', reject);
    client.connect({ sock, username: 'anyone', hostVerifier: () => true, readyTimeout: 20_000 });
  });
  return client;
}

function run(client: ssh2.Client, command: string, input?: string): Promise<{ stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch) => {
      if (err) return reject(err);
      if (input !== undefined) ch.end(input);
      let stderr = '';
      let code: number | null = null;
      ch.on('data', () => undefined);
      ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      ch.on('exit', (c: number | null) => (code = c));
      ch.on('close', () => resolve({ stderr, code }));
    });
  });
}

async function trail(id: string): Promise<SessionDetail> {
  for (;;) {
    const res = await fetch(`${gw.url}${paths.session(id)}`, { headers: { authorization: `Bearer ${ops}` }, dispatcher });
    const body = (await res.json()) as SessionDetail;
    if (body.events.some((e) => e.kind === 'session.end')) return body;
    await new Promise((r) => setImmediate(r));
  }
}

/** Each attack as a function of the marker's path; `rule` is the rule the gateway must name. */
const ATTACKS: readonly [string, (m: string) => string, 'no-markers' | 'ssh.unjudgeable-command'][] = [
  ['exec -a names the program otherwise', (m) => `exec -a mytouch touch ${m}`, 'no-markers'],
  ['timeout -s takes an argument', (m) => `timeout -s KILL 5 touch ${m}`, 'no-markers'],
  ['env -u takes an argument', (m) => `env -u HOME touch ${m}`, 'no-markers'],
  ['an if keyword', (m) => `if touch ${m}; then :; fi`, 'no-markers'],
  ['a ! keyword', (m) => `! touch ${m}`, 'no-markers'],
  ['a redirection before the program', (m) => `>/dev/null touch ${m}`, 'no-markers'],
  ['2>&1 before the program', (m) => `2>&1 touch ${m}`, 'no-markers'],
  ['a program name in a variable', (m) => `T=touch; $T ${m}`, 'ssh.unjudgeable-command'],
  ['a program name by glob', (m) => `/usr/bin/tou?h ${m}`, 'ssh.unjudgeable-command'],
  ['awk system()', (m) => `awk 'BEGIN { system("touch ${m}") }'`, 'ssh.unjudgeable-command'],
];

describe('a blocked command hidden from the splitter', () => {
  it.each(ATTACKS.map(([label, make, rule], i) => [label, make, rule, i] as const))('%s', async (_label, make, rule, i) => {
    const proof = join(sshd.dir, `proof-${i}`);
    const r0 = await run(open, make(proof));
    expect(existsSync(proof), `the attack runs the command where no rule applies: ${r0.stderr}`).toBe(true);

    const marker = join(sshd.dir, `marker-${i}`);
    const r = await run(ruled, make(marker));
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(rule === 'no-markers' ? 'blocked by rule no-markers' : 'cannot be checked');
    expect(existsSync(marker)).toBe(false);
  });

  it('each refusal is in the trail with its rule', async () => {
    ruled.end();
    const events = (await trail(sessionIds.get('ruled') as string)).events;
    const decisions = events.filter((e) => e.kind === 'decision').map((e) => JSON.stringify(e.data));
    expect(decisions.filter((d) => d.includes('no-markers'))).toHaveLength(ATTACKS.filter((a) => a[2] === 'no-markers').length);
    expect(decisions.filter((d) => d.includes('ssh.unjudgeable-command'))).toHaveLength(ATTACKS.filter((a) => a[2] === 'ssh.unjudgeable-command').length);
  });
});

describe('file transfer as a command while sftp is blocked', () => {
  /** scp's sink side (`scp -t DIR`, what `scp -O FILE host:DIR` runs): one 5-byte file. */
  const scpUpload = (client: ssh2.Client, name: string) => run(client, `scp -t ${sshd.dir}`, `C0644 5 ${name}\nhello\0`);

  it('scp -t lands a file where no rule applies, and is refused with nothing landed where sftp is blocked', async () => {
    await scpUpload(open, 'scp-proof');
    expect(existsSync(join(sshd.dir, 'scp-proof')), 'the legacy scp protocol writes the file').toBe(true);
    const files = await connect('no-files');
    try {
      const r = await scpUpload(files, 'scp-landed');
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/blocked by rule no-files/);
      expect(existsSync(join(sshd.dir, 'scp-landed'))).toBe(false);
      const server = await run(files, '/usr/lib/openssh/sftp-server');
      expect(server.code).toBe(3);
      expect(server.stderr).toMatch(/blocked by rule no-files/);
      const plain = await run(files, 'true');
      expect(plain.code).toBe(0);
    } finally {
      files.end();
    }
  });
});
