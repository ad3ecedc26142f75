// The vocabulary of statement kinds and commands that policy rules name (`statements: [drop,
// truncate, create function]`). Kept apart from the parser so that validating a configuration does
// not load PostgreSQL's parser. A statement has a `kind` (its leading keyword: `drop`) and a
// `command` (the keyword and object: `drop table`), both lower-case, as PostgreSQL's own command
// tags spell them.

/** PostgreSQL's ObjectType enum (libpg-query's JSON spelling) → the words SQL uses for it. */
const OBJECT_WORDS: Record<string, string> = {
  OBJECT_ACCESS_METHOD: 'access method',
  OBJECT_AGGREGATE: 'aggregate',
  OBJECT_AMOP: 'operator family',
  OBJECT_AMPROC: 'operator family',
  OBJECT_ATTRIBUTE: 'type',
  OBJECT_CAST: 'cast',
  OBJECT_COLUMN: 'column',
  OBJECT_COLLATION: 'collation',
  OBJECT_CONVERSION: 'conversion',
  OBJECT_DATABASE: 'database',
  OBJECT_DEFAULT: 'default',
  OBJECT_DEFACL: 'default privileges',
  OBJECT_DOMAIN: 'domain',
  OBJECT_DOMCONSTRAINT: 'constraint',
  OBJECT_EVENT_TRIGGER: 'event trigger',
  OBJECT_EXTENSION: 'extension',
  OBJECT_FDW: 'foreign data wrapper',
  OBJECT_FOREIGN_SERVER: 'server',
  OBJECT_FOREIGN_TABLE: 'foreign table',
  OBJECT_FUNCTION: 'function',
  OBJECT_INDEX: 'index',
  OBJECT_LANGUAGE: 'language',
  OBJECT_LARGEOBJECT: 'large object',
  OBJECT_MATVIEW: 'materialized view',
  OBJECT_OPCLASS: 'operator class',
  OBJECT_OPERATOR: 'operator',
  OBJECT_OPFAMILY: 'operator family',
  OBJECT_PARAMETER_ACL: 'parameter',
  OBJECT_POLICY: 'policy',
  OBJECT_PROCEDURE: 'procedure',
  OBJECT_PUBLICATION: 'publication',
  OBJECT_PUBLICATION_NAMESPACE: 'publication',
  OBJECT_PUBLICATION_REL: 'publication',
  OBJECT_ROLE: 'role',
  OBJECT_ROUTINE: 'routine',
  OBJECT_RULE: 'rule',
  OBJECT_SCHEMA: 'schema',
  OBJECT_SEQUENCE: 'sequence',
  OBJECT_SUBSCRIPTION: 'subscription',
  OBJECT_STATISTIC_EXT: 'statistics',
  OBJECT_TABCONSTRAINT: 'constraint',
  OBJECT_TABLE: 'table',
  OBJECT_TABLESPACE: 'tablespace',
  OBJECT_TRANSFORM: 'transform',
  OBJECT_TRIGGER: 'trigger',
  OBJECT_TSCONFIGURATION: 'text search configuration',
  OBJECT_TSDICTIONARY: 'text search dictionary',
  OBJECT_TSPARSER: 'text search parser',
  OBJECT_TSTEMPLATE: 'text search template',
  OBJECT_TYPE: 'type',
  OBJECT_USER_MAPPING: 'user mapping',
  OBJECT_VIEW: 'view',
};

/** The object word for an ObjectType value; unknown values fall back to a readable form. */
export function objectWord(objectType: unknown): string {
  if (typeof objectType !== 'string') return 'object';
  return OBJECT_WORDS[objectType] ?? objectType.replace(/^OBJECT_/, '').toLowerCase().replace(/_/g, ' ');
}

/** Statement node types whose command is fixed (no object type to look at). */
export const FIXED_COMMANDS: Record<string, string> = {
  InsertStmt: 'insert',
  UpdateStmt: 'update',
  DeleteStmt: 'delete',
  MergeStmt: 'merge',
  CreateStmt: 'create table',
  CreateForeignTableStmt: 'create foreign table',
  ViewStmt: 'create view',
  IndexStmt: 'create index',
  CreateTrigStmt: 'create trigger',
  CreateEventTrigStmt: 'create event trigger',
  RuleStmt: 'create rule',
  CreateSchemaStmt: 'create schema',
  CreatedbStmt: 'create database',
  CreateSeqStmt: 'create sequence',
  CreateDomainStmt: 'create domain',
  CompositeTypeStmt: 'create type',
  CreateEnumStmt: 'create type',
  CreateRangeStmt: 'create type',
  CreateExtensionStmt: 'create extension',
  CreatePolicyStmt: 'create policy',
  CreateTableSpaceStmt: 'create tablespace',
  CreateFdwStmt: 'create foreign data wrapper',
  CreateForeignServerStmt: 'create server',
  CreateUserMappingStmt: 'create user mapping',
  CreatePublicationStmt: 'create publication',
  CreateSubscriptionStmt: 'create subscription',
  CreateAmStmt: 'create access method',
  CreatePLangStmt: 'create language',
  CreateCastStmt: 'create cast',
  CreateConversionStmt: 'create conversion',
  CreateTransformStmt: 'create transform',
  CreateOpClassStmt: 'create operator class',
  CreateOpFamilyStmt: 'create operator family',
  CreateStatsStmt: 'create statistics',
  ImportForeignSchemaStmt: 'import foreign schema',
  DropRoleStmt: 'drop role',
  DropdbStmt: 'drop database',
  DropTableSpaceStmt: 'drop tablespace',
  DropOwnedStmt: 'drop owned',
  DropUserMappingStmt: 'drop user mapping',
  DropSubscriptionStmt: 'drop subscription',
  AlterRoleStmt: 'alter role',
  AlterRoleSetStmt: 'alter role',
  AlterDatabaseStmt: 'alter database',
  AlterDatabaseSetStmt: 'alter database',
  AlterDatabaseRefreshCollStmt: 'alter database',
  AlterSystemStmt: 'alter system',
  AlterSeqStmt: 'alter sequence',
  AlterDomainStmt: 'alter domain',
  AlterEnumStmt: 'alter type',
  AlterTypeStmt: 'alter type',
  AlterExtensionStmt: 'alter extension',
  AlterExtensionContentsStmt: 'alter extension',
  AlterPolicyStmt: 'alter policy',
  AlterPublicationStmt: 'alter publication',
  AlterSubscriptionStmt: 'alter subscription',
  AlterTableSpaceOptionsStmt: 'alter tablespace',
  AlterTableMoveAllStmt: 'alter table',
  AlterDefaultPrivilegesStmt: 'alter default privileges',
  AlterUserMappingStmt: 'alter user mapping',
  AlterFdwStmt: 'alter foreign data wrapper',
  AlterForeignServerStmt: 'alter server',
  AlterOpFamilyStmt: 'alter operator family',
  AlterOperatorStmt: 'alter operator',
  AlterTSDictionaryStmt: 'alter text search dictionary',
  AlterTSConfigurationStmt: 'alter text search configuration',
  AlterCollationStmt: 'alter collation',
  AlterEventTrigStmt: 'alter event trigger',
  AlterStatsStmt: 'alter statistics',
  TruncateStmt: 'truncate',
  CopyStmt: 'copy',
  DoStmt: 'do',
  CallStmt: 'call',
  VariableShowStmt: 'show',
  ConstraintsSetStmt: 'set constraints',
  ExplainStmt: 'explain',
  PrepareStmt: 'prepare',
  ExecuteStmt: 'execute',
  DeallocateStmt: 'deallocate',
  ClusterStmt: 'cluster',
  ReindexStmt: 'reindex',
  LockStmt: 'lock',
  ListenStmt: 'listen',
  NotifyStmt: 'notify',
  UnlistenStmt: 'unlisten',
  LoadStmt: 'load',
  CheckPointStmt: 'checkpoint',
  DiscardStmt: 'discard',
  CommentStmt: 'comment',
  SecLabelStmt: 'security label',
  RefreshMatViewStmt: 'refresh materialized view',
  ReassignOwnedStmt: 'reassign owned',
  DeclareCursorStmt: 'declare',
  ClosePortalStmt: 'close',
  ReturnStmt: 'return',
};

const TRANSACTION_COMMANDS: Record<string, string> = {
  TRANS_STMT_BEGIN: 'begin',
  TRANS_STMT_START: 'start transaction',
  TRANS_STMT_COMMIT: 'commit',
  TRANS_STMT_ROLLBACK: 'rollback',
  TRANS_STMT_SAVEPOINT: 'savepoint',
  TRANS_STMT_RELEASE: 'release',
  TRANS_STMT_ROLLBACK_TO: 'rollback to savepoint',
  TRANS_STMT_PREPARE: 'prepare transaction',
  TRANS_STMT_COMMIT_PREPARED: 'commit prepared',
  TRANS_STMT_ROLLBACK_PREPARED: 'rollback prepared',
};

/**
 * Commands whose kind is more than their first word: two-phase commit is not `prepare`/`commit`
 * in the sense a rule author means, and `start transaction` is a `begin`.
 */
const KIND_OF_COMMAND: Record<string, string> = {
  'start transaction': 'begin',
  'rollback to savepoint': 'rollback',
  'prepare transaction': 'prepare transaction',
  'commit prepared': 'commit prepared',
  'rollback prepared': 'rollback prepared',
  'security label': 'security label',
  'reassign owned': 'reassign owned',
  'import foreign schema': 'import foreign schema',
  'set constraints': 'set',
  'refresh materialized view': 'refresh',
};

export interface StatementName {
  /** The leading keyword(s): `select`, `drop`, `create`, `begin`, … */
  readonly kind: string;
  /** The full command: `drop table`, `create function`, `select`, … */
  readonly command: string;
}

export function kindOf(command: string): string {
  return KIND_OF_COMMAND[command] ?? command.split(' ')[0] ?? command;
}

/** Names a raw-parse-tree statement node (`{ DropStmt: {...} }` → type `DropStmt`, its body). */
export function nameStatement(type: string, body: Record<string, unknown>): StatementName {
  const command = commandOf(type, body);
  return { kind: kindOf(command), command };
}

function commandOf(type: string, b: Record<string, unknown>): string {
  const fixed = FIXED_COMMANDS[type];
  if (fixed !== undefined) return fixed;
  switch (type) {
    case 'SelectStmt':
      return b.intoClause !== undefined ? 'create table' : 'select';
    case 'CreateTableAsStmt':
      return b.objtype === 'OBJECT_MATVIEW' ? 'create materialized view' : 'create table';
    case 'CreateFunctionStmt':
      return b.is_procedure === true ? 'create procedure' : 'create function';
    case 'CreateRoleStmt':
      return b.stmt_type === 'ROLESTMT_USER' ? 'create user' : b.stmt_type === 'ROLESTMT_GROUP' ? 'create group' : 'create role';
    case 'DefineStmt':
      return `create ${objectWord(b.kind)}`;
    case 'DropStmt':
      return `drop ${objectWord(b.removeType)}`;
    case 'AlterTableStmt':
      return `alter ${objectWord(b.objtype)}`;
    case 'RenameStmt':
      return `alter ${objectWord(b.renameType)}`;
    case 'AlterObjectSchemaStmt':
    case 'AlterOwnerStmt':
    case 'AlterObjectDependsStmt':
      return `alter ${objectWord(b.objectType)}`;
    case 'AlterFunctionStmt':
      return `alter ${objectWord(b.objtype)}`;
    case 'GrantStmt':
    case 'GrantRoleStmt':
      return b.is_grant === true ? 'grant' : 'revoke';
    case 'VariableSetStmt':
      return b.kind === 'VAR_RESET' || b.kind === 'VAR_RESET_ALL' ? 'reset' : 'set';
    case 'TransactionStmt':
      return TRANSACTION_COMMANDS[String(b.kind)] ?? 'begin';
    case 'VacuumStmt':
      return b.is_vacuumcmd === true ? 'vacuum' : 'analyze'; // libpg-query omits false booleans
    case 'FetchStmt':
      return b.ismove === true ? 'move' : 'fetch';
    default:
      // A node type this table does not know yet (a newer PostgreSQL): its CamelCase name minus
      // `Stmt`, so `AlterFooStmt` still reads as an `alter` for rules.
      return type
        .replace(/Stmt$/, '')
        .replace(/([a-z])([A-Z])/g, '$1 $2')
        .toLowerCase();
  }
}

const VERBS_WITH_OBJECTS = ['create', 'drop', 'alter'];

/** Every kind and command a rule may name; anything else in `statements:` is a typo. */
export const KNOWN_STATEMENT_NAMES: ReadonlySet<string> = (() => {
  const names = new Set<string>(['select', 'fetch', 'move', 'reset', 'set', 'grant', 'revoke', 'vacuum', 'analyze', 'create user', 'create group', 'create role', 'create procedure', 'create function', 'create materialized view']);
  for (const c of Object.values(FIXED_COMMANDS)) names.add(c);
  for (const c of Object.values(TRANSACTION_COMMANDS)) names.add(c);
  for (const verb of VERBS_WITH_OBJECTS) for (const o of new Set(Object.values(OBJECT_WORDS))) names.add(`${verb} ${o}`);
  for (const c of [...names]) names.add(kindOf(c));
  return names;
})();
