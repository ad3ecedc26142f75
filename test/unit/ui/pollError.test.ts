// The status bar's polling error at the narrowest supported width: the retry countdown survives.
import { describe, expect, it } from 'vitest';
import { pollError } from '../../../src/ui/views/StatusBar.js';

const long = 'cannot reach the gateway at https://127.0.0.1:38997: connection refused — is sluice-gateway running there?';

describe('pollError', () => {
  it('cuts a long error, not the retry, to fit the width', () => {
    const text = pollError({ running: true, failures: 2, error: long, retryInMs: 8_000 }, 80);
    expect([...text]).toHaveLength(80);
    expect(text).toMatch(/^cannot reach the gateway at .*… — retrying in 8 s$/);
  });

  it('leaves a short error and one without a width whole', () => {
    expect(pollError({ running: true, failures: 1, error: 'token expired', retryInMs: 2_000 }, 80)).toBe('token expired — retrying in 2 s');
    expect(pollError({ running: true, failures: 1, error: long, retryInMs: 2_000 })).toBe(`${long} — retrying in 2 s`);
  });
});
