// A held Bind's parameters as the reviewer sees them: through the service, the API's contract and
// `sluice reviews show`, with the caps stated and control characters shown, not interpreted.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { reviewInfo } from '../../../src/api/contract.js';
import { describeReview } from '../../../src/commands/reviews/show.js';
import type { Identity } from '../../../gateway/model.js';
import { MAX_PARAMETER_BINARY_BYTES, MAX_PARAMETER_CHARS, MAX_PARAMETERS, reviewParameters } from '../../../gateway/reviews/parameters.js';
import { webhookPayload } from '../../../gateway/reviews/notify.js';
import { toReviewInfo } from '../../../gateway/reviews/routes.js';
import { createReviewService, type ReviewEvent } from '../../../gateway/reviews/service.js';

const ALICE: Identity = { subject: 'sub-alice', name: 'alice@example.com', groups: ['eng'], kind: 'human' };
const DBA: Identity = { subject: 'token:oncall', name: 'oncall', groups: ['dba'], kind: 'service' };

describe('review parameters', () => {
  it('shows text as sent, binary as hex, NULL as null', () => {
    expect(reviewParameters(['42', Buffer.from([0, 1, 0xff]), null])).toEqual({
      parameters: [
        { value: '42', bytes: 2 },
        { value: '\\x0001ff', binary: true, bytes: 3 },
        { value: null, bytes: 0 },
      ],
    });
  });

  it('cuts long values and long lists, and says so', () => {
    const long = 'é'.repeat(MAX_PARAMETER_CHARS + 5);
    const [text, bin] = reviewParameters([long, Buffer.alloc(MAX_PARAMETER_BINARY_BYTES + 1, 7)]).parameters;
    expect(text).toEqual({ value: 'é'.repeat(MAX_PARAMETER_CHARS), bytes: Buffer.byteLength(long), truncated: true });
    expect(bin?.value).toBe(`\\x${'07'.repeat(MAX_PARAMETER_BINARY_BYTES)}`);
    expect(bin?.truncated).toBe(true);
    const many = reviewParameters(Array.from({ length: MAX_PARAMETERS + 3 }, (_, i) => String(i)));
    expect(many.parameters).toHaveLength(MAX_PARAMETERS);
    expect(many.parametersOmitted).toBe(3);
  });

  it('reach the approver through the service, the API and reviews show', async () => {
    const events: ReviewEvent[] = [];
    const svc = createReviewService({ log: pino({ level: 'silent' }), onEvent: (e) => events.push(e) });
    try {
      const parameters = reviewParameters(['7', 'evil\u001b[2J"quoted"\nline', null]);
      const { id } = svc.forSession({ sessionId: 's_1', identity: ALICE, connection: 'pg-prod' }).request(
        { action: 'insert into payments values ($1, $2, $3)', kind: 'sql', rule: 'payments-review', approvers: ['dba'], timeoutMs: 10_000, parameters },
        new AbortController().signal,
      );
      const info = reviewInfo.parse(JSON.parse(JSON.stringify(toReviewInfo(await svc.get(id, DBA), true))));
      expect(info.parameters).toEqual(parameters.parameters);
      const text = describeReview(info);
      expect(text).toContain('$1 = "7"');
      expect(text).toContain('$2 = "evil\\u001b[2J\\"quoted\\"\\nline"');
      expect(text).toContain('$3 = NULL');
      expect(text).not.toContain('\u001b');
      // Webhooks lead outside the audit boundary: neither the statement nor its values go there.
      expect(JSON.stringify(events.map(webhookPayload))).not.toContain('quoted');
    } finally {
      svc.close();
    }
  });
});
