// The PostgreSQL engine: one instance per gateway process, one PgSession per tunnelled client.
// The engine itself only holds what outlives a session: the gateway-issued cancel keys. A client
// gets the target's real process ID (so `pg_backend_pid()` agrees with its BackendKeyData and
// `pg_cancel_backend`/`pg_terminate_backend` of that pid reach its own backend) but a cancel
// secret of the gateway's own, so it never learns the target's; since a CancelRequest arrives on
// a connection of its own, the engine maps the gateway's key back to the target and its real key.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { PostgresTarget } from '../../model.js';
import type { PgEngine, PgSessionContext } from './context.js';
import type { Logger } from 'pino';
import { PgSession } from './session.js';
import { cancelUpstream } from './upstream.js';

/** Where a cancel for one gateway-issued key must go. */
export interface CancelRoute {
  readonly connectionName: string;
  /** Identity subject of the session the key was issued to. */
  readonly subject: string;
  readonly target: PostgresTarget;
  /** The target's own key for the session, if it sent one. */
  readonly upstreamKey?: { readonly pid: number; readonly secret: number };
  /**
   * Cancels what the gateway itself holds for the session (a statement waiting for review);
   * true when there was one, and then the target is not sent the cancel (it runs nothing of it).
   */
  readonly cancelHeld?: () => boolean;
  /** The key alone cancels (SessionContext.keyOnlyCancel): see PostgresEngine.cancelByKey. */
  readonly keyOnly?: boolean;
}

interface Entry extends CancelRoute {
  readonly secret: Buffer;
  /** The key as issued: release() finds its own entry by it, even were two secrets to collide. */
  readonly key: { readonly pid: number; readonly secret: number };
}

/**
 * Gateway-issued cancel keys of live sessions. Keys are (pid, secret) pairs: the pid is the
 * target's (two connections' targets may reuse one pid), the secret the gateway's own.
 */
export class CancelKeyRegistry {
  private readonly entries = new Map<number, Entry[]>();
  private count = 0;

  /**
   * Issues a key for a session: the target's pid when it sent one (else a random positive Int32,
   * like a real PID) and a fresh secret. Release it with `release(key)` when the session ends.
   */
  issue(route: CancelRoute): { pid: number; secret: number } {
    const pid = route.upstreamKey?.pid ?? randomInt(1, 0x7fffffff);
    const secret = randomBytes(4);
    const key = { pid, secret: secret.readInt32BE(0) };
    const list = this.entries.get(pid) ?? [];
    list.push({ ...route, secret, key });
    this.entries.set(pid, list);
    this.count++;
    return key;
  }

  /** The route for a CancelRequest, or undefined when the key is unknown or the secret is wrong. */
  lookup(pid: number, secret: number): CancelRoute | undefined {
    const presented = Buffer.alloc(4);
    presented.writeInt32BE(secret | 0);
    let found: Entry | undefined;
    // Constant time per entry, so a client cannot learn a live session's secret byte by byte.
    for (const entry of this.entries.get(pid) ?? []) if (timingSafeEqual(presented, entry.secret)) found ??= entry;
    return found;
  }

  release(key: { readonly pid: number; readonly secret: number }): void {
    const list = this.entries.get(key.pid);
    if (list === undefined) return;
    const i = list.findIndex((e) => e.key === key);
    if (i < 0) return;
    list.splice(i, 1);
    this.count--;
    if (list.length === 0) this.entries.delete(key.pid);
  }

  /** Number of live keys (for tests and metrics). */
  get size(): number {
    return this.count;
  }
}

/**
 * Every session of a gateway shares its shutdown signal; one 'abort' listener per signal fans out
 * to the live sessions, instead of one listener per session (which Node warns about past 10).
 */
export class ShutdownFanout {
  private readonly subscribers = new WeakMap<AbortSignal, Set<() => void>>();

  /** Calls `onAbort` when `signal` aborts; returns the unsubscribe function. */
  subscribe(signal: AbortSignal, onAbort: () => void): () => void {
    let set = this.subscribers.get(signal);
    if (!set) {
      const subscribers = new Set<() => void>();
      set = subscribers;
      this.subscribers.set(signal, subscribers);
      signal.addEventListener('abort', () => [...subscribers].forEach((fn) => fn()), { once: true });
    }
    set.add(onAbort);
    return () => set.delete(onAbort);
  }
}

/** The PostgreSQL engine with its cross-session state exposed for tests. */
export interface PostgresEngine extends PgEngine {
  /** Cancel keys of live sessions. */
  readonly cancelKeys: CancelKeyRegistry;
  /**
   * A CancelRequest that arrived with no identity (the direct listener): forwarded only for a key
   * issued to a session opened with `keyOnlyCancel`, as PostgreSQL itself does; any other key is
   * dropped silently. Never throws.
   */
  cancelByKey(pid: number, secret: number, opts: { log: Logger; timeoutMs: number }): Promise<void>;
}

/**
 * Creates the engine that serves `type: postgres` connections. `handle()` takes over a client
 * stream that speaks the PostgreSQL frontend protocol (as libpq or any driver sends it, with
 * SSL/GSSENC requests answered 'N'), connects to the connection's target with the credential
 * the gateway holds, relays, and reports to `session.audit`. It never rejects and never throws:
 * failures end that session with an ErrorResponse and are recorded through `onSessionEnd`.
 */
export function createPostgresEngine(): PostgresEngine {
  const cancelKeys = new CancelKeyRegistry();
  const shutdown = new ShutdownFanout();
  return {
    cancelKeys,
    async cancelByKey(pid, secret, { log, timeoutMs }) {
      const route = cancelKeys.lookup(pid, secret);
      if (!route?.keyOnly) return log.debug('postgres cancel request for an unknown key dropped');
      if (route.cancelHeld?.() === true || !route.upstreamKey) return;
      try {
        await cancelUpstream({ connectionName: route.connectionName, target: route.target, pid: route.upstreamKey.pid, secret: route.upstreamKey.secret, timeoutMs });
        log.info({ connection: route.connectionName }, 'postgres cancel request forwarded');
      } catch (err) {
        log.warn({ connection: route.connectionName }, `postgres cancel request not delivered: ${(err as Error).message}`);
      }
    },
    async handle(client: Duplex, session: PgSessionContext, signal: AbortSignal): Promise<void> {
      try {
        await new PgSession(client, session, signal, cancelKeys, shutdown).run();
      } catch (err) {
        // PgSession contains its own failures; this is the last line that keeps the process up.
        session.log.error({ err }, 'postgres engine failed');
        client.destroy();
      }
    },
  };
}
