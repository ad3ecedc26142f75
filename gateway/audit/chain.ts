// Chaining recorded events on their way into the store. A recorder stages each event as an entry
// (its session, number, kind, time and data in canonical JSON) and a session's end as a close;
// the hash chain — each event's canonical body and `sha256(prev ‖ body)`, and the seal's final
// hash — is computed here, where the ops are committed to the store: in the ingest thread for a
// gateway with a journal. Building and hashing bodies was a third of what recording cost the event
// loop per statement (docs/performance.md), and the event loop sits between two socket hops of
// every round trip; the journal keeps the entries, so nothing is lost by hashing later: the chain
// is a pure function of the entries in order.
import { GENESIS_HASH, jsonString, linkHash } from '../../src/api/auditTrail.js';
import type { AuditOp, EventRecord, SealInput } from '../store/types.js';
import { sealOp } from './ledger.js';

/** An event as a recorder stages it, before it is chained. */
export interface EventEntry {
  readonly session: string;
  /** 1, 2, 3, … within the session. */
  readonly seq: number;
  readonly kind: string;
  /** Epoch milliseconds. */
  readonly at: number;
  /** The event's data as canonical JSON (keys sorted, no undefined). */
  readonly data: string;
}

/** What a recorder stages: store ops, plus events and seals still to be chained. */
export type StagedOp = AuditOp | { op: 'entry'; entry: EventEntry } | { op: 'close'; close: Omit<SealInput, 'final'> };

/** The second last formatted, and its ISO-8601 text up to the milliseconds (`2026-11-05T10:04:05.`). */
let isoSecond = NaN;
let isoPrefix = '';

/**
 * `new Date(at).toISOString()` for the times of events: formatting a date takes about a
 * microsecond on these machines, as long as hashing the event, and the events of one ingest
 * share a handful of seconds.
 */
function isoOf(at: number): string {
  const second = Math.floor(at / 1000);
  if (second !== isoSecond) {
    const iso = new Date(at).toISOString();
    // Years outside 0000–9999 print differently: never cached.
    if (iso.length !== 24) return iso;
    isoSecond = second;
    isoPrefix = iso.slice(0, 20);
  }
  const ms = at - second * 1000;
  return `${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
}

/** `,"kind":…,"seq":` per kind, and `,"session":…}` of the last session: the parts of a body that repeat. */
const kindParts = new Map<string, string>();
let lastSession = '';
let lastSessionPart = '';

/** The canonical JSON of an entry's event (what its hash covers; docs/audit.md): keys in sorted order. */
export function entryBody(e: EventEntry): string {
  let kind = kindParts.get(e.kind);
  if (kind === undefined) {
    kind = `,"kind":${jsonString(e.kind)},"seq":`;
    if (kindParts.size < 64) kindParts.set(e.kind, kind);
  }
  if (e.session !== lastSession) {
    lastSession = e.session;
    lastSessionPart = `,"session":${jsonString(e.session)}}`;
  }
  return `{"at":"${isoOf(e.at)}","data":${e.data}${kind}${e.seq}${lastSessionPart}`;
}

/**
 * An event chained from an entry. Its body is built only when asked for: a store that keeps the
 * data instead (SQLite's runs, migration 5) never needs it, and it is a pure function of the fields.
 */
export class EntryEvent implements EventRecord {
  constructor(
    private readonly entry: EventEntry,
    readonly hash: string,
  ) {}
  get session(): string {
    return this.entry.session;
  }
  get seq(): number {
    return this.entry.seq;
  }
  get kind(): string {
    return this.entry.kind;
  }
  get at(): Date {
    return new Date(this.entry.at);
  }
  /** `at` in epoch milliseconds, without a Date (a store writing a run of events reads this instead). */
  get atMs(): number {
    return this.entry.at;
  }
  get data(): string {
    return this.entry.data;
  }
  get body(): string {
    return entryBody(this.entry);
  }
}

interface Head {
  seq: number;
  hash: string;
}

/** The hash of event `seq` of `session` as the store has it; undefined if it has no such event. */
export type EventHashLookup = (session: string, seq: number) => Promise<string | undefined>;

/** A session whose events could not be chained: its entries of one batch were set aside (`dropped` ops). */
export interface ChainProblem {
  session: string;
  message: string;
  dropped: number;
}

export interface Chained {
  ops: AuditOp[];
  /** Sessions set aside in this batch (to log: their events are missing from the trail). */
  problems: ChainProblem[];
  /** Call once the store has accepted `ops`: moves the chain heads. */
  done: () => void;
}

/**
 * The chain heads of the sessions whose events pass through one committer (one per thread that
 * commits). Heads move only when the store has accepted the ops (`done()`), so a failed commit is
 * retried from the same heads; a session this committer has not seen continuing (a restarted
 * ingest thread, a replay after a crash) is continued from the store.
 */
export class EventChains {
  private readonly heads = new Map<string, Head>();

  constructor(private readonly lookup?: EventHashLookup) {}

  /** Sessions being chained (for tests: sealed sessions are forgotten). */
  get size(): number {
    return this.heads.size;
  }

  /** chainSync, after fetching from the store the heads of sessions it would not know. */
  async chain(ops: readonly StagedOp[], now?: () => Date): Promise<Chained> {
    const fetched = new Map<string, Head | undefined>();
    for (const [session, seq] of this.unknown(ops)) {
      const hash = this.lookup ? await this.lookup(session, seq) : undefined;
      fetched.set(session, hash === undefined ? undefined : { seq, hash });
    }
    return this.chainSync(ops, now, fetched);
  }

  /**
   * Turns staged ops into store ops: each entry becomes an event with its body and hash, each
   * close a seal with the final hash. A session whose chain cannot be continued (an event that
   * does not follow the last one known, one after the session's seal, or one whose predecessor
   * the store does not have) is a problem of that session alone: its entries in this batch are
   * set aside and reported, everything else is committed — one stray entry must not stop the
   * audit of every session (each retry would fail the same way). Verification then names the
   * session's gap.
   */
  chainSync(ops: readonly StagedOp[], now?: () => Date, fetched?: ReadonlyMap<string, Head | undefined>): Chained {
    const local = new Map<string, Head | null>();
    const head = (s: string): Head | undefined => {
      const l = local.get(s);
      // What the store says beats this committer's memory: it is only asked when that memory disagrees.
      return l === null ? undefined : (l ?? (fetched?.has(s) ? fetched.get(s) : this.heads.get(s)));
    };
    const problems: ChainProblem[] = [];
    const setAside = new Map<string, ChainProblem>();
    const refuse = (session: string, message: string) => {
      const p = { session, message: `${message}: its events are not stored from there on`, dropped: 1 };
      setAside.set(session, p);
      problems.push(p);
    };
    const out: AuditOp[] = [];
    for (const o of ops) {
      if (o.op === 'entry') {
        const e = o.entry;
        const aside = setAside.get(e.session);
        if (aside !== undefined) {
          aside.dropped++;
          continue;
        }
        let prev: string;
        if (e.seq === 1) prev = GENESIS_HASH;
        else {
          const h = head(e.session);
          if (h === undefined || h.seq !== e.seq - 1) {
            refuse(e.session, `event ${e.seq} of session ${e.session} does not follow ${h === undefined ? (local.get(e.session) === null ? 'the session\u2019s seal' : 'any event the store has') : `event ${h.seq}`}`);
            continue;
          }
          prev = h.hash;
        }
        const hash = linkHash(prev, entryBody(e));
        // A head made in this batch is this batch's own: moved in place (one object per session, not per event).
        const mine = local.get(e.session);
        if (mine) {
          mine.seq = e.seq;
          mine.hash = hash;
        } else local.set(e.session, { seq: e.seq, hash });
        out.push({ op: 'event', event: new EntryEvent(e, hash) });
      } else if (o.op === 'close') {
        const c = o.close;
        const aside = setAside.get(c.id);
        if (aside !== undefined) {
          aside.dropped++;
          continue;
        }
        const h = head(c.id);
        if (h === undefined || h.seq !== c.events) {
          refuse(c.id, `session ${c.id} ends after event ${c.events}, but its chain ${h === undefined ? 'is unknown' : `ends at event ${h.seq}`}`);
          continue;
        }
        out.push(sealOp({ ...c, final: h.hash }, now));
        local.set(c.id, null);
      } else {
        // Already chained (a journal written before entries existed): it moves the head too.
        if (o.op === 'event') local.set(o.event.session, { seq: o.event.seq, hash: o.event.hash });
        else if (o.op === 'seal') local.set(o.seal.id, null);
        out.push(o);
      }
    }
    return {
      ops: out,
      problems,
      done: () => {
        for (const [s, h] of local) {
          if (h === null) this.heads.delete(s);
          else this.heads.set(s, h);
        }
      },
    };
  }

  /** Sessions the ops continue from an event this committer has not seen, and that event's number. */
  private unknown(ops: readonly StagedOp[]): Map<string, number> {
    const seen = new Set<string>();
    const need = new Map<string, number>();
    const first = (session: string, after: number) => {
      if (seen.has(session)) return;
      seen.add(session);
      if (after > 0 && this.heads.get(session)?.seq !== after) need.set(session, after);
    };
    for (const o of ops) {
      if (o.op === 'entry') first(o.entry.session, o.entry.seq - 1);
      else if (o.op === 'close') first(o.close.id, o.close.events);
      else if (o.op === 'event') first(o.event.session, 0);
      else if (o.op === 'seal') first(o.seal.id, 0);
    }
    return need;
  }
}

/** The lookup over a store's events. */
export function storeLookup(store: { eventsPage(sessionId: string, afterSeq: number, upToSeq: number, limit: number): Promise<{ hash: string }[]> }): EventHashLookup {
  return async (session, seq) => (await store.eventsPage(session, seq - 1, seq, 1))[0]?.hash;
}
