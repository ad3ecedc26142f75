// `sluice login`: the OAuth 2.0 device-code flow against the gateway's identity provider.
// Works over SSH and on headless boxes: the code and URL go to stderr; a browser is opened
// only where a desktop session exists.
import { resolve } from 'node:path';
import open from 'open';
import yoctoSpinner from 'yocto-spinner';
import { createGatewayClient } from '../api/client.js';
import { resolveEndpoint } from '../api/endpoint.js';
import { deviceLogin } from '../auth/oidc.js';
import { openTokenStore } from '../auth/tokenStore.js';
import { InterruptedError } from '../errors.js';
import { say, type Io } from '../io.js';
import { openSettings } from '../settings.js';

export interface LoginOptions {
  gateway?: string;
  ca?: string;
  browser: boolean;
  insecureStorage: boolean;
}

export async function runLogin(io: Io, opts: LoginOptions, signal: AbortSignal): Promise<void> {
  const endpoint = resolveEndpoint(io, opts);
  const api = createGatewayClient(endpoint);
  const auth = await api.authConfig();
  const store = openTokenStore(io, { insecureStorage: opts.insecureStorage });

  // handleSignals off: Ctrl-C is ours to handle (cancel the poll, exit 130 with a message).
  const spinner = yoctoSpinner({ stream: io.stderr as NodeJS.WriteStream, text: 'waiting for approval (Ctrl-C to cancel)', handleSignals: false });
  let tokens;
  try {
    tokens = await deviceLogin(
      endpoint,
      auth,
      (p) => {
        say(io, `To sign in, open ${p.verificationUri} and enter the code ${p.userCode}`);
        if (p.verificationUriComplete) say(io, `  or open ${p.verificationUriComplete}`);
        say(io, `  (the code expires in ${Math.round(p.expiresIn / 60)} min)`);
        if (opts.browser && hasDesktop(io)) {
          void open(p.verificationUriComplete ?? p.verificationUri).catch(() => undefined);
        }
        spinner.start();
      },
      signal,
    );
  } catch (err) {
    spinner.stop();
    if (signal.aborted) throw new InterruptedError('login cancelled');
    throw err;
  }
  spinner.stop();

  const who = await api.me(tokens.accessToken);
  store.save(endpoint.url, tokens);
  // Remember where we logged in, so later commands need no --gateway/--ca.
  const settings = openSettings(io);
  if (opts.gateway || !settings.get('gateway')) settings.set('gateway', endpoint.url);
  if (opts.ca) settings.set('ca', { ...settings.get('ca'), [endpoint.url]: resolve(opts.ca) });

  say(io, `Logged in to ${endpoint.url} as ${who.name}${who.email && who.email !== who.name ? ` <${who.email}>` : ''}`);
  say(io, `  groups: ${who.groups.join(', ') || '(none)'}`);
  say(io, `  token stored in ${store.location}`);
}

function hasDesktop(io: Io): boolean {
  if (process.platform === 'darwin' || process.platform === 'win32') return !io.env.SSH_CONNECTION;
  return Boolean(io.env.DISPLAY || io.env.WAYLAND_DISPLAY) && !io.env.SSH_CONNECTION;
}
