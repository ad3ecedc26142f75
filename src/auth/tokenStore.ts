// Where the CLI keeps its tokens, per gateway URL: the OS keyring first; a 0600 JSON file in
// the config directory where no keyring works (headless Linux, CI), and the user is told once.
// See docs/decisions.md for why @napi-rs/keyring rather than keytar.
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Entry } from '@napi-rs/keyring';
import { say, type Io } from '../io.js';
import { configDir, type SettingsStore } from '../settings.js';
import { readTokenFile, tokenFilePath } from './tokenFile.js';

export interface StoredTokens {
  accessToken: string;
  refreshToken?: string;
  /** Epoch seconds. */
  expiresAt: number;
  issuer: string;
  clientId: string;
}

export interface TokenStore {
  readonly kind: 'keyring' | 'file';
  /** Human description of where tokens go, e.g. "the OS keyring" or the file path. */
  readonly location: string;
  load(gateway: string): StoredTokens | undefined;
  save(gateway: string, tokens: StoredTokens): void;
  remove(gateway: string): boolean;
}

const SERVICE = 'sluice';

export async function openTokenStore(io: Io, settings: SettingsStore, opts: { insecureStorage?: boolean } = {}): Promise<TokenStore> {
  const file = tokenFilePath(settings);
  if (!opts.insecureStorage && keyringWorks()) return keyringStore(configDir(io));
  if (!opts.insecureStorage && !settings.get('fileStorageNoticeShown')) {
    say(io, `notice: no OS keyring is available; tokens are stored in ${file} (mode 0600)`);
    await settings.set('fileStorageNoticeShown', true);
  }
  return fileStore(file);
}

function keyringWorks(): boolean {
  try {
    // Some Linux keyrings answer reads but refuse writes (no secret service on D-Bus): only a
    // write proves the keyring can hold our tokens.
    const probe = new Entry(SERVICE, '__sluice_probe__');
    probe.setPassword('probe');
    probe.deletePassword();
    return true;
  } catch {
    return false;
  }
}

/**
 * The keyring is one per OS user, not per config directory: a SLUICE_CONFIG_DIR also names the
 * entries, so two terminals with their own config directories keep two logins (docs/cli.md).
 */
function keyringStore(dir: string | undefined): TokenStore {
  const account = (gateway: string) => (dir ? `${gateway} ${resolve(dir)}` : gateway);
  return {
    kind: 'keyring',
    location: 'the OS keyring',
    load(gateway) {
      const v = new Entry(SERVICE, account(gateway)).getPassword();
      return v ? (JSON.parse(v) as StoredTokens) : undefined;
    },
    save(gateway, tokens) {
      new Entry(SERVICE, account(gateway)).setPassword(JSON.stringify(tokens));
    },
    remove(gateway) {
      return new Entry(SERVICE, account(gateway)).deletePassword();
    },
  };
}

function fileStore(file: string): TokenStore {
  const read = () => readTokenFile(file);
  const write = (all: Record<string, StoredTokens>) => {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // Write-then-rename so a crash never leaves a half-written file; the temp file is created
    // 0600 so the tokens are never readable by others, not even briefly.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(all, null, 2), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  };
  return {
    kind: 'file',
    location: file,
    load: (gateway) => read()[gateway],
    save(gateway, tokens) {
      write({ ...read(), [gateway]: tokens });
    },
    remove(gateway) {
      const all = read();
      if (!(gateway in all)) return false;
      delete all[gateway];
      write(all);
      return true;
    },
  };
}
