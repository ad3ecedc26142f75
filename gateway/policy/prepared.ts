// Per-session memory of prepared statements, so `EXECUTE x` (and a protocol-level Execute of a
// named statement) is judged as the statement `x` was prepared from. The engine keeps one per
// session and updates it only from what the server confirms — CommandComplete for PREPARE,
// DEALLOCATE and DISCARD ALL, ParseComplete and CloseComplete for the extended protocol — never
// from what the client merely sent: a PREPARE that fails (the name exists, the transaction is
// aborted) must not replace a definition the server still holds.
import type { SqlAnalysis, StatementAnalysis } from './sql.js';

/** More than any sane client keeps; beyond it the oldest are forgotten (EXECUTE then fails closed). */
const DEFAULT_CAPACITY = 10_000;

export interface PreparedStatement {
  /** The statement that runs on EXECUTE (the inner statement of PREPARE … AS). */
  readonly statement: StatementAnalysis;
  /** The text the client sent to define it (a Query with the PREPARE, or the Parse's SQL): `sql` rules match it. */
  readonly text: string;
}

export class PreparedStatements {
  private readonly byName = new Map<string, PreparedStatement>();

  constructor(private readonly capacity = DEFAULT_CAPACITY) {}

  /** The statement prepared under `name`, or undefined when the gateway does not know it. */
  get(name: string): PreparedStatement | undefined {
    return this.byName.get(name);
  }

  /** Every statement known, by name (a copy: redefining while iterating is safe). */
  entries(): [string, PreparedStatement][] {
    return [...this.byName];
  }

  get size(): number {
    return this.byName.size;
  }

  define(name: string, statement: StatementAnalysis, text: string): void {
    this.byName.delete(name);
    this.byName.set(name, { statement, text });
    if (this.byName.size > this.capacity) {
      const oldest = this.byName.keys().next().value as string;
      this.byName.delete(oldest);
    }
  }

  remove(name: string): void {
    this.byName.delete(name);
  }

  clear(): void {
    this.byName.clear();
  }

  /**
   * Call for each top-level statement of a Query in order as the server reports it complete
   * (CommandComplete): records PREPARE, forgets on DEALLOCATE [ALL] and DISCARD ALL.
   * `queryText` is the whole Query message's text.
   */
  completed(statement: StatementAnalysis, queryText: string): void {
    if (statement.prepares !== undefined) {
      const inner = statement.nested.find((n) => n.via === 'prepare')?.statement;
      if (inner !== undefined) this.define(statement.prepares, inner, queryText);
      else this.remove(statement.prepares);
    }
    const d = statement.deallocates;
    if (d !== undefined) {
      if (d.all) this.clear();
      else this.remove(d.name);
    }
  }

  /**
   * Extended protocol: call on ParseComplete for a Parse of a named statement. SQL that did not
   * parse here (the server accepted it; the gateway's parser did not) is forgotten, so EXECUTE of
   * it is judged as unknown, i.e. fail closed.
   */
  parsed(name: string, analysis: SqlAnalysis, text: string): void {
    if (name === '') return; // the unnamed statement cannot be reached by SQL EXECUTE
    const only = analysis.ok && analysis.statements.length === 1 ? analysis.statements[0] : undefined;
    if (only === undefined) this.remove(name);
    else this.define(name, only, text);
  }

  /** Extended protocol: call on CloseComplete for a Close of a statement. */
  closed(name: string): void {
    this.remove(name);
  }
}
