/*-------------------------------------------------------------------------
 *
 * api.c
 *		  SQL-callable functions of ingest streams
 *
 * kafka_fdw.ingest_create() checks the source, the target and the options,
 * records the stream in kafka_fdw.ingest_streams, and has the launcher start
 * its workers once the transaction commits.  It also makes a view,
 * kafka_fdw."ingest stream NAME", that selects nothing from the source, the
 * target and the dead-letter table: PostgreSQL's own dependencies then
 * refuse to drop them while the stream exists, and DROP ... CASCADE drops
 * the view, which the event trigger kafka_fdw_ingest_dropped turns into
 * dropping the stream.
 *
 * ingest_drop(), ingest_pause() and ingest_resume() stop the workers (and
 * wait for them) before they change the row; the registry follows at
 * commit.
 *
 * IDENTIFICATION
 *		  src/ingest/api.c
 *
 *-------------------------------------------------------------------------
 */
#include "ingest/ingest.h"

#include "access/xact.h"
#include "utils/resowner.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "access/table.h"
#include "fdw/fdw.h"
#include "ingest/debezium.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* Longest stream name: "ingest stream NAME" must fit in NAMEDATALEN */
#define INGEST_MAX_NAME_LEN 48
/* Longest wait of each request for the lag of a stream no worker runs */
#define INGEST_LAG_TIMEOUT_MS 2000

PG_FUNCTION_INFO_V1(kafka_fdw_ingest_create);
PG_FUNCTION_INFO_V1(kafka_fdw_ingest_drop);
PG_FUNCTION_INFO_V1(kafka_fdw_ingest_pause);
PG_FUNCTION_INFO_V1(kafka_fdw_ingest_resume);
PG_FUNCTION_INFO_V1(kafka_fdw_ingest_worker_status);
PG_FUNCTION_INFO_V1(kafka_fdw_ingest_stop_error);
PG_FUNCTION_INFO_V1(kafka_fdw_ingest_lag);
PG_FUNCTION_INFO_V1(kafka_fdw_ingest_streams_inserted);
PG_FUNCTION_INFO_V1(kafka_fdw_ingest_dropped);

/* What the transaction's end does for the registry */
typedef struct PendingStart
{
	char	   *name;
	int			workers;
} PendingStart;

static List *pending_starts = NIL;	/* PendingStart: register at commit */
static List *pending_stops = NIL;	/* names: free their entries at commit */
static bool callbacks_registered = false;
static bool own_drop = false;	/* drop_view() is dropping a stream's view */

static void check_name(const char *name);
static int	live_high_watermarks(Oid source, Oid owner, int64 **high);
static void check_source(Oid source, Oid owner);
static Oid	check_dead_letter(KafkaIngestOptions *opts, Oid owner,
							  Jsonb **options);
static Oid	stream_owner(const char *name, Jsonb **options, Oid *source,
						 Oid *target, char **mode, bool *paused);
static void check_debezium_options(KafkaIngestOptions *opts,
								   KafkaIngestMode mode, Oid target);
static void check_may_manage(const char *name, Oid owner);
static void make_view(const char *name, Oid source, Oid target, Oid dead_letter);
static void drop_view(const char *name);
static void stop_workers(const char *name);
static void remember_start(const char *name, int workers);
static void remember_stop(const char *name);
static void register_callbacks(void);
static void ingest_xact_callback(XactEvent event, void *arg);

/*
 * kafka_fdw.ingest_create(name, source, target, mode, options)
 */
Datum
kafka_fdw_ingest_create(PG_FUNCTION_ARGS)
{
	char	   *name;
	Oid			source;
	Oid			target;
	char	   *mode;
	Jsonb	   *options;
	KafkaIngestMode m;
	KafkaIngestOptions opts;
	Oid			owner = GetUserId();
	Oid			dead_letter;
	int			i;

	for (i = 0; i < 3; i++)
	{
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"%s\" of ingest_create must not be null",
							i == 0 ? "name" : i == 1 ? "source" : "target")));
	}
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	source = PG_GETARG_OID(1);
	target = PG_GETARG_OID(2);
	mode = PG_ARGISNULL(3) ? "append" : text_to_cstring(PG_GETARG_TEXT_PP(3));
	options = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);

	if (kfdw_cdc_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kafka_fdw is not loaded through shared_preload_libraries"),
				 errdetail("Ingest streams run in background workers that only a preloaded library can start."),
				 errhint("Add kafka_fdw to shared_preload_libraries in postgresql.conf and restart the server.")));

	check_name(name);
	m = kfdw_ingest_parse_mode(mode);
	kfdw_ingest_parse_options(options, &opts);
	check_source(source, owner);
	kfdw_ingest_check_target(target, source, m, owner);
	dead_letter = check_dead_letter(&opts, owner, &options);
	check_debezium_options(&opts, m, target);

	SPI_connect();
	{
		Oid			argtypes[6] = {TEXTOID, OIDOID, OIDOID, TEXTOID, JSONBOID, OIDOID};
		Datum		values[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
		Oid			argtypes1[1] = {TEXTOID};
		Datum		values1[1] = {CStringGetTextDatum(name)};

		if (SPI_execute_with_args("SELECT 1 FROM kafka_fdw.ingest_streams "
								  "WHERE name OPERATOR(pg_catalog.=) $1",
								  1, argtypes1, values1, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up ingest stream \"%s\"", name);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("ingest stream \"%s\" already exists", name)));

		values[0] = CStringGetTextDatum(name);
		values[1] = ObjectIdGetDatum(source);
		values[2] = ObjectIdGetDatum(target);
		values[3] = CStringGetTextDatum(kfdw_ingest_mode_name(m));
		if (options)
			values[4] = JsonbPGetDatum(options);
		else
			values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
		values[5] = ObjectIdGetDatum(owner);
		kfdw_cdc_run_as_superuser("INSERT INTO kafka_fdw.ingest_streams "
								  "(name, source, target, mode, options, owner) "
								  "VALUES ($1, $2::pg_catalog.oid::pg_catalog.regclass, "
								  "$3::pg_catalog.oid::pg_catalog.regclass, $4, $5, "
								  "$6::pg_catalog.oid::pg_catalog.regrole)",
								  6, argtypes, values, nulls);
	}
	make_view(name, source, target, dead_letter);
	SPI_finish();

	PG_RETURN_VOID();
}

/* kafka_fdw.ingest_drop(name) */
Datum
kafka_fdw_ingest_drop(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	Oid			owner;

	owner = stream_owner(name, NULL, NULL, NULL, NULL, NULL);
	check_may_manage(name, owner);
	stop_workers(name);
	SPI_connect();
	kfdw_cdc_run_as_superuser("DELETE FROM kafka_fdw.ingest_streams "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL);
	drop_view(name);
	SPI_finish();
	PG_RETURN_VOID();
}

/* kafka_fdw.ingest_pause(name) */
Datum
kafka_fdw_ingest_pause(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	Oid			owner;

	owner = stream_owner(name, NULL, NULL, NULL, NULL, NULL);
	check_may_manage(name, owner);
	stop_workers(name);
	SPI_connect();
	kfdw_cdc_run_as_superuser("UPDATE kafka_fdw.ingest_streams SET paused = true "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * kafka_fdw.ingest_resume(name, options): start a paused or stopped stream
 * again, with options merged into its own (checked as by ingest_create).
 */
Datum
kafka_fdw_ingest_resume(PG_FUNCTION_ARGS)
{
	char	   *name;
	Jsonb	   *options = NULL;
	Jsonb	   *merged;
	Oid			owner;
	Oid			source;
	Oid			target;
	Oid			dead_letter;
	char	   *mode;
	bool		paused;
	KafkaIngestOptions opts;
	Oid			argtypes[2] = {TEXTOID, JSONBOID};
	Datum		values[2];

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"name\" of ingest_resume must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	owner = stream_owner(name, &options, &source, &target, &mode, &paused);
	check_may_manage(name, owner);

	merged = options;
	if (!PG_ARGISNULL(1))
		merged = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
													JsonbPGetDatum(options),
													PG_GETARG_DATUM(1)));
	kfdw_ingest_parse_options(merged, &opts);
	dead_letter = check_dead_letter(&opts, owner, &merged);
	check_debezium_options(&opts, kfdw_ingest_parse_mode(mode), target);

	stop_workers(name);
	values[0] = CStringGetTextDatum(name);
	values[1] = JsonbPGetDatum(merged);
	SPI_connect();
	/* the dependencies of the stream, with its dead-letter table */
	drop_view(name);
	make_view(name, source, target, dead_letter);
	kfdw_cdc_run_as_superuser("UPDATE kafka_fdw.ingest_streams "
							  "SET paused = false, stop_error = NULL, "
							  "stopped_at = NULL, options = $2 "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL);
	SPI_finish();
	remember_start(name, opts.workers);
	PG_RETURN_VOID();
}

/*
 * kafka_fdw.ingest_worker_status(): this database's ingest workers, as
 * shared memory knows them.  Last errors only to those who may read them.
 */
Datum
kafka_fdw_ingest_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *readable = NIL;
	bool		read_all = kfdw_cdc_can_read_error(InvalidOid);
	uint64		n;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (kfdw_cdc_shared == NULL)
		return (Datum) 0;

	SPI_connect();
	if (SPI_execute("SELECT name, owner::pg_catalog.oid FROM kafka_fdw.ingest_streams",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kafka_fdw.ingest_streams");
	for (n = 0; n < SPI_processed; n++)
	{
		bool		isnull;
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[n],
														   SPI_tuptable->tupdesc,
														   2, &isnull));

		if (!read_all && kfdw_cdc_can_read_error(owner))
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);

			readable = lappend(readable, pstrdup(SPI_getvalue(SPI_tuptable->vals[n],
															  SPI_tuptable->tupdesc, 1)));
			MemoryContextSwitchTo(oldcxt);
		}
	}
	SPI_finish();

	LWLockAcquire(kfdw_cdc_shared->lock, LW_SHARED);
	for (i = 0; i < kfdw_cdc_max_streams; i++)
	{
		KafkaCdcStream *s = &kfdw_cdc_shared->streams[i];
		Datum		values[10];
		bool		nulls[10] = {false};
		bool		may_read = read_all;
		const char *state;
		ListCell   *lc;

		if (!s->in_use || s->kind != KFDW_STREAM_INGEST ||
			s->dboid != MyDatabaseId)
			continue;
		foreach(lc, readable)
		{
			if (strcmp((char *) lfirst(lc), NameStr(s->name)) == 0)
				may_read = true;
		}
		if (s->state == KFDW_CDC_RETRYING || s->state == KFDW_CDC_WAITING)
			state = "retrying";
		else if (s->pid != 0)
			state = "running";
		else
			state = "stopped";
		values[0] = CStringGetTextDatum(NameStr(s->name));
		values[1] = Int32GetDatum(s->worker_no);
		values[2] = CStringGetTextDatum(state);
		values[3] = Int32GetDatum(s->pid);
		nulls[3] = (s->pid == 0);
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&s->messages_sent));
		values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&s->rows));
		values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&s->skipped));
		values[7] = TimestampTzGetDatum(s->last_batch_at);
		nulls[7] = (s->last_batch_at == 0);
		values[8] = CStringGetTextDatum(s->last_error);
		nulls[8] = (s->last_error[0] == '\0' || !may_read);
		values[9] = TimestampTzGetDatum(s->last_error_at);
		nulls[9] = (s->last_error_at == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(kfdw_cdc_shared->lock);

	return (Datum) 0;
}

/* kafka_fdw.ingest_stop_error(name): why the stream stopped, if readable */
Datum
kafka_fdw_ingest_stop_error(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	char	   *error = NULL;

	SPI_connect();
	if (SPI_execute_with_args("SELECT stop_error, owner::pg_catalog.oid "
							  "FROM kafka_fdw.ingest_streams "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc,
														   2, &isnull));
		char	   *e = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (e != NULL && kfdw_cdc_can_read_error(owner))
			error = SPI_palloc(strlen(e) + 1), strcpy(error, e);
	}
	SPI_finish();
	if (error == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(error));
}

/*
 * kafka_fdw.ingest_lag(name): the lag of each partition of a stream (its
 * high watermark minus its next offset), for ingest_status.
 *
 * While its workers run, the high watermarks are those stored with each
 * partition's last batch: a running worker commits a batch as soon as
 * messages come, so they are as fresh as the stream.  While a worker
 * retries (Kafka cannot be read), the lag is unknown: no rows.  While none
 * runs (paused, stopped), the high watermarks are asked from Kafka now,
 * with the owner's user mapping, for those who may read the stream's
 * errors only, each request waiting at most INGEST_LAG_TIMEOUT_MS: no rows
 * if Kafka does not answer.
 */
Datum
kafka_fdw_ingest_lag(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	bool		running = false;
	bool		retrying = false;
	Oid			owner = InvalidOid;
	Oid			source = InvalidOid;
	int			nrows = 0;
	int32	   *partition = NULL;
	int64	   *next = NULL;
	int64	   *stored = NULL;
	bool	   *stored_null = NULL;
	int64	   *live = NULL;
	int			nlive = 0;
	int			i;

	InitMaterializedSRF(fcinfo, 0);

	if (kfdw_cdc_shared != NULL)
	{
		LWLockAcquire(kfdw_cdc_shared->lock, LW_SHARED);
		for (i = 0; i < kfdw_cdc_max_streams; i++)
		{
			KafkaCdcStream *s = &kfdw_cdc_shared->streams[i];

			if (!s->in_use || s->kind != KFDW_STREAM_INGEST ||
				s->dboid != MyDatabaseId || strcmp(NameStr(s->name), name) != 0)
				continue;
			if (s->state == KFDW_CDC_RETRYING || s->state == KFDW_CDC_WAITING)
				retrying = true;
			else if (s->pid != 0)
				running = true;
		}
		LWLockRelease(kfdw_cdc_shared->lock);
	}
	if (retrying)
		return (Datum) 0;

	SPI_connect();
	if (SPI_execute_with_args("SELECT s.owner::pg_catalog.oid, s.source::pg_catalog.oid, "
							  "o.\"partition\", o.next_offset, o.high_watermark "
							  "FROM kafka_fdw.ingest_streams s "
							  "JOIN kafka_fdw.ingest_offsets o "
							  "ON o.name OPERATOR(pg_catalog.=) s.name "
							  "WHERE s.name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the offsets of ingest stream \"%s\"", name);
	nrows = (int) SPI_processed;
	if (nrows > 0)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);

		partition = palloc(sizeof(int32) * nrows);
		next = palloc(sizeof(int64) * nrows);
		stored = palloc(sizeof(int64) * nrows);
		stored_null = palloc(sizeof(bool) * nrows);
		MemoryContextSwitchTo(oldcxt);
	}
	for (i = 0; i < nrows; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		owner = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		source = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		partition[i] = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		next[i] = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		stored[i] = DatumGetInt64(SPI_getbinval(tup, desc, 5, &stored_null[i]));
	}
	SPI_finish();
	if (nrows == 0)
		return (Datum) 0;

	if (!running)
	{
		if (!kfdw_cdc_can_read_error(owner))
			return (Datum) 0;
		nlive = live_high_watermarks(source, owner, &live);
		if (nlive < 0)
			return (Datum) 0;
	}

	for (i = 0; i < nrows; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		int64		high;

		if (running)
		{
			if (stored_null[i])
				continue;
			high = stored[i];
		}
		else
		{
			if (partition[i] < 0 || partition[i] >= nlive)
				continue;
			high = live[partition[i]];
		}
		values[0] = Int32GetDatum(partition[i]);
		values[1] = Int64GetDatum(Max(high - next[i], 0));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * The high watermark of each partition of the source's topic, as Kafka
 * says now, asked with the owner's user mapping: returns the number of
 * partitions, or -1 (the error logged at DEBUG1) if Kafka does not answer
 * within INGEST_LAG_TIMEOUT_MS a request.  *high is palloc'd in the
 * caller's context.
 */
static int
live_high_watermarks(Oid source, Oid owner, int64 **high)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int nparts = -1;

	/* a failed request may leave a handle to discard: a subtransaction */
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		KafkaTableOptions opts;
		KafkaHandle *handle;
		int64	   *low;
		int			saved;

		kfdw_get_table_options(source, &opts);
		handle = kfdw_acquire_handle(opts.serverid, owner, KFDW_HANDLE_CONSUMER);
		saved = handle->connect_timeout_ms;
		handle->connect_timeout_ms = Min(saved, INGEST_LAG_TIMEOUT_MS);
		PG_TRY();
		{
			nparts = kfdw_topic_watermarks(handle, opts.topic, &low, high);
		}
		PG_FINALLY();
		{
			handle->connect_timeout_ms = saved;
		}
		PG_END_TRY();
		kfdw_release_handle(handle);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		/* a cancel is the caller's, not Kafka's */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		ereport(DEBUG1,
				(errmsg_internal("no lag for a stream without workers: %s",
								 edata->message)));
		FreeErrorData(edata);
		nparts = -1;
	}
	PG_END_TRY();
	return nparts;
}

/*
 * Trigger after INSERT on kafka_fdw.ingest_streams: a stream restored by
 * pg_restore starts at commit too.
 */
Datum
kafka_fdw_ingest_streams_inserted(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			nspoid = get_namespace_oid("kafka_fdw", true);
	Oid			relid = InvalidOid;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	KafkaIngestOptions opts;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"ingest_streams_inserted\" must be fired as a trigger")));
	if (OidIsValid(nspoid))
		relid = get_relname_relid("ingest_streams", nspoid);
	if (!OidIsValid(relid) || RelationGetRelid(trigdata->tg_relation) != relid)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"ingest_streams_inserted\" may only be fired by table kafka_fdw.ingest_streams")));

	tup = trigdata->tg_trigtuple;
	desc = trigdata->tg_relation->rd_att;
	d = heap_getattr(tup, 5, desc, &isnull);
	kfdw_ingest_parse_options(isnull ? NULL : DatumGetJsonbP(d), &opts);
	d = heap_getattr(tup, 7, desc, &isnull);
	if (isnull || !DatumGetBool(d))
		remember_start(SPI_getvalue(tup, desc, 1), opts.workers);
	return PointerGetDatum(tup);
}

/*
 * Event trigger at sql_drop: a stream's view went with DROP ... CASCADE of
 * its source, target or dead-letter table (or of their server): the
 * stream goes too.
 */
Datum
kafka_fdw_ingest_dropped(PG_FUNCTION_ARGS)
{
	uint64		i;
	List	   *names = NIL;
	ListCell   *lc;
	MemoryContext cxt = CurrentMemoryContext;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"ingest_dropped\" must be fired as an event trigger")));
	if (own_drop)
		PG_RETURN_NULL();

	SPI_connect();
	if (SPI_execute("SELECT pg_catalog.substr(object_name, 15) "
					"FROM pg_catalog.pg_event_trigger_dropped_objects() "
					"WHERE object_type OPERATOR(pg_catalog.=) 'view' "
					"AND schema_name OPERATOR(pg_catalog.=) 'kafka_fdw' "
					"AND object_name OPERATOR(pg_catalog.~~) 'ingest stream %'",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the dropped objects");
	for (i = 0; i < SPI_processed; i++)
	{
		MemoryContext spicxt = MemoryContextSwitchTo(cxt);

		names = lappend(names, pstrdup(SPI_getvalue(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1)));
		MemoryContextSwitchTo(spicxt);
	}
	SPI_finish();

	foreach(lc, names)
	{
		char	   *name = lfirst(lc);
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(name)};

		bool		deleted;

		stop_workers(name);
		SPI_connect();
		kfdw_cdc_run_as_superuser("DELETE FROM kafka_fdw.ingest_streams "
								  "WHERE name OPERATOR(pg_catalog.=) $1",
								  1, argtypes, values, NULL);
		deleted = (SPI_processed > 0);
		SPI_finish();
		if (deleted)
			ereport(NOTICE,
					(errmsg("drop cascades to ingest stream \"%s\"", name)));
	}
	PG_RETURN_NULL();
}

/* Stream names: lower-case letters, digits, underscores */
static void
check_name(const char *name)
{
	const char *p;

	if (name[0] == '\0' || strlen(name) > INGEST_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid ingest stream name \"%s\"", name),
				 errhint("A stream name has 1 to %d characters.", INGEST_MAX_NAME_LEN)));
	for (p = name; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("invalid ingest stream name \"%s\"", name),
					 errhint("A stream name may contain only lower case letters, digits and underscores.")));
	}
}

/* The source: a kafka_fdw foreign table the owner may read */
static void
check_source(Oid source, Oid owner)
{
	ForeignTable *ft;
	ForeignServer *server;
	ForeignDataWrapper *fdw;

	if (get_rel_relkind(source) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source \"%s\" is not a foreign table", get_rel_name(source)),
				 errdetail("An ingest stream reads a kafka_fdw foreign table.")));
	ft = GetForeignTable(source);
	server = GetForeignServer(ft->serverid);
	fdw = GetForeignDataWrapper(server->fdwid);
	if (!OidIsValid(fdw->fdwhandler) ||
		strcmp(get_func_name(fdw->fdwhandler), "kafka_fdw_handler") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source \"%s\" is not a kafka_fdw foreign table",
						get_rel_name(source))));
	if (pg_class_aclcheck(source, owner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for foreign table %s", get_rel_name(source))));
	if (KFDW_FOREIGN_SERVER_ACLCHECK(server->serverid, owner, ACL_USAGE) !=
		ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for foreign server %s", server->servername),
				 errhint("The stream consumes with USAGE on the server and your user mapping.")));
}

/*
 * The dead-letter table must exist, and the owner must be able to write to
 * it; *options gets its schema-qualified name, by which the worker finds it
 * whatever its search_path.
 */
static Oid
check_dead_letter(KafkaIngestOptions *opts, Oid owner, Jsonb **options)
{
	Oid			relid;
	StringInfoData buf;

	if (opts->dead_letter_table == NULL)
		return InvalidOid;
	relid = kfdw_ingest_dead_letter_relid(opts->dead_letter_table, true);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("dead-letter table \"%s\" does not exist",
						opts->dead_letter_table)));
	kfdw_ingest_check_dead_letter(relid, owner);
	opts->dead_letter_table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
														 get_rel_name(relid));
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"dead_letter.table\": ");
	escape_json(&buf, opts->dead_letter_table);
	appendStringInfoChar(&buf, '}');
	*options = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
												  JsonbPGetDatum(*options),
												  DirectFunctionCall1(jsonb_in,
																	  CStringGetDatum(buf.data))));
	return relid;
}

/* The owner of a stream (ERROR if there is none), and what else is asked */
static Oid
stream_owner(const char *name, Jsonb **options, Oid *source, Oid *target,
			 char **mode, bool *paused)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	Oid			owner;
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	MemoryContext oldcxt = CurrentMemoryContext;

	SPI_connect();
	if (SPI_execute_with_args("SELECT owner::pg_catalog.oid, options, "
							  "target::pg_catalog.oid, mode, paused, "
							  "source::pg_catalog.oid "
							  "FROM kafka_fdw.ingest_streams "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up ingest stream \"%s\"", name);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("ingest stream \"%s\" does not exist", name),
				 errhint("The ingest streams of this database are listed in kafka_fdw.ingest_status.")));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	owner = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	{
		MemoryContext spicxt = MemoryContextSwitchTo(oldcxt);

		if (options)
			*options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 2, &isnull));
		if (target)
			*target = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		if (mode)
			*mode = pstrdup(SPI_getvalue(tup, desc, 4));
		if (paused)
			*paused = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		if (source)
			*source = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
		MemoryContextSwitchTo(spicxt);
	}
	SPI_finish();
	return owner;
}

/* Debezium's options: only for the debezium mode, with values it takes */
static void
check_debezium_options(KafkaIngestOptions *opts, KafkaIngestMode mode,
					   Oid target)
{
	Relation	rel;
	KafkaDbzTarget *dbz;
	int			i;

	if (opts->ndbz == 0)
		return;
	if (mode != KFDW_INGEST_DEBEZIUM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" is only used in the debezium mode",
						opts->dbz_names[0])));
	rel = table_open(target, AccessShareLock);
	dbz = kfdw_dbz_prepare(rel, CurrentMemoryContext);
	for (i = 0; i < opts->ndbz; i++)
		(void) kfdw_dbz_set_option(dbz, opts->dbz_names[i], opts->dbz_values[i]);
	table_close(rel, AccessShareLock);
}

static void
check_may_manage(const char *name, Oid owner)
{
	if (!superuser() && !has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for ingest stream \"%s\"", name),
				 errdetail("Only superusers and the stream's owner may manage it.")));
}

/*
 * The view that holds the stream's dependencies; owned by the bootstrap
 * superuser, in kafka_fdw's schema, so that the stream's owner cannot drop
 * it.  SPI is connected.
 */
static void
make_view(const char *name, Oid source, Oid target, Oid dead_letter)
{
	StringInfoData sql;
	char	   *view = psprintf("ingest stream %s", name);

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE VIEW kafka_fdw.%s AS SELECT FROM %s, %s",
					 quote_identifier(view),
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)),
												get_rel_name(source)),
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(target)),
												get_rel_name(target)));
	if (OidIsValid(dead_letter))
		appendStringInfo(&sql, ", %s",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(dead_letter)),
													get_rel_name(dead_letter)));
	appendStringInfoString(&sql, " WHERE false");
	kfdw_cdc_run_as_superuser(sql.data, 0, NULL, NULL, NULL);
}

static void
drop_view(const char *name)
{
	char	   *view = psprintf("ingest stream %s", name);

	/* the event trigger leaves the stream alone */
	own_drop = true;
	register_callbacks();
	kfdw_cdc_run_as_superuser(psprintf("DROP VIEW IF EXISTS kafka_fdw.%s",
									   quote_identifier(view)),
							  0, NULL, NULL, NULL);
	own_drop = false;
}

/*
 * Stop the workers of a stream and wait until they have exited; the
 * launcher does not start them again, and their entries are freed at
 * commit (or let run again at abort).
 */
static void
stop_workers(const char *name)
{
	int			i;

	remember_stop(name);
	if (kfdw_cdc_shared == NULL)
		return;
	for (;;)
	{
		bool		running = false;

		CHECK_FOR_INTERRUPTS();
		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		for (i = 0; i < kfdw_cdc_max_streams; i++)
		{
			KafkaCdcStream *s = &kfdw_cdc_shared->streams[i];

			if (!s->in_use || s->kind != KFDW_STREAM_INGEST ||
				s->dboid != MyDatabaseId || strcmp(NameStr(s->name), name) != 0)
				continue;
			if (!s->drop_requested && s->pid != 0)
				kill(s->pid, SIGTERM);
			s->drop_requested = true;
			if (s->pid != 0)
				running = true;
		}
		LWLockRelease(kfdw_cdc_shared->lock);
		if (!running)
			break;
		kfdw_nap(10L, kfdw_wait_event(KFDW_WAIT_CDC_STOP));
	}
}

static void
remember_start(const char *name, int workers)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	PendingStart *ps = palloc(sizeof(PendingStart));

	ps->name = pstrdup(name);
	ps->workers = workers;
	pending_starts = lappend(pending_starts, ps);
	MemoryContextSwitchTo(oldcxt);
	register_callbacks();
}

static void
remember_stop(const char *name)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

	pending_stops = lappend(pending_stops, pstrdup(name));
	MemoryContextSwitchTo(oldcxt);
	register_callbacks();
}

static void
register_callbacks(void)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(ingest_xact_callback, NULL);
		callbacks_registered = true;
	}
}

/*
 * At commit: free the entries of stopped streams, enter started ones (a
 * resumed stream is both, in that order).  At abort: let stopped streams
 * run again.
 */
static void
ingest_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;
	int			i;

	if (event == XACT_EVENT_PRE_PREPARE && (pending_starts || pending_stops))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot prepare a transaction that changed a kafka_fdw ingest stream")));
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT)
		return;
	own_drop = false;
	if (pending_starts == NIL && pending_stops == NIL)
		return;

	if (kfdw_cdc_shared)
	{
		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		foreach(lc, pending_stops)
		{
			for (i = 0; i < kfdw_cdc_max_streams; i++)
			{
				KafkaCdcStream *s = &kfdw_cdc_shared->streams[i];

				if (s->in_use && s->kind == KFDW_STREAM_INGEST &&
					s->dboid == MyDatabaseId &&
					strcmp(NameStr(s->name), (char *) lfirst(lc)) == 0)
				{
					if (event == XACT_EVENT_COMMIT)
						s->in_use = false;
					s->drop_requested = false;
				}
			}
		}
		if (event == XACT_EVENT_COMMIT)
		{
			foreach(lc, pending_starts)
			{
				PendingStart *ps = lfirst(lc);

				for (i = 0; i < ps->workers; i++)
				{
					if (kfdw_stream_register(KFDW_STREAM_INGEST, MyDatabaseId,
											 ps->name, i) < 0)
					{
						ereport(WARNING,
								(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
								 errmsg("too many kafka_fdw streams, worker %d of ingest stream \"%s\" is not started",
										i, ps->name),
								 errhint("Raise kafka_fdw.max_streams, which takes effect when the server restarts.")));
						break;
					}
				}
			}
		}
		LWLockRelease(kfdw_cdc_shared->lock);
		kfdw_cdc_wakeup_launcher();
	}
	list_free_deep(pending_stops);
	foreach(lc, pending_starts)
		pfree(((PendingStart *) lfirst(lc))->name);
	list_free_deep(pending_starts);
	pending_starts = pending_stops = NIL;
}
