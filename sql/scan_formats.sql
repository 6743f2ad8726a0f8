--
-- Decoding of message values: JSON into arrays, composites and json/jsonb,
-- CSV with its options, raw values, tombstones, junk handling, strict mode,
-- timestamp pushdown.
--
\getenv brokers KAFKA_BROKERS
\set VERBOSITY default

CREATE SERVER fmt_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER fmt_srv;

--
-- JSON: PostgreSQL arrays, composite types, json and jsonb, scalars
--
CREATE TYPE scan_point AS (x int, y int, label text);
CREATE FOREIGN TABLE scan_types (
  o bigint OPTIONS (offset 'true'),
  ints int[],
  grid int[],
  pt scan_point,
  pts scan_point[],
  j json,
  jb jsonb,
  num numeric,
  flag boolean,
  t text,
  d date
) SERVER fmt_srv OPTIONS (topic 'scan_types');
\! printf '%s\n' '{"ints": [1, null, 3], "grid": [[1, 2], [3, 4]], "pt": {"x": 1, "y": 2, "label": "a \"b\""}, "pts": [{"x": 1}, {"y": 2, "label": "{,}"}], "j": {"k": [1, "two"]}, "jb": "str", "num": 1.50, "flag": false, "t": {"nested": true}, "d": "2024-02-29"}' '{"ints": [], "j": 12, "jb": [true, null], "t": "plain \u00e9", "num": -1e3}' '{}' | kcat -P -b "$KAFKA_BROKERS" -t scan_types
SELECT * FROM scan_types;
SELECT o, (pt).label, pts[2].label, grid[2][1], jb -> 0 FROM scan_types;

--
-- CSV: fields by position, quoting, NULLs, options
--
CREATE FOREIGN TABLE scan_csv (
  o bigint OPTIONS (offset 'true'),
  a int,
  b text,
  c text
) SERVER fmt_srv OPTIONS (topic 'scan_csv', format 'csv');
\! printf '%s\n' '1,plain,"quoted, with comma"' '2,,""' '3,"say ""hi""",' '4' '5,x,y,extra' | kcat -P -b "$KAFKA_BROKERS" -t scan_csv
SELECT o, a, b, c, b IS NULL AS b_null, c IS NULL AS c_null FROM scan_csv;
-- other delimiter, quote, escape and null
CREATE FOREIGN TABLE scan_csv_opts (
  o bigint OPTIONS (offset 'true'),
  a text,
  b text
) SERVER fmt_srv
  OPTIONS (topic 'scan_csv', format 'csv', delimiter '|', quote '''',
           escape '\', null 'plain');
SELECT o, a, b FROM scan_csv_opts WHERE o < 3;
-- strict: extra fields are an error
ALTER FOREIGN TABLE scan_csv OPTIONS (ADD strict 'true');
SELECT o, a FROM scan_csv;  -- ERROR
SELECT o, a FROM scan_csv WHERE o < 4;
SELECT count(*) FROM scan_csv;

--
-- raw: the whole value, as text, bytea, json or jsonb; tombstones
--
CREATE FOREIGN TABLE scan_raw (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  k bytea OPTIONS (key 'true'),
  v text
) SERVER fmt_srv OPTIONS (topic 'scan_raw', format 'raw');
\! printf '%s\n' 'a:hello world' 'b:{"not": "parsed"}' 'c:' | kcat -P -b "$KAFKA_BROKERS" -t scan_raw -p 0 -K : -Z
\! printf '%s\n' ':no key, partition 1' | kcat -P -b "$KAFKA_BROKERS" -t scan_raw -p 1 -K : -Z
SELECT p, o, k, v, v IS NULL AS tombstone FROM scan_raw ORDER BY p, o;
CREATE FOREIGN TABLE scan_raw_bytes (
  o bigint OPTIONS (offset 'true'),
  k text OPTIONS (key 'true'),
  v bytea
) SERVER fmt_srv OPTIONS (topic 'scan_raw', format 'raw');
SELECT o, k, v FROM scan_raw_bytes ORDER BY k;
CREATE FOREIGN TABLE scan_raw_json (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  v jsonb
) SERVER fmt_srv OPTIONS (topic 'scan_raw', format 'raw');
SELECT o, v FROM scan_raw_json WHERE p = 0 AND o = 1;
SELECT o, v FROM scan_raw_json WHERE p = 0;  -- ERROR
-- a JSON table: a tombstone gives NULL data columns, key and meta as usual
CREATE FOREIGN TABLE scan_raw_as_json (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  k text OPTIONS (key 'true'),
  "not" text
) SERVER fmt_srv OPTIONS (topic 'scan_raw');
SELECT p, o, k, "not" FROM scan_raw_as_json WHERE p = 0 AND o >= 1;

--
-- Junk: by default an ERROR; with junk/junk_error columns or ignore_junk
-- the row comes back with NULL for what failed
--
\! printf '%s\n' '{"id": 1, "name": "good"}' '{"id": "one", "name": "bad id"}' 'not json at all' '[1, 2]' '{"id": 5, "name": "extra key", "color": "red"}' | kcat -P -b "$KAFKA_BROKERS" -t scan_junk
CREATE FOREIGN TABLE scan_junk (
  o bigint OPTIONS (offset 'true'),
  id int,
  name text
) SERVER fmt_srv OPTIONS (topic 'scan_junk');
SELECT * FROM scan_junk;  -- ERROR
SELECT * FROM scan_junk WHERE o = 2;  -- ERROR
\echo :SQLSTATE
ALTER FOREIGN TABLE scan_junk OPTIONS (ADD ignore_junk 'true');
SELECT * FROM scan_junk;
ALTER FOREIGN TABLE scan_junk ADD COLUMN junk text OPTIONS (junk 'true');
ALTER FOREIGN TABLE scan_junk ADD COLUMN why text OPTIONS (junk_error 'true');
ALTER FOREIGN TABLE scan_junk OPTIONS (DROP ignore_junk);
SELECT * FROM scan_junk;
-- only the junk columns: the values are still parsed
SELECT o, junk IS NOT NULL AS is_junk FROM scan_junk;
-- strict: keys no column takes are junk too
ALTER FOREIGN TABLE scan_junk OPTIONS (ADD strict 'true');
SELECT o, id, name, why FROM scan_junk WHERE o IN (0, 4);

--
-- Junk from a domain whose CHECK calls PL/pgSQL, which runs a query (SPI, a
-- snapshot) before it fails: such a column's input runs in a subtransaction,
-- so the failure leaves nothing behind and the session stays healthy
--
CREATE TABLE scan_banned (v int);
INSERT INTO scan_banned VALUES (13);
CREATE FUNCTION scan_allowed(v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM scan_banned b WHERE b.v = scan_allowed.v) THEN
    RAISE EXCEPTION 'value % is banned', v
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN true;
END $$;
CREATE DOMAIN scan_checked AS int CHECK (VALUE > 0 AND scan_allowed(VALUE));
CREATE TYPE scan_checked_pair AS (a scan_checked, b text);
\! printf '%s\n' '{"id": 1, "name": "good", "ids": [1, 2], "pair": {"a": 1}}' '{"id": 13, "name": "banned"}' '{"id": -1, "name": "negative"}' '{"id": 2, "name": "good too", "ids": [3, 13]}' '{"id": 3, "pair": {"a": 13, "b": "x"}}' '{"id": 4, "name": "last", "ids": [4], "pair": {"a": 4, "b": "y"}}' | kcat -P -b "$KAFKA_BROKERS" -t scan_junk_domain -p 0
\! printf '%s\n' '{"id": 5, "name": "partition 1"}' | kcat -P -b "$KAFKA_BROKERS" -t scan_junk_domain -p 1
CREATE FOREIGN TABLE scan_junk_domain (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  id scan_checked,
  name text,
  ids scan_checked[],
  pair scan_checked_pair
) SERVER fmt_srv OPTIONS (topic 'scan_junk_domain');
-- by default an ERROR that names the message and the column
SELECT o, id, name FROM scan_junk_domain WHERE p = 0;  -- ERROR
SELECT o, id FROM scan_junk_domain WHERE p = 0 AND o >= 2;  -- ERROR
SELECT o, ids FROM scan_junk_domain WHERE p = 0 AND o = 3;  -- ERROR
SELECT p, o, name FROM scan_junk_domain ORDER BY p, o;
ALTER FOREIGN TABLE scan_junk_domain OPTIONS (ADD ignore_junk 'true');
-- the function failed after its query: nothing of it is left (no WARNING)
SELECT o, id FROM scan_junk_domain WHERE p = 0 AND o <= 1;
SELECT * FROM scan_junk_domain ORDER BY p, o;
ALTER FOREIGN TABLE scan_junk_domain ADD COLUMN junk text OPTIONS (junk 'true');
ALTER FOREIGN TABLE scan_junk_domain ADD COLUMN why text OPTIONS (junk_error 'true');
ALTER FOREIGN TABLE scan_junk_domain OPTIONS (DROP ignore_junk);
SELECT p, o, id, ids, pair, junk, why FROM scan_junk_domain ORDER BY p, o;
-- in a transaction and a cursor too, each value checked when its row is
-- fetched; then the session goes on as usual
BEGIN;
DECLARE c CURSOR FOR SELECT o, id, why FROM scan_junk_domain WHERE p = 0;
FETCH 3 FROM c;
INSERT INTO scan_banned VALUES (4);
FETCH ALL FROM c;
CLOSE c;
SELECT count(*) FILTER (WHERE junk IS NULL) AS good,
       count(*) FILTER (WHERE junk IS NOT NULL) AS junk
  FROM scan_junk_domain;
COMMIT;
SELECT v FROM scan_banned ORDER BY v;
SELECT scan_allowed(5), 5::scan_checked;
SELECT 13::scan_checked;  -- ERROR
-- columns of such types are not read by parallel workers in junk mode
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET cpu_tuple_cost = 100;  -- a few messages are worth sharing out
EXPLAIN (COSTS OFF) SELECT id FROM scan_junk_domain;
ALTER FOREIGN TABLE scan_junk_domain DROP COLUMN junk, DROP COLUMN why;
EXPLAIN (COSTS OFF) SELECT id FROM scan_junk_domain;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET cpu_tuple_cost;

--
-- bytea in JSON is base64, both ways: what INSERT publishes (a column, array
-- elements, a composite's field) reads back equal, bytes 0x00 and 0xff too
--
CREATE TYPE scan_blob AS (name text, data bytea);
CREATE DOMAIN scan_short_bytes AS bytea CHECK (length(VALUE) <= 4);
CREATE TABLE scan_bytea_src (id int, b bytea, bs bytea[], blob scan_blob,
                             sb scan_short_bytes);
INSERT INTO scan_bytea_src VALUES
  (1, '\x00ff0a5c22', ARRAY['\x00', '\xff', NULL, '']::bytea[],
   ROW('x', '\xdeadbeef00'), '\xff00'),
  (2, '', '{}', ROW('empty', ''), ''),
  (3, NULL, '{{"\\x00","\\x01"},{"\\xfe","\\xff"}}', NULL, NULL),
  (4, decode(repeat('00ff7f80', 300), 'hex'), NULL, ROW(NULL, NULL), '\x00');
CREATE FOREIGN TABLE scan_bytea (
  o bigint OPTIONS (offset 'true'),
  id int,
  b bytea,
  bs bytea[],
  blob scan_blob,
  sb scan_short_bytes
) SERVER fmt_srv OPTIONS (topic 'scan_bytea');
INSERT INTO scan_bytea (id, b, bs, blob, sb)
  SELECT id, b, bs, blob, sb FROM scan_bytea_src ORDER BY id;
-- the message holds base64, as another client sees it
\! kcat -C -b "$KAFKA_BROKERS" -t scan_bytea -o 0 -c 2 -e -q
SELECT o, id, b, bs, blob, sb FROM scan_bytea WHERE id < 4 ORDER BY o;
SELECT count(*) AS equal
  FROM scan_bytea f JOIN scan_bytea_src s USING (id)
 WHERE f.b IS NOT DISTINCT FROM s.b AND f.bs IS NOT DISTINCT FROM s.bs
   AND f.blob IS NOT DISTINCT FROM s.blob AND f.sb IS NOT DISTINCT FROM s.sb;
SELECT length(f.b), f.b = s.b AS same
  FROM scan_bytea f JOIN scan_bytea_src s USING (id)
 WHERE id = 4;
-- a JSON string that is not base64 is a bad message like any other
\! printf '%s\n' '{"id": 10, "b": "not base64!"}' '{"id": 11, "bs": ["AA==", "A"]}' '{"id": 12, "blob": {"name": "n", "data": "*"}}' '{"id": 13, "b": "AP8=", "sb": "AAAA"}' | kcat -P -b "$KAFKA_BROKERS" -t scan_bytea
SELECT id, b FROM scan_bytea WHERE o = 4;  -- ERROR
SELECT id, bs FROM scan_bytea WHERE o = 5;  -- ERROR
ALTER FOREIGN TABLE scan_bytea ADD COLUMN junk text OPTIONS (junk 'true');
ALTER FOREIGN TABLE scan_bytea ADD COLUMN why text OPTIONS (junk_error 'true');
SELECT o, id, b, bs, blob, sb, junk, why FROM scan_bytea WHERE o >= 4 ORDER BY o;
-- without junk columns, ignore_junk gives NULL for what failed
ALTER FOREIGN TABLE scan_bytea DROP COLUMN junk, DROP COLUMN why;
ALTER FOREIGN TABLE scan_bytea OPTIONS (ADD ignore_junk 'true');
SELECT o, id, b, bs, blob FROM scan_bytea WHERE o >= 4 ORDER BY o;
-- a raw bytea column takes the bytes as they are, base64 or not
CREATE FOREIGN TABLE scan_bytea_raw (
  o bigint OPTIONS (offset 'true'),
  v bytea
) SERVER fmt_srv OPTIONS (topic 'scan_bytea', format 'raw');
SELECT o, convert_from(v, 'UTF8') FROM scan_bytea_raw WHERE o = 4;

--
-- Timestamp lower bounds go through offsets-for-times; where the broker
-- cannot answer, the partition is read and filtered here
--
CREATE FOREIGN TABLE scan_ts (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  ts timestamptz OPTIONS (timestamp 'true'),
  v text
) SERVER fmt_srv OPTIONS (topic 'scan_ts', format 'raw');
\! printf '%s\n' old1 old2 | kcat -P -b "$KAFKA_BROKERS" -t scan_ts -p 0
SELECT max(ts) AS cut FROM scan_ts \gset
-- the next messages get a later timestamp (milliseconds)
SELECT pg_sleep_until(:'cut'::timestamptz + interval '2 ms');
\! printf '%s\n' new1 new2 | kcat -P -b "$KAFKA_BROKERS" -t scan_ts -p 0
SELECT v FROM scan_ts WHERE ts > :'cut' ORDER BY o;
SELECT v FROM scan_ts WHERE ts >= :'cut' AND p = 0 ORDER BY o;
-- under an OR, a bound is no bound for the other branch
SELECT v FROM scan_ts WHERE ts > :'cut' OR o = 0 ORDER BY o;
SELECT v FROM scan_ts WHERE (ts > :'cut' AND o > 2) OR o = 1 ORDER BY o;
-- partition 1 is empty; partition 0 has messages newer than the bound
-- (EXPLAIN with the timestamps masked)
CREATE FUNCTION scan_explain(query text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
    RETURN NEXT regexp_replace(line,
      '''[^'']*''::timestamp with time zone|(?<=Bound: ).*$', '<timestamp>', 'g');
  END LOOP;
END
$$;
SELECT scan_explain(format('SELECT v FROM scan_ts WHERE ts > %L', :'cut'));
-- under an OR there is no bound to push down
SELECT scan_explain(format('SELECT v FROM scan_ts WHERE ts > %L OR o = 0', :'cut'));
-- a bound after every message: the last message shows nothing is newer
SELECT scan_explain('SELECT v FROM scan_ts WHERE ts >= now() + interval ''1 hour''');
SELECT count(*) FROM scan_ts WHERE ts >= now() + interval '1 hour';
-- a bound in a parameter
PREPARE tsq(timestamptz) AS SELECT v FROM scan_ts WHERE ts > $1 ORDER BY o;
EXECUTE tsq(:'cut');
EXECUTE tsq('-infinity');
DEALLOCATE tsq;
-- a timestamp column (without time zone) gets the session's local time;
-- its quals are checked here
CREATE FOREIGN TABLE scan_ts_local (
  o bigint OPTIONS (offset 'true'),
  ts timestamp OPTIONS (timestamp 'true'),
  v text
) SERVER fmt_srv OPTIONS (topic 'scan_ts', format 'raw');
SELECT count(*) FROM scan_ts_local l JOIN scan_ts t USING (o)
 WHERE t.p = 0 AND l.ts = t.ts::timestamp;
SELECT v FROM scan_ts_local WHERE ts > :'cut'::timestamptz::timestamp ORDER BY o;

--
-- ANALYZE samples messages
--
ANALYZE scan_csv;
SELECT attname, null_frac FROM pg_stats WHERE tablename = 'scan_csv' ORDER BY attname;

DROP SERVER fmt_srv CASCADE;
DROP TYPE scan_point;
DROP TABLE scan_bytea_src;
DROP TYPE scan_blob;
DROP DOMAIN scan_short_bytes;
DROP FUNCTION scan_explain(text);
DROP TYPE scan_checked_pair;
DROP DOMAIN scan_checked;
DROP FUNCTION scan_allowed(int);
DROP TABLE scan_banned;
