// A tiny, independent buffer builder for codec tests: messages are written out field by field
// here, not with the encoders under test, so a test compares the codec against the protocol
// documentation rather than against itself.

export class BufferBuilder {
  private readonly bytes: number[] = [];

  byte(v: number | string): this {
    this.bytes.push(typeof v === 'string' ? v.charCodeAt(0) : v & 0xff);
    return this;
  }

  int16(v: number): this {
    this.bytes.push((v >> 8) & 0xff, v & 0xff);
    return this;
  }

  int32(v: number): this {
    this.bytes.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
    return this;
  }

  cstring(s: string): this {
    this.bytes.push(...Buffer.from(s, 'utf8'), 0);
    return this;
  }

  raw(b: Uint8Array | string): this {
    this.bytes.push(...(typeof b === 'string' ? Buffer.from(b, 'utf8') : b));
    return this;
  }

  /** Type byte + Int32 length (counting itself) + what was written so far. */
  typed(type: string): Buffer {
    return Buffer.concat([Buffer.of(type.charCodeAt(0)), len(this.bytes.length + 4), Buffer.from(this.bytes)]);
  }

  /** Int32 length (counting itself) + what was written so far. */
  untyped(): Buffer {
    return Buffer.concat([len(this.bytes.length + 4), Buffer.from(this.bytes)]);
  }

  /** What was written so far, without a header (a message body). */
  body(): Buffer {
    return Buffer.from(this.bytes);
  }
}

function len(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** Shorthand for a new builder. */
export function build(): BufferBuilder {
  return new BufferBuilder();
}

/**
 * Every way the tests cut a byte stream: whole, in two at every offset, and one byte at a time.
 * Each entry is a list of chunks whose concatenation is `bytes`.
 */
export function* chunkings(bytes: Buffer): Generator<{ name: string; chunks: Buffer[] }> {
  yield { name: 'whole', chunks: [bytes] };
  for (let k = 1; k < bytes.length; k++) {
    yield { name: `split at ${k}`, chunks: [bytes.subarray(0, k), bytes.subarray(k)] };
  }
  const single: Buffer[] = [];
  for (let k = 0; k < bytes.length; k++) single.push(bytes.subarray(k, k + 1));
  yield { name: 'one byte at a time', chunks: single };
}
