/*-------------------------------------------------------------------------
 *
 * cdc.h
 *		  Change data capture: the launcher, the stream workers (their loop,
 *		  slot, snapshot and decoding), their delivery to Kafka, the change
 *		  events and the SQL functions
 *
 * IDENTIFICATION
 *		  src/cdc/cdc.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KFDW_CDC_H
#define KFDW_CDC_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "kafka/kafka.h"
#include "format/format.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "utils/jsonb.h"
#include "datatype/timestamp.h"

/* in launcher.c */

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
	char		kind;			/* KFDW_STREAM_CDC or KFDW_STREAM_INGEST */
	int			worker_no;		/* an ingest stream's worker: 0, 1, ... */
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

	/* ingest streams (ingest/worker.c): rows written, messages skipped */
	pg_atomic_uint64 rows;
	pg_atomic_uint64 skipped;
	TimestampTz last_batch_at;	/* last committed batch */
} KafkaCdcStream;

/* What a registry entry runs */
#define KFDW_STREAM_CDC		'c'	/* a change data capture stream */
#define KFDW_STREAM_INGEST	'i'	/* one worker of an ingest stream */

typedef struct KafkaCdcShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	bool		rescan;			/* launcher must look for streams again */
	KafkaCdcStream streams[FLEXIBLE_ARRAY_MEMBER];	/* kfdw_cdc_max_streams */
} KafkaCdcShared;

/* NULL unless the library was loaded by shared_preload_libraries */
extern KafkaCdcShared *kfdw_cdc_shared;
/* kafka_fdw.max_streams: entries of the registry, one worker each */
extern int	kfdw_cdc_max_streams;

extern void _PG_init(void);
extern int	kfdw_cdc_find_stream(Oid dboid, const char *name);
extern int	kfdw_cdc_register_stream(Oid dboid, const char *name);
extern int	kfdw_stream_find(char kind, Oid dboid, const char *name,
							 int worker_no);
extern int	kfdw_stream_register(char kind, Oid dboid, const char *name,
								 int worker_no);
extern void kfdw_cdc_wakeup_launcher(void);
extern const char *kfdw_cdc_state_name(KafkaCdcState state);
extern PGDLLEXPORT void kfdw_cdc_launcher_main(Datum main_arg);
extern PGDLLEXPORT void kfdw_cdc_scanner_main(Datum main_arg);

/* in options.c: cdc_create's options, Debezium's names and values */

typedef enum KafkaCdcTimeMode
{
	KFDW_TIME_ADAPTIVE,			/* Debezium's default */
	KFDW_TIME_ADAPTIVE_MICRO,	/* adaptive_time_microseconds */
	KFDW_TIME_CONNECT,
	KFDW_TIME_ISOSTRING
} KafkaCdcTimeMode;

typedef enum KafkaCdcDecimalMode
{
	KFDW_DECIMAL_PRECISE,
	KFDW_DECIMAL_DOUBLE,
	KFDW_DECIMAL_STRING
} KafkaCdcDecimalMode;

typedef enum KafkaCdcBinaryMode
{
	KFDW_BINARY_BYTES,
	KFDW_BINARY_BASE64,
	KFDW_BINARY_BASE64_URL,
	KFDW_BINARY_HEX
} KafkaCdcBinaryMode;

/* skipped.operations, a set of these bits */
#define KFDW_SKIP_CREATE	0x01
#define KFDW_SKIP_UPDATE	0x02
#define KFDW_SKIP_DELETE	0x04
#define KFDW_SKIP_TRUNCATE	0x08

typedef struct KafkaCdcOptions
{
	bool		schemas;		/* schemas.enable */
	KafkaCdcTimeMode time_mode;
	KafkaCdcDecimalMode decimal_mode;
	KafkaCdcBinaryMode binary_mode;
	bool		interval_string;	/* interval.handling.mode=string */
	bool		hstore_map;		/* hstore.handling.mode=map */
	char	   *placeholder;	/* unavailable.value.placeholder */
	int			skipped;		/* skipped.operations */
	bool		tombstones;		/* tombstones.on.delete */
	char	   *key_columns;	/* message.key.columns, or NULL */
	bool		txn_metadata;	/* provide.transaction.metadata */
	char	   *message_include;	/* message.prefix.include.list, or NULL */
	char	   *message_exclude;	/* message.prefix.exclude.list, or NULL */
} KafkaCdcOptions;

extern void kfdw_cdc_parse_options(Jsonb *options, KafkaCdcOptions *opts);
extern bool kfdw_cdc_op_skipped(const KafkaCdcOptions *opts, char op);
extern bool kfdw_cdc_message_wanted(const KafkaCdcOptions *opts,
									const char *prefix);
extern bool kfdw_cdc_list_matches(const char *list, const char *name);

/* in worker.c */

/* A stream, as its row in kafka_fdw.cdc_streams says, read by its worker */
typedef struct KafkaCdcConfig
{
	char	   *name;
	char	   *server;
	char	   *publication;
	char	   *slot_name;
	char	   *topic_prefix;
	char	   *dbname;			/* of the stream's database */
	bool		snapshot;
	bool		snapshot_done;
	KafkaCdcOptions opts;
	Oid			owner;			/* the stream's data work runs as this role */
} KafkaCdcConfig;

/* kafka_fdw.naptime: how long a worker sleeps when all WAL is read (ms) */
extern int	kfdw_cdc_naptime;

extern PGDLLEXPORT void kfdw_cdc_worker_main(Datum main_arg);

/*
 * Act as the stream's owner, in a security-restricted operation, until
 * SetUserIdAndSecContext(*save_userid, *save_sec_context).  Whatever may
 * run code that the owner of a table or a type controls is done so:
 * functions of a domain's CHECK, of a type's input and output, reached
 * while reading the snapshot, decoding or encoding.  A restricted
 * operation cannot SET ROLE or leave anything behind in the session; the
 * settings it changes are undone at the end of the transaction (decoding
 * always aborts its transaction; the snapshot's undoes them by its own
 * GUC nest level).  For a superuser-owned stream nothing changes but the
 * restriction.
 */
static inline void
kfdw_cdc_become_owner(Oid owner, Oid *save_userid, int *save_sec_context)
{
	GetUserIdAndSecContext(save_userid, save_sec_context);
	SetUserIdAndSecContext(owner,
						   *save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/* in slot.c */
struct LogicalDecodingContext;
extern char *kfdw_cdc_slot_name(Oid dboid, const char *name);
extern bool kfdw_cdc_slot_exists(const char *slot_name);
extern struct LogicalDecodingContext *kfdw_cdc_new_slot(const char *slot_name,
													  bool need_snapshot);
extern void kfdw_cdc_create_slot(const char *slot_name);
extern void kfdw_cdc_drop_slot(const char *slot_name);
extern void kfdw_cdc_drop_slot_when_released(const char *slot_name);

/* in snapshot.c */
extern void kfdw_cdc_snapshot(const KafkaCdcConfig *config);

/* in delivery.c */
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
							 StringInfo value, rd_kafka_headers_t *headers,
							 uint64 txn_id);
extern void kfdw_cdc_serve(int timeout_ms);
extern void kfdw_cdc_nap(int timeout_ms);
extern void kfdw_cdc_wait_delivered(void);
extern void kfdw_cdc_recover_state(void);

/* in schema.c and value.c: columns as Debezium's type mapping shows them */

/* source.version of the events */
#define KFDW_CDC_VERSION "1.0"

/* microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch */
#define EPOCH_SHIFT_USECS_FOR_SOURCE \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/* A table's count of events in a transaction, for its END event */
typedef struct KafkaCdcTxnCount
{
	char	   *collection;		/* "schema.table" */
	int64		count;
} KafkaCdcTxnCount;

/* How a column's values are written */
typedef enum KafkaCdcKind
{
	KFDW_KIND_INT16,
	KFDW_KIND_INT32,
	KFDW_KIND_INT64,
	KFDW_KIND_FLOAT32,
	KFDW_KIND_FLOAT64,
	KFDW_KIND_BOOL,
	KFDW_KIND_TEXT,				/* the type's output, as a string */
	KFDW_KIND_NUMERIC,
	KFDW_KIND_MONEY,
	KFDW_KIND_BYTEA,
	KFDW_KIND_UUID,
	KFDW_KIND_DATE,
	KFDW_KIND_TIME,
	KFDW_KIND_TIMETZ,
	KFDW_KIND_TIMESTAMP,
	KFDW_KIND_TIMESTAMPTZ,
	KFDW_KIND_INTERVAL,
	KFDW_KIND_JSON,
	KFDW_KIND_XML,
	KFDW_KIND_BIT1,				/* bit(1): a boolean */
	KFDW_KIND_BITS,
	KFDW_KIND_ENUM,
	KFDW_KIND_HSTORE,
	KFDW_KIND_POINT,
	KFDW_KIND_ARRAY
} KafkaCdcKind;

/* A column's type, domains resolved to their base type */
typedef struct KafkaCdcType
{
	KafkaCdcKind kind;
	Oid			typid;
	int32		typmod;
	Oid			typoutput;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	char	   *labels;			/* an enum's, comma-separated */
	struct KafkaCdcType *elem;	/* an array's elements */
} KafkaCdcType;

/* A column of a captured table, as events show it */
typedef struct KafkaCdcColumn
{
	char	   *name;
	Oid			typid;
	bool		iskey;			/* part of the message key */
	bool		isidentity;		/* in the replica identity (old rows) */
	bool		notnull;		/* a required field of the schema */
	Oid			typinput;		/* to read the text form of pgoutput */
	Oid			typioparam;
	KafkaCdcType type;
	char	   *default_json;	/* the field's "default", or NULL */
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
	char	   *key_schema;		/* Kafka Connect schemas, JSON */
	char	   *value_schema;
} KafkaCdcRelation;

/*
 * A row of a captured table.  A column not present is either unavailable
 * (an unchanged TOASTed value: the placeholder) or missing from an old row
 * that has only the identity columns (null, or a required field's zero).
 */
typedef struct KafkaCdcRow
{
	Datum	   *values;
	bool	   *isnull;
	bool	   *present;
	bool	   *unavailable;
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
	const char *snapshot;		/* "false", "true", "first", "last", ... */
	const char *txn_id;			/* transaction block's id, or NULL */
	int64		total_order;
	int64		collection_order;
} KafkaCdcSource;

/* the schemas of the source and transaction blocks, JSON */
extern const char *const kfdw_cdc_source_schema;
extern const char *const kfdw_cdc_txn_block_schema;

extern void kfdw_cdc_describe_relation(KafkaCdcRelation *rel,
									   const KafkaCdcOptions *opts,
									   const char *prefix);
extern void kfdw_cdc_append_field_schema(StringInfo buf, KafkaCdcType *type,
										 const KafkaCdcOptions *opts,
										 bool optional, const char *deflt,
										 const char *field);
extern void kfdw_cdc_append_value(StringInfo buf, KafkaCdcType *type,
								  const KafkaCdcOptions *opts, Datum value);
extern void kfdw_cdc_append_unavailable(StringInfo buf, KafkaCdcType *type,
										const KafkaCdcOptions *opts);
extern void kfdw_cdc_append_zero(StringInfo buf, KafkaCdcType *type);
extern bool kfdw_cdc_snapshot_values;

/* in event.c */
extern bool kfdw_cdc_encode_key(StringInfo buf, KafkaCdcRelation *rel,
								KafkaCdcRow *row, const KafkaCdcOptions *opts,
								bool schema);
extern void kfdw_cdc_encode_value(StringInfo buf, char op,
								  KafkaCdcRelation *rel,
								  KafkaCdcRow *before, KafkaCdcRow *after,
								  KafkaCdcSource *source,
								  const KafkaCdcOptions *opts);
extern void kfdw_cdc_encode_message(StringInfo key, StringInfo value,
									const char *prefix, const char *content,
									Size len, KafkaCdcSource *source,
									const KafkaCdcOptions *opts);
extern void kfdw_cdc_encode_txn(StringInfo key, StringInfo value,
								bool begin, const char *txn_id,
								TimestampTz ts, List *counts,
								int64 total, const KafkaCdcOptions *opts);
extern rd_kafka_headers_t *kfdw_cdc_headers(const char *prefix,
										 const char *keyname,
										 StringInfo keypayload);

/* in decode.c */
extern struct LogicalDecodingContext *kfdw_cdc_decode_start(const KafkaCdcConfig *config,
															MemoryContext cxt);
extern bool kfdw_cdc_decode_in_txn(void);
extern char *kfdw_cdc_topic(const KafkaCdcConfig *config, const char *nspname,
							const char *relname);

/* in api.c, besides the SQL-callable functions (ingest/api.c uses them too) */
extern void kfdw_cdc_run_as_superuser(const char *sql, int nargs,
									  Oid *argtypes, Datum *values,
									  const char *nulls);
extern bool kfdw_cdc_can_read_error(Oid owner);

#endif							/* KFDW_CDC_H */
