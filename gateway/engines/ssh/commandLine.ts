// Splits an ssh `exec` command line into the simple commands a POSIX shell would run, so that
// `commands` globs see `rm -rf /*` in `cd /tmp && rm -rf /*` too. The split is deliberately
// conservative: anything that can hide a command from it (command or process substitution,
// `eval`, a shell or interpreter given the command as text, a program name the shell computes
// from a variable or a glob, unbalanced quotes, control characters) is reported as unjudgeable
// and the caller refuses the command when a rule applies (fail closed). It is a deny-list over a
// general-purpose shell, so it cannot be complete (a script written to a file and then run, a
// copy of a program under another name): docs/decisions.md says where the boundary lies.

export type CommandSplit = { readonly commands: readonly string[] } | { readonly unjudgeable: string };

/** Programs that run a command given as text (or read from stdin, or defined for later): what they run cannot be seen from here. */
const INTERPRETERS = new Set([
  'eval', 'source', '.', 'alias', 'trap', 'hash', 'enable', 'fc',
  'sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'ash', 'rbash', 'yash', 'posh', 'fish', 'csh', 'tcsh', 'elvish', 'nu', 'xonsh', 'pwsh', 'busybox', 'toybox',
  'xargs', 'su', 'runuser', 'sg', 'script', 'watch', 'parallel', 'flock', 'at', 'batch', 'ssh', 'tmux', 'screen', 'systemd-run',
  'awk', 'gawk', 'mawk', 'nawk', 'perl', 'ruby', 'php', 'node', 'nodejs', 'lua', 'luajit', 'tclsh', 'wish', 'expect', 'Rscript',
]);
/** Interpreters whose program names carry a version: python3, python3.12, perl5.36, php8.2, lua5.4. */
const VERSIONED_INTERPRETER = /^(python|pypy|perl|php|lua|ruby|node)[0-9.]*$/;
/** Prefix words that run the rest of the line as a command: matched both with and without them. */
const WRAPPERS = new Set([
  'command', 'exec', 'builtin', 'env', 'nohup', 'time', 'nice', 'ionice', 'stdbuf', 'timeout', 'setsid', 'chrt', 'taskset',
  'pkexec', 'chroot', 'unshare', 'nsenter', 'setpriv', 'prlimit', 'strace', 'ltrace', 'valgrind', 'fakeroot', 'firejail', 'catchsegv', 'cpulimit', 'caffeinate', 'dbus-launch', 'ssh-agent', 'coproc',
]);
/** Shell keywords that may stand before a simple command (`if reboot; then …`, `! reboot`, `do reboot`). */
const KEYWORDS = new Set(['if', 'then', 'else', 'elif', 'do', 'while', 'until', '!']);
/** sudo's options that take the next word as their argument (`sudo -u root`, `sudo --chdir /x`). */
const SUDO_ARGUMENT_OPTIONS = new Set(['-C', '-D', '-g', '-h', '-p', '-R', '-r', '-t', '-T', '-U', '-u', '--close-from', '--chdir', '--group', '--host', '--prompt', '--chroot', '--role', '--type', '--command-timeout', '--other-user', '--user']);
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;
/** Past this many words after a wrapper, its every possible start of a command is not explored. */
const MAX_WRAPPED_WORDS = 256;

/** One word of a simple command; `computed` when the shell expands it (a `$` outside single quotes, an unquoted glob). */
interface Word {
  readonly text: string;
  readonly computed: boolean;
}

/** Splits `line`; each simple command is given in several forms (raw, unquoted, wrapper-free). */
export function splitCommandLine(line: string): CommandSplit {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(line)) return { unjudgeable: 'it contains control characters' };
  const parts: { raw: string; words: Word[] }[] = [];
  let raw = '';
  let word = '';
  let inWord = false;
  let computed = false;
  // An unquoted `[` that a later unquoted `]` of the same word closes is a glob (`[` alone is test).
  let openBracket = false;
  let words: Word[] = [];
  let quote: "'" | '"' | undefined;
  // The next word is a redirection's target (`> file`), not part of the command.
  let redirectTarget = false;
  const endWord = () => {
    if (inWord) {
      if (redirectTarget) redirectTarget = false;
      else words.push({ text: word, computed });
    }
    word = '';
    inWord = false;
    computed = false;
    openBracket = false;
  };
  const endPart = () => {
    endWord();
    redirectTarget = false;
    if (words.length > 0) parts.push({ raw: raw.trim(), words });
    raw = '';
    words = [];
  };
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    const next = line[i + 1];
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else word += ch;
      raw += ch;
      continue;
    }
    if (ch === '`' || (ch === '$' && next === '(')) return { unjudgeable: 'it uses command substitution' };
    if (ch === '\\') {
      if (next === undefined) return { unjudgeable: 'it ends in a backslash' };
      if (next !== '\n') {
        word += next;
        inWord = true;
      }
      raw += ch + next;
      i++;
      continue;
    }
    if (ch === '$' && next !== undefined && /[A-Za-z0-9_{@*#?$!-]/.test(next)) computed = true;
    if (quote === '"') {
      if (ch === '"') quote = undefined;
      else word += ch;
      raw += ch;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
      raw += ch;
      continue;
    }
    if ((ch === '<' || ch === '>') && next === '(') return { unjudgeable: 'it uses process substitution' };
    if (ch === '<' || ch === '>' || (ch === '&' && next === '>')) {
      // A redirection (`2>&1`, `>file`, `&>>log`, `<<<text`) may stand anywhere in a simple
      // command, also before its program: drop it and its target from the words.
      if (inWord && /^(\d+|\{[A-Za-z_][A-Za-z0-9_]*\})$/.test(word) && !computed) {
        word = '';
        inWord = false;
      } else endWord();
      let op = ch;
      while (i + 1 < line.length && '<>&|-'.includes(line[i + 1] as string)) op += line[++i];
      raw += op;
      // `>&-` and `<&-` close a descriptor and take no target; every other operator does.
      redirectTarget = !/&-$/.test(op);
      continue;
    }
    if (ch === ';' || ch === '&' || ch === '|' || ch === '\n' || ch === '(' || ch === ')' || ch === '{' || ch === '}') {
      endPart();
      continue;
    }
    if (ch === '*' || ch === '?') computed = true;
    if (ch === '[') openBracket = true;
    if (ch === ']' && openBracket) computed = true;
    raw += ch;
    if (ch === ' ' || ch === '\t') endWord();
    else {
      word += ch;
      inWord = true;
    }
  }
  if (quote !== undefined) return { unjudgeable: 'it has an unbalanced quote' };
  endPart();
  const out = new Set<string>();
  for (const p of parts) {
    out.add(p.raw.replace(/\s+/g, ' '));
    const problem = commandForms(p.words, out);
    if (problem !== undefined) return { unjudgeable: problem };
  }
  out.delete('');
  return { commands: [...out] };
}

/**
 * Adds every form of one simple command to `out`: as written, then with each leading keyword,
 * assignment, wrapper or sudo stripped in turn. A wrapper's options may take arguments this code
 * does not know (`timeout -s KILL 5 cmd`, `exec -a name cmd`), so every later word is also tried
 * as the start of the command (matching more only blocks more). Returns why the command cannot be
 * judged, or undefined.
 */
function commandForms(words: readonly Word[], out: Set<string>): string | undefined {
  const starts = [0];
  const seen = new Set<number>();
  while (starts.length > 0) {
    let i = starts.pop() as number;
    if (seen.has(i)) continue;
    seen.add(i);
    for (;;) {
      out.add(words.slice(i).map((w) => w.text).join(' '));
      const first = words[i];
      if (first === undefined) break;
      const name = first.text;
      const base = name.includes('/') ? name.slice(name.lastIndexOf('/') + 1) : name;
      if (base !== name) out.add([base, ...words.slice(i + 1).map((w) => w.text)].join(' '));
      if (KEYWORDS.has(name)) {
        i++;
        continue;
      }
      if (ASSIGNMENT.test(name)) {
        i++;
        continue;
      }
      if (first.computed) return 'the shell computes the name of a program it runs (a variable or a glob)';
      if (base === 'find' && words.slice(i).some((a) => /^-(exec|execdir|ok|okdir)$/.test(a.text))) return 'it runs commands through find -exec';
      if (INTERPRETERS.has(base) || VERSIONED_INTERPRETER.test(base)) return `it runs "${base}", whose command cannot be checked`;
      if (base === 'env' && words.slice(i + 1).some((w) => /^(-[A-Za-z]*S|--split-string)/.test(w.text))) return 'it runs "env -S", which splits a command from text';
      if (WRAPPERS.has(base)) {
        if (words.length - i > MAX_WRAPPED_WORDS) return 'it wraps a command in too many words to check';
        for (let k = i + 1; k < words.length; k++) starts.push(k);
        i++;
        // Options of a wrapper (`nice -n 5 rm`, `timeout 5 rm`) are dropped up to the next plain word.
        while (words[i] !== undefined && (words[i]!.text.startsWith('-') || /^\d/.test(words[i]!.text))) i++;
        continue;
      }
      if (base === 'sudo' || base === 'doas') {
        // `sudo rm -rf /` is also matched as `rm -rf /`; `sudo *` still matches the whole form.
        i++;
        while (words[i] !== undefined && words[i]!.text.startsWith('-')) {
          const opt = words[i]!.text;
          if (opt === '--') {
            i++;
            break;
          }
          i += SUDO_ARGUMENT_OPTIONS.has(opt) ? 2 : 1;
        }
        continue;
      }
      break;
    }
  }
  return undefined;
}
