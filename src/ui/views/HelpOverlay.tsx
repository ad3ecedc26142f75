// `?`: every key, in place of the view until any key is pressed.
import { Box, Text } from 'ink';
import { fit } from '../text.js';

export const HELP = [
  'Keys',
  '  Tab, Shift-Tab   next, previous view   c s r   Connections, Sessions, Reviews',
  '  ↑ ↓              select                /       filter (Esc clears it)',
  '  q, Ctrl-C        quit, closing tunnels ?       this help',
  '',
  'Connections',
  '  Enter            open a tunnel to the selected connection and show its panel',
  '  c                copy its client command (OSC 52)',
  "  Esc              close the selected connection's tunnel",
  '',
  'Sessions',
  '  Enter            show the timeline   r   replay it   Esc   back to the list',
  '',
  'Reviews',
  '  Enter            show the whole statement with its parameters',
  '  a                approve (reason optional)     r   reject (reason required)',
  '',
  'Press any key to close this help.',
];

export function HelpOverlay({ width, height }: { width: number; height: number }) {
  return (
    <Box flexDirection="column" height={height}>
      {HELP.slice(0, height).map((l, i) => (
        <Text key={i} bold={i === 0}>
          {fit(l, width)}
        </Text>
      ))}
    </Box>
  );
}
