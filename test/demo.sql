--
-- test/demo.sql: kafka_fdw end to end (run by test/demo.sh)
--
-- psql variables: brokers (the embedded broker's bootstrap servers).
--
\set VERBOSITY default
\pset footer off

\echo ''
\echo '== 1. CREATE EXTENSION: the wrapper kafka_fdw, its functions in schema kafka_fdw'
CREATE EXTENSION IF NOT EXISTS kafka_fdw;
\dx kafka_fdw

\echo ''
\echo '== 2. CREATE SERVER: where the Kafka cluster is (plus any librdkafka property)'
CREATE SERVER kafka FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "compression.codec" 'lz4');

\echo ''
\echo '== 3. CREATE FOREIGN TABLE: topic demo_orders, JSON messages, with Kafka metadata columns'
CREATE FOREIGN TABLE orders (
  part     int         OPTIONS (partition 'true'),
  "offset" bigint      OPTIONS (offset 'true'),
  k        text        OPTIONS (key 'true'),
  ts       timestamptz OPTIONS (timestamp 'true'),
  id       int,
  customer text,
  amount   numeric
) SERVER kafka OPTIONS (topic 'demo_orders', format 'json');

\echo ''
\echo '== 4. INSERT: publish rows as messages (the key picks the partition)'
INSERT INTO orders (k, id, customer, amount) VALUES
  ('alice', 1, 'alice', 12.50),
  ('bob',   2, 'bob',   99.00),
  ('alice', 3, 'alice',  7.25),
  ('carol', 4, 'carol', 42.00);

\echo ''
\echo '== 5. SELECT: consume the topic back'
SELECT part, "offset", k, id, customer, amount FROM orders ORDER BY id;
SELECT customer, count(*), sum(amount) FROM orders GROUP BY customer ORDER BY customer;

\echo ''
\echo '== 6. CHANGE DATA CAPTURE: stream a table''s changes into Kafka (Debezium format)'
CREATE TABLE customers (id int PRIMARY KEY, name text, email text);
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com');
CREATE PUBLICATION shop FOR TABLE customers;
-- topics are <topic_prefix>.<schema>.<table>: here demo.public.customers
SELECT kafka_fdw.cdc_create(name => 'demo', server => 'kafka', publication => 'shop');

-- the stream's worker creates its slot and sends the snapshot (op "r");
-- wait (at most 30 s) until it streams, so that what follows are changes
CREATE FUNCTION pg_temp.wait_for_stream(min_sent int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '30 seconds';
BEGIN
  WHILE NOT EXISTS (SELECT FROM kafka_fdw.cdc_status
                    WHERE name = 'demo' AND state = 'streaming'
                      AND snapshot_done AND messages_sent >= min_sent) LOOP
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'stream "demo" did not reach % messages within 30 s', min_sent;
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
END
$$;
SELECT pg_temp.wait_for_stream(1);

INSERT INTO customers VALUES (2, 'Grace', 'grace@example.com');
UPDATE customers SET email = 'ada@lovelace.org' WHERE id = 1;
DELETE FROM customers WHERE id = 2;

-- wait until Kafka acknowledged the snapshot row, the three changes and
-- the delete's tombstone
SELECT pg_temp.wait_for_stream(5);

-- the change events, read back through a foreign table: each is Kafka
-- Connect's {"schema": ..., "payload": ...}, as Debezium writes it (the
-- delete's tombstone has no value)
CREATE FOREIGN TABLE customer_events (
  part int OPTIONS (partition 'true'),
  "offset" bigint OPTIONS (offset 'true'),
  v jsonb
) SERVER kafka OPTIONS (topic 'demo.public.customers', format 'raw');
SELECT part, "offset", v->'schema'->>'name' AS schema, v->'payload'->>'op' AS op,
       v->'payload'->'before' AS before, v->'payload'->'after' AS after
  FROM customer_events ORDER BY part, "offset";
SELECT name, state, messages_sent, lag_bytes, last_error FROM kafka_fdw.cdc_status;
