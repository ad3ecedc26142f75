// Follows the message boundaries of the target → client byte stream without holding on to it.
// The relay forwards each received chunk unchanged (zero copy); this scanner only reads the
// 5-byte headers and skips bodies by counting, so a 1 GiB DataRow costs the gateway a header
// parse and nothing else. The few message types the gateway cares about (CommandComplete,
// ErrorResponse, ReadyForQuery, …) are handed to a callback; one whose body lies whole in the
// chunk is passed as offsets into it, only one split across chunks is assembled.
import { PgProtocolError } from './wire.js';
import { SERVER_MAX_LENGTH, describeType } from './framer.js';

const EMPTY = Buffer.alloc(0);

/**
 * Receives a collected message: its body is `buf[start, end)`, valid only during the call. A body
 * above the collect cap is reported empty (the gateway relays it but does not decode it).
 */
export type ScannedMessageHandler = (type: number, buf: Buffer, start: number, end: number) => void;

/** Type bytes to collect, e.g. `'CEZ'`, as the lookup table the scanner wants. */
export function messageTypeSet(types: string): Uint8Array {
  const set = new Uint8Array(256);
  for (const t of types) set[t.charCodeAt(0)] = 1;
  return set;
}

/** Streaming boundary tracker for server messages; see the module comment. */
export class PgBackendScanner {
  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  /** Body bytes of the current message still to come. */
  private left = 0;
  private collectType = 0;
  private parts: Buffer[] | undefined;

  /**
   * @param collect table from `messageTypeSet` of the types to report.
   * @param maxLength cap on any declared length; above it the stream is rejected.
   * @param collectCap largest body that is assembled for the callback when split across chunks.
   */
  constructor(
    private readonly collect: Uint8Array,
    private readonly onMessage: ScannedMessageHandler,
    private readonly maxLength = SERVER_MAX_LENGTH,
    private readonly collectCap = 1024 * 1024,
  ) {}

  /** True when everything scanned so far ends exactly at a message boundary. */
  get atBoundary(): boolean {
    return this.headerFill === 0 && this.left === 0;
  }

  /**
   * Scans the next chunk of the stream, calling the handler for each collected message.
   * @throws PgProtocolError on a declared length below 4 or above the cap.
   */
  scan(chunk: Buffer): void {
    const n = chunk.length;
    let pos = 0;
    while (pos < n) {
      if (this.left > 0) {
        const take = Math.min(this.left, n - pos);
        this.parts?.push(chunk.subarray(pos, pos + take));
        pos += take;
        this.left -= take;
        if (this.left === 0 && this.parts) {
          const body = Buffer.concat(this.parts);
          this.parts = undefined;
          this.onMessage(this.collectType, body, 0, body.length);
        }
        continue;
      }
      let type: number;
      let len: number;
      if (this.headerFill === 0 && n - pos >= 5) {
        type = chunk[pos]!;
        len = chunk.readInt32BE(pos + 1);
        pos += 5;
      } else {
        const take = Math.min(5 - this.headerFill, n - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + take);
        this.headerFill += take;
        pos += take;
        if (this.headerFill < 5) return;
        this.headerFill = 0;
        type = this.header[0]!;
        len = this.header.readInt32BE(1);
      }
      if (len < 4 || len > this.maxLength) {
        throw new PgProtocolError(
          'bad-length',
          `server message ${describeType(type)} declares length ${len}, outside 4..${this.maxLength}`,
        );
      }
      const bodyLen = len - 4;
      const avail = n - pos;
      if (this.collect[type] === 1 && bodyLen <= this.collectCap) {
        if (avail >= bodyLen) {
          pos += bodyLen;
          this.onMessage(type, chunk, pos - bodyLen, pos);
        } else {
          this.collectType = type;
          this.parts = [chunk.subarray(pos)];
          this.left = bodyLen - avail;
          return;
        }
      } else {
        if (this.collect[type] === 1) this.onMessage(type, EMPTY, 0, 0);
        const take = Math.min(bodyLen, avail);
        pos += take;
        this.left = bodyLen - take;
      }
    }
  }
}
