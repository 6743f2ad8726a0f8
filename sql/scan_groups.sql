--
-- Consumer groups of SELECT: a scan for a group starts where the group's
-- committed offsets say and commits what it read when the transaction
-- commits.  The committed offsets are read back by an independent client
-- (test/kafka/committed.py, confluent_kafka's Consumer.committed()).
--
\getenv brokers KAFKA_BROKERS
\getenv srcdir PG_ABS_SRCDIR
\set VERBOSITY default

CREATE SERVER grp_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER grp_srv;

CREATE FOREIGN TABLE grp_events (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  n int
) SERVER grp_srv OPTIONS (topic 'scan_grp', "group.id" 'regress_g1');

-- 5 messages in partition 0, 3 in partition 1
\! for i in 0 1 2 3 4; do echo "{\"n\": $i}"; done | kcat -P -b "$KAFKA_BROKERS" -t scan_grp -p 0
\! for i in 100 101 102; do echo "{\"n\": $i}"; done | kcat -P -b "$KAFKA_BROKERS" -t scan_grp -p 1

-- the group has no offsets yet: it starts at the low watermark
EXPLAIN (COSTS OFF) SELECT * FROM grp_events;
\! /usr/bin/python3 "$PG_ABS_SRCDIR/test/kafka/committed.py" "$KAFKA_BROKERS" regress_g1 scan_grp 2

-- the first SELECT reads everything, the second nothing
SELECT p, o, n FROM grp_events ORDER BY p, o;
\! /usr/bin/python3 "$PG_ABS_SRCDIR/test/kafka/committed.py" "$KAFKA_BROKERS" regress_g1 scan_grp 2
SELECT p, o, n FROM grp_events ORDER BY p, o;
EXPLAIN (COSTS OFF) SELECT * FROM grp_events;

-- new messages: only they are read
\! echo '{"n": 5}' | kcat -P -b "$KAFKA_BROKERS" -t scan_grp -p 0
SELECT p, o, n FROM grp_events ORDER BY p, o;

-- a rollback commits nothing: the same messages are read again
\! echo '{"n": 6}' | kcat -P -b "$KAFKA_BROKERS" -t scan_grp -p 0
BEGIN;
SELECT p, o, n FROM grp_events ORDER BY p, o;
ROLLBACK;
\! /usr/bin/python3 "$PG_ABS_SRCDIR/test/kafka/committed.py" "$KAFKA_BROKERS" regress_g1 scan_grp 2
-- and so does a subtransaction that rolls back
BEGIN;
SAVEPOINT s;
SELECT p, o, n FROM grp_events ORDER BY p, o;
ROLLBACK TO s;
COMMIT;
-- a subtransaction that commits commits with its transaction
BEGIN;
SAVEPOINT s;
SELECT p, o, n FROM grp_events ORDER BY p, o;
RELEASE s;
COMMIT;
SELECT p, o, n FROM grp_events ORDER BY p, o;
\! /usr/bin/python3 "$PG_ABS_SRCDIR/test/kafka/committed.py" "$KAFKA_BROKERS" regress_g1 scan_grp 2

-- a LIMIT that stops the scan early commits only what was read
\! for i in 7 8 9; do echo "{\"n\": $i}"; done | kcat -P -b "$KAFKA_BROKERS" -t scan_grp -p 0
SELECT p, o, n FROM grp_events WHERE p = 0 LIMIT 1;
\! /usr/bin/python3 "$PG_ABS_SRCDIR/test/kafka/committed.py" "$KAFKA_BROKERS" regress_g1 scan_grp 2
SELECT p, o, n FROM grp_events ORDER BY p, o;

-- pushed-down offsets still apply, from where the group stands
\! for i in 10 11 12; do echo "{\"n\": $i}"; done | kcat -P -b "$KAFKA_BROKERS" -t scan_grp -p 0
EXPLAIN (COSTS OFF) SELECT * FROM grp_events WHERE p = 0 AND o >= 11;
SELECT p, o, n FROM grp_events WHERE p = 0 AND o >= 11;
SELECT p, o, n FROM grp_events ORDER BY p, o;

--
-- The session's group: kafka_fdw.group_id, for tables without group.id
-- (the table's option wins); another group is independent
--
CREATE FOREIGN TABLE grp_any (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  n int
) SERVER grp_srv OPTIONS (topic 'scan_grp');
SELECT count(*) FROM grp_any;
SELECT count(*) FROM grp_any;
SET kafka_fdw.group_id = 'regress_g2';
SELECT count(*) FROM grp_any;
SELECT count(*) FROM grp_any;
-- the table's group.id wins
SELECT count(*) FROM grp_events;
RESET kafka_fdw.group_id;
SELECT count(*) FROM grp_any;
\! /usr/bin/python3 "$PG_ABS_SRCDIR/test/kafka/committed.py" "$KAFKA_BROKERS" regress_g2 scan_grp 2

-- a group scan never runs in parallel
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET cpu_tuple_cost = 100;  -- a few messages are worth sharing out
EXPLAIN (COSTS OFF) SELECT p, o FROM grp_any;
SET kafka_fdw.group_id = 'regress_g3';
EXPLAIN (COSTS OFF) SELECT p, o FROM grp_any;
-- planned without a group, run with one: refused
RESET kafka_fdw.group_id;
PREPARE par AS SELECT p, o FROM grp_any;
EXPLAIN (COSTS OFF) EXECUTE par;
SET kafka_fdw.group_id = 'regress_g3';
EXECUTE par;  -- ERROR
RESET kafka_fdw.group_id;
DEALLOCATE par;
RESET cpu_tuple_cost;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;

--
-- group.start 'latest': a group without offsets starts at the end
--
\! echo '{"n": 1}' | kcat -P -b "$KAFKA_BROKERS" -t scan_grp_latest
CREATE FOREIGN TABLE grp_latest (o bigint OPTIONS (offset 'true'), n int)
  SERVER grp_srv
  OPTIONS (topic 'scan_grp_latest', "group.id" 'regress_g4', "group.start" 'latest');
EXPLAIN (COSTS OFF) SELECT * FROM grp_latest;
SELECT * FROM grp_latest;
\! echo '{"n": 2}' | kcat -P -b "$KAFKA_BROKERS" -t scan_grp_latest
SELECT * FROM grp_latest;
SELECT * FROM grp_latest;

-- options are checked
ALTER FOREIGN TABLE grp_latest OPTIONS (SET "group.start" 'middle');  -- ERROR
ALTER FOREIGN TABLE grp_latest OPTIONS (SET "group.id" '');  -- ERROR
-- a group cannot be read in a prepared transaction
BEGIN;
SELECT * FROM grp_latest;
\! echo '{"n": 3}' | kcat -P -b "$KAFKA_BROKERS" -t scan_grp_latest
SELECT * FROM grp_latest;
PREPARE TRANSACTION 'regress_grp';  -- ERROR
SELECT * FROM grp_latest;

-- a non-superuser may set group.id
CREATE ROLE regress_grp_user;
GRANT USAGE ON FOREIGN SERVER grp_srv TO regress_grp_user;
GRANT CREATE ON SCHEMA public TO regress_grp_user;
SET ROLE regress_grp_user;
CREATE FOREIGN TABLE grp_user (o bigint OPTIONS (offset 'true'), n int)
  SERVER grp_srv OPTIONS (topic 'scan_grp_latest', "group.id" 'regress_g5');
SELECT * FROM grp_user;
SELECT * FROM grp_user;
DROP FOREIGN TABLE grp_user;
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM regress_grp_user;
REVOKE USAGE ON FOREIGN SERVER grp_srv FROM regress_grp_user;
DROP ROLE regress_grp_user;

DROP SERVER grp_srv CASCADE;
