// The known_hosts file `sluice connect` and `sluice ssh` hand to the system `ssh`: it holds the
// gateway's own host key (the one the local side of the tunnel presents) under an alias per
// gateway and connection, so ssh checks the key strictly and never prompts or trusts on first use.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const KNOWN_HOSTS_FILE = 'known_hosts';

/**
 * The name ssh looks the key up by (`-o HostKeyAlias=`): the local port changes from run to run,
 * so the alias, not `[127.0.0.1]:PORT`, identifies the gateway and connection.
 */
export function hostKeyAlias(gatewayUrl: string, connection: string): string {
  const u = new URL(gatewayUrl);
  const port = u.port ? `.${u.port}` : '';
  // Connection names are [A-Za-z0-9_.-] (the gateway's config schema); anything else is dropped
  // so the alias can never break the known_hosts line it is written into.
  const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `sluice.${safe(connection)}.${safe(u.hostname)}${port}`;
}

/**
 * Writes (or replaces) the line for `alias` in CONFIG_DIR/known_hosts, keeping every other line,
 * atomically and readable only by the user. Returns the file's path.
 */
export async function writeKnownHost(configDir: string, alias: string, publicKey: string): Promise<string> {
  const path = join(configDir, KNOWN_HOSTS_FILE);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let lines: string[] = [];
  try {
    lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const kept = lines.filter((l) => l.split(/\s+/, 1)[0] !== alias);
  const text = [...kept, `${alias} ${publicKey.trim()}`].join('\n') + '\n';
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
  return path;
}
