// The exec client's own parts (src/agent/client.ts): the frame reader gives the same frames however
// the bytes are chunked and refuses an oversized length before buffering it; the agent directory it
// lists is the one the full CLI's settings path names, or none when only the full CLI can tell.
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentDirOf, frame, frameReader, FRAME_HEADER_BYTES } from '../../../src/agent/client.js';
import { settingsPath } from '../../../src/settings.js';
import { BufferStream, stdinOf } from './execFakes.js';

/** An independent frame builder: type byte, big-endian u32 length, payload. */
function build(type: number, payload: string): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

function readAll(chunks: Buffer[], max?: number): [number, string][] {
  const out: [number, string][] = [];
  const push = frameReader((type, payload) => out.push([type, payload.toString()]), max);
  for (const c of chunks) push(c);
  return out;
}

describe('frameReader', () => {
  const frames: [number, string][] = [
    [0x13, 'id,name\n1,Ada\n'],
    [0x15, ''],
    [0x14, 'sluice: stopped at statement 2'],
    [0x16, '\u0000'],
  ];
  const wire = Buffer.concat(frames.map(([t, p]) => build(t, p)));

  it('encodes as the independent builder does', () => {
    expect(Buffer.concat(frames.map(([t, p]) => frame(t, p)))).toEqual(wire);
  });

  it('gives the same frames glued, split at every offset, and one byte at a time', () => {
    expect(readAll([wire])).toEqual(frames);
    for (let at = 0; at <= wire.length; at++) expect(readAll([wire.subarray(0, at), wire.subarray(at)])).toEqual(frames);
    expect(readAll([...wire].map((b) => Buffer.from([b])))).toEqual(frames);
  });

  it('refuses a declared length over its limit from the header alone', () => {
    const head = Buffer.alloc(FRAME_HEADER_BYTES);
    head[0] = 0x13;
    head.writeUInt32BE(0xffffffff, 1);
    expect(() => readAll([head], 1024)).toThrow(/over the 1024-byte limit/);
  });
});

describe('agentDirOf', () => {
  const io = (env: NodeJS.ProcessEnv, cwd: string) => ({ stdout: new BufferStream(), stderr: new BufferStream(), env, cwd, stdin: stdinOf(undefined) });
  const cases: [string, NodeJS.ProcessEnv, string][] = [
    ['an absolute SLUICE_CONFIG_DIR', { SLUICE_CONFIG_DIR: '/srv/ci/sluice', HOME: '/home/ci' }, '/work'],
    ['a relative SLUICE_CONFIG_DIR, from the caller', { SLUICE_CONFIG_DIR: 'cfg/sluice' }, '/home/ci/project'],
    ['HOME', { HOME: '/home/ci' }, '/'],
    ['XDG_CONFIG_HOME', { HOME: '/home/ci', XDG_CONFIG_HOME: '/home/ci/.xdg' }, '/'],
  ];
  for (const [what, env, cwd] of cases) {
    it(`is the full CLI's config directory with ${what}`, () => {
      expect(agentDirOf(env, cwd, 'linux')).toBe(join(dirname(settingsPath(io(env, cwd))), 'agent'));
    });
  }

  it('is unknown without HOME or SLUICE_CONFIG_DIR, and on Windows', () => {
    expect(agentDirOf({}, '/', 'linux')).toBeUndefined();
    expect(agentDirOf({ HOME: 'C:\\Users\\ci' }, '/', 'win32')).toBeUndefined();
  });
});
