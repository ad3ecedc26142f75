// Opens an `auth-agent@openssh.com` channel from the gateway's ssh server to the local client: the
// one place the ssh engine reaches into ssh2's internals, and why.
//
// ssh2's server-side connection opens channels only through `openChannel` (server.js), which knows
// `forwarded-tcpip`, `x11` and `forwarded-streamlocal@openssh.com` and throws "Unsupported channel
// type" for anything else, although its protocol object already writes the agent channel's open
// packet (`Protocol#openssh_authAgent`) and its CHANNEL_OPEN_CONFIRMATION / _FAILURE handlers
// complete any channel registered in the connection's channel manager whatever its type. So this
// module does what `openChannel` does for the other types, with two private fields of the
// connection (`_chanMgr`, `_protocol`) and nothing else, and the window and packet sizes ssh2's
// Channel itself assumes for the incoming side (Channel.js), so its window accounting matches what
// was advertised.
//
// These are not public API and may change in any ssh2 release: the version this was read against
// is pinned below, a unit test fails when node_modules holds another one, and at run time a
// different version or a missing field refuses the channel (agent forwarding then fails closed: the
// target's agent request is refused, nothing else breaks).
import { createRequire } from 'node:module';
import type ssh2 from 'ssh2';

/** The ssh2 version whose server.js, Protocol.js and Channel.js this module was checked against. */
export const SSH2_VERSION_CHECKED = '1.17.0';

const require = createRequire(import.meta.url);

/** The installed ssh2's version (its package.json). */
export const ssh2Version: string = (require('ssh2/package.json') as { version: string }).version;

const CHANNEL_TYPE = 'auth-agent@openssh.com';

interface ChannelCallback {
  (err: Error | undefined, channel: ssh2.ServerChannel): void;
  type?: string;
}

interface Internals {
  _chanMgr: { add(cb: ChannelCallback): number };
  _protocol: { openssh_authAgent(localChan: number, initWindow: number, maxPacket: number): void };
}

/** Why agent channels cannot be opened with the installed ssh2, or undefined when they can. */
export function agentChannelUnsupported(conn?: ssh2.Connection): string | undefined {
  if (ssh2Version !== SSH2_VERSION_CHECKED) return `ssh2 ${ssh2Version} is installed; agent channels were checked against ssh2 ${SSH2_VERSION_CHECKED} only`;
  if (conn === undefined) return undefined;
  const c = conn as unknown as Partial<Internals>;
  if (typeof c._chanMgr?.add !== 'function' || typeof c._protocol?.openssh_authAgent !== 'function') return 'ssh2 no longer has the internals agent channels need';
  return undefined;
}

/** Asks the local client to open an agent channel; `cb` gets the channel or why it failed. */
export function openAgentChannel(conn: ssh2.Connection, cb: (err: Error | undefined, channel?: ssh2.ServerChannel) => void): void {
  const unsupported = agentChannelUnsupported(conn);
  if (unsupported !== undefined) return cb(new Error(unsupported));
  const c = conn as unknown as Internals;
  const { MAX_WINDOW, PACKET_SIZE } = require('ssh2/lib/Channel.js') as { MAX_WINDOW: number; PACKET_SIZE: number };
  // The channel manager tells channel kinds apart by the callback's `type`, as openChannel sets it.
  const wrapper: ChannelCallback = (err, channel) => cb(err, err ? undefined : channel);
  wrapper.type = CHANNEL_TYPE;
  const localChan = c._chanMgr.add(wrapper);
  if (localChan === -1) return cb(new Error('no free channels on the client connection'));
  c._protocol.openssh_authAgent(localChan, MAX_WINDOW, PACKET_SIZE);
}
