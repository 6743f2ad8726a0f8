/* kafka_fdw: ingest streams, topics into tables (part of the install script) */

/*
 * The ingest streams of this database, written by ingest_create and
 * removed by ingest_drop; the launcher starts the workers of every stream
 * that is not paused.  stop_error says why a stream stopped itself
 * (on_error = stop).  Dumped with the database, with the offsets.
 */
CREATE TABLE kafka_fdw.ingest_streams (
    name        text PRIMARY KEY,
    source      regclass NOT NULL,
    target      regclass NOT NULL,
    mode        text NOT NULL,
    options     jsonb NOT NULL DEFAULT '{}',
    owner       regrole NOT NULL,
    paused      boolean NOT NULL DEFAULT false,
    stop_error  text,
    stopped_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

/*
 * Where each partition goes on: written in the same transaction as the
 * rows of each batch.  high_watermark is the partition's end as the worker
 * last saw it, for the lag in ingest_status.
 */
CREATE TABLE kafka_fdw.ingest_offsets (
    name           text NOT NULL REFERENCES kafka_fdw.ingest_streams ON DELETE CASCADE,
    "partition"    integer NOT NULL,
    next_offset    bigint NOT NULL,
    high_watermark bigint,
    PRIMARY KEY (name, "partition")
);

SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.ingest_streams', '');
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.ingest_offsets', '');

GRANT SELECT ON kafka_fdw.ingest_streams TO PUBLIC;
GRANT SELECT ON kafka_fdw.ingest_offsets TO PUBLIC;

CREATE FUNCTION kafka_fdw.ingest_create(name text,
                                        source regclass,
                                        target regclass,
                                        mode text DEFAULT 'append',
                                        options jsonb DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'kafka_fdw_ingest_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION kafka_fdw.ingest_drop(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'kafka_fdw_ingest_drop'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION kafka_fdw.ingest_pause(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'kafka_fdw_ingest_pause'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION kafka_fdw.ingest_resume(name text, options jsonb DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'kafka_fdw_ingest_resume'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

/* a stream restored by pg_restore starts like one made by ingest_create */
CREATE FUNCTION kafka_fdw.ingest_streams_inserted()
RETURNS trigger
AS 'MODULE_PATHNAME', 'kafka_fdw_ingest_streams_inserted'
LANGUAGE C;

REVOKE EXECUTE ON FUNCTION kafka_fdw.ingest_streams_inserted() FROM PUBLIC;

CREATE TRIGGER ingest_streams_inserted AFTER INSERT ON kafka_fdw.ingest_streams
  FOR EACH ROW EXECUTE FUNCTION kafka_fdw.ingest_streams_inserted();

/* the workers of this database's streams, as shared memory knows them */
CREATE FUNCTION kafka_fdw.ingest_worker_status(
    OUT name text,
    OUT worker integer,
    OUT state text,
    OUT pid integer,
    OUT messages bigint,
    OUT "rows" bigint,
    OUT skipped bigint,
    OUT last_batch_at timestamptz,
    OUT last_error text,
    OUT last_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kafka_fdw_ingest_worker_status'
LANGUAGE C STRICT VOLATILE;

/* the stop error of a stream, to those who may read it */
CREATE FUNCTION kafka_fdw.ingest_stop_error(name text)
RETURNS text
AS 'MODULE_PATHNAME', 'kafka_fdw_ingest_stop_error'
LANGUAGE C STRICT STABLE;

/*
 * the lag of each partition: as of the last batch while the workers run,
 * none while one retries, Kafka's now while none runs (see api.c)
 */
CREATE FUNCTION kafka_fdw.ingest_lag(name text,
                                     OUT "partition" integer,
                                     OUT lag bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kafka_fdw_ingest_lag'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW kafka_fdw.ingest_status AS
SELECT s.name,
       s.source,
       s.target,
       s.mode,
       CASE WHEN s.paused OR w.name IS NULL THEN 'stopped'
            WHEN w.retrying THEN 'retrying'
            ELSE 'running' END AS state,
       s.paused,
       coalesce((s.options OPERATOR(pg_catalog.->>) 'workers')::integer, 1) AS workers,
       coalesce(w."rows", 0) AS rows_ingested,
       coalesce(w.messages, 0) AS messages_ingested,
       coalesce(w.skipped, 0) AS messages_skipped,
       o.lag,
       o.partition_lag,
       w.last_batch_at,
       coalesce(kafka_fdw.ingest_stop_error(s.name), w.last_error) AS last_error,
       coalesce(s.stopped_at, w.last_error_at) AS last_error_at,
       w.worker_pids
  FROM kafka_fdw.ingest_streams s
  LEFT JOIN (SELECT ws.name,
                    pg_catalog.bool_or(ws.state OPERATOR(pg_catalog.=) 'retrying') AS retrying,
                    pg_catalog.sum(ws."rows")::bigint AS "rows",
                    pg_catalog.sum(ws.messages)::bigint AS messages,
                    pg_catalog.sum(ws.skipped)::bigint AS skipped,
                    pg_catalog.max(ws.last_batch_at) AS last_batch_at,
                    (pg_catalog.array_agg(ws.last_error ORDER BY ws.last_error_at DESC NULLS LAST))[1] AS last_error,
                    pg_catalog.max(ws.last_error_at) AS last_error_at,
                    pg_catalog.array_agg(ws.pid ORDER BY ws.worker) FILTER (WHERE ws.pid IS NOT NULL) AS worker_pids
               FROM kafka_fdw.ingest_worker_status() ws
              GROUP BY ws.name) w ON w.name OPERATOR(pg_catalog.=) s.name
  LEFT JOIN LATERAL (SELECT pg_catalog.sum(l.lag)::bigint AS lag,
                            pg_catalog.jsonb_object_agg(l."partition"::text, l.lag) AS partition_lag
                       FROM kafka_fdw.ingest_lag(s.name) l) o ON true;

GRANT SELECT ON kafka_fdw.ingest_status TO PUBLIC;

/* DROP ... CASCADE of a stream's source, target or dead-letter table drops the stream */
CREATE FUNCTION kafka_fdw.ingest_dropped()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'kafka_fdw_ingest_dropped'
LANGUAGE C;

CREATE EVENT TRIGGER kafka_fdw_ingest_dropped ON sql_drop
  EXECUTE FUNCTION kafka_fdw.ingest_dropped();
