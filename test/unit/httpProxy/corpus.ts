// Malformed and smuggling-shaped HTTP/1.1 requests for the proxy core's tests: each head with
// the status it must be answered (Node's parser answers most with 400; the core's own checks in
// headers.ts the rest), each chunked body that must be refused. The bytes are written out by
// hand, independent of the parser under test.

/** The head cap the corpus is built against (the over-long head is just past it). */
export const MAX_HEAD = 8 * 1024;

/** A request head from its lines (CRLF-joined, the empty line added), independent of the codec. */
export function head(...lines: string[]): Buffer {
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

/** Malformed or ambiguous heads: what each is answered. */
export const MALFORMED_HEADS: readonly (readonly [string, Buffer, number])[] = [
  ['Content-Length with Transfer-Encoding', head('POST / HTTP/1.1', 'Host: x', 'Content-Length: 4', 'Transfer-Encoding: chunked'), 400],
  ['Transfer-Encoding before Content-Length', head('POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked', 'Content-Length: 4'), 400],
  ['two differing Content-Lengths', head('POST / HTTP/1.1', 'Host: x', 'Content-Length: 4', 'Content-Length: 5'), 400],
  ['two equal Content-Lengths', head('POST / HTTP/1.1', 'Host: x', 'Content-Length: 4', 'Content-Length: 4'), 400],
  ['a Content-Length list', head('POST / HTTP/1.1', 'Host: x', 'Content-Length: 4, 4'), 400],
  ['a signed Content-Length', head('POST / HTTP/1.1', 'Host: x', 'Content-Length: +4'), 400],
  ['a negative Content-Length', head('POST / HTTP/1.1', 'Host: x', 'Content-Length: -1'), 400],
  ['a hex Content-Length', head('POST / HTTP/1.1', 'Host: x', 'Content-Length: 0x10'), 400],
  ['an empty Content-Length', head('POST / HTTP/1.1', 'Host: x', 'Content-Length:'), 400],
  ['a Content-Length past 2^53', head('POST / HTTP/1.1', 'Host: x', 'Content-Length: 99999999999999999999'), 400],
  ['gzip, chunked', head('POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: gzip, chunked'), 400],
  ['chunked, identity', head('POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked, identity'), 400],
  ['chunked twice in one field', head('POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked, chunked'), 400],
  ['chunked in two fields', head('POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'), 400],
  ['a look-alike coding', head('POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: xchunked'), 400],
  ['a space before the colon', head('POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding : chunked'), 400],
  ['a tab before the colon', head('POST / HTTP/1.1', 'Host: x', 'Content-Length\t: 4'), 400],
  ['Transfer-Encoding on HTTP/1.0', head('POST / HTTP/1.0', 'Transfer-Encoding: chunked'), 400],
  ['obs-fold', head('GET / HTTP/1.1', 'Host: x', 'X-A: 1', ' 2'), 400],
  ['obs-fold with a tab', head('GET / HTTP/1.1', 'Host: x', 'X-A: 1', '\tTransfer-Encoding: chunked'), 400],
  ['a folded first field', head('GET / HTTP/1.1', ' Host: x'), 400],
  ['a bare CR in a value', head('GET / HTTP/1.1', 'Host: x', 'X-A: a\rb'), 400],
  ['a bare CR ending a line', Buffer.from('GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n', 'latin1'), 400],
  ['a bare LF ending a line', Buffer.from('GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n', 'latin1'), 400],
  ['a head ended by LF LF', Buffer.from('GET / HTTP/1.1\nHost: x\n\n', 'latin1'), 400],
  ['a NUL in a value', head('GET / HTTP/1.1', 'Host: x', 'X-A: a\0b'), 400],
  ['DEL in a value', head('GET / HTTP/1.1', 'Host: x', 'X-A: a\x7fb'), 400],
  ['a control byte in a value', head('GET / HTTP/1.1', 'Host: x', 'X-A: a\x01b'), 400],
  ['a control byte in a name', head('GET / HTTP/1.1', 'Host: x', 'X\x01A: b'), 400],
  ['a space in a name', head('GET / HTTP/1.1', 'Host: x', 'X A: b'), 400],
  ['a name outside token', head('GET / HTTP/1.1', 'Host: x', 'X@A: b'), 400],
  ['a line without a colon', head('GET / HTTP/1.1', 'Host: x', 'X-A'), 400],
  ['an empty name', head('GET / HTTP/1.1', 'Host: x', ': b'), 400],
  ['a method outside token', head('G(ET / HTTP/1.1', 'Host: x'), 400],
  ['a space in the target', head('GET /a b HTTP/1.1', 'Host: x'), 400],
  ['obs-text in the target', head('GET /\xe9 HTTP/1.1', 'Host: x'), 400],
  ['no version', head('GET /', 'Host: x'), 400],
  ['a lower-case version', head('GET / http/1.1', 'Host: x'), 400],
  ['a version with trailing junk', head('GET / HTTP/1.1x', 'Host: x'), 400],
  ['HTTP/2.0', head('GET / HTTP/2.0', 'Host: x'), 400],
  ['the HTTP/2 preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), 400],
  ['HTTP/1.1 without Host', head('GET / HTTP/1.1', 'X-A: b'), 400],
  ['two Hosts', head('GET / HTTP/1.1', 'Host: x', 'Host: y'), 400],
  ['an unknown expectation', head('POST / HTTP/1.1', 'Host: x', 'Expect: 200-ok', 'Content-Length: 1'), 417],
  ['CONNECT', head('CONNECT x:443 HTTP/1.1', 'Host: x:443'), 405],
  ['a head past the cap', head('GET / HTTP/1.1', 'Host: x', `X-A: ${'a'.repeat(MAX_HEAD)}`), 431],
];

/**
 * Heads Node's parser reads leniently yet unambiguously: the request it reads is the one the
 * gateway judges and re-frames upstream in its own bytes, so no second reading can differ.
 * Listed so a change of that reading shows.
 */
export const LENIENT_HEADS: readonly (readonly [string, Buffer, string])[] = [['two spaces after the method', head('GET  / HTTP/1.1', 'Host: x'), 'GET /']];

/** Malformed chunked bodies: each is answered 400, or 431 where Node counts it in the head's cap (a trailer). */
export const MALFORMED_CHUNKED: readonly (readonly [string, string, number?])[] = [
  ['a chunk size past 2^40', 'FFFFFFFFFFFFFFFFF\r\na\r\n0\r\n\r\n'],
  ['chunk data longer than its size', '3\r\nabcd\r\n0\r\n\r\n'],
  ['chunk data without CRLF', '3\r\nabc0\r\n\r\n'],
  ['chunk data followed by LF alone', '3\r\nabc\n0\r\n\r\n'],
  ['a size line ended by LF alone', '3\nabc\r\n0\r\n\r\n'],
  ['a size line ended by CR alone', '3\rabc\r\n0\r\n\r\n'],
  ['a non-hex size', 'g\r\nabc\r\n0\r\n\r\n'],
  ['a negative size', '-1\r\na\r\n0\r\n\r\n'],
  ['a size with a leading space', ' 3\r\nabc\r\n0\r\n\r\n'],
  ['a size with a trailing space', '3 \r\nabc\r\n0\r\n\r\n'],
  ['a size with 0x', '0x3\r\nabc\r\n0\r\n\r\n'],
  ['an empty size line', '\r\nabc\r\n0\r\n\r\n'],
  ['a control byte in an extension', '3;a=\x01\r\nabc\r\n0\r\n\r\n'],
  ['a bare LF in an extension', '3;a\nb\r\nabc\r\n0\r\n\r\n'],
  ['a bare LF in a trailer', '0\r\nX-A: b\n\r\n'],
  ['a trailer past its cap', `0\r\nX-A: ${'a'.repeat(MAX_HEAD)}\r\n\r\n`, 431],
  ['a last chunk whose empty line is a CR alone', '0\r\n\rX'],
];

