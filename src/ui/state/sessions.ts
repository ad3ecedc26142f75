// Recorded sessions (the user's own, or everyone's for audit readers: the gateway decides), a
// filter by connection or user, and the one session whose timeline is shown or replayed. The
// replay reuses `sluice sessions replay`'s renderer, writing into lines the pane displays.
import { Writable } from 'node:stream';
import type { SessionDetail, SessionSummary } from '../../api/contract.js';
import type { Gateway } from '../../api/gateway.js';
import { replay } from '../../commands/sessions/replay.js';
import type { Clock } from '../../factory.js';
import { messageOf, Store } from './store.js';

export const SESSIONS_LIMIT = 100;

export interface OpenSession {
  id: string;
  detail?: SessionDetail;
  error?: string;
  /** The replay's output so far, when one was started. */
  replay?: readonly string[];
  replaying: boolean;
}

export interface SessionsState {
  all?: readonly SessionSummary[];
  filter: string;
  visible: readonly SessionSummary[];
  open?: OpenSession;
}

export function matchesSession(s: SessionSummary, filter: string): boolean {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const hay = `${s.connection} ${s.user} ${s.email ?? ''}`.toLowerCase();
  return words.every((w) => hay.includes(w));
}

export class SessionsStore extends Store<SessionsState> {
  #replay: AbortController | undefined;

  constructor(
    private readonly gateway: Pick<Gateway, 'audit'>,
    private readonly clock: Clock,
  ) {
    super({ filter: '', visible: [] });
  }

  async load(): Promise<void> {
    const { sessions } = await this.gateway.audit.sessions({ limit: SESSIONS_LIMIT });
    this.#set(sessions, this.getSnapshot().filter);
  }

  setFilter(filter: string): void {
    this.#set(this.getSnapshot().all, filter);
  }

  /** Loads the timeline of session `id`. */
  async show(id: string): Promise<void> {
    this.stopReplay();
    this.update({ open: { id, replaying: false } });
    try {
      const detail = await this.gateway.audit.session(id);
      if (this.getSnapshot().open?.id === id) this.update({ open: { id, detail, replaying: false } });
    } catch (err) {
      if (this.getSnapshot().open?.id === id) this.update({ open: { id, error: messageOf(err), replaying: false } });
    }
  }

  /** Plays the open session back into `open.replay`, with the recorded timing (gaps capped at 2 s). */
  async replay(): Promise<void> {
    const open = this.getSnapshot().open;
    if (!open?.detail) return;
    this.stopReplay();
    const abort = (this.#replay = new AbortController());
    let text = '';
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        text += chunk.toString();
        this.#patchOpen(open.id, { replay: text.replace(/\n$/, '').split('\n') });
        done();
      },
    });
    this.#patchOpen(open.id, { replay: [], replaying: true });
    try {
      await replay({ stdin: noInput(), stdout: sink, stderr: sink, env: {} }, open.detail, 1, abort.signal, (ms, s) => this.clock.sleep(ms, s));
    } catch {
      // Stopped: Esc, another session, or the app closing.
    } finally {
      if (this.#replay === abort) this.#replay = undefined;
      this.#patchOpen(open.id, { replaying: false });
    }
  }

  stopReplay(): void {
    this.#replay?.abort();
    this.#replay = undefined;
  }

  close(): void {
    this.stopReplay();
    this.update({ open: undefined });
  }

  #patchOpen(id: string, patch: Partial<OpenSession>): void {
    const open = this.getSnapshot().open;
    if (open?.id === id) this.update({ open: { ...open, ...patch } });
  }

  #set(all: readonly SessionSummary[] | undefined, filter: string): void {
    this.update({ all, filter, visible: (all ?? []).filter((s) => matchesSession(s, filter)) });
  }
}

async function* noInput(): AsyncIterable<Buffer> {
  // A replay reads nothing.
}
