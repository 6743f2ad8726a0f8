--
-- Pushdown of values known only when the scan runs: the outputs of
-- initplans (uncorrelated subqueries) and values of outer rows, and ORs of
-- offset ranges in one partition.  EXPLAIN ANALYZE's "Messages Fetched"
-- says how much was read.
--
\getenv brokers KAFKA_BROKERS
\set VERBOSITY default

CREATE SERVER pd_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER pd_srv;

-- 20 messages in each of 2 partitions: n = 100 * partition + offset
CREATE FOREIGN TABLE pd (
  p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  n int
) SERVER pd_srv OPTIONS (topic 'scan_pd');
\! for p in 0 1; do for i in $(seq 0 19); do echo "{\"n\": $((p * 100 + i))}"; done | kcat -P -b "$KAFKA_BROKERS" -t scan_pd -p $p; done

CREATE TABLE sink (part int, offs bigint);
INSERT INTO sink VALUES (0, 16), (1, 3);

-- the incremental query: only the messages after the sink's last offset
EXPLAIN (COSTS OFF)
  SELECT p, o FROM pd WHERE p = 0 AND o > (SELECT max(offs) FROM sink WHERE part = 0);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT p, o FROM pd WHERE p = 0 AND o > (SELECT max(offs) FROM sink WHERE part = 0);
SELECT p, o, n FROM pd WHERE p = 0 AND o > (SELECT max(offs) FROM sink WHERE part = 0);

-- a partition from a subquery
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT count(*) FROM pd WHERE p = (SELECT 1);
SELECT count(*), min(n), max(n) FROM pd WHERE p = (SELECT 1);

-- NULL from the subquery: the comparison is not true, nothing is read
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT * FROM pd WHERE o > (SELECT max(offs) FROM sink WHERE part = 7);
SELECT count(*) FROM pd WHERE o > (SELECT max(offs) FROM sink WHERE part = 7);
-- under an OR, the other branch still reads
SELECT p, o FROM pd
  WHERE o > (SELECT max(offs) FROM sink WHERE part = 7) OR (p = 1 AND o = 19);
-- NOT IN / <> are not pushed down: filtered here, with SQL's NULL rules
SELECT count(*) FROM pd WHERE p = 0 AND o <> (SELECT max(offs) FROM sink WHERE part = 7);

-- an OR of two offset ranges in one partition reads the two, not their hull
EXPLAIN (COSTS OFF) SELECT * FROM pd WHERE p = 0 AND (o < 2 OR o >= 18);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT * FROM pd WHERE p = 0 AND (o < 2 OR o >= 18);
SELECT p, o, n FROM pd WHERE p = 0 AND (o < 2 OR o >= 18) ORDER BY o;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT * FROM pd WHERE o IN (1, 5, 17) OR (p = 1 AND o BETWEEN 8 AND 9);
SELECT p, o FROM pd WHERE o IN (1, 5, 17) OR (p = 1 AND o BETWEEN 8 AND 9)
  ORDER BY p, o;
-- with a LIMIT
SELECT p, o FROM pd WHERE p = 1 AND (o < 2 OR o >= 18) LIMIT 3;

-- values of an outer row: the ranges are computed again for each
EXPLAIN (COSTS OFF)
  SELECT s.part, (SELECT count(*) FROM pd WHERE p = s.part AND o > s.offs)
  FROM sink s;
SELECT s.part, (SELECT count(*) FROM pd WHERE p = s.part AND o > s.offs)
  FROM sink s ORDER BY s.part;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  SELECT s.part, (SELECT count(*) FROM pd WHERE p = s.part AND o > s.offs)
  FROM sink s;

-- a prepared statement whose subquery changes between executions
PREPARE q AS SELECT count(*) FROM pd WHERE p = 0 AND o > (SELECT max(offs) FROM sink WHERE part = 0);
EXECUTE q;
UPDATE sink SET offs = 18 WHERE part = 0;
EXECUTE q;
DEALLOCATE q;

DROP TABLE sink;
DROP SERVER pd_srv CASCADE;
