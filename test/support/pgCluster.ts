// A throwaway PostgreSQL 15 cluster for integration tests: initdb into a temp dir, password-only
// authentication (SCRAM, MD5 and cleartext, one role each), a random port on 127.0.0.1, and a
// stop() that removes everything. Missing binaries are an error naming the Debian package:
// integration tests must never pass by skipping.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileAsync = promisify(execFile);

export const PG_BIN_DIR = '/usr/lib/postgresql/15/bin';

export interface PgRole {
  readonly user: string;
  readonly password: string;
}

/** Everything a test needs to reach the cluster; plain data, so vitest's `provide` can carry it. */
export interface PgClusterDetails {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The `app` role (SCRAM-SHA-256), owner of `database`. */
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly dataDir: string;
  /** Directory holding the Unix socket (and the server log, `postgres.log`). */
  readonly socketDir: string;
  readonly psqlPath: string;
  readonly roles: {
    /** SCRAM-SHA-256 verifier, `scram-sha-256` in pg_hba. */
    readonly app: PgRole;
    /** MD5-hashed password, `md5` in pg_hba: the server asks for AuthenticationMD5Password. */
    readonly md5: PgRole;
    /** SCRAM verifier, `password` in pg_hba: the server asks for AuthenticationCleartextPassword. */
    readonly cleartext: PgRole;
    readonly superuser: PgRole;
  };
}

export interface PgCluster extends PgClusterDetails {
  /** Immediate shutdown, then the temp dir is removed. Safe to call twice. */
  stop(): Promise<void>;
}

/** Throws unless `path` is an executable, naming the Debian package that provides it. */
export function ensureProgram(path: string, debianPackage: string): string {
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${path} is missing: install the Debian package ${debianPackage} (apt-get install ${debianPackage})`);
  }
  return path;
}

/** A port that was free a moment ago; the small race with other processes is retried by the caller. */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address !== 'object') throw new Error('could not determine a free port');
  return address.port;
}

const secret = (): string => randomBytes(18).toString('base64url');

// $1 parent pid, $2 runner, $3 runner args + pg_ctl (no spaces in these paths), $4 data dir, $5 base dir.
const WATCHDOG_SCRIPT =
  'while kill -0 "$1" 2>/dev/null; do sleep 1; done; ' +
  '[ -d "$4" ] && "$2" $3 stop -D "$4" -m immediate -w >/dev/null 2>&1; rm -rf "$5"';

export async function startPgCluster(opts: { password?: string } = {}): Promise<PgCluster> {
  const initdb = ensureProgram(join(PG_BIN_DIR, 'initdb'), 'postgresql-15');
  const pgCtl = ensureProgram(join(PG_BIN_DIR, 'pg_ctl'), 'postgresql-15');
  ensureProgram(join(PG_BIN_DIR, 'postgres'), 'postgresql-15');
  const psqlPath = ensureProgram(join(PG_BIN_DIR, 'psql'), 'postgresql-client-15');

  // initdb and postgres refuse to run as root: as root, everything runs as the `postgres` user.
  const asUser = runAs();
  const baseDir = await mkdtemp(join(tmpdir(), 'sluice-pg-'));
  const dataDir = join(baseDir, 'data');
  const logFile = join(baseDir, 'postgres.log');
  const run = (program: string, args: string[]) =>
    execFileAsync(asUser.command, [...asUser.prefix, program, ...args], { cwd: baseDir, timeout: 120_000 });

  const roles = {
    app: { user: 'app', password: opts.password ?? secret() },
    md5: { user: 'app_md5', password: secret() },
    cleartext: { user: 'app_clear', password: secret() },
    superuser: { user: 'postgres', password: secret() },
  };
  let port: number | undefined;
  let started = false;
  let stopped = false;
  // vitest ends its workers without an 'exit' event, so a postmaster would outlive a test file
  // that forgets stop(), or a killed run. A detached watchdog stops it once this process is gone.
  const watchdog = spawn(
    'sh',
    ['-c', WATCHDOG_SCRIPT, 'sluice-pg-watchdog', String(process.pid), asUser.command, [...asUser.prefix, pgCtl].join(' '), dataDir, baseDir],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();

  const stop = async () => {
    if (stopped) return;
    watchdog.kill();
    try {
      if (started) await run(pgCtl, ['stop', '-D', dataDir, '-m', 'immediate', '-w']);
    } finally {
      stopped = true;
      await rm(baseDir, { recursive: true, force: true });
    }
  };

  try {
    if (asUser.owner) await chown(baseDir, asUser.owner.uid, asUser.owner.gid);
    const pwfile = join(baseDir, 'pwfile');
    await writeFile(pwfile, `${roles.superuser.password}\n`, { mode: 0o600 });
    if (asUser.owner) await chown(pwfile, asUser.owner.uid, asUser.owner.gid);
    await run(initdb, [
      '-D', dataDir, '-U', roles.superuser.user, `--pwfile=${pwfile}`, '--auth=scram-sha-256',
      '--encoding=UTF8', '--locale=C', '--no-sync',
    ]).catch((err: unknown) => {
      throw new Error(`initdb failed: ${commandOutput(err)}`, { cause: err });
    });
    await rm(pwfile);

    // First matching line wins, so the per-role methods come before the SCRAM catch-all.
    await writeFile(
      join(dataDir, 'pg_hba.conf'),
      [
        '# TYPE  DATABASE  USER       ADDRESS        METHOD',
        'local   all       all                       scram-sha-256',
        'host    all       app_md5    127.0.0.1/32   md5',
        'host    all       app_md5    ::1/128        md5',
        'host    all       app_clear  127.0.0.1/32   password',
        'host    all       app_clear  ::1/128        password',
        'host    all       all        127.0.0.1/32   scram-sha-256',
        'host    all       all        ::1/128        scram-sha-256',
        '',
      ].join('\n'),
    );
    await appendFile(
      join(dataDir, 'postgresql.conf'),
      [
        '',
        '# sluice test cluster: throwaway, so durability is traded for speed',
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${baseDir}'`,
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        "password_encryption = 'scram-sha-256'",
        '',
      ].join('\n'),
    );

    // The port is chosen free, but another process may take it before the postmaster binds.
    for (let attempt = 1; ; attempt++) {
      port = await findFreePort();
      try {
        await run(pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', `-p ${port}`]);
        started = true;
        break;
      } catch (err) {
        const log = existsSync(logFile) ? await readFile(logFile, 'utf8') : '';
        if (attempt < 3 && /could not bind|already in use/i.test(log)) continue;
        throw new Error(`pg_ctl start failed: ${commandOutput(err)}\n${log.slice(-2000)}`, { cause: err });
      }
    }

    await createRoles(port, roles);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    host: '127.0.0.1',
    port,
    user: roles.app.user,
    password: roles.app.password,
    database: 'app',
    dataDir,
    socketDir: baseDir,
    psqlPath,
    roles,
    stop,
  };
}

async function createRoles(port: number, roles: PgClusterDetails['roles']): Promise<void> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: roles.superuser.user,
    password: roles.superuser.password,
    database: 'postgres',
  });
  await client.connect();
  try {
    const lit = (s: string) => client.escapeLiteral(s);
    await client.query(`CREATE ROLE app LOGIN PASSWORD ${lit(roles.app.password)}`);
    await client.query('CREATE DATABASE app OWNER app');
    await client.query(`CREATE ROLE app_clear LOGIN PASSWORD ${lit(roles.cleartext.password)}`);
    // Only this role's password is stored as MD5, so the md5 hba line really asks for MD5.
    await client.query("SET password_encryption = 'md5'");
    await client.query(`CREATE ROLE app_md5 LOGIN PASSWORD ${lit(roles.md5.password)}`);
    await client.query('RESET password_encryption');
  } finally {
    await client.end();
  }
}

interface RunAs {
  command: string;
  prefix: string[];
  /** Who must own the files the cluster writes, when that is not us. */
  owner?: { uid: number; gid: number };
}

function runAs(): RunAs {
  if (process.getuid?.() !== 0) return { command: 'env', prefix: [] };
  const runuser = ensureProgram('/usr/sbin/runuser', 'util-linux');
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  let owner: { uid: number; gid: number };
  try {
    owner = { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error('running as root needs the `postgres` OS user: install the Debian package postgresql-15 (it creates it)');
  }
  return { command: runuser, prefix: ['-u', 'postgres', '--'], owner };
}

function commandOutput(err: unknown): string {
  const e = err as { message?: string; stderr?: string; stdout?: string };
  return [e.message, e.stderr, e.stdout].filter(Boolean).join('\n').trim();
}
