// What a local ssh client needs to reach an ssh connection through a tunnel listening on
// host:port: the user to present and a known_hosts file (in the config directory) holding the
// gateway's host key, written fresh each time so a rotated gateway key is picked up.
import { dirname } from 'node:path';
import type { SshConnectionInfo } from '../api/contract.js';
import type { Factory } from '../factory.js';
import { hostKeyAlias, writeKnownHost } from './knownHosts.js';
import type { SshTarget } from './sshArgs.js';

export async function localSshTarget(f: Factory, gatewayUrl: string, info: SshConnectionInfo, host: string, port: number): Promise<SshTarget> {
  const configDir = dirname((await f.settings()).path);
  const alias = hostKeyAlias(gatewayUrl, info.name);
  const knownHosts = await writeKnownHost(configDir, alias, info.hostKey);
  return { host, port, user: info.user, knownHosts, alias };
}

/** The environment `sluice connect NAME -- CMD` gives CMD for an ssh connection. */
export function sshChildEnv(t: SshTarget): Record<string, string> {
  return {
    SLUICE_HOST: t.host,
    SLUICE_PORT: String(t.port),
    SLUICE_SSH_USER: t.user,
    SLUICE_KNOWN_HOSTS: t.knownHosts,
    SLUICE_HOST_KEY_ALIAS: t.alias,
  };
}
