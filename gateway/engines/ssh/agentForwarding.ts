// Agent forwarding (`ssh -A`) through the gateway, for connections whose policy allows it
// (`allow: { forwarding: [agent] }`). The gateway's ssh2 client to the target is given a
// ClientAgent: when a client session channel's `auth-agent-req@openssh.com` is allowed, the target's
// session asks for agent forwarding too, and each `auth-agent@openssh.com` channel the target then
// opens is answered by opening one to the local client (ssh2AgentChannel.ts) and relaying the two.
// Every agent channel is recorded (`ssh.agent`: opened, then closed with its byte counts); the
// agent protocol's bytes are not kept, so no key material (public keys, signatures) reaches the
// audit trail. The forwarded agent is never used for the gateway's own login to the target: only
// its held key is (upstream.ts).
import { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import { openAgentChannel } from './ssh2AgentChannel.js';
import type { SshAudit } from './recorder.js';

export class ClientAgent extends ssh2.BaseAgent {
  /** Set once a client session channel's agent request was allowed; until then nothing is opened. */
  private requested = false;
  private opened = 0;

  constructor(
    private readonly conn: ssh2.Connection,
    private readonly audit: SshAudit,
    private readonly log: { warn(obj: object, msg: string): void },
  ) {
    super();
  }

  /** The local client asked for agent forwarding on a session channel and a rule allowed it. */
  enable(): void {
    this.requested = true;
  }

  // The gateway authenticates with its held key only; the client's agent signs nothing for it.
  getIdentities(cb: (err: Error | undefined, keys?: never[]) => void): void {
    cb(new Error('the forwarded agent is not used for the gateway\'s own login'));
  }

  sign(_key: unknown, _data: Buffer, optsOrCb: unknown, cb?: (err: Error | undefined) => void): void {
    const done = typeof optsOrCb === 'function' ? (optsOrCb as (err: Error | undefined) => void) : cb;
    done?.(new Error('the forwarded agent is not used for the gateway\'s own login'));
  }

  /** Called by ssh2's client for each agent channel the target opens; an error refuses it. */
  override getStream(cb: (err: Error | undefined, stream?: Duplex) => void): void {
    if (!this.requested) return cb(new Error('no client session asked for agent forwarding'));
    const n = ++this.opened;
    openAgentChannel(this.conn, (err, local) => {
      if (err || local === undefined) {
        this.log.warn({ err: { message: err?.message } }, 'ssh agent channel to the client could not be opened');
        this.record({ event: 'refused', channel: n, reason: err?.message ?? 'no channel' });
        return cb(err ?? new Error('no channel'));
      }
      if (!this.record({ event: 'opened', channel: n })) {
        // Fail closed: a channel that cannot be recorded is not relayed.
        local.close();
        return cb(new Error('the audit trail cannot record the agent channel'));
      }
      cb(undefined, this.relay(local, n));
    });
  }

  /** A duplex over the client's agent channel that counts the bytes each way and records the close. */
  private relay(local: ssh2.ServerChannel, n: number): Duplex {
    const bytes = { toClient: 0, fromClient: 0 };
    let closed = false;
    const relay = new Duplex({
      write(chunk: Buffer, _enc, done) {
        // What the target still sends after the client closed the channel goes nowhere.
        if (closed) return done();
        bytes.toClient += chunk.length;
        local.write(chunk, () => done());
      },
      final(done) {
        if (!closed) local.end();
        done();
      },
      read() {
        local.resume();
      },
    });
    local.on('data', (d: Buffer) => {
      bytes.fromClient += d.length;
      if (!relay.push(d)) local.pause();
    });
    local.once('end', () => relay.push(null));
    local.on('error', (err: Error) => this.log.warn({ err: { message: err.message } }, 'ssh agent channel error'));
    local.once('close', () => {
      closed = true;
      this.record({ event: 'closed', channel: n, ...bytes });
      relay.push(null);
    });
    return relay;
  }

  private record(data: Record<string, unknown>): boolean {
    try {
      this.audit.onEvent('ssh.agent', data);
      return true;
    } catch {
      // The session's end records the store failure.
      return false;
    }
  }
}
