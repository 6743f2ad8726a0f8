/*-------------------------------------------------------------------------
 *
 * kafka_fdw.h
 *		  Internal declarations shared by the files of kafka_fdw
 *
 * IDENTIFICATION
 *		  src/kafka_fdw.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAFKA_FDW_H
#define KAFKA_FDW_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "compat.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "access/xlogdefs.h"
#include "nodes/pg_list.h"
#include "storage/lwlock.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

/* Default for the server option connect_timeout_ms (interactive SQL: seconds) */
#define KFDW_DEFAULT_CONNECT_TIMEOUT_MS 5000
/* Default for message.timeout.ms unless the server sets it */
#define KFDW_DEFAULT_MESSAGE_TIMEOUT_MS 30000
/* Default for the server option transaction_hold_bytes */
#define KFDW_DEFAULT_TRANSACTION_HOLD_BYTES (16 * 1024 * 1024)

/* The message formats of a foreign table's values */
typedef enum KafkaFormat
{
	KAFKA_FORMAT_JSON,
	KAFKA_FORMAT_CSV,
	KAFKA_FORMAT_RAW
} KafkaFormat;

/* What a foreign table column holds */
typedef enum KafkaColumnKind
{
	KAFKA_COL_DATA,				/* a field of the message value */
	KAFKA_COL_PARTITION,
	KAFKA_COL_OFFSET,
	KAFKA_COL_KEY,
	KAFKA_COL_TIMESTAMP,
	KAFKA_COL_HEADERS,
	KAFKA_COL_JUNK,				/* raw message that could not be parsed */
	KAFKA_COL_JUNK_ERROR		/* why it could not be parsed */
} KafkaColumnKind;

/* One attribute of a foreign table, as its options describe it */
typedef struct KafkaColumn
{
	AttrNumber	attnum;
	char	   *attname;
	char	   *json_name;		/* JSON key for a data column (json format) */
	Oid			typid;
	int32		typmod;
	KafkaColumnKind kind;
	bool		dropped;
	int			data_index;		/* 0-based position among data columns, or -1 */
	bool		force_not_null; /* csv: the null string is a value */
	bool		force_null;		/* csv: the null string is NULL, quoted too */
} KafkaColumn;

/* Everything the options of a foreign table and its columns say */
typedef struct KafkaTableOptions
{
	Oid			relid;
	Oid			serverid;
	char	   *topic;
	KafkaFormat format;
	char		delimiter;		/* csv */
	char		quote;			/* csv */
	char		escape;			/* csv */
	char	   *null_string;	/* csv: string that means NULL */
	bool		strict;
	bool		ignore_junk;
	int			batch_size;
	int			buffer_delay;

	int			natts;			/* including dropped attributes */
	KafkaColumn *columns;		/* indexed by attnum - 1 */
	int			ndata;			/* number of data columns */

	/* attnum of each meta column, or InvalidAttrNumber */
	AttrNumber	partition_attnum;
	AttrNumber	offset_attnum;
	AttrNumber	key_attnum;
	AttrNumber	timestamp_attnum;
	AttrNumber	headers_attnum;
	AttrNumber	junk_attnum;
	AttrNumber	junk_error_attnum;
} KafkaTableOptions;

/* The options of a server that kafka_fdw itself interprets */
typedef struct KafkaServerOptions
{
	char	   *brokers;
	bool		transactional;
	int			connect_timeout_ms;
	int			transaction_hold_bytes;
} KafkaServerOptions;

/*
 * A librdkafka client handle, owned by the handle cache of connection.c.
 *
 * librdkafka's threads never call into PostgreSQL: logs and errors are put on
 * the handle's main queue and served by kfdw_serve_events() from the backend.
 */
typedef enum KafkaHandleKind
{
	KFDW_HANDLE_CONSUMER,		/* checked out by one scan at a time */
	KFDW_HANDLE_PRODUCER,		/* shared by all writers of a backend */
	KFDW_HANDLE_TXN_PRODUCER	/* transactional producer, one per backend */
} KafkaHandleKind;

typedef struct KafkaHandle
{
	rd_kafka_t *rk;
	KafkaHandleKind kind;
	Oid			serverid;
	Oid			userid;			/* user the mapping was looked up for */
	char	   *brokers;		/* for messages; never holds credentials */
	int			connect_timeout_ms;
	bool		busy;			/* checked out (consumers) */
	int			pins;			/* holders that keep it alive (producers) */
	bool		stale;			/* server or user mapping changed */
	/* last error reported by librdkafka's error callback */
	rd_kafka_resp_err_t last_err;
	char		last_errstr[512];
	bool		last_err_fatal;
	void	   *private;		/* for the owner of the handle */
} KafkaHandle;

/* in option.c */
extern void kfdw_get_server_options(ForeignServer *server,
									KafkaServerOptions *opts);
extern void kfdw_get_table_options(Oid relid, KafkaTableOptions *opts);
extern void kfdw_check_table(Oid relid);
extern rd_kafka_conf_t *kfdw_build_conf(ForeignServer *server,
										UserMapping *user,
										KafkaHandleKind kind);
extern bool kfdw_is_secret_option(const char *name);

/* in connection.c */
extern KafkaHandle *kfdw_acquire_handle(Oid serverid, Oid userid,
										KafkaHandleKind kind);
extern void kfdw_release_handle(KafkaHandle *handle);
extern void kfdw_discard_handle(KafkaHandle *handle);
extern void kfdw_pin_handle(KafkaHandle *handle);
extern void kfdw_unpin_handle(KafkaHandle *handle);
extern void kfdw_serve_events(KafkaHandle *handle);
extern int	kfdw_errcode(rd_kafka_resp_err_t err);
extern void kfdw_report_error(int elevel, KafkaHandle *handle,
							  rd_kafka_resp_err_t err,
							  const char *errstr,
							  const char *message);
extern void kfdw_wait(KafkaHandle *handle, int timeout_ms);
extern const rd_kafka_metadata_t *kfdw_get_metadata(KafkaHandle *handle,
													const char *topic);
extern rd_kafka_resp_err_t kfdw_offsets_for_times(KafkaHandle *handle,
												  rd_kafka_topic_partition_list_t *list,
												  int timeout_ms);

/* in kafka_fdw.c */
extern PGDLLEXPORT Datum kafka_fdw_handler(PG_FUNCTION_ARGS);

/* in planner.c */
extern void kfdw_set_plan_routines(FdwRoutine *routine);

/*
 * The pushdown of a scan, as planner.c hands it to scan.c in fdw_private:
 * a tree of Lists whose first element is an Integer KafkaPushdownKind.
 *	 AND/OR:	(kind, child, child, ...)
 *	 CMP:		(kind, field, strategy, index of the value in fdw_exprs)
 *	 TRUE:		(kind): a clause that is not pushed down (checked locally)
 * strategy is a btree strategy number, or 0 for "= ANY (array)".
 */
typedef enum KafkaPushdownKind
{
	KFDW_PD_AND,
	KFDW_PD_OR,
	KFDW_PD_CMP,
	KFDW_PD_TRUE
} KafkaPushdownKind;

typedef enum KafkaPushdownField
{
	KFDW_FIELD_PARTITION,
	KFDW_FIELD_OFFSET,
	KFDW_FIELD_TIMESTAMP
} KafkaPushdownField;

/* Indexes of the items of a ForeignScan's fdw_private */
enum KafkaFdwPrivateIndex
{
	KFDW_PRIV_PUSHDOWN,			/* pushdown tree, or NIL */
	KFDW_PRIV_TS_BOUNDS,		/* list of (strategy, index) timestamp bounds */
	KFDW_PRIV_ATTRS,			/* attnums the plan reads (Integer list) */
	KFDW_PRIV_LIMIT				/* Integer: rows the scan must return, or -1 */
};

/* One partition's range of offsets to read, [start, end) */
typedef struct KafkaPartitionRange
{
	int32		partition;
	int64		low;			/* watermarks at scan start */
	int64		high;
	int64		start;			/* what the scan reads */
	int64		end;
	int64		max_messages;	/* LIMIT pushed down: at most so many (0: all) */
	bool		probe_ts;		/* timestamp bound only checked locally */
} KafkaPartitionRange;

/* What a scan reads, decided when it starts */
typedef struct KafkaScanRanges
{
	int			nparts;			/* partitions of the topic */
	int			nranges;		/* partitions with something to read */
	KafkaPartitionRange *ranges;
	int			nskipped;		/* partitions with nothing to read */
	bool		limited;		/* ranges shortened by the LIMIT */
	TimestampTz ts_lower;		/* pushed-down timestamp bound, or NOBEGIN */
} KafkaScanRanges;

/* in ranges.c */
extern int	kfdw_topic_partitions(KafkaHandle *handle, const char *topic);
extern void kfdw_query_watermarks(KafkaHandle *handle, const char *topic,
								  int nparts, int64 *low, int64 *high);
extern void kfdw_compute_ranges(KafkaHandle *handle, const char *topic,
								List *pushdown, List *ts_bounds, int nvalues,
								Datum *values, bool *nulls, Oid *types,
								int64 limit, KafkaScanRanges *ranges);
extern double kfdw_estimate_messages(List *pushdown, List *values, int nparts,
									 int64 *low, int64 *high,
									 int *nsurviving);

/* in scan.c */
extern void kfdw_set_scan_routines(FdwRoutine *routine);
extern int	kfdw_sample_rows(Relation relation, int elevel, HeapTuple *rows,
							 int targrows, double *totalrows,
							 double *totaldeadrows);

/*
 * Decoding of message values into the columns of a row.  scan.c prepares a
 * KafkaDecoder per scan; the format files fill in the data columns.
 */
typedef struct KafkaColumnDecoder
{
	KafkaColumn *col;
	bool		needed;			/* read by the plan */
	FmgrInfo	infunc;
	Oid			ioparam;
	Oid			basetype;		/* type with domains looked through */
	char		category;		/* 'j' json, 'b' jsonb, 'x' bytea, 'a' array,
								 * 'c' composite, 's' anything else */
	bool		isolate;		/* input may hold resources when it fails: a
								 * junk error is caught in a subtransaction */
} KafkaColumnDecoder;

typedef struct KafkaDecoder
{
	KafkaTableOptions *opts;
	KafkaColumnDecoder *cols;	/* indexed by attnum - 1 */
	KafkaColumnDecoder **data;	/* data columns, by data_index */
	Datum	   *values;			/* of the row being made */
	bool	   *nulls;
	bool		tolerate_junk;	/* junk, junk_error or ignore_junk */
	char	   *junk_reason;	/* why the current message is junk, or NULL */
	const char *cur_column;		/* for the error context, or NULL */
	void	   *format_state;	/* owned by the format file */
	ResourceOwner input_owner;	/* of the column inputs caught without a
								 * subtransaction, or NULL */
} KafkaDecoder;

extern void kfdw_decoder_set(KafkaDecoder *dec, KafkaColumnDecoder *cd,
							 const char *str, bool json_text);
extern void kfdw_decoder_fail(KafkaDecoder *dec, KafkaColumnDecoder *cd,
							  const char *reason);

/* in modify.c */
extern void kfdw_set_modify_routines(FdwRoutine *routine);

/* in format_encode.c */

/*
 * Encodes rows of a foreign table into Kafka messages.  The fields after
 * the first group hold the last encoded row; its buffers are reused.
 */
typedef struct KafkaEncoder
{
	KafkaTableOptions *opts;
	AttrNumber *data_attnums;	/* attnum of each data column, by data_index */
	char	  **json_prefixes;	/* json: "name": of each data column */
	FmgrInfo   *out_functions;	/* csv: output function of each data column */
	Oid		   *basetypids;		/* base type of each attribute, by attnum - 1 */

	bool		has_key;
	StringInfoData key;
	bool		has_value;		/* false: a null value (tombstone) */
	StringInfoData value;
	int			nheaders;
	StringInfoData headers;		/* encoded for kfdw_make_headers() */
	int32		partition;		/* RD_KAFKA_PARTITION_UA: not given */
	int64		timestamp;		/* ms since the Unix epoch, 0: not given */
	StringInfoData scratch;
} KafkaEncoder;

extern void kfdw_encoder_init(KafkaEncoder *enc, KafkaTableOptions *opts);
extern void kfdw_encode_row(KafkaEncoder *enc, TupleTableSlot *slot);
extern rd_kafka_headers_t *kfdw_make_headers(const char *data, int len,
											 int count);

/* in publish.c */
typedef struct KafkaPublisher KafkaPublisher;

extern KafkaPublisher *kfdw_publisher_begin(Oid serverid, Oid userid,
											const char *topic);
extern int	kfdw_publisher_partitions(KafkaPublisher *pub);
extern bool kfdw_publisher_holds(KafkaPublisher *pub);
extern void kfdw_publish(KafkaPublisher *pub, KafkaEncoder *enc);
extern void kfdw_publisher_wait(KafkaPublisher *pub, int32 *partition,
								int64 *offset);
extern void kfdw_publisher_end(KafkaPublisher *pub);
extern void kfdw_delivery_report(rd_kafka_t *rk,
								 const rd_kafka_message_t *rkmessage,
								 void *opaque);

/* in format_json.c */
/*
 * Deepest nesting of arrays and objects a JSON message (or a JSON value of
 * a raw message, a CSV field or a key) may have, the top-level object
 * counting as one: deeper ones are junk, before any recursive parser sees
 * them.
 */
#define KFDW_JSON_MAX_DEPTH 1000

extern void kfdw_decode_json(KafkaDecoder *dec, char *data, int len);
extern bool kfdw_json_depth_ok(const char *data, int len);
extern char *kfdw_json_to_literal(const char *json, Oid typid);

/* in format_csv.c */
extern void kfdw_decode_csv(KafkaDecoder *dec, const char *data, int len);

/* in format_raw.c */
extern void kfdw_decode_raw(KafkaDecoder *dec, const char *data, int len);
extern void kfdw_decoder_set_bytes(KafkaDecoder *dec, KafkaColumnDecoder *cd,
								   const char *data, int len);

/* in json_encode.c */
extern void kfdw_json_append_datum(StringInfo buf, Datum value, bool isnull,
								   Oid typid);
extern void kfdw_json_append_string(StringInfo buf, const char *str);
extern int	kfdw_set_encoding_gucs(void);
extern void kfdw_reset_encoding_gucs(int nestlevel);
extern void kfdw_set_encoding_session_gucs(void);

/* in cdc_launcher.c */

/* Streams the shared registry can hold (one worker each) */
#define KFDW_CDC_MAX_STREAMS 64
#define KFDW_CDC_ERROR_LEN 512

/* What a stream's worker is doing, as kafka_fdw.cdc_status shows it */
typedef enum KafkaCdcState
{
	KFDW_CDC_STOPPED,			/* no worker */
	KFDW_CDC_STARTING,			/* worker started, not yet streaming */
	KFDW_CDC_SNAPSHOT,			/* publishing the initial snapshot */
	KFDW_CDC_STREAMING,
	KFDW_CDC_RETRYING,			/* after an error, until Kafka takes a message */
	KFDW_CDC_WAITING			/* a failed worker ended; waiting to restart */
} KafkaCdcState;

/*
 * One stream in shared memory: where it lives, its worker and its status.
 * Protected by KafkaCdcShared.lock, except confirmed_lsn and messages_sent:
 * atomics that the stream's worker writes without the lock (set up by
 * kfdw_cdc_register_stream).
 */
typedef struct KafkaCdcStream
{
	bool		in_use;
	bool		drop_requested; /* cdc_drop is stopping the worker */
	Oid			dboid;
	NameData	name;
	pid_t		pid;			/* worker, or 0 */
	KafkaCdcState state;
	pg_atomic_uint64 confirmed_lsn;
	pg_atomic_uint64 messages_sent;
	int			failures;		/* consecutive failed runs, for backoff */
	char		last_error[KFDW_CDC_ERROR_LEN];
	TimestampTz last_error_at;

	/*
	 * The oldest decoded transaction that Kafka does not have entirely:
	 * the position of its first published change, its commit and its
	 * commit time (all invalid/0 when everything decoded is delivered).
	 * Kept while no worker runs, until a later run has delivered it.
	 */
	XLogRecPtr	undelivered_lsn;
	XLogRecPtr	undelivered_commit;
	TimestampTz undelivered_at;
} KafkaCdcStream;

typedef struct KafkaCdcShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	bool		rescan;			/* launcher must look for streams again */
	KafkaCdcStream streams[KFDW_CDC_MAX_STREAMS];
} KafkaCdcShared;

/* NULL unless the library was loaded by shared_preload_libraries */
extern KafkaCdcShared *kfdw_cdc_shared;

extern void _PG_init(void);
extern int	kfdw_cdc_find_stream(Oid dboid, const char *name);
extern int	kfdw_cdc_register_stream(Oid dboid, const char *name);
extern void kfdw_cdc_wakeup_launcher(void);
extern const char *kfdw_cdc_state_name(KafkaCdcState state);
extern PGDLLEXPORT void kfdw_cdc_launcher_main(Datum main_arg);
extern PGDLLEXPORT void kfdw_cdc_scanner_main(Datum main_arg);

/* in cdc_worker.c */
extern PGDLLEXPORT void kfdw_cdc_worker_main(Datum main_arg);

/* in cdc_delivery.c */
extern void kfdw_cdc_delivery_init(KafkaCdcStream *entry, const char *name,
								   MemoryContext cxt);
extern void kfdw_cdc_set_state(KafkaCdcState state);
extern void kfdw_cdc_set_error(const char *message);
extern void kfdw_cdc_producer_create(const char *servername, Oid owner_id);
extern bool kfdw_cdc_producer_is_stale(void);
extern uint64 kfdw_cdc_txn_begin(XLogRecPtr first_lsn, XLogRecPtr commit_lsn,
								 TimestampTz commit_time);
extern void kfdw_cdc_txn_end(uint64 txn_id, XLogRecPtr end_lsn);
extern XLogRecPtr kfdw_cdc_txn_confirmable(bool *none_pending);
extern void kfdw_cdc_show_undelivered(XLogRecPtr confirmed);
extern void kfdw_cdc_produce(const char *topic, StringInfo key,
							 StringInfo value, uint64 txn_id);
extern void kfdw_cdc_serve(int timeout_ms);
extern void kfdw_cdc_wait_delivered(void);
extern void kfdw_cdc_recover_state(void);

/* in cdc_event.c */

/* source.version of the events */
#define KFDW_CDC_VERSION "1.0"

/* A column of a captured table, as events show it */
typedef struct KafkaCdcColumn
{
	char	   *name;
	Oid			typid;
	bool		iskey;			/* part of the message key */
	Oid			typinput;		/* to read the text form of pgoutput */
	Oid			typioparam;
} KafkaCdcColumn;

/* A captured table */
typedef struct KafkaCdcRelation
{
	Oid			relid;
	char	   *nspname;
	char	   *relname;
	char	   *topic;
	int			ncols;
	KafkaCdcColumn *cols;
	bool		has_key;
} KafkaCdcRelation;

/* A row of a captured table; present[i] false leaves the column out */
typedef struct KafkaCdcRow
{
	Datum	   *values;
	bool	   *isnull;
	bool	   *present;
} KafkaCdcRow;

/* What the source block of an event says */
typedef struct KafkaCdcSource
{
	const char *stream_name;
	const char *dbname;
	TimestampTz commit_time;
	TransactionId xid;
	XLogRecPtr	lsn;
	XLogRecPtr	last_commit_lsn;	/* for source.sequence, or invalid */
	const char *snapshot;		/* "false", "true" or "last" */
} KafkaCdcSource;

extern bool kfdw_cdc_encode_key(StringInfo buf, KafkaCdcRelation *rel,
								KafkaCdcRow *row);
extern void kfdw_cdc_encode_value(StringInfo buf, char op,
								  KafkaCdcRelation *rel,
								  KafkaCdcRow *before, KafkaCdcRow *after,
								  KafkaCdcSource *source);

/* in cdc_api.c */
struct LogicalDecodingContext;
extern struct LogicalDecodingContext *kfdw_cdc_new_slot(const char *slot_name,
													  bool need_snapshot);
extern char *kfdw_cdc_slot_name(Oid dboid, const char *name);
extern void kfdw_cdc_check_owner(const char *name, Oid owner,
								 const char *servername);

/* in functions.c */
extern PGDLLEXPORT Datum kafka_fdw_watermarks(PG_FUNCTION_ARGS);

#endif							/* KAFKA_FDW_H */
