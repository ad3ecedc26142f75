// What keeping the service's number literals costs a masked JSON response (gateway/engines/http/
// jsonNumbers.ts), in CPU time per document: the exact parse-and-write against JSON.parse and
// JSON.stringify of the same text, on a 570 KB body of 5000 customers — once with only numbers a
// JS number writes back identically (the scan's fast path), once with one id beyond 2^53 (the
// lossless-json path). Blocks alternate (reference, exact, reference, …) and the figure is the
// median of the paired ratios, as elsewhere on these shared machines. Masking itself (paths and
// detectors) is the same on every path and not included.
import { parseJsonExact, stringifyJsonExact } from '../../gateway/engines/http/jsonNumbers.js';
import type { Row } from './postgres.js';

const PAIRS = Number(process.env.BENCH_PAIRS ?? 5);
const DOCS = 20;

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function perDoc(f: () => void): number {
  const start = cpuMs();
  for (let i = 0; i < DOCS; i++) f();
  return (cpuMs() - start) / DOCS;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchHttpMask(log: (s: string) => void): Promise<Row[]> {
  const doc = { customers: Array.from({ length: 5000 }, (_, i) => ({ id: i * 7919, name: `Customer ${i}`, email: `c${i}@example.com`, balance: i * 1.25, tags: ['a', 'b'], active: i % 2 === 0 })) };
  const plain = JSON.stringify(doc);
  const big = plain.replace('"id":0', '"id":9007199254740993');
  const rows: Row[] = [];
  for (const [name, text] of [['plain numbers', plain], ['one id beyond 2^53', big]] as const) {
    const refs: number[] = [];
    const exact: number[] = [];
    for (let p = 0; p < PAIRS; p++) {
      refs.push(perDoc(() => JSON.stringify(JSON.parse(text))));
      exact.push(perDoc(() => stringifyJsonExact(parseJsonExact(text))));
    }
    const ratios = refs.map((r, i) => r / exact[i]!);
    log(`masked JSON numbers (${name}): JSON ${median(refs).toFixed(1)} ms, exact ${median(exact).toFixed(1)} ms per ${(text.length / 1024).toFixed(0)} KiB document`);
    rows.push({ figure: `masked JSON: exact numbers, ${name} (÷ JSON.parse+stringify)`, reference: median(refs), value: median(exact), unit: 'ms CPU/doc', ratio: median(ratios) });
  }
  return rows;
}
