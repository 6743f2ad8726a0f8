--
-- Junk in composite and composite-array columns: a field the type rejects
-- makes the row junk and leaves nothing held (no TupleDesc reference leak
-- WARNING), in every junk mode, in a cursor, in parallel workers and in
-- ANALYZE.
--
\getenv brokers KAFKA_BROKERS
\set VERBOSITY default

CREATE SERVER rowtype_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER rowtype_srv;

CREATE TYPE rt_pair AS (a int, b text);
CREATE TYPE rt_outer AS (p rt_pair, n numeric);
CREATE DOMAIN rt_pair_d AS rt_pair;
\! printf '%s\n' '{"id": 1, "pair": {"a": 1, "b": "x"}, "pairs": [{"a": 2}], "deep": {"p": {"a": 3}, "n": 1.5}, "pd": {"a": 4}}' '{"id": 2, "pair": {"a": "not a number"}}' '{"id": 3, "pairs": [{"a": 1}, {"a": "x"}]}' '{"id": 4, "deep": {"p": {"a": "y"}}}' '{"id": 5, "deep": {"n": "not numeric"}}' '{"id": 6, "pd": {"a": "z"}}' '{"id": 7, "pair": "(1,x)", "pairs": "{\"(2,y)\"}"}' '{"id": 8, "pair": "(q,x)", "pairs": "{\"(r,y)\"}"}' '{"id": 9, "pair": [1, 2, 3]}' | kcat -P -b "$KAFKA_BROKERS" -t scan_junk_rowtype
CREATE FOREIGN TABLE rt_junk (
  o bigint OPTIONS (offset 'true'),
  id int,
  pair rt_pair,
  pairs rt_pair[],
  deep rt_outer,
  pd rt_pair_d,
  why text OPTIONS (junk_error 'true')
) SERVER rowtype_srv OPTIONS (topic 'scan_junk_rowtype');

-- junk_error column: each failing value is NULL, the reason is given
SELECT o, id, pair, pairs, deep, pd, why FROM rt_junk ORDER BY o;
-- again, and only the composite columns: still no WARNING
SELECT o, pair IS NULL AS no_pair, pairs IS NULL AS no_pairs FROM rt_junk ORDER BY o;
-- in a cursor, fetched one row at a time
BEGIN;
DECLARE c CURSOR FOR SELECT o, why IS NOT NULL AS is_junk FROM rt_junk;
FETCH 3 FROM c;
FETCH ALL FROM c;
CLOSE c;
COMMIT;
-- ignore_junk without junk columns
ALTER FOREIGN TABLE rt_junk DROP COLUMN why;
ALTER FOREIGN TABLE rt_junk OPTIONS (ADD ignore_junk 'true');
SELECT o, id, pair, pairs, deep, pd FROM rt_junk ORDER BY o;
-- in a parallel worker
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET force_parallel_mode = on;
SELECT count(*) AS rows, count(pair) AS pairs, count(pairs) AS arrays,
       count(deep) AS deeps, count(pd) AS domains FROM rt_junk;
RESET force_parallel_mode;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
-- ANALYZE samples the junk rows too
ANALYZE rt_junk;
-- without junk handling: the positioned ERROR, and the session goes on
ALTER FOREIGN TABLE rt_junk OPTIONS (DROP ignore_junk);
SELECT o, pair FROM rt_junk WHERE o = 1;  -- ERROR
SELECT o, pairs FROM rt_junk WHERE o = 2;  -- ERROR
SELECT o, id, pair FROM rt_junk WHERE o = 0;
-- ANALYZE: an error that is not junk names the message it comes from
CREATE FUNCTION rt_check(v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF v = 5 THEN
    RAISE EXCEPTION 'id 5 is refused' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN true;
END $$;
CREATE DOMAIN rt_checked AS int CHECK (rt_check(VALUE));
CREATE FOREIGN TABLE rt_refused (id rt_checked,
  why text OPTIONS (junk_error 'true'))
  SERVER rowtype_srv OPTIONS (topic 'scan_junk_rowtype');
ANALYZE rt_refused;  -- ERROR
