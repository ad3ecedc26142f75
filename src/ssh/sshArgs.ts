// The arguments that point the system `ssh` (and scp, sftp) at the local end of a tunnel: the port,
// the known_hosts file holding the gateway's host key and the alias it is filed under. Strict host
// key checking stays on: a tunnel that answers with another key is refused by ssh itself.

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  knownHosts: string;
  alias: string;
}

/** `-o` options shared by ssh, scp and sftp. */
export function sshOptions(t: SshTarget): string[] {
  return ['-o', `UserKnownHostsFile=${t.knownHosts}`, '-o', `HostKeyAlias=${t.alias}`];
}

/**
 * argv for `ssh` run by `sluice ssh`: strict checking (no prompt, the key is already there), no
 * global known_hosts, and no host key rotation written back into our file. `forwardAgent` adds
 * `-A` (the gateway relays it only where a rule allows agent forwarding).
 */
export function sshArgv(t: SshTarget, command: readonly string[], opts: { forwardAgent?: boolean } = {}): string[] {
  return [
    ...(opts.forwardAgent ? ['-A'] : []),
    '-p',
    String(t.port),
    ...sshOptions(t),
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'UpdateHostKeys=no',
    `${t.user}@${t.host}`,
    ...(command.length > 0 ? ['--', ...command] : []),
  ];
}

/** The ready-to-paste commands `sluice connect` prints for ssh, scp and sftp. */
export function sshCommandLines(t: SshTarget): { ssh: string; scp: string; sftp: string } {
  const opts = sshOptions(t).map(shellQuote).join(' ');
  const at = `${t.user}@${t.host}`;
  return {
    ssh: `ssh -p ${t.port} ${opts} ${at}`,
    scp: `scp -P ${t.port} ${opts} FILE ${at}:PATH`,
    sftp: `sftp -P ${t.port} ${opts} ${at}`,
  };
}

/** Quotes for a POSIX shell only when needed, so the common case stays readable. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
