// What the gateway enforces on tunnels as a whole rather than on their bytes: how many sessions
// one identity may hold open at once, and that a service token revoked while its sessions are
// open ends them. Both are kept apart from server.ts so the rules read in one place.
import type { Logger } from 'pino';
import { SessionTermination } from './engines/types.js';
import type { Store } from './store/types.js';

/**
 * Open tunnels per identity subject, with a cap. Tunnels for a CancelRequest are counted apart,
 * with the same cap: a caller whose pool holds every session it may open must still be able to
 * cancel their statements, and the engine refuses anything but a CancelRequest on such a tunnel.
 */
export class SessionLimiter {
  private readonly open = { session: new Map<string, number>(), cancel: new Map<string, number>() };

  constructor(private readonly perIdentity: number) {}

  /**
   * Takes one of `subject`'s slots and returns its release function (idempotent), or undefined
   * when the subject already holds the maximum. Synchronous, so two tunnels arriving together
   * cannot both take the last slot.
   */
  acquire(subject: string, purpose: 'session' | 'cancel' = 'session'): (() => void) | undefined {
    const open = this.open[purpose];
    const n = open.get(subject) ?? 0;
    if (n >= this.perIdentity) return undefined;
    open.set(subject, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (open.get(subject) ?? 1) - 1;
      if (left <= 0) open.delete(subject);
      else open.set(subject, left);
    };
  }

  get limit(): number {
    return this.perIdentity;
  }
}

interface Watched {
  readonly name: string;
  readonly terminate: (why: SessionTermination) => void;
}

/**
 * Ends the open sessions of service tokens that have been revoked (or deleted) or have expired
 * since their tunnel was opened. `sluice-gateway token revoke` runs as its own process and other replicas share the
 * store, so the store is polled: every `intervalMs`, one lookup per distinct token with an open
 * session, none when there is none.
 */
export class RevocationWatch {
  private readonly sessions = new Map<string, Set<Watched>>();
  private readonly timer: NodeJS.Timeout;
  private checking = false;

  constructor(
    private readonly store: Store,
    intervalMs: number,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref();
  }

  /** Watches one session of the token whose SHA-256 is `hash`; returns the unwatch function. */
  watch(hash: string, name: string, terminate: (why: SessionTermination) => void): () => void {
    let set = this.sessions.get(hash);
    if (!set) this.sessions.set(hash, (set = new Set()));
    const entry: Watched = { name, terminate };
    set.add(entry);
    return () => {
      set.delete(entry);
      if (set.size === 0 && this.sessions.get(hash) === set) this.sessions.delete(hash);
    };
  }

  /** One pass over the watched tokens (also called by tests). */
  async check(): Promise<void> {
    if (this.checking || this.sessions.size === 0) return;
    this.checking = true;
    try {
      for (const [hash, set] of [...this.sessions]) {
        let record;
        try {
          record = await this.store.findServiceToken(hash);
        } catch (err) {
          // A store that cannot answer now is asked again next time; the audit's own health
          // check decides whether sessions may continue at all.
          this.log.warn({ err }, 'cannot check service tokens for revocation');
          return;
        }
        const expired = record?.expiresAt != null && record.expiresAt.getTime() <= Date.now();
        if (record && !record.revokedAt && !expired) continue;
        const name = [...set][0]?.name ?? 'unknown';
        // The same reasons, in the same words, as the refusal of a new request with the token.
        const reason = !record
          ? 'was revoked'
          : record.revokedAt
            ? `was revoked at ${record.revokedAt.toISOString()}`
            : `expired at ${record.expiresAt!.toISOString()}`;
        const why = new SessionTermination('credential', `terminating connection: service token "${name}" ${reason}`);
        this.log.info({ token: name, sessions: set.size }, `ending the sessions of a service token that ${reason}`);
        this.sessions.delete(hash);
        for (const s of set) s.terminate(why);
      }
    } finally {
      this.checking = false;
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
