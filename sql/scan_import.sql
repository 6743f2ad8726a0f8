--
-- IMPORT FOREIGN SCHEMA: a table per topic; parallel scans
--
\getenv brokers KAFKA_BROKERS
\set VERBOSITY default

CREATE SERVER imp_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER imp_srv;
CREATE SCHEMA scan_imported;

IMPORT FOREIGN SCHEMA anything LIMIT TO (scan_import_a, scan_import_b, scan_no_such)
  FROM SERVER imp_srv INTO scan_imported;
SELECT c.relname, ft.ftoptions
  FROM pg_foreign_table ft JOIN pg_class c ON c.oid = ft.ftrelid
 WHERE c.relnamespace = 'scan_imported'::regnamespace ORDER BY 1;
\d scan_imported.scan_import_b

\! printf '%s\n' 'k1:first' 'k2:second' | kcat -P -b "$KAFKA_BROKERS" -t scan_import_a -K : -H h=1
SELECT "partition", "offset", key, headers, value,
       "timestamp" > now() - interval '1 hour' AS recent
  FROM scan_imported.scan_import_a;

-- a topic whose name needs quoting
IMPORT FOREIGN SCHEMA anything LIMIT TO ("scan.import-c")
  FROM SERVER imp_srv INTO scan_imported OPTIONS (value_type 'jsonb');
\! printf '%s\n' '{"a": [1, 2]}' | kcat -P -b "$KAFKA_BROKERS" -t scan.import-c
SELECT "offset", value -> 'a' AS a FROM scan_imported."scan.import-c";

-- EXCEPT, and the type of the value column
DROP SCHEMA scan_imported CASCADE;
CREATE SCHEMA scan_imported;
IMPORT FOREIGN SCHEMA anything EXCEPT (scan_import_a)
  FROM SERVER imp_srv INTO scan_imported OPTIONS (value_type 'bytea');
SELECT count(*) > 0 AS some_tables,
       bool_and(c.relname <> 'scan_import_a') AS a_excepted,
       bool_or(c.relname = 'scan_import_b') AS b_imported,
       bool_and(c.relname NOT LIKE '\_\_%') AS no_internal
  FROM pg_class c WHERE c.relnamespace = 'scan_imported'::regnamespace;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'scan_imported.scan_import_b'::regclass AND attname = 'value';
IMPORT FOREIGN SCHEMA anything FROM SERVER imp_srv INTO scan_imported
  OPTIONS (value_type 'xml');  -- ERROR
IMPORT FOREIGN SCHEMA anything FROM SERVER imp_srv INTO scan_imported
  OPTIONS (format 'json');  -- ERROR

--
-- Parallel scans: partitions are shared out among the workers
--
\! for p in 0 1 2; do seq 1 200 | sed "s/^/p$p-/" | kcat -P -b "$KAFKA_BROKERS" -t scan_import_b -p $p; done
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET max_parallel_workers_per_gather = 2;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF)
  SELECT "partition", count(*) FROM scan_imported.scan_import_b GROUP BY 1;
SELECT "partition", count(*), count(DISTINCT "offset"), min(encode(value, 'escape')),
       max("offset")
  FROM scan_imported.scan_import_b GROUP BY 1 ORDER BY 1;
SELECT count(*) FROM scan_imported.scan_import_b WHERE "partition" > 0;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET max_parallel_workers_per_gather;
RESET min_parallel_table_scan_size;

-- the tables imported depend on the topics other tests use
SET client_min_messages = warning;
DROP SCHEMA scan_imported CASCADE;
DROP SERVER imp_srv CASCADE;
RESET client_min_messages;
