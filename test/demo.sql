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

-- CDC demo: added when CDC lands
