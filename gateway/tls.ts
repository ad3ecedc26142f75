// The gateway's TLS material: an operator's cert/key, or a self-signed certificate generated
// once and kept next to the store, so clients can pin it with `--ca` across restarts.
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { generate } from 'selfsigned';

export interface TlsMaterial {
  cert: string;
  key: string;
  /** SHA-256 fingerprint, colon-separated hex, as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint: string;
  /** Set for generated certificates: the file clients pass to `--ca`. */
  certFile: string;
}

export async function loadTls(tls: { cert: string; key: string } | { selfSigned: true }, stateDir: string, hosts: string[]): Promise<TlsMaterial> {
  if ('cert' in tls) {
    const cert = readFileSync(tls.cert, 'utf8');
    return { cert, key: readFileSync(tls.key, 'utf8'), fingerprint: new X509Certificate(cert).fingerprint256, certFile: tls.cert };
  }
  const certFile = join(stateDir, 'gateway-cert.pem');
  const keyFile = join(stateDir, 'gateway-key.pem');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    mkdirSync(stateDir, { recursive: true });
    const names = [...new Set(['localhost', '127.0.0.1', '::1', ...hosts])];
    const pems = await generate([{ name: 'commonName', value: 'sluice-gateway' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      notAfterDate: new Date(Date.now() + 825 * 86_400_000),
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: names.map((n) => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })) },
      ],
    });
    writeFileSync(keyFile, pems.private, { mode: 0o600 });
    writeFileSync(certFile, pems.cert, { mode: 0o644 });
  }
  const cert = readFileSync(certFile, 'utf8');
  return { cert, key: readFileSync(keyFile, 'utf8'), fingerprint: new X509Certificate(cert).fingerprint256, certFile };
}
