// The one place that decides whether a host is loopback, for every check that lets plain http://
// through (the gateway URL, the identity provider's issuer) or that warns about a listener
// reachable from other machines. A prefix test on the text (`/^127\./`) let
// `http://127.attacker.example` carry a bearer token in clear to whoever owns that domain: here a
// host is loopback only when it is an IP literal inside 127.0.0.0/8 or ::1, or exactly `localhost`.
import { isIPv4, isIPv6 } from 'node:net';

/**
 * Whether `host` names this machine's loopback interface without a resolver being asked.
 *
 * Accepted: a dotted-quad IPv4 literal in 127.0.0.0/8 (no leading zeros), the IPv6 literal `::1`
 * (bracketed or not, any spelling that Node's parser reads as ::1), and the name `localhost`
 * exactly (ASCII case ignored; RFC 6761 §6.3 reserves it for loopback, and resolvers answer it
 * from /etc/hosts). Refused: any other name, even one that starts with `127.` or `localhost`
 * (`127.0.0.1.nip.io`, `localhost.evil`, `localhost.`), IPv4-mapped IPv6 addresses
 * (`::ffff:127.0.0.1` — loopback in effect, but a spelling no honest configuration needs, so it is
 * refused rather than reasoned about), `0.0.0.0` and `::`.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  if (isIPv4(h)) return h.split('.')[0] === '127';
  if (isIPv6(h)) return isIPv6Loopback(h);
  return false;
}

/**
 * Whether plain `http:` to `url` stays on this machine: its host is loopback (isLoopbackHost) and
 * it carries no userinfo. The WHATWG parser has already normalised `http://127.1` and
 * `http://0x7f.0.0.1` to 127.0.0.1, so those count; `http://127.0.0.1@evil.example` has the host
 * `evil.example` and is refused by the host test, and `http://evil@127.0.0.1` is refused because
 * credentials in a URL are a trick, never a configuration.
 */
export function isLoopbackUrl(url: URL): boolean {
  return url.username === '' && url.password === '' && isLoopbackHost(url.hostname);
}

/** ::1 written any way Node accepts (`::1`, `0:0:0:0:0:0:0:1`, `::0:1`); nothing else. */
function isIPv6Loopback(h: string): boolean {
  // A zone (`::1%lo`) names an interface, which loopback has no use for.
  if (h.includes('%') || h.includes('.')) return false;
  const [head = '', tail] = h.split('::');
  const groups = (s: string | undefined) => (s === undefined || s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  if (all.length !== 8) return false;
  return all.every((g, i) => parseInt(g, 16) === (i === 7 ? 1 : 0));
}
