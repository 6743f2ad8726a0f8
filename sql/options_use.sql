--
-- Options that show when a table is used: CSV's quote and escape as COPY
-- has them, force_not_null/force_null, kafka_get_watermarks (adjust's
-- name), and signal handling that stays PostgreSQL's.
--
\getenv brokers KAFKA_BROKERS
\set VERBOSITY default

-- a server that tries to take over a signal is refused; one without it is
-- made instead (IF NOT EXISTS), and the rest of this file uses it
CREATE SERVER opt_use_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "internal.termination.signal" '14');  -- ERROR
CREATE SERVER IF NOT EXISTS opt_use_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER opt_use_srv;

-- messages written by an independent client (kcat), one per line
\! printf '%s\n' "'it''s',x" "N,'N',N,'N'" "'q\"uote',,,''" | kcat -P -b "$KAFKA_BROKERS" -t options_csv

-- a scan: the server's consumer now exists in this backend
CREATE FOREIGN TABLE opt_raw (v text) SERVER opt_use_srv
  OPTIONS (topic 'options_csv', format 'raw');
SELECT count(*) FROM opt_raw;

-- quote ' without escape: the escape is the quote, as in COPY, so '' is '
CREATE FOREIGN TABLE opt_csv (
  o bigint OPTIONS (offset 'true'),
  c1 text,
  c2 text,
  c3 text OPTIONS (force_not_null 'true'),
  c4 text OPTIONS (force_null 'true')
) SERVER opt_use_srv
  OPTIONS (topic 'options_csv', format 'csv', quote '''', null 'N');
SELECT o, c1, c2, c3, c4, c3 IS NULL AS c3_null, c4 IS NULL AS c4_null
  FROM opt_csv ORDER BY o;

-- the same messages with null '' (COPY's CSV default): an unquoted empty
-- field is NULL, unless force_not_null; a quoted one is not, unless
-- force_null
ALTER FOREIGN TABLE opt_csv OPTIONS (SET null '');
SELECT o, c2 IS NULL AS c2_null, c3 IS NULL AS c3_null, c4 IS NULL AS c4_null
  FROM opt_csv WHERE o = 2;
ALTER FOREIGN TABLE opt_csv ALTER COLUMN c3 OPTIONS (SET force_not_null 'false');
SELECT o, c3 IS NULL AS c3_null FROM opt_csv WHERE o = 2;

-- adjust/kafka_fdw's name and columns for the watermarks
SELECT * FROM kafka_fdw.kafka_get_watermarks('opt_csv');
SELECT * FROM kafka_fdw.watermarks('opt_csv');

-- after scans (the server's consumer exists), statement_timeout still
-- cancels a statement: no librdkafka handler took over its signal
SET statement_timeout = '300ms';
SELECT pg_sleep(5);  -- ERROR
RESET statement_timeout;

DROP FOREIGN TABLE opt_csv, opt_raw;
DROP USER MAPPING FOR PUBLIC SERVER opt_use_srv;
DROP SERVER opt_use_srv;
