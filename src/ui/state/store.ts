// The smallest external store React's useSyncExternalStore can read: an immutable snapshot that is
// replaced (never mutated) on every change, and listeners told after each replacement. Every UI
// state module extends it so components only display state and never own it.
export class Store<S extends object> {
  readonly #listeners = new Set<() => void>();
  #state: S;

  constructor(initial: S) {
    this.#state = initial;
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  };

  readonly getSnapshot = (): S => this.#state;

  protected update(patch: Partial<S>): void {
    this.#state = { ...this.#state, ...patch };
    for (const l of [...this.#listeners]) l();
  }
}

/** The message of anything thrown, for a status line. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
