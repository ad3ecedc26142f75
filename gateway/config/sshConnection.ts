// Resolves one validated `type: ssh` connection: reads the held private key (file or environment
// variable), checks that ssh2 can use it (unencrypted, a known type) and compiles the ssh policy.
// Problems are reported as `FILE: connections.N.target.privateKey: …`, never with the key's text.
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import type { SshConnection } from '../model.js';
import { compileSshPolicy, type SshPolicyConfig } from '../engines/ssh/policy.js';

interface ParsedSsh {
  name: string;
  type: 'ssh';
  description?: string | undefined;
  target: { host: string; port: number; user: string; privateKey: { env: string } | { file: string }; hostKey: string };
  allow: { groups: string[] };
  policy?: SshPolicyConfig | undefined;
  record: 'statements' | 'sessions';
}


/** The usable connection, or undefined after pushing each problem found. */
export function resolveSshConnection(
  c: ParsedSsh,
  i: number,
  ctx: { file: string; env: NodeJS.ProcessEnv; abs: (p: string) => string; resolveSecrets: boolean; problem: (p: string) => void },
): SshConnection {
  const where = `${ctx.file}: connections.${i}.target.privateKey: connection "${c.name}"`;
  let privateKey = '';
  if (ctx.resolveSecrets) {
    if ('env' in c.target.privateKey) {
      const v = ctx.env[c.target.privateKey.env];
      if (v === undefined || v === '') ctx.problem(`${where}: environment variable ${c.target.privateKey.env} is not set`);
      else privateKey = v;
    } else {
      const p = ctx.abs(c.target.privateKey.file);
      try {
        privateKey = readFileSync(p, 'utf8');
      } catch (err) {
        ctx.problem(`${where}: cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
    if (privateKey !== '') {
      const parsed = ssh2.utils.parseKey(privateKey);
      if (parsed instanceof Error) {
        // ssh2's messages name the format problem, never the key material.
        const encrypted = /passphrase|encrypted/i.test(parsed.message);
        ctx.problem(`${where}: ${encrypted ? 'the key is encrypted; the gateway needs an unencrypted key (ssh-keygen -p -N "" -f KEY)' : `not a usable private key (${parsed.message}); expected an OpenSSH or PEM private key`}`);
      } else if (!(Array.isArray(parsed) ? parsed[0] : parsed)?.isPrivateKey()) {
        ctx.problem(`${where}: this is a public key; the gateway needs the private key`);
      }
    }
  }
  return Object.freeze({
    name: c.name,
    type: 'ssh',
    ...(c.description !== undefined ? { description: c.description } : {}),
    target: Object.freeze({ host: c.target.host, port: c.target.port, user: c.target.user, privateKey, hostKey: c.target.hostKey }),
    allow: Object.freeze({ groups: Object.freeze([...c.allow.groups]) }),
    ...(c.policy !== undefined ? { policy: compileSshPolicy(c.policy) } : {}),
    record: c.record,
  });
}
