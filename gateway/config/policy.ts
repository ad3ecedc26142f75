// The configuration side of policy: where the masking key for the `hash` strategy comes from,
// compiling each connection's `policy:` with it, and the one-line summary `GET /v1/connections`
// shows. The key is an HMAC key: equal values hash equally only under the same key, so it must be
// stable across restarts (a file in the state directory, created once) and shared by replicas
// (then configure `masking.hashKey` from one secret).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compilePolicy, PolicyCompileError, type CompiledPolicy, type PolicyConfig } from '../policy/index.js';

/** Smallest key accepted (compilePolicy's own floor); a generated key has 32 bytes. */
const MIN_KEY_BYTES = 16;
/** Name of the generated key file in the state directory. */
export const MASKING_KEY_FILE = 'masking-key';

/** Where the masking key comes from, as the configuration says. */
export type MaskingKeySource = { readonly env: string } | { readonly file: string } | { readonly generatedIn: string };

/**
 * Reads the masking key, or creates the state directory's key file (32 random bytes as hex,
 * mode 0600) if it does not exist yet. Returns the key or a problem to report.
 */
export function loadMaskingKey(source: MaskingKeySource, env: NodeJS.ProcessEnv): { key: Buffer } | { problem: string } {
  if ('env' in source) {
    const v = env[source.env];
    if (v === undefined || v === '') return { problem: `environment variable ${source.env} is not set` };
    return checked(Buffer.from(v, 'utf8'), `environment variable ${source.env}`);
  }
  if ('file' in source) {
    try {
      return checked(Buffer.from(readFileSync(source.file, 'utf8').replace(/\r?\n$/, ''), 'utf8'), source.file);
    } catch (err) {
      return { problem: `cannot read ${source.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
    }
  }
  const file = join(source.generatedIn, MASKING_KEY_FILE);
  try {
    return checked(Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { problem: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
  }
  try {
    mkdirSync(source.generatedIn, { recursive: true });
    // `wx`: a second gateway starting at the same moment keeps the first one's key.
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return { problem: `cannot create ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
  }
  return loadMaskingKey(source, env);
}

function checked(key: Buffer, where: string): { key: Buffer } | { problem: string } {
  return key.length >= MIN_KEY_BYTES ? { key } : { problem: `${where} holds ${key.length} bytes; the masking key needs at least ${MIN_KEY_BYTES}` };
}

/** Whether a validated policy has a mask rule with `with: hash` (only then is a key needed). */
export function usesHashMasking(policy: PolicyConfig): boolean {
  return policy.rules.some((r) => r.mask?.with === 'hash');
}

/** compilePolicy with the error turned into a problem line. */
export function compileConnectionPolicy(policy: PolicyConfig, hashKey: Buffer | undefined): { policy: CompiledPolicy } | { problem: string } {
  try {
    return { policy: compilePolicy(policy, hashKey === undefined ? {} : { hashKey }) };
  } catch (err) {
    if (err instanceof PolicyCompileError) return { problem: err.message };
    throw err;
  }
}

/**
 * A one-line summary for people (`GET /v1/connections`): rule ids by action, with review approvers
 * and mask strategies, e.g. `blocks: no-ddl, no-file-access; reviews: writes (dba); masks: pii
 * (partial)`. Never holds a secret.
 */
export function describePolicy(policy: CompiledPolicy | undefined): string {
  const rules = policy?.rules ?? [];
  if (rules.length === 0) return 'none (statements are recorded)';
  const blocks = rules.filter((r) => r.action === 'block').map((r) => r.id);
  const reviews = rules.flatMap((r) => (r.action === 'review' ? [`${r.id} (${r.approvers.join(', ')})`] : []));
  const masks = rules.flatMap((r) => (r.action === 'mask' ? [`${r.id} (${r.strategy})`] : []));
  const parts: string[] = [];
  if (blocks.length > 0) parts.push(`blocks: ${blocks.join(', ')}`);
  if (reviews.length > 0) parts.push(`reviews: ${reviews.join(', ')}`);
  if (masks.length > 0) parts.push(`masks: ${masks.join(', ')}`);
  return parts.join('; ');
}
