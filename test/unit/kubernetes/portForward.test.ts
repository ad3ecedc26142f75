// Recording port-forward streams: kubectl's SPDY tunnelled in WebSocket (client SYN_STREAMs whose
// header blocks, compressed with one zlib context, name the port and request id; data frames both
// ways; FINs and RST_STREAM) and the WebSocket channel protocol (ports from the query), built by
// an independent builder and fed cut at every offset. What cannot be read stops the recording
// with one `k8s.unrecorded`, without throwing.
import { constants, createDeflate } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { SessionAudit } from '../../../gateway/audit/contract.js';
import { PortForwardRecorder } from '../../../gateway/engines/kubernetes/portForward.js';
import { SPDY3_DICTIONARY } from '../../../gateway/httpProxy/spdy/headerBlock.js';

const MASK = Buffer.from([9, 8, 7, 6]);

function wsFrame(payload: Buffer, mask?: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? [0x82, (mask ? 0x80 : 0) | len] : [0x82, (mask ? 0x80 : 0) | 126, len >> 8, len & 0xff];
  const body = mask ? Buffer.from(payload.map((x, i) => x ^ mask[i % 4]!)) : payload;
  return Buffer.concat([Buffer.from(head), mask ?? Buffer.alloc(0), body]);
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

function data(stream: number, text: string, fin = false): Buffer {
  const body = Buffer.from(text);
  return Buffer.concat([u32(stream), Buffer.from([fin ? 1 : 0]), Buffer.from([body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

function control(type: number, body: Buffer, version = 3): Buffer {
  return Buffer.concat([Buffer.from([0x80 | (version >> 8), version & 0xff, type >> 8, type & 0xff, 0]), Buffer.from([body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

async function synStreams(specs: { stream: number; type: string; port: number; requestId: number }[]): Promise<Buffer[]> {
  const z = createDeflate({ dictionary: SPDY3_DICTIONARY });
  const out: Buffer[] = [];
  for (const s of specs) {
    const pairs = [['streamtype', s.type], ['port', String(s.port)], ['requestid', String(s.requestId)]];
    const block = Buffer.concat([u32(pairs.length), ...pairs.flatMap(([n, v]) => [u32(n!.length), Buffer.from(n!), u32(v!.length), Buffer.from(v!)])]);
    const compressed = await new Promise<Buffer>((resolve) => {
      const parts: Buffer[] = [];
      const onData = (d: Buffer) => parts.push(d);
      z.on('data', onData);
      z.write(block);
      z.flush(constants.Z_SYNC_FLUSH, () => {
        z.off('data', onData);
        resolve(Buffer.concat(parts));
      });
    });
    out.push(control(1, Buffer.concat([u32(s.stream), u32(0), Buffer.alloc(2), compressed])));
  }
  return out;
}

function fakeAudit(): { audit: SessionAudit; events: [string, Record<string, unknown>][] } {
  const events: [string, Record<string, unknown>][] = [];
  const audit = { onEvent: (kind: string, d: Record<string, unknown>) => events.push([kind, d]) } as unknown as SessionAudit;
  return { audit, events };
}

/** The events one connection leaves: opened, its error text if any, closed with the bytes each way. */
const connection = (requestId: string, port: number, bytesToPod: number, bytesFromPod: number, error?: string) => ({
  open: { kind: 'k8s.portforward.open', requestId, port },
  close: [...(error ? [{ kind: 'k8s.portforward.error', requestId, port, message: error }] : []), { kind: 'k8s.portforward.close', requestId, port, bytesToPod, bytesFromPod }],
});

const summary = (events: [string, Record<string, unknown>][]) => events.map(([k, d]) => ({ kind: k, ...Object.fromEntries(Object.entries(d).filter(([n]) => n !== 't' && n !== 'action')) }));

describe('PortForwardRecorder (SPDY tunnelled in WebSocket)', () => {
  it('records each connection: opened with its port, its error text, closed with the bytes each way', async () => {
    const [err1, data1, err2, data2] = await synStreams([
      { stream: 1, type: 'error', port: 8080, requestId: 0 },
      { stream: 3, type: 'data', port: 8080, requestId: 0 },
      { stream: 5, type: 'error', port: 9090, requestId: 1 },
      { stream: 7, type: 'data', port: 9090, requestId: 1 },
    ]);
    const up = Buffer.concat([err1!, data1!, data(3, 'GET / HTTP/1.1\r\n\r\n'), data(3, '', true), err2!, data2!]);
    const down = Buffer.concat([data(3, 'HTTP/1.1 200 OK\r\n'), data(3, 'hello', true), data(5, 'error forwarding port 9090: refused'), control(3, Buffer.concat([u32(7), u32(5)]))]);
    for (const cut of [0, 5, 17, up.length >> 1]) {
      const { audit, events } = fakeAudit();
      const rec = new PortForwardRecorder(audit, 4, 'spdy-ws', []);
      // The client's SPDY bytes cut into two masked messages; the server's one message per TCP read, cut at `cut`.
      const upWire = Buffer.concat([wsFrame(up.subarray(0, cut), MASK), wsFrame(up.subarray(cut), MASK)]);
      const downWire = wsFrame(down);
      for (let i = 0; i < upWire.length; i++) rec.fromClient(upWire.subarray(i, i + 1));
      rec.toClient(downWire.subarray(0, cut));
      rec.toClient(downWire.subarray(cut));
      rec.close();
      const [a, b] = [connection('0', 8080, 18, 22), connection('1', 9090, 0, 0, 'error forwarding port 9090: refused')];
      expect(summary(events)).toEqual([a.open, b.open, ...a.close, ...b.close]);
      expect(events.every(([, d]) => d.action === 4)).toBe(true);
    }
  });

  it('reads the same SPDY straight on the connection (kubectl\'s fallback, on a connection holding a client certificate)', async () => {
    const [err, dat] = await synStreams([
      { stream: 1, type: 'error', port: 5432, requestId: 0 },
      { stream: 3, type: 'data', port: 5432, requestId: 0 },
    ]);
    const { audit, events } = fakeAudit();
    const rec = new PortForwardRecorder(audit, 4, 'spdy', []);
    const up = Buffer.concat([err!, dat!, data(3, 'abc', true)]);
    for (let i = 0; i < up.length; i++) rec.fromClient(up.subarray(i, i + 1));
    rec.toClient(data(3, 'defg', true));
    const c = connection('0', 5432, 3, 4);
    expect(summary(events)).toEqual([c.open, ...c.close]);
  });

  it('stops recording, once and without throwing, at what it cannot read', () => {
    const { audit, events } = fakeAudit();
    const rec = new PortForwardRecorder(audit, 4, 'spdy-ws', []);
    rec.toClient(wsFrame(control(1, u32(1), 2)));
    rec.toClient(wsFrame(data(1, 'more')));
    expect(summary(events)).toEqual([{ kind: 'k8s.unrecorded', reason: 'a SPDY control frame of version 2' }]);
  });
});

describe('PortForwardRecorder (WebSocket channels)', () => {
  it('reads each port\'s data and error channels (a port prefix would count as data)', () => {
    const { audit, events } = fakeAudit();
    const rec = new PortForwardRecorder(audit, 2, 'channel', [80, 443]);
    const ch = (c: number, text: string) => Buffer.concat([Buffer.from([c]), Buffer.from(text)]);
    rec.fromClient(wsFrame(ch(0, 'ping'), MASK));
    rec.toClient(wsFrame(ch(0, 'pong!')));
    rec.toClient(wsFrame(ch(3, 'no such port')));
    rec.close();
    const [a, b] = [connection('0', 80, 4, 5), connection('1', 443, 0, 0, 'no such port')];
    expect(summary(events)).toEqual([a.open, b.open, ...a.close, ...b.close]);
  });
});
