// Opens the configured store: `store: { sqlite: PATH }` or `store: { postgres: URL }`.
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { Store } from './types.js';

export interface StoreSettings {
  readonly sqlite?: string;
  readonly postgres?: string;
  /** For the PostgreSQL URL, when it carries none. */
  readonly password?: string;
}

export async function openStore(settings: StoreSettings, durability: 'process' | 'fsync' = 'process'): Promise<Store> {
  if (settings.postgres !== undefined) {
    try {
      return await openPostgresStore(settings.postgres, { durability, ...(settings.password !== undefined ? { password: settings.password } : {}) });
    } catch (err) {
      // The URL may hold a password: name the host only.
      throw new Error(`cannot open the PostgreSQL store at ${describeUrl(settings.postgres)}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (settings.sqlite === undefined) throw new Error('no store configured');
  return openSqliteStore(settings.sqlite, { durability });
}

function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return '(unparseable URL)';
  }
}
