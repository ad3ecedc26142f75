// An exec input as the runner sends it: its top-level statements (split by PostgreSQL's own
// parser, so a semicolon inside a string, comment or function body never splits), and the
// policy's verdict on the whole input before anything runs, which decides whether it is refused
// at once or needs one review covering all of it. The engine judges every statement again as it
// runs: this pre-check only decides what to ask for up front; it never lets anything through.
import { analyzeSql, evaluate, type CompiledPolicy, type Decision, type SqlAnalysis } from '../policy/index.js';
import type { Identity } from '../model.js';

export interface ExecScript {
  /** The statements to send, one simple Query each, in order. */
  readonly statements: readonly string[];
  /** The parser's analysis of the whole input (not ok: the input is sent whole, as one Query). */
  readonly analysis: SqlAnalysis;
}

/**
 * Splits `input` into its top-level statements' source text. Input the parser rejects is kept
 * whole as one statement: the engine then refuses it or the server reports the syntax error, so
 * nothing the gateway cannot read is run piecemeal. Input with no statement (blank, comments
 * only) yields none.
 */
export function splitScript(input: string): ExecScript {
  const analysis = analyzeSql(input);
  if (!analysis.ok) return { statements: [input], analysis };
  return { statements: analysis.statements.map((s) => s.text), analysis };
}

/** What the policy says about the whole input before it runs. */
export type PreCheck =
  | { readonly verdict: 'allow' }
  | { readonly verdict: 'block'; readonly decision: Decision; readonly statement?: number }
  | { readonly verdict: 'review'; readonly decision: Decision };

/**
 * Evaluates the connection's policy on the whole input, as the engine evaluates one Query holding
 * all of it: a block anywhere blocks it, else a review anywhere asks for one. An unparseable input
 * is left to the engine (it refuses what it cannot read whenever a rule applies).
 */
export function preCheck(script: ExecScript, identity: Identity, policy: CompiledPolicy | undefined, input: string): PreCheck {
  if (policy === undefined || !script.analysis.ok || script.statements.length === 0) return { verdict: 'allow' };
  const decision = evaluate(identity, policy, { kind: 'sql', analysis: script.analysis, text: input });
  if (decision.verdict === 'allow') return { verdict: 'allow' };
  if (decision.verdict === 'review') return { verdict: 'review', decision };
  // Name the statement for the client: the first one that is blocked on its own.
  const statements = script.analysis.statements;
  const index = statements.findIndex((s) => evaluate(identity, policy, { kind: 'sql', analysis: { ok: true, statements: [s] }, text: s.text }).verdict === 'block');
  return { verdict: 'block', decision, ...(index >= 0 ? { statement: index } : {}) };
}

/** The message the engine gives a blocked statement (clientFlow.ts), so both read the same. */
export function blockMessage(d: Decision): string {
  const reason = d.reason ?? 'blocked by policy';
  return reason.startsWith('blocked by rule ') || d.rule === undefined ? reason : `blocked by rule ${d.rule}: ${reason}`;
}
