// The upstream side of the proxy core: an undici Pool per target origin (keep-alive connections
// shared by every session on that connection) with the certificate verified against the
// configured CA, and, for protocol upgrades, a one-off Node request on its own socket (undici
// cannot hand back a non-101 answer to an upgrade, which the client must still see).
import http from 'node:http';
import https from 'node:https';
import { Pool } from 'undici';

export interface UpstreamTarget {
  /** `https://host:port` (or `http://` for a plain target); any path is ignored. */
  readonly url: string;
  /** PEM of the CA(s) the upstream's certificate must chain to; absent: the system's roots. */
  readonly ca?: string | Buffer;
  /** A client certificate the gateway presents (e.g. a Kubernetes API server's mTLS). */
  readonly clientCert?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** How long to wait for the TCP+TLS connection. */
  readonly connectTimeoutMs?: number;
}

export interface Upstream {
  readonly origin: URL;
  readonly pool: Pool;
  /** Options for a Node http(s).request to the same origin with the same trust (upgrades). */
  requestOptions(): https.RequestOptions;
  readonly secure: boolean;
  close(): Promise<void>;
}

export function createUpstream(target: UpstreamTarget): Upstream {
  const origin = new URL(target.url);
  if (origin.protocol !== 'https:' && origin.protocol !== 'http:') throw new Error(`upstream URL must be http(s): ${origin.protocol}`);
  const secure = origin.protocol === 'https:';
  const tls = secure
    ? {
        rejectUnauthorized: true,
        ...(target.ca !== undefined ? { ca: target.ca } : {}),
        ...(target.clientCert !== undefined ? { cert: target.clientCert.cert, key: target.clientCert.key } : {}),
        servername: isIp(origin.hostname) ? undefined : origin.hostname,
      }
    : {};
  const pool = new Pool(origin.origin, {
    connect: { ...tls, timeout: target.connectTimeoutMs ?? 10_000 },
    // Long bodies (downloads, watch streams) may pause for minutes; the client decides when to give up.
    bodyTimeout: 0,
    headersTimeout: 300_000,
    connections: 32,
    pipelining: 1,
  });
  return {
    origin,
    pool,
    secure,
    requestOptions: () => ({
      protocol: origin.protocol,
      hostname: origin.hostname.replace(/^\[|\]$/g, ''),
      port: origin.port === '' ? (secure ? 443 : 80) : Number(origin.port),
      agent: false,
      timeout: target.connectTimeoutMs ?? 10_000,
      ...tls,
    }),
    close: () => pool.close(),
  };
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.startsWith('[');
}

/** Node's request function for the origin's scheme. */
export function requestFunction(upstream: Upstream): typeof https.request {
  return upstream.secure ? https.request : (http.request as typeof https.request);
}
