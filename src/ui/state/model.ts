// Everything the app shows, outside React: the stores, one poller per view (only the shown view's
// list is polled, every 2 s), the reviews poller (always on, so a new review is announced whatever
// the view), the identity (every 30 s, for the token expiry) and the tunnels' stats (every second).
import type { Gateway } from '../../api/gateway.js';
import type { Clock } from '../../factory.js';
import { ConnectionsStore } from './connections.js';
import { IdentityStore } from './identity.js';
import { Poller, POLL_MAX_MS } from './poller.js';
import { ReviewsStore } from './reviews.js';
import { SessionsStore } from './sessions.js';
import { TunnelsManager, type DescribeTunnel, type Listen } from './tunnels.js';

export type ViewName = 'connections' | 'sessions' | 'reviews';
export const VIEWS: readonly ViewName[] = ['connections', 'sessions', 'reviews'];

export const IDENTITY_INTERVAL_MS = 30_000;
export const STATS_INTERVAL_MS = 1_000;

export interface UiModelOptions {
  gateway: Gateway;
  clock: Clock;
  listen?: Listen;
  /** The client command shown for an open tunnel (default: psql's, or a bare ssh one). */
  describe?: DescribeTunnel;
  /** NO_COLOR is set: components draw without colours. */
  noColor?: boolean;
}

export class UiModel {
  readonly identity: IdentityStore;
  readonly connections: ConnectionsStore;
  readonly tunnels: TunnelsManager;
  readonly sessions: SessionsStore;
  readonly reviews: ReviewsStore;
  readonly pollers: Readonly<Record<ViewName | 'identity', Poller>>;
  readonly noColor: boolean;
  readonly clock: Clock;
  #view: ViewName = 'connections';
  #stats: Poller;
  #closed = false;

  constructor(o: UiModelOptions) {
    this.clock = o.clock;
    this.noColor = Boolean(o.noColor);
    this.identity = new IdentityStore(o.gateway);
    this.connections = new ConnectionsStore(o.gateway);
    this.tunnels = new TunnelsManager(o.gateway, o.listen, o.describe);
    this.sessions = new SessionsStore(o.gateway, o.clock);
    this.reviews = new ReviewsStore(o.gateway.reviews);
    this.pollers = {
      connections: new Poller(o.clock, () => this.connections.load()),
      sessions: new Poller(o.clock, () => this.sessions.load()),
      reviews: new Poller(o.clock, () => this.reviews.load()),
      identity: new Poller(o.clock, () => this.identity.load(), IDENTITY_INTERVAL_MS, POLL_MAX_MS),
    };
    this.#stats = new Poller(o.clock, async () => this.tunnels.refreshStats(), STATS_INTERVAL_MS);
  }

  /** Whether close() was called (the app is quitting). */
  get closed(): boolean {
    return this.#closed;
  }

  get view(): ViewName {
    return this.#view;
  }

  start(): void {
    this.pollers.identity.start();
    this.pollers.reviews.start();
    this.#stats.start();
    this.pollers[this.#view].start();
  }

  /** Shows `view`: its list is polled from now on, the others' are not. */
  setView(view: ViewName): void {
    if (this.#closed) return;
    const before = this.#view;
    this.#view = view;
    if (view === 'reviews') this.reviews.dismissAnnouncement();
    if (before !== view && before !== 'reviews') void this.pollers[before].stop();
    this.pollers[view].start();
    this.pollers[view].refresh();
  }

  /** Stops every poller and closes every tunnel. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.sessions.stopReplay();
    await Promise.all([...Object.values(this.pollers).map((p) => p.stop()), this.#stats.stop()]);
    await this.tunnels.closeAll();
  }
}
