/* kafka_fdw: the foreign data wrapper (core part of the install script) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION kafka_fdw" to load this file. \quit

CREATE FUNCTION kafka_fdw.kafka_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'kafka_fdw_handler'
LANGUAGE C STRICT;

CREATE FUNCTION kafka_fdw.kafka_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'kafka_fdw_validator'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER kafka_fdw
  HANDLER kafka_fdw.kafka_fdw_handler
  VALIDATOR kafka_fdw.kafka_fdw_validator;

/*
 * Column types and meta-column options can only be checked once the whole
 * table is known, so an event trigger checks every kafka_fdw table that a
 * CREATE/ALTER FOREIGN TABLE or IMPORT FOREIGN SCHEMA touched.
 */
CREATE FUNCTION kafka_fdw.check_table_ddl()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kafka_fdw_check_table_ddl'
LANGUAGE C;

CREATE EVENT TRIGGER kafka_fdw_check_table_ddl ON ddl_command_end
  WHEN TAG IN ('CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'ALTER TABLE',
               'IMPORT FOREIGN SCHEMA')
  EXECUTE FUNCTION kafka_fdw.check_table_ddl();

/*
 * A validator is not told which server a user mapping is for, so an event
 * trigger checks each user mapping's credentials together with its
 * server's options, as librdkafka will be configured with them.
 */
CREATE FUNCTION kafka_fdw.check_mapping_ddl()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kafka_fdw_check_mapping_ddl'
LANGUAGE C;

CREATE EVENT TRIGGER kafka_fdw_check_mapping_ddl ON ddl_command_end
  WHEN TAG IN ('CREATE USER MAPPING', 'ALTER USER MAPPING')
  EXECUTE FUNCTION kafka_fdw.check_mapping_ddl();
