// The V8 heap setting a relay process needs. Each relayed MB passes through a few short-lived
// Buffers (socket reads, ssh packets decrypted and encrypted again), whose backing stores V8
// counts towards its global allocation limit. With V8's adaptive growing factor that limit can
// settle just above the live heap, and the process then runs a full mark-compact every few MB
// relayed (half the gateway's CPU during an scp, measured: docs/performance.md, "ssh: AES-GCM and
// the collector"). A fixed factor of 2 keeps the next full collection a heap's size away.
import v8 from 'node:v8';

const FLAG = '--heap-growing-percent';

/**
 * Sets the growing factor unless the operator chose one on node's command line
 * (`node --heap-growing-percent=N bin/sluice-gateway.js`; NODE_OPTIONS cannot carry V8 flags).
 */
export function tuneHeapForRelaying(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((a) => a.replaceAll('_', '-').startsWith(FLAG))) return;
  v8.setFlagsFromString(`${FLAG}=100`);
}
