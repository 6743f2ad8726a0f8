/* kafka_fdw: change data capture (part of the install script) */

/*
 * The streams of this database.  A row is written by cdc_create and
 * removed by cdc_drop; the launcher starts one worker per row.  Dumped with
 * the database, so that a restored database streams again (from a new
 * slot, and a new snapshot if the stream asked for one).
 */
CREATE TABLE kafka_fdw.cdc_streams (
    name          text PRIMARY KEY,
    server        text NOT NULL,
    publication   text NOT NULL,
    slot_name     text NOT NULL UNIQUE,
    topic_prefix  text NOT NULL,
    snapshot      boolean NOT NULL,
    snapshot_done boolean NOT NULL DEFAULT false,
    options       jsonb NOT NULL DEFAULT '{}',
    owner         regrole NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);

/* a stream restored by pg_restore starts like one made by cdc_create */
CREATE FUNCTION kafka_fdw.cdc_streams_inserted()
RETURNS trigger
AS 'MODULE_PATHNAME', 'kafka_fdw_cdc_streams_inserted'
LANGUAGE C;

/* only kafka_fdw.cdc_streams may fire it (checked); no one else attaches it */
REVOKE EXECUTE ON FUNCTION kafka_fdw.cdc_streams_inserted() FROM PUBLIC;

CREATE TRIGGER cdc_streams_inserted AFTER INSERT ON kafka_fdw.cdc_streams
  FOR EACH ROW EXECUTE FUNCTION kafka_fdw.cdc_streams_inserted();

/* non-superusers with REPLICATION create streams and read their status */
GRANT USAGE ON SCHEMA kafka_fdw TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.cdc_streams', '');

GRANT SELECT ON kafka_fdw.cdc_streams TO PUBLIC;

CREATE FUNCTION kafka_fdw.cdc_create(name text,
                                     server text,
                                     publication text,
                                     topic_prefix text DEFAULT NULL,
                                     snapshot boolean DEFAULT true,
                                     options jsonb DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'kafka_fdw_cdc_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION kafka_fdw.cdc_drop(name text)
RETURNS void
AS 'MODULE_PATHNAME', 'kafka_fdw_cdc_drop'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION kafka_fdw.cdc_worker_status(
    OUT name text,
    OUT state text,
    OUT pid integer,
    OUT messages_sent bigint,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT undelivered_lsn pg_lsn,
    OUT oldest_undelivered_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kafka_fdw_cdc_worker_status'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW kafka_fdw.cdc_status AS
SELECT s.name,
       s.server,
       s.publication,
       s.slot_name,
       s.topic_prefix,
       coalesce(w.state, 'stopped') AS state,
       r.confirmed_flush_lsn AS confirmed_lsn,
       -- WAL owed: from the oldest change Kafka does not have (the slot may
       -- be confirmed past the start of a transaction whose commit was not)
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
            ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(),
                                            LEAST(r.confirmed_flush_lsn,
                                                  w.undelivered_lsn))::bigint
       END AS lag_bytes,
       w.oldest_undelivered_at,
       pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)
         w.oldest_undelivered_at AS undelivered_age,
       coalesce(w.messages_sent, 0) AS messages_sent,
       w.last_error,
       w.last_error_at,
       w.pid AS worker_pid,
       s.snapshot,
       s.snapshot_done
  FROM kafka_fdw.cdc_streams s
  LEFT JOIN kafka_fdw.cdc_worker_status() w ON w.name OPERATOR(pg_catalog.=) s.name
  LEFT JOIN pg_catalog.pg_replication_slots r
    ON r.slot_name OPERATOR(pg_catalog.=) s.slot_name;

GRANT SELECT ON kafka_fdw.cdc_status TO PUBLIC;
