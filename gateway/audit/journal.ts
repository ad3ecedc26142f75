// The audit's write-ahead journal: the step that makes an event durable before the statement it
// records is forwarded. A store commit costs ~20 µs and several syscalls per transaction on these
// machines (SQLite WAL: a frame per touched page plus locks), far more than the tunnel itself;
// appending a few lines to a file costs ~1–2 µs. So events are appended here (one write per
// group commit, plus fdatasync with `durability: fsync`) and moved into the store in large
// batches shortly after (writer.ts). A crash loses nothing: the next start replays the journal
// into the store before anything else (replay is idempotent, so ops that were already ingested
// are skipped).
//
// Two files take turns: appends go to the active one; an ingest switches appends to the other
// (empty) file, commits the ops of the first to the store and then empties it. Each line is one
// op with a number `n` increasing across both files, so a replay after a crash during an ingest
// puts the two files back in order. Events are staged unchained (chain.ts) and written as
// `E<TAB>n<TAB>session<TAB>seq<TAB>kind<TAB>at<TAB>data` — the data is canonical JSON, which
// holds no raw tab or newline, so it is written as it is; every other op is one JSON object
// (older journals also hold chained events: a JSON header, a tab, the event's body). A torn last
// line (a crash mid-write) is ignored; any other unreadable line stops the start with the file
// and line named.
import { closeSync, existsSync, fdatasync, fdatasyncSync, ftruncateSync, openSync, readFileSync, unlinkSync, write, writeFileSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { NewSession, SealInput, SessionEnd } from '../store/types.js';
import type { StagedOp } from './chain.js';
import { sealOp } from './ledger.js';

const writeAsync = promisify(write);
const fdatasyncAsync = promisify(fdatasync);

const FILES = ['audit-journal-a.jsonl', 'audit-journal-b.jsonl'] as const;
const LOCK = 'audit-journal.lock';

/** One op as a journal line; dates are epoch milliseconds. */
type Line =
  | { n: number; op: 'session'; session: Omit<NewSession, 'startedAt'> & { startedAt: number } }
  | { n: number; op: 'event'; session: string; seq: number; kind: string; at: number; hash: string }
  | { n: number; op: 'end'; id: string; end: Omit<SessionEnd, 'endedAt'> & { endedAt: number } }
  | { n: number; op: 'seal'; seal: Omit<SealInput, 'startedAt'> & { startedAt: number } }
  | { n: number; op: 'close'; close: Omit<SealInput, 'startedAt' | 'final'> & { startedAt: number } };

export class JournalError extends Error {
  override readonly name = 'JournalError';
}

/** The last event time written, as text: epoch milliseconds exceed V8's small integers, and turning one into a string takes its slow path. */
let atMs = NaN;
let atText = '';

function toLine(n: number, o: StagedOp): string {
  switch (o.op) {
    case 'entry': {
      const e = o.entry;
      if (e.at !== atMs) {
        atMs = e.at;
        atText = `${e.at}`;
      }
      return `E\t${n}\t${e.session}\t${e.seq}\t${e.kind}\t${atText}\t${e.data}`;
    }
    case 'close':
      return JSON.stringify({ n, op: 'close', close: { ...o.close, startedAt: o.close.startedAt.getTime() } });
    case 'session':
      return JSON.stringify({ n, op: 'session', session: { ...o.session, startedAt: o.session.startedAt.getTime() } });
    case 'event': {
      const e = o.event;
      return `${JSON.stringify({ n, op: 'event', session: e.session, seq: e.seq, kind: e.kind, at: e.at.getTime(), hash: e.hash })}\t${e.body}`;
    }
    case 'end':
      return JSON.stringify({ n, op: 'end', id: o.id, end: { ...o.end, endedAt: o.end.endedAt.getTime() } });
    case 'seal':
      return JSON.stringify({ n, op: 'seal', seal: { ...o.seal, startedAt: o.seal.startedAt.getTime() } });
  }
}

function fromLine(l: Line, body: string): StagedOp {
  switch (l.op) {
    case 'close':
      return { op: 'close', close: { ...l.close, startedAt: new Date(l.close.startedAt) } };
    case 'session':
      return { op: 'session', session: { ...l.session, startedAt: new Date(l.session.startedAt) } };
    case 'event':
      return { op: 'event', event: { session: l.session, seq: l.seq, kind: l.kind, at: new Date(l.at), body, hash: l.hash } };
    case 'end':
      return { op: 'end', id: l.id, end: { ...l.end, endedAt: new Date(l.end.endedAt) } };
    case 'seal': {
      return sealOp({ ...l.seal, startedAt: new Date(l.seal.startedAt) });
    }
  }
}

const OPS = new Set(['session', 'event', 'end', 'seal', 'close']);

/** An `E` line's op (fields after the tag: n, session, seq, kind, at; then the data), or undefined if it is not one. */
function fromEntryLine(raw: string): StagedOp | undefined {
  // indexOf and slice field by field: the ingest thread reads one of these per event.
  const t1 = raw.indexOf('\t', 2);
  const t2 = t1 < 0 ? -1 : raw.indexOf('\t', t1 + 1);
  const t3 = t2 < 0 ? -1 : raw.indexOf('\t', t2 + 1);
  const t4 = t3 < 0 ? -1 : raw.indexOf('\t', t3 + 1);
  const t5 = t4 < 0 ? -1 : raw.indexOf('\t', t4 + 1);
  if (t5 < 0) return undefined;
  const n = Number(raw.slice(2, t1));
  const session = raw.slice(t1 + 1, t2);
  const seq = Number(raw.slice(t2 + 1, t3));
  const kind = raw.slice(t3 + 1, t4);
  const at = Number(raw.slice(t4 + 1, t5));
  if (!Number.isSafeInteger(n) || !Number.isSafeInteger(seq) || seq < 1 || !Number.isSafeInteger(at) || session === '' || kind === '' || raw.charCodeAt(t5 + 1) !== 0x7b /* { */) return undefined;
  return { op: 'entry', entry: { session, seq, kind, at, data: raw.slice(t5 + 1) } };
}

/** The number of an `E` line (its first field). */
const entryNumber = (raw: string): number => Number(raw.slice(2, raw.indexOf('\t', 2)));

/**
 * Reads one journal file (its first `bytes` bytes, or all): its ops, and the number of the first
 * (NaN if none); a torn final line is left out.
 */
function readFile(path: string, bytes?: number): { first: number; ops: StagedOp[] } {
  const whole = readFileSync(path);
  const text = (bytes === undefined ? whole : whole.subarray(0, bytes)).toString('utf8');
  const lines = text.split('\n');
  // What follows the last newline: '' in a whole file, a torn line after a crash mid-append (never
  // acknowledged, so never forwarded on).
  lines.pop();
  const ops: StagedOp[] = [];
  let first = NaN;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (raw.startsWith('E\t')) {
      const op = fromEntryLine(raw);
      if (op === undefined) throw new JournalError(`${path}: line ${i + 1} is not an audit event entry`);
      if (i === 0) first = entryNumber(raw);
      ops.push(op);
      continue;
    }
    const tab = raw.indexOf('\t');
    let l: Line;
    try {
      l = JSON.parse(tab < 0 ? raw : raw.slice(0, tab)) as Line;
    } catch (err) {
      throw new JournalError(`${path}: line ${i + 1} is not JSON (${(err as Error).message})`);
    }
    if (typeof l !== 'object' || l === null || typeof l.n !== 'number' || !OPS.has(l.op) || (l.op === 'event') !== tab >= 0) {
      throw new JournalError(`${path}: line ${i + 1} is not an audit op`);
    }
    if (i === 0) first = l.n;
    ops.push(fromLine(l, raw.slice(tab + 1)));
  }
  return { first, ops };
}

/** The ops of the first `bytes` bytes of a journal file that rotate() handed over (for an ingest in another thread). */
export function readJournalPart(path: string, bytes: number): StagedOp[] {
  return readFile(path, bytes).ops;
}

/** What a previous process left in the journal, oldest first, to replay into the store. */
export function readJournal(dir: string): StagedOp[] {
  const files = FILES.map((f) => join(dir, f))
    .filter((p) => existsSync(p))
    .map((p) => readFile(p))
    .filter((f) => f.ops.length > 0)
    .sort((a, b) => a.first - b.first);
  return files.flatMap((f) => f.ops);
}

export interface JournalOptions {
  dir: string;
  /** fsync: fdatasync after every append (events survive power loss). */
  durability: 'process' | 'fsync';
}

/**
 * The open journal of this gateway process. Appends are serialised by the caller (one writer);
 * positional writes at the known end mean a failed, partial append is overwritten by its retry.
 */
export class AuditJournal {
  private readonly fds: [number, number];
  private readonly sizes: [number, number] = [0, 0];
  private active: 0 | 1 = 0;
  private n = 0;
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);

  /**
   * Takes the journal in `opts.dir` (refusing if another live gateway process holds it), hands
   * what a previous process left in it to `replay` (which must put it in the store), then starts
   * both files empty.
   */
  static async open(opts: JournalOptions, replay: (ops: StagedOp[]) => Promise<void>): Promise<AuditJournal> {
    const lockPath = join(opts.dir, LOCK);
    takeLock(lockPath);
    try {
      const left = readJournal(opts.dir);
      if (left.length > 0) await replay(left);
      return new AuditJournal(opts, lockPath);
    } catch (err) {
      releaseLock(lockPath);
      if (err instanceof JournalError) {
        throw new JournalError(`${err.message}. The gateway starts once the file is repaired or moved away (what it holds is then missing from the trail, and verification will say so)`);
      }
      throw err;
    }
  }

  private constructor(
    private readonly opts: JournalOptions,
    private readonly lockPath: string,
  ) {
    this.fds = [openSync(join(opts.dir, FILES[0]), 'w', 0o600), openSync(join(opts.dir, FILES[1]), 'w', 0o600)];
  }

  /** Whether appends are cheap enough to make synchronously (no fsync to wait for). */
  get appendsSync(): boolean {
    return this.opts.durability === 'process';
  }

  /** Bytes appended and not yet released by an ingest, in both files. */
  get backlogBytes(): number {
    return this.sizes[0] + this.sizes[1];
  }

  private encode(ops: readonly StagedOp[]): string {
    let text = '';
    for (const o of ops) text += `${toLine(++this.n, o)}\n`;
    return text;
  }

  /** Appends synchronously (and fdatasyncs with durability fsync). Throws on any failure; a retry rewrites the same place. */
  appendSync(ops: readonly StagedOp[]): void {
    if (ops.length === 0) return;
    const at = this.active;
    const text = this.encode(ops);
    // Encoded into a buffer kept for the purpose (no allocation per statement) when it surely
    // fits: a UTF-16 unit never takes more than 3 bytes of UTF-8.
    const buf = text.length * 3 <= this.scratch.length ? this.scratch : Buffer.from(text, 'utf8');
    const bytes = buf === this.scratch ? buf.write(text, 0, 'utf8') : buf.length;
    let written = 0;
    while (written < bytes) written += writeSync(this.fds[at], buf, written, bytes - written, this.sizes[at] + written);
    if (this.opts.durability === 'fsync') fdatasyncSync(this.fds[at]);
    this.sizes[at] += written;
  }

  /** Appends without blocking the event loop (for fsync, where the flush takes milliseconds). */
  async append(ops: readonly StagedOp[]): Promise<void> {
    if (ops.length === 0) return;
    const at = this.active;
    const fd = this.fds[at];
    const buf = Buffer.from(this.encode(ops), 'utf8');
    let off = 0;
    while (off < buf.length) off += (await writeAsync(fd, buf, off, buf.length - off, this.sizes[at] + off)).bytesWritten;
    if (this.opts.durability === 'fsync') await fdatasyncAsync(fd);
    this.sizes[at] += buf.length;
  }

  /**
   * Points appends at the other file. Returns the file just left (its path and length) and a
   * release() to call once its ops are in the store: it empties the file, unless the ingest
   * thread already did (`emptied`).
   */
  rotate(): { path: string; bytes: number; release: (emptied?: boolean) => void } {
    const old = this.active;
    const next = old === 0 ? 1 : 0;
    // A file whose emptying failed after its ingest is emptied now, or the rotation fails (and
    // with it the ingest, which marks the audit unavailable): appending after already-ingested
    // ops would ingest them twice and put them ahead of newer ones in a replay.
    if (this.sizes[next] !== 0) {
      ftruncateSync(this.fds[next], 0);
      this.sizes[next] = 0;
    }
    this.active = next;
    return {
      path: join(this.opts.dir, FILES[old]),
      bytes: this.sizes[old],
      release: (emptied = false) => {
        if (!emptied) ftruncateSync(this.fds[old], 0);
        this.sizes[old] = 0;
      },
    };
  }

  close(): void {
    for (const fd of this.fds) closeSync(fd);
    releaseLock(this.lockPath);
  }
}

/** Journals this process holds: its own pid in a lock file it does not hold means a previous process with the same pid (a container restarted after a crash). */
const held = new Set<string>();

function releaseLock(path: string): void {
  held.delete(path);
  try {
    unlinkSync(path);
  } catch {
    // already gone: nothing to release
  }
}

/** One gateway process per journal: a second one appending to the same files would corrupt both. */
function takeLock(path: string): void {
  try {
    writeFileSync(path, String(process.pid), { flag: 'wx', mode: 0o600 });
    held.add(path);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const pid = Number(readFileSync(path, 'utf8').trim());
  const ours = pid === process.pid;
  if ((ours && held.has(path)) || (!ours && Number.isInteger(pid) && pid > 0 && alive(pid))) {
    throw new JournalError(`${path}: the audit journal in this directory is in use by process ${pid}; each gateway needs its own state directory`);
  }
  // Left by a process that is gone (a crash), perhaps one that had this same pid: take it over.
  writeFileSync(path, String(process.pid), { mode: 0o600 });
  held.add(path);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
