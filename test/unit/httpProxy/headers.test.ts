import { describe, expect, it } from 'vitest';
import { forwardHeaders, headViolation, responseHeaders } from '../../../gateway/httpProxy/headers.js';

describe('forwardHeaders', () => {
  it('drops hop-by-hop fields and those named in Connection, whatever their case', () => {
    const raw = ['Host', 'a', 'Connection', 'Keep-Alive, X-Private', 'connection', 'x-other', 'X-Private', 'p', 'x-OTHER', 'o', 'TE', 'trailers', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Proxy-Authorization', 'Basic x', 'Expect', '100-continue', 'Accept', 'application/json'];
    expect(forwardHeaders(raw)).toEqual(['Accept', 'application/json']);
  });

  it('replaces every client value of an injected field, never merging', () => {
    const raw = ['authorization', 'Bearer guess', 'AUTHORIZATION', 'Bearer other', 'x-a', '1'];
    expect(forwardHeaders(raw, { Authorization: 'Bearer held' })).toEqual(['x-a', '1', 'Authorization', 'Bearer held']);
  });

  it('keeps repeated end-to-end fields in order', () => {
    expect(forwardHeaders(['x-a', '1', 'x-a', '2'])).toEqual(['x-a', '1', 'x-a', '2']);
  });
});

describe('responseHeaders', () => {
  it('names a transfer coding other than chunked as a content coding applied last: the body still carries it', () => {
    expect(responseHeaders({ 'transfer-encoding': 'gzip, chunked', 'content-type': 'application/json' })).toEqual({ 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(responseHeaders({ 'Content-Encoding': 'br', 'transfer-encoding': ['deflate', 'chunked'] })).toEqual({ 'content-encoding': 'br, deflate' });
    expect(responseHeaders({ 'transfer-encoding': 'chunked' })).toEqual({});
  });

  it('drops hop-by-hop fields from the upstream answer and keeps repeated ones', () => {
    expect(responseHeaders({ connection: 'close, x-secret', 'x-secret': 's', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/plain' })).toEqual({
      'set-cookie': ['a=1', 'b=2'],
      'content-type': 'text/plain',
    });
  });
});

describe('headViolation', () => {
  it('accepts a sound HTTP/1.1 head, a chunked one, and an HTTP/1.0 one without Host', () => {
    expect(headViolation('1.1', ['Host', 'x', 'Content-Length', '4'])).toBeUndefined();
    expect(headViolation('1.1', ['host', 'x', 'Transfer-Encoding', ' Chunked'])).toBeUndefined();
    expect(headViolation('1.0', ['Content-Length', '4'])).toBeUndefined();
  });

  it.each([
    ['0.9', ['Host', 'x'], /HTTP\/0\.9/],
    ['2.0', ['Host', 'x'], /HTTP\/2\.0/],
    ['1.1', [], /without a Host/],
    ['1.1', ['Host', 'x', 'HOST', 'y'], /more than one Host/],
    ['1.1', ['Host', 'x', 'Content-Length', '4', 'content-length', '4'], /more than one Content-Length/],
    ['1.0', ['Transfer-Encoding', 'chunked'], /HTTP\/1\.0/],
    ['1.1', ['Host', 'x', 'Content-Length', '4', 'Transfer-Encoding', 'chunked'], /both Content-Length and Transfer-Encoding/],
    ['1.1', ['Host', 'x', 'Transfer-Encoding', 'gzip, chunked'], /other than chunked/],
    ['1.1', ['Host', 'x', 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'], /other than chunked/],
  ] as const)('refuses HTTP/%s %j', (version, raw, reason) => {
    expect(headViolation(version, raw)).toMatch(reason);
  });
});
