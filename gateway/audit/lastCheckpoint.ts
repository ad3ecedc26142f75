// The last checkpoint this gateway signed, kept OUTSIDE the store, beside its signing key: someone
// who can write the store but not read the key can recompute every hash of a rewritten history, but
// cannot sign it, and cannot reach this file. The gateway refuses to start, to sign a checkpoint or
// to sign an export over a ledger that no longer holds that checkpoint with the same hash (a
// rewrite), that ends before it (a truncation, a store restored from an older backup), or whose
// checkpoint row was deleted (docs/audit.md, "The last signed checkpoint").
//
// A checkpoint is written in three steps: the file names it `pending`, then the store gets it, then
// the file names it `checkpoint`. The ledger entries it covers are already committed when it is
// signed, so a crash between the steps leaves a pending checkpoint whose ledger entry the store has:
// the next start stores it again from the file (it is signed) — recoverable, and at no moment is a
// signed checkpoint in the store that the file does not protect. A confirmed checkpoint whose row is
// missing cannot be explained by a crash: it was deleted.
import { verify as verifySignature, createPublicKey } from 'node:crypto';
import { appendFileSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { checkpointMessage } from '../../src/api/auditTrail.js';
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

/** Writes the file so that a crash leaves the old content or the new, never a mix: temp, fsync, rename, fsync the directory. */
function writeAtomically(path: string, content: FileContent): void {
  mkdirSync(dirname(path), { recursive: true });
  // Unique per process: replicas on one host that share a key path share this file too.
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(content)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

function isSigned(v: unknown): v is SignedCheckpoint {
  const c = v as SignedCheckpoint;
  return typeof c === 'object' && c !== null && Number.isInteger(c.ledgerSeq) && c.ledgerSeq >= 0 && /^[0-9a-f]{64}$/.test(c.ledgerHash) && typeof c.at === 'string' && typeof c.key === 'string' && typeof c.sig === 'string';
}

function readFile(path: string): FileContent | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  let v: Partial<FileContent>;
  try {
    v = JSON.parse(text) as Partial<FileContent>;
  } catch {
    throw new AuditHistoryError(`${path} is not the gateway's record of its last signed checkpoint (not JSON); it must not be edited`);
  }
  if (v.format !== FORMAT || (v.checkpoint !== null && !isSigned(v.checkpoint)) || (v.pending !== undefined && !isSigned(v.pending))) {
    throw new AuditHistoryError(`${path} is not the gateway's record of its last signed checkpoint (format ${JSON.stringify(v.format)}); it must not be edited`);
  }
  return v as FileContent;
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
    const { file, store, log } = opts;
    const content = readFile(file);
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
    const guard = new LastCheckpoint(opts, last);
    await guard.assertInStore();
    if (pending !== undefined) writeAtomically(file, { format: FORMAT, checkpoint: last });
    return guard;
  }

  /**
   * No file: a first start, an upgrade from a gateway that did not keep one, or a state directory
   * that was lost. An empty ledger needs nothing. Otherwise the store's last checkpoint is adopted
   * when this key signed it and the ledger still holds it — what came before this start is then only
   * as trustworthy as the store was, which the log says. A ledger without such a checkpoint is refused.
   */
  private static async adopt(opts: LastCheckpointOptions): Promise<LastCheckpoint> {
    const { file, store, signer, log } = opts;
    const head = await store.ledgerHead();
    const stored = await store.lastCheckpoint();
    if (head.seq === 0 && stored === undefined) {
      writeAtomically(file, { format: FORMAT, checkpoint: null });
      return new LastCheckpoint(opts, null);
    }
    const publicKey = createPublicKey(signer.publicKeyPem);
    const signedHere =
      stored !== undefined &&
      stored.keyId === signer.keyId &&
      verifySignature(null, checkpointMessage({ ledgerSeq: stored.ledgerSeq, ledgerHash: stored.ledgerHash, at: stored.at.toISOString(), key: stored.keyId }), publicKey, Buffer.from(stored.signature, 'base64')) &&
      (await store.ledgerHashAt(stored.ledgerSeq)) === stored.ledgerHash;
    if (!signedHere) {
      throw new AuditHistoryError(
        `${file} does not exist, and the store's ledger (#1–#${head.seq}) has no last checkpoint signed with this gateway's key ${signer.keyId} that it still holds, ` +
          `so nothing shows that this is the history this gateway wrote. If it is (an upgrade from a gateway that did not keep the file), ` +
          `write {"format":"${FORMAT}","checkpoint":null} to ${file} to accept the store as it is; the next checkpoint is then recorded there`,
      );
    }
    const last = toFile(stored);
    writeAtomically(file, { format: FORMAT, checkpoint: last });
    log.warn({ file, ledgerSeq: last.ledgerSeq }, 'no record of the last signed checkpoint: adopted the store\u2019s last one (history before it is only as trustworthy as the store was)');
    return new LastCheckpoint(opts, last);
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
    const { file, store } = this.opts;
    const next = toFile(c);
    writeAtomically(file, { format: FORMAT, checkpoint: this.last, pending: next });
    if (this.opts.witness !== undefined) appendToWitness(this.opts.witness, next);
    await store.addCheckpoint(c);
    writeAtomically(file, { format: FORMAT, checkpoint: next });
    this.last = next;
  }
}

/**
 * Appends the checkpoint as one line (the export's checkpoint line) and fsyncs it. A failure fails
 * the checkpoint, which is retried: a checkpoint the witness does not have is not stored either.
 */
function appendToWitness(path: string, c: SignedCheckpoint): void {
  let fd: number | undefined;
  try {
    mkdirSync(dirname(path), { recursive: true });
    fd = openSync(path, 'a', 0o600);
    appendFileSync(fd, `${JSON.stringify({ type: 'checkpoint', ...c })}\n`);
    fsyncSync(fd);
  } catch (err) {
    throw new Error(`cannot append to the audit witness ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  } finally {
    if (fd !== undefined) closeSync(fd);
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
