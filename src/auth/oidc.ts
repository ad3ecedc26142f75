// The OAuth 2.0 device authorization grant (RFC 8628) and token refresh, via openid-client.
// The issuer comes from the gateway's /v1/auth/config, so the CLI needs no IdP settings.
import * as client from 'openid-client';
import type { AuthConfig } from '../api/contract.js';
import type { Endpoint } from '../api/endpoint.js';
import { AuthError } from '../errors.js';
import { isLoopbackUrl } from '../net/loopback.js';
import type { StoredTokens } from './tokenStore.js';

/** Discovers the issuer. The gateway's own CA is trusted only for an IdP on the gateway's origin. */
export async function discoverIssuer(endpoint: Endpoint, issuer: string, clientId: string): Promise<client.Configuration> {
  const url = new URL(issuer);
  const sameOrigin = url.origin === new URL(endpoint.url).origin;
  if (url.protocol === 'http:' && !isLoopbackUrl(url)) {
    throw new AuthError(`refusing the identity provider ${issuer}: plain http is allowed only on loopback`);
  }
  const options: client.DiscoveryRequestOptions = {
    ...(sameOrigin ? { [client.customFetch]: endpoint.fetch as client.CustomFetch } : {}),
    ...(url.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
  };
  try {
    return await client.discovery(url, clientId, undefined, client.None(), options);
  } catch (err) {
    throw new AuthError(`cannot reach the identity provider ${issuer}: ${describe(err)}`);
  }
}

export interface DeviceCodePrompt {
  verificationUri: string;
  verificationUriComplete?: string;
  userCode: string;
  expiresIn: number;
}

/** Runs the whole device flow; `onPrompt` shows the code; `signal` cancels polling (Ctrl-C). */
export async function deviceLogin(
  endpoint: Endpoint,
  auth: AuthConfig,
  onPrompt: (p: DeviceCodePrompt) => void,
  signal: AbortSignal,
): Promise<StoredTokens> {
  const config = await discoverIssuer(endpoint, auth.issuer, auth.clientId);
  let device: client.DeviceAuthorizationResponse;
  try {
    device = await client.initiateDeviceAuthorization(config, { scope: auth.scopes.join(' '), ...(auth.audienceParameter ? { [auth.audienceParameter]: auth.audience } : {}) });
  } catch (err) {
    throw new AuthError(`the identity provider refused to start a device login: ${describe(err)}`);
  }
  onPrompt({
    verificationUri: device.verification_uri,
    ...(device.verification_uri_complete ? { verificationUriComplete: device.verification_uri_complete } : {}),
    userCode: device.user_code,
    expiresIn: device.expires_in,
  });
  try {
    // openid-client honours `interval` (default 5 s per RFC 8628 §3.5), `slow_down` and expiry.
    const tokens = await client.pollDeviceAuthorizationGrant(config, device, undefined, { signal });
    return toStored(tokens, auth);
  } catch (err) {
    if (signal.aborted) throw err;
    const code = (err as { error?: string }).error;
    if (code === 'expired_token') throw new AuthError('the device code expired before it was approved; run `sluice login` again');
    if (code === 'access_denied') throw new AuthError('the login was denied at the identity provider');
    throw new AuthError(`device login failed: ${describe(err)}`);
  }
}

/** Exchanges the refresh token for a new access token; throws AuthError when that is refused. */
export async function refreshTokens(endpoint: Endpoint, stored: StoredTokens): Promise<StoredTokens> {
  if (!stored.refreshToken) throw new AuthError('your session has expired and cannot be renewed; run `sluice login`');
  const config = await discoverIssuer(endpoint, stored.issuer, stored.clientId);
  try {
    const tokens = await client.refreshTokenGrant(config, stored.refreshToken);
    const next = toStored(tokens, stored);
    // Some IdPs do not rotate refresh tokens: keep the old one then.
    return { ...next, refreshToken: next.refreshToken ?? stored.refreshToken };
  } catch (err) {
    throw new AuthError(`your session could not be renewed (${describe(err)}); run \`sluice login\``);
  }
}

function toStored(tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers, auth: Pick<AuthConfig, 'issuer' | 'clientId'>): StoredTokens {
  const expiresIn = tokens.expiresIn() ?? 300;
  return {
    accessToken: tokens.access_token,
    ...(tokens.refresh_token ? { refreshToken: tokens.refresh_token } : {}),
    expiresAt: Math.floor(Date.now() / 1000) + expiresIn,
    issuer: auth.issuer,
    clientId: auth.clientId,
  };
}

function describe(err: unknown): string {
  const e = err as { error?: string; error_description?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.error) return e.error_description ? `${e.error}: ${e.error_description}` : e.error;
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `${e.message ?? 'error'} (${cause})` : (e.message ?? String(err));
}
