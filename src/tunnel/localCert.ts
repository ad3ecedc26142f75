// The certificate the local listener of `sluice connect` presents to PostgreSQL clients that
// insist on TLS (sslmode=require, drivers that always start TLS). Generated once per user and
// kept in the CLI's config directory, so `sslmode=verify-full sslrootcert=FILE` keeps working
// across runs. Loopback TLS protects nothing a local user could not read anyway; it exists so
// that such clients connect at all.
import { X509Certificate, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { generate } from 'selfsigned';

/** Names the certificate is valid for: what a client on this host dials. */
export const LOCAL_CERT_NAMES = ['localhost', '127.0.0.1', '::1'] as const;
const VALID_DAYS = 825;
/** A certificate this close to expiry is replaced before it is used. */
const RENEW_BEFORE_MS = 30 * 86_400_000;
/** Key and certificate in one file, so that a reader never pairs one run's key with another's certificate. */
const PAIR_FILE = 'local-tls.pem';
/** The certificate alone: what a client passes as sslrootcert. */
export const LOCAL_CERT_FILE = 'local-tls-cert.pem';

export interface LocalCert {
  /** The file with the certificate alone (for sslrootcert). */
  certFile: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  fingerprint: string;
  context: SecureContext;
}

/**
 * Loads the per-user local certificate from `configDir`, generating it first when absent or
 * close to expiry. Two `sluice connect` starting at once may both generate: the first to link
 * its file into place wins and the other uses that one.
 */
export async function loadLocalCert(configDir: string): Promise<LocalCert> {
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  const pairFile = join(configDir, PAIR_FILE);
  let pem = readIfValid(pairFile);
  if (pem === undefined) {
    const fresh = await generatePair();
    const tmp = tempName(pairFile);
    writeFileSync(tmp, fresh, { mode: 0o600 });
    try {
      // Another run may have put a good one in place while this one generated.
      if (readIfPresent(pairFile) === undefined) linkSync(tmp, pairFile);
      // Present but expiring (or not a pair): replaced whole.
      else if (readIfValid(pairFile) === undefined) renameSync(tmp, pairFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(tmp, { force: true });
    }
    pem = readFileSync(pairFile, 'utf8');
  }
  const { cert, key } = splitPair(pem, pairFile);
  const certFile = join(configDir, LOCAL_CERT_FILE);
  // Always the same bytes for the same pair file, so concurrent writers cannot disagree.
  if (readIfPresent(certFile) !== cert) {
    const tmp = tempName(certFile);
    writeFileSync(tmp, cert, { mode: 0o600 });
    renameSync(tmp, certFile);
  }
  return { certFile, fingerprint: new X509Certificate(cert).fingerprint256, context: createSecureContext({ cert, key, minVersion: 'TLSv1.2' }) };
}

async function generatePair(): Promise<string> {
  const pems = await generate([{ name: 'commonName', value: 'sluice connect (localhost)' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + VALID_DAYS * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: LOCAL_CERT_NAMES.map((n) => (n === 'localhost' ? { type: 2 as const, value: n } : { type: 7 as const, ip: n })) },
    ],
  });
  return pems.private + pems.cert;
}

function tempName(path: string): string {
  return `${path}.${randomBytes(6).toString('hex')}.tmp`;
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The pair file's text when it holds a key and a certificate good for a while yet. */
function readIfValid(path: string): string | undefined {
  const pem = readIfPresent(path);
  if (pem === undefined) return undefined;
  try {
    const { cert } = splitPair(pem, path);
    return Date.parse(new X509Certificate(cert).validTo) - Date.now() > RENEW_BEFORE_MS ? pem : undefined;
  } catch {
    return undefined;
  }
}

function splitPair(pem: string, path: string): { cert: string; key: string } {
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\r?\n?/.exec(pem)?.[0];
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\r?\n?/.exec(pem)?.[0];
  if (key === undefined || cert === undefined) throw new Error(`${path} holds no key and certificate; delete it to have a new one generated`);
  return { cert, key };
}
