// A typed client for the gateway's JSON API. Every call goes through `sendRequest`/`requestJson`
// here, so all commands report network, TLS and refusal errors the same way; responses are
// validated with the shared contract.
import type { z } from 'zod';
import { CliError } from '../errors.js';
import { authConfig, connectionInfo, connectionList, me, paths, type AuthConfig, type ConnectionInfo, type ConnectionList, type Me } from './contract.js';
import type { Endpoint } from './endpoint.js';
import { describeNetworkError, errorFromResponse } from './refusal.js';

export { describeNetworkError, errorFromResponse, NotFoundError } from './refusal.js';

export interface GatewayClient {
  authConfig(): Promise<AuthConfig>;
  me(token: string): Promise<Me>;
  connections(token: string): Promise<ConnectionList>;
  connection(token: string, name: string): Promise<ConnectionInfo>;
}

export interface RequestOptions {
  token?: string;
  /** JSON body: makes the request a POST. */
  body?: Record<string, unknown>;
}

/** Sends one request; a non-2xx answer becomes the CLI's typed error with the gateway's message. */
export async function sendRequest(endpoint: Endpoint, path: string, opts: RequestOptions = {}): Promise<Response> {
  let res: Response;
  try {
    res = await endpoint.fetch(endpoint.url + path, {
      method: opts.body ? 'POST' : 'GET',
      headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...(opts.body ? { 'content-type': 'application/json' } : {}) },
      ...(opts.body ? { body: JSON.stringify(opts.body) } : {}),
    });
  } catch (err) {
    throw new CliError(await explainNetworkError(endpoint, err));
  }
  if (!res.ok) {
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    throw errorFromResponse(res.status, body);
  }
  return res;
}

/** Sends one request and validates its JSON answer against `schema`. */
export async function requestJson<T>(endpoint: Endpoint, path: string, schema: z.ZodType<T>, opts: RequestOptions = {}): Promise<T> {
  const res = await sendRequest(endpoint, path, opts);
  let body: unknown;
  try {
    body = JSON.parse(await res.text());
  } catch {
    throw new CliError(`the gateway at ${endpoint.url} answered ${path} with a body that is not JSON (is this a Sluice gateway?)`);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new CliError(`unexpected answer from the gateway for ${path}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

export function createGatewayClient(endpoint: Endpoint): GatewayClient {
  return {
    authConfig: () => requestJson(endpoint, paths.authConfig, authConfig),
    me: (token) => requestJson(endpoint, paths.me, me, { token }),
    connections: (token) => requestJson(endpoint, paths.connections, connectionList, { token }),
    connection: (token, name) => requestJson(endpoint, paths.connection(name), connectionInfo, { token }),
  };
}

/** describeNetworkError, and when an http:// URL meets a server that hangs up, whether it speaks TLS. */
export async function explainNetworkError(endpoint: Endpoint, err: unknown): Promise<string> {
  const code = ((err as { cause?: { code?: string } }).cause ?? (err as { code?: string })).code;
  const url = new URL(endpoint.url);
  if (url.protocol === 'http:' && code === 'UND_ERR_SOCKET') {
    const { speaksTls } = await import('../net/speaksTls.js');
    if (await speaksTls(url.hostname.replace(/^\[|\]$/g, ''), Number(url.port || 80))) {
      const https = endpoint.url.replace(/^http:/, 'https:');
      return `cannot talk to the gateway at ${endpoint.url}: it speaks TLS; use ${https} (--gateway, SLUICE_GATEWAY or \`sluice config set gateway ${https}\`)`;
    }
  }
  return describeNetworkError(endpoint, err);
}
