// Turns a bearer credential into an Identity, or a precise refusal. Human tokens are JWTs from
// the configured OIDC issuer (verified with jose against its JWKS); automation presents a
// gateway-issued service token. Refusals name what was wrong and never echo the credential.
import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { ErrorCode } from '../../src/api/contract.js';
import type { Identity } from '../model.js';
import type { Store } from '../store/types.js';
import { hashServiceToken, SERVICE_TOKEN_PREFIX } from './serviceTokens.js';

export class AuthError extends Error {
  constructor(
    readonly status: 401 | 403,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface AuthenticatorOptions {
  issuer: string;
  audience: string;
  groupsClaim: string;
  /** Where to fetch the issuer's keys; discovered from the issuer when absent. */
  jwksUri?: string;
  store: Store;
  /** Lets the gateway reach its own embedded IdP over TLS with its self-signed CA. */
  fetch?: typeof globalThis.fetch;
}

// Asymmetric algorithms only: `none` and HMAC (which would let anyone holding the public key
// mint tokens) are rejected before any key is looked at.
const ALLOWED_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const MAX_SKEW_SECONDS = 60;

export type Authenticator = (authorization: string | undefined) => Promise<Identity>;

export function createAuthenticator(opts: AuthenticatorOptions): Authenticator {
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  const getJwks = async () => {
    if (jwks) return jwks;
    const uri = opts.jwksUri ?? (await discoverJwksUri(opts.issuer, opts.fetch ?? fetch));
    // jose caches the set and refetches it when a token names an unknown `kid` (cooldown 30 s).
    jwks = createRemoteJWKSet(new URL(uri), opts.fetch ? { [customFetch]: opts.fetch } : {});
    return jwks;
  };

  return async (authorization) => {
    if (!authorization) throw new AuthError(401, 'missing_token', 'no credentials: send "Authorization: Bearer <token>" (run `sluice login`, or set SLUICE_TOKEN)');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) throw new AuthError(401, 'malformed_token', 'the Authorization header must be "Bearer <token>"');
    const token = m[1] as string;
    if (token.startsWith(SERVICE_TOKEN_PREFIX)) return serviceIdentity(opts.store, token);
    return humanIdentity(token, await getJwks(), opts);
  };
}

async function discoverJwksUri(issuer: string, f: typeof fetch): Promise<string> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  let res: Response;
  try {
    res = await f(url);
  } catch (err) {
    throw new AuthError(401, 'unavailable', `cannot reach the identity provider at ${url}: ${(err as Error).message}`);
  }
  if (!res.ok) throw new AuthError(401, 'unavailable', `the identity provider's discovery document at ${url} answered ${res.status}`);
  const body = (await res.json()) as { jwks_uri?: unknown };
  if (typeof body.jwks_uri !== 'string') throw new AuthError(401, 'unavailable', `the discovery document at ${url} has no jwks_uri`);
  return body.jwks_uri;
}

async function serviceIdentity(store: Store, token: string): Promise<Identity> {
  const rec = await store.findServiceToken(hashServiceToken(token));
  if (!rec) throw new AuthError(401, 'invalid_signature', 'unknown service token');
  if (rec.revokedAt) throw new AuthError(401, 'token_revoked', `service token "${rec.name}" was revoked at ${rec.revokedAt.toISOString()}`);
  if (rec.expiresAt && rec.expiresAt.getTime() <= Date.now()) {
    throw new AuthError(401, 'token_expired', `service token "${rec.name}" expired at ${rec.expiresAt.toISOString()}`);
  }
  return {
    subject: `token:${rec.name}`,
    name: rec.name,
    groups: rec.groups,
    kind: 'service',
    ...(rec.expiresAt ? { expiresAt: Math.floor(rec.expiresAt.getTime() / 1000) } : {}),
  };
}

async function humanIdentity(token: string, jwks: ReturnType<typeof createRemoteJWKSet>, opts: AuthenticatorOptions): Promise<Identity> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, jwks, {
      issuer: opts.issuer,
      audience: opts.audience,
      algorithms: ALLOWED_ALGS,
      clockTolerance: MAX_SKEW_SECONDS,
      requiredClaims: ['exp', 'sub'],
    }));
  } catch (err) {
    throw mapJoseError(err);
  }
  const rawGroups = payload[opts.groupsClaim];
  const groups = Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === 'string') : [];
  const email = typeof payload.email === 'string' ? payload.email : undefined;
  const sub = payload.sub as string;
  return { subject: sub, name: email ?? sub, ...(email ? { email } : {}), groups, kind: 'human', expiresAt: payload.exp as number };
}

function mapJoseError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof joseErrors.JWTExpired) return new AuthError(401, 'token_expired', 'the access token has expired: run `sluice login`');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return new AuthError(401, 'invalid_issuer', 'the access token was issued by an issuer this gateway does not trust');
    if (err.claim === 'aud') return new AuthError(401, 'invalid_audience', 'the access token is not meant for this gateway (wrong audience)');
    if (err.claim === 'nbf') return new AuthError(401, 'token_not_yet_valid', 'the access token is not valid yet (check the clocks)');
    return new AuthError(401, 'malformed_token', `the access token is missing or has an invalid "${err.claim}" claim`);
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new AuthError(401, 'algorithm_not_allowed', 'the access token is signed with an algorithm this gateway does not accept');
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new AuthError(401, 'unknown_key', "the access token is signed with a key the issuer does not publish");
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new AuthError(401, 'invalid_signature', 'the access token signature is invalid');
  if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError)) {
    return new AuthError(401, 'unavailable', `cannot verify the access token: ${(err as Error).message}`);
  }
  return new AuthError(401, 'malformed_token', 'the access token is not a valid JWT');
}
