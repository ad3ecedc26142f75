// Catalog views and functions that hand out stored values (or other sessions' statement texts)
// without any result column the masking could trace back to a masked table: planner statistics,
// statement and activity texts, prepared statements and cursors, large objects, raw pages, WAL and
// logical decoding, and functions that run SQL or read relations named by a string. For someone a
// column mask applies to they are refused by name, in any schema (a look-alike in another schema
// is refused too: fail closed). Found by reading the PostgreSQL 15 catalog and its contrib
// extensions (pageinspect, pg_walinspect, pg_stat_statements, tablefunc, xml2, dblink, lo).

/** Relations whose rows quote stored values or statement texts. */
export const EXPOSING_RELATIONS: ReadonlyMap<string, string> = new Map([
  ['pg_stats', 'planner statistics quote column values'],
  ['pg_stats_ext', 'planner statistics quote column values'],
  ['pg_stats_ext_exprs', 'planner statistics quote column values'],
  ['pg_statistic', 'planner statistics quote column values'],
  ['pg_statistic_ext_data', 'planner statistics quote column values'],
  ['pg_stat_statements', 'statement texts of other sessions carry their literals'],
  ['pg_stat_activity', 'statement texts of other sessions carry their literals'],
  ['pg_prepared_statements', 'prepared statement texts carry literals'],
  ['pg_cursors', 'cursor statement texts carry literals'],
  ['pg_largeobject', 'large objects hold copies of data'],
]);

const STATISTICS = 'it returns planner statistics, which quote column values';
const PAGES = 'it reads raw table pages, masked columns included';
const WAL = 'it decodes the write-ahead log, which holds whole rows';
const TEXTS = 'it returns statement texts, which carry literals';
const SQL_TEXT = 'it runs SQL given as text, whose result columns cannot be traced to their tables';
const FILES = 'it reads server files, table files included';

/** Functions that return stored values with no column the masking can trace. */
export const EXPOSING_FUNCTIONS: ReadonlyMap<string, string> = new Map([
  ['pg_mcv_list_items', STATISTICS],
  ['pg_stat_statements', TEXTS],
  ['pg_stat_get_activity', TEXTS],
  ['pg_stat_get_backend_activity', TEXTS],
  ['pg_prepared_statement', TEXTS],
  ['pg_cursor', TEXTS],
  ['get_raw_page', PAGES],
  ['heap_page_items', PAGES],
  ['heap_page_item_attrs', PAGES],
  ['tuple_data_split', PAGES],
  ['bt_page_items', PAGES],
  ['bt_multi_page_stats', PAGES],
  ['brin_page_items', PAGES],
  ['gin_leafpage_items', PAGES],
  ['gist_page_items', PAGES],
  ['gist_page_items_bytea', PAGES],
  ['hash_page_items', PAGES],
  ['pg_read_binary_file', FILES],
  ['pg_read_file', FILES],
  ['pg_logical_slot_get_changes', WAL],
  ['pg_logical_slot_peek_changes', WAL],
  ['pg_logical_slot_get_binary_changes', WAL],
  ['pg_logical_slot_peek_binary_changes', WAL],
  ['pg_get_wal_records_info', WAL],
  ['pg_get_wal_records_info_till_end_of_wal', WAL],
  ['pg_get_wal_record_info', WAL],
  ['pg_get_wal_block_info', WAL],
  ['lo_get', 'large objects hold copies of data'],
  ['loread', 'large objects hold copies of data'],
  ['cursor_to_xml', 'it returns a cursor\'s rows as text, masked columns included'],
  ['cursor_to_xmlschema', 'it returns a cursor\'s rows as text, masked columns included'],
  ['query_to_xml', SQL_TEXT],
  ['query_to_xmlschema', SQL_TEXT],
  ['query_to_xml_and_xmlschema', SQL_TEXT],
  ['table_to_xml', 'it returns a whole table as text, masked columns included'],
  ['table_to_xml_and_xmlschema', 'it returns a whole table as text, masked columns included'],
  ['database_to_xml', 'it returns every table as text, masked columns included'],
  ['database_to_xml_and_xmlschema', 'it returns every table as text, masked columns included'],
  ['schema_to_xml', 'it returns whole tables as text, masked columns included'],
  ['schema_to_xml_and_xmlschema', 'it returns whole tables as text, masked columns included'],
  ['crosstab', SQL_TEXT],
  ['crosstab2', SQL_TEXT],
  ['crosstab3', SQL_TEXT],
  ['crosstab4', SQL_TEXT],
  ['connectby', SQL_TEXT],
  ['xpath_table', SQL_TEXT],
  ['dblink', SQL_TEXT],
  ['dblink_exec', SQL_TEXT],
  ['dblink_open', SQL_TEXT],
  ['dblink_fetch', SQL_TEXT],
  ['dblink_send_query', SQL_TEXT],
  ['dblink_get_result', SQL_TEXT],
]);

/**
 * Commands that can make a masked table readable under another name without any column reference
 * the gateway could see (the table is named in an option string, or another database reads it).
 */
export const EXPOSING_COMMANDS: ReadonlyMap<string, string> = new Map([
  ['create foreign table', 'a foreign table can read a masked table under another name'],
  ['import foreign schema', 'foreign tables can read a masked table under another name'],
  ['create server', 'a foreign server can read masked tables under other names'],
  ['create user mapping', 'a foreign server can read masked tables under other names'],
  ['create publication', 'a publication sends rows, masked columns included, to another database'],
  ['create subscription', 'a subscription copies rows between databases'],
  ['create extension', 'an extension can add functions that read stored values'],
  ['create database', 'a database created from this one is a copy of it, masked tables included'],
]);
