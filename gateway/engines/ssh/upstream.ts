// The gateway's ssh connection to the target: the held private key, and the host key checked
// against the connection's pin before authentication (never trusted on first use). A mismatch
// fails with HostKeyMismatchError, whose message names both fingerprints and what to do.
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import ssh2 from 'ssh2';
import type { SshTarget } from '../../model.js';
import { TARGET_ALGORITHMS } from './algorithms.js';
import { batchWritesPerTick } from './writeBatching.js';

export class HostKeyMismatchError extends Error {
  constructor(readonly expected: string, readonly presented: string) {
    super(`the host key of the target does not match the pinned hostKey (pinned ${expected}, presented ${presented}); the session was refused. If the host's key was changed on purpose, update target.hostKey in the gateway configuration`);
    this.name = 'HostKeyMismatchError';
  }
}

/** SHA256:… as OpenSSH prints it (ssh-keygen -lf). */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Connects and authenticates; rejects with HostKeyMismatchError or the connection's error. With an
 * `agent` (agent forwarding allowed: agentForwarding.ts) the client can relay the target's agent
 * channels to it; the login itself still uses the held key only.
 */
export function connectUpstream(target: SshTarget, timeoutMs: number, signal: AbortSignal, agent?: ssh2.BaseAgent): Promise<ssh2.Client> {
  const pinned = Buffer.from(target.hostKey.split(' ')[1] ?? '', 'base64');
  const client = new ssh2.Client();
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('the session ended before the target accepted it'));
    let mismatch: HostKeyMismatchError | undefined;
    let settled = false;
    const onAbort = () => {
      settle();
      client.end();
      reject(new Error('the session ended before the target accepted it'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const settle = () => {
      settled = true;
      signal.removeEventListener('abort', onAbort);
    };
    client.once('ready', () => {
      settle();
      resolve(client);
    });
    // Kept for the client's whole life: a handshake abandoned by the session (its local client
    // left) can still hear the target reset the connection, and an unheard 'error' ends the process.
    client.on('error', (err) => {
      client.end();
      if (settled) return;
      settle();
      reject(mismatch ?? err);
    });
    client.once('close', () => {
      settle();
      reject(mismatch ?? new Error('the target closed the connection during the handshake'));
    });
    // The gateway's own socket, so that its writes can be batched; ssh2 waits for it to connect.
    // No Nagle delay: batchWritesPerTick already gathers what one tick writes.
    const sock = connect({ host: target.host, port: target.port, noDelay: true });
    batchWritesPerTick(sock);
    client.connect({
      sock,
      host: target.host,
      port: target.port,
      username: target.user,
      privateKey: target.privateKey,
      // Never `agent`: a forwarded agent's keys must not log the gateway in.
      authHandler: ['none', 'publickey'],
      ...(agent ? { agent } : {}),
      algorithms: TARGET_ALGORITHMS,
      readyTimeout: timeoutMs,
      keepaliveInterval: 30_000,
      hostVerifier: (key: Buffer) => {
        if (key.equals(pinned)) return true;
        mismatch = new HostKeyMismatchError(fingerprint(pinned), fingerprint(key));
        return false;
      },
    });
  });
}
