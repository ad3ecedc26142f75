// Values the target returns with no source column the masking could follow, for someone masking
// applies to: a NotificationResponse ('A': process id, channel, payload) carries text another
// session or a trigger chose, and a FunctionCallResponse ('V': one value) the result of a function
// called by OID. Only the value detectors can judge them: what they find is masked like any other
// value. A frame that does not decode cannot be checked and is dropped.
// For someone a column rule applies to, a notification's payload is withheld whole: a trigger an
// administrator attached can pg_notify a masked value no detector recognises (a name), and nothing
// tells the payload's source. The channel stays (the client named it in LISTEN).
import { maskValue, WITHHELD, type MaskPolicy } from '../../policy/index.js';
import { maskValueBytes } from '../../policy/mask/strategies.js';

/** The frame with detected values in the channel and payload masked; undefined to keep it, null to drop it. */
export function maskNotification(frame: Buffer, mask: MaskPolicy): Buffer | null | undefined {
  const detect = mask.detect;
  const withhold = mask.columns.length > 0;
  if (!withhold && (detect === undefined || detect.size === 0)) return undefined;
  const channelEnd = frame.indexOf(0, 9);
  const payloadEnd = channelEnd < 0 ? -1 : frame.indexOf(0, channelEnd + 1);
  if (frame.length < 11 || channelEnd < 0 || payloadEnd !== frame.length - 1) return null;
  const valueMask = detect === undefined || detect.size === 0 ? undefined : { detect, ...(mask.hashKey !== undefined ? { hashKey: mask.hashKey } : {}) };
  const channel = frame.toString('utf8', 9, channelEnd);
  const payload = frame.toString('utf8', channelEnd + 1, payloadEnd);
  const maskedChannel = valueMask === undefined ? channel : maskValue(channel, valueMask);
  const maskedPayload = withhold && payload !== '' ? WITHHELD : valueMask === undefined ? payload : maskValue(payload, valueMask);
  if (maskedChannel === channel && maskedPayload === payload) return undefined;
  const body = Buffer.concat([frame.subarray(5, 9), Buffer.from(`${maskedChannel}\0${maskedPayload}\0`, 'utf8')]);
  const head = Buffer.alloc(5);
  head[0] = 0x41;
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** The FunctionCallResponse with what the detectors find in its value masked; undefined to keep it, null to drop it. */
export function maskFunctionResult(frame: Buffer, mask: MaskPolicy): Buffer | null | undefined {
  const detect = mask.detect;
  if (detect === undefined || detect.size === 0) return undefined;
  if (frame.length < 9) return null;
  const length = frame.readInt32BE(5);
  if (length === -1 && frame.length === 9) return undefined;
  if (length < 0 || frame.length !== 9 + length) return null;
  const masked = maskValueBytes(frame, 9, frame.length, { detect, ...(mask.hashKey !== undefined ? { hashKey: mask.hashKey } : {}) });
  if (masked === undefined) return undefined;
  const head = Buffer.alloc(9);
  head[0] = 0x56;
  head.writeUInt32BE(masked.length + 8, 1);
  head.writeInt32BE(masked.length, 5);
  return Buffer.concat([head, masked]);
}
