// `sluice audit verify trail.jsonl --key gateway.pub`: checks an export offline — no gateway, no
// network. Exit 0 only when every chain, seal and signature verifies; otherwise the first broken
// event or session is named, with why, and the exit code is 1.
// The verifier and the trail's schemas are loaded when the command runs, not when `sluice` starts.
import { createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { CliError, UsageError } from '../../errors.js';
import type { Factory } from '../../factory.js';
import { print, say } from '../../io.js';
import type { Anchor, Verification } from './trailVerifier.js';

export class TrailBrokenError extends CliError {}

const trailSchemas = () => import('../../api/auditTrail.js');

export function defineAuditVerify(f: Factory): Command {
  return new Command('verify')
    .description('check an export offline: chains, seals and signatures (exit 0 only if all verify)')
    .argument('<file>', 'the export (JSON Lines), or - for stdin')
    .requiredOption('--key <file>', "the gateway's public key (PEM), from `sluice audit key`")
    .option('--anchor <export...>', 'earlier exports whose signed ledger head the ledger must still contain')
    .option('--witness <file>', "the gateway's witness file (audit.witness): every checkpoint in it must be in the ledger, and the export not behind it")
    .option('--json', 'print the full result as JSON')
    .action((file: string, o: { key: string; json?: boolean; anchor?: string[]; witness?: string }) =>
      runAuditVerify({ file, key: o.key, json: Boolean(o.json), anchors: o.anchor ?? [], ...(o.witness !== undefined ? { witness: o.witness } : {}) }, f),
    );
}

export interface AuditVerifyOptions {
  /** The export, or `-` for stdin. */
  file: string;
  key: string;
  json: boolean;
  /** Earlier exports whose signed ledger heads the new export must still contain. */
  anchors?: string[];
  /** The gateway's witness file: each checkpoint in it must be in the export's ledger, and the export not behind it. */
  witness?: string;
}

export async function runAuditVerify(opts: AuditVerifyOptions, f: Factory): Promise<void> {
  const { io } = f;
  const file = opts.file;
  let key: KeyObject;
  try {
    key = createPublicKey(readFileSync(opts.key, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read the public key ${opts.key}: ${(err as NodeJS.ErrnoException).code ?? 'not a PEM public key'}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new UsageError(`${opts.key} is a ${key.asymmetricKeyType} key; the gateway signs with Ed25519 (get its key with \`sluice audit key\`)`);
  const anchors: Anchor[] = [];
  for (const a of opts.anchors ?? []) anchors.push(await readAnchor(a, key));
  if (opts.witness !== undefined) anchors.push(...(await readWitness(opts.witness, key)));
  const v = await verifyStream(file, file === '-' ? io.stdin : undefined, key, anchors);
  if (opts.json) print(io, JSON.stringify(v));
  const s = v.summary;
  if (v.ok) {
    say(
      io,
      `verified: ${s.sessions} sessions (${s.sealed} sealed, ${s.open} still open), ${s.events} events, ledger #${s.ledger.from}–#${s.ledger.to}, ` +
        `${s.checkpoints} signed checkpoints and the signed end line, with key ${s.key}` +
        (opts.witness !== undefined ? `; ${s.witnessed} checkpoints of the witness found in the ledger` : '') +
        (s.purged > 0 ? `; ${s.purged} sessions' events were removed by retention (their seals verify)` : ''),
    );
    return;
  }
  const first = v.problems[0]!;
  const more = v.problems.length - 1;
  if (!opts.json && v.problems.length > 1) {
    say(io, `${v.problems.length} problems:`);
    for (const p of v.problems.slice(0, 20)) say(io, `  ${p.line ? `line ${p.line}: ` : ''}${p.message}`);
  }
  throw new TrailBrokenError(
    `the audit trail does NOT verify: ${first.line ? `line ${first.line}: ` : ''}${first.message}${more > 0 ? ` (and ${more} more problem${more > 1 ? 's' : ''})` : ''}`,
  );
}

/** The signed ledger head of an earlier export (its end line), checked with the same key. */
async function readAnchor(file: string, key: KeyObject): Promise<Anchor> {
  const { exportEndLine, exportEndMessage } = await trailSchemas();
  let last: string | undefined;
  try {
    last = readFileSync(file, 'utf8').trimEnd().split('\n').at(-1);
  } catch (err) {
    throw new UsageError(`cannot read the anchor ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let parsed;
  try {
    parsed = exportEndLine.safeParse(JSON.parse(last ?? ''));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) throw new UsageError(`${file} does not end with an export's end line`);
  const { sig, type: _t, ...body } = parsed.data;
  if (!verifySignature(null, exportEndMessage(body), key, Buffer.from(sig, 'base64'))) throw new UsageError(`the end line of ${file} does not verify with the given key`);
  return { ledgerSeq: body.ledgerSeq, ledgerHash: body.ledgerHash, name: file };
}

/**
 * The checkpoints of a witness file, one line each as the gateway appends them, each checked with
 * the key: a line that is not a checkpoint signed with it makes the witness unusable. A checkpoint
 * repeated (the same ledger entry and hash signed again after a failed store write) is kept once.
 */
export async function readWitness(file: string, key: KeyObject): Promise<Anchor[]> {
  const { checkpointMessage, exportCheckpointLine } = await trailSchemas();
  const seen = new Map<string, Anchor>();
  let n = 0;
  try {
    for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
      n++;
      if (text.trim() === '') continue;
      let parsed;
      try {
        parsed = exportCheckpointLine.safeParse(JSON.parse(text));
      } catch {
        parsed = undefined;
      }
      const c = parsed?.success ? parsed.data : undefined;
      if (c === undefined || !verifySignature(null, checkpointMessage(c), key, Buffer.from(c.sig, 'base64'))) {
        throw new UsageError(`the witness ${file} line ${n} is not a checkpoint signed with the given key`);
      }
      const id = `${c.ledgerSeq}:${c.ledgerHash}`;
      if (!seen.has(id)) seen.set(id, { ledgerSeq: c.ledgerSeq, ledgerHash: c.ledgerHash, name: `the witness's checkpoint (${file} line ${n})`, witness: true });
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read the witness ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return [...seen.values()];
}

/**
 * The longest line the verifier reads. The gateway builds each line as one JavaScript string, which
 * V8 caps at 2^29 − 24 UTF-16 units, each at most 3 bytes of UTF-8: no line of an export is longer.
 */
export const MAX_LINE_BYTES = 3 * (2 ** 29 - 24);

/**
 * Feeds the export to the verifier line by line as it is read: an export of any size verifies in
 * little memory. Lines end at LF only (a stray CR is JSON whitespace, as in the gateway's
 * exports), and a character split between two reads is decoded whole. A line's chunks are kept
 * until its newline and joined once (joining at every read made a long line cost the square of
 * its length); a line longer than any the gateway writes is skipped up to its newline, unread.
 */
export async function verifyStream(file: string, stdin: AsyncIterable<Buffer | string> | undefined, key: KeyObject, anchors: Anchor[], maxLineBytes = MAX_LINE_BYTES): Promise<Verification> {
  const { TrailVerifier } = await import('./trailVerifier.js');
  const verifier = new TrailVerifier(key, anchors);
  const chunks = (stdin ?? createReadStream(file))[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  let parts: Buffer[] = [];
  let length = 0;
  let oversize = false;
  const endLine = (tail: Buffer): void => {
    if (oversize) verifier.pushOversize(maxLineBytes);
    else verifier.pushBytes(parts.length === 0 ? tail : Buffer.concat([...parts, tail]));
    parts = [];
    length = 0;
    oversize = false;
  };
  for (;;) {
    let r: IteratorResult<Buffer | string>;
    try {
      r = await chunks.next();
    } catch (err) {
      // Only reading fails this way; a problem inside the verifier is not a read error.
      throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (r.done) break;
    let buf = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a)) {
      if (length + nl > maxLineBytes) oversize = true;
      endLine(buf.subarray(0, nl));
      buf = buf.subarray(nl + 1);
    }
    if (buf.length === 0) continue;
    length += buf.length;
    if (length > maxLineBytes) {
      oversize = true;
      parts = [];
    } else parts.push(buf);
  }
  if (length > 0 || oversize) endLine(Buffer.alloc(0));
  return verifier.finish();
}
