// Persistent CLI settings (`sluice config set …`) via `conf`, in a 0600 file under the user's
// config directory. SLUICE_CONFIG_DIR moves it (tests, multiple identities on one host).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from './errors.js';
import type { Io } from './io.js';

export interface Settings {
  gateway?: string;
  /** CA bundles to trust per gateway URL, remembered from `login --ca`. */
  ca?: Record<string, string>;
  /** Set once the user has been told that tokens are stored in a file. */
  fileStorageNoticeShown?: boolean;
}

/** What commands need of the settings file; the factory gives them one, tests a Map-backed fake. */
export interface SettingsStore {
  /** The settings file (tokens.json lives beside it when no keyring works). */
  readonly path: string;
  get<K extends keyof Settings>(key: K): Settings[K] | undefined;
  /** Written atomically, mode 0600 (by conf, loaded on the first write). */
  set<K extends keyof Settings>(key: K, value: NonNullable<Settings[K]>): Promise<void>;
}

export const settingKeys = ['gateway', 'ca'] as const;

export function configDir(io: Io): string | undefined {
  return io.env.SLUICE_CONFIG_DIR || undefined;
}

/**
 * Opens the settings. Reads parse the JSON file directly; `conf` (schema checks, atomic writes)
 * is loaded only to write: it costs about 0.2 s of start-up, which every `sluice exec` would
 * otherwise pay just to look up the gateway URL.
 */
export async function openSettings(io: Io): Promise<SettingsStore> {
  const path = settingsPath(io);
  let data = readSettingsFile(path);
  let conf: Promise<import('conf').default<Settings>> | undefined;
  return {
    path,
    get: (key) => data[key],
    async set(key, value) {
      const c = await (conf ??= openConf(io));
      c.set(key, value);
      data = { ...c.store };
    },
  };
}

async function openConf(io: Io): Promise<import('conf').default<Settings>> {
  const { default: Conf } = await import('conf');
  const cwd = configDir(io);
  return new Conf<Settings>({
    projectName: 'sluice',
    projectSuffix: '',
    configName: 'settings',
    configFileMode: 0o600,
    ...(cwd ? { cwd } : {}),
  });
}

/** Where conf keeps the file: SLUICE_CONFIG_DIR, else the platform's config directory (env-paths). */
export function settingsPath(io: Io): string {
  const cwd = configDir(io);
  if (cwd) return resolve(io.cwd ?? process.cwd(), cwd, 'settings.json');
  // os.homedir() is $HOME when set: read it from io.env, which is the caller's when the agent runs.
  const home = io.env.HOME || homedir();
  const dir =
    process.platform === 'darwin'
      ? join(home, 'Library', 'Preferences', 'sluice')
      : process.platform === 'win32'
        ? join(io.env.APPDATA || join(home, 'AppData', 'Roaming'), 'sluice', 'Config')
        : join(io.env.XDG_CONFIG_HOME || join(home, '.config'), 'sluice');
  return join(dir, 'settings.json');
}

function readSettingsFile(path: string): Settings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`cannot read the settings file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Settings;
  } catch {
    // Reported below, with what to do.
  }
  throw new UsageError(`the settings file ${path} is not valid JSON: fix it or delete it (then run \`sluice config set gateway URL\` or \`sluice login\` again)`);
}
