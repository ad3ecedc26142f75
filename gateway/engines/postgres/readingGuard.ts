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
import type { Decision } from '../../policy/index.js';
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

  constructor(private readonly catalog?: ShadowsSource) {}

  /**
   * Before a Query's or Parse's text goes to the target: 'wait' (until the target is idle, then
   * ask again), a refusal, a look-up to wait for before asking again, or undefined to go ahead.
   * `outstanding` is the number of cycles the target has not answered yet.
   */
  beforeText(outstanding: number): 'wait' | Decision | Promise<unknown> | undefined {
    if (this.unsure === undefined && (outstanding > 0 || this.cycleOpen) && this.catalog !== undefined) {
      if (this.shadows === null) return (this.loading ??= this.readShadows(this.catalog));
      if (this.shadows !== undefined) {
        this.unsure = this.shadows;
        this.inCycle = this.cycleOpen;
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
  }

  /** A Bind went to the target (binding plans the statement, which can already run functions). */
  bind(portal: string, def: StatementDef): void {
    this.cycleOpen = true;
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
  }

  /** A catalog that cannot be read trusts nothing either. */
  private async readShadows(catalog: ShadowsSource): Promise<void> {
    try {
      this.shadows = shadowsReason(await catalog.rows(SHADOWS_SQL));
    } catch (err) {
      this.shadows = `the catalog could not be read to check that built-in names reach built-ins (${(err as Error).message})`;
    }
  }
}
