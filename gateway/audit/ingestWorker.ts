// The audit ingest thread (ingest.ts): reads the part of a journal file the writer handed over and
// chains its events and commits its ops to the store through its own connection, one transaction
// per request.
import { truncateSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { openStore } from '../store/open.js';
import { EventChains, storeLookup } from './chain.js';
import { commitStaged, type IngestWorkerData, type WorkerReply, type WorkerRequest } from './ingest.js';
import { readJournalPart } from './journal.js';

const data = workerData as IngestWorkerData;
const port = parentPort;
if (port === null) throw new Error('ingestWorker.js runs only as a worker thread');
const store = await openStore(data.store, data.durability);
// The events are hashed here, off the event loop (chain.ts).
const chains = new EventChains(storeLookup(store));

// Requests come one at a time (the writer awaits each), so no queue is needed here.
port.on('message', (m: WorkerRequest) => {
  void (async (): Promise<WorkerReply> => {
    try {
      const ops = readJournalPart(m.path, m.bytes);
      const problems = await commitStaged(store, chains, ops, m.replay);
      let emptied = true;
      try {
        truncateSync(m.path, 0);
      } catch {
        emptied = false; // the writer empties it then
      }
      return { id: m.id, ok: true, ops: ops.length, emptied, problems };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { id: m.id, ok: false, message: e.message, ...(e.code !== undefined ? { code: e.code } : {}) };
    }
  })().then((reply) => port.postMessage(reply));
});
