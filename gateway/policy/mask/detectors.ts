// Value detectors for masking: each finds the spans of a string that look like one kind of
// sensitive value. Checksums (Luhn for cards, ISO 7064 mod-97 for IBANs, SSA rules for SSNs) keep
// ordinary numbers from being masked.
//
// Every pattern matches ASCII characters only (an email's local part and domain also accept any
// non-ASCII character), so the detectors run unchanged on a "binary" string — a UTF-8 value
// decoded as latin1, one character per byte — and the spans they return are byte offsets that
// always fall on UTF-8 character boundaries. dataRow.ts relies on that to mask without decoding.

export const DETECTOR_NAMES = ['credit_card', 'email', 'us_ssn', 'iban', 'phone', 'secret'] as const;
export type DetectorName = (typeof DETECTOR_NAMES)[number];

export interface Span {
  readonly start: number;
  readonly end: number;
  readonly detector: DetectorName;
}

type Finder = (s: string, out: Span[]) => void;

// ---- credit cards: 13-19 digits, single spaces or dashes allowed between digits, Luhn ----

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isAlnum = (c: number) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/**
 * A run is digits joined by single separators; a card starts and ends on a group boundary inside
 * it. Every start and length is tried (longest first), so neighbouring numbers ("order 12 4111
 * 1111 1111 1111") cannot hide a card by making the run too long or its checksum wrong.
 */
const findCards: Finder = (s, out) => {
  const run = /[0-9](?:[ -]?[0-9])*/g;
  for (let m = run.exec(s); m !== null; m = run.exec(s)) {
    const base = m.index;
    const text = m[0];
    // Positions of digits within the run, and which of them start or end a group.
    const pos: number[] = [];
    for (let i = 0; i < text.length; i++) if (isDigit(text.charCodeAt(i))) pos.push(i);
    if (pos.length < 13) continue;
    const startsGroup = (k: number) => k === 0 || (pos[k] as number) - (pos[k - 1] as number) > 1;
    const endsGroup = (k: number) => k === pos.length - 1 || (pos[k + 1] as number) - (pos[k] as number) > 1;
    let k = 0;
    while (k <= pos.length - 13) {
      let found = -1;
      if (startsGroup(k) && text.charCodeAt(pos[k] as number) >= 50 && text.charCodeAt(pos[k] as number) <= 54) {
        for (let len = Math.min(19, pos.length - k); len >= 13; len--) {
          const last = k + len - 1;
          if (!endsGroup(last)) continue;
          let digits = '';
          for (let j = k; j <= last; j++) digits += text[pos[j] as number];
          if (luhnValid(digits)) {
            found = last;
            break;
          }
        }
      }
      if (found >= 0) {
        out.push({ start: base + (pos[k] as number), end: base + (pos[found] as number) + 1, detector: 'credit_card' });
        k = found + 1;
      } else k++;
    }
  }
};

// ---- email: scanned outward from each "@" ----

const isLocalChar = (c: number) => isAlnum(c) || c >= 0x80 || c === 46 || c === 95 || c === 37 || c === 43 || c === 45; // . _ % + -
const isDomainChar = (c: number) => isAlnum(c) || c >= 0x80 || c === 45 || c === 46;

const findEmails: Finder = (s, out) => {
  for (let at = s.indexOf('@'); at !== -1; at = s.indexOf('@', at + 1)) {
    let a = at;
    while (a > 0 && isLocalChar(s.charCodeAt(a - 1))) a--;
    let b = at + 1;
    while (b < s.length && isDomainChar(s.charCodeAt(b))) b++;
    while (b > at + 1 && (s.charCodeAt(b - 1) === 46 || s.charCodeAt(b - 1) === 45)) b--; // "a@b.com." ends a sentence
    while (a < at && s.charCodeAt(a) === 46) a++;
    if (a === at) continue;
    const domain = s.slice(at + 1, b);
    const dot = domain.lastIndexOf('.');
    if (dot <= 0) continue;
    const tld = domain.slice(dot + 1);
    if (tld.length < 2 || /[0-9-]/.test(tld) || domain.includes('..')) continue;
    out.push({ start: a, end: b, detector: 'email' });
  }
};

// ---- US SSN: AAA-GG-SSSS (dashes or spaces), SSA validity rules ----

const SSN = /(?<![0-9-])([0-9]{3})([- ])([0-9]{2})\2([0-9]{4})(?![0-9-])/g;

const findSsns: Finder = (s, out) => {
  for (const m of s.matchAll(SSN)) {
    const area = m[1] as string;
    if (area === '000' || area === '666' || area[0] === '9' || m[3] === '00' || m[4] === '0000') continue;
    out.push({ start: m.index, end: m.index + m[0].length, detector: 'us_ssn' });
  }
};

// ---- IBAN: country, check digits, 11-30 characters, contiguous or in groups of four; mod-97 ----

export function ibanValid(candidate: string): boolean {
  const iban = candidate.replace(/ /g, '').toUpperCase();
  if (iban.length < 15 || iban.length > 34) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let rem = 0;
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0);
    const v = code >= 65 ? code - 55 : code - 48;
    rem = v >= 10 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem === 1;
}

const IBAN_CONTIGUOUS = /(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]{11,30}(?![A-Za-z0-9])/g;
const IBAN_GROUPED = /(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?: [A-Za-z0-9]{4}){2,7}(?: [A-Za-z0-9]{1,4})?(?![A-Za-z0-9])/g;

const findIbans: Finder = (s, out) => {
  for (const m of s.matchAll(IBAN_CONTIGUOUS)) {
    if (ibanValid(m[0])) out.push({ start: m.index, end: m.index + m[0].length, detector: 'iban' });
  }
  for (const m of s.matchAll(IBAN_GROUPED)) {
    // A word after the last group ("… 0130 00 is") may have been taken as a group: drop groups
    // from the end until the checksum holds.
    let text = m[0];
    while (text.includes(' ')) {
      if (ibanValid(text)) {
        out.push({ start: m.index, end: m.index + text.length, detector: 'iban' });
        break;
      }
      text = text.slice(0, text.lastIndexOf(' '));
    }
  }
};

// ---- phone numbers: international (+CC …) or North American with separators ----

const PHONE_INTL = /(?<![0-9A-Za-z+])\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,6}(?![0-9])/g;
const PHONE_NANP = /(?<![0-9A-Za-z+-])(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![0-9-])/g;

const digitCount = (s: string) => s.replace(/[^0-9]/g, '').length;

const findPhones: Finder = (s, out) => {
  for (const m of s.matchAll(PHONE_INTL)) {
    const n = digitCount(m[0]);
    if (n >= 8 && n <= 15) out.push({ start: m.index, end: m.index + m[0].length, detector: 'phone' });
  }
  for (const m of s.matchAll(PHONE_NANP)) out.push({ start: m.index, end: m.index + m[0].length, detector: 'phone' });
};

// ---- secrets: cloud keys, private keys, JWTs, GitHub and Slack tokens ----

const SECRET_PATTERNS: readonly RegExp[] = [
  // AWS access key ids (long-term AKIA, temporary ASIA, and the other documented prefixes).
  /(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
  // PEM private keys; an unterminated block (a truncated value) is masked to the end.
  /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)/g,
  // JWTs (JWS compact form): base64url header starting `{"` (eyJ), payload, optional signature.
  /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g,
  // GitHub: classic/OAuth/user/server/refresh tokens and fine-grained PATs.
  /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})(?![A-Za-z0-9_])/g,
  // Slack tokens and incoming-webhook URLs.
  /(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,250}/g,
  /https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9/_-]+/g,
  // Google API keys, Stripe secret and restricted keys.
  /(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])/g,
  /(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,247}(?![A-Za-z0-9_])/g,
];

// An AWS secret access key: exactly 40 base64 characters with upper, lower and digits (hex digests
// are lower-case only and so are not matched).
const AWS_SECRET = /(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/g;

/** One pass that every secret pattern needs to pass: its fixed prefix, or 40 base64 characters. */
const SECRET_HINT = /A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA|SCA)|-----BEGIN|eyJ|gh[pousr]_|github_pat_|xox[abposr]-|hooks\.slack\.com|AIza|[sr]k_(?:live|test)_|[A-Za-z0-9/+]{40}/;

const findSecrets: Finder = (s, out) => {
  for (const re of SECRET_PATTERNS) for (const m of s.matchAll(re)) out.push({ start: m.index, end: m.index + m[0].length, detector: 'secret' });
  for (const m of s.matchAll(AWS_SECRET)) {
    const t = m[0];
    if (/[A-Z]/.test(t) && /[a-z]/.test(t) && /[0-9]/.test(t)) out.push({ start: m.index, end: m.index + t.length, detector: 'secret' });
  }
};

const FINDERS: Record<DetectorName, Finder> = {
  credit_card: findCards,
  email: findEmails,
  us_ssn: findSsns,
  iban: findIbans,
  phone: findPhones,
  secret: findSecrets,
};

/**
 * Quick rejection: a value with none of these cannot contain any detector's match, and most
 * values (names, words, short numbers) are turned away here without running a pattern.
 */
function hasDigits(s: string, n: number): boolean {
  let count = 0;
  for (let i = 0; i < s.length; i++) if (isDigit(s.charCodeAt(i)) && ++count >= n) return true;
  return false;
}

const NEEDS: Record<DetectorName, (s: string) => boolean> = {
  credit_card: (s) => hasDigits(s, 13),
  email: (s) => s.includes('@'),
  us_ssn: (s) => /[0-9]{4}/.test(s),
  iban: (s) => /[A-Za-z]{2}[0-9]{2}/.test(s),
  phone: (s) => (s.includes('+') && hasDigits(s, 8)) || /[0-9]{3}[ .-][0-9]{4}/.test(s),
  secret: (s) => s.length >= 20 && SECRET_HINT.test(s),
};

/**
 * A cheaper first screen, on a value's bytes before they are decoded: the detectors among
 * `detectors` that can possibly match in `bytes[start, end)`. Each test is a condition every
 * match of that detector satisfies, so a detector left out could not have found anything:
 * a card has 13 digits; an email an `@`; an SSN 9 digits, 4 of them in a row, and a space or
 * dash; an IBAN two letters then two digits; a phone number a `+` and 8 digits, or 7 digits, 4
 * in a row, and a space, dot or dash; every secret is at least 20 characters long. Whatever
 * passes still goes through NEEDS and the finder on the decoded string, so this only saves the
 * decode and the patterns for the values (most of them) that cannot hold anything.
 */
export function screenBytes(bytes: Uint8Array, start: number, end: number, detectors: Iterable<DetectorName>): DetectorName[] {
  let digits = 0;
  let run = 0;
  let maxRun = 0;
  let at = false;
  let plus = false;
  let spaceOrDash = false;
  let dot = false;
  let iban = false;
  for (let i = start; i < end; i++) {
    const c = bytes[i] as number;
    if (c >= 48 && c <= 57) {
      digits++;
      if (++run > maxRun) maxRun = run;
      // The second digit of a run that follows two letters: [A-Za-z]{2}[0-9]{2}.
      if (run === 2 && i - start >= 3 && isLetter(bytes[i - 2] as number) && isLetter(bytes[i - 3] as number)) iban = true;
      continue;
    }
    run = 0;
    if (c === 64) at = true;
    else if (c === 43) plus = true;
    else if (c === 32 || c === 45) spaceOrDash = true;
    else if (c === 46) dot = true;
  }
  const possible: DetectorName[] = [];
  for (const d of detectors) {
    let may: boolean;
    switch (d) {
      case 'credit_card':
        may = digits >= 13;
        break;
      case 'email':
        may = at;
        break;
      case 'us_ssn':
        may = digits >= 9 && maxRun >= 4 && spaceOrDash;
        break;
      case 'iban':
        may = iban;
        break;
      case 'phone':
        may = (plus && digits >= 8) || (digits >= 7 && maxRun >= 4 && (spaceOrDash || dot));
        break;
      case 'secret':
        may = end - start >= 20;
        break;
    }
    if (may) possible.push(d);
  }
  return possible;
}

const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/**
 * Finds the spans of `s` that the given detectors recognise, sorted and merged (overlapping or
 * touching spans become one, named after the first detector that found it).
 */
export function findSpans(s: string, detectors: Iterable<DetectorName>): Span[] {
  const found: Span[] = [];
  for (const d of detectors) if (NEEDS[d](s)) FINDERS[d](s, found);
  if (found.length <= 1) return found;
  found.sort((x, y) => x.start - y.start || y.end - x.end);
  const merged: Span[] = [];
  for (const sp of found) {
    const last = merged[merged.length - 1];
    if (last !== undefined && sp.start <= last.end) {
      if (sp.end > last.end) merged[merged.length - 1] = { start: last.start, end: sp.end, detector: last.detector };
    } else merged.push(sp);
  }
  return merged;
}
