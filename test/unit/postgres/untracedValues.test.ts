// NotificationResponse payloads and FunctionCallResponse values for someone masking applies to:
// detected values masked, lengths recomputed, undecodable frames dropped, clean frames kept.
import { describe, expect, it } from 'vitest';
import { maskFunctionResult, maskNotification } from '../../../gateway/engines/postgres/untracedValues.js';
import { maskPolicyFor, WITHHELD, type MaskPolicy } from '../../../gateway/policy/index.js';
import { policyFromYaml } from '../policy/fixtures.js';

const MASK = maskPolicyFor(policyFromYaml('rules: [{ id: c, mask: { columns: [customers.email] } }]'), []) as MaskPolicy;

function notification(pid: number, channel: string, payload: string): Buffer {
  const body = Buffer.concat([Buffer.alloc(4), Buffer.from(`${channel}\0${payload}\0`)]);
  body.writeInt32BE(pid, 0);
  const head = Buffer.from([0x41, 0, 0, 0, 0]);
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** Detectors alone: no column rule. */
const DETECT = maskPolicyFor(policyFromYaml('rules: [{ id: d, mask: { detect: [email] } }]'), []) as MaskPolicy;

describe('maskNotification', () => {
  it('masks what the detectors find in the payload and recomputes the length', () => {
    const out = maskNotification(notification(77, 'leaks', 'to ada.lovelace@example.com now'), DETECT) as Buffer;
    expect(out).toEqual(notification(77, 'leaks', 'to [redacted] now'));
    expect(out.toString()).not.toContain('lovelace');
  });

  it('keeps a payload with nothing to find, with detectors alone', () => {
    expect(maskNotification(notification(1, 'jobs', 'refresh done'), DETECT)).toBeUndefined();
  });

  it('withholds every non-empty payload for someone a column rule applies to (a trigger may notify a masked value), backstop or not', () => {
    expect(maskNotification(notification(77, 'leaks', 'Ada'), MASK)).toEqual(notification(77, 'leaks', WITHHELD));
    const off = maskPolicyFor(policyFromYaml('{ backstop: false, rules: [{ id: c, mask: { columns: [customers.email] } }] }'), []) as MaskPolicy;
    expect(maskNotification(notification(1, 'c', 'ada.lovelace@example.com'), off)).toEqual(notification(1, 'c', WITHHELD));
    expect(maskNotification(notification(1, 'c', ''), off)).toBeUndefined();
  });

  it('drops a frame that does not decode', () => {
    const good = notification(1, 'c', 'p');
    expect(maskNotification(good.subarray(0, good.length - 1), MASK)).toBeNull();
    expect(maskNotification(Buffer.from([0x41, 0, 0, 0, 4]), MASK)).toBeNull();
  });
});

function functionResult(value: string | null): Buffer {
  const bytes = value === null ? Buffer.alloc(0) : Buffer.from(value);
  const b = Buffer.alloc(9);
  b[0] = 0x56;
  b.writeUInt32BE(8 + bytes.length, 1);
  b.writeInt32BE(value === null ? -1 : bytes.length, 5);
  return Buffer.concat([b, bytes]);
}

describe('maskFunctionResult', () => {
  it('masks what the detectors find, keeps NULL and clean values, drops what does not decode', () => {
    expect(maskFunctionResult(functionResult('card 4111111111111111'), MASK)).toEqual(functionResult('card [redacted]'));
    expect(maskFunctionResult(functionResult(null), MASK)).toBeUndefined();
    expect(maskFunctionResult(functionResult('42'), MASK)).toBeUndefined();
    expect(maskFunctionResult(functionResult('abc').subarray(0, 10), MASK)).toBeNull();
  });
});
