// Persistent CLI settings (`sluice config set …`) via `conf`, in a 0600 file under the user's
// config directory. SLUICE_CONFIG_DIR moves it (tests, multiple identities on one host).
// `conf` is loaded only by commands that read settings, so `sluice --help` does not pay for it.
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
  set<K extends keyof Settings>(key: K, value: NonNullable<Settings[K]>): void;
}

export const settingKeys = ['gateway', 'ca'] as const;

export function configDir(io: Io): string | undefined {
  return io.env.SLUICE_CONFIG_DIR || undefined;
}

export async function openSettings(io: Io): Promise<SettingsStore> {
  const { default: Conf } = await import('conf');
  const cwd = configDir(io);
  const conf = new Conf<Settings>({
    projectName: 'sluice',
    projectSuffix: '',
    configName: 'settings',
    configFileMode: 0o600,
    ...(cwd ? { cwd } : {}),
  });
  return {
    path: conf.path,
    get: (key) => conf.get(key),
    set: (key, value) => conf.set(key, value),
  };
}
