// Pre-opened upstream backends for exec: connecting and authenticating to the target (TCP, TLS,
// SCRAM, startup) is most of what a short exec waits for, so when an exec gets its backend the
// gateway opens the next one for the same (identity, credential, connection, target, database,
// startup parameters) and keeps it idle until the next exec with exactly that key takes it.
//
// What keeps this safe: a spare is never used before it is taken, and a backend is handed to one
// session only (taking removes it; a session's backend closes with the session and is never given
// back), so every exec starts on a backend in its initial state, opened with the startup parameters
// it would have sent itself. A spare that sent anything while idle (the server's FATAL on
// pg_terminate_backend), closed, or does not answer a Sync with ReadyForQuery(idle) when taken is
// closed and the exec connects afresh. A spare closes after `idleMs` unused, when the credential
// it was opened for is revoked, and when the gateway stops. The key holds a digest of the
// password, never the password.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { encodeTerminate } from './codec/frontend.js';
import { connectUpstream, type UpstreamConnection, type UpstreamOptions } from './upstream.js';

/** Sync ('S'): answered with ReadyForQuery by an idle backend, and changes nothing on it. */
const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);
/** ReadyForQuery ('Z') with transaction status idle ('I'). */
const READY_IDLE = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);
/** How long a taken spare may take to answer its Sync before the exec connects afresh. */
const PING_TIMEOUT_MS = 2_000;

/** Who a session's backend is for: a spare is only ever handed to the same owner. */
export interface SpareOwner {
  /** The identity's subject. */
  readonly subject: string;
  /** The credential the session was admitted with (a service token's hash, …), if one may be revoked. */
  readonly credential?: string;
  /** Calls `revoked` once the credential is revoked or expires; returns the unwatch function. */
  readonly watch?: (revoked: () => void) => () => void;
}

/** Why a spare was closed without serving an exec. */
export type SpareClosedReason = 'idle' | 'dead' | 'revoked' | 'closed';

interface Spare {
  readonly key: string;
  state: 'opening' | 'idle' | 'taken' | 'dropped';
  readonly abort: AbortController;
  /** Resolves with the backend (undefined when opening failed or the spare was dropped meanwhile). */
  readonly ready: Promise<UpstreamConnection | undefined>;
  conn: UpstreamConnection | undefined;
  dead: boolean;
  timer: NodeJS.Timeout | undefined;
  unwatch: () => void;
  /** Detaches the idle watchers from the socket. */
  detach: () => void;
}

export interface UpstreamSparesOptions {
  /** How long an unused spare is kept; 0 keeps none. */
  readonly idleMs: number;
  readonly log: Logger;
}

/** At most one spare backend per key; see the module comment for the rules. */
export class UpstreamSpares {
  private readonly spares = new Map<string, Spare>();
  private closed = false;

  constructor(private readonly opts: UpstreamSparesOptions) {}

  /**
   * A backend for one session of `owner`: the spare for the same key when it is alive, else a new
   * connection (opened with `opts`, as connectUpstream). Then the next spare for the key is opened
   * at once, while this session runs, so that an exec that follows straight away finds it ready
   * (unless `session` was aborted meanwhile: the gateway stops, the credential was revoked).
   * @throws UpstreamError, as connectUpstream.
   */
  async connect(owner: SpareOwner, opts: UpstreamOptions, session: AbortSignal): Promise<UpstreamConnection> {
    if (this.opts.idleMs <= 0 || this.closed) return connectUpstream(opts);
    const key = spareKey(owner, opts);
    const conn = (await this.take(key)) ?? (await connectUpstream(opts));
    if (!session.aborted) this.refill(key, owner, opts);
    return conn;
  }

  /** Closes every spare (the gateway is stopping); later connects open backends directly. */
  close(): void {
    this.closed = true;
    for (const spare of [...this.spares.values()]) this.drop(spare, 'closed');
  }

  private async take(key: string): Promise<UpstreamConnection | undefined> {
    const spare = this.spares.get(key);
    if (spare === undefined) return undefined;
    this.spares.delete(key);
    spare.state = 'taken';
    clearTimeout(spare.timer);
    spare.unwatch();
    // A spare still opening is awaited: it is as far along as a new connection would be.
    const conn = await spare.ready;
    spare.detach();
    if (conn === undefined || spare.dead || !(await alive(conn))) {
      if (conn !== undefined) this.discard(spare, conn, 'dead');
      return undefined;
    }
    this.opts.log.debug({ pid: conn.backendKey?.pid }, 'exec takes a spare backend');
    return conn;
  }

  private refill(key: string, owner: SpareOwner, opts: UpstreamOptions): void {
    if (this.closed || this.opts.idleMs <= 0) return;
    // Execs of one key running side by side: the one spare is enough.
    if (this.spares.has(key)) return;
    const abort = new AbortController();
    let resolveReady: (c: UpstreamConnection | undefined) => void = () => undefined;
    const spare: Spare = {
      key,
      state: 'opening',
      abort,
      ready: new Promise((r) => (resolveReady = r)),
      conn: undefined,
      dead: false,
      timer: undefined,
      unwatch: () => undefined,
      detach: () => undefined,
    };
    this.spares.set(key, spare);
    spare.unwatch = owner.watch?.(() => this.drop(spare, 'revoked')) ?? (() => undefined);
    connectUpstream({ ...opts, signal: abort.signal }).then(
      (conn) => {
        if (spare.state === 'dropped') {
          // Dropped while it was opening (revoked, the gateway stopping).
          close(conn);
          return resolveReady(undefined);
        }
        spare.conn = conn;
        if (spare.state === 'taken') return resolveReady(conn);
        spare.state = 'idle';
        this.watchIdle(spare, conn);
        spare.timer = setTimeout(() => this.drop(spare, 'idle'), this.opts.idleMs);
        spare.timer.unref();
        resolveReady(conn);
      },
      (err: unknown) => {
        this.opts.log.debug({ err: (err as Error).message }, 'exec spare backend not opened');
        if (this.spares.get(key) === spare) this.spares.delete(key);
        spare.unwatch();
        resolveReady(undefined);
      },
    );
  }

  /** An idle backend sends nothing unasked: any byte (a FATAL), an end or an error marks it dead. */
  private watchIdle(spare: Spare, conn: UpstreamConnection): void {
    const s = conn.socket;
    const onDead = () => {
      spare.dead = true;
      this.drop(spare, 'dead');
    };
    s.on('data', onDead);
    s.on('end', onDead);
    s.on('close', onDead);
    s.on('error', onDead);
    spare.detach = () => {
      s.off('data', onDead);
      s.off('end', onDead);
      s.off('close', onDead);
      s.off('error', onDead);
      s.pause();
    };
    if (conn.pending.length > 0 || s.destroyed) return onDead();
    s.resume();
  }

  private drop(spare: Spare, reason: SpareClosedReason): void {
    if (spare.state === 'taken' || spare.state === 'dropped') return;
    spare.state = 'dropped';
    if (this.spares.get(spare.key) === spare) this.spares.delete(spare.key);
    clearTimeout(spare.timer);
    spare.unwatch();
    spare.abort.abort();
    const conn = spare.conn;
    spare.detach();
    if (conn !== undefined) this.discard(spare, conn, reason);
  }

  private discard(spare: Spare, conn: UpstreamConnection, reason: SpareClosedReason): void {
    spare.conn = undefined;
    close(conn);
    this.opts.log.debug({ reason, pid: conn.backendKey?.pid }, 'exec spare backend closed');
  }
}

/** Everything that decides what a backend is: who, which credential, which target, which startup. */
function spareKey(owner: SpareOwner, opts: UpstreamOptions): string {
  const t = opts.target;
  const parts = [owner.subject, owner.credential ?? '', opts.connectionName, t.host, String(t.port), t.user, t.password, t.sslmode, t.ca ?? '', opts.database, ...[...opts.parameters].flat()];
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
}

function close(conn: UpstreamConnection): void {
  const s = conn.socket;
  if (s.destroyed) return;
  s.on('error', () => undefined);
  s.end(encodeTerminate(), () => s.destroy());
  setTimeout(() => s.destroy(), 1_000).unref();
}

/** One Sync round trip: an idle, living backend answers exactly ReadyForQuery(idle). */
function alive(conn: UpstreamConnection): Promise<boolean> {
  const s = conn.socket;
  if (s.destroyed || !s.writable) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    let got = Buffer.alloc(0);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      s.off('error', onClose);
      s.pause();
      resolve(ok);
    };
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < READY_IDLE.length && READY_IDLE.subarray(0, got.length).equals(got)) return;
      finish(got.equals(READY_IDLE));
    };
    const onClose = () => finish(false);
    const timer = setTimeout(() => finish(false), PING_TIMEOUT_MS);
    s.on('data', onData);
    s.on('close', onClose);
    s.on('error', onClose);
    s.write(SYNC);
    s.resume();
  });
}
