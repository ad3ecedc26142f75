// The proxy core's public surface, for the engines that speak HTTP (http, kubernetes): the
// contract and its hooks are described in types.ts.
export { createHttpProxy, type HttpProxy } from './proxy.js';
export { createUpstream, type Upstream, type UpstreamTarget } from './upstream.js';
export { forwardHeaders, headerValue, responseHeaders, type RawHeaders } from './headers.js';
export { plainResponse } from './sampler.js';
export { DEFAULT_UPGRADE_PROTOCOLS } from './upgrade.js';
export * from './types.js';
