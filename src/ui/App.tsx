// The picker: a tab bar, the shown view and the status bar. Components only display the model's
// stores; what is selected, whether a filter or a reason is being typed, and the help overlay are
// the only state kept here. All keys are handled in one place (keys.ts) so they read as a table.
import { Box, Text, useApp, useInput, useStdout } from 'ink';
import { useCallback, useRef, useState } from 'react';
import { useDimensions, useStore } from './hooks.js';
import { clampSelection, handleInput, type UiState } from './keys.js';
import { VIEWS, type UiModel, type ViewName } from './state/model.js';
import { fit } from './text.js';
import { colourTheme, plainTheme, ThemeContext } from './Theme.js';
import { ConnectionsView } from './views/ConnectionsView.js';
import { HelpOverlay } from './views/HelpOverlay.js';
import { ReviewsView } from './views/ReviewsView.js';
import { SessionsView } from './views/SessionsView.js';
import { StatusBar } from './views/StatusBar.js';

const TITLES: Record<ViewName, string> = { connections: 'Connections', sessions: 'Sessions', reviews: 'Reviews' };

export function App({ model }: { model: UiModel }) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const { columns, rows } = useDimensions();
  const [ui, setUi] = useState<UiState>({ view: model.view, selected: { connections: 0, sessions: 0, reviews: 0 }, typing: false, detail: false, scroll: 0, help: false });
  // Keys may arrive faster than React re-renders: each one must see the state the previous left.
  const current = useRef(ui);
  const quitting = useRef(false);
  const quit = useCallback(() => {
    if (quitting.current) return;
    quitting.current = true;
    current.current = { ...current.current, flash: 'closing tunnels…' };
    setUi(current.current);
    void model.close().finally(() => exit());
  }, [model, exit]);

  useInput((input, key) => {
    const next = handleInput(current.current, input, key, { model, quit, copy: (text) => stdout.write(text) });
    if (next !== current.current) {
      current.current = next;
      setUi(next);
    }
  });

  const reviews = useStore(model.reviews);
  // Read so a new list re-renders and the selection is clamped to it.
  useStore(model.connections);
  useStore(model.sessions);
  const shown = clampSelection(ui, model);
  const width = columns;
  // One line short of the terminal: ink redraws a frame as tall as the screen by clearing it.
  const bodyHeight = rows - 1 - 1 - 2;
  const selected = shown.selected[ui.view];
  let body;
  if (ui.help) body = <HelpOverlay width={width} height={bodyHeight} />;
  else if (ui.view === 'connections') body = <ConnectionsView model={model} width={width} height={bodyHeight} selected={selected} typing={ui.typing} />;
  else if (ui.view === 'sessions') body = <SessionsView model={model} width={width} height={bodyHeight} selected={selected} typing={ui.typing} scroll={ui.scroll} />;
  else body = <ReviewsView model={model} width={width} height={bodyHeight} selected={selected} detail={ui.detail} scroll={ui.scroll} prompt={ui.prompt} />;

  const tabs = VIEWS.map((v) => {
    const count = v === 'reviews' && reviews.pending && reviews.pending.length > 0 ? ` (${reviews.pending.length})` : '';
    return { v, label: ` ${TITLES[v]}${count} ` };
  });
  const used = tabs.reduce((n, t) => n + t.label.length + 1, 0);
  return (
    <ThemeContext.Provider value={model.noColor ? plainTheme : colourTheme}>
      <Box flexDirection="column" width={width}>
        <Text>
          {tabs.map((t) => (
            <Text key={t.v} inverse={t.v === ui.view} bold={t.v === ui.view}>
              {t.v === ui.view ? `[${t.label.trim()}]`.padEnd(t.label.length) : t.label}{' '}
            </Text>
          ))}
          {fit('sluice', Math.max(0, width - used))}
        </Text>
        {body}
        <StatusBar model={model} width={width} flash={ui.flash} />
      </Box>
    </ThemeContext.Provider>
  );
}
