// The last checkpoint this gateway signed, kept OUTSIDE the store, beside its signing key: someone
// who can write the store but not read the key can recompute every hash of a rewritten history, but
// cannot sign it, and cannot reach this file. The gateway refuses to start, to sign a checkpoint or
// to sign an export over a ledger that no longer holds that checkpoint with the same hash (a
// rewrite), that ends before it (a truncation, a store restored from an older backup), or whose
// checkpoint row was deleted (docs/audit.md, "The last signed checkpoint"). The file is signed with
// the audit key as a whole, so it can be neither edited nor replaced by one naming an older
// checkpoint copied from the store, nor by one that names none.
//
// A checkpoint is written in three steps: the file names it `pending`, then the store gets it, then
// the file names it `checkpoint`. The ledger entries it covers are already committed when it is
// signed, so a crash between the steps leaves a pending checkpoint whose ledger entry the store has:
// the next start stores it again from the file (it is signed) — recoverable, and at no moment is a
// signed checkpoint in the store that the file does not protect. A confirmed checkpoint whose row is
// missing cannot be explained by a crash: it was deleted.
import { readFileSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { canonicalJson, checkpointMessage } from '../../src/api/auditTrail.js';
import type { AuditSnapshot, CheckpointRecord, Store } from '../store/types.js';
import type { AuditSigner } from './keys.js';

const FORMAT = 'sluice-audit/1 last-checkpoint';

/** A signed checkpoint as the file keeps it (the export's checkpoint line without its type). */
interface SignedCheckpoint {
  ledgerSeq: number;
  ledgerHash: string;
  at: string;
  key: string;
  sig: string;
}

interface FileContent {
  format: typeof FORMAT;
  /** The last checkpoint confirmed in the store; null before the first. */
  checkpoint: SignedCheckpoint | null;
  /** Signed and on its way into the store (present only between the steps of record()). */
  pending?: SignedCheckpoint;
}

/** What the file's own signature covers: its content, under a purpose no other signature has. */
function fileMessage(c: FileContent): Buffer {
  return Buffer.from(canonicalJson({ purpose: FORMAT, checkpoint: c.checkpoint, ...(c.pending !== undefined ? { pending: c.pending } : {}) }), 'utf8');
}

/** Where the file is: `audit-last-checkpoint.json` beside the signing key unless configured. */
export function lastCheckpointFileOf(settings: { readonly keyFile: string; readonly lastCheckpointFile?: string | undefined }): string {
  return settings.lastCheckpointFile ?? join(dirname(settings.keyFile), 'audit-last-checkpoint.json');
}

/** The store does not hold what this gateway signed: history was rewritten, truncated, or checkpoints deleted. */
export class AuditHistoryError extends Error {
  readonly code = 'audit_history_rewritten';
  constructor(message: string) {
    super(message);
    this.name = 'AuditHistoryError';
  }
}

const toFile = (c: CheckpointRecord): SignedCheckpoint => ({ ledgerSeq: c.ledgerSeq, ledgerHash: c.ledgerHash, at: c.at.toISOString(), key: c.keyId, sig: c.signature });
const toRecord = (c: SignedCheckpoint): CheckpointRecord => ({ ledgerSeq: c.ledgerSeq, ledgerHash: c.ledgerHash, at: new Date(c.at), keyId: c.key, signature: c.sig });
const short = (hash: string) => `${hash.slice(0, 12)}…`;
const describe = (c: SignedCheckpoint) => `ledger #${c.ledgerSeq} (hash ${short(c.ledgerHash)}, signed ${c.at})`;

/**
 * Writes the file so that a crash leaves the old content or the new, never a mix: temp, fsync,
 * rename, fsync the directory. Asynchronous: the fsyncs take 10–35 ms on these disks, which on
 * the event loop would stall every tunnel.
 */
async function writeAtomically(path: string, content: FileContent, signer: AuditSigner): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  // Unique per process: replicas on one host that share a key path share this file too.
  const tmp = `${path}.${process.pid}.tmp`;
  const file = await open(tmp, 'w', 0o600);
  try {
    await file.writeFile(`${JSON.stringify({ ...content, sig: signer.sign(fileMessage(content)) })}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function isSigned(v: unknown): v is SignedCheckpoint {
  const c = v as SignedCheckpoint;
  return typeof c === 'object' && c !== null && Number.isInteger(c.ledgerSeq) && c.ledgerSeq >= 0 && /^[0-9a-f]{64}$/.test(c.ledgerHash) && typeof c.at === 'string' && typeof c.key === 'string' && typeof c.sig === 'string';
}

function readFile(path: string, signer: AuditSigner): FileContent | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  let v: Partial<FileContent> & { sig?: unknown };
  try {
    v = JSON.parse(text) as Partial<FileContent>;
  } catch {
    throw new AuditHistoryError(`${path} is not the gateway's record of its last signed checkpoint (not JSON); it must not be edited`);
  }
  if (v.format !== FORMAT || (v.checkpoint !== null && !isSigned(v.checkpoint)) || (v.pending !== undefined && !isSigned(v.pending))) {
    throw new AuditHistoryError(`${path} is not the gateway's record of its last signed checkpoint (format ${JSON.stringify(v.format)}); it must not be edited`);
  }
  const content: FileContent = { format: FORMAT, checkpoint: v.checkpoint ?? null, ...(v.pending !== undefined ? { pending: v.pending } : {}) };
  const key: KeyObject = createPublicKey(signer.publicKeyPem);
  if (typeof v.sig !== 'string' || !verifySignature(null, fileMessage(content), key, Buffer.from(v.sig, 'base64'))) {
    // A record naming a checkpoint says which key signed it: when that is not the key the gateway
    // holds, it is the key that changed, and that is what the operator must be told.
    const recorded = content.pending?.key ?? content.checkpoint?.key;
    if (recorded !== undefined && recorded !== signer.keyId) {
      throw new AuditHistoryError(
        `${path} was signed with the audit key ${recorded}, but the audit key${signer.path !== undefined ? ` ${signer.path}` : ''} is key ${signer.keyId}: the key was replaced (or made anew because its file was missing). Put the gateway's key back: a new key cannot vouch for what the old one signed`,
      );
    }
    throw new AuditHistoryError(`${path} was not written by this gateway (it is not signed with the audit key ${signer.keyId}): it was edited or replaced. Restore it, or accept the store as it is with \`sluice-gateway audit accept-store\``);
  }
  return content;
}

/**
 * Accepts the store as it is: writes the file naming no checkpoint (signed), so the next start
 * checks nothing before its first checkpoint. For an upgrade from a gateway that did not keep the
 * file, or after the operator has checked the store otherwise (`sluice audit verify --anchor`,
 * `--witness`). Run by `sluice-gateway audit accept-store`, which can read the key.
 */
export async function acceptStore(file: string, signer: AuditSigner): Promise<void> {
  await writeAtomically(file, { format: FORMAT, checkpoint: null }, signer);
}

export interface LastCheckpointOptions {
  file: string;
  /** An append-only file that also receives each checkpoint, as an export's checkpoint line. */
  witness?: string;
  store: Store;
  signer: AuditSigner;
  log: Pick<Logger, 'warn' | 'info'>;
}

/** The file and the checks against it. Opened with openLastCheckpoint, which checks the store first. */
export class LastCheckpoint {
  private constructor(
    private readonly opts: LastCheckpointOptions,
    private last: SignedCheckpoint | null,
  ) {}

  /** The ledger entry of the last checkpoint signed (0: none yet). */
  get seq(): number {
    return this.last?.ledgerSeq ?? 0;
  }

  /** The checks of a start (see the module comment), after which the file names what the store holds. */
  static async open(opts: LastCheckpointOptions): Promise<LastCheckpoint> {
    const { file, store, signer, log } = opts;
    const content = readFile(file, signer);
    if (content === undefined) return LastCheckpoint.adopt(opts);
    let last = content.checkpoint;
    const pending = content.pending;
    if (pending !== undefined && (last === null || pending.ledgerSeq > last.ledgerSeq)) {
      if (!(await store.hasCheckpoint(pending.ledgerSeq, pending.ledgerHash))) {
        const found = await store.ledgerHashAt(pending.ledgerSeq);
        if (found !== pending.ledgerHash) throw new AuditHistoryError(mismatch(file, pending, found, await store.ledgerHead()));
        await store.addCheckpoint(toRecord(pending));
        log.warn({ file, ledgerSeq: pending.ledgerSeq }, 'the gateway stopped between signing a checkpoint and storing it; stored it now from the file');
      }
      last = pending;
    }
    // Against the confirmed checkpoint: a pending one may have died before its witness append.
    if (opts.witness !== undefined && content.checkpoint !== null) await checkWitness(opts.witness, content.checkpoint, signer, log);
    const guard = new LastCheckpoint(opts, last);
    await guard.assertInStore();
    if (pending !== undefined) await writeAtomically(file, { format: FORMAT, checkpoint: last }, signer);
    return guard;
  }

  /**
   * No file: a first start, an upgrade from a gateway that did not keep one, or a file someone
   * removed — with SQLite, whoever can write the store can write its directory, where the file
   * lives by default. An empty ledger needs nothing. A ledger with entries is refused: adopting the
   * store's last checkpoint would let whoever removed the file truncate the ledger to any checkpoint
   * or rewrite what came after it. The operator accepts the store explicitly (the message says how).
   */
  private static async adopt(opts: LastCheckpointOptions): Promise<LastCheckpoint> {
    const { file, store, signer } = opts;
    const head = await store.ledgerHead();
    if (head.seq === 0) {
      await writeAtomically(file, { format: FORMAT, checkpoint: null }, signer);
      return new LastCheckpoint(opts, null);
    }
    const stored = await store.lastCheckpoint();
    throw new AuditHistoryError(
      `${file} does not exist, but the store's ledger holds entries #1–#${head.seq}` +
        (stored ? ` (its last checkpoint: ledger #${stored.ledgerSeq}, ${stored.at.toISOString()})` : ' (and no checkpoint)') +
        `: this gateway has no record of what it signed, so it cannot tell this history from a rewritten or truncated one. ` +
        `The file is missing after an upgrade from a gateway that did not keep it, or because it was removed. ` +
        `To accept the store as it is, run \`sluice-gateway audit accept-store\` with this configuration and start again; ` +
        `then verify an export against an earlier one (--anchor) or the witness (--witness)`,
    );
  }

  /** Before signing anything: the ledger still holds the last signed checkpoint, and the store its row. */
  async assertInStore(): Promise<void> {
    const { file, store } = this.opts;
    const last = this.last;
    if (last === null) return;
    const found = await store.ledgerHashAt(last.ledgerSeq);
    if (found !== last.ledgerHash) throw new AuditHistoryError(mismatch(file, last, found, await store.ledgerHead()));
    if (!(await store.hasCheckpoint(last.ledgerSeq, last.ledgerHash))) {
      throw new AuditHistoryError(`${file}: the last checkpoint this gateway signed, ${describe(last)}, is not among the store's checkpoints: checkpoints were deleted from the store`);
    }
  }

  /** Before signing an export: its snapshot's ledger passes through the last signed checkpoint. */
  assertInSnapshot(snap: AuditSnapshot): void {
    const last = this.last;
    if (last === null) return;
    const { file } = this.opts;
    if (last.ledgerSeq > snap.head.seq) throw new AuditHistoryError(mismatch(file, last, undefined, snap.head));
    const found = last.ledgerSeq === snap.ledgerFrom - 1 ? snap.ledgerPrev : snap.ledger.find((l) => l.seq === last.ledgerSeq)?.hash;
    // An export whose ledger starts after the checkpoint (one session's) was checked against the store just before.
    if (found !== undefined && found !== last.ledgerHash) throw new AuditHistoryError(mismatch(file, last, found, snap.head));
  }

  /** Records a newly signed checkpoint: pending in the file, then in the store, then confirmed in the file. */
  async record(c: CheckpointRecord): Promise<void> {
    const { file, store, signer } = this.opts;
    const next = toFile(c);
    await writeAtomically(file, { format: FORMAT, checkpoint: this.last, pending: next }, signer);
    if (this.opts.witness !== undefined) await appendToWitness(this.opts.witness, next);
    await store.addCheckpoint(c);
    await writeAtomically(file, { format: FORMAT, checkpoint: next }, signer);
    this.last = next;
  }
}

/**
 * At start: the witness receives every checkpoint before the store does, so it holds the
 * checkpoint the record names or a later one. A witness whose newest entry is behind it, or that
 * holds a line which is not a checkpoint signed with the key, was rolled back or edited: refused,
 * naming the file, before anything is appended after the cut. Only the file's last 64 KiB (some
 * 250 checkpoints) are read: a year of checkpoints is large.
 * A missing or empty witness is started again, with a warning: a witness newly configured looks the
 * same, and the witness's place is out of the store's writers' reach in any case (docs/decisions.md).
 */
async function checkWitness(path: string, last: SignedCheckpoint, signer: AuditSigner, log: Pick<Logger, 'warn'>): Promise<void> {
  let tail: string;
  try {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      const length = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(length);
      await file.read(buf, 0, length, size - length);
      tail = buf.toString('utf8');
    } finally {
      await file.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the audit witness ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    tail = '';
  }
  // The tail's complete lines (the first may be cut by where the read began), newest last.
  const lines = tail.trimEnd().split('\n');
  if (tail.length === 64 * 1024) lines.shift();
  if (lines.every((l) => l.trim() === '')) {
    log.warn({ witness: path, ledgerSeq: last.ledgerSeq }, 'the audit witness is missing or empty though this gateway signed checkpoints; it starts again from the next one');
    return;
  }
  const key = createPublicKey(signer.publicKeyPem);
  let newest: SignedCheckpoint | undefined;
  for (const line of lines) {
    if (line.trim() === '') continue;
    let c: Partial<SignedCheckpoint> & { type?: unknown };
    try {
      c = JSON.parse(line) as typeof c;
    } catch {
      c = {};
    }
    const w = c.type === 'checkpoint' && isSigned(c) ? c : undefined;
    if (w === undefined || !verifySignature(null, checkpointMessage(w), key, Buffer.from(w.sig, 'base64'))) {
      throw new AuditHistoryError(`the audit witness ${path} holds a line that is not a checkpoint signed with the audit key ${signer.keyId}: it was edited. Restore it`);
    }
    if (w.ledgerSeq === last.ledgerSeq && w.ledgerHash !== last.ledgerHash) {
      throw new AuditHistoryError(`the audit witness ${path} holds a checkpoint of ledger #${w.ledgerSeq} with hash ${short(w.ledgerHash)}, but this gateway last signed ${describe(last)}: the witness or the record was rewritten. Restore it`);
    }
    // Replicas sharing a witness may append out of ledger order: the newest is the highest entry.
    if (newest === undefined || w.ledgerSeq > newest.ledgerSeq) newest = w;
  }
  if (newest !== undefined && newest.ledgerSeq < last.ledgerSeq) {
    throw new AuditHistoryError(
      `the audit witness ${path} ends at the checkpoint of ledger #${newest.ledgerSeq} (signed ${newest.at}), but this gateway last signed ${describe(last)} and appended it there first: the witness was rolled back or cut. Restore it`,
    );
  }
}

/**
 * Appends the checkpoint as one line (the export's checkpoint line) and fsyncs it. A failure fails
 * the checkpoint, which is retried: a checkpoint the witness does not have is not stored either.
 */
async function appendToWitness(path: string, c: SignedCheckpoint): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    const file = await open(path, 'a', 0o600);
    try {
      await file.appendFile(`${JSON.stringify({ type: 'checkpoint', ...c })}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
  } catch (err) {
    throw new Error(`cannot append to the audit witness ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

function mismatch(file: string, c: SignedCheckpoint, found: string | undefined, head: { seq: number }): string {
  const what =
    found === undefined
      ? head.seq < c.ledgerSeq
        ? `the store's ledger ends at #${head.seq}: ledger entries were removed (truncated, or the store was restored from an older backup)`
        : `the store's ledger has no entry #${c.ledgerSeq}: ledger entries were removed`
      : `the store's ledger has hash ${short(found)} at #${c.ledgerSeq}: the ledger was rewritten`;
  return `${file}: this gateway last signed a checkpoint of ${describe(c)}, but ${what}. The gateway does not sign over a history that does not contain what it signed before`;
}
