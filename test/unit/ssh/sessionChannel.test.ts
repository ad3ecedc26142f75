// The session-channel bridge with fakes for the ssh2 channels: what is refused never reaches the
// target (blocked commands, an audit store that cannot record, env outside the allow-list), and a
// refusal ends the channel with the documented exit status and a message on stderr.
import { EventEmitter } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import type ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { AuditUnavailableError } from '../../../gateway/audit/contract.js';
import { compileSshPolicy, sshPolicySchema } from '../../../gateway/engines/ssh/policy.js';
import type { ClientAgent } from '../../../gateway/engines/ssh/agentForwarding.js';
import type { SshAudit } from '../../../gateway/engines/ssh/recorder.js';
import { bridgeSession, EXIT_BLOCKED, relay, type ChannelContext } from '../../../gateway/engines/ssh/sessionChannel.js';
import type { SshConnection } from '../../../gateway/model.js';

class FakeChannel extends EventEmitter {
  stderrText = '';
  exitStatus: unknown;
  ended = false;
  destroyed = false;
  writableEnded = false;
  stderr = { write: (t: string) => (this.stderrText += t) };
  exit(s: unknown) {
    this.exitStatus = s;
  }
  end() {
    this.ended = true;
    this.writableEnded = true;
  }
}

function setup(opts: { failAudit?: boolean; rules?: unknown[]; agent?: boolean } = {}) {
  const calls: string[] = [];
  const actions: unknown[] = [];
  const audit = {
    onAction: (a: unknown) => {
      if (opts.failAudit) throw new AuditUnavailableError();
      actions.push(a);
      return actions.length;
    },
    onDecision: (d: unknown) => actions.push(d),
    onOutcome: (o: unknown) => actions.push(o),
    onEvent: () => undefined,
  } as unknown as SshAudit;
  const upstream = {
    exec: (cmd: string, o: { agentForward?: boolean }) => calls.push(`exec ${cmd}${o.agentForward ? ' +agent' : ''}`),
    shell: (_pty: unknown, o: { agentForward?: boolean }) => calls.push(`shell${o.agentForward ? ' +agent' : ''}`),
  } as unknown as ssh2.Client;
  const connection = {
    name: 'web-1',
    type: 'ssh',
    record: 'statements',
    policy: compileSshPolicy(sshPolicySchema.parse({ rules: [{ id: 'no-reboot', block: { commands: ['reboot*'] } }, ...(opts.rules ?? [])] })),
  } as unknown as SshConnection;
  const ctx: ChannelContext = {
    identity: { subject: 'token:ci', name: 'ci', groups: ['ops'], kind: 'service' },
    connection,
    audit,
    upstream,
    budget: { left: 1024, truncated: false },
    bytes: { fromClient: 0, toClient: 0 },
    log: { warn: () => undefined },
    ...(opts.agent ? { agent: { enable: () => calls.push('agent enabled') } as unknown as ClientAgent } : {}),
  };
  const session = new EventEmitter();
  bridgeSession(ctx, session as unknown as ssh2.Session);
  return { session, calls, actions };
}

describe('ssh session channel', () => {
  it('refuses a blocked command with exit status 3 and never asks the target', () => {
    const { session, calls, actions } = setup();
    const ch = new FakeChannel();
    session.emit('exec', () => ch, () => undefined, { command: 'reboot now' });
    expect(ch.exitStatus).toBe(EXIT_BLOCKED);
    expect(ch.stderrText).toMatch(/^sluice: blocked by rule no-reboot/);
    expect(ch.ended).toBe(true);
    expect(calls).toEqual([]);
    expect(actions).toContainEqual(expect.objectContaining({ verdict: 'block', rule: 'no-reboot' }));
  });

  it('refuses commands and shells the audit trail cannot record (fail closed)', () => {
    const { session, calls } = setup({ failAudit: true });
    const ch = new FakeChannel();
    session.emit('exec', () => ch, () => undefined, { command: 'uptime' });
    expect(ch.exitStatus).toBe(EXIT_BLOCKED);
    expect(ch.stderrText).toMatch(/cannot record this command in its audit trail/);
    const sh = new FakeChannel();
    session.emit('shell', () => sh, () => undefined);
    expect(sh.exitStatus).toBe(EXIT_BLOCKED);
    let rejected = false;
    session.emit('subsystem', () => new FakeChannel(), () => (rejected = true), { name: 'sftp' });
    expect(rejected).toBe(true);
    expect(calls).toEqual([]);
  });

  it('passes LANG, LC_* and TERM and refuses other environment variables', () => {
    const { session } = setup();
    const seen: string[] = [];
    for (const key of ['LANG', 'LC_ALL', 'TERM', 'LD_PRELOAD', 'PATH']) {
      session.emit('env', () => seen.push(`+${key}`), () => seen.push(`-${key}`), { key, val: 'x' });
    }
    expect(seen).toEqual(['+LANG', '+LC_ALL', '+TERM', '-LD_PRELOAD', '-PATH']);
  });

  it('refuses agent and X11 forwarding', () => {
    const { session } = setup();
    const seen: string[] = [];
    session.emit('auth-agent', () => seen.push('agent accepted'), () => seen.push('agent refused'));
    session.emit('x11', () => seen.push('x11 accepted'), () => seen.push('x11 refused'), {});
    expect(seen).toEqual(['agent refused', 'x11 refused']);
  });

  it('allows agent forwarding only under a rule for the caller\'s groups, and asks for it on the target\'s session', () => {
    const rule = { id: 'agents', allow: { forwarding: ['agent'] }, for: { groups: ['ops'] } };
    const allowed = setup({ rules: [rule], agent: true });
    const seen: string[] = [];
    allowed.session.emit('auth-agent', () => seen.push('accepted'), () => seen.push('refused'));
    allowed.session.emit('exec', () => new FakeChannel(), () => undefined, { command: 'ssh-add -l' });
    expect(seen).toEqual(['accepted']);
    expect(allowed.calls).toEqual(['agent enabled', 'exec ssh-add -l +agent']);
    expect(allowed.actions).toContainEqual({ kind: 'forward', text: 'agent' });
    expect(allowed.actions).toContainEqual(expect.objectContaining({ verdict: 'allow', rule: 'agents' }));

    // A rule for other groups leaves it refused; the target's session is not asked.
    const other = setup({ rules: [{ ...rule, for: { groups: ['admins'] } }], agent: true });
    other.session.emit('auth-agent', () => seen.push('accepted'), () => seen.push('refused'));
    other.session.emit('shell', () => new FakeChannel(), () => undefined);
    expect(seen).toEqual(['accepted', 'refused']);
    expect(other.calls).toEqual(['shell']);
    expect(other.actions).toContainEqual(expect.objectContaining({ verdict: 'block', rule: 'ssh.forwarding' }));

    // An audit store that cannot record the request refuses it.
    const failing = setup({ rules: [rule], agent: true, failAudit: true });
    failing.session.emit('auth-agent', () => seen.push('accepted'), () => seen.push('refused'));
    expect(seen).toEqual(['accepted', 'refused', 'refused']);
    expect(failing.calls).toEqual([]);
  });
});

describe('ssh channel relay', () => {
  it('pauses the sending side while the receiving side is full, resumes on drain, and loses nothing', async () => {
    const from = new PassThrough();
    const held: (() => void)[] = [];
    const got: string[] = [];
    const to = new Writable({
      highWaterMark: 4,
      write(chunk: Buffer, _enc, done) {
        got.push(chunk.toString());
        held.push(done);
      },
    });
    const seen: string[] = [];
    relay(from, to, (d) => seen.push(d.toString()));
    from.write('abcdef');
    await new Promise((r) => setImmediate(r));
    expect(from.isPaused()).toBe(true);
    from.write('ghi');
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['abcdef']);
    expect(got).toEqual(['abcdef']);
    // The receiver drains: the sender resumes and what it held comes through.
    held.shift()?.();
    await new Promise((r) => setImmediate(r));
    expect(from.isPaused()).toBe(false);
    expect(seen).toEqual(['abcdef', 'ghi']);
    held.shift()?.();
    expect(got.join('')).toBe('abcdefghi');
  });
});
