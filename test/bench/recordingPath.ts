// The recording path's CPU per pgbench -S transaction on the event loop, in one process: what the
// postgres engine asks of the audit for each statement (onQuery staged with deferCommit, flush()
// and the wait for the write-ahead append, the result's columns, row and outcome) through the real
// recorder, writer and journal (durability `process`), against the same driver with an audit that
// records nothing. Sessions take turns the way pgbench -S's clients reach the gateway: a few
// statements per event-loop turn. The ingest (another thread in the gateway) is left out: the
// journal files are emptied as an ingest would, with nothing stored. `node
// dist/test/bench/recordingPath.js`; RECORDING_DIST=/other/dist runs another build's recorder with
// this driver, so old and new alternate in the same minutes; RECORDING_TX, RECORDING_ROUNDS,
// RECORDING_SESSIONS, RECORDING_PER_TURN (statements per turn), RECORDING_ONLY=journal|stub.
// Prints; asserts nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import type { AuditJournal } from '../../gateway/audit/journal.js';
import type { AuditWriter } from '../../gateway/audit/writer.js';
import type { GatewaySessionAudit } from '../../gateway/sessionAudit.js';

const TX = Number(process.env.RECORDING_TX ?? 200_000);
const ROUNDS = Number(process.env.RECORDING_ROUNDS ?? 5);
const SESSIONS = Number(process.env.RECORDING_SESSIONS ?? 8);
const PER_TURN = Number(process.env.RECORDING_PER_TURN ?? 2);
const ONLY = process.env.RECORDING_ONLY;
const DIST = process.env.RECORDING_DIST || undefined;
const TEXT = 'SELECT abalance FROM pgbench_accounts WHERE aid = 48211;';
const COLUMNS = [{ name: 'abalance', typeOid: 23 }];
const log = pino({ level: 'silent' });

interface Modules {
  AuditWriter: typeof AuditWriter;
  AuditJournal: typeof AuditJournal;
  createSessionAudit: typeof import('../../gateway/sessionAudit.js').createSessionAudit;
}

async function load(): Promise<Modules> {
  const base = DIST === undefined ? new URL('../../', import.meta.url) : pathToFileURL(`${DIST.replace(/\/$/, '')}/`);
  const [w, j, s] = await Promise.all([
    import(new URL('gateway/audit/writer.js', base).href) as Promise<typeof import('../../gateway/audit/writer.js')>,
    import(new URL('gateway/audit/journal.js', base).href) as Promise<typeof import('../../gateway/audit/journal.js')>,
    import(new URL('gateway/sessionAudit.js', base).href) as Promise<typeof import('../../gateway/sessionAudit.js')>,
  ]);
  return { AuditWriter: w.AuditWriter, AuditJournal: j.AuditJournal, createSessionAudit: s.createSessionAudit };
}

/** An audit that records nothing: the driver's own cost. */
function stubAudit(): GatewaySessionAudit {
  let id = 0;
  return {
    started: true,
    onSessionStart: () => undefined,
    onAction: () => ++id,
    onDecision: () => undefined,
    onReview: () => undefined,
    onOutcome: () => undefined,
    onEvent: () => undefined,
    onSessionEnd: () => undefined,
    flush: () => undefined,
    afterFlush: () => false,
    onQuery: () => ++id,
    onResult: () => undefined,
    onColumns: () => undefined,
    onRow: () => true,
  };
}

/** The engine's record of a statement, as queryTracker hands it to onResult. */
class Statement {
  status: 'ok' | 'error' = 'ok';
  commands: string[] = ['SELECT 1'];
  rows = 1;
  sqlstate: string | undefined = undefined;
  message: string | undefined = undefined;
  durationMs = 0;
  bytes = 5;
  masked: string[] | undefined = undefined;
  constructor(readonly queryId: number) {}
}

/**
 * Runs `tx` transactions over the audits; resolves with CPU µs per transaction. Each turn, the
 * next PER_TURN sessions send a statement, wait for the audit as clientFlow does (then()), and
 * their results come back on a later turn.
 */
function drive(audits: GatewaySessionAudit[], tx: number): Promise<number> {
  return new Promise((resolve) => {
    let done = 0;
    let next = 0;
    let waiting = 0;
    const before = process.cpuUsage();
    const answered: [GatewaySessionAudit, number][] = [];
    const forwarded = (): void => {
      waiting--;
    };
    const failed = (err: Error): void => {
      throw err;
    };
    const turn = (): void => {
      // The target's answers to the statements forwarded in the previous turns.
      for (const [a, id] of answered.splice(0)) {
        a.onColumns!(id, COLUMNS);
        a.onRow!(id, ['-2841']);
        const s = new Statement(id);
        s.durationMs = 0.05 + (done % 7) * 0.01;
        a.onResult(s);
        done++;
      }
      if (done >= tx && waiting === 0) {
        const used = process.cpuUsage(before);
        return resolve((used.user + used.system) / done);
      }
      for (let k = 0; k < PER_TURN && waiting === 0; k++) {
        const a = audits[next++ % audits.length]!;
        const id = a.onQuery({ text: TEXT, params: undefined, protocol: 'simple', kinds: undefined, deferCommit: true });
        answered.push([a, id]);
        // As clientFlow waits: afterFlush where the build has it, else flush()'s promise.
        if (a.afterFlush !== undefined) {
          if (a.afterFlush(forwarded, failed)) waiting++;
        } else {
          const flushed = a.flush();
          if (flushed !== undefined) {
            waiting++;
            void flushed.then(forwarded, failed);
          }
        }
      }
      setImmediate(turn);
    };
    setImmediate(turn);
  });
}

async function round(m: Modules, kind: 'journal' | 'stub'): Promise<number> {
  if (kind === 'stub') return drive(Array.from({ length: SESSIONS }, stubAudit), TX);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-recording-'));
  const journal = await m.AuditJournal.open({ dir, durability: 'process' }, async () => undefined);
  // The ingest's place: files emptied as an ingest thread would, nothing stored.
  const ingester = { readsJournal: true, ingest: async () => ({ emptied: false, problems: [] }), close: async () => undefined };
  const store = { heartbeat: async () => undefined } as unknown as ConstructorParameters<typeof AuditWriter>[0]['store'];
  const writer = new m.AuditWriter({ store, journal, ingester, log, instance: 'g_bench' });
  try {
    const audits = Array.from({ length: SESSIONS }, (_, i) => {
      const a = m.createSessionAudit(
        { writer, limits: { maxRows: 100, maxBytes: 65536 }, instance: 'g_bench', log },
        { id: `s_bench_recording_${i}`, connection: 'bench', protocol: 'postgres', identity: { subject: 'token:bench', name: 'bench', groups: ['bench'], kind: 'service' }, origin: 'direct', clientAddress: '127.0.0.1' },
      );
      a.onSessionStart({ target: 'bench', clientUser: 'bench' });
      return a;
    });
    await writer.flush();
    return await drive(audits, TX);
  } finally {
    writer.close();
    journal.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const m = await load();
  const kinds: ('journal' | 'stub')[] = ONLY === 'journal' || ONLY === 'stub' ? [ONLY] : ['stub', 'journal'];
  const results: Record<string, number[]> = { stub: [], journal: [] };
  // One unmeasured pass each: the first round of a process runs cold (JIT).
  for (const k of kinds) await round(m, k);
  for (let r = 0; r < ROUNDS; r++) for (const k of kinds) results[k]!.push(await round(m, k));
  for (const k of kinds) process.stdout.write(`${k}: CPU µs per transaction ${median(results[k]!).toFixed(2)} (rounds ${results[k]!.map((x) => x.toFixed(2)).join(', ')})\n`);
  if (kinds.length === 2) process.stdout.write(`recording: ${(median(results.journal!) - median(results.stub!)).toFixed(2)} µs per transaction (${SESSIONS} sessions, ${PER_TURN} statements per turn)\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
