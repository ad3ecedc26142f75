// Which gateway to talk to and how to trust it (gatewayTarget.ts), with the HTTP client bound to
// that trust. A self-signed gateway is trusted only through an explicit CA; there is no "skip
// verification" switch.
import type { Dispatcher } from 'undici';
import type { UndiciForEndpoint } from './undiciAgent.js';
import type { Io } from '../io.js';
import type { SettingsStore } from '../settings.js';
import { gatewayTarget, resolveGatewayTarget, type GatewayTarget } from './gatewayTarget.js';

export interface Endpoint extends GatewayTarget {
  /**
   * The undici agent with this endpoint's trust settings, created on first use: undici is a large
   * module, and `sluice exec` (node:https, see exec.ts) starts faster without loading it.
   */
  dispatcher(): Promise<Dispatcher>;
  /** fetch bound to this endpoint's trust settings (also used for the IdP). */
  readonly fetch: typeof globalThis.fetch;
}

export { normaliseGatewayUrl } from './gatewayTarget.js';

export function resolveEndpoint(io: Io, flags: { gateway?: string; ca?: string }, settings: SettingsStore): Endpoint {
  return endpointOf(resolveGatewayTarget(io, flags, settings));
}

export function endpointFor(url: string, caFile: string | undefined): Endpoint {
  return endpointOf(gatewayTarget(url, caFile));
}

function endpointOf({ url, caFile, ca }: GatewayTarget): Endpoint {
  let undici: Promise<UndiciForEndpoint> | undefined;
  const load = () => (undici ??= import('./undiciAgent.js').then((m) => m.undiciFor(ca)));
  const boundFetch = (async (input: string | URL, init?: RequestInit) => {
    const { agent, fetch } = await load();
    return fetch(input, { ...(init as object), dispatcher: agent });
  }) as unknown as typeof globalThis.fetch;
  return { url, ...(caFile ? { caFile } : {}), ...(ca !== undefined ? { ca } : {}), dispatcher: async () => (await load()).agent, fetch: boundFetch };
}
