// Pending reviews the user may decide, newest first, polled; a review that was not there at the
// previous poll is announced (the status bar shows it whatever the view). Decisions go through the
// same API calls as `sluice reviews approve|reject`.
import type { ReviewInfo } from '../../api/contract.js';
import type { ReviewsApi } from '../../api/gateway.js';
import { messageOf, Store } from './store.js';

export interface ReviewsState {
  pending?: readonly ReviewInfo[];
  /** The newest review that arrived while the app was open, until the user has seen the list. */
  announcement?: ReviewInfo;
  /** The outcome of the last decision, for the view to show. */
  notice?: { text: string; error: boolean };
}

/** Newest request first: the order `sluice reviews` and the picker both show. */
export function newestFirst(reviews: readonly ReviewInfo[]): ReviewInfo[] {
  return [...reviews].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
}

/** Reviews the caller may decide now, newest first. */
export function decidable(reviews: readonly ReviewInfo[]): ReviewInfo[] {
  return newestFirst(reviews.filter((r) => r.status === 'pending' && r.canDecide));
}

export class ReviewsStore extends Store<ReviewsState> {
  #seen: Set<string> | undefined;

  constructor(private readonly api: ReviewsApi) {
    super({});
  }

  async load(): Promise<void> {
    const pending = decidable(await this.api.list({ all: false }));
    const seen = this.#seen;
    this.#seen = new Set(pending.map((r) => r.id));
    // The first answer is what was already waiting: only later arrivals are news.
    const arrived = seen ? pending.find((r) => !seen.has(r.id)) : undefined;
    this.update(arrived ? { pending, announcement: arrived } : { pending });
  }

  dismissAnnouncement(): void {
    if (this.getSnapshot().announcement) this.update({ announcement: undefined });
  }

  async approve(id: string, reason: string): Promise<boolean> {
    return this.#decide(id, () => this.api.approve(id, reason.trim() || undefined), (r) => `approved ${r.id}: ${r.requester.name}'s statement on ${r.connection} runs now`);
  }

  async reject(id: string, reason: string): Promise<boolean> {
    if (!reason.trim()) {
      this.update({ notice: { text: 'a reason is required to reject', error: true } });
      return false;
    }
    return this.#decide(id, () => this.api.reject(id, reason.trim()), (r) => `rejected ${r.id}: ${r.requester.name}'s statement on ${r.connection} will not run`);
  }

  async #decide(id: string, call: () => Promise<ReviewInfo>, say: (r: ReviewInfo) => string): Promise<boolean> {
    try {
      const r = await call();
      this.update({ notice: { text: say(r), error: false }, pending: (this.getSnapshot().pending ?? []).filter((p) => p.id !== id) });
      return true;
    } catch (err) {
      this.update({ notice: { text: `${id}: ${messageOf(err)}`, error: true } });
      return false;
    }
  }
}
