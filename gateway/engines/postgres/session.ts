// One client session of the PostgreSQL engine, from the client's first byte to both sockets
// closed: answer SSL/GSSENC requests with 'N', route a CancelRequest, accept the StartupMessage
// without asking for a password (the tunnel already authenticated the caller), open the gateway's
// own upstream connection, replay its startup to the client with a gateway-issued cancel key, and
// relay: client messages through ClientFlow (recorded, judged, forwarded, refused or held), target
// messages through ServerFlow (results paired with statements, refusals answered, rows masked).
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { AuditUnavailableError } from '../../audit/contract.js';
import { clientText, NAME_MAX_CHARS } from '../../clientText.js';
import { SessionTermination } from '../types.js';
import { auditRefusal, terminationSqlstate, type PgSessionContext } from './context.js';
import { TargetCatalog } from './catalog.js';
import { ClientFlow } from './clientFlow.js';
import { encodeErrorResponse } from './codec/backend.js';
import { createFrontendFramer, type PgFramer } from './codec/framer.js';
import { decodeFirstMessage, encodeTerminate } from './codec/frontend.js';
import type { FirstMessage } from './codec/frontend.js';
import { PgProtocolError } from './codec/wire.js';
import type { CancelKeyRegistry, ShutdownFanout } from './engine.js';
import { PARSE_STATE_RULE } from '../../policy/readingState.js';
import { APPLICATION_NAME_RULE } from '../../policy/applicationName.js';
import { PolicyGate } from './policyGate.js';
import { QueryTracker } from './queryTracker.js';
import { Refusals } from './refusals.js';
import { ResultMasking } from './resultMasking.js';
import { ServerFlow } from './serverFlow.js';
import { acceptStartup, forwardCancel, StartupRefusal, type ApplicationNameShown } from './startup.js';
import { upstreamApplicationName } from './startupSettings.js';
import { cancelUpstream, connectUpstream, UpstreamError } from './upstream.js';

/** How long a closing side may take to close on its own before it is destroyed. */
const CLOSE_GRACE_MS = 5_000;
/** At most this many SSLRequest/GSSENCRequest before the startup packet (libpq sends ≤ 2). */
const MAX_NEGOTIATIONS = 2;
const NO_ENCRYPTION = Buffer.from('N');

/** What the trail says of a statement the target was running when the client went away. */
export const CLIENT_GONE_NOTE = 'cancelled by the gateway: the client went away while the statement ran';
/** The session's end reason then. */
export const CLIENT_GONE_END = 'the client went away while a statement was running; the gateway cancelled it on the target and closed the connection';

type Phase = 'startup' | 'connecting' | 'relay' | 'closing';

interface Ending {
  readonly status: 'ok' | 'error';
  readonly sqlstate?: string;
  readonly message?: string;
  /** ErrorResponse (FATAL) to send the client if the client's stream is at a message boundary. */
  readonly notify?: boolean;
}

/** Runs one session; `run()` resolves when both sides are closed. */
export class PgSession {
  private phase: Phase = 'startup';
  private readonly framer: PgFramer;
  private readonly connectAbort = new AbortController();
  private tracker: QueryTracker | undefined;
  private fromClient: ClientFlow | undefined;
  private fromTarget: ServerFlow | undefined;
  private catalog: TargetCatalog | undefined;
  private upstream: Socket | undefined;
  /** The target's cancel key for this session, if it sent one. */
  private upstreamKey: { readonly pid: number; readonly secret: number } | undefined;
  private cancelKey: { readonly pid: number; readonly secret: number } | undefined;
  private negotiations = 0;
  private bytesFromClient = 0;
  private bytesToClient = 0;
  /** Reading the client is paused for these reasons (a held statement, a full target buffer). */
  private clientHeld = false;
  private clientBackpressure = false;
  private sessionStarted = false;
  private ending: Ending | undefined;
  private clientClosed = false;
  private upstreamClosed = true;
  private connecting = false;
  /** The client's own Terminate went upstream; closing must not send a second one. */
  private terminateSent = false;
  private settled = false;
  /**
   * The client went away while the target ran a statement: the target was sent a cancel, and its
   * answers are still read (for the audit) until it has finished what it was sent.
   */
  private draining = false;
  /** The target's cycles finished when the last cancel was sent (a pipelined cycle after it gets its own). */
  private cancelledAt = 0;
  private upstreamEnding = false;
  private startupTimer: NodeJS.Timeout | undefined;
  private done: () => void = () => undefined;
  private unsubscribeShutdown = (): void => undefined;

  constructor(
    private readonly client: Duplex,
    private readonly ctx: PgSessionContext,
    private readonly signal: AbortSignal,
    private readonly cancels: CancelKeyRegistry,
    private readonly shutdown: ShutdownFanout,
  ) {
    this.framer = createFrontendFramer(ctx.limits);
  }

  run(): Promise<void> {
    const finished = new Promise<void>((resolve) => (this.done = resolve));
    const c = this.client;
    c.on('data', this.onClientData);
    c.on('drain', () => {
      if (!this.fromTarget?.relay.paused) this.upstream?.resume();
    });
    c.on('end', () => this.clientLeft());
    c.on('error', (err: NodeJS.ErrnoException) => {
      this.ctx.log.debug({ code: err.code }, 'postgres client socket error');
      this.clientLeft(`client connection failed (${err.code ?? err.name})`);
    });
    c.on('close', () => {
      this.clientClosed = true;
      this.clientLeft();
      this.settle();
    });
    this.unsubscribeShutdown = this.shutdown.subscribe(this.signal, this.onAbort);
    if (this.signal.aborted) this.onAbort();
    // A client that never completes its startup packet is dropped, as PostgreSQL's
    // authentication_timeout does; nothing was audited yet, so nothing is recorded.
    this.startupTimer = setTimeout(() => this.end({ status: 'error', message: 'no startup packet in time' }), this.ctx.connectTimeoutMs);
    return finished;
  }

  private readonly onAbort = () => {
    // A shutdown does not wait for the answer to a cancel sent for a client that went away.
    if (this.draining) return this.closeUpstream();
    const why: unknown = this.signal.reason;
    if (why instanceof SessionTermination) {
      // Closing our side does not stop a statement the target is running (it notices a closed
      // client only when it next writes): cancel it, so a revoked caller's work ends now too.
      this.cancelRunningStatement();
      return this.end({ status: 'error', sqlstate: terminationSqlstate(why), message: why.message, notify: true });
    }
    this.end({ status: 'error', sqlstate: '57P01', message: 'terminating connection: the gateway is shutting down', notify: true });
  };

  private cancelRunningStatement(): void {
    if (this.phase === 'relay') this.sendCancel();
  }

  private sendCancel(): void {
    const key = this.upstreamKey;
    if (key === undefined) return;
    const { name, target } = this.ctx.connection;
    cancelUpstream({ connectionName: name, target, pid: key.pid, secret: key.secret, timeoutMs: this.ctx.connectTimeoutMs }).catch((err: unknown) =>
      this.ctx.log.warn(`cancel of the running statement not delivered: ${(err as Error).message}`),
    );
  }

  /**
   * The client's side closed (or failed) without a Terminate. If the target is running something
   * of it, the target would not notice a closed connection until it next writes, so a statement
   * would run to its end and an open transaction would wait for it: the target is sent a cancel
   * first, its answer is read for the audit trail, and then the connection is closed (which rolls
   * back an open transaction). A cancel that does not land in time is covered by the close grace.
   */
  private clientLeft(failure?: string): void {
    if (this.ending) return;
    const tracker = this.tracker;
    const running = this.phase === 'relay' && !this.terminateSent && this.upstreamKey !== undefined && tracker?.clientGone(CLIENT_GONE_NOTE, this.fromClient?.held) === true;
    if (!running || tracker === undefined) return this.end(failure === undefined ? { status: 'ok' } : { status: 'error', message: failure });
    this.ctx.log.info('postgres client went away while a statement was running: cancelling it on the target');
    this.draining = true;
    this.cancelledAt = tracker.cycles.server;
    this.end({ status: 'error', sqlstate: '08006', message: failure === undefined ? CLIENT_GONE_END : `${CLIENT_GONE_END} (${failure})` });
    this.sendCancel();
    // Nobody reads the client side any more: what the target sends is only read for the trail.
    this.upstream?.resume();
    setTimeout(() => this.closeUpstream(), CLOSE_GRACE_MS).unref();
  }

  /** While draining: close once the target has answered what it ran, cancelling each pipelined cycle it starts. */
  private drained(): void {
    const t = this.tracker;
    if (t === undefined || t.goneLeft === 0) return this.closeUpstream();
    if (t.cycles.server > this.cancelledAt) {
      this.cancelledAt = t.cycles.server;
      this.sendCancel();
    }
  }

  private readonly onClientData = (chunk: Buffer): void => {
    this.bytesFromClient += chunk.length;
    if (this.phase === 'closing' || this.phase === 'connecting') {
      if (this.phase === 'connecting') this.framer.push(chunk); // kept until the relay starts
      return;
    }
    try {
      this.framer.push(chunk);
      if (this.phase === 'startup') this.readFirstMessages();
      else this.fromClient?.pump();
    } catch (err) {
      this.fail(err);
    }
  };

  private readFirstMessages(): void {
    while (this.phase === 'startup' && this.framer.next()) {
      const m = decodeFirstMessage(this.framer.body);
      if (m.kind === 'ssl' || m.kind === 'gssenc') {
        // Bytes sent before our answer would be read in clear after a TLS switch, so PostgreSQL
        // refuses them; so does the gateway, although it never switches.
        if (++this.negotiations > MAX_NEGOTIATIONS || this.framer.buffered > 0) {
          throw new PgProtocolError('malformed', `unexpected data after ${m.kind === 'ssl' ? 'SSLRequest' : 'GSSENCRequest'}`);
        }
        this.writeClient(NO_ENCRYPTION);
        continue;
      }
      clearTimeout(this.startupTimer);
      if (this.ctx.cancelOnly === true && m.kind !== 'cancel') {
        throw new PgProtocolError('malformed', 'this tunnel was opened for a CancelRequest only (sluice-purpose: cancel)');
      }
      if (m.kind === 'cancel') {
        this.phase = 'closing';
        this.cancel(m).catch((err: unknown) => this.fail(err));
        return;
      }
      this.framer.expectTyped();
      this.start(m).catch((err: unknown) => this.fail(err));
      return;
    }
  }

  private async cancel(m: Extract<FirstMessage, { kind: 'cancel' }>): Promise<void> {
    await forwardCancel(this.cancels, m.pid, m.secret, this.ctx, this.signal);
    this.closeClient();
  }

  private async start(m: Extract<FirstMessage, { kind: 'startup' }>): Promise<void> {
    let accepted;
    try {
      accepted = acceptStartup(m, this.ctx);
    } catch (err) {
      if (!(err instanceof StartupRefusal)) throw err;
      this.ctx.log.info({ sqlstate: err.sqlstate }, `postgres session refused: ${err.message}`);
      // A refused startup is recorded too: who asked for what, and why it was refused.
      this.sessionStarted = true;
      this.ctx.audit.onSessionStart({ target: clientText(m.params.get('database') || this.ctx.connection.target.database, NAME_MAX_CHARS), clientUser: clientText(m.params.get('user') ?? '', NAME_MAX_CHARS) });
      return this.end({ status: 'error', sqlstate: err.sqlstate, message: err.message, notify: true });
    }
    this.sessionStarted = true;
    this.ctx.audit.onSessionStart(accepted.audit);
    this.phase = 'connecting';
    this.connecting = true;
    this.client.pause();
    const { target } = this.ctx.connection;
    let up;
    try {
      up = await (this.ctx.upstream ?? connectUpstream)({
        connectionName: this.ctx.connection.name,
        target,
        database: accepted.audit.target,
        parameters: accepted.upstreamParameters,
        timeoutMs: this.ctx.connectTimeoutMs,
        // end() aborts this, whether the client left or the gateway is shutting down.
        signal: this.connectAbort.signal,
      });
    } catch (err) {
      this.connecting = false;
      const e = err instanceof UpstreamError ? err : new UpstreamError('unreachable', '08006', `cannot reach the target of connection ${this.ctx.connection.name}`);
      if (!this.ending) this.ctx.log.warn({ sqlstate: e.sqlstate, code: e.code }, e.message);
      this.end({ status: 'error', sqlstate: e.sqlstate, message: e.message, notify: true });
      this.settle();
      return;
    }
    this.connecting = false;
    this.upstream = up.socket;
    this.upstreamKey = up.backendKey;
    this.upstreamClosed = false;
    this.attachUpstream(up.socket);
    if (this.ending) {
      // The client left or the gateway began shutting down while we were connecting.
      this.closeUpstream();
      return;
    }
    const key = this.cancels.issue({
      connectionName: this.ctx.connection.name,
      subject: this.ctx.identity.subject,
      target,
      ...(up.backendKey ? { upstreamKey: up.backendKey } : {}),
      cancelHeld: () => this.fromClient?.cancelHeld() ?? false,
      ...(this.ctx.keyOnlyCancel === true ? { keyOnly: true } : {}),
    });
    this.cancelKey = key;
    const started = this.startFlows(accepted.audit.target, up.parameters, accepted.settings, accepted.applicationName);
    if (started.refusal !== undefined) {
      this.ctx.log.info({ sqlstate: '42501' }, `postgres session refused: ${started.refusal}`);
      return this.end({ status: 'error', sqlstate: '42501', message: started.refusal, notify: true });
    }
    if (started.contradiction !== undefined) return this.readingContradicted(started.contradiction);
    this.writeClient(accepted.greeting(up.startupFrames, key, up.transactionStatus));
    this.ctx.log.info({ database: accepted.audit.target, serverVersion: up.parameters.get('server_version') }, 'postgres session started');
    this.phase = 'relay';
    if (up.pending.length > 0) this.onUpstreamData(up.pending);
    this.fromClient?.pump();
    if (this.phase === 'relay') this.client.resume();
  }

  /**
   * Sets up the two directions of the relay, with the policy that applies to this caller. Returns
   * why the session cannot go on when the target's startup parameters (its defaults, an ALTER
   * ROLE/DATABASE … SET, the client's own client_encoding) make it read text differently from
   * the gateway, and why the caller's policy refuses a setting given at startup (each judged as
   * the SET statement it stands for, so a rule on SET cannot be passed by the startup).
   */
  private startFlows(database: string, parameters: ReadonlyMap<string, string>, settings: ReadonlyMap<string, string>, applicationName: ApplicationNameShown): { contradiction?: string; refusal?: string } {
    const { ctx } = this;
    const policy = ctx.policy !== undefined && ctx.policy.rules.length > 0 ? ctx.policy : undefined;
    if (policy !== undefined) {
      this.catalog = new TargetCatalog({ connectionName: ctx.connection.name, target: ctx.connection.target, database, timeoutMs: ctx.connectTimeoutMs, log: ctx.log, identityName: ctx.identity.name });
    }
    const candidate = policy === undefined ? undefined : new PolicyGate(ctx.identity, policy, this.catalog, this.catalog);
    const gate = candidate !== undefined && (candidate.enforce || candidate.mask !== undefined) ? candidate : undefined;
    const refusal = gate?.startupSettingRefusal(settings);
    if (refusal !== undefined) return { refusal };
    let contradiction: string | undefined;
    for (const [name, value] of parameters) contradiction ??= gate?.parameterStatus(name, value);
    const tracker = (this.tracker = new QueryTracker(ctx.audit, undefined, true));
    const refusals = new Refusals();
    const masking = gate?.mask !== undefined && this.catalog !== undefined ? new ResultMasking(gate.mask, this.catalog) : undefined;
    const fromTarget = (this.fromTarget = new ServerFlow({
      ctx,
      tracker,
      refusals,
      emit: (b) => this.writeClient(b),
      onResume: () => {
        if (!this.client.writableNeedDrain) this.upstream?.resume();
      },
      ...(gate !== undefined ? { gate } : {}),
      ...(masking !== undefined ? { masking } : {}),
      readingContradicted: (problem) => this.readingContradicted(problem),
      applicationNameDropped: (value) => this.applicationNameDropped(value),
      applicationName,
    }));
    fromTarget.relay.onError = (err) => this.fail(err, 'target');
    this.fromClient = new ClientFlow({
      ctx,
      framer: this.framer,
      tracker,
      refusals,
      server: fromTarget,
      ...(gate !== undefined ? { gate } : {}),
      ...(this.catalog !== undefined ? { catalog: this.catalog } : {}),
      write: (b) => this.writeUpstream(b),
      pause: () => {
        this.clientHeld = true;
        this.client.pause();
      },
      resume: () => {
        this.clientHeld = false;
        if (!this.clientBackpressure && this.phase === 'relay') this.client.resume();
      },
      terminated: () => {
        this.terminateSent = true;
        this.end({ status: 'ok' });
      },
      fail: (err) => this.fail(err),
    });
    return contradiction === undefined ? {} : { contradiction };
  }

  /**
   * The target reads text in a setting the gateway cannot follow (a ParameterStatus, or its
   * startup parameters): nothing more is forwarded, the client gets a FATAL naming the setting,
   * and the session ends with that reason in the audit trail.
   */
  private readingContradicted(problem: string): void {
    this.ctx.log.warn({ rule: PARSE_STATE_RULE }, `postgres session ended: ${problem}`);
    this.end({ status: 'error', sqlstate: '0A000', message: `terminating connection: ${PARSE_STATE_RULE}: ${problem}`, notify: true });
  }

  /**
   * The target reports an application_name without the identity prefix (set by code no statement
   * showed: a function written outside the gateway, SQL built at run time): the session ends at
   * once, and with it the target's backend, so the name does not outlive the statement that set it.
   */
  private applicationNameDropped(value: string): void {
    const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
    this.ctx.log.warn({ rule: APPLICATION_NAME_RULE }, 'postgres session ended: application_name lost its identity prefix');
    this.end({ status: 'error', sqlstate: '42501', message: `terminating connection: ${APPLICATION_NAME_RULE}: the session set application_name to "${shown}", which drops the gateway's identity prefix "${upstreamApplicationName(this.ctx.identity.name, undefined)}"`, notify: true });
  }

  private attachUpstream(s: Socket): void {
    s.on('data', this.onUpstreamData);
    s.on('drain', () => {
      this.clientBackpressure = false;
      if (!this.clientHeld && this.phase === 'relay') this.client.resume();
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      this.ctx.log.warn({ code: err.code }, 'postgres target socket error');
      this.targetLost(`the connection to the target of ${this.ctx.connection.name} failed (${err.code ?? err.name})`);
    });
    const closed = `the target of connection ${this.ctx.connection.name} closed the connection`;
    s.on('end', () => this.targetLost(closed));
    s.on('close', () => {
      this.upstreamClosed = true;
      this.targetLost(closed);
      this.settle();
    });
    s.resume();
    // It may have closed in the moment between the login and these listeners.
    if (s.closed) {
      this.upstreamClosed = true;
      this.targetLost(closed);
    }
  }

  private writeUpstream(bytes: Buffer): void {
    const up = this.upstream;
    // Closing: a decision that settles now (a review, an audit commit) has nobody to go to.
    if (up === undefined || up.destroyed || this.phase === 'closing') return;
    if (!up.write(bytes)) {
      this.clientBackpressure = true;
      this.client.pause();
    }
  }

  /** Target → client, through the server flow (which writes with writeClient). */
  private readonly onUpstreamData = (chunk: Buffer): void => {
    if (this.phase !== 'relay' && !this.draining) return;
    const flow = this.fromTarget!;
    try {
      flow.relay.push(chunk);
    } catch (err) {
      if (this.draining) return this.closeUpstream();
      return this.fail(err, 'target');
    }
    if (this.draining) return this.drained();
    if (flow.relay.paused || this.client.writableNeedDrain) this.upstream!.pause();
  };

  private writeClient(bytes: Buffer): void {
    if (this.phase === 'closing') return;
    this.bytesToClient += bytes.length;
    this.client.write(bytes);
  }

  private targetLost(why: string): void {
    if (this.phase === 'closing') return;
    // A FATAL the target sent (e.g. an administrator terminated the backend) already reached the
    // client; otherwise tell it the connection failed.
    const fatal = this.fromTarget?.fatal;
    this.end(fatal ? { status: 'error', ...fatal } : { status: 'error', sqlstate: '08006', message: why, notify: true });
  }

  /** A protocol violation or an unexpected error: close the session, never the process. */
  private fail(err: unknown, side: 'client' | 'target' = 'client'): void {
    if (err instanceof PgProtocolError) {
      const message = side === 'client' ? err.message : `the target of connection ${this.ctx.connection.name} sent malformed data: ${err.message}`;
      this.ctx.log.warn({ side, code: err.code }, `postgres protocol violation: ${err.message}`);
      return this.end({ status: 'error', sqlstate: side === 'client' ? err.sqlstate : '08006', message, notify: true });
    }
    if (err instanceof AuditUnavailableError) {
      // Fail closed: nothing of the batch was forwarded. The session ends (rather than answering
      // the statement alone) because every later statement would be refused too, and the trail
      // then shows the session ending with the reason.
      const refusal = auditRefusal(err);
      this.ctx.log.error({ sqlstate: refusal.sqlstate }, refusal.message);
      return this.end({ status: 'error', ...refusal, notify: true });
    }
    this.ctx.log.error({ err }, 'postgres session failed');
    this.end({ status: 'error', sqlstate: 'XX000', message: 'internal error in the gateway', notify: true });
  }

  /** Starts closing both sides; the first reason is the one recorded. */
  private end(ending: Ending): void {
    if (this.ending) return;
    // After a target FATAL the client may hang up before the target's FIN is seen: keep the FATAL.
    const fatal = this.fromTarget?.fatal;
    this.ending = fatal && ending.status === 'ok' ? { status: 'error', ...fatal } : ending;
    this.phase = 'closing';
    clearTimeout(this.startupTimer);
    this.connectAbort.abort();
    this.fromClient?.close();
    this.catalog?.close();
    let last: Buffer | undefined;
    const atBoundary = this.fromTarget?.relay.atBoundary ?? true;
    if (ending.notify && ending.sqlstate && ending.message && atBoundary && !this.clientClosed) {
      last = encodeErrorResponse({ severity: 'FATAL', sqlstate: ending.sqlstate, message: ending.message });
      this.bytesToClient += last.length;
    }
    this.closeClient(last);
    if (!this.draining) this.closeUpstream();
    this.settle();
  }

  private closeClient(last?: Buffer): void {
    const c = this.client;
    if (c.destroyed) return;
    c.end(last);
    c.resume(); // drain whatever the client still sends, so it sees our FIN rather than a reset
    setTimeout(() => c.destroy(), CLOSE_GRACE_MS).unref();
  }

  private closeUpstream(): void {
    const up = this.upstream;
    if (!up || up.destroyed || this.upstreamEnding) return;
    this.upstreamEnding = true;
    // Once Terminate and our FIN are out there is nothing left to say, and a target busy with a
    // long statement would not close its side until the statement ends: do not wait for it.
    const destroy = () => up.destroy();
    if (this.terminateSent) up.end(destroy);
    else up.end(encodeTerminate(), destroy);
    setTimeout(destroy, CLOSE_GRACE_MS).unref();
  }

  /** Resolves `run()` once both sides are closed, after the audit has the session's end. */
  private settle(): void {
    if (this.settled || !this.clientClosed || !this.upstreamClosed || this.connecting || !this.ending) return;
    this.settled = true;
    this.unsubscribeShutdown();
    if (this.cancelKey !== undefined) this.cancels.release(this.cancelKey);
    const { status, sqlstate, message } = this.ending;
    const { bytesFromClient, bytesToClient } = this;
    try {
      this.tracker?.abandon(sqlstate, message ?? 'session ended before the result arrived');
      if (this.sessionStarted) {
        const reason = { ...(sqlstate !== undefined ? { code: sqlstate } : {}), ...(message !== undefined ? { message } : {}) };
        this.ctx.audit.onSessionEnd({ status, ...reason, bytesFromClient, bytesToClient });
      }
    } catch (err) {
      this.ctx.log.error({ err }, 'postgres session audit failed at session end');
    }
    this.done();
  }
}
