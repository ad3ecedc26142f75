// Connections: the filterable list (open tunnels marked ●) and, for the selected connection with a
// tunnel, the live panel: port, client command, clients open, bytes each way, session ids.
import { Box, Text } from 'ink';
import { useStore } from '../hooks.js';
import type { UiModel } from '../state/model.js';
import type { TunnelView } from '../state/tunnels.js';
import { fit, human, row, windowAround } from '../text.js';
import { useTheme } from '../Theme.js';
import { FilterLine } from './FilterLine.js';

export const PANEL_LINES = 6;

/** Name and type fixed; what is left goes 3:2 to the policy (what it does matters most) and the description. */
function widths(total: number): number[] {
  const rest = total - 20 - 8 - 6;
  return [20, 8, Math.floor((rest * 3) / 5)];
}

export function ConnectionsView({ model, width, height, selected, typing }: { model: UiModel; width: number; height: number; selected: number; typing: boolean }) {
  const t = useTheme();
  const { all, visible, filter } = useStore(model.connections);
  const { tunnels } = useStore(model.tunnels);
  const current = visible[selected];
  const tunnel = current ? tunnels.find((x) => x.connection === current.name) : undefined;
  const listHeight = Math.max(1, height - 4 - (tunnel ? PANEL_LINES : 0));
  const WIDTHS = widths(width);
  const { start, end } = windowAround(visible.length, selected, listHeight);
  return (
    <Box flexDirection="column" height={height}>
      <FilterLine filter={filter} typing={typing} width={width} hint="/ filter · ↑↓ select · Enter open tunnel · ? keys" />
      <Text bold>{row(['  NAME', 'TYPE', 'POLICY', 'DESCRIPTION'], WIDTHS, width)}</Text>
      {all === undefined ? (
        <Text dimColor={t.dim}>{fit('  loading connections…', width)}</Text>
      ) : visible.length === 0 ? (
        <Text>{fit(all.length === 0 ? '  no connections are available to you on this gateway' : `  no connection matches "${filter}"`, width)}</Text>
      ) : (
        visible.slice(start, end).map((c, i) => {
          const on = start + i === selected;
          const mark = tunnels.some((x) => x.connection === c.name && x.state === 'open') ? '●' : ' ';
          return (
            <Text key={c.name} inverse={on} color={mark === '●' ? t.ok : undefined}>
              {row([`${on ? '›' : ' '}${mark}${c.name}`, c.type, c.policy, c.description ?? ''], WIDTHS, width)}
            </Text>
          );
        })
      )}
      <Box flexGrow={1} />
      {current ? (
        // The row cuts the policy short: here it is whole, on up to two lines.
        <Box height={2} overflow="hidden" width={width}>
          <Text dimColor={t.dim} wrap="wrap">{`${current.name} policy: ${current.policy}`}</Text>
        </Box>
      ) : null}
      {tunnel ? <TunnelPanel tunnel={tunnel} width={width} /> : null}
    </Box>
  );
}

function TunnelPanel({ tunnel: x, width }: { tunnel: TunnelView; width: number }) {
  const t = useTheme();
  const lines: [string, string | undefined][] =
    x.state === 'opening'
      ? [[`── ${x.connection}: opening a tunnel…`, t.accent]]
      : x.state === 'failed'
        ? [
            [`── ${x.connection}: the tunnel could not be opened`, t.error],
            [`   ${x.error ?? ''}`, t.error],
            ['   Enter: try again · Esc: dismiss', undefined],
          ]
        : [
            [`── ${x.connection}: tunnel open on ${x.host}:${x.port} ──`, t.ok],
            [`   ${x.command ?? ''}`, undefined],
            [`   clients open: ${x.open} (${x.total} total) · ↑ ${human(x.bytesUp)} ↓ ${human(x.bytesDown)}`, undefined],
            [`   sessions: ${x.sessionIds.length > 0 ? x.sessionIds.slice(-3).join(', ') : '(none yet)'}`, undefined],
            [x.error ? `   ${x.error}` : '', t.warn],
            ['   c: copy the command · Esc: close this tunnel', undefined],
          ];
  return (
    <Box flexDirection="column">
      {lines.map(([text, color], i) => (
        <Text key={i} color={color}>
          {fit(text, width)}
        </Text>
      ))}
    </Box>
  );
}
