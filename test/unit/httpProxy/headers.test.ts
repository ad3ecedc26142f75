import { describe, expect, it } from 'vitest';
import { forwardHeaders, responseHeaders } from '../../../gateway/httpProxy/headers.js';

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
