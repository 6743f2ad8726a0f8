
/* kafka_fdw: reading topics (SELECT) */

-- The low and high watermark of every partition of a foreign table's topic
CREATE FUNCTION kafka_fdw.watermarks(tbl regclass,
                                     OUT "partition" integer,
                                     OUT low bigint,
                                     OUT high bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kafka_fdw_watermarks'
LANGUAGE C STRICT VOLATILE;

-- The same, under the name and column names of adjust/kafka_fdw
CREATE FUNCTION kafka_fdw.kafka_get_watermarks(rel regclass,
                                               OUT "partition" integer,
                                               OUT offset_low bigint,
                                               OUT offset_high bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kafka_fdw_watermarks'
LANGUAGE C STRICT VOLATILE;
