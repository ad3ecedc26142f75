// The dev IdP's interaction endpoints (`<prefix>/interaction/<uid>`): oidc-provider redirects
// here when it needs a login or a consent. Login is "type a configured user's name"; consent is
// granted automatically because the only client is our own CLI.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Provider } from 'oidc-provider';
import type { DevUser } from './idp.js';
import { errorPage, loginPage } from './idpViews.js';

export interface InteractionDeps {
  readonly provider: Provider;
  /** Path prefix the IdP is mounted under, e.g. `/dev-idp` (no trailing slash). */
  readonly prefix: string;
  readonly users: ReadonlyMap<string, DevUser>;
  readonly audience: string;
  /** Scopes the audience's resource server accepts. */
  readonly resourceScopes: ReadonlySet<string>;
}

const MAX_FORM_BYTES = 16 * 1024;

/** Writes a complete, uncached HTML response. */
export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(html),
  });
  res.end(html);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new FormTooLargeError();
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

class FormTooLargeError extends Error {
  constructor() {
    super(`form body larger than ${MAX_FORM_BYTES} bytes`);
  }
}

/**
 * Creates and saves a Grant giving `clientId` everything it asked for, for the OIDC scopes and
 * for the audience's resource server. Returns the grant id.
 */
export async function grantEverythingRequested(
  provider: Provider,
  accountId: string,
  clientId: string,
  requestedScope: string,
  audience: string,
  resourceScopes: ReadonlySet<string>,
): Promise<string> {
  const requested = requestedScope.split(' ').filter(Boolean);
  const grant = new provider.Grant({ accountId, clientId });
  grant.addOIDCScope(requested.join(' '));
  const forResource = requested.filter((s) => resourceScopes.has(s));
  if (forResource.length) grant.addResourceScope(audience, forResource.join(' '));
  return grant.save();
}

/**
 * Handles a request whose path is `<prefix>/interaction/<rest>`; `rest` is `<uid>` (GET: show the
 * login form, or auto-consent) or `<uid>/login` (POST: the login form).
 */
export async function handleInteraction(
  req: IncomingMessage,
  res: ServerResponse,
  rest: string,
  deps: InteractionDeps,
): Promise<void> {
  const [uid, action, ...extra] = rest.split('/');
  const isShow = action === undefined && req.method === 'GET';
  const isLogin = action === 'login' && req.method === 'POST';
  if (!uid || extra.length > 0 || (!isShow && !isLogin)) {
    sendHtml(res, 404, errorPage({ error: 'not_found', error_description: 'no such page' }));
    return;
  }

  const { provider } = deps;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    // SessionNotFound: no interaction cookie (another browser, or expired). Not a server error.
    sendHtml(
      res,
      400,
      errorPage({
        error: 'invalid_request',
        error_description: `${(err as Error).message}. Start the sign-in again from the CLI.`,
      }),
    );
    return;
  }
  if (details.uid !== uid) {
    sendHtml(res, 400, errorPage({ error: 'invalid_request', error_description: 'interaction mismatch' }));
    return;
  }

  const clientId = String(details.params.client_id);
  const scope = typeof details.params.scope === 'string' ? details.params.scope : 'openid';
  const loginAction = `${deps.prefix}/interaction/${uid}/login`;
  const users = [...deps.users.values()];

  if (isShow) {
    if (details.prompt.name === 'login') {
      sendHtml(res, 200, loginPage(loginAction, users));
      return;
    }
    if (details.prompt.name === 'consent' && details.session?.accountId) {
      // Only reached when a login result already exists; consent is implied for our own CLI.
      const grantId = await grantEverythingRequested(
        provider,
        details.session.accountId,
        clientId,
        scope,
        deps.audience,
        deps.resourceScopes,
      );
      await provider.interactionFinished(req, res, { consent: { grantId } });
      return;
    }
    sendHtml(res, 400, errorPage({ error: 'invalid_request', error_description: `unexpected prompt ${details.prompt.name}` }));
    return;
  }

  let form;
  try {
    form = await readForm(req);
  } catch (err) {
    if (!(err instanceof FormTooLargeError)) throw err;
    sendHtml(res, 413, errorPage({ error: 'invalid_request', error_description: err.message }));
    return;
  }
  const name = form.getAll('name').map((n) => n.trim()).find(Boolean) ?? '';
  const user = deps.users.get(name);
  if (!user) {
    const problem = name ? `Unknown user "${name}".` : 'Enter a user name.';
    sendHtml(res, 200, loginPage(loginAction, users, problem));
    return;
  }
  // Login and consent in one step: the login check in idp.ts asks for a login on every device
  // flow, so a fresh grant for exactly this user is always right.
  const grantId = await grantEverythingRequested(
    provider,
    user.name,
    clientId,
    scope,
    deps.audience,
    deps.resourceScopes,
  );
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: user.name }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}
