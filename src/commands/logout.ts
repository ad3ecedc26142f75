// `sluice logout`: forgets the stored tokens for the gateway.
import { resolveEndpoint } from '../api/endpoint.js';
import { openTokenStore } from '../auth/tokenStore.js';
import { say, type Io } from '../io.js';

export function runLogout(io: Io, opts: { gateway?: string }): void {
  const endpoint = resolveEndpoint(io, opts);
  const removed = openTokenStore(io).remove(endpoint.url);
  say(io, removed ? `Logged out of ${endpoint.url}` : `Not logged in to ${endpoint.url}; nothing to do`);
}
