// Where `sluice exec` reads its SQL from: `-i TEXT`, `-f FILE` (`-` for stdin), or stdin when it is
// piped and neither flag is given. Exactly one source; anything else is a usage error that names
// the flags, so a CI job never runs something other than what its author meant.
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError } from '../../errors.js';

/** What the gateway accepts as one input (execRequest's limit). */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;

export type InputSource = { kind: 'text' } | { kind: 'file'; path: string } | { kind: 'stdin' };

export interface ExecInput {
  sql: string;
  source: InputSource;
}

export interface Stdin extends AsyncIterable<Buffer | string> {
  readonly isTTY?: boolean;
}

const HOW = 'pass the SQL with -i/--input TEXT, -f/--file PATH (- for stdin), or pipe it on stdin';

/**
 * The input the flags name. `stdin` may be given as a function: it is then called only when stdin
 * is the source, since opening process.stdin costs a short exec's start a few ms for nothing.
 */
export async function readExecInput(flags: { input?: string; file?: string }, stdinOrOpen: Stdin | (() => Stdin), cwd = process.cwd()): Promise<ExecInput> {
  const stdin = (): Stdin => (typeof stdinOrOpen === 'function' ? stdinOrOpen() : stdinOrOpen);
  if (flags.input !== undefined && flags.file !== undefined) {
    throw new UsageError(`-i/--input and -f/--file both given: ${HOW}, only one of them`);
  }
  if (flags.input !== undefined) {
    if (flags.input.trim() === '') throw new UsageError(`-i/--input is empty: ${HOW}`);
    checkSize(Buffer.byteLength(flags.input), '-i/--input');
    return { sql: flags.input, source: { kind: 'text' } };
  }
  if (flags.file === '-') return { sql: await readStdin(stdin(), '-f -'), source: { kind: 'stdin' } };
  if (flags.file !== undefined) return { sql: await readFileInput(resolve(cwd, flags.file), flags.file), source: { kind: 'file', path: flags.file } };
  if (stdin().isTTY) throw new UsageError(`no SQL to run: ${HOW}`);
  return { sql: await readStdin(stdin(), 'stdin'), source: { kind: 'stdin' } };
}

async function readFileInput(full: string, path: string): Promise<string> {
  try {
    const info = await stat(full);
    if (info.isDirectory()) throw new UsageError(`-f/--file ${path} is a directory: name a file of SQL`);
    checkSize(info.size, `-f/--file ${path}`);
    const sql = await readFile(full, 'utf8');
    if (sql.trim() === '') throw new UsageError(`-f/--file ${path} is empty: nothing to run`);
    return sql;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read -f/--file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

async function readStdin(stdin: Stdin, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buf.length;
    checkSize(size, what);
    chunks.push(buf);
  }
  const sql = Buffer.concat(chunks).toString('utf8');
  if (sql.trim() === '') throw new UsageError(`${what} was empty: nothing to run (${HOW})`);
  return sql;
}

function checkSize(bytes: number, what: string): void {
  if (bytes > MAX_INPUT_BYTES) throw new UsageError(`${what} is larger than ${MAX_INPUT_BYTES / 1024 / 1024} MiB, the most one exec accepts: split the script`);
}

/** How to name this input again on a command line, for the `--review ID` hint. */
export function sourceArgs(source: InputSource, sql: string): string {
  switch (source.kind) {
    case 'file':
      return `-f ${shellQuote(source.path)}`;
    case 'text':
      return `-i ${shellQuote(sql)}`;
    case 'stdin':
      return '(with the same input on stdin)';
  }
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
