// Port forwarding through the gateway: refused unless a rule allows it for the caller's groups
// (`allow: { forwarding: [local, remote] }`), and the relay of X11 channels (`[x11]`). Every request is an action in the audit trail with
// its verdict; the forwarded bytes are relayed but not recorded (they are not a terminal).
import type ssh2 from 'ssh2';
import type { Identity, SshConnection } from '../../model.js';
import { allowedBy } from './policy.js';
import type { SshAudit } from './recorder.js';

const REFUSED_RULE = 'ssh.forwarding';

function judged(audit: SshAudit, text: string, rule: string | undefined): boolean {
  let id: number;
  try {
    id = audit.onAction({ kind: 'forward', text });
    audit.onDecision(rule === undefined ? { queryId: id, verdict: 'block', rule: REFUSED_RULE, reason: 'port forwarding is refused unless a rule allows it' } : { queryId: id, verdict: 'allow', rule });
  } catch {
    return false;
  }
  return rule !== undefined;
}

export function handleForwarding(conn: ssh2.Connection, upstream: ssh2.Client, ctx: { identity: Identity; connection: SshConnection; audit: SshAudit }): void {
  const rule = (direction: 'local' | 'remote') => allowedBy(ctx.connection.policy, ctx.identity.groups, { kind: 'forwarding', direction });

  conn.on('tcpip', (accept, reject, info) => {
    if (!judged(ctx.audit, `local ${info.destIP}:${info.destPort}`, rule('local'))) return reject();
    upstream.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, remote) => {
      if (err) return reject();
      const local = accept();
      local.pipe(remote).pipe(local);
    });
  });

  // Connections the target receives on a remote-forwarded port go back to the client.
  upstream.on('tcp connection', (info, accept, reject) => {
    conn.forwardOut(info.destIP, info.destPort, info.srcIP, info.srcPort, (err, local) => {
      if (err) return reject();
      const remote = accept();
      remote.pipe(local).pipe(remote);
    });
  });

  // X11 channels the target opens (only after an allowed x11-req: see sessionChannel.ts) go back
  // to the client; each is recorded with its bytes, not its contents (it is not a terminal).
  upstream.on('x11', (info, accept, reject) => {
    conn.x11(info.srcIP, info.srcPort, (err, local) => {
      if (err) return reject();
      const remote = accept();
      const bytes = { toClient: 0, fromClient: 0 };
      try {
        ctx.audit.onEvent('ssh.x11', { event: 'opened', origin: `${info.srcIP}:${info.srcPort}` });
      } catch {
        remote.close();
        local.close();
        return;
      }
      remote.on('data', (d: Buffer) => (bytes.toClient += d.length));
      local.on('data', (d: Buffer) => (bytes.fromClient += d.length));
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        try {
          ctx.audit.onEvent('ssh.x11', { event: 'closed', origin: `${info.srcIP}:${info.srcPort}`, ...bytes });
        } catch {
          // The session's end records the store failure; the channel is gone either way.
        }
      };
      remote.once('close', close);
      local.once('close', close);
      remote.pipe(local).pipe(remote);
    });
  });

  conn.on('request', (accept, reject, name, info) => {
    if (name === 'cancel-tcpip-forward') {
      upstream.unforwardIn(info.bindAddr, info.bindPort, (err) => (err ? reject?.() : accept?.()));
      return;
    }
    if (name !== 'tcpip-forward' || !judged(ctx.audit, `remote ${info.bindAddr}:${info.bindPort}`, rule('remote'))) return reject?.();
    upstream.forwardIn(info.bindAddr, info.bindPort, (err, port) => (err ? reject?.() : accept?.(port)));
  });
}
