// The parameter values of a statement held at an extended-protocol Bind, as a reviewer sees them:
// the approval releases that very Bind, so the values shown are exactly the values that run. Text
// values are shown as sent, binary ones as `\x` hex; each is capped (and says so) so that a
// megabyte parameter does not become a megabyte review, and the reviewer is told what was cut.

/** One parameter of a held Bind. */
export interface ReviewParameter {
  /** The value (text, or `\x` hex of a binary value), cut to the cap; null for SQL NULL. */
  readonly value: string | null;
  /** Sent in binary format (shown as `\x` hex). */
  readonly binary?: true;
  /** The value's length in bytes as sent. */
  readonly bytes: number;
  /** The value shown is only the first part of it. */
  readonly truncated?: true;
}

/** Characters of a text value shown (binary: bytes, shown as twice as many hex digits). */
export const MAX_PARAMETER_CHARS = 1000;
export const MAX_PARAMETER_BINARY_BYTES = 500;
/** Parameters shown; the count of the rest is given (`parametersOmitted`). */
export const MAX_PARAMETERS = 100;

export interface ReviewParameters {
  readonly parameters: readonly ReviewParameter[];
  readonly parametersOmitted?: number;
}

export function reviewParameters(params: readonly (string | Buffer | null)[]): ReviewParameters {
  const shown = params.slice(0, MAX_PARAMETERS).map((p): ReviewParameter => {
    if (p === null) return { value: null, bytes: 0 };
    if (typeof p === 'string') {
      const chars = [...p];
      const cut = chars.length > MAX_PARAMETER_CHARS;
      return { value: cut ? chars.slice(0, MAX_PARAMETER_CHARS).join('') : p, bytes: Buffer.byteLength(p), ...(cut ? { truncated: true as const } : {}) };
    }
    const cut = p.length > MAX_PARAMETER_BINARY_BYTES;
    return { value: `\\x${p.subarray(0, MAX_PARAMETER_BINARY_BYTES).toString('hex')}`, binary: true, bytes: p.length, ...(cut ? { truncated: true as const } : {}) };
  });
  const omitted = params.length - shown.length;
  return omitted > 0 ? { parameters: shown, parametersOmitted: omitted } : { parameters: shown };
}
