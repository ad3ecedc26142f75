// undici for an endpoint: the agent (tunnels) and fetch (the JSON API, the identity provider) with
// the endpoint's trust settings. A module of its own so that endpoint.ts can load it on first use:
// `sluice exec` never does (see exec.ts), and undici is the largest thing the CLI could load.
import { Agent, fetch, type Dispatcher } from 'undici';

export interface UndiciForEndpoint {
  agent: Dispatcher;
  fetch: typeof fetch;
}

/** With `ca` the gateway must chain to exactly that CA; without, to the system roots. */
export function undiciFor(ca: string | undefined): UndiciForEndpoint {
  return { agent: new Agent({ connect: ca ? { ca } : {}, keepAliveTimeout: 1_000 }), fetch };
}
