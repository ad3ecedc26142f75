// Judging ssh exec command lines: globs over every simple command of the line, a block beating a
// review, groups, and the fail-closed refusal of what the splitter cannot see through.
import { describe, expect, it } from 'vitest';
import { splitCommandLine } from '../../../gateway/engines/ssh/commandLine.js';
import { allowedBy, compileSshPolicy, globToRegExp, judgeCommand, sftpBlocked, sshPolicySchema, UNJUDGEABLE_RULE } from '../../../gateway/engines/ssh/policy.js';

const policy = compileSshPolicy(
  sshPolicySchema.parse({
    rules: [
      { id: 'no-destroy', block: { commands: ['rm -rf /*', 'shutdown*', 'reboot*'] } },
      { id: 'sudo-needs-review', review: { commands: ['sudo *'], approvers: ['ops-leads'], timeout: '5m' }, except: { groups: ['ops-leads'] } },
      { id: 'no-files', block: { sftp: true }, for: { groups: ['contractors'] } },
      { id: 'tunnels', allow: { forwarding: ['local'] }, for: { groups: ['ops'] } },
    ],
  }),
);
const judge = (cmd: string, groups = ['ops']) => judgeCommand(policy, groups, cmd);

describe('ssh command policy', () => {
  it('globs match the whole command, * across spaces and slashes', () => {
    expect(globToRegExp('rm -rf /*').test('rm -rf /var/lib')).toBe(true);
    expect(globToRegExp('rm -rf /*').test('echo rm -rf /var')).toBe(false);
    expect(globToRegExp('reboot?').test('reboot!')).toBe(true);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
  });

  it('allows what no rule matches, blocks and holds what one does', () => {
    expect(judge('uptime')).toEqual({ verdict: 'allow' });
    expect(judge('rm -rf /etc')).toMatchObject({ verdict: 'block', rule: 'no-destroy' });
    expect(judge('sudo systemctl restart nginx')).toMatchObject({ verdict: 'review', rule: 'sudo-needs-review', approvers: ['ops-leads'], timeoutMs: 300_000 });
    expect(judge('sudo systemctl restart nginx', ['ops-leads'])).toEqual({ verdict: 'allow' });
  });

  it('sees every simple command of a line, through quotes, paths, wrappers and sudo', () => {
    for (const cmd of ['cd /tmp && rm -rf /*', 'true; shutdown -h now', 'echo x | reboot', "'rm' -rf /home", '/bin/rm -rf /srv', 'FOO=1 nohup rm -rf /x', 'nice -n 5 reboot', '(reboot)', 'true\nreboot']) {
      expect(judge(cmd), cmd).toMatchObject({ verdict: 'block' });
    }
    // sudo of a blocked command: the block wins over the review.
    expect(judge('sudo rm -rf /var')).toMatchObject({ verdict: 'block', rule: 'no-destroy' });
    expect(judge('echo "rm -rf /x"')).toEqual({ verdict: 'allow' });
  });

  it('refuses what it cannot judge when a rule applies, and only then', () => {
    for (const cmd of ['echo $(reboot)', 'echo `reboot`', 'sh -c "reboot"', 'bash -lc reboot', 'eval reboot', 'echo "unterminated', 'find / -exec rm {} +', 'cat <(reboot)', 'ls \u0007']) {
      expect(judge(cmd), cmd).toMatchObject({ verdict: 'block', rule: UNJUDGEABLE_RULE });
    }
    expect(judgeCommand(compileSshPolicy({ rules: [] }), ['ops'], 'sh -c "anything"')).toEqual({ verdict: 'allow' });
    expect(judgeCommand(undefined, ['ops'], 'echo $(date)')).toEqual({ verdict: 'allow' });
  });

  it('sees a blocked command behind keywords, redirections, wrapper options and sudo options', () => {
    for (const cmd of [
      'exec -a foo reboot', 'timeout -s KILL 5 reboot', 'env -u X reboot', 'time -p reboot', 'sudo -p x reboot', 'sudo --chdir /tmp reboot',
      'if reboot; then :; fi', 'while reboot; do :; done', 'until reboot; do :; done', '! reboot', 'true && then reboot',
      '>/dev/null reboot', '2>&1 reboot', '&>/dev/null reboot', '>&- reboot', '<<<x reboot', '>"a b" reboot', '{fd}>x reboot',
      'chroot / reboot', 'nsenter -t 1 -a reboot', 'strace -f reboot', 'coproc reboot', 'pkexec reboot',
    ]) {
      expect(judge(cmd), cmd).toMatchObject({ verdict: 'block', rule: 'no-destroy' });
    }
  });

  it('refuses a program name the shell computes, and interpreters by any name', () => {
    for (const cmd of [
      'X=reboot; $X', '${X}', '$0 -c reboot', '"$SHELL" -c reboot', 'nice $X', '/sbin/reb??t', '/sbin/re*', '/sbin/rebo[o]t',
      'python3 -c "import os"', 'python3.12 x.py', 'perl -e 1', 'awk "BEGIN{}"', 'ssh localhost reboot', 'echo reboot | at now',
      'alias x=reboot', 'trap reboot EXIT', 'hash -p /sbin/reboot ls', 'runuser -u root -- reboot', 'flock /tmp/l -c reboot', "env -S'reboot now'", 'timeout 5 bash',
    ]) {
      expect(judge(cmd), cmd).toMatchObject({ verdict: 'block', rule: UNJUDGEABLE_RULE });
    }
    // What is ordinary stays allowed: test brackets, variables and globs as arguments, redirections after the command.
    for (const cmd of ['[ -f /etc/hosts ] && echo yes', '[[ -n x ]]', 'echo $HOME "$USER"', 'ls *.log /var/log/[a-z]*', 'cat /etc/hosts 2>&1', 'grep x f >/dev/null </dev/null', 'nice -n 5 ls', 'sudo -u root systemctl status nginx', 'echo "reboot"', 'df -h; uptime']) {
      expect(judge(cmd, ['ops-leads']), cmd).toEqual({ verdict: 'allow' });
    }
  });

  it('with sftp blocked, the server side of scp, sftp and rsync run as commands is refused too', () => {
    for (const cmd of ['scp -t /tmp', 'scp -v -d -t -- /tmp', 'scp -pf /etc/passwd', '/usr/bin/scp -r -t .', '/usr/lib/openssh/sftp-server', '/usr/lib/sftp-server -e', 'exec /usr/lib/openssh/sftp-server', 'rsync --server -vlogDtpre.iLsfxC . /tmp']) {
      expect(judge(cmd, ['contractors']), cmd).toMatchObject({ verdict: 'block', rule: 'no-files' });
    }
    expect(judge('sh -c "scp -t /tmp"', ['contractors'])).toMatchObject({ verdict: 'block', rule: UNJUDGEABLE_RULE });
    // Others, and the client side of scp, are not file transfer servers.
    expect(judge('scp -t /tmp', ['ops-leads'])).toEqual({ verdict: 'allow' });
    expect(judge('scp a host:/b', ['contractors'])).toEqual({ verdict: 'allow' });
    expect(judge('ls /tmp', ['contractors'])).toEqual({ verdict: 'allow' });
  });

  it('splits into simple commands in several forms', () => {
    expect(splitCommandLine('sudo -u root rm -rf /x && ls')).toEqual({ commands: ['sudo -u root rm -rf /x', 'rm -rf /x', 'ls'] });
    expect(splitCommandLine('a \\; b')).toEqual({ commands: ['a \\; b', 'a ; b'] });
  });

  it('blocks sftp and allows forwarding only for the groups a rule names', () => {
    expect(sftpBlocked(policy, ['contractors'])).toMatchObject({ rule: 'no-files' });
    expect(sftpBlocked(policy, ['ops'])).toBeUndefined();
    expect(allowedBy(policy, ['ops'], { kind: 'forwarding', direction: 'local' })).toBe('tunnels');
    expect(allowedBy(policy, ['ops'], { kind: 'forwarding', direction: 'remote' })).toBeUndefined();
    expect(allowedBy(policy, ['dev'], { kind: 'forwarding', direction: 'local' })).toBeUndefined();
  });
});
