// The 0600 token file (tokens.json beside the settings) that holds logins where no OS keyring
// works. Reading it needs neither the keyring's native module nor conf, so the exec agent
// (src/commands/exec/fast.ts) reads its callers' logins here; tokenStore.ts writes them.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { SettingsStore } from '../settings.js';
import type { StoredTokens } from './tokenStore.js';

export function tokenFilePath(settings: Pick<SettingsStore, 'path'>): string {
  return join(dirname(settings.path), 'tokens.json');
}

/** Every login in `file`, by gateway URL ({} when there is no file). */
export function readTokenFile(file: string): Record<string, StoredTokens> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, StoredTokens>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`cannot read the token file ${file}: ${(err as Error).message}`, { cause: err });
  }
}
