--
-- SELECT from topics: meta columns, JSON values, pushdown, EXPLAIN, LIMIT,
-- parameters, watermarks().  Messages are produced with kcat, an
-- independent client, and read back message by message.
--
\getenv brokers KAFKA_BROKERS
\set VERBOSITY default

CREATE SERVER scan_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER scan_srv;

--
-- Meta columns and JSON values
--
\! printf '%s\n' 'k1:{"id": 1, "name": "one", "tags": ["a", "b"], "obj": {"x": 1}}' 'k2:{"id": 2, "name": "two \"quoted\"", "extra": true}' 'k3:{"name": null, "id": 3, "obj": [1, 2]}' | kcat -P -b "$KAFKA_BROKERS" -t scan_json -K : -H source=test -H seq=a -H seq=b

CREATE FOREIGN TABLE scan_json (
  part int OPTIONS (partition 'true'),
  off bigint OPTIONS (offset 'true'),
  k text OPTIONS (key 'true'),
  ts timestamptz OPTIONS (timestamp 'true'),
  hdrs jsonb OPTIONS (headers 'true'),
  id int,
  name text,
  tags text[],
  obj jsonb
) SERVER scan_srv OPTIONS (topic 'scan_json');

SELECT part, off, k, hdrs, id, name, tags, obj,
       ts BETWEEN now() - interval '1 hour' AND now() AS ts_recent
  FROM scan_json;

-- count(*) and meta-only queries do not parse values
SELECT count(*) FROM scan_json;
SELECT off, k FROM scan_json WHERE off >= 1;

-- a column can take a differently named key; a missing key is NULL
CREATE FOREIGN TABLE scan_json_renamed (
  off bigint OPTIONS (offset 'true'),
  ident int OPTIONS (json 'id'),
  flag boolean OPTIONS (json 'extra'),
  nothing text
) SERVER scan_srv OPTIONS (topic 'scan_json');
SELECT * FROM scan_json_renamed;

-- batch_size bounds how many messages a scan takes at once; buffer_delay is
-- accepted and has no effect: a scan that waited an hour for more messages
-- would hit the statement timeout
ALTER FOREIGN TABLE scan_json OPTIONS (ADD batch_size '2', ADD buffer_delay '3600000');
SET statement_timeout = '10s';
SELECT off, k, id FROM scan_json;
RESET statement_timeout;
ALTER FOREIGN TABLE scan_json OPTIONS (DROP batch_size, DROP buffer_delay);

-- the topic defaults to the table's name
CREATE FOREIGN TABLE scan_multi (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  n int
) SERVER scan_srv;
\! for p in 0 1 2 3; do for i in 0 1 2 3 4 5 6 7 8 9; do echo "{\"n\": $((p * 100 + i))}"; done | kcat -P -b "$KAFKA_BROKERS" -t scan_multi -p $p; done

SELECT p, count(*), min(o), max(o), sum(n) FROM scan_multi GROUP BY p ORDER BY p;
-- every message once, with its offset
SELECT count(*) FROM scan_multi WHERE n <> p * 100 + o;

--
-- Pushdown: partitions and offsets, ANDs and ORs; the ranges are in EXPLAIN
--
EXPLAIN (COSTS OFF) SELECT * FROM scan_multi WHERE p = 1;
SELECT p, o, n FROM scan_multi WHERE p = 1 AND o > 7;
EXPLAIN (COSTS OFF)
  SELECT * FROM scan_multi WHERE (p = 1 AND o >= 8) OR (p = 2 AND o < 2);
SELECT p, o, n FROM scan_multi WHERE (p = 1 AND o >= 8) OR (p = 2 AND o < 2)
  ORDER BY p, o;
EXPLAIN (COSTS OFF)
  SELECT * FROM scan_multi WHERE p IN (0, 3) AND o BETWEEN 3 AND 4;
SELECT p, o, n FROM scan_multi WHERE p IN (0, 3) AND o BETWEEN 3 AND 4
  ORDER BY p, o;
EXPLAIN (COSTS OFF) SELECT * FROM scan_multi WHERE p >= 2 AND p < 3 AND o <= 1;
EXPLAIN (COSTS OFF) SELECT * FROM scan_multi WHERE 2 > p AND 8 <= o;
SELECT p, o FROM scan_multi WHERE 2 > p AND 8 <= o ORDER BY p, o;
-- offsets outside the watermarks, contradictions: nothing is read
EXPLAIN (COSTS OFF) SELECT * FROM scan_multi WHERE o > 100;
SELECT count(*) FROM scan_multi WHERE o > 100;
SELECT count(*) FROM scan_multi WHERE p = 1 AND p = 2;
SELECT count(*) FROM scan_multi WHERE o = NULL;
-- what cannot be pushed down is filtered here, never rejected
EXPLAIN (COSTS OFF) SELECT * FROM scan_multi WHERE p <> 1 AND o % 5 = 0;
SELECT p, o FROM scan_multi WHERE p <> 1 AND o % 5 = 0 ORDER BY p, o;
SELECT p, o FROM scan_multi WHERE p = 1 OR n = 305 ORDER BY p, o;
SELECT p, o FROM scan_multi WHERE o::int = 9 AND p::bigint = 0;

-- row estimates come from the watermarks
EXPLAIN SELECT * FROM scan_multi;
EXPLAIN SELECT * FROM scan_multi WHERE p = 3 AND o >= 5;

--
-- Parameters and stable expressions are evaluated at scan start
--
PREPARE q(int, bigint) AS SELECT p, o, n FROM scan_multi WHERE p = $1 AND o > $2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE q(3, 7);
EXECUTE q(3, 7);
EXECUTE q(0, 8);
RESET plan_cache_mode;
SELECT p, o FROM scan_multi WHERE p = length('abc') AND o >= (SELECT 9);
DEALLOCATE q;

--
-- LIMIT stops fetching early
--
EXPLAIN (COSTS OFF) SELECT * FROM scan_multi LIMIT 3;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT * FROM scan_multi WHERE p = 2 LIMIT 3;
SELECT count(*) FROM (SELECT * FROM scan_multi LIMIT 5) s;
-- with a qual that is checked here, or a sort, the whole range is read
EXPLAIN (COSTS OFF) SELECT * FROM scan_multi WHERE n > 300 LIMIT 2;
SELECT n FROM scan_multi WHERE n > 300 LIMIT 2;
SELECT n FROM scan_multi ORDER BY n DESC LIMIT 2;

-- EXPLAIN ANALYZE: messages and bytes fetched
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT * FROM scan_multi WHERE p = 0 AND o < 4;

--
-- An empty topic costs nothing
--
CREATE FOREIGN TABLE scan_empty (p int OPTIONS (partition 'true'), v text)
  SERVER scan_srv;
SELECT count(*) FROM scan_empty;
EXPLAIN (COSTS OFF) SELECT * FROM scan_empty;

--
-- kafka_fdw.watermarks()
--
SELECT * FROM kafka_fdw.watermarks('scan_multi') ORDER BY partition;
SELECT * FROM kafka_fdw.watermarks('scan_empty') ORDER BY partition;
SELECT * FROM kafka_fdw.watermarks('pg_class');  -- ERROR
CREATE ROLE regress_scan_nobody;
GRANT USAGE ON SCHEMA kafka_fdw TO regress_scan_nobody;
SET ROLE regress_scan_nobody;
SELECT * FROM kafka_fdw.watermarks('scan_multi');  -- ERROR
SELECT count(*) FROM scan_multi;  -- ERROR
RESET ROLE;
GRANT SELECT ON scan_multi TO regress_scan_nobody;
SET ROLE regress_scan_nobody;
SELECT count(*) FROM scan_multi;
SELECT count(*) FROM kafka_fdw.watermarks('scan_multi');
RESET ROLE;
REVOKE USAGE ON SCHEMA kafka_fdw FROM regress_scan_nobody;
DROP OWNED BY regress_scan_nobody;
DROP ROLE regress_scan_nobody;

--
-- Joins and cursors
--
SELECT a.p, a.o, b.o FROM scan_multi a JOIN scan_multi b ON a.p = b.p AND a.o = b.o + 9
  ORDER BY a.p;
BEGIN;
DECLARE c CURSOR FOR SELECT p, o FROM scan_multi WHERE p = 2;
FETCH 2 FROM c;
SAVEPOINT s;
SELECT 1 / 0;  -- ERROR
ROLLBACK TO s;
FETCH 2 FROM c;
CLOSE c;
COMMIT;

-- a cursor opened in a released savepoint belongs to the enclosing one: when
-- that one is rolled back, the scan's messages and consumer go with it, and
-- the next scan of the topic starts afresh
BEGIN;
SAVEPOINT s1;
SAVEPOINT s2;
DECLARE c CURSOR FOR SELECT p, o, n FROM scan_multi ORDER BY p, o;
FETCH 1 FROM c;
RELEASE s2;
ROLLBACK TO s1;
FETCH 1 FROM c;  -- ERROR
ROLLBACK TO s1;
SELECT p, count(*), min(n), max(n) FROM scan_multi GROUP BY p ORDER BY p;
DECLARE c CURSOR FOR SELECT p, o, n FROM scan_multi WHERE p = 3 ORDER BY o;
FETCH 2 FROM c;
COMMIT;
SELECT count(*) FROM scan_multi;

-- messages appended while a scan runs are not returned by it
BEGIN;
DECLARE c CURSOR FOR SELECT o, n FROM scan_multi WHERE p = 0;
FETCH 1 FROM c;
\! for i in 10 11 12 13 14; do echo "{\"n\": $i}"; done | kcat -P -b "$KAFKA_BROKERS" -t scan_multi -p 0
FETCH ALL FROM c;
COMMIT;
SELECT count(*), max(o), max(n) FROM scan_multi WHERE p = 0;

--
-- Errors
--
CREATE FOREIGN TABLE scan_missing (v text) SERVER scan_srv
  OPTIONS (topic 'scan_no_such_topic');
SELECT * FROM scan_missing;  -- ERROR
\echo :SQLSTATE
-- a value that does not parse names topic, partition, offset and column
\! printf '%s\n' '{"id": "not a number"}' | kcat -P -b "$KAFKA_BROKERS" -t scan_json
SELECT off, id FROM scan_json;  -- ERROR
\echo :SQLSTATE
SELECT off, name FROM scan_json WHERE off < 3;
\! printf '%s\n' '{"id": 4' | kcat -P -b "$KAFKA_BROKERS" -t scan_json
SELECT off, name FROM scan_json;  -- ERROR
-- the value is only parsed when a data column is read
SELECT count(*), max(off) FROM scan_json;

-- a table the event trigger did not check is checked when it is used
ALTER EVENT TRIGGER kafka_fdw_check_table_ddl DISABLE;
CREATE FOREIGN TABLE scan_unchecked (p text OPTIONS (partition 'true'))
  SERVER scan_srv OPTIONS (topic 'scan_multi');
ALTER EVENT TRIGGER kafka_fdw_check_table_ddl ENABLE;
SELECT * FROM scan_unchecked;  -- ERROR

DROP SERVER scan_srv CASCADE;
