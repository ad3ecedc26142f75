// The bearer token for a command: SLUICE_TOKEN as given (never stored), else the stored login
// for this gateway, silently refreshed when it is about to expire. openid-client is loaded only
// when a refresh is due.
import type { Endpoint } from '../api/endpoint.js';
import { AuthError } from '../errors.js';
import type { Io } from '../io.js';
import type { TokenStore } from './tokenStore.js';

/** Refresh this long before expiry, so a token never expires in flight. */
export const REFRESH_MARGIN_SECONDS = 30;

export interface CredentialSource {
  /** A currently valid bearer token (refreshing it first if needed). */
  token(): Promise<string>;
  /** `env`: SLUICE_TOKEN (a refusal names the variable); `login`: the stored login. */
  readonly kind: 'env' | 'login';
}

export function credentialSource(io: Io, endpoint: Endpoint, store: () => Promise<TokenStore>): CredentialSource {
  const fromEnv = io.env.SLUICE_TOKEN;
  if (fromEnv) return { kind: 'env', token: async () => fromEnv };
  let inFlight: Promise<string> | undefined;
  return {
    kind: 'login',
    token() {
      // Concurrent callers (many tunnels at once) share one refresh.
      inFlight ??= current().finally(() => (inFlight = undefined));
      return inFlight;
    },
  };

  async function current(): Promise<string> {
    const tokens = await store();
    const stored = tokens.load(endpoint.url);
    if (!stored) throw new AuthError(`not logged in to ${endpoint.url}: run \`sluice login\``);
    if (stored.expiresAt - REFRESH_MARGIN_SECONDS > Date.now() / 1000) return stored.accessToken;
    const { refreshTokens } = await import('./oidc.js');
    const next = await refreshTokens(endpoint, stored);
    tokens.save(endpoint.url, next);
    return next.accessToken;
  }
}
