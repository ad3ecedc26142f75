// SPDY/3 header blocks (the name/value blocks of SYN_STREAM, SYN_REPLY and HEADERS frames): each
// sender compresses all of its blocks with one zlib stream primed with the SPDY/3 dictionary
// (draft-mbelshe-httpbis-spdy-00 §2.6.10.1) and flushes it (Z_SYNC_FLUSH) at the end of every
// block, so a block is a run of whole deflate blocks whose back-references may reach into the
// dictionary and every earlier block. Node's zlib has no synchronous streaming inflate, so each
// block is inflated on its own as raw deflate, primed with the last 32 KiB of what came before
// (the dictionary, then the earlier blocks' output) — what a streaming inflater's window would
// hold. That is exact only if the block ends on a deflate block boundary; a block that does not
// (no sync flush, a cut in mid-block) cannot be proved to decode as the client will decode it and
// is refused, as is anything past the caps.
import { constants, inflateRawSync } from 'node:zlib';

/** A header block the gateway cannot read, or will not relay. */
export class SpdyScanError extends Error {
  override readonly name = 'SpdyScanError';
}

/** The largest header block output accepted (kubelet's port-forward headers are a few dozen bytes). */
export const MAX_HEADER_BLOCK_OUTPUT = 256 * 1024;
const WINDOW = 32 * 1024;
const SYNC_FLUSH_MARK = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/** A final empty stored block: appended to prove the block ended where a new deflate block may begin. */
const FINAL_EMPTY_BLOCK = Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]);

/** The SPDY/3 zlib dictionary: length-prefixed header names and values, then a run of common text. */
export const SPDY3_DICTIONARY: Buffer = (() => {
  const prefixed = [
    'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding', 'accept-language', 'accept-ranges', 'age', 'allow',
    'authorization', 'cache-control', 'connection', 'content-base', 'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5',
    'content-range', 'content-type', 'date', 'etag', 'expect', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range',
    'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer', 'retry-after',
    'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning', 'www-authenticate', 'method', 'get', 'status', '200 OK',
    'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive', 'origin',
  ];
  const tail =
    '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
    '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found' +
    '500 Internal Server Error501 Not Implemented503 Service Unavailable' +
    'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
    'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,' +
    'publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';
  const parts: Buffer[] = [];
  for (const w of prefixed) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(w.length);
    parts.push(len, Buffer.from(w, 'latin1'));
  }
  parts.push(Buffer.from(tail, 'latin1'));
  return Buffer.concat(parts);
})();

/** Adler-32 (RFC 1950 §8), for the dictionary id in the zlib header. */
export function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < buf.length; i++) {
    a = (a + buf[i]!) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const DICTIONARY_ID = adler32(SPDY3_DICTIONARY);

/** One direction's header blocks, in order: each is inflated with what came before as its window. */
export class HeaderBlockInflater {
  /** Undefined until the first block (which carries the zlib header) is read. */
  private window: Buffer | undefined;

  /** The block's name/value bytes; throws SpdyScanError when they cannot be proved to be what the peer will read. */
  inflate(block: Buffer): Buffer {
    let data = block;
    if (this.window === undefined) {
      if (block.length < 2) throw new SpdyScanError('a SPDY header block too short for its zlib header');
      const cmf = block[0]!;
      const flg = block[1]!;
      if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0) throw new SpdyScanError('a SPDY header block without a valid zlib header');
      if ((flg & 0x20) !== 0) {
        if (block.length < 6 || block.readUInt32BE(2) !== DICTIONARY_ID) throw new SpdyScanError('a SPDY header block primed with a dictionary other than SPDY/3\'s');
        this.window = SPDY3_DICTIONARY;
        data = block.subarray(6);
      } else {
        this.window = Buffer.alloc(0);
        data = block.subarray(2);
      }
    }
    if (data.length < SYNC_FLUSH_MARK.length || !data.subarray(data.length - SYNC_FLUSH_MARK.length).equals(SYNC_FLUSH_MARK)) {
      throw new SpdyScanError('a SPDY header block that does not end with a zlib sync flush');
    }
    const opts = { maxOutputLength: MAX_HEADER_BLOCK_OUTPUT, ...(this.window.length > 0 ? { dictionary: this.window } : {}) };
    let out: Buffer;
    try {
      out = inflateRawSync(data, { ...opts, finishFlush: constants.Z_SYNC_FLUSH });
      const closed = inflateRawSync(Buffer.concat([data, FINAL_EMPTY_BLOCK]), opts);
      if (!closed.equals(out)) throw new Error('the block does not end on a deflate block boundary');
    } catch (err) {
      throw new SpdyScanError(`a SPDY header block that does not inflate cleanly (${err instanceof Error ? err.message : String(err)})`);
    }
    const joined = Buffer.concat([this.window, out]);
    this.window = joined.length > WINDOW ? joined.subarray(joined.length - WINDOW) : joined;
    return out;
  }
}

/** The name/value pairs of an inflated SPDY/3 header block; throws unless the bytes are exactly one well-formed block. */
export function parseHeaderBlock(raw: Buffer): [string, string][] {
  const fail = (why: string): never => {
    throw new SpdyScanError(`a malformed SPDY header block (${why})`);
  };
  if (raw.length < 4) fail('no pair count');
  const count = raw.readUInt32BE(0);
  let at = 4;
  const pairs: [string, string][] = [];
  const take = (): string => {
    if (raw.length - at < 4) fail('a length cut short');
    const len = raw.readUInt32BE(at);
    at += 4;
    if (len > raw.length - at) fail('a length past the block');
    const s = raw.toString('latin1', at, at + len);
    at += len;
    return s;
  };
  // Each pair takes at least 8 bytes: a count past that cannot be honest.
  if (count > (raw.length - 4) / 8) fail('more pairs than bytes');
  for (let i = 0; i < count; i++) pairs.push([take(), take()]);
  if (at !== raw.length) fail('bytes after the last pair');
  return pairs;
}
