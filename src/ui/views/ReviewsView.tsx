// Reviews: pending reviews the user may decide, newest first; a review's whole statement with its
// parameters; the reason prompt of an approval (optional) or a rejection (required).
import { Box, Text } from 'ink';
import type { ReactElement } from 'react';
import type { ReviewInfo } from '../../api/contract.js';
import { oneLineSql, relative } from '../../commands/reviews/format.js';
import { useStore } from '../hooks.js';
import type { UiModel } from '../state/model.js';
import { fit, row, windowAround } from '../text.js';
import { useTheme } from '../Theme.js';

const WIDTHS = [10, 8, 14, 14];

export interface ReasonPrompt {
  action: 'approve' | 'reject';
  id: string;
  text: string;
}

export function ReviewsView({ model, width, height, selected, detail, scroll, prompt }: { model: UiModel; width: number; height: number; selected: number; detail: boolean; scroll: number; prompt?: ReasonPrompt | undefined }) {
  const t = useTheme();
  const { pending, notice } = useStore(model.reviews);
  const list = pending ?? [];
  const current = list[selected];
  const footer: ReactElement[] = [];
  if (prompt) {
    const label = prompt.action === 'approve' ? `approve ${prompt.id}: reason (optional)` : `reject ${prompt.id}: reason (required)`;
    footer.push(
      <Text key="prompt" color={t.accent}>
        {fit(`${label}: ${prompt.text}▏  (Enter: ${prompt.action} · Esc: cancel)`, width)}
      </Text>,
    );
  }
  if (notice) {
    footer.push(
      <Text key="notice" color={notice.error ? t.error : t.ok}>
        {fit(notice.text, width)}
      </Text>,
    );
  }
  const bodyHeight = Math.max(1, height - footer.length);
  if (detail && current) {
    return (
      <Box flexDirection="column" height={height}>
        {scrolled(reviewLines(current, model.clock.now()), scroll)
          .slice(0, bodyHeight)
          .map((l, i) => (
            <Text key={i} bold={i === 0}>
              {fit(l, width)}
            </Text>
          ))}
        <Box flexGrow={1} />
        {footer}
      </Box>
    );
  }
  const { start, end } = windowAround(list.length, selected, Math.max(1, bodyHeight - 2));
  return (
    <Box flexDirection="column" height={height}>
      <Text dimColor={t.dim}>{fit('↑↓ select · Enter statement · a approve · r reject · ? keys', width)}</Text>
      <Text bold>{row(['  ID', 'AGE', 'BY', 'CONNECTION', 'STATEMENT'], WIDTHS, width)}</Text>
      {pending === undefined ? (
        <Text dimColor={t.dim}>{fit('  loading reviews…', width)}</Text>
      ) : list.length === 0 ? (
        <Text>{fit('  no reviews are waiting for you', width)}</Text>
      ) : (
        list.slice(start, end).map((r, i) => {
          const on = start + i === selected;
          return (
            <Text key={r.id} inverse={on}>
              {row([`${on ? '›' : ' '} ${r.id}`, relative(r.createdAt, model.clock.now()), r.requester.name, r.connection, oneLineSql(r.sql ?? r.action ?? '', 200)], WIDTHS, width)}
            </Text>
          );
        })
      )}
      <Box flexGrow={1} />
      {footer}
    </Box>
  );
}

/** The header line stays; the rest starts `scroll` lines down (never past its last line). */
function scrolled(lines: string[], scroll: number): string[] {
  const [head = '', ...rest] = lines;
  return [head, ...rest.slice(Math.min(scroll, Math.max(0, rest.length - 1)))];
}

/** The whole review: who asked, where, under which rule, until when, the statement and its parameters. */
export function reviewLines(r: ReviewInfo, now: number): string[] {
  const lines = [
    `review ${r.id} · ${r.connection} · rule ${r.rule}  (a approve · r reject · ↑↓ scroll · Esc back)`,
    `  requested by ${r.requester.email ?? r.requester.name} ${relative(r.createdAt, now)} ago; expires in ${relative(r.expiresAt, now)}`,
    `  session ${r.session}${r.reason ? ` · ${r.reason}` : ''}`,
    '',
    ...(r.sql ?? r.action ?? '').split('\n').map((l) => `  ${l}`),
  ];
  if (r.parameters && r.parameters.length > 0) {
    lines.push('', '  parameters:');
    r.parameters.forEach((p, i) => {
      const value = p.value === null ? 'NULL' : JSON.stringify(p.value);
      lines.push(`    $${i + 1} = ${value}${p.truncated ? ` (truncated; ${p.bytes} bytes)` : ''}${p.binary ? ' (binary)' : ''}`);
    });
    if (r.parametersOmitted) lines.push(`    … and ${r.parametersOmitted} more not shown`);
  }
  return lines;
}
