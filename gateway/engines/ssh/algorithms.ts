// The ssh algorithms each of the gateway's two legs offers. In SSH the client's preference order
// picks among what both sides offer, so on the local leg (the gateway is the server) the gateway's
// list decides what is possible, and on the target leg (the gateway is the client) its order does.
// Every gateway byte is decrypted once and encrypted once per leg; AES-GCM runs on the CPU's AES
// instructions and costs about a quarter of chacha20-poly1305 here (docs/decisions.md, "SSH
// ciphers"), so both legs use it. Nothing weak is offered: no CBC, no SHA-1, no 1024/1536-bit
// groups, no compression (on the local leg it would only spend gateway CPU on loopback bytes).
import type ssh2 from 'ssh2';

/** AES-GCM only: every OpenSSH since 6.2, PuTTY since 0.76, Go's x/crypto/ssh, libssh2 1.11. */
const LOCAL_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'] as const;

const KEX = [
  'curve25519-sha256',
  'curve25519-sha256@libssh.org',
  'ecdh-sha2-nistp256',
  'ecdh-sha2-nistp384',
  'ecdh-sha2-nistp521',
  'diffie-hellman-group-exchange-sha256',
  'diffie-hellman-group16-sha512',
  'diffie-hellman-group18-sha512',
  'diffie-hellman-group14-sha256',
] as const;

/** Unused with AES-GCM (its tag is the MAC), but the negotiation needs a list. */
const MACS = ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512'] as const;

/** The ssh2 Server on the tunnel stream: what the local ssh client may negotiate. */
export const LOCAL_ALGORITHMS: ssh2.Algorithms = {
  kex: [...KEX],
  cipher: [...LOCAL_CIPHERS],
  hmac: [...MACS],
  compress: ['none'],
};

/**
 * The ssh2 Client to the target: AES-GCM first; AES-CTR and chacha20-poly1305 (with an
 * encrypt-then-MAC SHA-2 MAC) after it, for a host whose sshd was built without GCM.
 */
export const TARGET_ALGORITHMS: ssh2.Algorithms = {
  kex: [...KEX],
  cipher: [...LOCAL_CIPHERS, 'aes128-ctr', 'aes256-ctr', 'chacha20-poly1305@openssh.com'],
  hmac: [...MACS],
  compress: ['none'],
};
