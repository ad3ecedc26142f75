// Which gateway to talk to and how to trust it, as plain data: resolution order --gateway,
// SLUICE_GATEWAY, `sluice config set gateway`. A self-signed gateway is trusted only through an
// explicit CA (--ca, SLUICE_CA, or the CA remembered at login); there is no "skip verification"
// switch. endpoint.ts adds the HTTP client on top; the exec fast path uses this alone.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import type { Io } from '../io.js';
import { isLoopbackUrl } from '../net/loopback.js';
import type { SettingsStore } from '../settings.js';

export interface GatewayTarget {
  /** Normalised base URL, no trailing slash. */
  readonly url: string;
  /** Absolute path of the CA file in use, if any. */
  readonly caFile?: string;
  /** The CA file's contents: the only roots a TLS gateway may chain to, when given. */
  readonly ca?: string;
}

export function normaliseGatewayUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`invalid gateway URL "${raw}": expected e.g. https://gateway.example.com:8443`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new UsageError(`invalid gateway URL "${raw}": use https://`);
  // Credentials in the URL would be sent on every request and could hide the real host.
  if (u.username !== '' || u.password !== '') throw new UsageError(`invalid gateway URL: it must not contain "user:password@"`);
  if (u.protocol === 'http:' && !isLoopbackUrl(u)) {
    throw new UsageError(
      `refusing plain http:// for ${u.host}: tokens would travel unencrypted; use https:// (http is allowed only for 127.0.0.0/8, [::1] and localhost)`,
    );
  }
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

export function resolveGatewayTarget(io: Io, flags: { gateway?: string; ca?: string }, settings: SettingsStore): GatewayTarget {
  const raw = flags.gateway ?? io.env.SLUICE_GATEWAY ?? settings.get('gateway');
  if (!raw) throw new UsageError('no gateway configured: pass --gateway URL, set SLUICE_GATEWAY, or run `sluice config set gateway URL`');
  const url = normaliseGatewayUrl(raw);
  const caFlag = flags.ca ?? io.env.SLUICE_CA;
  const caFile = caFlag ? resolve(io.cwd ?? process.cwd(), caFlag) : settings.get('ca')?.[url];
  return gatewayTarget(url, caFile);
}

/** The target for `url`, with the CA file read now (a usage error names it when it cannot be). */
export function gatewayTarget(url: string, caFile: string | undefined): GatewayTarget {
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read the CA file ${caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  return { url, ...(caFile ? { caFile } : {}), ...(ca !== undefined ? { ca } : {}) };
}
