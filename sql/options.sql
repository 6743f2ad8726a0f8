--
-- Option validation: servers, user mappings, foreign tables and columns.
-- Every mistake is reported when CREATE/ALTER runs, never at query time.
--
\getenv brokers KAFKA_BROKERS
\set VERBOSITY default

--
-- Servers
--

-- brokers is required, and must not be empty
CREATE SERVER kafka_nobrokers FOREIGN DATA WRAPPER kafka_fdw;  -- ERROR
CREATE SERVER kafka_nobrokers FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers '');  -- ERROR
\echo :SQLSTATE

-- an unknown name that is no librdkafka property either: hint lists the valid ones
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', borkers 'localhost:9092');  -- ERROR
\echo :SQLSTATE
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "no.such.property" '1');  -- ERROR

-- librdkafka checks the values of its properties
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "compression.codec" 'zzz');  -- ERROR
\echo :SQLSTATE
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "linger.ms" 'soon');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "message.timeout.ms" '-5');  -- ERROR

-- kafka_fdw's own server options
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', transactional 'maybe');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', connect_timeout_ms '0');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', transaction_hold_bytes '-1');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', brokers 'x:1');  -- ERROR

-- properties kafka_fdw sets itself
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "bootstrap.servers" 'x:1');  -- ERROR
\echo :SQLSTATE
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "metadata.broker.list" 'x:1');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "group.id" 'mine');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "transactional.id" 'mine');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "enable.auto.commit" 'true');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "log.queue" 'false');  -- ERROR

-- credentials belong in user mappings; their values never appear in errors
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "sasl.password" 'TopSecret1');  -- ERROR
\echo :SQLSTATE
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "ssl.key.password" 'TopSecret2');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "sasl.oauthbearer.client.secret" 'TopSecret3');  -- ERROR

-- the wrapper itself takes no options
ALTER FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'x:1');  -- ERROR

-- a good server, with librdkafka properties of every kind of value
CREATE SERVER kafka_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "compression.codec" 'lz4', "linger.ms" '5',
           "message.timeout.ms" '5000', "security.protocol" 'PLAINTEXT',
           "socket.keepalive.enable" 'true', connect_timeout_ms '10000',
           transactional 'false', transaction_hold_bytes '0');
ALTER SERVER kafka_srv OPTIONS (SET "compression.codec" 'zzz');  -- ERROR
ALTER SERVER kafka_srv OPTIONS (ADD "sasl.password" 'TopSecret4');  -- ERROR
ALTER SERVER kafka_srv OPTIONS (DROP brokers);  -- ERROR
ALTER SERVER kafka_srv OPTIONS (SET "compression.codec" 'zstd', ADD "acks" '1');
SELECT option_name, option_value
  FROM pg_foreign_server, pg_options_to_table(srvoptions)
  WHERE srvname = 'kafka_srv' AND option_name <> 'brokers';

-- a superuser may set the properties that reach files, code and commands
CREATE SERVER kafka_su FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "ssl.ca.location" '/nonexistent/ca.pem',
           "debug" 'broker,topic', "sasl.kerberos.principal" 'client');
DROP SERVER kafka_su;

--
-- Superuser-only properties, tried by a role that holds USAGE on the wrapper
--
CREATE ROLE regress_kafka_user;
GRANT USAGE ON FOREIGN DATA WRAPPER kafka_fdw TO regress_kafka_user;
SET ROLE regress_kafka_user;

-- harmless properties are open to everyone
CREATE SERVER kafka_user_srv FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "compression.codec" 'lz4', "linger.ms" '10',
           "message.timeout.ms" '5000', "client.rack" 'r1');

-- files, libraries, commands, URLs: insufficient privilege (SQLSTATE 42501)
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "plugin.library.paths" '/tmp/evil.so');  -- ERROR
\echo :SQLSTATE
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "sasl.kerberos.kinit.cmd" 'touch /tmp/x');  -- ERROR
\echo :SQLSTATE
ALTER SERVER kafka_user_srv OPTIONS (ADD "ssl.ca.location" '/etc/passwd');  -- ERROR
\echo :SQLSTATE
ALTER SERVER kafka_user_srv OPTIONS (ADD debug 'all');  -- ERROR
\echo :SQLSTATE

-- every one of them, through CREATE SERVER and ALTER SERVER
DO $$
DECLARE
  prop text;
  how text;
BEGIN
  FOREACH prop IN ARRAY ARRAY[
    'plugin.library.paths', 'sasl.kerberos.kinit.cmd', 'sasl.kerberos.keytab',
    'sasl.kerberos.principal', 'ssl.ca.location', 'ssl.key.location',
    'ssl.certificate.location', 'ssl.crl.location', 'ssl.keystore.location',
    'ssl.engine.location', 'ssl.engine.id', 'ssl.providers',
    'ssl.ca.certificate.stores', 'sasl.oauthbearer.token.endpoint.url',
    'sasl.oauthbearer.config', 'sasl.oauthbearer.method', 'debug',
    'offset.store.path', 'offset.store.method']
  LOOP
    FOREACH how IN ARRAY ARRAY['create', 'alter']
    LOOP
      BEGIN
        IF how = 'create' THEN
          EXECUTE format('CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw '
                         'OPTIONS (brokers %L, %I %L)', 'localhost:9092', prop, 'x');
        ELSE
          EXECUTE format('ALTER SERVER kafka_user_srv OPTIONS (ADD %I %L)', prop, 'x');
        END IF;
        RAISE NOTICE '% %: accepted', how, prop;
      EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE '% %: % %', how, prop, SQLSTATE, SQLERRM;
      END;
    END LOOP;
  END LOOP;
END
$$;

-- SASL GSSAPI (Kerberos) runs the kinit command with the server's own
-- credentials: superusers only.  It is librdkafka's default mechanism, so a
-- SASL protocol without sasl.mechanisms is refused too.
CREATE SERVER kafka_gssapi FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers 'localhost:9092', "security.protocol" 'SASL_PLAINTEXT');  -- ERROR
\set VERBOSITY sqlstate
CREATE SERVER kafka_gssapi FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers 'localhost:9092', "security.protocol" 'SASL_PLAINTEXT');  -- ERROR
\set VERBOSITY default
CREATE SERVER kafka_gssapi FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers 'localhost:9092', "security.protocol" 'sasl_ssl',
           "sasl.mechanisms" 'gssapi');  -- ERROR
CREATE SERVER kafka_gssapi FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers 'localhost:9092', "security.protocol" 'SASL_SSL',
           "sasl.mechanisms" 'SCRAM-SHA-512');
ALTER SERVER kafka_gssapi OPTIONS (DROP "sasl.mechanisms");  -- ERROR
DROP SERVER kafka_gssapi;

-- a server that a superuser set up with such a property, then gave away:
-- its new owner cannot alter it (the validator sees every option)
RESET ROLE;
CREATE SERVER kafka_given FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', debug 'broker');
ALTER SERVER kafka_given OWNER TO regress_kafka_user;
SET ROLE regress_kafka_user;
ALTER SERVER kafka_given OPTIONS (ADD "linger.ms" '1');  -- ERROR
\echo :SQLSTATE
ALTER SERVER kafka_given OPTIONS (DROP debug);
ALTER SERVER kafka_given OPTIONS (ADD "linger.ms" '1');
DROP SERVER kafka_given;
RESET ROLE;

--
-- User mappings: credentials only
--
CREATE USER MAPPING FOR regress_kafka_user SERVER kafka_srv
  OPTIONS ("sasl.username" 'alice', "sasl.password" 'TopSecret5',
           "ssl.key.password" 'TopSecret6');
CREATE USER MAPPING FOR CURRENT_USER SERVER kafka_srv
  OPTIONS ("compression.codec" 'lz4');  -- ERROR
\echo :SQLSTATE
CREATE USER MAPPING FOR CURRENT_USER SERVER kafka_srv
  OPTIONS (brokers 'x:1');  -- ERROR
CREATE USER MAPPING FOR CURRENT_USER SERVER kafka_srv
  OPTIONS ("ssl.ca.location" '/etc/passwd');  -- ERROR
ALTER USER MAPPING FOR regress_kafka_user SERVER kafka_srv
  OPTIONS (SET "sasl.password" 'TopSecret7',
           ADD "ssl.keystore.password" 'TopSecret9', ADD "ssl.key.pem" 'TopSecret10');
ALTER USER MAPPING FOR regress_kafka_user SERVER kafka_srv
  OPTIONS (ADD "debug" 'all');  -- ERROR
SELECT count(*) AS credentials FROM pg_user_mappings, unnest(umoptions)
  WHERE srvname = 'kafka_srv' AND usename = 'regress_kafka_user';

-- errors about credentials never show their values (message, detail or
-- hint).  librdkafka builds without OAuth/OIDC (Debian's) reject the oauthbearer
-- credentials with an error that must not repeat the value; builds with it
-- accept them.
DO $$
DECLARE
  stmt text;
  msg text;
  detail text;
  hint text;
BEGIN
  FOREACH stmt IN ARRAY ARRAY[
    'ALTER SERVER kafka_srv OPTIONS (ADD "sasl.password" ''TopSecret11'')',
    'ALTER SERVER kafka_srv OPTIONS (ADD "ssl.keystore.password" ''TopSecret12'')',
    'CREATE USER MAPPING FOR CURRENT_USER SERVER kafka_srv OPTIONS ("sasl.passwd" ''TopSecret13'')',
    'ALTER USER MAPPING FOR regress_kafka_user SERVER kafka_srv OPTIONS (ADD "sasl.oauthbearer.client.secret" ''TopSecret14'')',
    'ALTER USER MAPPING FOR regress_kafka_user SERVER kafka_srv OPTIONS (ADD "sasl.oauthbearer.client.id" ''TopSecret15'')']
  LOOP
    BEGIN
      EXECUTE stmt;
      msg := '';
      detail := '';
      hint := '';
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
                              hint = PG_EXCEPTION_HINT;
    END;
    RAISE NOTICE '%: secret shown: %',
      regexp_replace(stmt, '''[^'']*''', '''...''', 'g'),
      concat(msg, detail, hint) LIKE '%TopSecret%';
  END LOOP;
END
$$;

--
-- Foreign tables
--
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (colour 'red');  -- ERROR
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'xml');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (topic '');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', delimiter ';;');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', quote '');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', escape E'\n');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (batch_size '0');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (batch_size 'many');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (buffer_delay '-1');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (strict 'perhaps');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (ignore_junk 'sometimes');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS ("compression.codec" 'lz4');  -- ERROR

-- every table option
CREATE FOREIGN TABLE kt_csv (
  part int OPTIONS (partition 'true'),
  offs bigint OPTIONS (offset 'true'),
  k text OPTIONS (key 'true'),
  ts timestamptz OPTIONS (timestamp 'true'),
  h jsonb OPTIONS (headers 'true'),
  j text OPTIONS (junk 'true'),
  je text OPTIONS (junk_error 'true'),
  a int,
  b text
) SERVER kafka_srv
  OPTIONS (topic 'csv_topic', format 'csv', delimiter ';', quote '''',
           escape '\', null 'NULL', strict 'true', ignore_junk 'false',
           batch_size '500', buffer_delay '0');
ALTER FOREIGN TABLE kt_csv OPTIONS (SET delimiter '||');  -- ERROR
ALTER FOREIGN TABLE kt_csv OPTIONS (SET batch_size '-3');  -- ERROR
ALTER FOREIGN TABLE kt_csv OPTIONS (ADD colour 'red');  -- ERROR
ALTER FOREIGN TABLE kt_csv OPTIONS (SET delimiter '|', SET strict 'off');
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'kt_csv'::regclass;

--
-- Columns
--
CREATE FOREIGN TABLE kt_bad (v text OPTIONS (colour 'red')) SERVER kafka_srv;  -- ERROR
\echo :SQLSTATE

-- meta columns of the wrong type
CREATE FOREIGN TABLE kt_bad (p text OPTIONS (partition 'true')) SERVER kafka_srv;  -- ERROR
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_bad (o int OPTIONS (offset 'true')) SERVER kafka_srv;  -- ERROR
CREATE FOREIGN TABLE kt_bad (k int OPTIONS (key 'true')) SERVER kafka_srv;  -- ERROR
CREATE FOREIGN TABLE kt_bad (t date OPTIONS (timestamp 'true')) SERVER kafka_srv;  -- ERROR
CREATE FOREIGN TABLE kt_bad (h json OPTIONS (headers 'true')) SERVER kafka_srv;  -- ERROR
CREATE FOREIGN TABLE kt_bad (j bytea OPTIONS (junk 'true')) SERVER kafka_srv;  -- ERROR
CREATE FOREIGN TABLE kt_bad (e int OPTIONS (junk_error 'true')) SERVER kafka_srv;  -- ERROR

-- meta column options take booleans
CREATE FOREIGN TABLE kt_bad (p int OPTIONS (partition 'yes please')) SERVER kafka_srv;  -- ERROR

-- one column of each kind, one kind per column
CREATE FOREIGN TABLE kt_bad (
  p1 int OPTIONS (partition 'true'),
  p2 int OPTIONS (partition 'true')
) SERVER kafka_srv;  -- ERROR
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_bad (
  x bigint OPTIONS (offset 'true', partition 'true')
) SERVER kafka_srv;  -- ERROR
CREATE FOREIGN TABLE kt_bad (
  k text OPTIONS (key 'true', junk 'true')
) SERVER kafka_srv;  -- ERROR

-- json names only data columns, and must not be empty
CREATE FOREIGN TABLE kt_bad (
  k text OPTIONS (key 'true', json 'the_key')
) SERVER kafka_srv;  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text OPTIONS (json '')) SERVER kafka_srv;  -- ERROR

-- raw format: one data column, of a type that holds the whole value
CREATE FOREIGN TABLE kt_bad (a text, b text) SERVER kafka_srv
  OPTIONS (format 'raw');  -- ERROR
CREATE FOREIGN TABLE kt_bad (a int) SERVER kafka_srv
  OPTIONS (format 'raw');  -- ERROR

-- good tables; meta columns may be off ('false'), domains count as their base type
CREATE DOMAIN kafka_part AS int;
CREATE FOREIGN TABLE kt_json (
  p kafka_part OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'),
  k jsonb OPTIONS (key 'true'),
  t timestamp OPTIONS (timestamp 'true'),
  not_meta int OPTIONS (junk 'false'),
  customer_id int OPTIONS (json 'customerId'),
  amount numeric
) SERVER kafka_srv;
CREATE FOREIGN TABLE kt_raw (
  k bytea OPTIONS (key 'true'),
  v bytea
) SERVER kafka_srv OPTIONS (format 'raw');

-- ALTER FOREIGN TABLE is checked too
ALTER FOREIGN TABLE kt_json ADD COLUMN p2 int OPTIONS (partition 'true');  -- ERROR
ALTER FOREIGN TABLE kt_json ALTER COLUMN o TYPE int;  -- ERROR
\echo :SQLSTATE
ALTER FOREIGN TABLE kt_json ALTER COLUMN amount OPTIONS (ADD timestamp 'true');  -- ERROR
ALTER FOREIGN TABLE kt_json ALTER COLUMN p OPTIONS (ADD json 'partition');  -- ERROR
ALTER FOREIGN TABLE kt_json ALTER COLUMN amount OPTIONS (ADD colour 'red');  -- ERROR
ALTER FOREIGN TABLE kt_raw ADD COLUMN extra text;  -- ERROR
ALTER FOREIGN TABLE kt_raw OPTIONS (SET format 'xml');  -- ERROR
ALTER FOREIGN TABLE kt_json OPTIONS (ADD format 'raw');  -- ERROR
ALTER FOREIGN TABLE kt_json ALTER COLUMN not_meta OPTIONS (SET junk 'true');  -- ERROR
ALTER FOREIGN TABLE kt_json ADD COLUMN h jsonb OPTIONS (headers 'true');
ALTER FOREIGN TABLE kt_json ALTER COLUMN not_meta OPTIONS (DROP junk);
ALTER FOREIGN TABLE kt_json ALTER COLUMN customer_id OPTIONS (SET json 'custId');
ALTER FOREIGN TABLE kt_json DROP COLUMN o;
ALTER FOREIGN TABLE kt_json ADD COLUMN o2 bigint OPTIONS (offset 'true');
SELECT attname, attfdwoptions FROM pg_attribute
  WHERE attrelid = 'kt_json'::regclass AND attnum > 0 AND NOT attisdropped
  ORDER BY attnum;

-- tables in other wrappers are left alone by kafka_fdw's checks
CREATE FOREIGN DATA WRAPPER regress_other_fdw;
CREATE SERVER regress_other_srv FOREIGN DATA WRAPPER regress_other_fdw;
CREATE FOREIGN TABLE other_t (p text OPTIONS (partition 'true'))
  SERVER regress_other_srv;

-- clean up
DROP FOREIGN TABLE other_t;
DROP SERVER regress_other_srv;
DROP FOREIGN DATA WRAPPER regress_other_fdw;
DROP FOREIGN TABLE kt_json, kt_raw, kt_csv;
DROP DOMAIN kafka_part;
DROP USER MAPPING FOR regress_kafka_user SERVER kafka_srv;
DROP SERVER kafka_user_srv;
DROP SERVER kafka_srv;
REVOKE USAGE ON FOREIGN DATA WRAPPER kafka_fdw FROM regress_kafka_user;
DROP ROLE regress_kafka_user;
