// The dev IdP end to end: a real HTTP(S) server mounting it under /dev-idp, a real device flow
// with openid-client 6, approval through its HTML pages (test/support/deviceApproval.ts) or
// programmatically, JWT access tokens verified with jose as the gateway does, refresh, and
// persistence of keys and refresh tokens across a restart.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as jose from 'jose';
import * as client from 'openid-client';
import { generate as generateCert } from 'selfsigned';
import { Agent, fetch as undiciFetch, type RequestInit as UndiciRequestInit } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createDevIdp, type DevIdp, type DevIdpOptions } from '../../gateway/dev/idp.js';
import { approveDeviceOverHttp } from '../support/deviceApproval.js';

const AUDIENCE = 'https://sluice.test';
const CLIENT_ID = 'sluice-cli';
const SCOPE = 'openid email profile offline_access';
const USERS = [
  { name: 'alice', email: 'alice@example.com', groups: ['dba', 'dev'] },
  { name: 'bob', email: 'bob@example.com', groups: ['dev'] },
];

interface Harness {
  issuer: string;
  idp: DevIdp;
  /** Replaces the IdP behind the same server (same issuer), as a gateway restart would. */
  restart(): Promise<DevIdp>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

async function startIdp(
  extra: Partial<DevIdpOptions> = {},
  tls?: { key: string; cert: string },
): Promise<Harness> {
  let idp: DevIdp | undefined;
  const route = (req: IncomingMessage, res: ServerResponse) => {
    if (idp?.handle(req, res)) return;
    res.writeHead(404).end('not found');
  };
  const server = tls ? createHttpsServer(tls, route) : createServer(route);
  const port = await listen(server);
  const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}/dev-idp`;
  const options: DevIdpOptions = { issuer, audience: AUDIENCE, clientId: CLIENT_ID, users: USERS, ...extra };
  idp = await createDevIdp(options);
  cleanups.push(async () => idp?.close());
  return {
    issuer,
    idp,
    async restart() {
      await idp?.close();
      idp = await createDevIdp(options);
      return idp;
    },
  };
}

interface TrustingFetchOptions {
  body?: unknown;
  headers?: Record<string, string> | Headers;
  method?: string;
  redirect?: 'manual';
  signal?: AbortSignal;
}

async function discover(issuer: string, fetchImpl?: client.CustomFetch): Promise<client.Configuration> {
  return client.discovery(new URL(issuer), CLIENT_ID, undefined, client.None(), {
    ...(issuer.startsWith('http:') ? { execute: [client.allowInsecureRequests] } : {}),
    ...(fetchImpl ? { [client.customFetch]: fetchImpl } : {}),
  });
}

/** Runs a device flow; `approve` plays the person (or the demo) while the CLI side polls. */
async function deviceLogin(
  config: client.Configuration,
  approve: (d: client.DeviceAuthorizationResponse) => Promise<void>,
) {
  const device = await client.initiateDeviceAuthorization(config, { scope: SCOPE });
  expect(device.interval).toBe(1);
  expect(device.user_code).toMatch(/^[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}$/);
  // Poll fast in tests; the product honours the server's interval.
  const polling = new AbortController();
  const tokens = client.pollDeviceAuthorizationGrant(config, { ...device, interval: 0.1 }, undefined, {
    signal: polling.signal,
  });
  try {
    await approve(device);
  } catch (err) {
    polling.abort();
    await tokens.catch(() => undefined);
    throw err;
  }
  return tokens;
}

async function verifyAccessToken(
  config: client.Configuration,
  token: string,
  fetchImpl?: jose.FetchImplementation,
) {
  const meta = config.serverMetadata();
  const jwks = jose.createRemoteJWKSet(new URL(meta.jwks_uri ?? ''), fetchImpl ? { [jose.customFetch]: fetchImpl } : {});
  return jose.jwtVerify(token, jwks, { issuer: meta.issuer, audience: AUDIENCE, typ: 'at+jwt' });
}

describe('dev IdP over http', () => {
  it('serves discovery with the /dev-idp prefix in every endpoint', async () => {
    const { issuer } = await startIdp();
    const res = await fetch(`${issuer}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const meta = (await res.json()) as Record<string, unknown>;
    expect(meta.issuer).toBe(issuer);
    for (const key of ['token_endpoint', 'jwks_uri', 'device_authorization_endpoint', 'revocation_endpoint']) {
      expect(String(meta[key])).toMatch(new RegExp(`^${issuer}/`));
    }
    expect(meta.grant_types_supported).toContain('urn:ietf:params:oauth:grant-type:device_code');
    const outside = await fetch(new URL('/token', issuer));
    expect(outside.status).toBe(404);
  });

  it('runs a device flow approved over HTTP and issues JWT access tokens with identity claims', async () => {
    const { issuer } = await startIdp();
    const config = await discover(issuer);
    const tokens = await deviceLogin(config, (d) => approveDeviceOverHttp(d.verification_uri_complete ?? '', 'alice'));

    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.expires_in).toBe(900);
    const { payload, protectedHeader } = await verifyAccessToken(config, tokens.access_token);
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({
      iss: issuer,
      aud: AUDIENCE,
      sub: 'alice',
      client_id: CLIENT_ID,
      email: 'alice@example.com',
      name: 'alice',
      groups: ['dba', 'dev'],
    });
    expect(tokens.claims()).toMatchObject({ sub: 'alice', email: 'alice@example.com', name: 'alice' });

    // Refresh rotates the refresh token and yields a new, valid access token.
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token ?? '');
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    const again = await verifyAccessToken(config, refreshed.access_token);
    expect(again.payload).toMatchObject({ sub: 'alice', groups: ['dba', 'dev'], email: 'alice@example.com' });

    // Reusing the rotated-out refresh token is refused (and revokes the grant).
    await expect(client.refreshTokenGrant(config, tokens.refresh_token ?? '')).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  it('approves programmatically with any user-code format, and honours groupsClaim and TTL', async () => {
    const { issuer, idp } = await startIdp({ groupsClaim: 'roles', accessTokenTtlSeconds: 3 });
    const config = await discover(issuer);
    const tokens = await deviceLogin(config, (d) =>
      idp.approveDevice(d.user_code.toLowerCase().replace('-', ' '), 'bob'),
    );
    expect(tokens.expires_in).toBe(3);
    const { payload } = await verifyAccessToken(config, tokens.access_token);
    expect(payload).toMatchObject({ sub: 'bob', roles: ['dev'], email: 'bob@example.com' });
    expect(payload.groups).toBeUndefined();
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(3);

    await expect(idp.approveDevice('BBBB-BBBB', 'bob')).rejects.toThrow(/no device authorization/);
    const other = await client.initiateDeviceAuthorization(config, { scope: SCOPE });
    await expect(idp.approveDevice(other.user_code, 'mallory')).rejects.toThrow(/unknown user/);
  });

  it('refuses an unknown user name on the login page and leaves the code pending', async () => {
    const { issuer } = await startIdp();
    const config = await discover(issuer);
    const device = await client.initiateDeviceAuthorization(config, { scope: SCOPE });
    await expect(approveDeviceOverHttp(device.verification_uri_complete ?? '', 'mallory')).rejects.toThrow(
      /login refused: .*Unknown user "mallory"/,
    );
    const poll = await fetch(config.serverMetadata().token_endpoint ?? '', {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
        device_code: device.device_code,
        client_id: CLIENT_ID,
      }),
    });
    expect(poll.status).toBe(400);
    expect(await poll.json()).toMatchObject({ error: 'authorization_pending' });
  });

  it('keeps keys and refresh tokens in stateDir across a restart', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'sluice-dev-idp-'));
    cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
    const harness = await startIdp({ stateDir });
    const config = await discover(harness.issuer);
    const tokens = await deviceLogin(config, (d) => harness.idp.approveDevice(d.user_code, 'alice'));

    expect((await stat(join(stateDir, 'dev-idp-keys.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(stateDir, 'dev-idp.sqlite'))).mode & 0o777).toBe(0o600);

    await harness.restart();
    // A fresh JWKS fetch (new key set object) still verifies the token issued before the restart.
    const { payload } = await verifyAccessToken(config, tokens.access_token);
    expect(payload.sub).toBe('alice');
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token ?? '');
    const after = await verifyAccessToken(config, refreshed.access_token);
    expect(after.payload).toMatchObject({ sub: 'alice', groups: ['dba', 'dev'] });
  });

  it('without stateDir, a restart forgets refresh tokens', async () => {
    const harness = await startIdp();
    const config = await discover(harness.issuer);
    const tokens = await deviceLogin(config, (d) => harness.idp.approveDevice(d.user_code, 'alice'));
    await harness.restart();
    await expect(client.refreshTokenGrant(config, tokens.refresh_token ?? '')).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });
});

describe('dev IdP over https with a private CA', () => {
  it('runs the device flow with openid-client trusting the CA through an undici Agent', async () => {
    const pems = await generateCert([{ name: 'commonName', value: '127.0.0.1' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
      ],
    });
    const { issuer } = await startIdp({}, { key: pems.private, cert: pems.cert });
    expect(issuer).toMatch(/^https:/);

    // Without the CA, discovery fails on the certificate.
    await expect(discover(issuer)).rejects.toThrow();

    const agent = new Agent({ connect: { ca: pems.cert } });
    cleanups.push(() => agent.close());
    // undici's own fetch, so the Agent and fetch are the same undici (Node 20's global fetch is
    // undici 6; passing it an undici 7 Agent happens to work today but is not promised).
    // One function serves openid-client ([client.customFetch]) and jose ([jose.customFetch]).
    // The casts only bridge undici's and Node's global Request/Response typings.
    const trustingFetch = (url: string, options: TrustingFetchOptions) =>
      undiciFetch(url, { ...(options as UndiciRequestInit), dispatcher: agent }) as unknown as Promise<Response>;
    const config = await discover(issuer, trustingFetch);

    const tokens = await deviceLogin(config, (d) =>
      approveDeviceOverHttp(d.verification_uri_complete ?? '', 'alice', { ca: pems.cert }),
    );
    expect(new URL(config.serverMetadata().jwks_uri ?? '').protocol).toBe('https:');
    const { payload } = await verifyAccessToken(
      config,
      tokens.access_token,
      trustingFetch,
    );
    expect(payload).toMatchObject({ sub: 'alice', groups: ['dba', 'dev'], email: 'alice@example.com' });
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token ?? '');
    expect(refreshed.access_token).toBeTruthy();
  });
});
