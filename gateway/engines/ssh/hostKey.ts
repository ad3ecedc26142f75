// The gateway's own ssh host key, shown to local ssh clients on the tunnel: generated once
// (ed25519, OpenSSH format, mode 0600) in the state directory and kept, so the fingerprint a
// client pinned in its known_hosts stays valid across restarts.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2 from 'ssh2';

export const SSH_HOST_KEY_FILE = 'ssh-host-ed25519';

const cache = new Map<string, { privateKey: string; publicKey: string }>();

/** The key pair in `stateDir`, created on first use; `publicKey` is the `ssh-ed25519 AAAA…` line. */
export function gatewayHostKey(stateDir: string): { privateKey: string; publicKey: string } {
  const known = cache.get(stateDir);
  if (known) return known;
  const file = join(stateDir, SSH_HOST_KEY_FILE);
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text === undefined) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'sluice-gateway' });
    mkdirSync(stateDir, { recursive: true });
    try {
      // `wx`: a second gateway starting at the same moment keeps the first one's key.
      writeFileSync(file, pair.private, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    text = readFileSync(file, 'utf8');
  }
  const parsed = ssh2.utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key === undefined || key instanceof Error) throw new Error(`${file}: not a usable ssh host key (${key instanceof Error ? key.message : 'empty'}); remove it to have a new one generated`);
  const pub = key.getPublicSSH();
  const out = { privateKey: text, publicKey: `${key.type} ${pub.toString('base64')}` };
  cache.set(stateDir, out);
  return out;
}
