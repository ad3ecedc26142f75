// Shared fixtures for the ssh CLI tests: an ssh connection as the gateway describes it, and an ssh
// session's recorded events in the shapes the gateway's ssh engine writes (ssh.output, ssh.input,
// ssh.resize with `t` seconds since the channel opened; actions as `action` events with `q`, and
// `query` as gateways before the audit core wrote them).
import type { SessionDetail, SessionEvent, SshConnectionInfo } from '../../../src/api/contract.js';
import { session } from './fakes.js';

export const webOne: SshConnectionInfo = {
  name: 'web-1',
  type: 'ssh',
  user: 'deploy',
  hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH2C9wD4dASy+9sqMmqGjGMHhAGGhmSumhE4f5GD2z3q',
  policy: 'commands: 2 rules',
};

let seq = 0;
const ev = (kind: string, at: string, data: Record<string, unknown>): SessionEvent => ({ seq: ++seq, kind, at, data, hash: 'h' });

/** A shell session: window 100x30, `echo hello` typed and echoed, a resize, then `exit 3`. */
export function shellSession(): SessionDetail {
  seq = 0;
  return {
    session: session({ id: 'S-ssh', connection: 'web-1', protocol: 'ssh', database: null, startedAt: '2026-11-05T11:00:00.000Z' }),
    events: [
      ev('session.start', '2026-11-05T11:00:00.000Z', {}),
      ev('query', '2026-11-05T11:00:00.100Z', { q: 1, kind: 'shell', text: 'shell (xterm 100x30)' }),
      ev('decision', '2026-11-05T11:00:00.101Z', { q: 1, verdict: 'allow' }),
      ev('ssh.resize', '2026-11-05T11:00:00.200Z', { action: 1, t: 0, cols: 100, rows: 30 }),
      ev('ssh.output', '2026-11-05T11:00:00.300Z', { action: 1, t: 0.1, data: '$ ' }),
      ev('ssh.input', '2026-11-05T11:00:01.300Z', { action: 1, t: 1.1, data: 'echo hello\r' }),
      ev('ssh.output', '2026-11-05T11:00:01.310Z', { action: 1, t: 1.11, data: 'echo hello\r\nhello\r\n$ ' }),
      ev('ssh.resize', '2026-11-05T11:00:02.000Z', { action: 1, t: 1.8, cols: 120, rows: 40 }),
      // Recorded late (the audit stamped it after the resize) but typed earlier: `t` orders it.
      ev('ssh.input', '2026-11-05T11:00:09.000Z', { action: 1, t: 1.5, data: 'exit 3\r' }),
      ev('ssh.output', '2026-11-05T11:00:09.010Z', { action: 1, t: 8.81, data: 'exit 3\r\n', stream: 'stdout' }),
      ev('result', '2026-11-05T11:00:09.020Z', { q: 1, status: 'error', code: '3' }),
      ev('session.end', '2026-11-05T11:00:09.030Z', { status: 'ok' }),
    ],
  };
}

/** Two exec channels one after another, one writing to stderr, and one command blocked. */
export function execSession(): SessionDetail {
  seq = 0;
  return {
    session: session({ id: 'S-exec', connection: 'web-1', protocol: 'ssh', database: null, origin: 'exec', startedAt: '2026-11-05T11:00:00.000Z' }),
    events: [
      ev('action', '2026-11-05T11:00:00.000Z', { q: 1, kind: 'exec', text: 'uptime' }),
      ev('decision', '2026-11-05T11:00:00.001Z', { q: 1, verdict: 'allow' }),
      ev('ssh.output', '2026-11-05T11:00:00.050Z', { action: 1, t: 0.05, data: ' 11:00:00 up 1 day\n' }),
      ev('ssh.output', '2026-11-05T11:00:00.060Z', { action: 1, t: 0.06, data: 'warn\n', stream: 'stderr' }),
      ev('result', '2026-11-05T11:00:00.070Z', { q: 1, status: 'ok', code: '0' }),
      ev('query', '2026-11-05T11:00:05.000Z', { q: 2, kinds: ['exec'], text: 'rm -rf /*' }),
      ev('decision', '2026-11-05T11:00:05.001Z', { q: 2, verdict: 'block', rule: 'no-destroy' }),
      ev('session.end', '2026-11-05T11:00:05.100Z', { status: 'ok' }),
    ],
  };
}
