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
import type { Decision } from '../../policy/index.js';
import { PARSE_STATE_RULE } from '../../policy/readingState.js';
import type { StatementDef } from './policyGate.js';

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

  /**
   * Before a Query's or Parse's text goes to the target: 'wait' (until the target is idle, then
   * ask again), a refusal, or undefined to go ahead. `outstanding` is the number of cycles the
   * target has not answered yet.
   */
  beforeText(outstanding: number): 'wait' | Decision | undefined {
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
  }
}
