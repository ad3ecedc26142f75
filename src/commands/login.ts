// `sluice login`: the OAuth 2.0 device-code flow against the gateway's identity provider.
// Works over SSH and on headless boxes: the code and URL go to stderr; a browser is opened
// only where a desktop session exists.
import { resolve } from 'node:path';
import { Command } from 'commander';
import { InterruptedError } from '../errors.js';
import type { Factory, GatewayFlags } from '../factory.js';
import { say, type Io } from '../io.js';
import { createProgress } from '../output/progress.js';
import { withGatewayFlags } from './flags.js';

export interface LoginOptions extends GatewayFlags {
  browser: boolean;
  insecureStorage: boolean;
}

export function defineLogin(f: Factory): Command {
  return withGatewayFlags(new Command('login'))
    .description("log in with the device-code flow of the gateway's identity provider")
    .option('--no-browser', 'do not try to open a browser')
    .option('--insecure-storage', 'store tokens in a 0600 file even if an OS keyring is available')
    .action(async (o: GatewayFlags & { browser: boolean; insecureStorage?: boolean }) => {
      await f.interruptible((signal) => runLogin({ ...o, insecureStorage: Boolean(o.insecureStorage) }, f, signal));
    });
}

export async function runLogin(opts: LoginOptions, f: Factory, signal: AbortSignal): Promise<void> {
  const { io } = f;
  const gateway = await f.gateway(opts);
  const auth = await gateway.authConfig();
  const store = await f.tokenStore({ insecureStorage: opts.insecureStorage });
  const { deviceLogin } = await import('../auth/oidc.js');

  const progress = await createProgress(io, 'waiting for approval (Ctrl-C to cancel)');
  let tokens;
  try {
    tokens = await deviceLogin(
      gateway.endpoint,
      auth,
      (p) => {
        say(io, `To sign in, open ${p.verificationUri} and enter the code ${p.userCode}`);
        if (p.verificationUriComplete) say(io, `  or open ${p.verificationUriComplete}`);
        say(io, `  (the code expires in ${Math.round(p.expiresIn / 60)} min)`);
        if (opts.browser && hasDesktop(io)) {
          void import('open').then(({ default: open }) => open(p.verificationUriComplete ?? p.verificationUri)).catch(() => undefined);
        }
        progress.start();
      },
      signal,
    );
  } catch (err) {
    progress.stop();
    if (signal.aborted) throw new InterruptedError('login cancelled');
    throw err;
  }
  progress.stop();

  const who = await gateway.me(tokens.accessToken);
  store.save(gateway.url, tokens);
  // Remember where we logged in, so later commands need no --gateway/--ca.
  const settings = await f.settings();
  if (opts.gateway || !settings.get('gateway')) await settings.set('gateway', gateway.url);
  if (opts.ca) await settings.set('ca', { ...settings.get('ca'), [gateway.url]: resolve(opts.ca) });

  say(io, `Logged in to ${gateway.url} as ${who.name}${who.email && who.email !== who.name ? ` <${who.email}>` : ''}`);
  say(io, `  groups: ${who.groups.join(', ') || '(none)'}`);
  say(io, `  token stored in ${store.location}`);
}

function hasDesktop(io: Io): boolean {
  if (process.platform === 'darwin' || process.platform === 'win32') return !io.env.SSH_CONNECTION;
  return Boolean(io.env.DISPLAY || io.env.WAYLAND_DISPLAY) && !io.env.SSH_CONNECTION;
}
