// The embedded development OpenID provider: oidc-provider 8 with the device authorization grant
// (RFC 8628), one public client (the Sluice CLI), JWT access tokens for the gateway's audience and
// a name-only login page. The gateway mounts it under a path prefix of its own HTTP(S) server
// (`https://host:port/dev-idp`), so the demo and the tests run a real IdP and a real flow.
// Not for production: anyone who can reach the login page can sign in as any configured user.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Provider, errors, interactionPolicy, type Configuration, type ProviderContext } from 'oidc-provider';
import { openIdpStore } from './idpAdapter.js';
import { grantEverythingRequested, handleInteraction, sendHtml } from './idpInteractions.js';
import { generateIdpKeys, loadOrCreateIdpKeys } from './idpKeys.js';
import { confirmDevicePage, errorPage, successPage, userCodeInputPage } from './idpViews.js';

export interface DevUser {
  name: string;
  email: string;
  groups: string[];
}

export interface DevIdpOptions {
  /** Issuer URL including the mount prefix, e.g. `https://127.0.0.1:8443/dev-idp`. */
  issuer: string;
  /** `aud` of the JWT access tokens (the gateway's audience). */
  audience: string;
  /** Public client id of the CLI, e.g. `sluice-cli`. */
  clientId: string;
  users: DevUser[];
  /** Claim that carries the user's groups in access and ID tokens. Default `groups`. */
  groupsClaim?: string;
  /** Access token lifetime. Default 900; tests use a few seconds to exercise silent refresh. */
  accessTokenTtlSeconds?: number;
  /**
   * `interval` sent in the device authorization response (RFC 8628 §3.2), seconds. Default 1:
   * oidc-provider sends none, and clients then wait the RFC's default 5 s between polls.
   */
  pollIntervalSeconds?: number;
  /**
   * When set, signing keys (`dev-idp-keys.json`, 0600) and grants, refresh tokens and sessions
   * (`dev-idp.sqlite`, 0600) are kept here so logins survive a restart. Otherwise all is in memory.
   */
  stateDir?: string;
  logger?: Pick<Logger, 'error' | 'warn'>;
}

export interface DevIdp {
  readonly issuer: string;
  /**
   * Serves the request if its path is under the issuer's path prefix and returns true (the
   * response is written asynchronously); returns false otherwise so the caller routes it.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /**
   * Approves the pending device authorization with this user code (any case, dashes optional) as
   * the named user, as if they had completed the pages. For tests and the demo.
   * Rejects if the code is unknown, expired or already used, or the user is not configured.
   */
  approveDevice(userCode: string, userName: string): Promise<void>;
  /** Closes the store. The caller closes its HTTP server. */
  close(): Promise<void>;
}

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** Scopes the CLI may ask for; the gateway's resource server accepts the same set. */
const SCOPES = ['openid', 'profile', 'email', 'offline_access'];
const DAY = 24 * 60 * 60;

/** oidc-provider's own user-code normalisation (upper case, no separators). */
function normalizeUserCode(input: string): string {
  return input.replace(/[a-z]/g, (c) => c.toUpperCase()).replace(/\W/g, '');
}

function validate(opts: DevIdpOptions): void {
  const url = new URL(opts.issuer);
  if (url.search || url.hash) throw new TypeError('issuer must not have a query or fragment');
  if (!opts.audience) throw new TypeError('audience is required');
  if (!opts.clientId) throw new TypeError('clientId is required');
  const names = new Set<string>();
  for (const u of opts.users) {
    if (!u.name || names.has(u.name)) throw new TypeError(`user names must be unique and non-empty: "${u.name}"`);
    names.add(u.name);
  }
  const ttl = opts.accessTokenTtlSeconds;
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0)) {
    throw new TypeError('accessTokenTtlSeconds must be a positive integer');
  }
  const interval = opts.pollIntervalSeconds;
  if (interval !== undefined && !(Number.isInteger(interval) && interval > 0)) {
    throw new TypeError('pollIntervalSeconds must be a positive integer');
  }
}

/**
 * Starts the dev IdP (keys, store, oidc-provider). Serving is up to the caller: route requests
 * to `handle()`.
 */
export async function createDevIdp(opts: DevIdpOptions): Promise<DevIdp> {
  validate(opts);
  const { issuer, audience, clientId } = opts;
  const prefix = new URL(issuer).pathname.replace(/\/+$/, '');
  const groupsClaim = opts.groupsClaim ?? 'groups';
  const accessTokenTtl = opts.accessTokenTtlSeconds ?? 900;
  const pollInterval = opts.pollIntervalSeconds ?? 1;
  const users = new Map(opts.users.map((u) => [u.name, Object.freeze({ ...u, groups: [...u.groups] })]));
  const resourceScopes = new Set(SCOPES);

  const keys = opts.stateDir ? await loadOrCreateIdpKeys(opts.stateDir) : await generateIdpKeys();
  const store = openIdpStore(opts.stateDir ? join(opts.stateDir, 'dev-idp.sqlite') : ':memory:');

  const userClaims = (u: DevUser): Record<string, unknown> => ({
    sub: u.name,
    name: u.name,
    preferred_username: u.name,
    email: u.email,
    email_verified: true,
    [groupsClaim]: [...u.groups],
  });

  // Every device sign-in asks who you are, even in a browser that is still signed in: in a demo
  // one browser approves as several people in turn.
  const policy = interactionPolicy.base();
  policy.get('login')?.checks.add(
    new interactionPolicy.Check(
      'dev_idp_every_time',
      'the dev IdP asks for a user on every sign-in',
      (ctx: ProviderContext) => !ctx.oidc.result?.login,
    ),
  );

  const configuration: Configuration = {
    adapter: (model: string) => store.adapterFor(model),
    clients: [
      {
        client_id: clientId,
        client_name: 'Sluice CLI',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: [DEVICE_CODE_GRANT, 'refresh_token'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    jwks: keys.jwks,
    cookies: { keys: keys.cookieKeys },
    scopes: SCOPES,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', groupsClaim],
    },
    // Put the scope's claims in the ID token too, so the CLI can say who is signed in.
    conformIdTokenClaims: false,
    async findAccount(_ctx, sub) {
      const user = users.get(sub);
      return user && { accountId: user.name, claims: () => userClaims(user) };
    },
    // The gateway reads identity from the access token only.
    async extraTokenClaims(_ctx, token) {
      const user = token.kind === 'AccessToken' && token.accountId ? users.get(token.accountId) : undefined;
      if (!user) return undefined;
      return { name: user.name, email: user.email, [groupsClaim]: [...user.groups] };
    },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        async userCodeInputSource(ctx: ProviderContext, form: string, _out: unknown, err?: Error & { userCode?: string }) {
          let problem: string | undefined;
          if (err?.userCode || err?.name === 'NoCodeError') problem = 'That code is not valid. Try again.';
          else if (err?.name === 'AbortedError') problem = 'The sign-in was aborted.';
          else if (err) problem = 'The request could not be processed. Try again.';
          ctx.type = 'html';
          ctx.body = userCodeInputPage(form, problem);
        },
        async userCodeConfirmSource(ctx: ProviderContext, form: string, client: { clientName?: string; clientId: string }, _info: unknown, userCode: string) {
          ctx.type = 'html';
          ctx.body = confirmDevicePage(form, client.clientName ?? client.clientId, userCode);
        },
        async successSource(ctx: ProviderContext) {
          const client = ctx.oidc.client;
          ctx.type = 'html';
          ctx.body = successPage(client?.clientName ?? client?.clientId ?? 'The CLI');
        },
      },
      resourceIndicators: {
        enabled: true,
        // The token request needs no `resource` parameter: the one audience is the default and
        // refresh reuses the granted resource. Without these, access tokens are silently opaque.
        defaultResource: async () => audience,
        useGrantedResource: async () => true,
        async getResourceServerInfo(_ctx: ProviderContext, indicator: string) {
          if (indicator !== audience) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          return {
            audience,
            scope: SCOPES.join(' '),
            accessTokenFormat: 'jwt',
            accessTokenTTL: accessTokenTtl,
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    interactions: {
      policy,
      url: async (_ctx: ProviderContext, interaction: { uid: string }) => `${prefix}/interaction/${interaction.uid}`,
    },
    // Rotate on every use; a reused refresh token revokes the whole grant (oidc-provider default).
    rotateRefreshToken: true,
    ttl: {
      AccessToken: accessTokenTtl,
      IdToken: 60 * 60,
      DeviceCode: 10 * 60,
      Interaction: 60 * 60,
      Session: 14 * DAY,
      RefreshToken: 14 * DAY,
      Grant: 30 * DAY,
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = errorPage(out);
    },
  };

  const provider = new Provider(issuer, configuration);

  // oidc-provider has no setting for the device response's `interval`; add it on the way out.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'device_authorization' && ctx.status === 200 && typeof ctx.body === 'object' && ctx.body) {
      (ctx.body as Record<string, unknown>).interval = pollInterval;
    }
  });
  provider.on('server_error', (_ctx, err) => opts.logger?.error({ err }, 'dev IdP: server error'));

  const app = provider.callback();
  const deps = { provider, prefix, users, audience, resourceScopes };
  let closed = false;

  const fail = (res: ServerResponse) => (err: unknown) => {
    opts.logger?.error({ err }, 'dev IdP: request failed');
    if (!res.headersSent) sendHtml(res, 500, errorPage({ error: 'server_error', error_description: 'internal error' }));
    else res.destroy();
  };

  return {
    issuer,

    handle(req, res) {
      const rawUrl = req.url ?? '/';
      const q = rawUrl.indexOf('?');
      const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
      if (prefix !== '' && path !== prefix && !path.startsWith(`${prefix}/`)) return false;
      if (closed) {
        sendHtml(res, 503, errorPage({ error: 'temporarily_unavailable', error_description: 'the dev IdP is closed' }));
        return true;
      }
      const rest = path.slice(prefix.length) || '/';
      if (rest.startsWith('/interaction/')) {
        handleInteraction(req, res, rest.slice('/interaction/'.length), deps).catch(fail(res));
        return true;
      }
      // Mounting: oidc-provider routes on paths without the prefix and builds its URLs from
      // `originalUrl` minus `url` (or `baseUrl`), the way Express sub-apps present a request.
      Object.assign(req, { originalUrl: rawUrl, baseUrl: prefix });
      req.url = rest + (q === -1 ? '' : rawUrl.slice(q));
      app(req, res).catch(fail(res));
      return true;
    },

    async approveDevice(userCode, userName) {
      const user = users.get(userName);
      if (!user) throw new Error(`dev IdP: unknown user "${userName}"`);
      const code = await provider.DeviceCode.findByUserCode(normalizeUserCode(userCode), { ignoreExpiration: true });
      if (!code) throw new Error(`dev IdP: no device authorization with user code ${userCode}`);
      if (code.isExpired) throw new Error(`dev IdP: user code ${userCode} has expired`);
      if (code.accountId || code.error) throw new Error(`dev IdP: user code ${userCode} was already used`);
      const scope = code.params.scope ?? 'openid';
      const grantId = await grantEverythingRequested(provider, user.name, code.clientId, scope, audience, resourceScopes);
      Object.assign(code, {
        accountId: user.name,
        grantId,
        authTime: Math.floor(Date.now() / 1000),
        scope,
        resource: audience,
      });
      await code.save();
    },

    async close() {
      if (closed) return;
      closed = true;
      store.close();
    },
  };
}
