// The dependencies a command runs with, built once per invocation (gh's "factory"). Commands take
// everything from here instead of touching `process`, the settings file or the network directly,
// so unit tests run them with buffers, a fixed clock and a fake gateway. Everything heavy (conf,
// undici, the keyring, openid-client) is imported on first use: `sluice --help` and a command
// that needs none of it start without loading them.
import type { Gateway } from './api/gateway.js';
import type { Endpoint } from './api/endpoint.js';
import type { CredentialSource } from './auth/credentials.js';
import type { PinnedIdentity } from './auth/pinnedCredentials.js';
import type { TokenStore } from './auth/tokenStore.js';
import { systemClock, withSigint } from './runtime.js';
import type { Io } from './io.js';
import type { SettingsStore } from './settings.js';

/** Where the gateway is and how to reach it: flags every networked command accepts. */
export interface GatewayFlags {
  gateway?: string;
  ca?: string;
}

export { systemClock } from './runtime.js';

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface Factory {
  readonly io: Io;
  readonly clock: Clock;
  /** The settings file (`sluice config`), opened once. */
  settings(): Promise<SettingsStore>;
  /** Which gateway and how to trust it: --gateway/--ca, then SLUICE_GATEWAY/SLUICE_CA, then settings. */
  endpoint(flags: GatewayFlags): Promise<Endpoint>;
  /** SLUICE_TOKEN, else the stored login for `endpoint` (refreshed when due). */
  credentials(endpoint: Endpoint): Promise<CredentialSource>;
  /** The gateway API bound to the endpoint and credentials for `flags`. */
  gateway(flags: GatewayFlags): Promise<Gateway>;
  /**
   * Like `gateway`, but the credential stays the identity it is now for as long as the object
   * lives (a long-running tunnel), whatever later logins in the same config directory store.
   */
  pinnedGateway(flags: GatewayFlags): Promise<Gateway & { readonly identity: PinnedIdentity }>;
  /** Keyring or 0600 file; `insecureStorage` forces the file. */
  tokenStore(opts?: { insecureStorage?: boolean }): Promise<TokenStore>;
  /**
   * Runs `fn` with a signal that aborts on the first Ctrl-C, so the command can stop cleanly
   * (cancel a poll, close a tunnel); a second Ctrl-C a moment later exits at once.
   */
  interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
}

/** The real factory: process streams and environment, the user's settings, the network. */
export function createFactory(io: Io): Factory {
  let settings: Promise<SettingsStore> | undefined;
  const stores = new Map<boolean, Promise<TokenStore>>();
  const f: Factory = {
    io,
    clock: systemClock,
    settings: () =>
      (settings ??= import('./settings.js').then((m) => m.openSettings(io))),
    async endpoint(flags) {
      const [{ resolveEndpoint }, s] = await Promise.all([import('./api/endpoint.js'), f.settings()]);
      return resolveEndpoint(io, flags, s);
    },
    async credentials(endpoint) {
      const { credentialSource } = await import('./auth/credentials.js');
      return credentialSource(io, endpoint, () => f.tokenStore());
    },
    async gateway(flags) {
      const endpoint = await f.endpoint(flags);
      const [{ bindGateway }, credentials] = await Promise.all([import('./api/gateway.js'), f.credentials(endpoint)]);
      return bindGateway(endpoint, credentials);
    },
    async pinnedGateway(flags) {
      const endpoint = await f.endpoint(flags);
      const [{ bindGateway }, { createGatewayClient }, { pinCredentials }] = await Promise.all([import('./api/gateway.js'), import('./api/client.js'), import('./auth/pinnedCredentials.js')]);
      const credentials = await pinCredentials(io, endpoint, { store: () => f.tokenStore(), whoIs: (token) => createGatewayClient(endpoint).me(token) });
      return { ...bindGateway(endpoint, credentials), identity: credentials.identity };
    },
    tokenStore(opts = {}) {
      const insecure = Boolean(opts.insecureStorage);
      let store = stores.get(insecure);
      if (!store) {
        store = Promise.all([import('./auth/tokenStore.js'), f.settings()]).then(([m, s]) => m.openTokenStore(io, s, { insecureStorage: insecure }));
        stores.set(insecure, store);
      }
      return store;
    },
    interruptible: (fn) => withSigint(fn),
  };
  return f;
}
