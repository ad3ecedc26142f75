// The gateway's heap setting: applied by default, and never over an operator's own choice.
import v8 from 'node:v8';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tuneHeapForRelaying } from '../../../gateway/heapTuning.js';

afterEach(() => vi.restoreAllMocks());

describe('tuneHeapForRelaying', () => {
  it('sets a growing factor of 2 when nothing else chose one', () => {
    const set = vi.spyOn(v8, 'setFlagsFromString').mockImplementation(() => undefined);
    tuneHeapForRelaying([]);
    expect(set).toHaveBeenCalledWith('--heap-growing-percent=100');
  });

  it("leaves the flag alone when node's command line sets it, with dashes or underscores", () => {
    const set = vi.spyOn(v8, 'setFlagsFromString').mockImplementation(() => undefined);
    tuneHeapForRelaying(['--max-old-space-size=512', '--heap-growing-percent=50']);
    tuneHeapForRelaying(['--heap_growing_percent=30']);
    expect(set).not.toHaveBeenCalled();
  });
});
