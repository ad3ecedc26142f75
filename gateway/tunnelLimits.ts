// What the gateway enforces on tunnels as a whole rather than on their bytes: how many sessions
// one identity may hold open at once, and that a credential (a service token, a direct-listener
// password) revoked while its sessions are open ends them. Both are kept apart from server.ts so the rules read in one place.
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

/** What a watched session depends on: a service token (by its hash) or a direct credential (by its id). */
export type WatchedCredential = { readonly kind: 'token'; readonly hash: string } | { readonly kind: 'direct'; readonly id: string };

/**
 * Ends the open sessions whose credential has been withdrawn since they were opened: a service
 * token revoked, deleted or expired, or a direct credential (docs/direct.md) revoked or deleted.
 * A direct credential's expiry alone ends nothing: as PostgreSQL's VALID UNTIL, it refuses new
 * logins only (docs/decisions.md says why). `sluice-gateway token revoke` runs as its own process
 * and other replicas share the store, so the store is polled: every `intervalMs`, one lookup per
 * distinct credential with an open session, none when there is none.
 */
export class RevocationWatch {
  private readonly sessions = new Map<string, { readonly credential: WatchedCredential; readonly set: Set<Watched> }>();
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

  /** Watches one session of `credential`, used by the identity `name`; returns the unwatch function. */
  watch(credential: WatchedCredential, name: string, terminate: (why: SessionTermination) => void): () => void {
    const key = credential.kind === 'token' ? `token:${credential.hash}` : `direct:${credential.id}`;
    let entry = this.sessions.get(key);
    if (!entry) this.sessions.set(key, (entry = { credential, set: new Set() }));
    const { set } = entry;
    const watched: Watched = { name, terminate };
    set.add(watched);
    return () => {
      set.delete(watched);
      if (set.size === 0 && this.sessions.get(key)?.set === set) this.sessions.delete(key);
    };
  }

  /** One pass over the watched credentials (also called by tests). */
  async check(): Promise<void> {
    if (this.checking || this.sessions.size === 0) return;
    this.checking = true;
    try {
      for (const [key, { credential, set }] of [...this.sessions]) {
        let message: string | undefined;
        try {
          message = credential.kind === 'token' ? await this.tokenWithdrawn(credential.hash, set) : await this.directWithdrawn(credential.id);
        } catch (err) {
          // A store that cannot answer now is asked again next time; the audit's own health
          // check decides whether sessions may continue at all.
          this.log.warn({ err }, 'cannot check credentials for revocation');
          return;
        }
        if (message === undefined) continue;
        const why = new SessionTermination('credential', `terminating connection: ${message}`);
        this.log.info({ sessions: set.size }, `ending the sessions of a credential: ${message}`);
        this.sessions.delete(key);
        for (const s of set) s.terminate(why);
      }
    } finally {
      this.checking = false;
    }
  }

  private async tokenWithdrawn(hash: string, set: ReadonlySet<Watched>): Promise<string | undefined> {
    const record = await this.store.findServiceToken(hash);
    const expired = record?.expiresAt != null && record.expiresAt.getTime() <= Date.now();
    if (record && !record.revokedAt && !expired) return undefined;
    const name = [...set][0]?.name ?? 'unknown';
    // The same reasons, in the same words, as the refusal of a new request with the token.
    const reason = !record ? 'was revoked' : record.revokedAt ? `was revoked at ${record.revokedAt.toISOString()}` : `expired at ${record.expiresAt!.toISOString()}`;
    return `service token "${name}" ${reason}`;
  }

  private async directWithdrawn(id: string): Promise<string | undefined> {
    const record = await this.store.findDirectCredential(id);
    // A record gone from the store (deleted a day after its expiry) can no longer show it was not
    // revoked: fail closed.
    if (!record) return `direct credential ${id} no longer exists; run \`sluice dsn NAME\` for a new one`;
    if (!record.revokedAt) return undefined;
    return `direct credential ${id} was revoked at ${record.revokedAt.toISOString()}; run \`sluice dsn ${record.connection}\` for a new one`;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
