// The three shapes `sluice exec` prints results in, each fed the stream's events one at a time and
// writing to a sink as it goes (nothing waits for a whole result):
//   table  psql's aligned look, one table per statement; statements without rows print their
//          command tag (`INSERT 0 3`) as psql does
//   csv    RFC 4180 fields, a header line per statement, a blank line between statements' results
//   json   NDJSON: {"statement":0,"row":{…}} per row, {"statement":0,"command":…,"rows":…} per
//          statement, {"statement":1,"error":{…}} where it stopped
import type { ExecColumn } from '../../api/contract.js';
import { StreamingTable, type TableSink } from '../../output/table.js';
import { csvField, jsonValueFor, uniqueKeys, type JsonValue } from './values.js';

export const FORMATS = ['table', 'csv', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export interface ExecFailure {
  sqlstate?: string;
  message: string;
  rule?: string;
}

export interface ResultFormat {
  columns(statement: number, columns: readonly ExecColumn[]): void;
  rows(statement: number, rows: readonly (readonly (string | null)[])[]): void;
  complete(statement: number, command: string, rows: number | null): void;
  error(statement: number | undefined, failure: ExecFailure): void;
}

export function createFormat(format: Format, out: TableSink): ResultFormat {
  switch (format) {
    case 'table':
      return new TableFormat(out);
    case 'csv':
      return new CsvFormat(out);
    case 'json':
      return new JsonFormat(out);
  }
}

/** For `--json`: results are not printed, only the final summary. */
export const silentFormat: ResultFormat = { columns() {}, rows() {}, complete() {}, error() {} };

class TableFormat implements ResultFormat {
  private table: StreamingTable | undefined;
  constructor(private readonly out: TableSink) {}

  columns(_statement: number, columns: readonly ExecColumn[]): void {
    this.table = new StreamingTable(this.out, columns.map((c) => c.name));
  }
  rows(_statement: number, rows: readonly (readonly (string | null)[])[]): void {
    for (const r of rows) this.table?.row(r);
  }
  complete(_statement: number, command: string): void {
    if (this.table) this.table.end();
    else this.out.write(command + '\n');
    this.table = undefined;
  }
  error(): void {
    // Rows that arrived before the error were real results: show them (with their count), as
    // they may already be on screen; the error itself goes to stderr.
    this.table?.end();
    this.table = undefined;
  }
}

class CsvFormat implements ResultFormat {
  private results = 0;
  constructor(private readonly out: TableSink) {}

  columns(_statement: number, columns: readonly ExecColumn[]): void {
    if (this.results++ > 0) this.out.write('\n');
    this.out.write(columns.map((c) => csvField(c.name)).join(',') + '\n');
  }
  rows(_statement: number, rows: readonly (readonly (string | null)[])[]): void {
    for (const r of rows) this.out.write(r.map(csvField).join(',') + '\n');
  }
  complete(): void {}
  error(): void {}
}

class JsonFormat implements ResultFormat {
  private prefix = '';
  private keys: string[] = [];
  private values: JsonValue[] = [];
  constructor(private readonly out: TableSink) {}

  columns(statement: number, columns: readonly ExecColumn[]): void {
    this.prefix = `{"statement":${statement},"row":{`;
    this.keys = uniqueKeys(columns.map((c) => c.name)).map((k) => JSON.stringify(k) + ':');
    this.values = columns.map(jsonValueFor);
  }
  rows(_statement: number, rows: readonly (readonly (string | null)[])[]): void {
    const { keys, values } = this;
    for (const r of rows) {
      let line = this.prefix;
      for (let i = 0; i < keys.length; i++) line += (i > 0 ? ',' : '') + keys[i] + (values[i] as JsonValue)(r[i] ?? null);
      this.out.write(line + '}}\n');
    }
  }
  complete(statement: number, command: string, rows: number | null): void {
    this.out.write(JSON.stringify({ statement, command, rows }) + '\n');
  }
  error(statement: number | undefined, failure: ExecFailure): void {
    this.out.write(JSON.stringify({ ...(statement !== undefined ? { statement } : {}), error: failure }) + '\n');
  }
}
