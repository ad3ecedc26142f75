// SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 §2.2, with 3.1's flow control), the names and
// limits shared by the gateway's scanner of server frames (scan.ts) and the port-forward recorder.
// Every frame starts with 8 bytes: a control frame `1 | version(15) | type(16) | flags(8) |
// length(24)`, a data frame `0 | stream-id(31) | flags(8) | length(24)`.

export const SPDY_VERSION = 3;
export const FRAME_HEAD = 8;
/** FLAG_FIN: the sender's last frame on the stream (data frames, SYN_STREAM, SYN_REPLY, HEADERS). */
export const FLAG_FIN = 0x01;

/** The control frame types SPDY/3.1 defines and Go's spdystream (kubectl, kubelet) reads. */
export const enum ControlType {
  SynStream = 1,
  SynReply = 2,
  RstStream = 3,
  Settings = 4,
  Ping = 6,
  GoAway = 7,
  Headers = 8,
  WindowUpdate = 9,
}

/** The largest control frame read: header blocks in port-forward are a few dozen bytes. */
export const MAX_CONTROL_FRAME = 64 * 1024;

/** Bytes before the header block in the frames that carry one. */
export function headerBlockOffset(type: number): number | undefined {
  if (type === ControlType.SynStream) return 10;
  if (type === ControlType.SynReply || type === ControlType.Headers) return 4;
  return undefined;
}

/** Why a control frame's head is not one SPDY/3.1 defines (undefined: it is). */
export function controlFrameProblem(version: number, type: number, length: number): string | undefined {
  if (version !== SPDY_VERSION) return `a SPDY control frame of version ${version}`;
  if (length > MAX_CONTROL_FRAME) return `a SPDY control frame of ${length} bytes (more than ${MAX_CONTROL_FRAME})`;
  switch (type) {
    case ControlType.SynStream:
      return length < 10 ? 'a SYN_STREAM frame too short' : undefined;
    case ControlType.SynReply:
    case ControlType.Headers:
      return length < 4 ? 'a SYN_REPLY or HEADERS frame too short' : undefined;
    case ControlType.RstStream:
    case ControlType.GoAway:
    case ControlType.WindowUpdate:
      return length !== 8 ? `a SPDY control frame of type ${type} that is not 8 bytes long` : undefined;
    case ControlType.Ping:
      return length !== 4 ? 'a PING frame that is not 4 bytes long' : undefined;
    case ControlType.Settings:
      return length < 4 || (length - 4) % 8 !== 0 ? 'a SETTINGS frame of a length no entry count gives' : undefined;
    default:
      return `an unknown SPDY control frame type ${type}`;
  }
}
