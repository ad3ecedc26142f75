// The sftp tap records file operations from the relayed stream: packets built here by hand, fed
// whole, one byte at a time and glued together, give the same events; garbage stops the recording
// without throwing.
import { describe, expect, it } from 'vitest';
import type { SshAudit } from '../../../gateway/engines/ssh/recorder.js';
import { tapSftp } from '../../../gateway/engines/ssh/sftpTap.js';

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const str = (s: string | Buffer) => Buffer.concat([u32(Buffer.byteLength(s)), Buffer.from(s)]);
const packet = (type: number, ...parts: Buffer[]) => {
  const body = Buffer.concat([Buffer.from([type]), ...parts]);
  return Buffer.concat([u32(body.length), body]);
};
const u64 = (n: number) => Buffer.concat([u32(0), u32(n)]);

function recorder(): { audit: SshAudit; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const audit = { onEvent: (kind: string, data: Record<string, unknown>) => events.push({ kind, ...data }) } as unknown as SshAudit;
  return { audit, events };
}

const handle = Buffer.from('h1');
const client = [
  packet(3, u32(1), str('/srv/upload.bin'), u32(0x1a), u32(0)), // OPEN write|creat|trunc
  packet(6, u32(2), str(handle), u64(0), str(Buffer.alloc(100))), // WRITE
  packet(5, u32(3), str(handle), u64(0), u32(4096)), // READ
  packet(4, u32(4), str(handle)), // CLOSE
  packet(18, u32(5), str('/srv/a'), str('/srv/b')), // RENAME
  packet(13, u32(6), str('/srv/b')), // REMOVE
];
const server = [packet(102, u32(1), str(handle)), packet(103, u32(3), str(Buffer.alloc(40)))];
const expected = [
  { kind: 'ssh.sftp', action: 7, op: 'open', path: '/srv/upload.bin', flags: 0x1a, read: 40, written: 100 },
  { kind: 'ssh.sftp', action: 7, op: 'rename', path: '/srv/a', to: '/srv/b' },
  { kind: 'ssh.sftp', action: 7, op: 'remove', path: '/srv/b' },
];

function feed(split: (b: Buffer) => Buffer[]): Record<string, unknown>[] {
  const { audit, events } = recorder();
  const tap = tapSftp(audit, 7);
  for (const b of split(client[0] as Buffer)) tap.fromClient(b);
  for (const b of split(server[0] as Buffer)) tap.fromServer(b);
  for (const b of split(Buffer.concat(client.slice(1, 3)))) tap.fromClient(b);
  for (const b of split(server[1] as Buffer)) tap.fromServer(b);
  for (const b of split(Buffer.concat(client.slice(3)))) tap.fromClient(b);
  tap.end();
  return events;
}

describe('sftp tap', () => {
  it('records open with byte counts, rename and remove, however the stream is chunked', () => {
    expect(feed((b) => [b])).toEqual(expected);
    expect(feed((b) => [...b].map((x) => Buffer.from([x])))).toEqual(expected);
  });

  it('counts large writes and reads whose data spans many chunks, the data skipped, not kept', () => {
    const big = 200 * 1024;
    const stream = {
      client: [client[0], packet(6, u32(2), str(handle), u64(0), str(Buffer.alloc(big, 7))), packet(6, u32(3), str(handle), u64(big), str(Buffer.alloc(5))), packet(5, u32(4), str(handle), u64(0), u32(big)), client[3]] as Buffer[],
      server: [server[0], packet(103, u32(4), str(Buffer.alloc(big, 9)))] as Buffer[],
    };
    for (const size of [32 * 1024, 32 * 1024 + 13, 7919, 300, 5]) {
      const { audit, events } = recorder();
      const tap = tapSftp(audit, 2);
      const chunks = (b: Buffer) => Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size));
      for (const b of chunks(stream.client[0] as Buffer)) tap.fromClient(b);
      for (const b of chunks(stream.server[0] as Buffer)) tap.fromServer(b);
      for (const b of chunks(Buffer.concat(stream.client.slice(1, 4)))) tap.fromClient(b);
      for (const b of chunks(stream.server[1] as Buffer)) tap.fromServer(b);
      for (const b of chunks(stream.client[4] as Buffer)) tap.fromClient(b);
      tap.end();
      expect(events, `chunks of ${size}`).toEqual([{ kind: 'ssh.sftp', action: 2, op: 'open', path: '/srv/upload.bin', flags: 0x1a, read: big, written: big + 5 }]);
    }
  });

  it('stops recording on an absurd length or a truncated field, and never throws', () => {
    const { audit, events } = recorder();
    const tap = tapSftp(audit, 1);
    tap.fromClient(Buffer.concat([u32(0xffffffff), Buffer.alloc(8)]));
    tap.fromClient(client[5] as Buffer);
    expect(events).toEqual([]);
    const other = recorder();
    const t2 = tapSftp(other.audit, 1);
    expect(() => t2.fromClient(packet(13, u32(1), u32(99)))).not.toThrow();
    t2.fromClient(client[5] as Buffer);
    expect(other.events).toEqual([]);
  });
});
