// How reviews read in listings and in `reviews show`: where one stands, how long until it expires,
// the statement on one line.
import type { ReviewInfo } from '../../api/contract.js';

/** How long until `iso`, or since it, as people read it: `4m 10s`, `2h 5m`, `12 s`. */
export function relative(iso: string, now = Date.now()): string {
  const ms = Math.abs(Date.parse(iso) - now);
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** One line saying where a review stands: `pending, expires in 9m 50s`, `approved by bob@…`. */
export function statusLine(r: ReviewInfo, now = Date.now()): string {
  switch (r.status) {
    case 'pending':
      return `pending, expires in ${relative(r.expiresAt, now)}`;
    case 'approved':
    case 'rejected':
      return `${r.status} by ${r.decidedBy?.name ?? 'someone'}`;
    default:
      return r.status;
  }
}

/** The statement on one line, shortened for a table cell. */
export function oneLineSql(sql: string, max = 60): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}
