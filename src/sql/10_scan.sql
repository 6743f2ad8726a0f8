
/* kafka_fdw: reading topics (SELECT) */

-- The low and high watermark of every partition of a foreign table's topic
CREATE FUNCTION kafka_fdw.watermarks(tbl regclass,
                                     OUT "partition" integer,
                                     OUT low bigint,
                                     OUT high bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kafka_fdw_watermarks'
LANGUAGE C STRICT VOLATILE;
