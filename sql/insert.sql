--
-- INSERT and COPY FROM publish messages: encodings, meta columns, options
-- and errors.  What was published is read back with kcat, an independent
-- client, through COPY FROM PROGRAM.
--
\getenv brokers KAFKA_BROKERS
SET timezone = 'UTC';

CREATE SERVER insert_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "message.timeout.ms" '10000');
CREATE USER MAPPING FOR PUBLIC SERVER insert_srv;

-- every message of a topic, as kcat reads it
CREATE TEMP TABLE insert_kcat (line text);
CREATE FUNCTION insert_read(brokers text, topic text,
                            isolation text DEFAULT 'read_committed')
RETURNS TABLE (p int, o bigint, k text, v text, ts bigint, h jsonb)
LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE insert_kcat;
  EXECUTE format('COPY insert_kcat FROM PROGRAM %L WITH (FORMAT csv, DELIMITER %L, QUOTE %L)',
                 format('kcat -C -e -q -J -X isolation.level=%s -b %s -t %s',
                        isolation, brokers, topic),
                 E'\x01', E'\x02');
  RETURN QUERY
    SELECT (j->>'partition')::int, (j->>'offset')::bigint, j->>'key',
           j->>'payload', (j->>'ts')::bigint, j->'headers'
    FROM (SELECT line::jsonb AS j FROM insert_kcat) s
    ORDER BY 1, 2;
END
$$;

-- Kafka's commit returns once the coordinator logged it; the markers that
-- make the messages visible to read_committed consumers follow: wait for
-- n messages whose key is LIKE key_like, for up to about 30 s
CREATE FUNCTION insert_wait(brokers text, topic text, key_like text, n int)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '30 s';
BEGIN
  WHILE (SELECT count(*) FROM insert_read(brokers, topic) WHERE k LIKE key_like) < n
        AND clock_timestamp() < deadline LOOP
    PERFORM pg_sleep(0.1);
  END LOOP;
END
$$;

--
-- json: an object of the data columns, typed as JSON
--
CREATE TYPE insert_pair AS (x int, y text);
CREATE TYPE insert_mood AS ENUM ('sad', 'happy');
CREATE DOMAIN insert_posint AS int CHECK (VALUE > 0);

CREATE FOREIGN TABLE insert_json (
  k text OPTIONS (key 'true'),
  i2 smallint, i4 int, i8 bigint, f4 real, f8 float8, n numeric,
  b boolean, t text, vc varchar(10), c char(3),
  j json, jb jsonb, arr int[], arr2 text[], comp insert_pair, mood insert_mood,
  dom insert_posint, by bytea,
  d date, tm time, tmz timetz, tsp timestamp, tsz timestamptz, iv interval,
  renamed int OPTIONS (json 'Other Name')
) SERVER insert_srv OPTIONS (topic 'insert_json');

INSERT INTO insert_json VALUES
  ('all', 1, -2147483648, 9223372036854775807, 1.5, 0.1,
   123456789012345678901234567890.123456789, true, E'quote " backslash \\ tab \t nl \n', 'v', 'c',
   '{"a": [1, 2]}', '{"b": {"c": null}}', ARRAY[1, NULL, 3], ARRAY[['a', 'b'], ['c', 'd']],
   ROW(1, 'one'), 'happy', 5, '\xdeadbeef',
   '2024-02-29', '12:34:56.5', '12:34:56+02', '2024-02-29 01:02:03.456',
   '2024-02-29 01:02:03+05', '1 day 2 hours', 7);
INSERT INTO insert_json (k, f4, f8, n, arr, jb) VALUES
  ('special', 'NaN', '-Infinity', 'NaN', '{}', '"just a string"'),
  ('numbers', '-0', 1e300, 'Infinity', '{-1}', '[1, "two", null]');
INSERT INTO insert_json (k) VALUES ('nulls');

-- (the cast checks that every value is valid JSON)
SELECT k, v, v::jsonb IS NOT NULL AS valid FROM insert_read(:'brokers', 'insert_json');

--
-- the meta columns: key, partition, timestamp, headers; offset is ignored
--
CREATE FOREIGN TABLE insert_meta (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  k text OPTIONS (key 'true'),
  ts timestamptz OPTIONS (timestamp 'true'),
  h jsonb OPTIONS (headers 'true'),
  v text
) SERVER insert_srv OPTIONS (topic 'insert_meta');

INSERT INTO insert_meta (p, o, k, ts, h, v) VALUES
  (2, 999, 'explicit', '2024-01-01 00:00:00.123+00',
   '{"trace": "abc", "multi": ["x", "y"], "empty": null, "num": 42, "obj": {"a": 1}}', 'one');
-- keys without a partition land where the Java client puts them (murmur2)
INSERT INTO insert_meta (k, v) VALUES
  ('21', 'a'), ('foobar', 'b'), ('a-little-bit-long-string', 'c'),
  ('a-little-bit-longer-string', 'd'),
  ('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', 'e'), ('abc', 'f');
-- RETURNING sees the partition and offset the broker assigned
INSERT INTO insert_meta (k, v) VALUES ('foobar', 'g') RETURNING p, o, k, v, ts IS NOT NULL AS stamped;
INSERT INTO insert_meta (p, v) VALUES (3, 'h'), (3, 'i') RETURNING p, o, v;

SELECT p, o, k, v,
       CASE WHEN k = 'explicit' THEN ts::text ELSE (ts > 1700000000000)::text END AS ts, h
  FROM insert_read(:'brokers', 'insert_meta')
  ORDER BY v;

-- a timestamp without time zone is in the session's TimeZone
CREATE FOREIGN TABLE insert_ts (ts timestamp OPTIONS (timestamp 'true'), v text)
  SERVER insert_srv OPTIONS (topic 'insert_ts');
SET timezone = 'Europe/Berlin';
INSERT INTO insert_ts VALUES ('2024-01-01 01:00:00', 'local time');
-- RETURNING gives the timestamp the message was stamped with
CREATE TEMP TABLE insert_stamped AS
  WITH i AS (INSERT INTO insert_ts VALUES (NULL, 'stamped') RETURNING ts)
  SELECT ts FROM i;
SELECT ts BETWEEN localtimestamp - interval '1 hour' AND localtimestamp AS near_now
  FROM insert_stamped;
SET timezone = 'UTC';
SELECT v, CASE WHEN v LIKE '%local time%' THEN ts::text
               ELSE (ts = (SELECT extract(epoch FROM ts AT TIME ZONE 'Europe/Berlin') * 1000
                           FROM insert_stamped))::text END AS ts
  FROM insert_read(:'brokers', 'insert_ts');

-- a key of type bytea or jsonb is its bytes or its JSON text
CREATE FOREIGN TABLE insert_keys (
  kb bytea OPTIONS (key 'true'),
  v text
) SERVER insert_srv OPTIONS (topic 'insert_raw', format 'raw');
INSERT INTO insert_keys VALUES ('\x6b6579', 'bytea key'), (NULL, 'no key');

--
-- raw: the one data column's bytes; NULL is a null value (a tombstone)
--
CREATE FOREIGN TABLE insert_raw_text (
  k jsonb OPTIONS (key 'true'),
  v text
) SERVER insert_srv OPTIONS (topic 'insert_raw', format 'raw');
INSERT INTO insert_raw_text VALUES ('{"id": 1}', 'plain text, not "JSON"'), ('{"id": 2}', NULL);
CREATE FOREIGN TABLE insert_raw_bytea (v bytea)
  SERVER insert_srv OPTIONS (topic 'insert_raw', format 'raw');
INSERT INTO insert_raw_bytea VALUES ('\x68656c6c6f');
CREATE FOREIGN TABLE insert_raw_jsonb (v jsonb)
  SERVER insert_srv OPTIONS (topic 'insert_raw', format 'raw');
INSERT INTO insert_raw_jsonb VALUES ('{"b": 2, "a": 1}');

SELECT o, k, v, v IS NULL AS tombstone FROM insert_read(:'brokers', 'insert_raw');

--
-- csv: one line by the table's CSV options, without the line end
--
CREATE FOREIGN TABLE insert_csv (
  k text OPTIONS (key 'true'),
  a int, b text, c numeric, d boolean
) SERVER insert_srv OPTIONS (topic 'insert_csv', format 'csv');
INSERT INTO insert_csv VALUES
  ('1', 1, 'plain', 1.5, true),
  ('2', 2, 'with, comma', NULL, false),
  ('3', NULL, 'with "quotes"', 0, NULL),
  ('4', 4, '', -1, true),
  ('5', 5, E'two\nlines', 2, false);
CREATE FOREIGN TABLE insert_csv_opts (
  a int, b text, c text
) SERVER insert_srv OPTIONS (topic 'insert_csv', format 'csv',
                             delimiter '|', quote '''', escape '\', null 'NULL');
INSERT INTO insert_csv_opts VALUES
  (6, 'a|b', NULL), (7, 'it''s', 'back\slash'), (8, 'NULL', '');

SELECT k, v FROM insert_read(:'brokers', 'insert_csv');

--
-- COPY FROM publishes too
--
CREATE FOREIGN TABLE insert_copy (k text OPTIONS (key 'true'), n int, s text)
  SERVER insert_srv OPTIONS (topic 'insert_copy');
COPY insert_copy FROM STDIN WITH (FORMAT csv);
c1,1,first
c2,2,second
c3,3,"third, with comma"
\.
-- batches: INSERT ... SELECT in batches of batch_size
ALTER FOREIGN TABLE insert_copy OPTIONS (ADD batch_size '7');
INSERT INTO insert_copy SELECT 'b' || i, i, 'batch' FROM generate_series(1, 50) i;
SELECT count(*), count(DISTINCT k), min(o), max(o) FROM insert_read(:'brokers', 'insert_copy');
SELECT k, v FROM insert_read(:'brokers', 'insert_copy') WHERE o < 4;

--
-- a full local queue waits for room: a queue of 5 messages publishes 300
--
CREATE SERVER insert_smallq FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "queue.buffering.max.messages" '5');
CREATE USER MAPPING FOR PUBLIC SERVER insert_smallq;
CREATE FOREIGN TABLE insert_queue (n int)
  SERVER insert_smallq OPTIONS (topic 'insert_queue');
INSERT INTO insert_queue SELECT i FROM generate_series(1, 300) i;
SELECT count(*), min((v::jsonb->>'n')::int), max((v::jsonb->>'n')::int),
       bool_and((v::jsonb->>'n')::int = o + 1) AS in_order
  FROM insert_read(:'brokers', 'insert_queue');

-- rows routed to a foreign partition of a partitioned table
CREATE TABLE insert_routed (region text, n int) PARTITION BY LIST (region);
CREATE FOREIGN TABLE insert_routed_eu PARTITION OF insert_routed
  FOR VALUES IN ('eu') SERVER insert_srv OPTIONS (topic 'insert_queue');
CREATE TABLE insert_routed_us PARTITION OF insert_routed FOR VALUES IN ('us');
INSERT INTO insert_routed VALUES ('eu', 1001), ('us', 1002), ('eu', 1003);
SELECT * FROM insert_routed_us;
-- EXPLAIN without ANALYZE publishes nothing
EXPLAIN (COSTS OFF) INSERT INTO insert_queue VALUES (2000);
SELECT o, v FROM insert_read(:'brokers', 'insert_queue') WHERE o >= 299;

--
-- without the option transactional, a statement publishes whatever the
-- transaction does next
--
BEGIN;
INSERT INTO insert_copy VALUES ('rolled back', 0, 'still published');
ROLLBACK;
SELECT k, v FROM insert_read(:'brokers', 'insert_copy') WHERE k = 'rolled back';

--
-- transactional: nothing is sent before COMMIT, nothing at all on ROLLBACK
--
CREATE SERVER insert_txn FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', transactional 'true');
CREATE USER MAPPING FOR PUBLIC SERVER insert_txn;
CREATE FOREIGN TABLE insert_tx (k text OPTIONS (key 'true'), n int,
  p int OPTIONS (partition 'true'), o bigint OPTIONS (offset 'true'))
  SERVER insert_txn OPTIONS (topic 'insert_tx');
CREATE FOREIGN TABLE insert_tx_other (k text OPTIONS (key 'true'), n int)
  SERVER insert_txn OPTIONS (topic 'insert_tx_other');

INSERT INTO insert_tx VALUES ('autocommit', 1);
BEGIN;
INSERT INTO insert_tx VALUES ('rolled back', 2);
ROLLBACK;
BEGIN;
INSERT INTO insert_tx VALUES ('first of two tables', 3);
INSERT INTO insert_tx_other VALUES ('second of two tables', 4);
-- held until commit: nothing to read yet, even uncommitted
SELECT count(*) FROM insert_read(:'brokers', 'insert_tx', 'read_uncommitted')
  WHERE k = 'first of two tables';
COMMIT;
-- savepoints: a rolled-back subtransaction's messages are discarded
BEGIN;
INSERT INTO insert_tx VALUES ('before savepoint', 5);
SAVEPOINT s1;
INSERT INTO insert_tx VALUES ('in rolled-back savepoint', 6);
SAVEPOINT s2;
INSERT INTO insert_tx VALUES ('in nested savepoint', 7);
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s3;
INSERT INTO insert_tx VALUES ('in released savepoint', 8);
RELEASE SAVEPOINT s3;
-- held messages have no offset yet; a key gives the partition
INSERT INTO insert_tx VALUES ('after savepoint', 9) RETURNING k, n, p, o;
COMMIT;
-- an error in a subtransaction discards what it held
DO $$
BEGIN
  BEGIN
    INSERT INTO insert_tx VALUES ('in failed block', 10);
    PERFORM 1 / 0;
  EXCEPTION WHEN division_by_zero THEN
    INSERT INTO insert_tx VALUES ('in exception handler', 11);
  END;
END
$$;

SELECT p, k, v FROM insert_read(:'brokers', 'insert_tx', 'read_uncommitted') ORDER BY (v::jsonb->>'n')::int;
SELECT k, v FROM insert_read(:'brokers', 'insert_tx_other', 'read_uncommitted');

-- two-phase commit is not supported
BEGIN;
INSERT INTO insert_tx VALUES ('prepared', 12);
PREPARE TRANSACTION 'insert_prepared';  -- ERROR
-- past transaction_hold_bytes, messages are streamed into the Kafka
-- transaction: then a rolled-back savepoint makes COMMIT fail
ALTER SERVER insert_txn OPTIONS (ADD transaction_hold_bytes '20');
BEGIN;
INSERT INTO insert_tx SELECT 'streamed', i FROM generate_series(13, 15) i;
SAVEPOINT s;
INSERT INTO insert_tx VALUES ('streamed in savepoint', 16);
ROLLBACK TO SAVEPOINT s;
COMMIT;  -- ERROR
BEGIN;
INSERT INTO insert_tx SELECT 'streamed and committed', i FROM generate_series(17, 19) i
  RETURNING k, n, p, o IS NOT NULL AS has_offset;
COMMIT;
SELECT insert_wait(:'brokers', 'insert_tx', 'streamed and%', 3);
SELECT k, v FROM insert_read(:'brokers', 'insert_tx') WHERE k LIKE 'streamed and%' ORDER BY (v::jsonb->>'n')::int;
SELECT count(*) FROM insert_read(:'brokers', 'insert_tx', 'read_uncommitted') WHERE k = 'prepared';

--
-- what INSERT publishes, SELECT on the same table reads back
--
CREATE FOREIGN TABLE insert_rt_json (
  k text OPTIONS (key 'true'), ts timestamptz OPTIONS (timestamp 'true'),
  h jsonb OPTIONS (headers 'true'),
  i int, n numeric, t text, b boolean, j jsonb, arr int[], d date,
  tsz timestamptz, f float8, renamed text OPTIONS (json 'Other')
) SERVER insert_srv OPTIONS (topic 'insert_rt_json');
INSERT INTO insert_rt_json VALUES
  ('a', '2024-01-01 00:00:00+00', '{"x": "1"}', 1, 1.50, 'text, "quoted"', true,
   '{"z": [1]}', '{1,2}', '2024-02-29', '2024-02-29 12:00:00+00', 0.1, 'r'),
  ('b', '2024-01-01 00:00:01+00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, 'NaN', NULL);
SELECT k, ts, h, i, n, t, b, j, arr, d, tsz, f, renamed FROM insert_rt_json ORDER BY k;
CREATE FOREIGN TABLE insert_rt_csv (k text OPTIONS (key 'true'), i int, t text, n numeric)
  SERVER insert_srv OPTIONS (topic 'insert_rt_csv', format 'csv');
INSERT INTO insert_rt_csv VALUES
  ('a', 1, 'x,y', 1.5), ('b', NULL, '', NULL), ('c', 3, E'two\nlines "q"', -2);
SELECT k, i, t, t IS NULL AS t_null, n FROM insert_rt_csv ORDER BY k;

--
-- an ordinary role publishes with the privileges it was granted
--
CREATE ROLE regress_insert_user;
GRANT INSERT ON insert_copy TO regress_insert_user;
SET ROLE regress_insert_user;
INSERT INTO insert_copy VALUES ('by a role', 1, 'granted');
INSERT INTO insert_json (k) VALUES ('not granted');  -- ERROR
RESET ROLE;
SELECT k, v FROM insert_read(:'brokers', 'insert_copy') WHERE k = 'by a role';
REVOKE ALL ON insert_copy FROM regress_insert_user;
DROP ROLE regress_insert_user;

--
-- errors
--
UPDATE insert_meta SET v = 'x';  -- ERROR
DELETE FROM insert_meta;  -- ERROR
INSERT INTO insert_meta (v) VALUES ('x') ON CONFLICT DO NOTHING;  -- ERROR
INSERT INTO insert_meta (p, v) VALUES (4, 'no such partition');  -- ERROR
INSERT INTO insert_meta (p, v) VALUES (-1, 'negative partition');  -- ERROR
INSERT INTO insert_meta (h, v) VALUES ('["not", "an object"]', 'bad headers');  -- ERROR
INSERT INTO insert_meta (ts, v) VALUES ('infinity', 'infinite timestamp');  -- ERROR
INSERT INTO insert_meta (ts, v) VALUES ('1960-01-01', 'before 1970');  -- ERROR
-- nothing of the failed statements was published
SELECT count(*) FROM insert_read(:'brokers', 'insert_meta');

-- a topic that does not exist, on a server that does not let producers
-- create topics
CREATE SERVER insert_nocreate FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "allow.auto.create.topics" 'false');
CREATE USER MAPPING FOR PUBLIC SERVER insert_nocreate;
CREATE FOREIGN TABLE insert_missing (v text)
  SERVER insert_nocreate OPTIONS (topic 'insert_no_such_topic');
INSERT INTO insert_missing VALUES ('x');  -- ERROR

-- a raw table that escaped the DDL check (event trigger disabled) is still
-- refused before anything is sent
ALTER EVENT TRIGGER kafka_fdw_check_table_ddl DISABLE;
CREATE FOREIGN TABLE insert_raw_bad (a text, b text)
  SERVER insert_srv OPTIONS (topic 'insert_raw', format 'raw');
CREATE FOREIGN TABLE insert_raw_comp (a insert_pair)
  SERVER insert_srv OPTIONS (topic 'insert_raw', format 'raw');
ALTER EVENT TRIGGER kafka_fdw_check_table_ddl ENABLE;
INSERT INTO insert_raw_bad VALUES ('a', 'b');  -- ERROR
INSERT INTO insert_raw_comp VALUES (ROW(1, 'x'));  -- ERROR
SELECT count(*) FROM insert_read(:'brokers', 'insert_raw');

DROP TABLE insert_routed;
DROP SERVER insert_srv, insert_txn, insert_nocreate, insert_smallq CASCADE;
DROP FUNCTION insert_read;
DROP TYPE insert_pair, insert_mood;
DROP DOMAIN insert_posint;
