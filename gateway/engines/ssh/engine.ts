// The ssh engine: an ssh2 server on the upgraded tunnel stream (the gateway's own host key; the
// tunnel already authenticated the caller, so the local client needs no key of its own) and an
// ssh2 client to the target with the held key, its host key checked against the pin. With a
// local password digest in the session context, only a `password` login matching it is accepted. Session
// channels are bridged by sessionChannel.ts; port and X11 forwarding (forwarding.ts) and agent
// forwarding (agentForwarding.ts) are refused unless a rule allows them. Denials are audited like
// everything else.
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { SshConnection } from '../../model.js';
import type { Engine, SessionContext } from '../types.js';
import { LOCAL_ALGORITHMS } from './algorithms.js';
import { gatewayHostKey } from './hostKey.js';
import { ClientAgent } from './agentForwarding.js';
import { handleForwarding } from './forwarding.js';
import { LOCAL_PASSWORD_ATTEMPTS, localPasswordMatches } from './localPassword.js';
import { allowedBy } from './policy.js';
import { TERMINAL_RECORD_BYTES, type SshAudit } from './recorder.js';
import { bridgeSession, type ChannelContext } from './sessionChannel.js';
import { batchWritesPerTick } from './writeBatching.js';
import { connectUpstream } from './upstream.js';

export function createSshEngine(opts: { stateDir: () => string }): Engine {
  return {
    handle: (client, session, signal) => handleSession(client, session, signal, opts.stateDir()),
  };
}

async function handleSession(socket: Duplex, session: SessionContext, signal: AbortSignal, stateDir: string): Promise<void> {
  const connection = session.connection as SshConnection;
  const audit: SshAudit = session.audit;
  const { target } = connection;
  const bytes = { fromClient: 0, toClient: 0 };
  const hostKey = gatewayHostKey(stateDir);
  const server = new ssh2.Server({ hostKeys: [hostKey.privateKey], ident: 'sluice-gateway', algorithms: LOCAL_ALGORITHMS });
  let upstream: ssh2.Client | undefined;
  let failure: string | undefined;
  // Set while the local client's last login was refused; a session that ends so was refused.
  let loginRefused: string | undefined;
  let started = false;
  const sessionStarted = (clientUser?: string) => {
    if (started) return;
    started = true;
    audit.onSessionStart({ target: `${target.user}@${target.host}:${target.port}`, ...(clientUser === undefined ? {} : { clientUser }) });
  };

  // Ends the target's handshake too when the local client leaves before it completes (a failed
  // key exchange, a client that gives up): otherwise the target connection would outlive the session.
  const ended = new AbortController();
  await new Promise<void>((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      ended.abort();
      upstream?.end();
      resolve();
    };
    signal.addEventListener('abort', () => {
      failure ??= 'the gateway ended the session';
      socket.destroy();
      finish();
    }, { once: true });
    server.on('connection', (conn) => {
      conn.on('error', (err) => {
        session.log.debug({ err }, 'ssh client connection error');
        // Before the login this is the session's outcome (e.g. no cipher in common: algorithms.ts),
        // recorded as a session of the tunnel's caller that ended in error.
        if (!started) {
          failure ??= `the local ssh client's connection failed: ${err.message}`;
          sessionStarted();
        }
        finish();
      });
      conn.on('close', finish);
      let connecting: Promise<void> | undefined;
      let wrongPasswords = 0;
      // Only where a rule may allow agent forwarding can the target's client relay agent channels.
      const agent = allowedBy(connection.policy, session.identity.groups, { kind: 'forwarding', direction: 'agent' }) === undefined ? undefined : new ClientAgent(conn, audit, session.log);
      const startUpstream = () =>
        (connecting ??= connectUpstream(target, session.connectTimeoutMs, AbortSignal.any([signal, ended.signal]), agent).then(
          (up) => {
            upstream = up;
            up.on('close', () => conn.end());
            up.on('error', (err) => session.log.warn({ err }, 'ssh target connection error'));
          },
          (err: Error) => {
            // The first cause stands: a local client that already failed, or the gateway's shutdown.
            failure ??= err.message;
            session.log.warn({ err: { message: err.message } }, 'ssh target refused: %s', err.message);
          },
        ));
      // Without a local password to check first, the target's handshake runs while the local
      // client's key exchange does, instead of after it: one handshake's latency less per session.
      if (session.localPasswordDigest === undefined) void startUpstream();
      conn.on('authentication', (ctx) => {
        const digest = session.localPasswordDigest;
        if (digest !== undefined) {
          // `sluice connect --local-password`: only the one-time password opens the session.
          if (ctx.method !== 'password') return ctx.reject(['password']);
          if (!localPasswordMatches(digest, ctx.password)) {
            wrongPasswords++;
            loginRefused = 'refused: wrong local password (the one `sluice connect --local-password` printed)';
            sessionStarted(ctx.username);
            audit.onEvent('ssh.local_password', { result: 'wrong', attempt: wrongPasswords });
            session.log.info('ssh local client gave a wrong local password (attempt %d)', wrongPasswords);
            ctx.reject(['password']);
            if (wrongPasswords >= LOCAL_PASSWORD_ATTEMPTS) conn.end();
            return;
          }
          loginRefused = undefined;
        }
        // The tunnel is the authentication: `none` (or any method) is accepted as the session's
        // user once the target has accepted the gateway; every attempt waits for that one login.
        const started = startUpstream();
        void started.then(() => {
          sessionStarted(ctx.username);
          ctx.accept();
        });
      });
      conn.on('ready', () => {
        if (failure !== undefined || upstream === undefined) {
          const why = failure ?? 'the target could not be reached';
          conn.on('session', (accept) => {
            const s = accept();
            const refuse = (acceptChannel: () => ssh2.ServerChannel) => {
              const ch = acceptChannel();
              ch.stderr.write(`sluice: ${why}\r\n`);
              ch.exit(255);
              ch.end();
              conn.end();
            };
            s.once('exec', (a) => refuse(a));
            s.once('shell', (a) => refuse(a));
            s.once('subsystem', (_a, r) => {
              r?.();
              conn.end();
            });
          });
          return;
        }
        const up = upstream;
        const ctx: ChannelContext = {
          identity: session.identity,
          connection,
          audit,
          upstream: up,
          budget: { left: TERMINAL_RECORD_BYTES, truncated: false },
          bytes,
          log: session.log,
          ...(agent ? { agent } : {}),
          ...(session.reviews ? { review: reviewer(session, audit, signal) } : {}),
        };
        conn.on('session', (accept) => bridgeSession(ctx, accept()));
        handleForwarding(conn, up, { identity: session.identity, connection, audit });
      });
    });
    batchWritesPerTick(socket);
    server.injectSocket(socket as Socket);
  });
  failure ??= loginRefused;
  const ok = failure === undefined;
  audit.onSessionEnd({ status: ok ? 'ok' : 'error', ...(failure ? { message: failure } : {}), bytesFromClient: bytes.fromClient, bytesToClient: bytes.toClient });
}

function reviewer(session: SessionContext, audit: SshAudit, signal: AbortSignal): NonNullable<ChannelContext['review']> {
  const reviews = session.reviews as NonNullable<SessionContext['reviews']>;
  return async (command, rule, reason, approvers, timeoutMs, actionId, notify, channelClosed) => {
    const held = reviews.request({ action: command, kind: 'exec', rule, reason, approvers, timeoutMs }, AbortSignal.any([signal, channelClosed]));
    audit.onReview({ queryId: actionId, event: 'created', reviewId: held.id });
    notify(`sluice: held for review ${held.id} (rule ${rule}); waiting for an approver from ${approvers.join(', ')}`);
    const outcome = await held.outcome;
    if (outcome.status === 'approved') {
      audit.onReview({ queryId: actionId, event: 'approved', reviewId: held.id, by: outcome.by, ...(outcome.reason ? { reason: outcome.reason } : {}) });
      return { approved: true, message: '' };
    }
    if (outcome.status === 'rejected') {
      audit.onReview({ queryId: actionId, event: 'rejected', reviewId: held.id, by: outcome.by, reason: outcome.reason });
      return { approved: false, message: `review ${held.id} was rejected by ${outcome.by}: ${outcome.reason}; the command was not run` };
    }
    if (outcome.status === 'expired') audit.onReview({ queryId: actionId, event: 'expired', reviewId: held.id });
    return { approved: false, message: `review ${held.id} ${outcome.status === 'expired' ? 'expired without a decision' : 'was cancelled'}; the command was not run` };
  };
}
