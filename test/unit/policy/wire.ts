// Builds and reads PostgreSQL DataRow / RowDescription frames for the masking tests, written out
// field by field from the protocol documentation (not with the code under test).
import type { RowColumn } from '../../../gateway/policy/mask/dataRow.js';

const int32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
};
const int16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v);
  return b;
};

/** 'D' + Int32 length + Int16 count + (Int32 length | -1, bytes)*. */
export function dataRow(values: readonly (Buffer | string | null)[]): Buffer {
  const body = Buffer.concat([
    int16(values.length),
    ...values.flatMap((v) => {
      if (v === null) return [int32(-1)];
      const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      return [int32(b.length), b];
    }),
  ]);
  return Buffer.concat([Buffer.from('D'), int32(body.length + 4), body]);
}

/** Reads a DataRow back into its values (checking every length on the way). */
export function readDataRow(frame: Buffer): (Buffer | null)[] {
  if (frame.toString('latin1', 0, 1) !== 'D') throw new Error('not a DataRow');
  if (frame.readInt32BE(1) !== frame.length - 1) throw new Error(`length field ${frame.readInt32BE(1)} != ${frame.length - 1}`);
  const n = frame.readInt16BE(5);
  const out: (Buffer | null)[] = [];
  let p = 7;
  for (let i = 0; i < n; i++) {
    const len = frame.readInt32BE(p);
    p += 4;
    if (len === -1) out.push(null);
    else {
      out.push(frame.subarray(p, p + len));
      p += len;
    }
  }
  if (p !== frame.length) throw new Error('trailing bytes');
  return out;
}

export function column(name: string, over: Partial<RowColumn> = {}): RowColumn {
  return { name, tableOid: 0, attnum: 0, typeOid: 25, typeSize: -1, typeMod: -1, formatCode: 0, ...over };
}

/** 'T' + Int32 length + Int16 count + per field: name\0, table OID, attnum, type OID, typlen, typmod, format. */
export function rowDescription(cols: readonly RowColumn[]): Buffer {
  const body = Buffer.concat([
    int16(cols.length),
    ...cols.flatMap((c) => {
      const f = Buffer.alloc(18);
      f.writeUInt32BE(c.tableOid, 0);
      f.writeInt16BE(c.attnum, 4);
      f.writeUInt32BE(c.typeOid, 6);
      f.writeInt16BE(c.typeSize, 10);
      f.writeInt32BE(c.typeMod, 12);
      f.writeInt16BE(c.formatCode, 16);
      return [Buffer.from(`${c.name}\0`, 'utf8'), f];
    }),
  ]);
  return Buffer.concat([Buffer.from('T'), int32(body.length + 4), body]);
}
