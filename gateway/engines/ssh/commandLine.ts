// Splits an ssh `exec` command line into the simple commands a POSIX shell would run, so that
// `commands` globs see `rm -rf /*` in `cd /tmp && rm -rf /*` too. The split is deliberately
// conservative: anything that can hide a command from it (command or process substitution,
// `eval`, a shell started with `-c`, unbalanced quotes, control characters) is reported as
// unjudgeable and the caller refuses the command when a rule applies (fail closed).

export type CommandSplit = { readonly commands: readonly string[] } | { readonly unjudgeable: string };

/** Programs that run a command given as text: what they run cannot be seen from here. */
const INTERPRETERS = new Set(['eval', 'source', '.', 'sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'fish', 'csh', 'tcsh', 'busybox', 'xargs', 'su', 'script', 'watch', 'parallel']);
/** Prefix words that run the rest of the line as a command: matched both with and without them. */
const WRAPPERS = new Set(['command', 'exec', 'builtin', 'env', 'nohup', 'time', 'nice', 'ionice', 'stdbuf', 'timeout', 'setsid', 'chrt', 'taskset']);
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;

/** Splits `line`; each simple command is given in several forms (raw, unquoted, wrapper-free). */
export function splitCommandLine(line: string): CommandSplit {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(line)) return { unjudgeable: 'it contains control characters' };
  const parts: { raw: string; words: string[] }[] = [];
  let raw = '';
  let word = '';
  let inWord = false;
  let words: string[] = [];
  let quote: "'" | '"' | undefined;
  const endWord = () => {
    if (inWord) words.push(word);
    word = '';
    inWord = false;
  };
  const endPart = () => {
    endWord();
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
    if (ch === ';' || ch === '&' || ch === '|' || ch === '\n' || ch === '(' || ch === ')' || ch === '{' || ch === '}') {
      endPart();
      continue;
    }
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
    let w = p.words;
    // Strip leading assignments and wrappers one at a time, matching every stage.
    for (;;) {
      out.add(w.join(' '));
      const first = w[0];
      if (first === undefined) break;
      const base = first.includes('/') ? first.slice(first.lastIndexOf('/') + 1) : first;
      if (base !== first) out.add([base, ...w.slice(1)].join(' '));
      if (base === 'find' && w.some((a) => /^-(exec|execdir|ok|okdir)$/.test(a))) return { unjudgeable: 'it runs commands through find -exec' };
      if (INTERPRETERS.has(base)) return { unjudgeable: `it runs "${base}", whose command cannot be checked` };
      if (ASSIGNMENT.test(first) || WRAPPERS.has(base)) {
        w = w.slice(1);
        // Options of a wrapper (`nice -n 5 rm`, `timeout 5 rm`) are dropped up to the next plain word.
        while (w[0] !== undefined && (w[0].startsWith('-') || /^\d/.test(w[0]))) w = w.slice(1);
        continue;
      }
      if (base === 'sudo' || base === 'doas') {
        // `sudo rm -rf /` is also matched as `rm -rf /`; `sudo *` still matches the whole form.
        w = w.slice(1);
        while (w[0] !== undefined && w[0].startsWith('-')) w = w.slice(w[0] === '-u' || w[0] === '-g' ? 2 : 1);
        continue;
      }
      break;
    }
  }
  out.delete('');
  return { commands: [...out] };
}
