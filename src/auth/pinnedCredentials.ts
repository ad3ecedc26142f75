// The credential of a long-running command (`sluice connect`): pinned to the identity it started
// as. The token store is shared by every terminal using the same config directory, so a `sluice
// login` as someone else elsewhere must not change who a running tunnel's new clients run as
// (they would skip the reviews the first user's policy demands). The pinned source keeps its own
// tokens in memory; when they need renewing it adopts the stored login only if that is still the
// same subject, else renews its own in memory and leaves the store (the other user's) untouched.
import type { Me } from '../api/contract.js';
import type { Endpoint } from '../api/endpoint.js';
import { AuthError } from '../errors.js';
import type { Io } from '../io.js';
import { credentialSource, type CredentialSource } from './credentials.js';
import type { StoredTokens, TokenStore } from './tokenStore.js';

/** Renew this long before expiry, so a token never expires in flight (as credentials.ts does). */
const REFRESH_MARGIN_SECONDS = 30;

export interface PinnedIdentity {
  /** The gateway's subject for the caller (a JWT `sub`, or `token:NAME` for a service token). */
  readonly subject: string;
  /** How to name the identity to a person: the email where there is one. */
  readonly label: string;
}

export interface PinnedCredentials extends CredentialSource {
  readonly identity: PinnedIdentity;
}

/** Where the credential comes from and who it belongs to (the factory's store, the gateway's /v1/me); tests replace them. */
export interface PinDeps {
  store: () => Promise<TokenStore>;
  whoIs: (token: string) => Promise<Me>;
  refresh?: (stored: StoredTokens) => Promise<StoredTokens>;
  now?: () => number;
}

/**
 * Captures the caller's credential now (SLUICE_TOKEN, else the stored login, renewed if due) and
 * asks the gateway once who it belongs to. Every later `token()` is for that same subject, or
 * fails with an AuthError naming it; it never silently switches to another stored login.
 */
export async function pinCredentials(io: Io, endpoint: Endpoint, deps: PinDeps): Promise<PinnedCredentials> {
  const { whoIs } = deps;
  const fromEnv = io.env.SLUICE_TOKEN;
  if (fromEnv) {
    const identity = describeIdentity(await whoIs(fromEnv));
    return { kind: 'env', identity, token: async () => fromEnv };
  }
  const store = await deps.store();
  const refresh = deps.refresh ?? (async (stored: StoredTokens) => (await import('./oidc.js')).refreshTokens(endpoint, stored));
  const now = deps.now ?? (() => Date.now());
  // The ordinary source does the first load (and a due renewal, written back: at this moment the
  // stored login is by definition the identity we start as).
  const first = await credentialSource(io, endpoint, async () => store).token();
  const identity = describeIdentity(await whoIs(first));
  let mine: StoredTokens = store.load(endpoint.url) ?? { accessToken: first, expiresAt: Infinity, issuer: '', clientId: '' };
  if (mine.accessToken !== first) mine = { ...mine, accessToken: first };
  const fresh = (t: StoredTokens) => t.expiresAt - REFRESH_MARGIN_SECONDS > now() / 1000;
  const isMine = (t: StoredTokens) =>
    t.issuer === mine.issuer &&
    (t.accessToken === mine.accessToken || (t.refreshToken !== undefined && t.refreshToken === mine.refreshToken) || tokenSubject(t.accessToken) === identity.subject);

  let inFlight: Promise<string> | undefined;
  return {
    kind: 'login',
    identity,
    token() {
      // Concurrent clients share one renewal.
      inFlight ??= current().finally(() => (inFlight = undefined));
      return inFlight;
    },
  };

  async function current(): Promise<string> {
    if (fresh(mine)) return mine.accessToken;
    const stored = loadQuietly(store, endpoint.url);
    if (stored && isMine(stored)) {
      // Another command of the same user may have renewed (and rotated) the login: adopt it.
      if (fresh(stored)) return (mine = stored).accessToken;
      try {
        const next = await refresh(stored);
        store.save(endpoint.url, next);
        return (mine = next).accessToken;
      } catch (err) {
        // Fall back to our own refresh token below, if it differs from the stored one.
        if (stored.refreshToken === mine.refreshToken) throw cannotKeep(identity, err);
      }
    }
    try {
      // The store holds someone else's login (or none): renew ours in memory only.
      return (mine = await refresh(mine)).accessToken;
    } catch (err) {
      throw cannotKeep(identity, err);
    }
  }
}

function cannotKeep(identity: PinnedIdentity, cause?: unknown): AuthError {
  const err = new AuthError(
    `this tunnel connects as ${identity.label}, and that login has expired and could not be renewed; ` +
      `restart \`sluice connect\` (after \`sluice login\` as ${identity.label} if needed)`,
  );
  if (cause !== undefined) err.cause = cause;
  return err;
}

function describeIdentity(me: Me): PinnedIdentity {
  return { subject: me.subject, label: me.email ?? me.name };
}

/**
 * The `sub` claim of a JWT access token, read without verifying it: it only decides whether a
 * stored login is ours to adopt; the gateway verifies every token it is given, and names its
 * caller by that same claim. Undefined for an opaque token (never adopted then, unless identical).
 */
export function tokenSubject(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}

function loadQuietly(store: TokenStore, gateway: string): StoredTokens | undefined {
  try {
    return store.load(gateway);
  } catch {
    // An unreadable store (half-edited by hand, keyring locked) is as good as someone else's.
    return undefined;
  }
}
