// Signing keys and cookie keys of the dev IdP. An RS256 key signs ID tokens (the OIDC default)
// and an ES256 key signs the JWT access tokens the gateway verifies. With a state directory they
// are kept in one 0600 JSON file so tokens issued before a gateway restart still verify after it.
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';

export interface IdpKeys {
  /** Private JWKs in the order oidc-provider should prefer them: RS256 first, then ES256. */
  readonly jwks: { keys: JWK[] };
  /** Keys that sign oidc-provider's cookies (Koa `app.keys`). */
  readonly cookieKeys: string[];
}

/** Name of the key file inside the state directory. */
export const KEYS_FILE = 'dev-idp-keys.json';

async function privateJwk(key: KeyObject, alg: 'RS256' | 'ES256'): Promise<JWK> {
  const jwk = key.export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(jwk);
  return { ...jwk, kid, alg, use: 'sig' };
}

/** Fresh RSA-2048 and P-256 keys plus a cookie key. */
export async function generateIdpKeys(): Promise<IdpKeys> {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    jwks: {
      keys: [await privateJwk(rsa.privateKey, 'RS256'), await privateJwk(ec.privateKey, 'ES256')],
    },
    cookieKeys: [randomBytes(32).toString('base64url')],
  };
}

function isIdpKeys(value: unknown): value is IdpKeys {
  if (typeof value !== 'object' || value === null) return false;
  const { jwks, cookieKeys } = value as Partial<IdpKeys>;
  return (
    Array.isArray(jwks?.keys) &&
    jwks.keys.length > 0 &&
    Array.isArray(cookieKeys) &&
    cookieKeys.length > 0 &&
    cookieKeys.every((k) => typeof k === 'string')
  );
}

/**
 * Reads `<stateDir>/dev-idp-keys.json`, or creates it (0600, directory 0700) on first start.
 * A file that exists but is not a key set is an error, not something to overwrite silently.
 */
export async function loadOrCreateIdpKeys(stateDir: string): Promise<IdpKeys> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, KEYS_FILE);
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    const parsed: unknown = JSON.parse(text);
    if (!isIdpKeys(parsed)) {
      throw new Error(`${file}: expected { jwks: { keys: [...] }, cookieKeys: [...] }`);
    }
    await chmod(file, 0o600);
    return parsed;
  }
  const keys = await generateIdpKeys();
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await rename(tmp, file);
  return keys;
}
