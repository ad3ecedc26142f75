// The gateway's persistence interface. Only gateway/store/* knows about SQL; the rest of the
// gateway sees these plain records. (The tamper-evident audit trail will extend this.)

export interface ServiceTokenRecord {
  name: string;
  groups: string[];
  createdAt: Date;
  /** null = never expires. */
  expiresAt: Date | null;
  revokedAt: Date | null;
}

export interface SessionRecord {
  id: string;
  connection: string;
  subject: string;
  identityName: string;
  identityKind: 'human' | 'service';
  groups: string[];
  origin: string;
  clientAddress: string;
  startedAt: Date;
  endedAt: Date | null;
  status: 'open' | 'ok' | 'error' | 'refused';
  database: string | null;
  error: string | null;
  bytesFromClient: number;
  bytesToClient: number;
  queries: number;
}

export interface QueryRecord {
  sessionId: string;
  seq: number;
  text: string;
  params: (string | null)[] | null;
  protocol: 'simple' | 'extended';
  startedAt: Date;
  status: 'pending' | 'ok' | 'error';
  durationMs: number | null;
  commands: string[] | null;
  rows: number | null;
  sqlstate: string | null;
  message: string | null;
}

export interface Store {
  createServiceToken(t: { name: string; hash: string; groups: string[]; expiresAt: Date | null }): void;
  /** Looks a token up by the SHA-256 of its value. */
  findServiceToken(hash: string): ServiceTokenRecord | undefined;
  listServiceTokens(): ServiceTokenRecord[];
  /** Returns false when no active token has that name. */
  revokeServiceToken(name: string): boolean;

  startSession(s: Omit<SessionRecord, 'endedAt' | 'status' | 'database' | 'error' | 'bytesFromClient' | 'bytesToClient' | 'queries'>): void;
  setSessionDatabase(id: string, database: string): void;
  endSession(id: string, end: { status: 'ok' | 'error' | 'refused'; error?: string; bytesFromClient: number; bytesToClient: number }): void;
  addQuery(q: Omit<QueryRecord, 'status' | 'durationMs' | 'commands' | 'rows' | 'sqlstate' | 'message'>): void;
  finishQuery(
    sessionId: string,
    seq: number,
    r: { status: 'ok' | 'error'; durationMs: number; commands?: readonly string[]; rows?: number; sqlstate?: string; message?: string },
  ): void;
  getSession(id: string): SessionRecord | undefined;
  listSessions(limit?: number): SessionRecord[];
  listQueries(sessionId: string): QueryRecord[];
  close(): void;
}

export class DuplicateNameError extends Error {}
