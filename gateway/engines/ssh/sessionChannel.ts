// Bridges one client session channel to a session channel on the target: pty-req, env (an
// allow-list), window-change and signals are carried over; shell, exec and the sftp subsystem are
// judged by policy and recorded before they run; the target's exit status or signal, EOF and close
// reach the client in that order. Blocked commands end with exit status 3 and a message on stderr,
// rejected or expired reviews with exit status 5 (the statuses `sluice exec` uses for SQL).
import type ssh2 from 'ssh2';
import type { Identity, SshConnection } from '../../model.js';
import type { ClientAgent } from './agentForwarding.js';
import { allowedBy, judgeCommand, sftpBlocked } from './policy.js';
import { TerminalRecorder, type SshAudit } from './recorder.js';
import { tapSftp } from './sftpTap.js';

/** Exit statuses the client sees for refused commands. */
export const EXIT_BLOCKED = 3;
export const EXIT_REVIEW_REJECTED = 5;
/** What a shell reports when a signal ended it without an exit status (128 + SIGTERM's number, as shells do). */
const EXIT_UNKNOWN = 255;

/** Environment variables passed on: the terminal's type and the locale, nothing that changes what runs. */
const ENV_ALLOWED = /^(LANG|LC_[A-Z_]+|TERM)$/;

export interface ChannelContext {
  readonly identity: Identity;
  readonly connection: SshConnection;
  readonly audit: SshAudit;
  readonly upstream: ssh2.Client;
  /** Present when a rule allows agent forwarding for this caller (engine.ts). */
  readonly agent?: ClientAgent;
  /** Terminal bytes the session may still record (shared by its channels). */
  readonly budget: { left: number; truncated: boolean };
  /** Holds an exec command for review; resolves with the outcome (absent: review blocks). */
  readonly review?: (command: string, rule: string, reason: string, approvers: readonly string[], timeoutMs: number, actionId: number, notify: (text: string) => void, channelClosed: AbortSignal) => Promise<{ approved: boolean; message: string }>;
  readonly bytes: { fromClient: number; toClient: number };
  readonly log: { warn(obj: object, msg: string): void };
}

interface Pty {
  term: string;
  cols: number;
  rows: number;
  width: number;
  height: number;
}

export function bridgeSession(ctx: ChannelContext, session: ssh2.Session): void {
  let pty: Pty | undefined;
  const env: Record<string, string> = {};
  let upstreamChannel: ssh2.ClientChannel | undefined;
  let recorder: TerminalRecorder | undefined;

  session.on('pty', (accept, _reject, info) => {
    pty = { term: info.term, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
    accept?.();
  });
  session.on('window-change', (accept, _reject, info) => {
    if (pty) Object.assign(pty, { cols: info.cols, rows: info.rows, width: info.width, height: info.height });
    upstreamChannel?.setWindow(info.rows, info.cols, info.height, info.width);
    recorder?.resize(info.cols, info.rows);
    accept?.();
  });
  session.on('env', (accept, reject, info) => {
    if (ENV_ALLOWED.test(info.key)) {
      env[info.key] = info.val;
      accept?.();
    } else reject?.();
  });
  session.on('signal', (accept, _reject, info) => {
    upstreamChannel?.signal(info.name.replace(/^SIG/, ''));
    accept?.();
  });
  // Agent forwarding: refused unless a rule allows it; allowed, the target's session asks for it
  // too when its shell or exec starts, and agentForwarding.ts relays the agent channels.
  let agentForward = false;
  session.on('auth-agent', (accept, reject) => {
    const rule = ctx.agent && allowedBy(ctx.connection.policy, ctx.identity.groups, { kind: 'forwarding', direction: 'agent' });
    try {
      const id = ctx.audit.onAction({ kind: 'forward', text: 'agent' });
      ctx.audit.onDecision(rule === undefined ? { queryId: id, verdict: 'block', rule: 'ssh.forwarding', reason: 'agent forwarding is refused unless a rule allows it' } : { queryId: id, verdict: 'allow', rule });
    } catch {
      return reject?.();
    }
    if (rule === undefined || ctx.agent === undefined) return reject?.();
    agentForward = true;
    ctx.agent.enable();
    accept?.();
  });
  // X11: refused unless a rule allows it; allowed, the request (with the client's cookie, which
  // an OpenSSH client swaps for the real one in each x11 channel) is made again on the target's
  // channel when its shell or exec starts, and forwarding.ts relays the x11 channels back.
  let x11: { single: boolean; protocol: string; cookie: string; screen: number } | undefined;
  session.on('x11', (accept, reject, info) => {
    const rule = allowedBy(ctx.connection.policy, ctx.identity.groups, { kind: 'forwarding', direction: 'x11' });
    try {
      const id = ctx.audit.onAction({ kind: 'forward', text: `x11 screen ${info.screen}` });
      ctx.audit.onDecision(rule === undefined ? { queryId: id, verdict: 'block', rule: 'ssh.forwarding', reason: 'X11 forwarding is refused unless a rule allows it' } : { queryId: id, verdict: 'allow', rule });
    } catch {
      return reject?.();
    }
    if (rule === undefined) return reject?.();
    x11 = { single: info.single, protocol: info.protocol, cookie: info.cookie, screen: info.screen };
    accept?.();
  });

  // ssh2 reads `agentForward` in shell and exec options (client.js), though its types omit it.
  const forwardAgent = (): object => (agentForward ? { agentForward: true } : {});

  session.on('shell', (accept) => {
    const client = accept();
    const id = record(ctx, client, 'shell', pty ? `shell (${pty.term} ${pty.cols}x${pty.rows})` : 'shell');
    if (id === undefined) return;
    ctx.audit.onDecision({ queryId: id, verdict: 'allow' });
    open(client, id, (cb) => ctx.upstream.shell(pty ? { term: pty.term, cols: pty.cols, rows: pty.rows, width: pty.width, height: pty.height } : false, { env, ...(x11 ? { x11 } : {}), ...forwardAgent() }, cb));
  });

  session.on('exec', (accept, _reject, info) => {
    const client = accept();
    const command = info.command;
    const id = record(ctx, client, 'exec', command);
    if (id === undefined) return;
    const verdict = judgeCommand(ctx.connection.policy, ctx.identity.groups, command);
    const run = () =>
      open(client, id, (cb) => ctx.upstream.exec(command, { env, ...(x11 ? { x11 } : {}), ...forwardAgent(), ...(pty ? { pty: { term: pty.term, cols: pty.cols, rows: pty.rows, width: pty.width, height: pty.height } } : {}) }, cb));
    if (verdict.verdict === 'allow') {
      if (!decide(ctx, client, id, { queryId: id, verdict: 'allow' })) return;
      run();
      return;
    }
    if (!decide(ctx, client, id, { queryId: id, verdict: verdict.verdict, rule: verdict.rule, reason: verdict.reason })) return;
    if (verdict.verdict === 'block' || ctx.review === undefined) {
      refuse(ctx, client, id, EXIT_BLOCKED, `sluice: blocked by rule ${verdict.rule}: ${verdict.reason}`);
      return;
    }
    const notify = (text: string) => client.stderr.write(`${text}\r\n`);
    // A client that gives up (closes the channel) cancels its review.
    const closed = new AbortController();
    client.once('close', () => closed.abort());
    ctx.review(command, verdict.rule, verdict.reason, verdict.approvers, verdict.timeoutMs, id, notify, closed.signal).then(
      (outcome) => (outcome.approved ? run() : refuse(ctx, client, id, EXIT_REVIEW_REJECTED, `sluice: ${outcome.message}`)),
      () => refuse(ctx, client, id, EXIT_REVIEW_REJECTED, 'sluice: the review could not be completed; the command was not run'),
    );
  });

  session.on('subsystem', (accept, reject, info) => {
    if (info.name !== 'sftp') {
      reject?.();
      return;
    }
    const blocked = sftpBlocked(ctx.connection.policy, ctx.identity.groups);
    let id: number;
    try {
      id = ctx.audit.onAction({ kind: 'subsystem', text: 'sftp' });
      ctx.audit.onDecision({ queryId: id, verdict: blocked ? 'block' : 'allow', ...(blocked ?? {}) });
    } catch {
      reject?.();
      return;
    }
    if (blocked) {
      reject?.();
      ctx.audit.onOutcome({ queryId: id, status: 'error', message: blocked.reason, durationMs: 0 });
      return;
    }
    const client = accept();
    open(client, id, (cb) => ctx.upstream.subsys('sftp', cb), true);
  });

  /** Opens the target's channel with `start` and relays both ways until both sides close. */
  function open(client: ssh2.ServerChannel, id: number, start: (cb: (err: Error | undefined, ch: ssh2.ClientChannel) => void) => void, sftp = false): void {
    const began = performance.now();
    start((err, up) => {
      if (err) {
        refuse(ctx, client, id, EXIT_UNKNOWN, `sluice: the target refused the request: ${err.message}`, 'error');
        return;
      }
      upstreamChannel = up;
      // `record: sessions` keeps who ran what and the refusals, not the terminal or file operations.
      const keep = ctx.connection.record === 'statements';
      const rec = sftp || !keep ? undefined : new TerminalRecorder(ctx.audit, ctx.budget, id);
      recorder = rec;
      if (rec && pty) rec.resize(pty.cols, pty.rows);
      const tap = sftp && keep ? tapSftp(ctx.audit, id) : undefined;
      let exit: { code: number } | { signal: string; dump: boolean; desc: string } | undefined;
      let sent = 0;
      relay(up, client, (d) => {
        sent += d.length;
        ctx.bytes.toClient += d.length;
        rec?.output(d);
        tap?.fromServer(d);
      });
      relay(up.stderr, client.stderr, (d) => {
        sent += d.length;
        ctx.bytes.toClient += d.length;
        rec?.output(d, 'stderr');
      });
      relay(client, up, (d) => {
        ctx.bytes.fromClient += d.length;
        rec?.input(d);
        tap?.fromClient(d);
      });
      client.on('end', () => up.end());
      up.on('exit', (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
        exit = code !== null && code !== undefined ? { code } : { signal: signal ?? 'KILL', dump: dump === true, desc: desc ?? '' };
      });
      up.on('close', () => {
        const durationMs = performance.now() - began;
        if (exit && 'code' in exit) client.exit(exit.code);
        else if (exit) client.exit(exit.signal, exit.dump, exit.desc);
        const ok = exit !== undefined && 'code' in exit && exit.code === 0;
        ctx.audit.onOutcome({ queryId: id, status: ok || (sftp && exit === undefined) ? 'ok' : 'error', ...(exit ? { code: 'code' in exit ? String(exit.code) : `SIG${exit.signal}` } : {}), durationMs, bytes: sent });
        tap?.end();
        // exit-status, then EOF, then close: the order OpenSSH clients expect.
        if (!client.writableEnded) client.end();
        client.close();
      });
      client.on('close', () => up.close());
    });
  }
}

/**
 * Relays `from`'s data to `to` after `seen` (counting, recording), with backpressure: while `to`'s
 * buffer is full, `from` is paused, so its ssh channel stops granting window to the sender instead
 * of the gateway buffering a whole transfer in memory (and collecting it as garbage).
 */
export function relay(from: NodeJS.ReadableStream, to: NodeJS.WritableStream, seen: (d: Buffer) => void): void {
  let waiting = false;
  from.on('data', (d: Buffer) => {
    seen(d);
    if (to.write(d) || waiting) return;
    waiting = true;
    from.pause();
    to.once('drain', () => {
      waiting = false;
      from.resume();
    });
  });
}

/** Records the action; on an audit failure refuses it (fail closed) and returns undefined. */
function record(ctx: ChannelContext, client: ssh2.ServerChannel, kind: string, text: string): number | undefined {
  try {
    return ctx.audit.onAction({ kind, text });
  } catch (err) {
    ctx.log.warn({ err }, 'ssh action refused: the audit store cannot record it');
    client.stderr.write('sluice: the gateway cannot record this command in its audit trail right now; it was not run\r\n');
    client.exit(EXIT_BLOCKED);
    client.end();
    return undefined;
  }
}

function decide(ctx: ChannelContext, client: ssh2.ServerChannel, id: number, d: Parameters<SshAudit['onDecision']>[0]): boolean {
  try {
    ctx.audit.onDecision(d);
    return true;
  } catch {
    refuse(ctx, client, id, EXIT_BLOCKED, 'sluice: the gateway cannot record this command in its audit trail right now; it was not run');
    return false;
  }
}

function refuse(ctx: ChannelContext, client: ssh2.ServerChannel, id: number, status: number, message: string, outcome: 'error' = 'error'): void {
  // A client that already closed the channel (e.g. gave up waiting for a review) hears nothing more.
  if (!client.destroyed && !client.writableEnded) {
    client.stderr.write(`${message}\r\n`);
    client.exit(status);
    client.end();
  }
  ctx.audit.onOutcome({ queryId: id, status: outcome, code: String(status), message, durationMs: 0 });
}
