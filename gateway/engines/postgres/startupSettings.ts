// Which run-time settings a client may give in its StartupMessage (as parameters, or as `-c`
// switches inside `options`) and how they reach the target, and the application_name the target
// sees. A setting given at startup takes effect before any statement the gateway records and
// judges, so only settings on the allow-list below travel; anything else is refused with the
// setting named, never dropped (a client that asked for a session property must not silently
// get a session without it). The engine also judges each forwarded setting as the equivalent
// `SET` statement under the caller's policy (session.ts) and records them in the audit trail.

/** A startup the engine will not serve, with the SQLSTATE PostgreSQL would use. */
export class StartupRefusal extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
    this.name = 'StartupRefusal';
  }
}

/**
 * Settings forwarded from the startup, by lower-case name → the name sent upstream, each with why
 * it is safe to take before the first recorded statement.
 */
const ALLOWED_SETTINGS: ReadonlyMap<string, string> = new Map([
  // How values are formatted and how text is encoded; client_encoding is also checked against
  // the gateway's parser by the ParameterStatus the target answers with (readingState.ts).
  ['client_encoding', 'client_encoding'],
  ['datestyle', 'DateStyle'],
  ['timezone', 'TimeZone'],
  ['intervalstyle', 'IntervalStyle'],
  ['extra_float_digits', 'extra_float_digits'],
  // Limits on the client's own session: they can only end its statements, waits or idle
  // transactions sooner, which the gateway records like any other error.
  ['statement_timeout', 'statement_timeout'],
  ['lock_timeout', 'lock_timeout'],
  ['idle_in_transaction_session_timeout', 'idle_in_transaction_session_timeout'],
  // Name resolution: the policy never resolves an unqualified name through a search_path (it
  // counts every schema's relation of that name), so the path the server uses cannot fool it.
  ['search_path', 'search_path'],
]);

/**
 * The formatting settings drivers send for themselves to read values (pg always sends
 * client_encoding; JDBC DateStyle, TimeZone and extra_float_digits): not judged as SET statements,
 * so a policy that blocks SET does not shut out those drivers. They change how values are
 * written, not what a statement does; client_encoding is checked by the reading rules instead.
 */
const FORMATTING = new Set(['client_encoding', 'DateStyle', 'TimeZone', 'IntervalStyle', 'extra_float_digits']);

/** Whether the policy judges a forwarded setting (by its upstream name) as the SET it stands for. */
export function judgedAsSet(upstreamName: string): boolean {
  return !FORMATTING.has(upstreamName);
}

/** Startup keys that are not settings: the engine reads them itself (startup.ts). */
const PROTOCOL_KEYS = new Set(['user', 'database', 'replication', 'options', 'application_name']);

/** PostgreSQL's NAMEDATALEN - 1: the target truncates application_name to this many bytes. */
const APPLICATION_NAME_MAX_BYTES = 63;
/** How much of the client's own program name is kept beside the identity. */
const CLIENT_APPLICATION_MAX_CHARS = 32;

/**
 * Whether `name` (lower case) is a custom setting (`x.y`, a placeholder or an extension's own):
 * PostgreSQL applies its own permission check to those, and an unset placeholder does nothing
 * until code reads it, which `current_setting()` in a recorded statement would show.
 */
function isCustomSetting(name: string): boolean {
  return /^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)+$/.test(name);
}

/** The name to send upstream for `name`, or undefined when it is not forwarded. */
export function forwardedName(name: string): string | undefined {
  const lower = name.toLowerCase();
  return ALLOWED_SETTINGS.get(lower) ?? (isCustomSetting(lower) ? lower : undefined);
}

/**
 * Splits `options` as PostgreSQL's pg_split_opts() does: on whitespace, a backslash taking the
 * next character literally. Then reads `-c name=value`, `-cname=value` and `--name=value`
 * (dashes in the name read as underscores, as ParseLongOption does). Any other switch would set
 * a server option the gateway cannot vouch for.
 * @throws StartupRefusal 08P01 for anything else.
 */
export function parseOptions(options: string): [string, string][] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < options.length; i++) {
    const c = options[i] as string;
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      continue;
    }
    if (c === '\\' && i + 1 < options.length) word = (word ?? '') + options[++i];
    else word = (word ?? '') + c;
  }
  if (word !== undefined) words.push(word);
  const out: [string, string][] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    let assignment: string | undefined;
    if (w === '-c') assignment = words[++i];
    else if (w.startsWith('--')) assignment = w.slice(2);
    else if (w.startsWith('-c')) assignment = w.slice(2);
    if (assignment === undefined) {
      throw new StartupRefusal('08P01', `the startup "options" may only hold -c name=value settings; "${w.slice(0, 40)}" is not one`);
    }
    const eq = assignment.indexOf('=');
    if (eq <= 0) throw new StartupRefusal('08P01', `the startup "options" setting "${assignment.slice(0, 40)}" has no value (expected -c name=value)`);
    out.push([assignment.slice(0, eq).replace(/-/g, '_'), assignment.slice(eq + 1)]);
  }
  return out;
}

/** What a startup asks of the session besides user and database. */
export interface StartupSettings {
  /** Forwarded settings by the names sent upstream. */
  readonly settings: Map<string, string>;
  /** The client's application_name (the parameter, else `-c application_name=…` in options). */
  readonly application?: string;
}

/**
 * The settings a startup asks for (its `options` first, then its own parameters, so a parameter
 * wins over the same setting in `options`, as in PostgreSQL), as name → value with the names
 * sent upstream. Protocol keys and `_pq_.` options are not settings and are left out.
 * @throws StartupRefusal 42501 naming a setting that is not forwarded, 08P01 for bad `options`.
 */
export function startupSettings(params: ReadonlyMap<string, string>): StartupSettings {
  const requested: [string, string][] = [];
  let application = params.get('application_name');
  const options = params.get('options');
  for (const [name, value] of options === undefined ? [] : parseOptions(options)) {
    // The client's own name, however it is given, goes beside the identity (upstreamApplicationName).
    if (name.toLowerCase() === 'application_name') application ??= value;
    else requested.push([name, value]);
  }
  for (const [name, value] of params) {
    if (!PROTOCOL_KEYS.has(name) && !name.startsWith('_pq_.')) requested.push([name, value]);
  }
  const settings = new Map<string, string>();
  for (const [name, value] of requested) {
    const upstream = forwardedName(name);
    if (upstream === undefined) {
      throw new StartupRefusal(
        '42501',
        `the gateway does not pass the startup setting "${name.slice(0, 63)}" to the target; it passes ${[...ALLOWED_SETTINGS.values()].join(', ')} and custom x.y settings. Set others with SET after connecting, where the connection's policy judges them`,
      );
    }
    settings.set(upstream, value);
  }
  return application === undefined ? { settings } : { settings, application };
}

/**
 * The application_name the target sees: `sluice:IDENTITY`, then `:PROGRAM` with the client's
 * own name reduced to letters, digits and `._-/ ` (so it cannot carry a `:` or another
 * `sluice:` prefix and pass for another identity), cut to fit the target's 63 bytes. The
 * identity part is never cut off for the client's part.
 */
export function upstreamApplicationName(identityName: string, clientApplication: string | undefined): string {
  const own = `sluice:${identityName}`;
  const program = (clientApplication ?? '')
    .replace(/[^A-Za-z0-9._\-/ ]/g, '_')
    .slice(0, CLIENT_APPLICATION_MAX_CHARS)
    .trim();
  if (program === '') return own;
  const room = APPLICATION_NAME_MAX_BYTES - Buffer.byteLength(own) - 1;
  return room <= 0 ? own : `${own}:${program.slice(0, room)}`;
}
