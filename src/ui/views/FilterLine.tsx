// The line above a list: the filter being typed (with a cursor), the filter in effect, or the hint.
import { Text } from 'ink';
import { fit } from '../text.js';
import { useTheme } from '../Theme.js';

export function FilterLine({ filter, typing, width, hint }: { filter: string; typing: boolean; width: number; hint: string }) {
  const t = useTheme();
  if (typing) return <Text color={t.accent}>{fit(`/ ${filter}▏  (Enter: open · Esc: clear)`, width)}</Text>;
  if (filter) return <Text>{fit(`filter: ${filter}  (/ to change, Esc to clear)`, width)}</Text>;
  return <Text dimColor={t.dim}>{fit(hint, width)}</Text>;
}
