// oidc-provider's persistence for the dev IdP: one better-sqlite3 table holds every model (grants,
// refresh tokens, device codes, sessions, interactions). With a file the dev IdP's logins survive
// a gateway restart; with ':memory:' it replaces oidc-provider's own memory adapter, which is an
// LRU of 1000 entries that warns on every start.
import { chmodSync, closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Adapter, AdapterPayload } from 'oidc-provider';

/** Models whose rows carry a grantId that `revokeByGrantId` must reach (as in oidc-provider). */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

interface Row {
  payload: string;
}

/** A store of oidc-provider models; `adapterFor` is what `configuration.adapter` wants. */
export interface IdpStore {
  adapterFor(model: string): Adapter;
  close(): void;
}

/**
 * Opens (and creates) the store. `file` is a path, created 0600 because rows hold refresh token
 * values, or ':memory:' for an ephemeral store.
 */
export function openIdpStore(file: string): IdpStore {
  if (file !== ':memory:') {
    closeSync(openSync(file, 'a', 0o600));
    chmodSync(file, 0o600);
  }
  const db = new Database(file);
  if (file !== ':memory:') db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS oidc_model (
      model      TEXT NOT NULL,
      id         TEXT NOT NULL,
      payload    TEXT NOT NULL,
      grant_id   TEXT,
      user_code  TEXT,
      uid        TEXT,
      expires_at INTEGER,
      PRIMARY KEY (model, id)
    );
    CREATE INDEX IF NOT EXISTS oidc_model_grant ON oidc_model (grant_id) WHERE grant_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS oidc_model_user_code ON oidc_model (model, user_code) WHERE user_code IS NOT NULL;
    CREATE INDEX IF NOT EXISTS oidc_model_uid ON oidc_model (model, uid) WHERE uid IS NOT NULL;
  `);
  db.prepare('DELETE FROM oidc_model WHERE expires_at IS NOT NULL AND expires_at <= ?').run(Date.now());

  const live = '(expires_at IS NULL OR expires_at > ?)';
  const stmts = {
    upsert: db.prepare(`
      INSERT INTO oidc_model (model, id, payload, grant_id, user_code, uid, expires_at)
      VALUES (@model, @id, @payload, @grantId, @userCode, @uid, @expiresAt)
      ON CONFLICT (model, id) DO UPDATE SET
        payload = excluded.payload, grant_id = excluded.grant_id, user_code = excluded.user_code,
        uid = excluded.uid, expires_at = excluded.expires_at`),
    find: db.prepare<[string, string, number], Row>(
      `SELECT payload FROM oidc_model WHERE model = ? AND id = ? AND ${live}`,
    ),
    findByUserCode: db.prepare<[string, string, number], Row>(
      `SELECT payload FROM oidc_model WHERE model = ? AND user_code = ? AND ${live}`,
    ),
    findByUid: db.prepare<[string, string, number], Row>(
      `SELECT payload FROM oidc_model WHERE model = ? AND uid = ? AND ${live}`,
    ),
    consume: db.prepare(
      `UPDATE oidc_model SET payload = json_set(payload, '$.consumed', ?) WHERE model = ? AND id = ?`,
    ),
    destroy: db.prepare('DELETE FROM oidc_model WHERE model = ? AND id = ?'),
    revokeByGrantId: db.prepare('DELETE FROM oidc_model WHERE grant_id = ?'),
  };

  const parse = (row: Row | undefined): AdapterPayload | undefined =>
    row ? (JSON.parse(row.payload) as AdapterPayload) : undefined;

  return {
    adapterFor(model: string): Adapter {
      return {
        async upsert(id, payload, expiresIn) {
          stmts.upsert.run({
            model,
            id,
            payload: JSON.stringify(payload),
            grantId: GRANTABLE.has(model) ? (payload.grantId ?? null) : null,
            userCode: payload.userCode ?? null,
            uid: model === 'Session' ? (payload.uid ?? null) : null,
            expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null,
          });
        },
        async find(id) {
          return parse(stmts.find.get(model, id, Date.now()));
        },
        async findByUserCode(userCode) {
          return parse(stmts.findByUserCode.get(model, userCode, Date.now()));
        },
        async findByUid(uid) {
          return parse(stmts.findByUid.get(model, uid, Date.now()));
        },
        async consume(id) {
          stmts.consume.run(Math.floor(Date.now() / 1000), model, id);
        },
        async destroy(id) {
          stmts.destroy.run(model, id);
        },
        async revokeByGrantId(grantId) {
          stmts.revokeByGrantId.run(grantId);
        },
      };
    },
    close() {
      db.close();
    },
  };
}
