/* kafka_fdw: decoding Debezium change events (part of the install script) */

/*
 * What the debezium mode of ingest streams makes of one event for a target
 * table: its op ('c', 'r', 'u', 'd', 't'; NULL for a message that is no
 * row change) and the row, as to_jsonb writes it, with only the columns
 * the event gives (an unchanged TOASTed value, Debezium's placeholder, is
 * left out).  options: Debezium's connector options that an event without
 * schema does not say (binary.handling.mode, decimal.handling.mode,
 * time.precision.mode, unavailable.value.placeholder).  Type input runs as
 * the caller, who needs SELECT on the target.
 */
CREATE FUNCTION kafka_fdw.debezium_decode(event text, target regclass,
    key text DEFAULT NULL, options jsonb DEFAULT '{}',
    OUT op text, OUT "row" jsonb)
RETURNS record
AS 'MODULE_PATHNAME', 'kafka_fdw_debezium_decode'
LANGUAGE C CALLED ON NULL INPUT STABLE;
