// What reading kubectl's tunnelled port-forward for the held token costs, on the built scanners
// alone (no sockets): BENCH_SPDY_MB (default 100) MB of base64 text (the alphabet of tokens: the
// worst case for the prefix check) as SPDY data frames on two streams, cut into WebSocket messages
// that do not line up with them, fed in 64 KiB reads; beside it the same bytes as v5 exec channel
// frames through the WebSocket scanner of this build and, when OLD_DIST names another build's
// dist/ (e.g. /work/main/dist), through that build's, alternating, five rounds, medians of the CPU
// (process.cpuUsage) per MB. Run: `node dist/test/bench/spdyScan.js`. Nothing asserted.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SpdyScan } from '../../gateway/httpProxy/spdy/scan.js';
import { WsScrubber } from '../../gateway/httpProxy/wsScrub.js';

const MB = Number(process.env.BENCH_SPDY_MB ?? 100);
const ROUNDS = 5;
const READ = 64 * 1024;
const TOKEN = randomBytes(472).toString('base64url');
const SECRETS = [Buffer.from(`Bearer ${TOKEN}`), Buffer.from(TOKEN)];

interface Filter {
  push(chunk: Buffer): Buffer | undefined;
  end(): Buffer | undefined;
}

function wsFrame(payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x82, len]) : len < 65536 ? Buffer.from([0x82, 126, len >> 8, len & 0xff]) : Buffer.concat([Buffer.from([0x82, 127]), Buffer.from(BigInt(len).toString(16).padStart(16, '0'), 'hex')]);
  return Buffer.concat([head, payload]);
}

function spdyData(stream: number, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(stream, 0);
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** The two wires: SPDY data frames of 32 KiB on streams 1 and 3 in 30 000-byte messages, and v5 stdout frames of 32 KiB. */
function wires(): { spdy: Buffer; channel: Buffer } {
  const text = Buffer.from(randomBytes(Math.ceil((MB * 1024 * 1024 * 3) / 4)).toString('base64').slice(0, MB * 1024 * 1024));
  const frames: Buffer[] = [];
  const channel: Buffer[] = [];
  for (let at = 0, i = 0; at < text.length; at += 32 * 1024, i++) {
    const part = text.subarray(at, at + 32 * 1024);
    frames.push(spdyData(i % 2 === 0 ? 1 : 3, part));
    channel.push(wsFrame(Buffer.concat([Buffer.from([1]), part])));
  }
  const spdy = Buffer.concat(frames);
  const messages: Buffer[] = [];
  for (let at = 0; at < spdy.length; at += 30_000) messages.push(wsFrame(spdy.subarray(at, at + 30_000)));
  return { spdy: Buffer.concat(messages), channel: Buffer.concat(channel) };
}

/** CPU milliseconds per MB of payload to feed `wire` through the filter in 64 KiB reads. */
function cpuPerMb(filter: Filter, wire: Buffer): number {
  const start = process.cpuUsage();
  for (let at = 0; at < wire.length; at += READ) filter.push(wire.subarray(at, at + READ));
  filter.end();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / MB;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function main(): Promise<void> {
  const { spdy, channel } = wires();
  const old = process.env.OLD_DIST ? ((await import(pathToFileURL(join(process.env.OLD_DIST, 'gateway/httpProxy/wsScrub.js')).href)) as { WsScrubber: new (s: readonly Buffer[], mode: string) => Filter }) : undefined;
  const runs: Record<string, number[]> = { copy: [], 'channel (this build)': [], 'spdy (this build)': [], ...(old ? { 'channel (OLD_DIST)': [] } : {}) };
  for (let r = 0; r < ROUNDS; r++) {
    runs.copy!.push(cpuPerMb({ push: (c) => Buffer.from(c), end: () => undefined }, channel));
    if (old) runs['channel (OLD_DIST)']!.push(cpuPerMb(new old.WsScrubber(SECRETS, 'channel'), channel));
    runs['channel (this build)']!.push(cpuPerMb(new WsScrubber(SECRETS, 'channel'), channel));
    runs['spdy (this build)']!.push(cpuPerMb(new WsScrubber(SECRETS, 'spdy', undefined, new SpdyScan(SECRETS)), spdy));
  }
  console.log(`${MB} MB, ${ROUNDS} rounds, token ${TOKEN.length} chars, load average ${loadavg()[0]!.toFixed(1)}`);
  for (const [name, xs] of Object.entries(runs)) console.log(`${name.padEnd(22)} median ${median(xs).toFixed(2)} ms CPU/MB  (${xs.map((x) => x.toFixed(2)).join(' ')})`);
}

await main();
