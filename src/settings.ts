// Persistent CLI settings (`sluice config set …`) via `conf`, in a 0600 file under the user's
// config directory. SLUICE_CONFIG_DIR moves it (tests, multiple identities on one host).
import Conf from 'conf';
import type { Io } from './io.js';

export interface Settings {
  gateway?: string;
  /** CA bundles to trust per gateway URL, remembered from `login --ca`. */
  ca?: Record<string, string>;
  /** Set once the user has been told that tokens are stored in a file. */
  fileStorageNoticeShown?: boolean;
}

export const settingKeys = ['gateway', 'ca'] as const;

export function configDir(io: Io): string | undefined {
  return io.env.SLUICE_CONFIG_DIR || undefined;
}

export function openSettings(io: Io): Conf<Settings> {
  const cwd = configDir(io);
  return new Conf<Settings>({
    projectName: 'sluice',
    projectSuffix: '',
    configName: 'settings',
    configFileMode: 0o600,
    ...(cwd ? { cwd } : {}),
  });
}
