/*-------------------------------------------------------------------------
 *
 * worker.c
 *		  The worker of one change data capture stream: its main loop
 *
 * The launcher starts one such background worker per stream.  It reads the
 * stream's row, makes the stream's Kafka producer (cdc/delivery.c), gets
 * the stream its slot (cdc/slot.c), with the initial snapshot if the stream
 * has one (cdc/snapshot.c), then decodes the slot for ever: it reads WAL up
 * to what is flushed, hands each record to PostgreSQL's logical decoding,
 * whose pgoutput output becomes events (cdc/decode.c), confirms the slot up
 * to what Kafka has, and naps kafka_fdw.naptime when all WAL is read.  In
 * PostgreSQL's logical replication this is worker.c's LogicalRepApplyLoop,
 * with slot.c, tablesync.c and the apply callbacks beside it.
 *
 * Events are sent as soon as the decoder hands them over, which is when
 * the transaction's commit is decoded (in-progress transactions are not
 * streamed; the decoder spills large ones to disk); the slot is confirmed
 * only up to a commit whose messages, and every message before them, Kafka
 * has acknowledged.
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
 * the stream's owner, in a security-restricted operation
 * (kfdw_cdc_become_owner), as PostgreSQL runs maintenance commands as a
 * table's owner: a role that owns the published tables cannot have its
 * functions run as superuser.  The owner's rights are checked again every
 * few seconds.
 *
 * IDENTIFICATION
 *		  src/cdc/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogreader.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_publication.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

/* How often the worker checks that its stream still exists */
#define CDC_EXISTS_CHECK_MS 5000
/* How often a moving slot is written to disk */
#define CDC_SAVE_INTERVAL_MS 5000

/*
 * How long the worker sleeps when it has read all WAL (kafka_fdw.naptime,
 * in milliseconds).  Nothing wakes a background worker when WAL is flushed,
 * so this bounds the latency a commit waits before it is decoded: 10 ms
 * keeps p99 commit-to-Kafka latency well under 100 ms (50 ms cost a commit
 * 25 ms on average).
 */
int			kfdw_cdc_naptime = 10;

static KafkaCdcConfig config;
static KafkaCdcStream *me;		/* this stream's registry entry */
static MemoryContext worker_cxt;	/* lives as long as the worker */
static ResourceOwner worker_owner;

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
static void check_owner(void);
static void confirm_progress(LogicalDecodingContext *ctx);
static void create_slot_without_snapshot(void);
static void mark_snapshot_done(void);
static void check_publication_exists(void);
static void stream_changes(void);

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
	 * undone (see kfdw_cdc_become_owner).  The row filters read from
	 * pg_publication_tables are deparsed and run with this same value.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
	/* the snapshot fails rather than miss rows that a policy hides */
	SetConfigOption("row_security", "off", PGC_SUSET, PGC_S_SESSION);
	/* events read back the same in any session (json_encode.c) */
	kfdw_set_encoding_session_gucs();

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "kafka_fdw cdc worker",
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

		if (!config.snapshot_done || !kfdw_cdc_slot_exists(config.slot_name))
		{
			/*
			 * A slot made before its publication would fail on every
			 * change older than the publication (pg_restore creates
			 * publications last): wait for it.
			 */
			check_publication_exists();
			if (config.snapshot)
				kfdw_cdc_snapshot(&config);
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
		if (kfdw_cdc_slot_exists(slot_name))
		{
			kfdw_cdc_drop_slot(slot_name);
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
								  "options, "
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
			{
				Datum		options = SPI_getbinval(tup, desc, 8, &isnull);

				kfdw_cdc_parse_options(isnull ? NULL : DatumGetJsonbP(options),
									   &config.opts);
			}
			config.owner = DatumGetObjectId(SPI_getbinval(tup, desc, 9, &isnull));
			config.dbname = pstrdup(get_database_name(MyDatabaseId));
			MemoryContextSwitchTo(oldcxt);
			check_owner();
		}
	}

	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/*
 * Check that the stream's owner may still stream through its server: it
 * exists, is superuser or has REPLICATION, and has USAGE on the server
 * (what cdc_create checked).  ERROR if not.  Done when the worker starts
 * and every few seconds, since a row of kafka_fdw.cdc_streams is no
 * dependency of the role: DROP ROLE, ALTER ROLE NOREPLICATION or REVOKE
 * USAGE stop the stream this way.
 */
static void
check_owner(void)
{
	bool		own_xact = !IsTransactionState();
	ForeignServer *server;

	if (own_xact)
		StartTransactionCommand();

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(config.owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("owner role of stream \"%s\" no longer exists", config.name),
				 errdetail("The role with OID %u that created the stream was dropped.",
						   config.owner),
				 errhint("Drop the stream with kafka_fdw.cdc_drop() and create it again as another role.")));
	if (!superuser_arg(config.owner) && !has_rolreplication(config.owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("owner %s of stream \"%s\" no longer has the REPLICATION attribute",
						GetUserNameFromId(config.owner, false), config.name),
				 errhint("Run ALTER ROLE ... REPLICATION as a superuser, or drop the stream.")));
	server = GetForeignServerByName(config.server, true);
	if (server == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" of stream \"%s\" does not exist",
						config.server, config.name)));
	if (KFDW_FOREIGN_SERVER_ACLCHECK(server->serverid, config.owner,
									 ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("owner %s of stream \"%s\" no longer has USAGE on foreign server %s",
						GetUserNameFromId(config.owner, false), config.name,
						config.server),
				 errhint("Grant USAGE on the server to the owner again, or drop the stream.")));

	if (own_xact)
		CommitTransactionCommand();
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

	if (none_pending && !kfdw_cdc_decode_in_txn())
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

/*
 * No snapshot wanted but no slot (a restored dump, a slot dropped by
 * hand): start from now, and say that changes in between are lost.
 */
static void
create_slot_without_snapshot(void)
{
	if (config.snapshot_done)
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("replication slot \"%s\" of stream \"%s\" is missing, creating it again",
						config.slot_name, config.name),
				 errdetail("Changes made while the stream had no slot are not captured.")));
	/* a slot left over by an earlier run of this stream */
	kfdw_cdc_drop_slot(config.slot_name);
	kfdw_cdc_create_slot(config.slot_name);
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
	TimestampTz last_exists_check = GetCurrentTimestamp();

	CurrentResourceOwner = worker_owner;
	ReplicationSlotAcquire(config.slot_name, true);
	ctx = kfdw_cdc_decode_start(&config, worker_cxt);
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
			check_owner();
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
				kfdw_cdc_become_owner(config.owner, &save_userid,
									  &save_sec_context);
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

		kfdw_cdc_nap(kfdw_cdc_naptime);
	}
}
