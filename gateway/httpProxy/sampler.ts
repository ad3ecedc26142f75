// Counts the bytes of a body as it streams and keeps its first few for the audit record, without
// buffering the rest; and the plain-text refusal the core sends when the engine shapes none.
import { Transform } from 'node:stream';
import type { ProxyResponse } from './types.js';

export class Sampler {
  bytes = 0;
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  constructor(private readonly cap: number) {}

  observe(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.keptBytes < this.cap) {
      const part = chunk.subarray(0, this.cap - this.keptBytes);
      this.kept.push(Buffer.from(part));
      this.keptBytes += part.length;
    }
  }

  /** A pass-through stream that observes what flows through it. */
  tap(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        this.observe(chunk);
        done(null, chunk);
      },
    });
  }

  sample(): Buffer {
    return Buffer.concat(this.kept);
  }
}

export function plainResponse(status: number, message: string): ProxyResponse {
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: Buffer.from(`sluice: ${message}\n`) };
}
