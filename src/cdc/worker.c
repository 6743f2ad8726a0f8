/*-------------------------------------------------------------------------
 *
 * worker.c
 *		  The worker of one change data capture stream
 *
 * The worker decodes its logical replication slot in-process, through
 * PostgreSQL's logical decoding machinery and the built-in pgoutput plugin
 * (as pg_logical_slot_get_changes() does), so that publications, their
 * row filters and column lists mean exactly what they mean for logical
 * replication, and no replication connection is needed.  Each change
 * becomes a Kafka message in Debezium's envelope (cdc/event.c), sent as
 * soon as the decoder hands it over, which is when the transaction's commit
 * is decoded (in-progress transactions are not streamed; the decoder
 * spills large ones to disk) (cdc/delivery.c); the slot is confirmed only up to
 * a commit whose messages, and every message before them, Kafka has
 * acknowledged.
 *
 * Kafka being unreachable does not stop the worker: librdkafka keeps the
 * messages and retries with backoff (CDC messages never time out), the
 * stream shows "retrying", and delivery resumes in order when Kafka comes
 * back.  A message that Kafka refuses ends the worker with an ERROR; the
 * launcher starts it again after a backoff, and it decodes again from the
 * last confirmed commit (at least once, never less).
 *
 * The worker connects as the bootstrap superuser, which kafka_fdw's own
 * catalog and the replication slot need; but whatever may run code of the
 * stream's tables (reading them for the snapshot, decoding with their
 * types' output and input functions, a domain's CHECK, encoding) runs as
 * the stream's owner, in a security-restricted operation, as PostgreSQL
 * runs maintenance commands as a table's owner: a role that owns the
 * published tables cannot have its functions run as superuser.
 *
 * IDENTIFICATION
 *		  src/cdc/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/relation.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogreader.h"
#include "access/xlogutils.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_publication.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/logicalproto.h"
#include "replication/slot.h"
#include "replication/snapbuild.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

/*
 * How long the worker sleeps when it has read all WAL.  Nothing wakes a
 * background worker when WAL is flushed, so this bounds the latency a commit
 * waits before it is decoded: 10 ms keeps p99 commit-to-Kafka latency well
 * under 100 ms (50 ms cost a commit 25 ms on average).
 */
#define CDC_NAPTIME_MS 10
/* How often the worker checks that its stream still exists */
#define CDC_EXISTS_CHECK_MS 5000
/* How often a moving slot is written to disk */
#define CDC_SAVE_INTERVAL_MS 5000
/* Rows fetched at a time while reading the initial snapshot */
#define CDC_SNAPSHOT_BATCH 1000

/* What the stream's row says */
typedef struct StreamConfig
{
	char	   *name;
	char	   *server;
	char	   *publication;
	char	   *slot_name;
	char	   *topic_prefix;
	bool		snapshot;
	bool		snapshot_done;
	bool		tombstones;
	Oid			owner;			/* the stream's data work runs as this role */
} StreamConfig;

/* A relation of the pgoutput stream, by its OID */
typedef struct RelEntry
{
	Oid			relid;			/* hash key */
	KafkaCdcRelation rel;
	bool		skip;			/* kafka_fdw's own tables */
	bool		old_is_key;		/* old rows carry only the identity columns */
} RelEntry;

static StreamConfig config;
static KafkaCdcStream *me;		/* this stream's registry entry */
static char *dbname;
static MemoryContext worker_cxt;	/* lives as long as the worker */
static MemoryContext change_cxt;	/* reset for every pgoutput message */
static ResourceOwner worker_owner;
static HTAB *relations;

static uint64 current_txn;		/* id of the open transaction */
static bool txn_open = false;

/* the transaction being decoded */
static TransactionId cur_xid;
static TimestampTz cur_commit_time;
static XLogRecPtr last_commit_lsn = InvalidXLogRecPtr;
static XLogRecPtr last_confirmed = InvalidXLogRecPtr;
static XLogRecPtr last_saved = InvalidXLogRecPtr;
static TimestampTz last_saved_at = 0;

/* set when the server or a user mapping changed: the producer is stale */
static bool server_changed = false;


static void worker_on_exit(int code, Datum arg);
static void forget_stream(void);
static bool stream_exists(void);
static void server_changed_cb(Datum arg, int cacheid, uint32 hashvalue);
static void load_config(void);
static void become_owner(Oid *save_userid, int *save_sec_context);
static void confirm_progress(LogicalDecodingContext *ctx);
static bool slot_exists(const char *slot_name);
static void create_slot_with_snapshot(void);
static void create_slot_without_snapshot(void);
static void mark_snapshot_done(void);
static void check_publication_exists(void);
static void read_table(const char *nspname, const char *relname,
					   List *attnames, const char *rowfilter,
					   KafkaCdcSource *source, uint64 txn_id,
					   StringInfo held_key, StringInfo held_value,
					   char **held_topic);
static void compute_keys(KafkaCdcRelation *rel, Oid relid, char replident,
						 Bitmapset *identity_cols);
static char *make_topic(const char *nspname, const char *relname);
static void stream_changes(void);
static void prepare_write(LogicalDecodingContext *ctx, XLogRecPtr lsn,
						  TransactionId xid, bool last_write);
static void do_write(LogicalDecodingContext *ctx, XLogRecPtr lsn,
					 TransactionId xid, bool last_write);
static void handle_relation(LogicalRepRelation *lrel);
static void tuple_to_row(KafkaCdcRelation *rel, LogicalRepTupleData *tup,
						 KafkaCdcRow *row, KafkaCdcRow *old, bool key_only);
static void emit(RelEntry *entry, char op, KafkaCdcRow *before,
				 KafkaCdcRow *after, KafkaCdcRow *keyrow, XLogRecPtr lsn);
static bool key_changed(KafkaCdcRelation *rel, LogicalRepTupleData *oldtup,
						LogicalRepTupleData *newtup);

/*
 * Main of a stream's worker.  main_arg is the stream's registry index.
 */
void
kfdw_cdc_worker_main(Datum main_arg)
{
	int			index = DatumGetInt32(main_arg);
	Oid			dboid;
	bool		go = true;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	me = &kfdw_cdc_shared->streams[index];

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	if (!me->in_use || me->drop_requested || me->dboid != dboid ||
		(me->pid != 0 && kill(me->pid, 0) == 0))
		go = false;
	else
	{
		me->pid = MyProcPid;
		/* a run after a failed one shows "retrying" until Kafka takes a message */
		me->state = (me->state == KFDW_CDC_RETRYING ||
					 me->state == KFDW_CDC_WAITING)
			? KFDW_CDC_RETRYING : KFDW_CDC_STARTING;
		/* until a message gets through, every start counts for the backoff */
		me->failures++;
	}
	LWLockRelease(kfdw_cdc_shared->lock);
	if (!go)
		proc_exit(0);
	before_shmem_exit(worker_on_exit, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/*
	 * Objects of other roles must not stand in for built-in ones, whatever
	 * ALTER DATABASE or ALTER ROLE set: pg_catalog, then pg_temp (otherwise
	 * searched first).  This is the session's value, so that a function's
	 * own SET search_path still works; what the owner's code changes is
	 * undone (see become_owner).  The row filters read from
	 * pg_publication_tables are deparsed and run with this same value.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
	/* the snapshot fails rather than miss rows that a policy hides */
	SetConfigOption("row_security", "off", PGC_SUSET, PGC_S_SESSION);
	/* events read back the same in any session (json_encode.c) */
	kfdw_set_encoding_session_gucs();

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "kafka_fdw cdc worker",
									   ALLOCSET_DEFAULT_SIZES);
	change_cxt = AllocSetContextCreate(worker_cxt, "kafka_fdw cdc change",
									   ALLOCSET_DEFAULT_SIZES);
	worker_owner = ResourceOwnerCreate(NULL, "kafka_fdw cdc worker");
	kfdw_cdc_delivery_init(me, NameStr(me->name), worker_cxt);

	PG_TRY();
	{
		load_config();
		if (config.name == NULL)
			forget_stream();

		pgstat_report_activity(STATE_RUNNING, "starting");
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, server_changed_cb, (Datum) 0);
		CacheRegisterSyscacheCallback(USERMAPPINGOID, server_changed_cb, (Datum) 0);
		kfdw_cdc_producer_create(config.server, config.owner);

		if (!config.snapshot_done || !slot_exists(config.slot_name))
		{
			/*
			 * A slot made before its publication would fail on every
			 * change older than the publication (pg_restore creates
			 * publications last): wait for it.
			 */
			check_publication_exists();
			if (config.snapshot)
				create_slot_with_snapshot();
			else
				create_slot_without_snapshot();
			mark_snapshot_done();
		}

		stream_changes();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(worker_cxt);
		edata = CopyErrorData();

		/*
		 * The cause (librdkafka's text, in the detail) belongs in
		 * last_error: "could not deliver" alone does not say what to fix.
		 * Details name topics, brokers and objects, never credentials.
		 */
		if (edata->detail)
			kfdw_cdc_set_error(psprintf("%s: %s", edata->message, edata->detail));
		else
			kfdw_cdc_set_error(edata->message);
		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		me->state = KFDW_CDC_RETRYING;
		LWLockRelease(kfdw_cdc_shared->lock);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
worker_on_exit(int code, Datum arg)
{
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	if (me->pid == MyProcPid)
	{
		me->pid = 0;
		/* after an error the launcher starts the worker again, later */
		me->state = me->state == KFDW_CDC_RETRYING
			? KFDW_CDC_WAITING : KFDW_CDC_STOPPED;
	}
	LWLockRelease(kfdw_cdc_shared->lock);
}

/*
 * The stream's row is gone without cdc_drop (DROP EXTENSION, a row deleted
 * by hand): drop the slot, which would otherwise keep WAL for ever, free
 * the registry entry and exit.  cdc_drop, which sets drop_requested before
 * its deletion can be seen, drops the slot itself.
 */
static void
forget_stream(void)
{
	char	   *slot_name = kfdw_cdc_slot_name(MyDatabaseId, NameStr(me->name));
	bool		dropping;

	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	dropping = me->drop_requested;
	if (!dropping)
		me->in_use = false;
	LWLockRelease(kfdw_cdc_shared->lock);

	if (!dropping)
	{
		if (MyReplicationSlot != NULL)
			ReplicationSlotRelease();
		if (slot_exists(slot_name))
		{
			ReplicationSlotDrop(slot_name, true);
			ereport(LOG,
					(errmsg("kafka_fdw stream \"%s\" no longer exists, dropped its replication slot \"%s\"",
							NameStr(me->name), slot_name)));
		}
	}
	proc_exit(0);
}

/* Does the stream's row still exist? */
static bool
stream_exists(void)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		exists = false;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	values[0] = CStringGetTextDatum(NameStr(me->name));
	if (SPI_execute("SELECT pg_catalog.to_regclass('kafka_fdw.cdc_streams') IS NOT NULL",
					true, 0) == SPI_OK_SELECT &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
			   "t") == 0 &&
		SPI_execute_with_args("SELECT 1 FROM kafka_fdw.cdc_streams "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) == SPI_OK_SELECT)
		exists = (SPI_processed == 1);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	return exists;
}

static void
server_changed_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	server_changed = true;
}



/*
 * Read the stream's row.  config.name stays NULL if there is none.
 */
static void
load_config(void)
{
	MemoryContext oldcxt;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	if (SPI_execute("SELECT pg_catalog.to_regclass('kafka_fdw.cdc_streams') IS NOT NULL",
					true, 0) == SPI_OK_SELECT &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
			   "t") == 0)
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1];

		values[0] = CStringGetTextDatum(NameStr(me->name));
		if (SPI_execute_with_args("SELECT name, server, publication, slot_name, "
								  "topic_prefix, snapshot, snapshot_done, "
								  "coalesce((options OPERATOR(pg_catalog.->>) 'tombstones')"
								  "::pg_catalog.bool, true), "
								  "owner::pg_catalog.oid "
								  "FROM kafka_fdw.cdc_streams "
								  "WHERE name OPERATOR(pg_catalog.=) $1",
								  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read stream \"%s\"", NameStr(me->name));
		if (SPI_processed == 1)
		{
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;

			oldcxt = MemoryContextSwitchTo(worker_cxt);
			config.name = SPI_getvalue(tup, desc, 1);
			config.server = SPI_getvalue(tup, desc, 2);
			config.publication = SPI_getvalue(tup, desc, 3);
			config.slot_name = kfdw_cdc_slot_name(MyDatabaseId, config.name);
			config.topic_prefix = SPI_getvalue(tup, desc, 5);
			config.snapshot = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
			config.snapshot_done = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
			/* a restored dump's row names the slot after another database */
			if (strcmp(config.slot_name, SPI_getvalue(tup, desc, 4)) != 0)
				config.snapshot_done = false;
			config.tombstones = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
			config.owner = DatumGetObjectId(SPI_getbinval(tup, desc, 9, &isnull));
			dbname = pstrdup(get_database_name(MyDatabaseId));
			MemoryContextSwitchTo(oldcxt);
			kfdw_cdc_check_owner(config.name, config.owner, config.server);
		}
	}

	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

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
static void
become_owner(Oid *save_userid, int *save_sec_context)
{
	GetUserIdAndSecContext(save_userid, save_sec_context);
	SetUserIdAndSecContext(config.owner,
						   *save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/*
 * Confirm the slot up to the last commit whose messages, and all before,
 * are acknowledged; with nothing in flight, up to all WAL read, so that an
 * idle stream does not hold WAL back.
 */
static void
confirm_progress(LogicalDecodingContext *ctx)
{
	bool		none_pending;
	XLogRecPtr	lsn = kfdw_cdc_txn_confirmable(&none_pending);

	if (none_pending && !txn_open)
		lsn = Max(lsn, ctx->reader->EndRecPtr);

	if (lsn > last_confirmed)
	{
		LogicalConfirmReceivedLocation(lsn);
		ReplicationSlotMarkDirty();
		last_confirmed = lsn;
		pg_atomic_write_u64(&me->confirmed_lsn, lsn);
	}
	kfdw_cdc_show_undelivered(last_confirmed);

	/*
	 * A checkpoint writes the slot too, but saving it now and then keeps
	 * the duplicates after a crash to a few seconds' worth.
	 */
	if (last_confirmed != last_saved &&
		TimestampDifferenceExceeds(last_saved_at, GetCurrentTimestamp(),
								   CDC_SAVE_INTERVAL_MS))
	{
		ReplicationSlotSave();
		last_saved = last_confirmed;
		last_saved_at = GetCurrentTimestamp();
	}
}


static bool
slot_exists(const char *slot_name)
{
	return SearchNamedReplicationSlot(slot_name, true) != NULL;
}

/* Drop a slot left over by an earlier run of this stream */
static void
drop_old_slot(void)
{
	if (slot_exists(config.slot_name))
		ReplicationSlotDrop(config.slot_name, true);
}

/*
 * No snapshot wanted but no slot (a restored dump, a slot dropped by
 * hand): start from now, and say that changes in between are lost.
 */
static void
create_slot_without_snapshot(void)
{
	LogicalDecodingContext *ctx;

	if (config.snapshot_done)
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("replication slot \"%s\" of stream \"%s\" is missing, creating it again",
						config.slot_name, config.name),
				 errdetail("Changes made while the stream had no slot are not captured.")));
	drop_old_slot();
	ctx = kfdw_cdc_new_slot(config.slot_name, false);
	FreeDecodingContext(ctx);
	ReplicationSlotPersist();
	ReplicationSlotRelease();
}

/*
 * Create the slot and publish, as op "r", every row of the publication's
 * tables in the slot's own snapshot (as CREATE_REPLICATION_SLOT ...
 * USE_SNAPSHOT does), so that nothing is missed or doubled between the
 * snapshot and the stream.  The slot is kept only once Kafka has every
 * snapshot message; a worker that fails before starts over with a new slot
 * and a new snapshot.
 */
static void
create_slot_with_snapshot(void)
{
	LogicalDecodingContext *ctx;
	Snapshot	snap;
	KafkaCdcSource source;
	StringInfoData held_key;
	StringInfoData held_value;
	char	   *held_topic = NULL;
	uint64		txn_id;
	bool		none_pending;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	uint64		ntables;
	uint64		i;
	SPITupleTable *tables;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	kfdw_cdc_set_state(KFDW_CDC_SNAPSHOT);
	drop_old_slot();

	StartTransactionCommand();
	XactIsoLevel = XACT_REPEATABLE_READ;
	ctx = kfdw_cdc_new_slot(config.slot_name, true);
	snap = SnapBuildInitialSnapshot(ctx->snapshot_builder);
	RestoreTransactionSnapshot(snap, MyProc);
	FreeDecodingContext(ctx);

	memset(&source, 0, sizeof(source));
	source.stream_name = config.name;
	source.dbname = dbname;
	source.commit_time = GetCurrentTimestamp();
	source.xid = InvalidTransactionId;
	source.lsn = MyReplicationSlot->data.confirmed_flush;
	source.last_commit_lsn = InvalidXLogRecPtr;
	source.snapshot = "true";

	txn_id = kfdw_cdc_txn_begin(InvalidXLogRecPtr, InvalidXLogRecPtr,
								source.commit_time);
	initStringInfo(&held_key);
	initStringInfo(&held_value);

	/* the tables are read, and their rows encoded, as the stream's owner */
	become_owner(&save_userid, &save_sec_context);
	save_nestlevel = NewGUCNestLevel();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	values[0] = CStringGetTextDatum(config.publication);
	if (SPI_execute_with_args("SELECT schemaname::pg_catalog.text, "
							  "tablename::pg_catalog.text, "
							  "attnames::pg_catalog.text[], rowfilter "
							  "FROM pg_catalog.pg_publication_tables "
							  "WHERE pubname OPERATOR(pg_catalog.=) $1 "
							  "AND schemaname OPERATOR(pg_catalog.<>) 'kafka_fdw' "
							  "ORDER BY 1, 2",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the tables of publication \"%s\"",
			 config.publication);
	ntables = SPI_processed;
	tables = SPI_tuptable;
	for (i = 0; i < ntables; i++)
	{
		HeapTuple	tup = tables->vals[i];
		TupleDesc	desc = tables->tupdesc;
		bool		isnull;
		Datum		attnames = SPI_getbinval(tup, desc, 3, &isnull);
		List	   *names = NIL;

		if (!isnull)
		{
			ArrayType  *arr = DatumGetArrayTypeP(attnames);
			Datum	   *elems;
			int			nelems;
			int			j;

			deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, NULL, &nelems);
			for (j = 0; j < nelems; j++)
				names = lappend(names, TextDatumGetCString(elems[j]));
		}
		read_table(SPI_getvalue(tup, desc, 1), SPI_getvalue(tup, desc, 2),
				   names, SPI_getvalue(tup, desc, 4), &source, txn_id,
				   &held_key, &held_value, &held_topic);
	}

	/* the last row of the snapshot says so */
	if (held_topic)
	{
		char	   *mark = NULL;
		char	   *p = held_value.data;

		while ((p = strstr(p, "\"snapshot\":\"true\"")) != NULL)
			mark = p++;
		if (mark)
			memcpy(mark + strlen("\"snapshot\":\""), "last", 4);
		kfdw_cdc_produce(held_topic, held_key.len > 0 ? &held_key : NULL,
				&held_value, txn_id);
	}
	SPI_finish();
	PopActiveSnapshot();
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	CommitTransactionCommand();

	kfdw_cdc_txn_end(txn_id, MyReplicationSlot->data.confirmed_flush);
	kfdw_cdc_wait_delivered();
	(void) kfdw_cdc_txn_confirmable(&none_pending);

	ReplicationSlotPersist();
	ReplicationSlotRelease();
}

/*
 * Publish every row of one table (its published columns, the rows its row
 * filter keeps) as op "r".  Each event is held back until the next one is
 * made, so that the very last can be marked "last".
 */
static void
read_table(const char *nspname, const char *relname, List *attnames,
		   const char *rowfilter, KafkaCdcSource *source, uint64 txn_id,
		   StringInfo held_key, StringInfo held_value, char **held_topic)
{
	StringInfoData sql;
	Oid			relid;
	Relation	relation;
	KafkaCdcRelation rel;
	char		replident;
	char		relkind;
	ListCell   *lc;
	Portal		portal;
	int			i;
	MemoryContext rowcxt;

	relid = RangeVarGetRelid(makeRangeVar(pstrdup(nspname), pstrdup(relname), -1),
							 AccessShareLock, false);
	relation = relation_open(relid, NoLock);
	replident = relation->rd_rel->relreplident;
	relkind = relation->rd_rel->relkind;

	/* published columns: the column list, or every column */
	if (attnames == NIL)
	{
		for (i = 0; i < RelationGetDescr(relation)->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(relation), i);

			if (!att->attisdropped && att->attgenerated == '\0')
				attnames = lappend(attnames, pstrdup(NameStr(att->attname)));
		}
	}

	memset(&rel, 0, sizeof(rel));
	rel.relid = relid;
	rel.nspname = pstrdup(nspname);
	rel.relname = pstrdup(relname);
	rel.topic = make_topic(nspname, relname);
	rel.ncols = list_length(attnames);
	rel.cols = palloc0(sizeof(KafkaCdcColumn) * Max(rel.ncols, 1));
	i = 0;
	foreach(lc, attnames)
	{
		char	   *attname = lfirst(lc);
		AttrNumber	attnum = get_attnum(relid, attname);

		rel.cols[i].name = attname;
		rel.cols[i].typid = get_atttype(relid, attnum);
		i++;
	}
	relation_close(relation, NoLock);

	/* key: the replica identity (primary key for REPLICA IDENTITY FULL) */
	compute_keys(&rel, relid, replident, NULL);

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	foreach(lc, attnames)
	{
		if (lc != list_head(attnames))
			appendStringInfoString(&sql, ", ");
		appendStringInfoString(&sql, quote_identifier(lfirst(lc)));
	}
	appendStringInfo(&sql, " FROM %s%s",
					 relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ",
					 quote_qualified_identifier(nspname, relname));
	if (rowfilter)
		appendStringInfo(&sql, " WHERE %s", rowfilter);

	portal = SPI_cursor_open_with_args(NULL, sql.data, 0, NULL, NULL, NULL,
									   true, 0);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "kafka_fdw cdc snapshot",
								   ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		uint64		n;

		SPI_cursor_fetch(portal, true, CDC_SNAPSHOT_BATCH);
		if (SPI_processed == 0)
			break;
		for (n = 0; n < SPI_processed; n++)
		{
			HeapTuple	tup = SPI_tuptable->vals[n];
			KafkaCdcRow row;
			MemoryContext oldcxt;

			CHECK_FOR_INTERRUPTS();
			/* send the event held back, now that it is not the last */
			if (*held_topic)
			{
				kfdw_cdc_produce(*held_topic, held_key->len > 0 ? held_key : NULL,
						held_value, txn_id);
				pfree(*held_topic);
				*held_topic = NULL;
			}

			oldcxt = MemoryContextSwitchTo(rowcxt);
			row.values = palloc(sizeof(Datum) * Max(rel.ncols, 1));
			row.isnull = palloc(sizeof(bool) * Max(rel.ncols, 1));
			row.present = palloc(sizeof(bool) * Max(rel.ncols, 1));
			for (i = 0; i < rel.ncols; i++)
			{
				row.values[i] = SPI_getbinval(tup, SPI_tuptable->tupdesc, i + 1,
											  &row.isnull[i]);
				row.present[i] = true;
			}
			resetStringInfo(held_key);
			resetStringInfo(held_value);
			(void) kfdw_cdc_encode_key(held_key, &rel, &row);
			kfdw_cdc_encode_value(held_value, 'r', &rel, NULL, &row, source);
			MemoryContextSwitchTo(oldcxt);
			MemoryContextReset(rowcxt);
			*held_topic = MemoryContextStrdup(worker_cxt, rel.topic);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(rowcxt);
}

/*
 * Mark the key columns of rel: the columns of the replica identity index
 * (the primary key by default), or of the primary key for REPLICA
 * IDENTITY FULL, when the event carries them.  identity_cols, if given,
 * are the columns pgoutput flagged as identity (used unless FULL).
 */
static void
compute_keys(KafkaCdcRelation *rel, Oid relid, char replident,
			 Bitmapset *identity_cols)
{
	Relation	relation;
	Bitmapset  *keyattrs;
	int			i;

	rel->has_key = false;
	if (replident != REPLICA_IDENTITY_FULL && identity_cols != NULL)
	{
		for (i = 0; i < rel->ncols; i++)
		{
			rel->cols[i].iskey = bms_is_member(i, identity_cols);
			rel->has_key |= rel->cols[i].iskey;
		}
		return;
	}

	relation = RelationIdGetRelation(relid);
	if (!RelationIsValid(relation))
		return;
	keyattrs = RelationGetIndexAttrBitmap(relation,
										  replident == REPLICA_IDENTITY_FULL
										  ? INDEX_ATTR_BITMAP_PRIMARY_KEY
										  : INDEX_ATTR_BITMAP_IDENTITY_KEY);
	for (i = 0; i < rel->ncols; i++)
	{
		AttrNumber	attnum = get_attnum(relid, rel->cols[i].name);

		rel->cols[i].iskey = attnum != InvalidAttrNumber &&
			bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, keyattrs);
		rel->has_key |= rel->cols[i].iskey;
	}
	RelationClose(relation);
}

static char *
make_topic(const char *nspname, const char *relname)
{
	return psprintf("%s.%s.%s", config.topic_prefix, nspname, relname);
}

static void
check_publication_exists(void)
{
	bool		exists;

	StartTransactionCommand();
	exists = OidIsValid(get_publication_oid(config.publication, true));
	CommitTransactionCommand();
	if (!exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("publication \"%s\" of stream \"%s\" does not exist",
						config.publication, config.name),
				 errhint("The stream starts once the publication exists.")));
}

/*
 * Record that the stream has its slot (named after this database, which a
 * restored dump's row may not say) and its snapshot.
 */
static void
mark_snapshot_done(void)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	values[0] = CStringGetTextDatum(config.name);
	values[1] = CStringGetTextDatum(config.slot_name);
	if (SPI_execute_with_args("UPDATE kafka_fdw.cdc_streams "
							  "SET snapshot_done = true, slot_name = $2 "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update stream \"%s\"", config.name);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	config.snapshot_done = true;
}

/*
 * Decode the slot for ever: read WAL up to what is flushed, send what
 * pgoutput makes of it, confirm what Kafka has, then nap.
 */
static void
stream_changes(void)
{
	LogicalDecodingContext *ctx;
	List	   *options;
	HASHCTL		hctl;
	TimestampTz last_exists_check = GetCurrentTimestamp();

	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(Oid);
	hctl.entrysize = sizeof(RelEntry);
	hctl.hcxt = worker_cxt;
	relations = hash_create("kafka_fdw cdc relations", 64, &hctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	options = list_make2(makeDefElem("proto_version", (Node *) makeString("1"), -1),
						 makeDefElem("publication_names",
									 (Node *) makeString((char *) quote_identifier(config.publication)),
									 -1));

	CurrentResourceOwner = worker_owner;
	ReplicationSlotAcquire(config.slot_name, true);
	ctx = CreateDecodingContext(InvalidXLogRecPtr, options, false,
								XL_ROUTINE(.page_read = read_local_xlog_page,
										   .segment_open = wal_segment_open,
										   .segment_close = wal_segment_close),
								prepare_write, do_write, NULL);
	XLogBeginRead(ctx->reader, MyReplicationSlot->data.restart_lsn);
	last_confirmed = MyReplicationSlot->data.confirmed_flush;
	pg_atomic_write_u64(&me->confirmed_lsn, last_confirmed);

	kfdw_cdc_set_state(KFDW_CDC_STREAMING);

	for (;;)
	{
		XLogRecPtr	end_of_wal;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/*
		 * ALTER SERVER or USER MAPPING: start again with a new producer.
		 * Messages still in flight are sent again by the next run, which
		 * starts from the confirmed position.
		 */
		AcceptInvalidationMessages();
		if (server_changed)
		{
			server_changed = false;
			if (kfdw_cdc_producer_is_stale())
			{
				ereport(LOG,
						(errmsg("kafka_fdw stream \"%s\" restarts: its server or user mapping changed",
								config.name)));
				proc_exit(0);
			}
		}

		if (TimestampDifferenceExceeds(last_exists_check, GetCurrentTimestamp(),
									   CDC_EXISTS_CHECK_MS))
		{
			if (!stream_exists())
				forget_stream();
			kfdw_cdc_check_owner(config.name, config.owner, config.server);
			last_exists_check = GetCurrentTimestamp();
		}

		end_of_wal = GetFlushRecPtr(NULL);
		while (ctx->reader->EndRecPtr < end_of_wal)
		{
			XLogRecord *record;
			char	   *errm = NULL;

			if (CurrentResourceOwner == NULL)
				CurrentResourceOwner = worker_owner;
			record = XLogReadRecord(ctx->reader, &errm);
			if (errm)
				elog(ERROR, "could not read WAL of stream \"%s\": %s",
					 config.name, errm);
			if (record != NULL)
			{
				Oid			save_userid;
				int			save_sec_context;

				/*
				 * pgoutput's output functions and ours (do_write) run as
				 * the stream's owner, as they would in a walsender
				 * connected as that role
				 */
				become_owner(&save_userid, &save_sec_context);
				LogicalDecodingProcessRecord(ctx, ctx->reader);
				SetUserIdAndSecContext(save_userid, save_sec_context);
			}
			kfdw_cdc_serve(0);
			confirm_progress(ctx);
			CHECK_FOR_INTERRUPTS();
		}
		if (CurrentResourceOwner == NULL)
			CurrentResourceOwner = worker_owner;

		kfdw_cdc_serve(0);
		confirm_progress(ctx);
		kfdw_cdc_recover_state();

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 CDC_NAPTIME_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

static void
prepare_write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid,
			  bool last_write)
{
	resetStringInfo(ctx->out);
}

/*
 * A pgoutput message is ready in ctx->out: turn it into events.  lsn is
 * the position of the change (or of the commit).
 */
static void
do_write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid,
		 bool last_write)
{
	StringInfoData in;
	char		action;
	MemoryContext oldcxt;

	MemoryContextReset(change_cxt);
	oldcxt = MemoryContextSwitchTo(change_cxt);

	/*
	 * Input functions may run SQL (a domain's CHECK in PL/pgSQL): give them
	 * the decoding's historic snapshot, as pg_logical_slot_get_changes()
	 * has its query's.
	 */
	PushActiveSnapshot(GetTransactionSnapshot());

	in.data = ctx->out->data;
	in.len = ctx->out->len;
	in.maxlen = ctx->out->maxlen;
	in.cursor = 0;
	action = pq_getmsgbyte(&in);

	switch (action)
	{
		case LOGICAL_REP_MSG_BEGIN:
			{
				LogicalRepBeginData begin;

				logicalrep_read_begin(&in, &begin);
				cur_xid = begin.xid;
				cur_commit_time = begin.committime;
				/* lsn: of the first change that pgoutput publishes */
				current_txn = kfdw_cdc_txn_begin(lsn, begin.final_lsn,
												 begin.committime);
				txn_open = true;
				break;
			}
		case LOGICAL_REP_MSG_COMMIT:
			{
				LogicalRepCommitData commit;
				logicalrep_read_commit(&in, &commit);
				kfdw_cdc_txn_end(current_txn, commit.end_lsn);
				txn_open = false;
				last_commit_lsn = commit.commit_lsn;
				break;
			}
		case LOGICAL_REP_MSG_RELATION:
			{
				LogicalRepRelation *lrel = logicalrep_read_rel(&in);

				MemoryContextSwitchTo(oldcxt);
				handle_relation(lrel);
				MemoryContextSwitchTo(change_cxt);
				break;
			}
		case LOGICAL_REP_MSG_INSERT:
			{
				LogicalRepTupleData newtup;
				LogicalRepRelId relid = logicalrep_read_insert(&in, &newtup);
				RelEntry   *entry = hash_search(relations, &relid, HASH_FIND, NULL);
				KafkaCdcRow after;

				if (entry == NULL || entry->skip)
					break;
				tuple_to_row(&entry->rel, &newtup, &after, NULL, false);
				emit(entry, 'c', NULL, &after, &after, lsn);
				break;
			}
		case LOGICAL_REP_MSG_UPDATE:
			{
				LogicalRepTupleData oldtup;
				LogicalRepTupleData newtup;
				bool		has_old;
				LogicalRepRelId relid = logicalrep_read_update(&in, &has_old,
															   &oldtup, &newtup);
				RelEntry   *entry = hash_search(relations, &relid, HASH_FIND, NULL);
				KafkaCdcRow before;
				KafkaCdcRow after;

				if (entry == NULL || entry->skip)
					break;
				if (has_old)
					tuple_to_row(&entry->rel, &oldtup, &before, NULL,
								 entry->old_is_key);
				tuple_to_row(&entry->rel, &newtup, &after,
							 has_old ? &before : NULL, false);

				if (has_old && entry->rel.has_key &&
					key_changed(&entry->rel, &oldtup, &newtup))
				{
					/* as Debezium: a delete of the old key, a create of the new */
					emit(entry, 'd', &before, NULL, &before, lsn);
					emit(entry, 'c', NULL, &after, &after, lsn);
				}
				else
					emit(entry, 'u', has_old ? &before : NULL, &after, &after, lsn);
				break;
			}
		case LOGICAL_REP_MSG_DELETE:
			{
				LogicalRepTupleData oldtup;
				LogicalRepRelId relid = logicalrep_read_delete(&in, &oldtup);
				RelEntry   *entry = hash_search(relations, &relid, HASH_FIND, NULL);
				KafkaCdcRow before;

				if (entry == NULL || entry->skip)
					break;
				tuple_to_row(&entry->rel, &oldtup, &before, NULL,
							 entry->old_is_key);
				emit(entry, 'd', &before, NULL, &before, lsn);
				break;
			}
		case LOGICAL_REP_MSG_TRUNCATE:
			{
				bool		cascade;
				bool		restart_seqs;
				List	   *relids = logicalrep_read_truncate(&in, &cascade,
															  &restart_seqs);
				ListCell   *lc;

				foreach(lc, relids)
				{
					LogicalRepRelId relid = lfirst_oid(lc);
					RelEntry   *entry = hash_search(relations, &relid, HASH_FIND, NULL);

					if (entry == NULL || entry->skip)
						continue;
					emit(entry, 't', NULL, NULL, NULL, lsn);
				}
				break;
			}
		default:
			/* origin, type and logical messages carry no row changes */
			break;
	}

	PopActiveSnapshot();
	MemoryContextSwitchTo(oldcxt);
}

/*
 * A Relation message: (re)build what events need to know of the table.
 * pgoutput sends one before the first change of a table and again after
 * its definition changed, so later events have the new shape.
 */
static void
handle_relation(LogicalRepRelation *lrel)
{
	RelEntry   *entry;
	bool		found;
	MemoryContext oldcxt;
	int			i;

	entry = hash_search(relations, &lrel->remoteid, HASH_ENTER, &found);
	if (found)
	{
		/* the table's definition changed: forget the old one */
		for (i = 0; i < entry->rel.ncols; i++)
			pfree(entry->rel.cols[i].name);
		pfree(entry->rel.cols);
		pfree(entry->rel.nspname);
		pfree(entry->rel.relname);
		pfree(entry->rel.topic);
	}
	oldcxt = MemoryContextSwitchTo(worker_cxt);
	memset(&entry->rel, 0, sizeof(entry->rel));
	entry->relid = lrel->remoteid;
	entry->skip = strcmp(lrel->nspname, "kafka_fdw") == 0;
	entry->old_is_key = lrel->replident != REPLICA_IDENTITY_FULL;
	entry->rel.relid = lrel->remoteid;
	entry->rel.nspname = pstrdup(lrel->nspname);
	entry->rel.relname = pstrdup(lrel->relname);
	entry->rel.topic = make_topic(lrel->nspname, lrel->relname);
	entry->rel.ncols = lrel->natts;
	entry->rel.cols = palloc0(sizeof(KafkaCdcColumn) * Max(lrel->natts, 1));
	for (i = 0; i < lrel->natts; i++)
	{
		KafkaCdcColumn *col = &entry->rel.cols[i];

		col->name = pstrdup(lrel->attnames[i]);
		col->typid = lrel->atttyps[i];
		getTypeInputInfo(col->typid, &col->typinput, &col->typioparam);
	}
	compute_keys(&entry->rel, lrel->remoteid, lrel->replident,
				 bms_copy(lrel->attkeys));
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Convert a pgoutput tuple (text values) into a row of Datums.  A value
 * that the WAL does not carry is left out, never sent as null: a column
 * left unchanged and TOASTed, unless the old row (REPLICA IDENTITY FULL)
 * has its value; and with key_only, every column of an old row that is not
 * in the replica identity (pgoutput sends those as nulls).
 */
static void
tuple_to_row(KafkaCdcRelation *rel, LogicalRepTupleData *tup, KafkaCdcRow *row,
			 KafkaCdcRow *old, bool key_only)
{
	int			n = Max(rel->ncols, 1);
	int			i;

	row->values = palloc0(sizeof(Datum) * n);
	row->isnull = palloc0(sizeof(bool) * n);
	row->present = palloc0(sizeof(bool) * n);

	for (i = 0; i < rel->ncols && i < tup->ncols; i++)
	{
		KafkaCdcColumn *col = &rel->cols[i];

		if (key_only && !col->iskey)
			continue;
		switch (tup->colstatus[i])
		{
			case LOGICALREP_COLUMN_NULL:
				row->isnull[i] = true;
				row->present[i] = true;
				break;
			case LOGICALREP_COLUMN_UNCHANGED:
				if (old && old->present[i])
				{
					row->values[i] = old->values[i];
					row->isnull[i] = old->isnull[i];
					row->present[i] = true;
				}
				break;
			case LOGICALREP_COLUMN_TEXT:
				row->values[i] = OidInputFunctionCall(col->typinput,
													  tup->colvalues[i].data,
													  col->typioparam, -1);
				row->present[i] = true;
				break;
			default:
				elog(ERROR, "unexpected column status '%c' in change of table \"%s.%s\"",
					 tup->colstatus[i], rel->nspname, rel->relname);
		}
	}
}

/* Did an update change the key? */
static bool
key_changed(KafkaCdcRelation *rel, LogicalRepTupleData *oldtup,
			LogicalRepTupleData *newtup)
{
	int			i;

	for (i = 0; i < rel->ncols && i < oldtup->ncols && i < newtup->ncols; i++)
	{
		if (!rel->cols[i].iskey)
			continue;
		if (oldtup->colstatus[i] != newtup->colstatus[i])
			return newtup->colstatus[i] != LOGICALREP_COLUMN_UNCHANGED;
		if (oldtup->colstatus[i] == LOGICALREP_COLUMN_TEXT &&
			strcmp(oldtup->colvalues[i].data, newtup->colvalues[i].data) != 0)
			return true;
	}
	return false;
}

/*
 * Send one change event, and after a delete its tombstone.
 */
static void
emit(RelEntry *entry, char op, KafkaCdcRow *before, KafkaCdcRow *after,
	 KafkaCdcRow *keyrow, XLogRecPtr lsn)
{
	KafkaCdcSource source;
	StringInfoData key;
	StringInfoData value;
	bool		has_key = false;

	source.stream_name = config.name;
	source.dbname = dbname;
	source.commit_time = cur_commit_time;
	source.xid = cur_xid;
	source.lsn = lsn;
	source.last_commit_lsn = last_commit_lsn;
	source.snapshot = "false";

	initStringInfo(&key);
	if (keyrow)
		has_key = kfdw_cdc_encode_key(&key, &entry->rel, keyrow);
	initStringInfo(&value);
	kfdw_cdc_encode_value(&value, op, &entry->rel, before, after, &source);

	kfdw_cdc_produce(entry->rel.topic, has_key ? &key : NULL, &value, current_txn);
	/* a tombstone only makes sense for a key that compaction can drop */
	if (op == 'd' && config.tombstones && has_key)
		kfdw_cdc_produce(entry->rel.topic, has_key ? &key : NULL, NULL, current_txn);
}
