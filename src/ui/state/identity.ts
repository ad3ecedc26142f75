// Who the gateway says the user is, which gateway, and when the token expires: the status bar.
import type { Me } from '../../api/contract.js';
import type { Gateway } from '../../api/gateway.js';
import { relative } from '../../commands/reviews/format.js';
import { Store } from './store.js';

export interface IdentityState {
  gateway: string;
  me?: Me;
}

export class IdentityStore extends Store<IdentityState> {
  constructor(private readonly gw: Pick<Gateway, 'me' | 'url'>) {
    super({ gateway: gw.url });
  }

  async load(): Promise<void> {
    this.update({ me: await this.gw.me() });
  }
}

/** `expires in 42m 10s`, `token expired 3m 2s ago`, or nothing when it does not expire. */
export function expiryText(me: Me | undefined, now: number): string | undefined {
  if (!me?.expiresAt) return undefined;
  const at = Date.parse(me.expiresAt);
  return at > now ? `expires in ${relative(me.expiresAt, now)}` : `token expired ${relative(me.expiresAt, now)} ago`;
}
