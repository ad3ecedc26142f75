// Every key of the app, as one function from (what is shown, key) to what is shown next; actions
// on the model (open a tunnel, approve a review, …) are started from here and report through the
// stores. Order matters: Ctrl-C, the help overlay, a reason being typed, a filter being typed,
// then the global keys, then the shown view's keys, then the view letters.
import type { Key } from 'ink';
import type { UiModel, ViewName } from './state/model.js';
import { VIEWS } from './state/model.js';
import { osc52 } from './text.js';
import type { ReasonPrompt } from './views/ReviewsView.js';

export interface UiState {
  view: ViewName;
  selected: Record<ViewName, number>;
  /** A filter is being typed (keys go into it). */
  typing: boolean;
  /** Sessions: the timeline is shown; Reviews: the whole statement is. */
  detail: boolean;
  /** First timeline line shown. */
  scroll: number;
  prompt?: ReasonPrompt;
  help: boolean;
  /** A passing message for the status bar (e.g. "copied"). */
  flash?: string;
}

export interface KeyContext {
  model: UiModel;
  quit(): void;
  /** Writes to the terminal (the OSC 52 clipboard sequence). */
  copy(sequence: string): void;
}

const LETTERS: Record<string, ViewName> = { c: 'connections', s: 'sessions', r: 'reviews' };

export function handleKey(current: UiState, input: string, key: Key, ctx: KeyContext): UiState {
  const { model } = ctx;
  const ui = clampSelection(current, model);
  // In raw mode Ctrl-C is a key, not a signal: it quits like q.
  if (key.ctrl && input === 'c') return ctx.quit(), ui;
  if (ui.help) return { ...ui, help: false };
  const s = { ...ui, flash: undefined };
  const erase = key.backspace || key.delete;

  if (s.prompt) {
    const p = s.prompt;
    if (key.escape) return { ...s, prompt: undefined };
    if (key.return) {
      if (p.action === 'approve') void model.reviews.approve(p.id, p.text);
      else void model.reviews.reject(p.id, p.text);
      // A rejection without a reason keeps the prompt open; the store says why.
      if (p.action === 'reject' && !p.text.trim()) return s;
      return { ...s, prompt: undefined, detail: false, scroll: 0 };
    }
    if (erase) return { ...s, prompt: { ...p, text: [...p.text].slice(0, -1).join('') } };
    if (printable(input, key)) return { ...s, prompt: { ...p, text: p.text + input } };
    return s;
  }

  const filterStore = s.view === 'connections' ? model.connections : s.view === 'sessions' ? model.sessions : undefined;
  if (s.typing && filterStore) {
    const filter = filterStore.getSnapshot().filter;
    if (key.escape) return filterStore.setFilter(''), { ...s, typing: false, selected: { ...s.selected, [s.view]: 0 } };
    if (key.return) return enter({ ...s, typing: false }, ctx);
    if (key.upArrow || key.downArrow) return move(s, key.upArrow ? -1 : 1, ctx);
    if (erase) return filterStore.setFilter([...filter].slice(0, -1).join('')), s;
    if (printable(input, key)) return filterStore.setFilter(filter + input), { ...s, selected: { ...s.selected, [s.view]: 0 } };
    return s;
  }

  if (input === 'q') return ctx.quit(), s;
  if (input === '?') return { ...s, help: true };
  if (key.tab) {
    const i = VIEWS.indexOf(s.view);
    return switchTo(s, VIEWS[(i + (key.shift ? VIEWS.length - 1 : 1)) % VIEWS.length] as ViewName, ctx);
  }
  if (key.upArrow || key.downArrow) {
    // A timeline or a long statement scrolls; its header stays.
    if (s.detail) return { ...s, scroll: Math.max(0, s.scroll + (key.upArrow ? -1 : 1)) };
    return move(s, key.upArrow ? -1 : 1, ctx);
  }
  if (key.return) return enter(s, ctx);
  if (input === '/' && filterStore && !s.detail) return { ...s, typing: true };

  const handled = viewKey(s, input, key, ctx);
  if (handled) return handled;
  const letter = LETTERS[input];
  if (letter) return switchTo(s, letter, ctx);
  return s;
}

const NO_KEY = {} as Key;

/**
 * A chunk of several keys at once (a paste, or a test typing "/demo" then Enter in one write) is
 * handled one key after another, so it means what typing it slowly would.
 */
export function handleInput(ui: UiState, input: string, key: Key, ctx: KeyContext): UiState {
  const chars = [...input];
  if (chars.length <= 1 || key.ctrl || key.meta || key.escape || input.startsWith('\x1b')) return handleKey(ui, input, key, ctx);
  let s = ui;
  for (const ch of chars) {
    if (ch === '\r' || ch === '\n') s = handleKey(s, '', { ...NO_KEY, return: true }, ctx);
    else if (ch === '\t') s = handleKey(s, '', { ...NO_KEY, tab: true }, ctx);
    else if (ch === '\x7f' || ch === '\b') s = handleKey(s, '', { ...NO_KEY, backspace: true }, ctx);
    else if (ch === '\x03') s = handleKey(s, 'c', { ...NO_KEY, ctrl: true }, ctx);
    else s = handleKey(s, ch, NO_KEY, ctx);
  }
  return s;
}

function viewKey(s: UiState, input: string, key: Key, ctx: KeyContext): UiState | undefined {
  const { model } = ctx;
  if (s.view === 'connections') {
    const c = model.connections.getSnapshot().visible[s.selected.connections];
    const tunnel = c ? model.tunnels.get(c.name) : undefined;
    if (input === 'c' && tunnel?.command) {
      ctx.copy(osc52(tunnel.command));
      return { ...s, flash: `copied to the clipboard (OSC 52): ${tunnel.command}` };
    }
    if (key.escape) {
      if (tunnel && c) return void model.tunnels.close(c.name), { ...s, flash: `closed the tunnel to ${c.name}` };
      if (model.connections.getSnapshot().filter) return model.connections.setFilter(''), s;
    }
    return undefined;
  }
  if (s.view === 'sessions') {
    if (s.detail && input === 'r') return void model.sessions.replay(), s;
    if (key.escape) {
      if (s.detail) return model.sessions.close(), { ...s, detail: false, scroll: 0 };
      if (model.sessions.getSnapshot().filter) return model.sessions.setFilter(''), s;
    }
    return undefined;
  }
  const r = model.reviews.getSnapshot().pending?.[s.selected.reviews];
  if (r && (input === 'a' || input === 'r')) return { ...s, prompt: { action: input === 'a' ? 'approve' : 'reject', id: r.id, text: '' } };
  if (key.escape && s.detail) return { ...s, detail: false, scroll: 0 };
  return undefined;
}

function enter(s: UiState, { model }: KeyContext): UiState {
  if (s.view === 'connections') {
    const c = model.connections.getSnapshot().visible[s.selected.connections];
    if (c) void model.tunnels.open(c);
    return s;
  }
  if (s.view === 'sessions') {
    const x = model.sessions.getSnapshot().visible[s.selected.sessions];
    if (!x || s.detail) return s;
    void model.sessions.show(x.id);
    return { ...s, detail: true, scroll: 0 };
  }
  return model.reviews.getSnapshot().pending?.[s.selected.reviews] ? { ...s, detail: true, scroll: 0 } : s;
}

function move(s: UiState, by: number, { model }: KeyContext): UiState {
  const count = countOf(s.view, model);
  const next = Math.max(0, Math.min(count - 1, s.selected[s.view] + by));
  return { ...s, detail: s.view === 'reviews' ? false : s.detail, selected: { ...s.selected, [s.view]: next } };
}

function switchTo(s: UiState, view: ViewName, { model }: KeyContext): UiState {
  if (view === s.view) return s;
  if (s.view === 'sessions') model.sessions.close();
  model.setView(view);
  return { ...s, view, typing: false, detail: false, scroll: 0, prompt: undefined };
}

function countOf(view: ViewName, model: UiModel): number {
  if (view === 'connections') return model.connections.getSnapshot().visible.length;
  if (view === 'sessions') return model.sessions.getSnapshot().visible.length;
  return model.reviews.getSnapshot().pending?.length ?? 0;
}

/** Keeps each selection inside its list, which shrinks when a filter narrows it or a review is decided. */
export function clampSelection(ui: UiState, model: UiModel): UiState {
  let changed = false;
  const selected = { ...ui.selected };
  for (const v of VIEWS) {
    const max = Math.max(0, countOf(v, model) - 1);
    if (selected[v] > max) {
      selected[v] = max;
      changed = true;
    }
  }
  return changed ? { ...ui, selected } : ui;
}

function printable(input: string, key: Key): boolean {
  return input.length > 0 && !key.ctrl && !key.meta && !key.escape && !key.return && !key.tab && ![...input].some((ch) => ch < ' ' || ch === '\x7f');
}
