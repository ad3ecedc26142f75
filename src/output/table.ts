// The CLI's one table printer. Two looks: `plain` (listings such as `sluice connections`: upper-case
// headers, columns two spaces apart) and `psql` (query results as psql's aligned format draws them:
// centred headers, ` | ` between columns, a `-+-` rule and an `(N rows)` footer). Results can be
// millions of rows, so the psql look streams: column widths come from the first `sampleRows` rows
// and later, wider values simply push their row out of line (psql itself buffers everything).
export interface TableSink {
  write(chunk: string): unknown;
}

/** Aligns rows for a listing; returns the lines (no trailing spaces). */
export function plainTable(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => width(r[i] ?? ''))));
  return all.map((r) => r.map((cell, i) => pad(cell, widths[i] as number)).join('  ').trimEnd());
}

/** Writes a listing to `out`, one line per row. */
export function printPlainTable(out: TableSink, header: readonly string[], rows: readonly (readonly string[])[]): void {
  for (const line of plainTable(header, rows)) out.write(line + '\n');
}

/** A psql-look table fed row by row; `end()` writes the footer. NULL shows as an empty cell, like psql. */
export class StreamingTable {
  private readonly pending: (readonly (string | null)[])[] = [];
  private widths: number[] | undefined;
  private count = 0;

  constructor(
    private readonly out: TableSink,
    private readonly header: readonly string[],
    private readonly sampleRows = 1000,
  ) {}

  row(values: readonly (string | null)[]): void {
    this.count++;
    if (this.widths) return this.writeRow(values);
    this.pending.push(values);
    if (this.pending.length >= this.sampleRows) this.flushSample();
  }

  end(): void {
    if (!this.widths) this.flushSample();
    this.out.write(`(${this.count} row${this.count === 1 ? '' : 's'})\n\n`);
  }

  private flushSample(): void {
    const widths = this.header.map((h, i) => Math.max(width(h), ...this.pending.map((r) => width(r[i] ?? ''))));
    this.widths = widths;
    this.out.write(' ' + this.header.map((h, i) => centre(h, widths[i] as number)).join(' | ').trimEnd() + '\n');
    this.out.write(widths.map((w) => '-'.repeat(w + 2)).join('+') + '\n');
    for (const r of this.pending) this.writeRow(r);
    this.pending.length = 0;
  }

  private writeRow(values: readonly (string | null)[]): void {
    const widths = this.widths as number[];
    this.out.write(' ' + values.map((v, i) => pad(v ?? '', widths[i] ?? 0)).join(' | ').trimEnd() + '\n');
  }
}

/** Display width: code points, so that accented text lines up (wide CJK glyphs still count as one). */
function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function pad(s: string, w: number): string {
  return s + ' '.repeat(Math.max(0, w - width(s)));
}

function centre(s: string, w: number): string {
  const left = Math.floor((w - width(s)) / 2);
  return ' '.repeat(Math.max(0, left)) + pad(s, w - Math.max(0, left));
}
