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
-- errors name the property as written, not as librdkafka's alias of it
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "linger.ms" 'soon');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "linger.ms" '99999999');  -- ERROR
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "message.timeout.ms" '-5');  -- ERROR

-- kafka_fdw's own server options
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', transactional 'maybe');  -- ERROR
\echo :SQLSTATE
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
ALTER SERVER kafka_srv OPTIONS (SET "compression.codec" 'zstd', ADD "acks" '1');  -- ERROR
ALTER SERVER kafka_srv OPTIONS (SET "compression.codec" 'zstd', ADD "acks" '1',
                                ADD "enable.idempotence" 'false');
SELECT option_name, option_value
  FROM pg_foreign_server, pg_options_to_table(srvoptions)
  WHERE srvname = 'kafka_srv' AND option_name <> 'brokers';

--
-- The whole configuration: librdkafka checks the clients the server makes
-- (consumer, producer, transactional producer) with kafka_fdw's defaults,
-- at CREATE/ALTER SERVER, without connecting anywhere
--
-- kafka_fdw's producers are idempotent: acks must be all
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', acks '1');  -- ERROR
\echo :SQLSTATE
-- a fetch must hold the largest message
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "fetch.max.bytes" '1000');  -- ERROR
-- transactions need idempotence: checked only for a transactional server
CREATE SERVER kafka_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers 'localhost:9092', transactional 'true',
           "enable.idempotence" 'false');  -- ERROR
CREATE SERVER kafka_notxn FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers 'localhost:9092', transactional 'false',
           "enable.idempotence" 'false');
ALTER SERVER kafka_notxn OPTIONS (SET transactional 'true');  -- ERROR
ALTER SERVER kafka_notxn OPTIONS (SET "enable.idempotence" 'true',
                                  SET transactional 'true');
DROP SERVER kafka_notxn;
-- a SASL server alone has no credentials yet: they come with user mappings
CREATE SERVER kafka_sasl FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers 'localhost:9092', "security.protocol" 'SASL_PLAINTEXT',
           "sasl.mechanisms" 'PLAIN');
-- a user mapping is checked with its server's options (by an event trigger)
CREATE USER MAPPING FOR CURRENT_USER SERVER kafka_sasl
  OPTIONS ("sasl.username" 'alice');  -- ERROR
\echo :SQLSTATE
CREATE USER MAPPING FOR CURRENT_USER SERVER kafka_sasl
  OPTIONS ("sasl.username" 'alice', "sasl.password" 'TopSecret0');
ALTER USER MAPPING FOR CURRENT_USER SERVER kafka_sasl
  OPTIONS (DROP "sasl.password");  -- ERROR
DROP USER MAPPING FOR CURRENT_USER SERVER kafka_sasl;
DROP SERVER kafka_sasl;

-- a superuser may set the properties that reach files, code and commands,
-- and memory sizes without kafka_fdw's bounds
CREATE SERVER kafka_su FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "ssl.ca.location" '/nonexistent/ca.pem',
           "debug" 'broker,topic', "sasl.kerberos.principal" 'client',
           "queue.buffering.max.kbytes" '2000000');
DROP SERVER kafka_su;
-- but not the signal
CREATE SERVER kafka_su FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "internal.termination.signal" '14');  -- ERROR
\echo :SQLSTATE

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
CREATE SERVER kafka_user_open FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "client.id" 'app', "socket.timeout.ms" '30000',
           "security.protocol" 'SASL_SSL', "sasl.mechanism" 'SCRAM-SHA-256',
           "ssl.endpoint.identification.algorithm" 'none',
           "isolation.level" 'read_uncommitted', "fetch.max.bytes" '104857600',
           "queued.max.messages.kbytes" '1048576', acks 'all', retries '3',
           "compression.type" 'zstd', "batch.size" '1000000',
           "queue.buffering.max.kbytes" '1048576',
           "queue.buffering.max.messages" '1000000');
DROP SERVER kafka_user_open;

-- the allow-list: a property that is not on it is superuser-only, however
-- harmless it looks, and so is every property a later librdkafka adds
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "statistics.interval.ms" '1000');  -- ERROR
\echo :SQLSTATE
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "receive.message.max.bytes" '2000000000');  -- ERROR
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "enable.random.seed" 'false');  -- ERROR

-- sizes of memory: bounded for non-superusers
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "queue.buffering.max.kbytes" '2000000');  -- ERROR
\echo :SQLSTATE
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "queued.max.messages.kbytes" '2000000');  -- ERROR
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "fetch.max.bytes" '104857601');  -- ERROR
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "queue.buffering.max.messages" '5000000');  -- ERROR

-- kafka_fdw owns the backend's signal handling: refused to everyone, with
-- any value (librdkafka would replace PostgreSQL's handler of the signal)
CREATE SERVER kafka_user_bad FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers :'brokers', "internal.termination.signal" '14');  -- ERROR
\echo :SQLSTATE
ALTER SERVER kafka_user_srv OPTIONS (ADD "internal.termination.signal" '0');  -- ERROR

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

-- every property of librdkafka 2.0.2 (its CONFIGURATION.md), tried by a
-- superuser and by this role: "open" (taken, or its value checked),
-- "superuser" (permission denied) or "refused" (reserved to kafka_fdw, a
-- credential, or the signal)
RESET ROLE;
CREATE FUNCTION regress_kafka_class(prop text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    EXECUTE format('CREATE SERVER regress_kafka_probe FOREIGN DATA WRAPPER kafka_fdw '
                   'OPTIONS (brokers %L, %I %L)', 'localhost:9092', prop, '1');
    RAISE EXCEPTION 'accepted';
  EXCEPTION
    WHEN raise_exception OR fdw_invalid_attribute_value THEN RETURN 'open';
    WHEN insufficient_privilege THEN RETURN 'superuser';
    WHEN fdw_invalid_option_name THEN RETURN 'refused';
  END;
END
$$;
CREATE TABLE regress_kafka_props AS
  SELECT unnest(string_to_array(
    'acks allow.auto.create.topics api.version.fallback.ms api.version.request '
    'api.version.request.timeout.ms auto.commit.enable auto.commit.interval.ms '
    'auto.offset.reset background_event_cb batch.num.messages batch.size '
    'bootstrap.servers broker.address.family broker.address.ttl '
    'broker.version.fallback builtin.features check.crcs client.id client.rack '
    'closesocket_cb compression.codec compression.level compression.type '
    'connect_cb connections.max.idle.ms consume.callback.max.messages consume_cb '
    'coordinator.query.interval.ms debug default_topic_conf '
    'delivery.report.only.error delivery.timeout.ms dr_cb dr_msg_cb '
    'enable.auto.commit enable.auto.offset.store enable.gapless.guarantee '
    'enable.idempotence enable.partition.eof enable.random.seed '
    'enable.sasl.oauthbearer.unsecure.jwt enable.ssl.certificate.verification '
    'enabled_events error_cb fetch.error.backoff.ms fetch.max.bytes '
    'fetch.message.max.bytes fetch.min.bytes fetch.wait.max.ms group.id '
    'group.instance.id group.protocol.type heartbeat.interval.ms interceptors '
    'internal.termination.signal isolation.level linger.ms log.connection.close '
    'log.queue log.thread.name log_cb log_level max.in.flight '
    'max.in.flight.requests.per.connection max.partition.fetch.bytes '
    'max.poll.interval.ms message.copy.max.bytes message.max.bytes '
    'message.send.max.retries message.timeout.ms metadata.broker.list '
    'metadata.max.age.ms msg_order_cmp oauthbearer_token_refresh_cb '
    'offset.store.method offset.store.path offset.store.sync.interval.ms '
    'offset_commit_cb opaque open_cb partition.assignment.strategy partitioner '
    'partitioner_cb plugin.library.paths produce.offset.report '
    'queue.buffering.backpressure.threshold queue.buffering.max.kbytes '
    'queue.buffering.max.messages queue.buffering.max.ms '
    'queued.max.messages.kbytes queued.min.messages queuing.strategy '
    'rebalance_cb receive.message.max.bytes reconnect.backoff.jitter.ms '
    'reconnect.backoff.max.ms reconnect.backoff.ms request.required.acks '
    'request.timeout.ms resolve_cb retries retry.backoff.ms sasl.kerberos.keytab '
    'sasl.kerberos.kinit.cmd sasl.kerberos.min.time.before.relogin '
    'sasl.kerberos.principal sasl.kerberos.service.name sasl.mechanism '
    'sasl.mechanisms sasl.oauthbearer.client.id sasl.oauthbearer.client.secret '
    'sasl.oauthbearer.config sasl.oauthbearer.extensions sasl.oauthbearer.method '
    'sasl.oauthbearer.scope sasl.oauthbearer.token.endpoint.url sasl.password '
    'sasl.username security.protocol session.timeout.ms socket.blocking.max.ms '
    'socket.connection.setup.timeout.ms socket.keepalive.enable socket.max.fails '
    'socket.nagle.disable socket.receive.buffer.bytes socket.send.buffer.bytes '
    'socket.timeout.ms socket_cb ssl.ca.certificate.stores ssl.ca.location '
    'ssl.ca.pem ssl.certificate.location ssl.certificate.pem '
    'ssl.certificate.verify_cb ssl.cipher.suites ssl.crl.location '
    'ssl.curves.list ssl.endpoint.identification.algorithm ssl.engine.id '
    'ssl.engine.location ssl.key.location ssl.key.password ssl.key.pem '
    'ssl.keystore.location ssl.keystore.password ssl.providers ssl.sigalgs.list '
    'ssl_ca ssl_certificate ssl_engine_callback_data ssl_key '
    'statistics.interval.ms stats_cb sticky.partitioning.linger.ms throttle_cb '
    'topic.blacklist topic.metadata.propagation.max.ms '
    'topic.metadata.refresh.fast.cnt topic.metadata.refresh.fast.interval.ms '
    'topic.metadata.refresh.interval.ms topic.metadata.refresh.sparse '
    'transaction.timeout.ms transactional.id', ' ')) AS prop;
GRANT SELECT ON regress_kafka_props TO regress_kafka_user;
SELECT count(*) AS properties FROM regress_kafka_props;
\pset format wrapped
\pset columns 100
SELECT regress_kafka_class(prop) AS class,
       string_agg(prop, ' ' ORDER BY prop) AS properties
  FROM regress_kafka_props GROUP BY 1 ORDER BY 1;
SET ROLE regress_kafka_user;
SELECT regress_kafka_class(prop) AS class,
       string_agg(prop, ' ' ORDER BY prop) AS properties
  FROM regress_kafka_props GROUP BY 1 ORDER BY 1;
\pset format aligned
RESET ROLE;
DROP FUNCTION regress_kafka_class(text);
DROP TABLE regress_kafka_props;
SET ROLE regress_kafka_user;

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
  OPTIONS (format 'csv', delimiter E'\n');  -- ERROR
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', null E'a\rb');  -- ERROR

-- CSV options must fit together as COPY requires, so that what is written
-- reads back the same
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', quote ',');  -- ERROR
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', delimiter ';', quote ';');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', null ',');  -- ERROR
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', delimiter '|', null 'a|b');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', null '"NULL"');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (format 'csv', quote '''', null 'it''s');  -- ERROR
-- they mean nothing to a json table, and are checked when it becomes csv
CREATE FOREIGN TABLE kt_csv_later (v text) SERVER kafka_srv
  OPTIONS (null ',');
ALTER FOREIGN TABLE kt_csv_later OPTIONS (ADD format 'csv');  -- ERROR
ALTER FOREIGN TABLE kt_csv_later OPTIONS (SET null '', ADD format 'csv');
DROP FOREIGN TABLE kt_csv_later;

-- options of adjust/kafka_fdw: num_partitions and encoding are accepted
-- and checked, and have no effect
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (num_partitions '0');  -- ERROR
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (encoding 'klingon');  -- ERROR
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_adjust (v text) SERVER kafka_srv
  OPTIONS (num_partitions '10', encoding 'UTF8', buffer_delay '100');
DROP FOREIGN TABLE kt_adjust;
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (batch_size '0');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (batch_size 'many');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (buffer_delay '-1');  -- ERROR
CREATE FOREIGN TABLE kt_bad (v text) SERVER kafka_srv
  OPTIONS (strict 'perhaps');  -- ERROR
\echo :SQLSTATE
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
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_bad (p int) SERVER kafka_srv;
ALTER FOREIGN TABLE kt_bad ALTER COLUMN p OPTIONS (ADD junk 'maybe');  -- ERROR
\echo :SQLSTATE
DROP FOREIGN TABLE kt_bad;

-- force_not_null and force_null (COPY's, for csv) take booleans too
CREATE FOREIGN TABLE kt_bad (v text OPTIONS (force_null 'sometimes')) SERVER kafka_srv;  -- ERROR
\echo :SQLSTATE
CREATE FOREIGN TABLE kt_force (
  a text OPTIONS (force_not_null 'true'),
  b text OPTIONS (force_null 'true', force_not_null 'false')
) SERVER kafka_srv OPTIONS (format 'csv');
DROP FOREIGN TABLE kt_force;

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
\echo :SQLSTATE


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
