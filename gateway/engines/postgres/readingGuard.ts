// Keeps the target from reading a pipelined statement's text in settings the gateway has not
// seen. When a statement that may change client_encoding or standard_conforming_strings (see
// policy/readingState.ts: a RESET, a set_config() of a computed value, a call of a function the
// client could have written, CALL, EXECUTE, …) has gone to the target, the next Query or Parse
// waits until the target has answered everything — its ReadyForQuery comes after the
// ParameterStatus of any change, and a change the gateway cannot read as the server does ends
// the session (serverFlow.ts) before the waiting text is forwarded.
//
// Inside one extended-protocol cycle there is nothing to wait for: the server reports changed
// settings only with ReadyForQuery, which comes after Sync. A Parse (or Query) that follows such
// a Bind or Execute before the client's Sync is therefore refused.
//
// A statement judged to change nothing trusts built-in names (lower(), +). Where the database
// defines something that could pass for one (readingShadows.ts), nothing is trusted: the first
// time text arrives while earlier text is unanswered, the catalog is read (once per session), and
// if it has such objects every pipelined text waits, as it does behind an uncertain statement.
//
// A statement that names no function can still run code: what an administrator attached to the
// relations it touches (triggers, defaults, checks, domains, index expressions, row security
// policies, rules, views: policy/attachedCode.ts). The same catalog read finds it; text that
// follows a statement touching a relation with such code that is not trusted to leave
// client_encoding alone waits for that statement's answer (or is refused inside its cycle), as
// it would behind a call of that code by name. A session that never pipelines reads nothing.
import type { Decision, RelationRef, StatementAnalysis } from '../../policy/index.js';
import { ATTACHED_CODE_SQL, ATTACHED_REACH_SQL, attachedCodeFromRows, attachedFunctions, mayChangeReading, type AttachedCode } from '../../policy/attachedCode.js';
import { PARSE_STATE_RULE } from '../../policy/readingState.js';
import type { StatementDef } from './policyGate.js';
import { SHADOWS_SQL, shadowsReason } from './readingShadows.js';

/** The catalog connection (catalog.ts TargetCatalog). */
export interface ShadowsSource {
  rows(sql: string): Promise<(string | null)[][]>;
}

/** Why running `def` may change how the target reads text, if it may. */
export function readingUncertainty(def: StatementDef): string | undefined {
  if (!def.analysis.ok) return undefined;
  for (const s of def.analysis.statements) if (s.reading?.effect === 'uncertain') return s.reading.reason;
  return undefined;
}

/** Every relation a statement and the statements nested in it touch. */
function relationsOf(statements: readonly StatementAnalysis[], out: RelationRef[] = []): RelationRef[] {
  for (const s of statements) {
    out.push(...s.relations);
    if (s.nested.length > 0) relationsOf(s.nested.map((n) => n.statement), out);
  }
  return out;
}

const relationsOfDef = (def: StatementDef): readonly RelationRef[] => (def.analysis.ok ? relationsOf(def.analysis.statements) : []);


/** Per-session state: what has gone to the target that may have changed its reading. */
export class ReadingGuard {
  /** Why the target's settings are unknown until it has answered everything sent so far. */
  private unsure: string | undefined;
  /** The unsure statement ran in the current extended-protocol cycle (before its Sync). */
  private inCycle = false;
  /** Portals bound to statements that may change the settings: each Execute runs them again. */
  private readonly portals = new Set<string>();
  /** A Bind or Execute went to the target since the client's last Sync. */
  private cycleOpen = false;
  /** Why built-in names cannot be trusted here (readingShadows.ts); null until the catalog is read. */
  private shadows: string | undefined | null = null;
  private loading: Promise<unknown> | undefined;
  /** The database's attached code (read with the shadows). */
  private attached: AttachedCode | undefined;
  /**
   * What went to the target and is unanswered, each statement once, with whether it ran since the
   * client's last Sync; its relations are looked at only when text is pipelined behind it.
   */
  private readonly sent = new Map<StatementDef, boolean>();
  /** The statement each bound portal runs: each Execute runs it again. */
  private readonly portalDefs = new Map<string, StatementDef>();

  /** `outstanding`: the number of cycles the target has not answered yet. */
  constructor(
    private readonly catalog?: ShadowsSource,
    private readonly outstanding: () => number = () => 0,
  ) {}

  /**
   * Before a Query's or Parse's text goes to the target: 'wait' (until the target is idle, then
   * ask again), a refusal, a look-up to wait for before asking again, or undefined to go ahead.
   * `outstanding` is the number of cycles the target has not answered yet.
   */
  beforeText(outstanding: number): 'wait' | Decision | Promise<unknown> | undefined {
    // Everything before the open cycle has been answered (and its settings checked).
    if (outstanding === 0) this.answered();
    if (this.unsure === undefined && (outstanding > 0 || this.cycleOpen) && this.catalog !== undefined) {
      if (this.shadows === null) return (this.loading ??= this.readShadows(this.catalog));
      if (this.shadows !== undefined) {
        this.unsure = this.shadows;
        this.inCycle = this.cycleOpen;
      } else {
        const attached = this.attachedCode();
        if (attached !== undefined) {
          this.unsure = attached.reason;
          this.inCycle = attached.inCycle;
        }
      }
    }
    if (this.unsure === undefined) return undefined;
    if (this.inCycle) {
      return {
        verdict: 'block',
        rule: PARSE_STATE_RULE,
        reason: `the statement before it in this pipeline may change how the server reads text (${this.unsure}), and the server reports that only at Sync: send Sync before the next statement`,
        hits: [],
      };
    }
    if (outstanding > 0) return 'wait';
    this.unsure = undefined;
    return undefined;
  }

  /** A Query went to the target. */
  query(def: StatementDef): void {
    const why = readingUncertainty(def);
    if (why !== undefined) this.unsure = why;
    this.touched(def, false);
  }

  private touched(def: StatementDef | undefined, inCycle: boolean): void {
    if (def === undefined || this.catalog === undefined) return;
    if (this.sent.size > 0 && this.outstanding() === 0) this.answered();
    if (this.sent.get(def) !== true) this.sent.set(def, inCycle);
  }

  /** The target has answered every cycle before the open one: only what ran in it is unanswered. */
  private answered(): void {
    if (this.sent.size === 0) return;
    if (!this.cycleOpen) return this.sent.clear();
    for (const [def, inCycle] of this.sent) if (!inCycle) this.sent.delete(def);
  }

  /**
   * Why an unanswered statement may have changed the target's reading through code attached to
   * a relation it touches, and whether it ran in the open cycle; undefined when none did.
   */
  private attachedCode(): { reason: string; inCycle: boolean } | undefined {
    const code = this.attached;
    if (code === undefined || code.byName.size === 0) return undefined;
    let found: { reason: string; inCycle: boolean } | undefined;
    for (const [def, inCycle] of this.sent) {
      if (found?.inCycle === true) break;
      const f = attachedFunctions(code, relationsOfDef(def)).find(mayChangeReading);
      if (f !== undefined && (found === undefined || inCycle)) {
        const fn = f.opaque === true ? 'code the gateway cannot read' : `${f.fn.schema !== undefined ? `${f.fn.schema}.` : ''}${f.fn.name}()`;
        found = { reason: `the ${f.what} on ${f.relation} runs ${fn}, which may change client_encoding`, inCycle };
      }
    }
    return found;
  }

  /** A Bind went to the target (binding plans the statement, which can already run functions). */
  bind(portal: string, def: StatementDef): void {
    this.cycleOpen = true;
    this.portalDefs.set(portal, def);
    this.touched(def, true);
    const why = readingUncertainty(def);
    if (why === undefined) {
      this.portals.delete(portal);
      return;
    }
    this.portals.add(portal);
    this.unsure = why;
    this.inCycle = true;
  }

  /** An Execute went to the target. */
  execute(portal: string): void {
    this.cycleOpen = true;
    this.touched(this.portalDefs.get(portal), true);
    if (!this.portals.has(portal)) return;
    this.unsure ??= `portal "${portal}" runs a statement that may change client_encoding`;
    this.inCycle = true;
  }

  /** A FunctionCall went to the target: a cycle of its own. */
  call(def: StatementDef | undefined): void {
    if (def === undefined) this.unsure = 'a fast-path call of a function the gateway could not name';
    else this.query(def);
  }

  /** The client's Sync went to the target: the cycle's answer (and any ParameterStatus) follows. */
  sync(): void {
    this.inCycle = false;
    this.cycleOpen = false;
    for (const def of this.sent.keys()) this.sent.set(def, false);
  }

  /** A catalog that cannot be read trusts nothing either. */
  private async readShadows(catalog: ShadowsSource): Promise<void> {
    try {
      const shadows = shadowsReason(await catalog.rows(SHADOWS_SQL));
      this.attached = shadows === undefined ? attachedCodeFromRows(await catalog.rows(ATTACHED_CODE_SQL), await catalog.rows(ATTACHED_REACH_SQL)) : undefined;
      this.shadows = shadows;
    } catch (err) {
      this.shadows = `the catalog could not be read to check that built-in names reach built-ins and what code is attached to tables (${(err as Error).message})`;
    }
  }
}
