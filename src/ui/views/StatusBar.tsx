// The bottom two lines: what needs attention (a new review, whatever the view; a polling error
// with its retry; a passing notice), then who you are, which gateway, and the token's expiry.
import { Box, Text } from 'ink';
import { useStore } from '../hooks.js';
import { expiryText } from '../state/identity.js';
import type { UiModel } from '../state/model.js';
import type { PollStatus } from '../state/poller.js';
import { fit } from '../text.js';
import { useTheme } from '../Theme.js';

export function StatusBar({ model, width, flash }: { model: UiModel; width: number; flash?: string | undefined }) {
  const t = useTheme();
  const { me, gateway } = useStore(model.identity);
  const { announcement } = useStore(model.reviews);
  const polls = [useStore(model.pollers[model.view]), useStore(model.pollers.reviews), useStore(model.pollers.identity)];
  const failing = polls.find((p) => p.error !== undefined);
  let message: { text: string; color?: string | undefined } = { text: '' };
  if (failing) message = { text: pollError(failing, width), color: t.error };
  else if (announcement) message = { text: `★ new review ${announcement.id} from ${announcement.requester.name} on ${announcement.connection} (r: Reviews)`, color: t.warn };
  else if (flash) message = { text: flash, color: t.ok };
  const who = me ? `${me.email ?? me.name}${me.kind === 'service' ? ' (service token)' : ''}` : '…';
  const expiry = expiryText(me, model.clock.now());
  return (
    <Box flexDirection="column">
      <Text color={message.color}>{fit(message.text, width)}</Text>
      <Text inverse>{fit(` ${who} · ${gateway}${expiry ? ` · ${expiry}` : ''} · ? keys`, width)}</Text>
    </Box>
  );
}

/** The failure and when the next try is; a long message is cut so the retry always shows. */
export function pollError(p: PollStatus, width: number): string {
  const retry = p.retryInMs !== undefined ? ` — retrying in ${Math.round(p.retryInMs / 1000)} s` : '';
  const error = p.error ?? 'error';
  return [...error].length + retry.length <= width ? error + retry : fit(error, width - retry.length) + retry;
}
