// Sessions: recorded sessions (filter by connection or user), a session's timeline, its replay.
import { Box, Text } from 'ink';
import { timeline, who } from '../../commands/sessions/render.js';
import { useStore } from '../hooks.js';
import type { UiModel } from '../state/model.js';
import type { OpenSession } from '../state/sessions.js';
import { fit, row, windowAround } from '../text.js';
import { useTheme } from '../Theme.js';
import { FilterLine } from './FilterLine.js';

const WIDTHS = [16, 14, 18, 12, 6];

export function SessionsView({ model, width, height, selected, typing, scroll }: { model: UiModel; width: number; height: number; selected: number; typing: boolean; scroll: number }) {
  const t = useTheme();
  const { all, visible, filter, open } = useStore(model.sessions);
  if (open) {
    const { title, lines } = openLines(open, height, scroll);
    return (
      <Box flexDirection="column" height={height}>
        <Text bold color={open.error ? t.error : t.accent}>
          {fit(`${title}  (↑↓ scroll · r replay · Esc back)`, width)}
        </Text>
        {lines.slice(0, height - 1).map((l, i) => (
          <Text key={i}>{fit(l, width)}</Text>
        ))}
      </Box>
    );
  }
  const { start, end } = windowAround(visible.length, selected, Math.max(1, height - 2));
  return (
    <Box flexDirection="column" height={height}>
      <FilterLine filter={filter} typing={typing} width={width} hint="/ filter by connection or user · Enter timeline · ? keys" />
      <Text bold>{row(['  ID', 'STARTED', 'USER', 'CONNECTION', 'STATUS', 'QUERIES'], WIDTHS, width)}</Text>
      {all === undefined ? (
        <Text dimColor={t.dim}>{fit('  loading sessions…', width)}</Text>
      ) : visible.length === 0 ? (
        <Text>{fit(all.length === 0 ? '  no recorded sessions yet' : `  no session matches "${filter}"`, width)}</Text>
      ) : (
        visible.slice(start, end).map((s, i) => {
          const on = start + i === selected;
          return (
            <Text key={s.id} inverse={on}>
              {row([`${on ? '›' : ' '} ${s.id}`, shortTime(s.startedAt), who(s), s.connection, s.status, s.status === 'open' ? '-' : String(s.queries)], WIDTHS, width)}
            </Text>
          );
        })
      )}
    </Box>
  );
}

function openLines(open: OpenSession, height: number, scroll: number): { title: string; lines: string[] } {
  if (open.error) return { title: `session ${open.id}`, lines: [open.error] };
  if (!open.detail) return { title: `session ${open.id}`, lines: ['loading the timeline…'] };
  // A replay shows its latest lines, as a terminal would.
  if (open.replay) return { title: `replay of ${open.id}${open.replaying ? ' (playing)' : ' (done)'}`, lines: open.replay.slice(-Math.max(1, height - 1)) };
  return { title: `timeline of ${open.id}`, lines: timeline(open.detail).replace(/\n$/, '').split('\n').slice(scroll) };
}

/** `12-07 11:08:39`: the year and zone cost columns the list needs (times are UTC, as elsewhere). */
function shortTime(iso: string): string {
  return iso.slice(5, 19).replace('T', ' ');
}
