// A session's view of the target's user-defined operators, aggregates, types and casts (see
// policy/userObjects.ts): read on the first statement judged, only when a rule on functions
// applies to the caller, and read again after the session itself ran a statement that may have
// defined one. Objects created in the client's own open transaction are invisible to the
// gateway's catalog connection; that is safe because their definitions were judged against the
// same rules when the client sent them.
import { ruleApplies, type CompiledPolicy, type StatementAnalysis, type UserObjects } from '../../policy/index.js';

export interface UserObjectsSource {
  userObjects(): Promise<UserObjects>;
}

/** Commands after which the user-defined objects, functions or code attached to relations may have changed. */
const DEFINES_OBJECTS = /^(create|alter|drop) (operator|aggregate|type|cast|extension|function|procedure|routine|trigger|policy|rule|domain|view|language)\b/;

export class SessionUserObjects {
  /** Some block or review rule on functions applies to the caller. */
  readonly needed: boolean;
  private objects: UserObjects | undefined;
  private loading: Promise<unknown> | undefined;
  private failure: string | undefined;

  constructor(
    policy: CompiledPolicy,
    groups: readonly string[],
    private readonly source: UserObjectsSource | undefined,
  ) {
    this.needed = policy.rules.some((r) => r.action !== 'mask' && ruleApplies(r, groups) && (r.conditions.functions !== undefined || r.conditions.functionsAllowed !== undefined));
  }

  /**
   * What to judge with: nothing needed (undefined), the objects, a promise to wait for before
   * asking again, or a reason to refuse the statement (the look-up failed; the next statement
   * tries again).
   */
  current(): UserObjects | undefined | Promise<unknown> | { readonly refused: string } {
    if (!this.needed || this.objects !== undefined) return this.objects;
    if (this.failure !== undefined) {
      const refused = this.failure;
      this.failure = undefined;
      return { refused };
    }
    if (this.source === undefined) return { refused: 'the gateway has no catalog connection to read the operators, aggregates, types and casts defined in the target' };
    const source = this.source;
    this.loading ??= source.userObjects().then(
      (objects) => {
        this.objects = objects;
        this.loading = undefined;
      },
      (err: unknown) => {
        this.failure = `the gateway could not read the operators, aggregates, types and casts defined in the target (${(err as Error).message})`;
        this.loading = undefined;
      },
    );
    return this.loading;
  }

  /** CommandComplete of a top-level statement. */
  completed(statement: StatementAnalysis): void {
    if (DEFINES_OBJECTS.test(statement.command)) this.objects = undefined;
  }
}
