--
-- Deeply nested JSON: values nested 12,000, 25,000 and 100,000 levels (objects
-- and arrays) into jsonb, json, text and composite columns are junk rows
-- with a reason, or without junk handling the positioned ERROR; never a
-- stack overflow.  Also with ignore_junk, strict, in parallel workers and in
-- ANALYZE.
--
\getenv brokers KAFKA_BROKERS
\set VERBOSITY default

CREATE SERVER deep_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER deep_srv;

-- offsets 0-5: nested values; 6: a nested message; 7: a shallow one;
-- 8, 9: the limit, 1,000 levels with the top-level object, and one more;
-- 10-11: a raw message and a key nested 1,001 levels
\! python3 "$PG_ABS_SRCDIR/test/fuzz/deep_json.py" 1:object:12000 2:array:12000 3:object:25000 4:array:25000 5:object:100000 6:array:100000 7:top:100000 | kcat -P -b "$KAFKA_BROKERS" -t scan_junk_deep
\! printf '%s\n' '{"id": 8, "doc": {"a": {"a": [1, 2]}}}' | kcat -P -b "$KAFKA_BROKERS" -t scan_junk_deep
\! python3 "$PG_ABS_SRCDIR/test/fuzz/deep_json.py" 9:object:999 10:array:1000 11:top:1001 | kcat -P -b "$KAFKA_BROKERS" -t scan_junk_deep
\! python3 "$PG_ABS_SRCDIR/test/fuzz/deep_json.py" 12:top:1001 | sed 's/$/|{"id": 12}/' | kcat -P -K '|' -b "$KAFKA_BROKERS" -t scan_junk_deep

CREATE TYPE deep_box AS (a jsonb, id int);
CREATE FOREIGN TABLE deep_jsonb (o bigint OPTIONS (offset 'true'), id int,
  doc jsonb, junk text OPTIONS (junk 'true'),
  why text OPTIONS (junk_error 'true'))
  SERVER deep_srv OPTIONS (topic 'scan_junk_deep');
CREATE FOREIGN TABLE deep_json (o bigint OPTIONS (offset 'true'), id int,
  doc json, junk text OPTIONS (junk 'true'),
  why text OPTIONS (junk_error 'true'))
  SERVER deep_srv OPTIONS (topic 'scan_junk_deep');
CREATE FOREIGN TABLE deep_text (o bigint OPTIONS (offset 'true'), id int,
  doc text, junk text OPTIONS (junk 'true'),
  why text OPTIONS (junk_error 'true'))
  SERVER deep_srv OPTIONS (topic 'scan_junk_deep');
CREATE FOREIGN TABLE deep_comp (o bigint OPTIONS (offset 'true'), id int,
  doc deep_box, junk text OPTIONS (junk 'true'),
  why text OPTIONS (junk_error 'true'))
  SERVER deep_srv OPTIONS (topic 'scan_junk_deep');

-- junk and junk_error columns
SELECT o, id, length(doc::text) AS doc_len, length(junk) AS junk_len, why
  FROM deep_jsonb ORDER BY o;
SELECT o, id, length(doc::text) AS doc_len, length(junk) AS junk_len, why
  FROM deep_json ORDER BY o;
SELECT o, id, length(doc) AS doc_len, length(junk) AS junk_len, why
  FROM deep_text ORDER BY o;
SELECT o, id, length(doc::text) AS doc_len, length(junk) AS junk_len, why
  FROM deep_comp ORDER BY o;
-- only the junk column read: the values are still parsed
SELECT o, junk IS NOT NULL AS is_junk FROM deep_jsonb ORDER BY o;
-- strict
ALTER FOREIGN TABLE deep_jsonb OPTIONS (ADD strict 'true');
SELECT o, id, why FROM deep_jsonb ORDER BY o;
ALTER FOREIGN TABLE deep_jsonb OPTIONS (DROP strict);
-- in a parallel worker
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET force_parallel_mode = on;
SELECT count(*) AS rows, count(doc) AS docs, count(junk) AS junk
  FROM deep_jsonb;
SELECT count(*) AS rows, count(doc) AS docs, count(junk) AS junk
  FROM deep_comp;
RESET force_parallel_mode;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
-- ignore_junk, without junk columns
ALTER FOREIGN TABLE deep_jsonb DROP COLUMN junk, DROP COLUMN why;
ALTER FOREIGN TABLE deep_jsonb OPTIONS (ADD ignore_junk 'true');
SELECT o, id, length(doc::text) AS doc_len FROM deep_jsonb ORDER BY o;
ALTER FOREIGN TABLE deep_comp DROP COLUMN junk, DROP COLUMN why;
ALTER FOREIGN TABLE deep_comp OPTIONS (ADD ignore_junk 'true');
SELECT o, id, length(doc::text) AS doc_len FROM deep_comp ORDER BY o;
-- ANALYZE reads the junk rows as rows
ANALYZE deep_jsonb;
ALTER FOREIGN TABLE deep_comp OPTIONS (DROP ignore_junk);
ANALYZE deep_comp;
-- without junk handling: the positioned ERROR
ALTER FOREIGN TABLE deep_jsonb OPTIONS (DROP ignore_junk);
SELECT o, id FROM deep_jsonb WHERE o = 2;  -- ERROR
SELECT o, id FROM deep_jsonb WHERE o = 5;  -- ERROR
SELECT o, doc FROM deep_jsonb WHERE o = 6;  -- ERROR
SELECT o, doc FROM deep_comp WHERE o = 4;  -- ERROR
SELECT o, doc FROM deep_jsonb WHERE o = 7;
SELECT o, id FROM deep_jsonb WHERE o = 9;  -- ERROR
-- the same limit for a raw value and a key of type jsonb
CREATE FOREIGN TABLE deep_raw (o bigint OPTIONS (offset 'true'),
  k jsonb OPTIONS (key 'true'), v jsonb,
  why text OPTIONS (junk_error 'true'))
  SERVER deep_srv OPTIONS (topic 'scan_junk_deep', format 'raw');
SELECT o, length(k::text) AS k_len, length(v::text) AS v_len, why
  FROM deep_raw WHERE o >= 7 ORDER BY o;
-- the same junk when only the junk_error column is read
SELECT o, why FROM deep_raw WHERE o >= 7 ORDER BY o;
-- a low max_stack_depth: the stack depth limit makes junk too
CREATE FOREIGN TABLE deep_small (o bigint OPTIONS (offset 'true'), id int,
  doc jsonb, why text OPTIONS (junk_error 'true'))
  SERVER deep_srv OPTIONS (topic 'scan_junk_deep');
SET max_stack_depth = '100kB';
SELECT o, id, length(doc::text) AS doc_len, why FROM deep_small
  WHERE o >= 7 ORDER BY o;
SELECT o, length(v::text) AS v_len, why FROM deep_raw WHERE o >= 7 ORDER BY o;
RESET max_stack_depth;
