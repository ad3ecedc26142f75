// The gateway's Ed25519 audit key: generated once at a configured path (0600), used to sign ledger
// checkpoints and exports. Auditors get the public half from `GET /v1/audit/key` (or the `.pub`
// file written beside the key) and verify exports offline with it.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { keyIdOf } from '../../src/api/auditTrail.js';

export interface AuditSigner {
  /** First 16 hex digits of SHA-256 over the public key's DER SPKI. */
  readonly keyId: string;
  readonly publicKeyPem: string;
  /** base64 Ed25519 signature of `message`. */
  sign(message: Buffer): string;
  /** The private key's file, to name it in messages. */
  readonly path?: string;
}

/** Loads the key at `path`, or creates it (and `path.pub`) when the file does not exist. */
export function loadOrCreateAuditKey(path: string, log: Pick<Logger, 'info' | 'warn'>): AuditSigner {
  let privateKey: KeyObject;
  let pem: string | undefined;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the audit key ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  if (pem === undefined) {
    const pair = generateKeyPairSync('ed25519');
    privateKey = pair.privateKey;
    mkdirSync(dirname(path), { recursive: true });
    try {
      // 'wx': never overwrite a key another process created in the meantime.
      writeFileSync(path, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateAuditKey(path, log);
      throw new Error(`cannot write the audit key ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    writeFileSync(`${path}.pub`, pair.publicKey.export({ type: 'spki', format: 'pem' }));
    log.info({ key: keyIdOf(pair.publicKey), path }, 'generated the audit signing key');
  } else {
    try {
      privateKey = createPrivateKey(pem);
    } catch (err) {
      throw new Error(`the audit key ${path} is not a PEM private key`, { cause: err });
    }
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`the audit key ${path} is a ${privateKey.asymmetricKeyType} key; it must be Ed25519`);
    if ((statSync(path).mode & 0o077) !== 0) log.warn({ path }, 'the audit key is readable by other users: chmod 600 it');
  }
  const publicKey = createPublicKey(privateKey);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  checkPublicHalf(path, publicKeyPem, keyIdOf(publicKey));
  return {
    keyId: keyIdOf(publicKey),
    publicKeyPem,
    sign: (message) => sign(null, message, privateKey).toString('base64'),
    path,
  };
}

/**
 * The `.pub` beside the key is where operators and auditors take the key from (docs/audit.md). One
 * that is not the key's public half would have them verify exports against someone else's key:
 * the gateway refuses to start rather than serve a key its own file contradicts. A missing one is
 * written again (it is derived).
 */
function checkPublicHalf(path: string, publicKeyPem: string, keyId: string): void {
  const pub = `${path}.pub`;
  let text: string;
  try {
    text = readFileSync(pub, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${pub}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    writeFileSync(pub, publicKeyPem);
    return;
  }
  let found: string;
  try {
    found = keyIdOf(text);
  } catch {
    throw new Error(`${pub} is not a PEM public key, but the public half of the audit key ${path} (key ${keyId}) belongs there: it was replaced. Restore it, or delete it and the gateway writes it again`);
  }
  if (found !== keyId) {
    throw new Error(
      `${pub} holds key ${found}, not the public half of the audit key ${path} (key ${keyId}): one of the two was replaced, and whoever takes the key from ${pub} would verify exports against the wrong key. Restore the gateway's key, or delete ${pub} and the gateway writes it again`,
    );
  }
}
