/*-------------------------------------------------------------------------
 *
 * api.c
 *		  SQL-callable functions of change data capture
 *
 * kafka_fdw.cdc_create() checks everything a stream needs, records it in
 * kafka_fdw.cdc_streams and has the launcher start its worker once the
 * transaction commits.  A stream without an initial snapshot gets its
 * replication slot right here, before the row is written, so that every
 * change committed after cdc_create() commits is captured; a stream with a
 * snapshot gets its slot from its worker, which reads the tables in the
 * slot's own snapshot (changes committed in between are in the snapshot).
 *
 * kafka_fdw.cdc_drop() stops the worker, drops the slot and forgets the
 * stream.  kafka_fdw.cdc_worker_status() shows the shared-memory status of
 * the workers, for the view kafka_fdw.cdc_status (last errors only to those
 * who may read them).  The stream's slot is made, and dropped, by cdc/slot.c.
 *
 * IDENTIFICATION
 *		  src/cdc/api.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_publication.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/syscache.h"
#include "utils/wait_event.h"

/* Longest stream name: the slot name must fit in NAMEDATALEN */
#define CDC_MAX_NAME_LEN 40

PG_FUNCTION_INFO_V1(kafka_fdw_cdc_create);
PG_FUNCTION_INFO_V1(kafka_fdw_cdc_drop);
PG_FUNCTION_INFO_V1(kafka_fdw_cdc_worker_status);
PG_FUNCTION_INFO_V1(kafka_fdw_cdc_streams_inserted);

/* What the transaction's end must do for cdc_create and cdc_drop */
static List *pending_creates = NIL;	/* names to register at commit */
static List *pending_drops = NIL;	/* names to forget at commit */
static bool own_slot = false;	/* MyReplicationSlot is ours, ephemeral */
static SubTransactionId slot_subid;	/* subtransaction that created it */
static bool xact_callback_registered = false;

static void check_name(const char *name);
static void check_topic_prefix(const char *prefix);
static void check_server(const char *servername);
static void check_publication(const char *pubname);
static void check_options(Jsonb *options);
static void create_slot(const char *slot_name);
static void remember(List **list, const char *name);
static bool is_pending_create(const char *name);
static void cdc_xact_callback(XactEvent event, void *arg);
static void cdc_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								 SubTransactionId parentSubid, void *arg);

/*
 * kafka_fdw.cdc_create(name, server, publication, topic_prefix, snapshot,
 * options)
 */
Datum
kafka_fdw_cdc_create(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *servername;
	char	   *pubname;
	char	   *prefix;
	bool		snapshot;
	Jsonb	   *options;
	char	   *slot_name;
	int			i;
	bool		have_room = false;

	for (i = 0; i < 3; i++)
	{
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"%s\" of cdc_create must not be null",
							i == 0 ? "name" : i == 1 ? "server" : "publication")));
	}
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	servername = text_to_cstring(PG_GETARG_TEXT_PP(1));
	pubname = text_to_cstring(PG_GETARG_TEXT_PP(2));
	prefix = PG_ARGISNULL(3) ? name : text_to_cstring(PG_GETARG_TEXT_PP(3));
	snapshot = PG_ARGISNULL(4) ? true : PG_GETARG_BOOL(4);
	options = PG_ARGISNULL(5) ? NULL : PG_GETARG_JSONB_P(5);

	if (kfdw_cdc_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kafka_fdw is not loaded through shared_preload_libraries"),
				 errdetail("Change data capture runs in background workers that only a preloaded library can start."),
				 errhint("Add kafka_fdw to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (wal_level < WAL_LEVEL_LOGICAL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("change data capture requires wal_level \"logical\""),
				 errhint("Set wal_level = logical in postgresql.conf and restart the server.")));
	if (!superuser() && !has_rolreplication(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to create stream \"%s\"", name),
				 errdetail("Only superusers and roles with the REPLICATION attribute may create streams."),
				 errhint("Run ALTER ROLE ... REPLICATION as a superuser, or call cdc_create as a superuser.")));

	check_name(name);
	check_topic_prefix(prefix);
	check_server(servername);
	check_publication(pubname);
	if (options)
		check_options(options);

	slot_name = kfdw_cdc_slot_name(MyDatabaseId, name);

	SPI_connect();
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(name)};

		if (SPI_execute_with_args("SELECT 1 FROM kafka_fdw.cdc_streams "
								  "WHERE name OPERATOR(pg_catalog.=) $1",
								  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up stream \"%s\"", name);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("stream \"%s\" already exists", name),
					 errhint("Choose another name, or drop the stream first with kafka_fdw.cdc_drop().")));
	}
	if (SearchNamedReplicationSlot(slot_name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("replication slot \"%s\" already exists", slot_name),
				 errhint("Drop the leftover slot with pg_drop_replication_slot() if no stream uses it.")));

	LWLockAcquire(kfdw_cdc_shared->lock, LW_SHARED);
	for (i = 0; i < kfdw_cdc_max_streams; i++)
		have_room |= !kfdw_cdc_shared->streams[i].in_use;
	LWLockRelease(kfdw_cdc_shared->lock);
	if (!have_room)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many kafka_fdw streams"),
				 errdetail("A cluster can have at most %d streams.",
						   kfdw_cdc_max_streams),
				 errhint("Raise kafka_fdw.max_streams, which takes effect when the server restarts.")));

	/*
	 * Without a snapshot, the slot must exist when this transaction commits
	 * so that nothing committed afterwards is missed.  It is created before
	 * the row is written (a transaction that wrote cannot create a logical
	 * slot), stays ephemeral until commit and disappears on abort.
	 */
	if (!snapshot)
		create_slot(slot_name);

	{
		Oid			argtypes[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		BOOLOID, JSONBOID, OIDOID};
		Datum		values[8];

		values[0] = CStringGetTextDatum(name);
		values[1] = CStringGetTextDatum(servername);
		values[2] = CStringGetTextDatum(pubname);
		values[3] = CStringGetTextDatum(slot_name);
		values[4] = CStringGetTextDatum(prefix);
		values[5] = BoolGetDatum(snapshot);
		values[6] = options ? JsonbPGetDatum(options) :
			DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
		values[7] = ObjectIdGetDatum(GetUserId());
		kfdw_cdc_run_as_superuser("INSERT INTO kafka_fdw.cdc_streams "
						 "(name, server, publication, slot_name, topic_prefix, "
						 "snapshot, snapshot_done, options, owner) "
						 "VALUES ($1, $2, $3, $4, $5, $6, NOT $6, $7, $8::pg_catalog.regrole)",
						 8, argtypes, values, NULL);
	}
	SPI_finish();

	/* the trigger on kafka_fdw.cdc_streams has the launcher start it */
	PG_RETURN_VOID();
}

/*
 * kafka_fdw.cdc_drop(name)
 *
 * Dropping the slot cannot be undone: a transaction that calls cdc_drop
 * and then rolls back keeps the stream, whose worker then starts from a
 * new slot (and a new snapshot if the stream has one).
 */
Datum
kafka_fdw_cdc_drop(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *slot_name;
	Oid			owner;
	int			index = -1;
	pid_t		pid = 0;

	SPI_connect();
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(name)};
		bool		isnull;

		if (SPI_execute_with_args("SELECT slot_name, owner::pg_catalog.oid "
								  "FROM kafka_fdw.cdc_streams "
								  "WHERE name OPERATOR(pg_catalog.=) $1",
								  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up stream \"%s\"", name);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("stream \"%s\" does not exist", name),
					 errhint("The streams of this database are listed in kafka_fdw.cdc_status.")));
		slot_name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 2,
											   &isnull));

		if (!superuser() &&
			!(has_rolreplication(GetUserId()) &&
			  has_privs_of_role(GetUserId(), owner)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to drop stream \"%s\"", name),
					 errdetail("Only superusers and the stream's owner, with the REPLICATION attribute, may drop it.")));

		/*
		 * A stream this transaction created is not in the registry yet, and
		 * its slot may still be the ephemeral one this backend holds.
		 */
		if (is_pending_create(name) ||
			(own_slot && MyReplicationSlot != NULL &&
			 strcmp(NameStr(MyReplicationSlot->data.name), slot_name) == 0))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot drop a stream created in the same transaction"),
					 errhint("Commit the transaction that created stream \"%s\" first, or roll it back.",
							 name)));

		kfdw_cdc_run_as_superuser("DELETE FROM kafka_fdw.cdc_streams "
						 "WHERE name OPERATOR(pg_catalog.=) $1",
						 1, argtypes, values, NULL);
	}
	SPI_finish();

	/* stop the worker and keep the launcher from starting it again */
	if (kfdw_cdc_shared)
	{
		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		index = kfdw_cdc_find_stream(MyDatabaseId, name);
		if (index >= 0)
		{
			kfdw_cdc_shared->streams[index].drop_requested = true;
			pid = kfdw_cdc_shared->streams[index].pid;
		}
		LWLockRelease(kfdw_cdc_shared->lock);
		remember(&pending_drops, name);

		if (pid != 0)
			kill(pid, SIGTERM);
		while (index >= 0)
		{
			LWLockAcquire(kfdw_cdc_shared->lock, LW_SHARED);
			pid = kfdw_cdc_shared->streams[index].pid;
			LWLockRelease(kfdw_cdc_shared->lock);
			if (pid == 0)
				break;
			kfdw_nap(10L, kfdw_wait_event(KFDW_WAIT_CDC_STOP));
		}
	}

	/* drop the slot once the exiting worker has let go of it */
	kfdw_cdc_drop_slot_when_released(slot_name);

	PG_RETURN_VOID();
}

/*
 * kafka_fdw.cdc_worker_status(): the workers of this database's streams,
 * as shared memory knows them.
 */
Datum
kafka_fdw_cdc_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *owned = NIL;	/* names of streams whose errors we may read */
	bool		read_all = kfdw_cdc_can_read_error(InvalidOid);
	ListCell   *lc;
	uint64		n;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (kfdw_cdc_shared == NULL)
		return (Datum) 0;

	/* the owners of this database's streams */
	SPI_connect();
	if (SPI_execute("SELECT name, owner::pg_catalog.oid FROM kafka_fdw.cdc_streams",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kafka_fdw.cdc_streams");
	for (n = 0; n < SPI_processed; n++)
	{
		bool		isnull;
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[n],
														   SPI_tuptable->tupdesc,
														   2, &isnull));

		if (!read_all && kfdw_cdc_can_read_error(owner))
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);

			owned = lappend(owned, pstrdup(SPI_getvalue(SPI_tuptable->vals[n],
													   SPI_tuptable->tupdesc, 1)));
			MemoryContextSwitchTo(oldcxt);
		}
	}
	SPI_finish();

	LWLockAcquire(kfdw_cdc_shared->lock, LW_SHARED);
	for (i = 0; i < kfdw_cdc_max_streams; i++)
	{
		KafkaCdcStream *s = &kfdw_cdc_shared->streams[i];
		Datum		values[8];
		bool		nulls[8] = {false};
		bool		may_read = read_all;

		if (!s->in_use || s->kind != KFDW_STREAM_CDC || s->dboid != MyDatabaseId)
			continue;
		foreach(lc, owned)
		{
			if (strcmp((char *) lfirst(lc), NameStr(s->name)) == 0)
				may_read = true;
		}
		values[0] = CStringGetTextDatum(NameStr(s->name));
		values[1] = CStringGetTextDatum(kfdw_cdc_state_name(s->pid != 0 ||
															s->state == KFDW_CDC_WAITING
															? s->state
															: KFDW_CDC_STOPPED));
		values[2] = Int32GetDatum(s->pid);
		nulls[2] = (s->pid == 0);
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&s->messages_sent));
		values[4] = CStringGetTextDatum(s->last_error);
		nulls[4] = (s->last_error[0] == '\0' || !may_read);
		values[5] = TimestampTzGetDatum(s->last_error_at);
		nulls[5] = (s->last_error_at == 0);
		values[6] = LSNGetDatum(s->undelivered_lsn);
		nulls[6] = XLogRecPtrIsInvalid(s->undelivered_lsn);
		values[7] = TimestampTzGetDatum(s->undelivered_at);
		nulls[7] = (s->undelivered_at == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(kfdw_cdc_shared->lock);

	return (Datum) 0;
}

/*
 * Trigger after INSERT on kafka_fdw.cdc_streams: a stream that arrives
 * otherwise than by cdc_create (pg_restore) is started at commit too.
 */
Datum
kafka_fdw_cdc_streams_inserted(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			nspoid = get_namespace_oid("kafka_fdw", true);
	Oid			streams_relid = InvalidOid;
	char	   *name;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"cdc_streams_inserted\" must be fired as a trigger")));

	/*
	 * Only kafka_fdw's own table may fire it: a row of another table would
	 * take a place in the shared registry and start a worker.  The
	 * extension is not relocatable: its schema is kafka_fdw.
	 */
	if (OidIsValid(nspoid))
		streams_relid = get_relname_relid("cdc_streams", nspoid);
	if (!OidIsValid(streams_relid) ||
		RelationGetRelid(trigdata->tg_relation) != streams_relid)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"cdc_streams_inserted\" may only be fired by table kafka_fdw.cdc_streams")));

	name = SPI_getvalue(trigdata->tg_trigtuple, trigdata->tg_relation->rd_att, 1);
	if (name != NULL)
		remember(&pending_creates, name);

	return PointerGetDatum(trigdata->tg_trigtuple);
}

/* Stream names become slot names: lower-case letters, digits, underscores */
static void
check_name(const char *name)
{
	const char *p;

	if (name[0] == '\0' || strlen(name) > CDC_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid stream name \"%s\"", name),
				 errhint("A stream name has 1 to %d characters.", CDC_MAX_NAME_LEN)));
	for (p = name; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("invalid stream name \"%s\"", name),
					 errhint("A stream name may contain only lower case letters, digits and underscores.")));
	}
}

/* Kafka topic names: letters, digits, '.', '_' and '-' */
static void
check_topic_prefix(const char *prefix)
{
	const char *p;

	if (prefix[0] == '\0' || strlen(prefix) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid topic prefix \"%s\"", prefix),
				 errhint("A topic prefix has 1 to 200 characters.")));
	for (p = prefix; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid topic prefix \"%s\"", prefix),
					 errhint("Kafka topic names may contain only ASCII letters, digits, \".\", \"_\" and \"-\".")));
	}
}

static void
check_server(const char *servername)
{
	ForeignServer *server = GetForeignServerByName(servername, true);
	ForeignDataWrapper *fdw;

	if (server == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", servername),
				 errhint("Create it with CREATE SERVER %s FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '...').",
						 quote_identifier(servername))));
	fdw = GetForeignDataWrapper(server->fdwid);
	if (!OidIsValid(fdw->fdwhandler) ||
		strcmp(get_func_name(fdw->fdwhandler), "kafka_fdw_handler") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a kafka_fdw server", servername)));
	if (KFDW_FOREIGN_SERVER_ACLCHECK(server->serverid, GetUserId(), ACL_USAGE) !=
		ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for foreign server %s", servername),
				 errhint("The stream sends its messages with USAGE on the server and your user mapping.")));
}

/*
 * The publication must exist; a role that is not superuser must own every
 * table it publishes (a slot would let it read them all).
 */
static void
check_publication(const char *pubname)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	uint64		i;

	if (!OidIsValid(get_publication_oid(pubname, true)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("publication \"%s\" does not exist", pubname),
				 errhint("Create it first, for example CREATE PUBLICATION %s FOR TABLE ...;",
						 quote_identifier(pubname))));
	if (superuser())
		return;

	values[0] = CStringGetTextDatum(pubname);
	SPI_connect();
	if (SPI_execute_with_args("SELECT c.oid, "
							  "pg_catalog.format('%I.%I', t.schemaname, t.tablename) "
							  "FROM pg_catalog.pg_publication_tables t "
							  "JOIN pg_catalog.pg_namespace n "
							  "ON n.nspname OPERATOR(pg_catalog.=) t.schemaname "
							  "JOIN pg_catalog.pg_class c "
							  "ON c.relnamespace OPERATOR(pg_catalog.=) n.oid "
							  "AND c.relname OPERATOR(pg_catalog.=) t.tablename "
							  "WHERE t.pubname OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the tables of publication \"%s\"", pubname);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc,
														   1, &isnull));

		if (!KFDW_CLASS_OWNERCHECK(relid, GetUserId()))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to stream table %s",
							SPI_getvalue(SPI_tuptable->vals[i],
										 SPI_tuptable->tupdesc, 2)),
					 errdetail("Publication \"%s\" publishes a table that you do not own.",
							   pubname),
					 errhint("Only superusers may stream tables of other roles.")));
	}
	SPI_finish();
}

/* options: Debezium's, checked by parsing them */
static void
check_options(Jsonb *options)
{
	KafkaCdcOptions opts;

	kfdw_cdc_parse_options(options, &opts);
}

/*
 * Create the stream's logical slot (pgoutput) in this transaction, as
 * pg_create_logical_replication_slot() does.  It stays ephemeral, held by
 * this backend, until the transaction commits.
 */
static void
create_slot(const char *slot_name)
{
	LogicalDecodingContext *ctx;

	if (MyReplicationSlot != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot create two streams without a snapshot in one transaction"),
				 errhint("Call cdc_create in separate transactions.")));
	CheckSlotPermissions();
	CheckLogicalDecodingRequirements();

	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot create a stream without a snapshot in a transaction that has performed writes"),
				 errhint("Call cdc_create at the start of its transaction.")));

	if (!xact_callback_registered)
	{
		RegisterXactCallback(cdc_xact_callback, NULL);
		RegisterSubXactCallback(cdc_subxact_callback, NULL);
		xact_callback_registered = true;
	}

	ctx = kfdw_cdc_new_slot(slot_name, false);
	own_slot = true;
	slot_subid = GetCurrentSubTransactionId();
	FreeDecodingContext(ctx);
}

/*
 * Run a statement on kafka_fdw's own tables as the bootstrap superuser:
 * the caller's rights were checked, and the tables are not writable by
 * roles that merely hold REPLICATION.  As for any security-restricted
 * operation, search_path is pg_catalog then pg_temp (which is otherwise
 * searched first), so that no object of the caller's can stand in for a
 * built-in one.
 */
void
kfdw_cdc_run_as_superuser(const char *sql, int nargs, Oid *argtypes,
						  Datum *values, const char *nulls)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	int			ret;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	ret = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

static void
remember(List **list, const char *name)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

	*list = lappend(*list, pstrdup(name));
	MemoryContextSwitchTo(oldcxt);

	if (!xact_callback_registered)
	{
		RegisterXactCallback(cdc_xact_callback, NULL);
		RegisterSubXactCallback(cdc_subxact_callback, NULL);
		xact_callback_registered = true;
	}
}

/* Did this transaction create stream name? */
static bool
is_pending_create(const char *name)
{
	ListCell   *lc;

	foreach(lc, pending_creates)
	{
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	}
	return false;
}

/*
 * May the current user read the last error of a stream owned by owner?  It
 * can quote row values and broker text: the owner's roles, superusers and
 * pg_read_all_stats may (as for other sessions' pg_stat_activity.query).
 */
bool
kfdw_cdc_can_read_error(Oid owner)
{
	Oid			userid = GetUserId();

	return superuser() ||
		(OidIsValid(owner) && has_privs_of_role(userid, owner)) ||
		has_privs_of_role(userid, ROLE_PG_READ_ALL_STATS);
}

/*
 * At commit: persist the slot cdc_create made, enter new streams in the
 * registry, forget dropped ones, and wake the launcher.  At abort: let go
 * of the ephemeral slot (which drops it) and let dropped streams run again.
 */
static void
cdc_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;
	bool		wake = false;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (own_slot && MyReplicationSlot != NULL)
			{
				ReplicationSlotPersist();
				ReplicationSlotRelease();
			}
			own_slot = false;
			break;

		case XACT_EVENT_PRE_PREPARE:
			if (pending_creates || pending_drops)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that created or dropped a kafka_fdw stream")));
			break;

		case XACT_EVENT_COMMIT:
			if (kfdw_cdc_shared)
			{
				LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
				foreach(lc, pending_drops)
				{
					int			i = kfdw_cdc_find_stream(MyDatabaseId, lfirst(lc));

					if (i >= 0)
						kfdw_cdc_shared->streams[i].in_use = false;
				}
				foreach(lc, pending_creates)
				{
					if (kfdw_cdc_register_stream(MyDatabaseId, lfirst(lc)) < 0)
						ereport(WARNING,
								(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
								 errmsg("too many kafka_fdw streams, stream \"%s\" is not started",
										(char *) lfirst(lc)),
								 errhint("Raise kafka_fdw.max_streams, which takes effect when the server restarts.")));
				}
				LWLockRelease(kfdw_cdc_shared->lock);
				wake = true;
			}
			list_free_deep(pending_creates);
			list_free_deep(pending_drops);
			pending_creates = pending_drops = NIL;
			break;

		case XACT_EVENT_ABORT:
			if (own_slot && MyReplicationSlot != NULL)
				ReplicationSlotRelease();
			own_slot = false;
			if (kfdw_cdc_shared && pending_drops)
			{
				LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
				foreach(lc, pending_drops)
				{
					int			i = kfdw_cdc_find_stream(MyDatabaseId, lfirst(lc));

					if (i >= 0)
						kfdw_cdc_shared->streams[i].drop_requested = false;
				}
				LWLockRelease(kfdw_cdc_shared->lock);
				wake = true;
			}
			list_free_deep(pending_creates);
			list_free_deep(pending_drops);
			pending_creates = pending_drops = NIL;
			break;

		default:
			break;
	}

	if (wake)
		kfdw_cdc_wakeup_launcher();
}

/*
 * A rolled-back subtransaction takes the slot it created with it.  (A
 * stream it entered in pending_creates finds no row when its worker starts,
 * and the worker forgets it.)
 */
static void
cdc_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	if (!own_slot)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB && mySubid == slot_subid)
	{
		if (MyReplicationSlot != NULL)
			ReplicationSlotRelease();
		own_slot = false;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB && mySubid == slot_subid)
		slot_subid = parentSubid;
}
