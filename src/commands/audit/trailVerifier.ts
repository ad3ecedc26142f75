// Offline verification of an audit export (docs/audit.md, "Verifying an export"): recomputes every
// event chain and the ledger chain, checks each checkpoint's and the end line's Ed25519 signature
// with the auditor's copy of the gateway's public key, and cross-checks sessions against their
// seals and the signed end line. Pure: lines and a key in, a list of problems out; fed line by
// line (TrailVerifier), it holds one entry per session and ledger entry, never the events.
import { isUtf8 } from 'node:buffer';
import { verify as verifySignature, type KeyObject } from 'node:crypto';
import type { z } from 'zod';
import {
  checkpointMessage,
  eventHash,
  exportCheckpointLine,
  exportEndLine,
  exportEndMessage,
  exportEventLine,
  exportHeaderLine,
  exportLedgerLine,
  keyIdOf,
  ledgerHash,
  TRAIL_FORMAT,
  type EventKind,
  type ExportCheckpointLine,
  type ExportEndLine,
  type ExportEventLine,
  type ExportLedgerLine,
  type LedgerBody,
} from '../../api/auditTrail.js';

export interface Problem {
  /** 1-based line of the export the problem was found at, when there is one. */
  line?: number;
  session?: string;
  message: string;
}

export interface Verification {
  ok: boolean;
  /** In order of the lines they concern; the first is the first thing broken. */
  problems: Problem[];
  summary: {
    key: string;
    sessions: number;
    events: number;
    sealed: number;
    open: number;
    purged: number;
    ledger: { from: number; to: number };
    checkpoints: number;
    /** Witnessed checkpoints found in the export's ledger range and matched. */
    witnessed: number;
  };
}

interface Parsed<T> {
  line: number;
  value: T;
}

interface SessionState {
  count: number;
  prev: string;
  firstLine: number;
  /** The first thing wrong with the chain; later events of the session are not checked. */
  broken?: { line: number; message?: string; seq?: number; expected?: number; laterLine?: number };
}

/** A ledger head known from before (an earlier export's signed end line): the ledger must still pass through it. */
export interface Anchor {
  ledgerSeq: number;
  ledgerHash: string;
  /** How to name it in messages, e.g. the earlier export's file name. */
  name: string;
  /** A checkpoint from a witness file (`--witness`) rather than an earlier export's end line. */
  witness?: boolean;
}

/** verifyTrail over a whole export in memory (tests, small files). */
export function verifyTrail(text: string, key: KeyObject, anchors: readonly Anchor[] = []): Verification {
  const v = new TrailVerifier(key, anchors);
  for (const line of text.split('\n')) v.push(line);
  return v.finish();
}

/**
 * The verifier, fed one line at a time: memory grows with the number of sessions and ledger
 * entries, not with the events, so an export of any size verifies as it streams from disk. The
 * event chains are checked as the lines arrive; the ledger, checkpoints and sessions are checked
 * at the end, against the signed end line (the export's last line).
 */
export class TrailVerifier {
  private readonly problems: Problem[] = [];
  private readonly keyId: string;
  private lineNo = 0;
  private first: Parsed<Record<string, unknown>> | undefined;
  private header: z.infer<typeof exportHeaderLine> | undefined;
  /** The latest line: the end line if nothing follows it, a line in the middle otherwise. */
  private pending: Parsed<Record<string, unknown>> | undefined;
  private events = 0;
  /** The latest `at` of any event, in epoch ms: how long the trail goes on after its last checkpoint. */
  private lastEventAt = Number.NEGATIVE_INFINITY;
  private readonly states = new Map<string, SessionState>();
  private readonly ledger: Parsed<ExportLedgerLine>[] = [];
  private readonly checkpoints: Parsed<ExportCheckpointLine>[] = [];

  constructor(
    private readonly key: KeyObject,
    private readonly anchors: readonly Anchor[] = [],
  ) {
    this.keyId = keyIdOf(key);
  }

  /**
   * One line of the export as bytes, without its newline: it must be UTF-8. A decoder turns a
   * byte that is not into U+FFFD, so bytes that are not the gateway's could otherwise stand in
   * for a U+FFFD the gateway recorded and still verify, while other readers decode them otherwise.
   */
  pushBytes(bytes: Buffer): void {
    let text: string | undefined;
    try {
      if (isUtf8(bytes)) text = bytes.toString('utf8');
    } catch {
      // Longer than a JavaScript string can be: the gateway, which builds each line as one, did not write it.
      this.pushOversize(bytes.length - 1);
      return;
    }
    if (text !== undefined) {
      this.push(text);
      return;
    }
    const line = ++this.lineNo;
    this.problems.push({ line, message: 'the line is not valid UTF-8 (the gateway writes UTF-8 only): it was altered or damaged' });
  }

  /** A line longer than the verifier reads (its bytes were skipped): no gateway writes one. */
  pushOversize(bytes: number): void {
    const line = ++this.lineNo;
    this.problems.push({ line, message: `the line is longer than ${bytes} bytes, more than any line the gateway writes: it was altered` });
  }

  /** One line of the export, without its newline. */
  push(text: string): void {
    const line = ++this.lineNo;
    if (text.trim() === '') return;
    try {
      this.read(line, text);
    } catch (err) {
      // A line built to break the verifier itself (nesting deeper than the stack, say) is a
      // problem of that line, never a crash that hides the rest of the report.
      this.problems.push({ line, message: `the line cannot be read (${(err as Error).message}): it was not written by the gateway` });
    }
  }

  private read(line: number, text: string): void {
    let value: Record<string, unknown>;
    try {
      const v = JSON.parse(text) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      value = v as Record<string, unknown>;
    } catch {
      this.problems.push({ line, message: `not a JSON object (${line === 1 && text.charCodeAt(0) === 0xfeff ? 'it starts with a byte-order mark, which the gateway never writes' : 'the line was damaged or cut'})` });
      return;
    }
    // The gateway writes every line with JSON.stringify, and parsing and writing it again gives
    // the same bytes. A line that does not can mean one thing to this verifier and another to the
    // next reader: a key given twice (JSON.parse keeps the last, other parsers the first), a number
    // beyond a double's precision, `1e400`, escapes or spacing that hide text from a search. Only a
    // CR is forgiven (a copy through a tool that ends lines with CRLF): JSON has no raw CR inside a
    // string, so one can only stand between tokens, and a reader that splits lines at it finds
    // halves that do not parse rather than another reading.
    const form = formProblem(text.includes('\r') ? text.replace(/\r/g, '') : text, value);
    if (form !== undefined) {
      this.problems.push({ line, message: form });
      return;
    }
    const p = { line, value };
    if (this.first === undefined) {
      this.first = p;
      if (value.type === 'header') this.header = this.take(p, exportHeaderLine, 'header');
      else this.problems.push({ line, message: `the export does not start with its header line (found ${describeType(value)}${value.format && value.format !== TRAIL_FORMAT ? `, format ${String(value.format)}` : ''})` });
    } else if (this.pending !== undefined && this.pending !== this.first) {
      this.middle(this.pending);
    }
    this.pending = p;
  }

  private take<T>(p: Parsed<Record<string, unknown>>, schema: z.ZodType<T>, what: string): T | undefined {
    const r = schema.safeParse(p.value);
    if (r.success) return r.data;
    const issue = r.error.issues[0];
    this.problems.push({ line: p.line, message: `malformed ${what} line: ${issue ? `${issue.path.join('.') || '(line)'}: ${issue.message}` : 'invalid'}` });
    return undefined;
  }

  /** A line that is neither the first nor the last. */
  private middle(p: Parsed<Record<string, unknown>>): void {
    switch (p.value.type) {
      case 'event': {
        const v = this.take(p, exportEventLine, 'event');
        if (v) this.event(p.line, v, p.value);
        break;
      }
      case 'ledger': {
        const v = this.take(p, exportLedgerLine, 'ledger');
        if (v) this.ledger.push({ line: p.line, value: v });
        break;
      }
      case 'checkpoint': {
        const v = this.take(p, exportCheckpointLine, 'checkpoint');
        if (v) this.checkpoints.push({ line: p.line, value: v });
        break;
      }
      case 'header':
      case 'end':
        this.problems.push({ line: p.line, message: `a second ${String(p.value.type)} line in the middle of the export (exports were concatenated or lines moved)` });
        break;
      default:
        this.problems.push({ line: p.line, message: `unknown line type ${JSON.stringify(p.value.type)}` });
    }
  }

  /** One event, checked against its session's chain so far. */
  private event(line: number, v: ExportEventLine, raw: Record<string, unknown>): void {
    this.events++;
    const at = Date.parse(v.at);
    if (at > this.lastEventAt) this.lastEventAt = at;
    let st = this.states.get(v.session);
    if (!st) this.states.set(v.session, (st = { count: 0, prev: GENESIS, firstLine: line }));
    const b = st.broken;
    if (b !== undefined) {
      // Whether the event the chain expected comes after all (then the two were reordered).
      if (b.expected !== undefined && b.laterLine === undefined && v.seq === b.expected) b.laterLine = line;
      return;
    }
    const expected = st.count + 1;
    if (v.seq !== expected) {
      st.broken = { line, seq: v.seq, expected };
      return;
    }
    // Over the data as parsed, not the schema's copy of it, which drops a `__proto__` member: the
    // hash must cover every member a reader of the line sees.
    let hash: string;
    try {
      hash = eventHash(st.prev, { session: v.session, seq: v.seq, kind: v.kind as EventKind, at: v.at, data: raw.data as Record<string, unknown> });
    } catch (err) {
      st.broken = { line, message: `session ${v.session} event #${v.seq} (${v.kind}): its data has no canonical form (${(err as Error).message}): it was not written by the gateway` };
      return;
    }
    if (hash !== v.hash) {
      st.broken = { line, message: `session ${v.session} event #${v.seq} (${v.kind}): its content does not match its hash: it was changed after it was recorded` };
      return;
    }
    st.prev = v.hash;
    st.count = v.seq;
  }

  private checkUnsignedTail(end: ExportEndLine, endLine: number, signed: readonly Parsed<ExportCheckpointLine>[], add: (p: Problem) => void): void {
    let last: ExportCheckpointLine | undefined;
    for (const { value: c } of signed) if (last === undefined || c.ledgerSeq > last.ledgerSeq || (c.ledgerSeq === last.ledgerSeq && c.at > last.at)) last = c;
    const message = unsignedTail(end, last, this.lastEventAt, this.ledger);
    if (message !== undefined) add({ line: endLine, message });
  }

  /** Everything has been pushed: the checks that need the signed end line, and the verdict. */
  finish(): Verification {
    const { problems, key, keyId, states } = this;
    const add = (p: Problem) => problems.push(p);
    const summary: Verification['summary'] = { key: keyId, sessions: 0, events: 0, sealed: 0, open: 0, purged: 0, ledger: { from: 0, to: 0 }, checkpoints: 0, witnessed: 0 };
    const done = (): Verification => {
      const sorted = [...problems].sort((a, b) => (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER));
      return { ok: sorted.length === 0, problems: sorted, summary };
    };
    const first = this.first;
    const last = this.pending;
    if (first === undefined || last === undefined) {
      // Nothing readable at all (the wrong file, or an empty one): one problem says so, not one per line.
      problems.splice(0, problems.length, { message: 'the export is empty' });
      return done();
    }
    let end: ExportEndLine | undefined;
    if (last.value.type === 'end') end = this.take(last, exportEndLine, 'end');
    else add({ line: last.line, message: `the export has no signed end line: it was truncated after line ${last.line} (${describeType(last.value)})` });

    // ---- event chains: what broke them ----
    for (const [id, st] of states) {
      const b = st.broken;
      if (b === undefined) continue;
      const name = `session ${id}`;
      let message = b.message;
      if (message === undefined) {
        const [seq, expected] = [b.seq as number, b.expected as number];
        message =
          b.laterLine !== undefined
            ? `${name}: events are out of order: #${seq} (line ${b.line}) comes before #${expected} (line ${b.laterLine})`
            : seq > expected
              ? `${name}: event #${expected} is missing (the export goes from #${expected - 1} to #${seq})`
              : `${name}: event #${seq} appears again after #${expected - 1} (events reordered or duplicated)`;
      }
      add({ line: b.line, session: id, message });
    }
    summary.sessions = states.size;
    summary.events = this.events;

    // ---- signatures ----
    const signedBy = (k: string) => (k === keyId ? `key ${keyId}` : `key ${k}, not the given key ${keyId}`);
    const endLine = last.line;
    let endSigned = false;
    if (end) {
      const { sig, type: _t, ...body } = end;
      endSigned = checkSig(exportEndMessage(body), sig, key);
      if (!endSigned) add({ line: endLine, message: `the end line's signature does not verify with the given key (the export names ${signedBy(end.key)}): the export was altered or signed by another gateway` });
      if (this.header && canonicalScope(this.header.scope) !== canonicalScope(end.scope)) add({ line: first.line, message: 'the header and the signed end line disagree about the export\u2019s scope' });
      // The header is not signed: each of its fields must be one the end line signs.
      const h = this.header;
      if (h && (h.at !== end.at || h.key !== end.key)) add({ line: first.line, message: `the header's ${h.at !== end.at ? `time (${h.at})` : `key (${h.key})`} differs from the signed end line's (${h.at !== end.at ? end.at : end.key}): the header was edited` });
      if (h && h.gateway !== end.gateway) {
        add({
          line: first.line,
          message:
            end.gateway === undefined
              ? `the header names the gateway ${JSON.stringify(h.gateway)} but the signed end line names none: the header's gateway is not signed (export again from a gateway that signs it)`
              : `the header names the gateway ${JSON.stringify(h.gateway ?? null)} but the signed end line names ${JSON.stringify(end.gateway)}: the header was edited`,
        });
      }
    }
    const signedCheckpoints = new Set<Parsed<ExportCheckpointLine>>();
    for (const c of this.checkpoints) {
      const v = c.value;
      if (checkSig(checkpointMessage({ ledgerSeq: v.ledgerSeq, ledgerHash: v.ledgerHash, at: v.at, key: v.key }), v.sig, key)) signedCheckpoints.add(c);
      else {
        add({ line: c.line, message: `checkpoint of ledger #${v.ledgerSeq} (${v.at}): the signature does not verify with the given key (signed by ${signedBy(v.key)})` });
      }
    }

    // ---- ledger chain ----
    const sealed = new Map<string, { seq: number; line: number; entry: Extract<LedgerBody, { kind: 'session' }> }>();
    const purged = new Set<string>();
    const hashAt = new Map<number, string>();
    let ledgerOk = true;
    if (end) {
      let prev = end.ledgerPrev;
      let expected = end.ledgerFrom;
      hashAt.set(end.ledgerFrom - 1, end.ledgerPrev);
      for (const l of this.ledger) {
        const { type: _t, hash: stored, ...entry } = l.value;
        if (entry.seq !== expected) {
          add({ line: l.line, message: entry.seq > expected ? `ledger entry #${expected} is missing (the export goes on with #${entry.seq})` : `ledger entry #${entry.seq} is out of order (expected #${expected})` });
          ledgerOk = false;
          break;
        }
        if (ledgerHash(prev, entry as LedgerBody) !== stored) {
          add({ line: l.line, message: `ledger entry #${entry.seq}${entry.kind === 'session' ? ` (seal of session ${entry.session})` : ' (retention)'}: its content does not match its hash: the ledger was changed` });
          ledgerOk = false;
          break;
        }
        hashAt.set(entry.seq, stored);
        prev = stored;
        expected++;
        if (entry.kind === 'session') sealed.set(entry.session, { seq: entry.seq, line: l.line, entry });
        else for (const s of entry.sessions) purged.add(s);
      }
      if (ledgerOk && (expected - 1 !== end.ledgerSeq || prev !== end.ledgerHash)) {
        add({
          line: endLine,
          message:
            expected - 1 < end.ledgerSeq
              ? `the export's ledger stops at #${expected - 1} but the signed end line says it reaches #${end.ledgerSeq}: ledger entries were removed`
              : `the export's ledger (up to #${expected - 1}) does not end where the signed end line says (#${end.ledgerSeq})`,
        });
        ledgerOk = false;
      }
      summary.ledger = { from: end.ledgerFrom, to: expected - 1 };
    }

    if (end) {
      for (const a of this.anchors) {
        if (a.witness === true) {
          if (a.ledgerSeq > end.ledgerSeq) add({ line: endLine, message: `the export ends at ledger #${end.ledgerSeq}, behind ${a.name} of #${a.ledgerSeq}: ledger entries were removed, or the export is older than the witness` });
          else if (a.ledgerSeq < end.ledgerFrom - 1 || !ledgerOk) continue; // before a partial export's range: nothing to compare
          else if (hashAt.get(a.ledgerSeq) !== a.ledgerHash) add({ line: endLine, message: `the ledger differs at #${a.ledgerSeq} from ${a.name}: history was rewritten after it was signed` });
          else summary.witnessed++;
          continue;
        }
        if (a.ledgerSeq > end.ledgerSeq) {
          add({ line: endLine, message: `the ledger ends at #${end.ledgerSeq}, before ${a.name}'s #${a.ledgerSeq}: ledger entries were removed since` });
        } else if (a.ledgerSeq < end.ledgerFrom - 1) {
          add({ line: endLine, message: `the export's ledger starts at #${end.ledgerFrom}, after ${a.name}'s #${a.ledgerSeq}: export a scope that includes it to check continuity` });
        } else if (ledgerOk && hashAt.get(a.ledgerSeq) !== a.ledgerHash) {
          add({ line: endLine, message: `the ledger differs from ${a.name} at #${a.ledgerSeq}: history was rewritten since that export` });
        }
      }
    }
    for (const c of this.checkpoints) {
      const known = hashAt.get(c.value.ledgerSeq);
      summary.checkpoints++;
      if (known !== undefined && known !== c.value.ledgerHash) {
        add({ line: c.line, message: `checkpoint of ledger #${c.value.ledgerSeq} (${c.value.at}) signed a different ledger: the ledger was rewritten after it was signed` });
        signedCheckpoints.delete(c);
      } else if (known === undefined) signedCheckpoints.delete(c);
    }
    if (end && endSigned && ledgerOk) this.checkUnsignedTail(end, endLine, [...signedCheckpoints], add);

    // ---- sessions against seals and the signed end line ----
    if (end) {
      const listed = new Map(end.sessions.map((s) => [s.id, s]));
      for (const [id, s] of listed) {
        const st = states.get(id);
        if (!st) {
          add({ line: endLine, session: id, message: `session ${id}: the signed end line lists ${s.events} events, but none are in the export: the session was deleted` });
          continue;
        }
        if (st.broken) continue;
        if (st.count < s.events) add({ line: endLine, session: id, message: `session ${id}: the export holds ${st.count} of its ${s.events} events: the events after #${st.count} were removed (truncated)` });
        else if (st.count > s.events || st.prev !== s.last) add({ line: endLine, session: id, message: `session ${id}: its last event differs from the one the gateway signed at export: events were added or replaced` });
      }
      for (const [id, st] of states) {
        if (!listed.has(id)) add({ line: st.firstLine, session: id, message: `session ${id} is in the export but not in the signed end line: it was added after the export` });
      }
      if (ledgerOk) {
        for (const [id, seal] of sealed) {
          const st = states.get(id);
          if (!st) {
            if (!purged.has(id) && inScope(end.scope, seal.entry)) add({ line: seal.line, session: id, message: `session ${id} was sealed in ledger #${seal.seq} (${seal.entry.events} events) but its events are not in the export: the session was deleted` });
            continue;
          }
          if (st.broken) continue;
          // The chain's head is the hash of event #count: compared only when the counts agree.
          if (st.count !== seal.entry.events || st.prev !== seal.entry.final) {
            add({ line: seal.line, session: id, message: `session ${id}: its events do not match its seal in ledger #${seal.seq} (${seal.entry.events} events ending in ${seal.entry.final.slice(0, 12)}…)` });
          }
        }
      }
      summary.sealed = [...states.keys()].filter((id) => sealed.has(id)).length;
      summary.open = [...states.keys()].filter((id) => !sealed.has(id)).length;
      summary.purged = purged.size;
    }
    return done();
  }
}

const GENESIS = '0'.repeat(64);

/**
 * The gateway signs a checkpoint at least every `checkpointSeconds` and one at export time, so in an
 * honest export nothing comes after its last checkpoint. Events or ledger entries that go on longer
 * than the interval after the last checkpoint that verifies mean checkpoints were removed — what
 * someone rewriting history without the key must do.
 */
function unsignedTail(end: ExportEndLine, last: ExportCheckpointLine | undefined, lastEventAt: number, ledger: readonly Parsed<ExportLedgerLine>[]): string | undefined {
  if (end.checkpointSeconds === undefined) {
    return 'the signed end line does not say the gateway\u2019s checkpoint interval (an export from a gateway that did not sign it): nothing shows that no checkpoint was removed; export again';
  }
  const limitMs = end.checkpointSeconds * 1000;
  const after = ledger.filter((l) => last === undefined || l.value.seq > last.ledgerSeq).map((l) => Date.parse(l.value.at));
  if (last === undefined || lastEventAt > Date.parse(last.at)) after.push(lastEventAt);
  const finite = after.filter(Number.isFinite);
  if (finite.length === 0) return undefined;
  const from = last === undefined ? Math.min(...finite) : Date.parse(last.at);
  const span = Math.max(...finite) - from;
  if (last === undefined) return span > limitMs || ledger.length > 0 ? `the export has no signed checkpoint over its ledger: checkpoints were removed (the gateway signs one at least every ${end.checkpointSeconds} s and one at export)` : undefined;
  if (span <= limitMs) return undefined;
  return `the trail goes on ${Math.round(span / 1000)} s after the export's last signed checkpoint (ledger #${last.ledgerSeq}, ${last.at}), longer than the gateway's checkpoint interval of ${end.checkpointSeconds} s: checkpoints were removed, or the history after them was rewritten`;
}

/**
 * Why a line is not in the exact form the gateway writes (JSON.stringify of what it parses to), or
 * undefined when it is. Names where the two part, so whoever looks at the line finds the trick.
 */
function formProblem(text: string, value: unknown): string | undefined {
  const written = JSON.stringify(value);
  if (written === text) return undefined;
  let at = 0;
  while (at < text.length && text.charCodeAt(at) === written.charCodeAt(at)) at++;
  const near = JSON.stringify(text.slice(Math.max(0, at - 24), at + 24));
  return `the line is not written as the gateway writes it (it differs at character ${at + 1}, near ${near}): a repeated key, an escape, a number's form or spacing that readers may take differently; it was altered`;
}

function checkSig(message: Buffer, sig: string, key: KeyObject): boolean {
  try {
    return verifySignature(null, message, key, Buffer.from(sig, 'base64'));
  } catch {
    return false;
  }
}

function inScope(scope: ExportEndLine['scope'], seal: Extract<LedgerBody, { kind: 'session' }>): boolean {
  if (scope.kind === 'all') return true;
  if (scope.kind === 'session') return seal.session === scope.session;
  return Date.parse(seal.startedAt) >= Date.parse(scope.since);
}

function canonicalScope(s: ExportEndLine['scope']): string {
  return JSON.stringify(s.kind === 'all' ? { kind: 'all' } : s.kind === 'since' ? { kind: 'since', since: s.since } : { kind: 'session', session: s.session });
}

function describeType(v: Record<string, unknown>): string {
  if (typeof v.type !== 'string') return 'a line without a type';
  return `${/^[aeiou]/.test(v.type) ? 'an' : 'a'} ${v.type} line`;
}
