// Text rendering shared by `sessions show` and `sessions replay`: psql's aligned table format (so a
// replay reads like the session did), a statement timeline built from a session's events, and
// small formatters for times, durations and sizes.
import type { SessionDetail, SessionEvent, SessionSummary } from '../../api/contract.js';

/** Type OIDs psql right-aligns (its column_type_alignment): integers, floats, numeric, oid, xid, cid, money. */
const RIGHT_ALIGNED = new Set([20, 21, 23, 26, 28, 29, 700, 701, 790, 1700, 5069]);

export interface Column {
  name: string;
  type?: number;
}

/** Display width of a string: code points (psql counts East Asian wide characters as 2; rare here). */
const width = (s: string) => [...s].length;
const pad = (s: string, w: number, right: boolean) => (right ? ' '.repeat(w - width(s)) + s : s + ' '.repeat(w - width(s)));

/**
 * A result as psql's default `\pset format aligned` (border 1) prints it, including the
 * `(N rows)` footer and the blank line after it. `total` is the true row count when `rows` is
 * only the recorded sample.
 */
export function psqlTable(columns: readonly Column[], rows: readonly (readonly (string | null)[])[], total = rows.length): string {
  const cells = rows.map((r) => columns.map((_, i) => (r[i] ?? '').split('\n')));
  const widths = columns.map((c, i) => Math.max(width(c.name), ...cells.map((r) => Math.max(...(r[i] as string[]).map(width)))));
  const right = columns.map((c) => c.type !== undefined && RIGHT_ALIGNED.has(c.type));
  const out: string[] = [];
  const last = columns.length - 1;
  out.push(
    ' ' +
      columns
        .map((c, i) => {
          const w = widths[i] as number;
          const left = Math.floor((w - width(c.name)) / 2);
          return ' '.repeat(left) + c.name + ' '.repeat(w - width(c.name) - left);
        })
        .join(' | ') +
      ' ',
  );
  out.push(widths.map((w) => '-'.repeat(w + 2)).join('+'));
  for (const r of cells) {
    const height = Math.max(1, ...r.map((lines) => lines.length));
    for (let k = 0; k < height; k++) {
      let line = ' ';
      r.forEach((lines, i) => {
        const text = lines[k] ?? '';
        const more = k < lines.length - 1;
        const w = widths[i] as number;
        // psql pads neither a left-aligned last column nor a last column whose value has no
        // line left (continuation lines of a multi-line row).
        if (i === last && ((!right[i] && !more) || k >= lines.length)) line += text;
        else line += pad(text, w, right[i] as boolean) + (more ? '+' : i === last ? '' : ' ');
        if (i !== last) line += '| ';
      });
      out.push(line);
    }
  }
  out.push(`(${total} ${total === 1 ? 'row' : 'rows'})`, '');
  return out.join('\n') + '\n';
}

export interface Statement {
  q: number;
  query: SessionEvent;
  decision?: SessionEvent;
  result?: SessionEvent;
  reviews: SessionEvent[];
}

/** Groups a session's events by statement (`data.q`), in the order the statements were sent. */
export function statements(events: readonly SessionEvent[]): Statement[] {
  const byQ = new Map<number, Statement>();
  const list: Statement[] = [];
  for (const e of events) {
    const q = typeof e.data.q === 'number' ? e.data.q : undefined;
    if (q === undefined) continue;
    // `query`: a SQL statement; `action`: another protocol's (an ssh exec, an HTTP request).
    if (e.kind === 'query' || e.kind === 'action') {
      const s: Statement = { q, query: e, reviews: [] };
      byQ.set(q, s);
      list.push(s);
      continue;
    }
    const s = byQ.get(q);
    if (!s) continue;
    if (e.kind === 'decision') s.decision = e;
    else if (e.kind === 'result') s.result = e;
    else if (e.kind.startsWith('review.')) s.reviews.push(e);
  }
  return list;
}

/** What psql would have printed for a statement's result, from what the audit recorded. */
export function renderResult(result: SessionEvent | undefined): string {
  if (!result) return '(no result was recorded: the session ended first)\n\n';
  const d = result.data;
  // psql prints errors without their SQLSTATE at its default verbosity.
  if (d.status === 'error') return `ERROR:  ${String(d.message ?? 'error')}\n`;
  const commands = Array.isArray(d.commands) ? (d.commands as string[]) : [];
  const columns = Array.isArray(d.columns) ? (d.columns as { name: string; type?: number }[]) : undefined;
  const sample = Array.isArray(d.sample) ? (d.sample as (string | null)[][]) : undefined;
  const rows = typeof d.rows === 'number' ? d.rows : undefined;
  let out = '';
  if (columns && sample) {
    out += psqlTable(columns, sample, rows ?? sample.length);
    if (rows !== undefined && sample.length < rows) out += `(the audit kept the first ${sample.length} of ${rows} rows)\n\n`;
    if (Array.isArray(d.masked) && d.masked.length > 0) out += `(masked: ${(d.masked as string[]).join(', ')})\n\n`;
    return out;
  }
  for (const tag of commands) {
    if (/^(SELECT|FETCH) \d+$/.test(tag)) out += `(${rows ?? tag.split(' ')[1]} ${rows === 1 ? 'row' : 'rows'}; the rows were not recorded)\n\n`;
    else out += `${tag}\n`;
  }
  return out;
}

export function formatTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function formatDuration(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function who(s: SessionSummary): string {
  return s.email ?? s.user;
}

/** The human timeline of `sessions show`. */
export function timeline(detail: SessionDetail): string {
  const s = detail.session;
  const lines: string[] = [];
  const ended = s.endedAt ? `${formatTime(s.endedAt)} (${formatDuration(Date.parse(s.endedAt) - Date.parse(s.startedAt))})` : 'still open';
  lines.push(`session ${s.id} · ${s.connection} (${s.protocol}${s.database ? `, database ${s.database}` : ''})`);
  lines.push(`  who     ${who(s)} (${s.kind === 'service' ? 'service token' : 'user'}; groups: ${s.groups.join(', ') || 'none'})`);
  lines.push(`  from    ${s.clientAddress} via ${s.origin}`);
  lines.push(`  when    ${formatTime(s.startedAt)} → ${ended}`);
  lines.push(`  status  ${s.status}${s.error ? ` (${s.error})` : ''} · ${formatBytes(s.bytesFromClient)} in · ${formatBytes(s.bytesToClient)} out`);
  lines.push(`  trail   ${detail.events.length} events${s.ledgerSeq !== null ? `, sealed in ledger #${s.ledgerSeq}` : ', not sealed yet'}${s.purgedAt ? `; events removed by retention at ${formatTime(s.purgedAt)}` : ''}`);
  lines.push('');
  const list = statements(detail.events);
  if (list.length === 0) lines.push(s.purgedAt ? '  (events removed by retention)' : '  (no statements)');
  for (const st of list) {
    const r = st.result?.data;
    const verdict = st.decision ? String(st.decision.data.verdict) : 'recorded';
    const outcome = !r
      ? 'no result'
      : r.status === 'error'
        ? `error${r.sqlstate ?? r.code ? ` ${String(r.sqlstate ?? r.code)}` : ''}${r.message ? `: ${String(r.message)}` : ''}`
        : `${Array.isArray(r.commands) && r.commands.length > 0 ? (r.commands as string[]).join(', ') : `ok${r.code !== undefined ? ` ${String(r.code)}` : ''}`}${typeof r.rows === 'number' ? ` · ${r.rows} ${r.rows === 1 ? 'row' : 'rows'}` : ''}`;
    const duration = r && typeof r.durationMs === 'number' ? ` · ${formatDuration(r.durationMs)}` : '';
    const text = String(st.query.data.text ?? '').replace(/\s+/g, ' ').trim();
    lines.push(`${st.query.at.slice(11, 23)}  #${st.q}  ${text.length > 100 ? text.slice(0, 99) + '…' : text}`);
    lines.push(`              ${verdict}${st.decision?.data.rule ? ` (rule ${String(st.decision.data.rule)})` : ''} → ${outcome}${duration}`);
    if (r && Array.isArray(r.masked) && r.masked.length > 0) lines.push(`              masked: ${(r.masked as string[]).join(', ')}`);
    for (const rv of st.reviews) lines.push(`              ${rv.kind}${rv.data.by ? ` by ${String(rv.data.by)}` : ''}${rv.data.reason ? `: ${String(rv.data.reason)}` : ''}`);
  }
  return lines.join('\n') + '\n';
}
