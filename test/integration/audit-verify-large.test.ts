// `sluice audit verify` on an export larger than the verifier's whole heap: the real CLI binary,
// run with a 48 MiB heap, verifies a ~70 MB export (200 sealed sessions of 1000 events, signed
// with a key made here) because it streams the file line by line, holding one entry per session
// and ledger entry, never the events. Reading the file whole (as it once did) runs out of memory.
import { generateKeyPairSync, sign } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkpointMessage, eventHash, exportEndMessage, GENESIS_HASH, keyIdOf, ledgerHash, TRAIL_FORMAT, type LedgerBody } from '../../src/api/auditTrail.js';
import { CLI_BIN, cliEnv, collect, newConfigDir } from '../support/binaries.js';

const SESSIONS = 200;
const EVENTS = 1000;
const HEAP_MB = 48;

describe('audit verify of a large export', () => {
  it('streams: a ~70 MB export verifies within a 48 MiB heap', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-verify-large-'));
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const key = keyIdOf(publicKey);
    const file = join(dir, 'trail.jsonl');
    const out = createWriteStream(file);
    const write = async (line: unknown) => {
      if (!out.write(`${JSON.stringify(line)}\n`)) await once(out, 'drain');
    };
    const at = '2026-11-28T10:00:00.000Z';
    await write({ type: 'header', format: TRAIL_FORMAT, at, scope: { kind: 'all' }, key });
    const padding = 'x'.repeat(200);
    const sessions: { id: string; events: number; last: string }[] = [];
    for (let s = 0; s < SESSIONS; s++) {
      const id = `s_large${s}`;
      let prev = GENESIS_HASH;
      for (let seq = 1; seq <= EVENTS; seq++) {
        const body = { session: id, seq, kind: 'query' as const, at, data: { q: seq, text: `select ${seq} -- ${padding}` } };
        prev = eventHash(prev, body);
        await write({ type: 'event', ...body, hash: prev });
      }
      sessions.push({ id, events: EVENTS, last: prev });
    }
    let ledgerHead = GENESIS_HASH;
    for (const [i, s] of sessions.entries()) {
      const entry: LedgerBody = { seq: i + 1, at, kind: 'session', session: s.id, startedAt: at, events: s.events, final: s.last };
      ledgerHead = ledgerHash(ledgerHead, entry);
      await write({ type: 'ledger', ...entry, hash: ledgerHead });
    }
    // As the gateway does: a checkpoint of the head signed at export time, and the interval in the end line.
    const checkpoint = { ledgerSeq: SESSIONS, ledgerHash: ledgerHead, at, key };
    await write({ type: 'checkpoint', ...checkpoint, sig: sign(null, checkpointMessage(checkpoint), privateKey).toString('base64') });
    const end = { scope: { kind: 'all' as const }, at, key, ledgerFrom: 1, ledgerPrev: GENESIS_HASH, ledgerSeq: SESSIONS, ledgerHash: ledgerHead, sessions, checkpointSeconds: 60 };
    await write({ type: 'end', ...end, sig: sign(null, exportEndMessage(end), privateKey).toString('base64') });
    out.end();
    await once(out, 'close');
    expect(statSync(file).size).toBeGreaterThan(HEAP_MB * 1024 * 1024);
    const pub = join(dir, 'gateway.pub');
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));

    const child = spawn(process.execPath, [`--max-old-space-size=${HEAP_MB}`, CLI_BIN, 'audit', 'verify', file, '--key', pub], { env: cliEnv({ configDir: newConfigDir() }), stdio: ['ignore', 'pipe', 'pipe'] });
    const r = await collect(child);
    expect(r.stderr).toContain(`verified: ${SESSIONS} sessions (${SESSIONS} sealed, 0 still open), ${SESSIONS * EVENTS} events, ledger #1–#${SESSIONS}, 1 signed checkpoints`);
    expect(r.code).toBe(0);
  }, 120_000);
});
