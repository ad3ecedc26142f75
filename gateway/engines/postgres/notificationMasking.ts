// NotificationResponse ('A': process id, channel, payload) for someone masking applies to. A
// payload is text another session (or a trigger) chose, with no source column, so only the value
// detectors can judge it: what they find is masked like any other value. A frame that does not
// decode cannot be checked and is dropped.
import { maskValue, type MaskPolicy } from '../../policy/index.js';

/** The frame with detected values in the channel and payload masked; undefined to keep it, null to drop it. */
export function maskNotification(frame: Buffer, mask: MaskPolicy): Buffer | null | undefined {
  const detect = mask.detect;
  if (detect === undefined || detect.size === 0) return undefined;
  const channelEnd = frame.indexOf(0, 9);
  const payloadEnd = channelEnd < 0 ? -1 : frame.indexOf(0, channelEnd + 1);
  if (frame.length < 11 || channelEnd < 0 || payloadEnd !== frame.length - 1) return null;
  const valueMask = { detect, ...(mask.hashKey !== undefined ? { hashKey: mask.hashKey } : {}) };
  const channel = frame.toString('utf8', 9, channelEnd);
  const payload = frame.toString('utf8', channelEnd + 1, payloadEnd);
  const maskedChannel = maskValue(channel, valueMask);
  const maskedPayload = maskValue(payload, valueMask);
  if (maskedChannel === channel && maskedPayload === payload) return undefined;
  const body = Buffer.concat([frame.subarray(5, 9), Buffer.from(`${maskedChannel}\0${maskedPayload}\0`, 'utf8')]);
  const head = Buffer.alloc(5);
  head[0] = 0x41;
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
