/*-------------------------------------------------------------------------
 *
 * worker.c
 *		  One worker of an ingest stream: consume, write, commit the offsets
 *
 * The launcher (cdc/launcher.c) starts the workers of every stream that is
 * not paused, one registry entry each, and starts them again with backoff
 * after an error or a crash.  A worker consumes its partitions of the
 * source's topic, decodes each message into a row of the source foreign
 * table (format/decode.c), writes the rows into the target (ingest/apply.c)
 * in batches, and stores the next offset of each partition in
 * kafka_fdw.ingest_offsets in the same transaction as the batch's rows:
 * after any crash the worker starts again from what was committed, so no
 * message is lost and none is written twice.
 *
 * Without group.id, worker w of n reads the partitions p with p % n = w,
 * assigned by itself.  With group.id, every worker joins that Kafka
 * consumer group (with the workers of other servers); Kafka assigns the
 * partitions, and on each assignment the worker starts from the larger of
 * the offset stored in its own database and the group's committed offset
 * (messages before it are dropped), or from the start position where
 * there is neither.  After each batch is committed in the database, its
 * offsets are committed to the group too, so that the next owner of a
 * partition knows where this one got to and Kafka's tools show the lag;
 * before partitions are given up, that commit is waited for.
 *
 * A batch ends after batch.rows messages or batch.ms milliseconds.  Its
 * messages are kept until it commits: when one of them cannot be ingested
 * (it is not a row of the source, or the target refuses it), the batch is
 * rolled back, written again without it and committed; the message is then
 * skipped, kept in the dead-letter table, or stops the stream (on_error).
 *
 * The worker connects as the bootstrap superuser, which kafka_fdw's own
 * tables need; whatever runs code of the tables and types of the stream
 * (decoding with the source's column types, the target's triggers,
 * defaults and constraints) runs as the stream's owner in a
 * security-restricted operation (kfdw_cdc_become_owner).
 *
 * IDENTIFICATION
 *		  src/ingest/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "ingest/ingest.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fdw/fdw.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/* How often the worker looks at its stream's row (paused, dropped) */
#define INGEST_CHECK_MS 1000
/* Longest wait for messages when no batch is open */
#define INGEST_IDLE_WAIT_MS 1000
/* Messages taken from the consumer at a time */
#define INGEST_FETCH_MAX 1000
/* How often a worker without group looks for new partitions */
#define INGEST_PARTITIONS_CHECK_MS 30000

/* The stream, as its row in kafka_fdw.ingest_streams says */
typedef struct IngestConfig
{
	char	   *name;
	Oid			source;
	Oid			target;
	KafkaIngestMode mode;
	KafkaIngestOptions opts;
	Oid			owner;
	Oid			dead_letter;	/* or InvalidOid */
	bool		paused;
} IngestConfig;

/* A partition of the topic, as this worker knows it */
typedef struct IngestPartition
{
	bool		mine;			/* assigned to this worker */
	int64		next_offset;	/* next to ingest; -1: from the start position */
	int64		committed;		/* next_offset as the database (or, if larger, the group) has it */
	int64		store;			/* to store with the batch being written */
	bool		touched;		/* store is set */
} IngestPartition;

static IngestConfig config;
static KafkaCdcStream *me;		/* this worker's registry entry */
static int	worker_no;
static MemoryContext worker_cxt;
static MemoryContext batch_cxt;	/* the open batch's target */
static MemoryContext row_cxt;	/* one message */

static KafkaTableOptions source_opts;
static KafkaDecoder decoder;
static TupleTableSlot *source_slot;
static KafkaHandle *consumer;
static const char *consumer_settings[8];

static int	nparts;
static IngestPartition *parts;

/* the open batch: its messages, kept until it commits */
static rd_kafka_message_t **batch_msgs;
static int	batch_n;
static int	batch_cap;
static TimestampTz batch_started;
static bool *batch_bad;			/* messages known to fail */
static char **batch_errors;

/* a rebalance of the group, noted by the callback, done by the loop */
static bool rebalance_pending = false;
static rd_kafka_resp_err_t rebalance_err;
static rd_kafka_topic_partition_list_t *rebalance_parts;

static void worker_on_exit(int code, Datum arg);
static void forget_entry(void);
static void load_config(void);
static void set_state(KafkaCdcState state);
static void set_error(const char *message);
static void consumer_error_cb(KafkaHandle *handle, int err, const char *reason);
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
						 rd_kafka_topic_partition_list_t *partitions,
						 void *opaque);
static void make_consumer(void);
static void read_offsets(void);
static void assign_own_partitions(bool initial);
static void resolve_start(rd_kafka_topic_partition_list_t *list);
static void handle_rebalance(void);
static void ingest_loop(void);
static void take_message(rd_kafka_message_t *msg);
static void commit_batch(void);
static bool write_batch(int upto, ErrorData **edata, int *failed);
static void apply_message(KafkaIngestTarget *t, rd_kafka_message_t *msg);
static void store_offsets(void);
static void commit_group_offsets(void);
static rd_kafka_topic_partition_list_t *group_position(void);
static void free_batch(void);
static bool is_message_error(int sqlerrcode);
static void stop_stream(const char *error);
static bool stream_still_wanted(void);

/*
 * Main of an ingest worker.  main_arg is its registry index.
 */
void
kfdw_ingest_worker_main(Datum main_arg)
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
	if (!me->in_use || me->kind != KFDW_STREAM_INGEST || me->drop_requested ||
		me->dboid != dboid || (me->pid != 0 && kill(me->pid, 0) == 0))
		go = false;
	else
	{
		me->pid = MyProcPid;
		me->state = (me->state == KFDW_CDC_RETRYING ||
					 me->state == KFDW_CDC_WAITING)
			? KFDW_CDC_RETRYING : KFDW_CDC_STARTING;
		/* until a batch commits, every start counts for the backoff */
		me->failures++;
		worker_no = me->worker_no;
	}
	LWLockRelease(kfdw_cdc_shared->lock);
	if (!go)
		proc_exit(0);
	before_shmem_exit(worker_on_exit, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	/* no object of another role stands in for a built-in one */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "kafka_fdw ingest worker",
									   ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(worker_cxt, "kafka_fdw ingest batch",
									  ALLOCSET_DEFAULT_SIZES);
	row_cxt = AllocSetContextCreate(worker_cxt, "kafka_fdw ingest row",
									ALLOCSET_DEFAULT_SIZES);

	PG_TRY();
	{
		load_config();
		if (config.name == NULL || config.paused ||
			worker_no >= config.opts.workers)
			forget_entry();
		pgstat_report_activity(STATE_RUNNING, "starting");
		make_consumer();
		ingest_loop();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(worker_cxt);
		edata = CopyErrorData();
		if (edata->detail)
			set_error(psprintf("%s: %s", edata->message, edata->detail));
		else
			set_error(edata->message);
		set_state(KFDW_CDC_RETRYING);
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
		me->state = me->state == KFDW_CDC_RETRYING
			? KFDW_CDC_WAITING : KFDW_CDC_STOPPED;
	}
	LWLockRelease(kfdw_cdc_shared->lock);
}

/*
 * The stream is gone, paused, or has fewer workers now: free this entry
 * (unless ingest_drop or ingest_pause, which set drop_requested, does it
 * at its commit) and exit.
 */
static void
forget_entry(void)
{
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	if (!me->drop_requested)
		me->in_use = false;
	LWLockRelease(kfdw_cdc_shared->lock);
	proc_exit(0);
}

/* Read the stream's row; config.name stays NULL if there is none */
static void
load_config(void)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	values[0] = CStringGetTextDatum(NameStr(me->name));
	config.name = NULL;
	if (SPI_execute("SELECT pg_catalog.to_regclass('kafka_fdw.ingest_streams') IS NOT NULL",
					true, 0) == SPI_OK_SELECT &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0 &&
		SPI_execute_with_args("SELECT source::pg_catalog.oid, target::pg_catalog.oid, "
							  "mode, options, owner::pg_catalog.oid, paused "
							  "FROM kafka_fdw.ingest_streams "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext oldcxt = MemoryContextSwitchTo(worker_cxt);
		Jsonb	   *options;

		config.name = pstrdup(NameStr(me->name));
		config.source = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		config.target = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		config.mode = kfdw_ingest_parse_mode(SPI_getvalue(tup, desc, 3));
		options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
		kfdw_ingest_parse_options(options, &config.opts);
		config.owner = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		config.paused = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		if (config.opts.dead_letter_table)
			config.dead_letter = kfdw_ingest_dead_letter_relid(config.opts.dead_letter_table,
															   false);
		MemoryContextSwitchTo(oldcxt);
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

static void
set_state(KafkaCdcState state)
{
	if (me->state == state)
		return;
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	me->state = state;
	LWLockRelease(kfdw_cdc_shared->lock);
	pgstat_report_activity(STATE_RUNNING,
						   state == KFDW_CDC_RETRYING ? "retrying" : "running");
}

static void
set_error(const char *message)
{
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	strlcpy(me->last_error, message, sizeof(me->last_error));
	me->last_error_at = GetCurrentTimestamp();
	LWLockRelease(kfdw_cdc_shared->lock);
}

/* librdkafka cannot reach the brokers: "retrying", with the cause */
static void
consumer_error_cb(KafkaHandle *handle, int err, const char *reason)
{
	if (kfdw_errcode(err) != ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION &&
		err != RD_KAFKA_RESP_ERR__FATAL)
		return;
	set_error(psprintf("could not consume from Kafka brokers \"%s\": %s",
					   handle->brokers, reason));
	set_state(KFDW_CDC_RETRYING);
}

/*
 * librdkafka's rebalance callback, called while the worker fetches: note
 * the new assignment; the loop commits the open batch and assigns.
 */
static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
	if (rebalance_parts)
		rd_kafka_topic_partition_list_destroy(rebalance_parts);
	rebalance_parts = partitions ? rd_kafka_topic_partition_list_copy(partitions) : NULL;
	rebalance_err = err;
	rebalance_pending = true;
}

/*
 * The consumer: the source's server with the owner's user mapping; with
 * group.id, a member of that group that assigns its partitions itself.
 */
static void
make_consumer(void)
{
	KafkaClientSpec spec = {0};
	ForeignServer *server;
	int			n = 0;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(worker_cxt);
		Oid			save_userid;
		int			save_sec_context;
		TupleDesc	desc;
		bool	   *needed;
		int			i;

		kfdw_get_table_options(config.source, &source_opts);
		if (KFDW_FOREIGN_SERVER_ACLCHECK(source_opts.serverid, config.owner,
										 ACL_USAGE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for foreign server of source \"%s\"",
							get_rel_name(config.source)),
					 errdetail("The stream's owner needs USAGE on the server.")));
		{
			Relation	rel = RelationIdGetRelation(config.source);

			desc = CreateTupleDescCopy(RelationGetDescr(rel));
			RelationClose(rel);
		}
		needed = palloc(sizeof(bool) * Max(desc->natts, 1));
		for (i = 0; i < desc->natts; i++)
			needed[i] = true;
		/* the input functions of the source's columns are the owner's code */
		kfdw_cdc_become_owner(config.owner, &save_userid, &save_sec_context);
		if (config.mode != KFDW_INGEST_DEBEZIUM)
			kfdw_decoder_init(&decoder, &source_opts, needed, worker_cxt);
		SetUserIdAndSecContext(save_userid, save_sec_context);
		source_slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);

		if (config.opts.group_id)
		{
			consumer_settings[n++] = "group.id";
			consumer_settings[n++] = config.opts.group_id;
			/* a member that died is replaced within seconds */
			consumer_settings[n++] = "session.timeout.ms";
			consumer_settings[n++] = "10000";
			spec.on_rebalance = rebalance_cb;
		}
		consumer_settings[n] = NULL;
		spec.kind = KFDW_HANDLE_CONSUMER;
		spec.client_id = psprintf("kafka_fdw ingest %s", config.name);
		spec.on_error = consumer_error_cb;
		spec.settings = consumer_settings;
		server = GetForeignServer(source_opts.serverid);
		consumer = kfdw_client_new(server, config.owner, &spec,
								   sizeof(KafkaHandle));
		kfdw_consumer_set_wake(consumer, true);
		MemoryContextSwitchTo(oldcxt);
	}

	nparts = kfdw_topic_partitions(consumer, source_opts.topic);
	parts = MemoryContextAllocZero(worker_cxt, sizeof(IngestPartition) * Max(nparts, 1));
	PopActiveSnapshot();
	CommitTransactionCommand();

	if (config.opts.group_id)
	{
		rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
		rd_kafka_resp_err_t err;

		rd_kafka_topic_partition_list_add(topics, source_opts.topic,
										  RD_KAFKA_PARTITION_UA);
		err = rd_kafka_subscribe(consumer->rk, topics);
		rd_kafka_topic_partition_list_destroy(topics);
		if (err)
			ereport(ERROR,
					(errcode(kfdw_errcode(err)),
					 errmsg("could not join Kafka consumer group \"%s\"",
							config.opts.group_id),
					 errdetail_internal("%s", rd_kafka_err2str(err))));
	}
	else
		assign_own_partitions(true);
	set_state(KFDW_CDC_STREAMING);
}

/* The stored next offsets of every partition */
static void
read_offsets(void)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int			i;
	uint64		r;

	for (i = 0; i < nparts; i++)
		parts[i].next_offset = parts[i].committed = -1;
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	values[0] = CStringGetTextDatum(config.name);
	if (SPI_execute_with_args("SELECT \"partition\", next_offset "
							  "FROM kafka_fdw.ingest_offsets "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the offsets of ingest stream \"%s\"", config.name);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int			p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
													SPI_tuptable->tupdesc, 1, &isnull));
		int64		o = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
													SPI_tuptable->tupdesc, 2, &isnull));

		if (p >= 0 && p < nparts)
			parts[p].next_offset = parts[p].committed = o;
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/*
 * Without a group: assign the partitions p with p % workers = worker_no,
 * each at its stored offset, or at the start position.
 */
static void
assign_own_partitions(bool initial)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;
	int			i;

	read_offsets();
	list = rd_kafka_topic_partition_list_new(nparts);
	for (i = 0; i < nparts; i++)
	{
		rd_kafka_topic_partition_t *tp;

		parts[i].mine = (i % config.opts.workers == worker_no);
		if (!parts[i].mine)
			continue;
		tp = rd_kafka_topic_partition_list_add(list, source_opts.topic, i);
		/* a partition added to the topic later starts at its beginning */
		tp->offset = parts[i].next_offset >= 0 ? parts[i].next_offset :
			initial ? -1 : RD_KAFKA_OFFSET_BEGINNING;
	}
	resolve_start(list);
	err = rd_kafka_assign(consumer->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err)
		ereport(ERROR,
				(errcode(kfdw_errcode(err)),
				 errmsg("could not assign partitions of Kafka topic \"%s\"",
						source_opts.topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
}

/*
 * Partitions of list with offset -1 have no stored offset: give them the
 * start position.  "latest" and a timestamp are made offsets now and
 * stored at once, so that a restart before the first batch starts from
 * the same place.
 */
static void
resolve_start(rd_kafka_topic_partition_list_t *list)
{
	bool		store = false;
	int			i;

	for (i = 0; i < list->cnt; i++)
	{
		rd_kafka_topic_partition_t *tp = &list->elems[i];

		if (tp->offset != -1)
			continue;
		if (config.opts.start == KFDW_START_EARLIEST)
			tp->offset = RD_KAFKA_OFFSET_BEGINNING;
		else
			store = true;
	}
	if (!store)
		return;

	{
		int64	   *query = palloc(sizeof(int64) * list->cnt);
		rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(list->cnt);

		for (i = 0; i < list->cnt; i++)
		{
			if (list->elems[i].offset != -1)
				continue;
			rd_kafka_topic_partition_list_add(q, source_opts.topic,
											  list->elems[i].partition);
			query[q->cnt - 1] = config.opts.start == KFDW_START_LATEST ?
				RD_KAFKA_OFFSET_END : config.opts.start_ms;
		}
		StartTransactionCommand();
		kfdw_query_offsets(consumer, q, query, "the start position");
		CommitTransactionCommand();
		/* no message at or after the time: from the end */
		for (i = 0; i < q->cnt; i++)
		{
			if (q->elems[i].offset < 0)
				break;
		}
		if (i < q->cnt)
		{
			int64	   *low,
					   *high;
			int			count;

			StartTransactionCommand();
			count = kfdw_topic_watermarks(consumer, source_opts.topic,
										  &low, &high);
			for (i = 0; i < q->cnt; i++)
			{
				if (q->elems[i].offset < 0 && q->elems[i].partition < count)
					q->elems[i].offset = high[q->elems[i].partition];
			}
			CommitTransactionCommand();
		}
		for (i = 0; i < q->cnt; i++)
		{
			int			p = q->elems[i].partition;
			int			j;

			for (j = 0; j < list->cnt; j++)
			{
				if (list->elems[j].partition == p)
					list->elems[j].offset = q->elems[i].offset;
			}
			if (p < nparts)
			{
				parts[p].next_offset = parts[p].store = q->elems[i].offset;
				parts[p].touched = true;
			}
		}
		rd_kafka_topic_partition_list_destroy(q);
		pfree(query);
	}
	/* store them, with no rows */
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	store_offsets();
	PopActiveSnapshot();
	CommitTransactionCommand();
	for (i = 0; i < nparts; i++)
	{
		if (parts[i].touched)
			parts[i].committed = parts[i].store;
		parts[i].touched = false;
	}
}

/*
 * A rebalance of the group.  On revoke: commit the open batch, commit its
 * offsets to the group and wait for them to be taken, then let the
 * partitions go, so that the next owner (maybe another server) continues
 * at the next message.  On assign: start each partition at the larger of
 * the offset stored in this database and the group's committed offset
 * (the group's is where another server got to; a larger stored one is
 * this server's own progress that the group did not hear of), or at the
 * start position where there is neither.
 */
static void
handle_rebalance(void)
{
	rd_kafka_resp_err_t err = rebalance_err;
	rd_kafka_topic_partition_list_t *list = rebalance_parts;
	int			i;

	rebalance_pending = false;
	rebalance_parts = NULL;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && list != NULL)
	{
		int64	   *group_offsets = palloc(sizeof(int64) * Max(nparts, 1));

		read_offsets();
		kfdw_member_committed(consumer, config.opts.group_id,
							  source_opts.topic, nparts, group_offsets);
		for (i = 0; i < nparts; i++)
			parts[i].mine = false;
		for (i = 0; i < list->cnt; i++)
		{
			rd_kafka_topic_partition_t *tp = &list->elems[i];
			IngestPartition *part;

			if (tp->partition >= nparts)
			{
				/* the topic has grown: start again, with its partitions */
				rd_kafka_topic_partition_list_destroy(list);
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("Kafka topic \"%s\" has new partitions",
								source_opts.topic),
						 errdetail("The worker restarts to ingest them.")));
			}
			part = &parts[tp->partition];
			part->mine = true;
			/*
			 * Messages before next_offset are dropped (take_message); the
			 * group is never told an offset older than its own.
			 */
			if (group_offsets[tp->partition] > part->next_offset)
				part->next_offset = part->committed = group_offsets[tp->partition];
			tp->offset = part->next_offset;
		}
		pfree(group_offsets);
		resolve_start(list);
		err = rd_kafka_assign(consumer->rk, list);
		elog(LOG, "kafka_fdw ingest stream \"%s\": %d partitions of topic \"%s\" assigned by group \"%s\"",
			 config.name, list->cnt, source_opts.topic, config.opts.group_id);
	}
	else
	{
		char		errstr[512];

		commit_batch();
		if (list)
			rd_kafka_topic_partition_list_destroy(list);
		list = group_position();
		if (list->cnt > 0 &&
			!kfdw_member_commit(consumer, list, errstr, sizeof(errstr)))
			elog(LOG, "kafka_fdw ingest stream \"%s\": could not commit offsets to group \"%s\" before giving its partitions up: %s",
				 config.name, config.opts.group_id, errstr);
		kfdw_consumer_clear(consumer);
		for (i = 0; i < nparts; i++)
			parts[i].mine = false;
		err = rd_kafka_assign(consumer->rk, NULL);
	}
	if (list)
		rd_kafka_topic_partition_list_destroy(list);
	if (err)
		ereport(ERROR,
				(errcode(kfdw_errcode(err)),
				 errmsg("could not assign partitions of Kafka topic \"%s\"",
						source_opts.topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
}

/*
 * The worker's loop: fetch, keep each message in the open batch, commit
 * the batch when it is full or old enough.
 */
static void
ingest_loop(void)
{
	TimestampTz last_check = GetCurrentTimestamp();
	TimestampTz last_parts_check = last_check;

	for (;;)
	{
		rd_kafka_message_t *msg;
		int			wait_ms = INGEST_IDLE_WAIT_MS;
		TimestampTz now;
		int			n;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (batch_n > 0)
		{
			long		elapsed = TimestampDifferenceMilliseconds(batch_started,
																  GetCurrentTimestamp());

			wait_ms = Max(config.opts.batch_ms - (int) elapsed, 0);
		}
		n = kfdw_consumer_fetch(consumer, INGEST_FETCH_MAX, wait_ms);
		if (n < 0)
			ereport(ERROR,
					(errcode(kfdw_errcode(rd_kafka_last_error())),
					 errmsg("could not read Kafka topic \"%s\"", source_opts.topic),
					 kfdw_errdetail_kafka(consumer, rd_kafka_last_error(), NULL)));
		if (rebalance_pending)
			handle_rebalance();

		while ((msg = kfdw_consumer_peek(consumer)) != NULL)
		{
			if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			{
				set_state(KFDW_CDC_STREAMING);
				kfdw_consumer_next(consumer);
				continue;
			}
			if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				int			code = kfdw_errcode(msg->err);

				/* librdkafka retries these itself */
				if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
					code == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
				{
					set_error(psprintf("could not read Kafka topic \"%s\": %s",
									   source_opts.topic,
									   rd_kafka_message_errstr(msg)));
					set_state(KFDW_CDC_RETRYING);
					kfdw_consumer_next(consumer);
					continue;
				}
				ereport(ERROR,
						(errcode(code),
						 errmsg("could not read Kafka topic \"%s\"", source_opts.topic),
						 errdetail_internal("%s", rd_kafka_message_errstr(msg))));
			}
			take_message(kfdw_consumer_take(consumer));
			if (batch_n >= config.opts.batch_rows)
				commit_batch();
		}

		now = GetCurrentTimestamp();
		if (batch_n > 0 &&
			TimestampDifferenceExceeds(batch_started, now, config.opts.batch_ms))
			commit_batch();
		if (batch_n == 0 &&
			TimestampDifferenceExceeds(last_check, now, INGEST_CHECK_MS))
		{
			last_check = now;
			if (!stream_still_wanted())
				forget_entry();
		}
		/* not while Kafka cannot be reached: the worker would end on it */
		if (batch_n == 0 && config.opts.group_id == NULL &&
			me->state == KFDW_CDC_STREAMING &&
			TimestampDifferenceExceeds(last_parts_check, now,
									   INGEST_PARTITIONS_CHECK_MS))
		{
			int			count;

			last_parts_check = now;
			StartTransactionCommand();
			count = kfdw_topic_partitions(consumer, source_opts.topic);
			CommitTransactionCommand();
			if (count > nparts)
			{
				parts = repalloc(parts, sizeof(IngestPartition) * count);
				memset(parts + nparts, 0, sizeof(IngestPartition) * (count - nparts));
				nparts = count;
				assign_own_partitions(false);
			}
		}
	}
}

/* Keep a fetched message in the open batch, or drop it if it is not ours */
static void
take_message(rd_kafka_message_t *msg)
{
	int			p = msg->partition;

	if (p < 0 || p >= nparts || !parts[p].mine ||
		(parts[p].next_offset >= 0 && msg->offset < parts[p].next_offset))
	{
		rd_kafka_message_destroy(msg);
		return;
	}
	if (batch_n == batch_cap)
	{
		int			cap = Max(batch_cap * 2, 1024);

		batch_msgs = batch_msgs ?
			repalloc(batch_msgs, sizeof(rd_kafka_message_t *) * cap) :
			MemoryContextAlloc(worker_cxt, sizeof(rd_kafka_message_t *) * cap);
		batch_bad = batch_bad ? repalloc(batch_bad, sizeof(bool) * cap) :
			MemoryContextAlloc(worker_cxt, sizeof(bool) * cap);
		batch_errors = batch_errors ? repalloc(batch_errors, sizeof(char *) * cap) :
			MemoryContextAlloc(worker_cxt, sizeof(char *) * cap);
		batch_cap = cap;
	}
	if (batch_n == 0)
		batch_started = GetCurrentTimestamp();
	batch_bad[batch_n] = false;
	batch_errors[batch_n] = NULL;
	batch_msgs[batch_n++] = msg;
	parts[p].next_offset = msg->offset + 1;
}

/*
 * Write the open batch and commit it with its offsets.  A message that
 * fails is marked, and the batch is written again up to it; then that
 * message is skipped, kept as a dead letter, or stops the stream.
 */
static void
commit_batch(void)
{
	ErrorData  *edata;
	int			failed;
	int			upto = batch_n;

	if (batch_n == 0)
		return;
	while (!write_batch(upto, &edata, &failed))
	{
		char	   *error;

		if (!is_message_error(edata->sqlerrcode))
			ReThrowError(edata);
		error = edata->detail
			? psprintf("%s: %s", edata->message, edata->detail)
			: pstrdup(edata->message);
		error = psprintf("%s (Kafka topic \"%s\", partition %d, offset " INT64_FORMAT ")",
						 error, source_opts.topic, batch_msgs[failed]->partition,
						 batch_msgs[failed]->offset);
		batch_bad[failed] = true;
		batch_errors[failed] = MemoryContextStrdup(worker_cxt, error);
		if (config.opts.on_error == KFDW_ON_ERROR_STOP)
		{
			/* what came before it goes in; it and what follows do not */
			upto = failed;
			if (upto > 0 && !write_batch(upto, &edata, &failed))
				ReThrowError(edata);
			free_batch();
			stop_stream(error);
		}
	}
	free_batch();
}

/*
 * One transaction: the batch's first upto messages into the target, and
 * the offsets.  Returns false, with the error and the index of the message
 * that caused it, if a message failed (the transaction is rolled back).
 */
static bool
write_batch(int upto, ErrorData **edata, int *failed)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile int current = -1;
	int64		rows_before = 0;
	int			skipped = 0;
	int			i;

	/* the offsets after the messages written */
	for (i = 0; i < nparts; i++)
		parts[i].touched = false;
	for (i = 0; i < upto; i++)
	{
		IngestPartition *part = &parts[batch_msgs[i]->partition];

		part->store = batch_msgs[i]->offset + 1;
		part->touched = true;
	}

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		Oid			save_userid;
		int			save_sec_context;
		KafkaIngestTarget *t;

		/* the target's triggers, defaults and checks are the owner's code */
		kfdw_cdc_become_owner(config.owner, &save_userid, &save_sec_context);
		t = kfdw_ingest_target_open(config.target, &source_opts, config.mode,
									&config.opts, batch_cxt);
		for (i = 0; i < upto; i++)
		{
			current = i;
			if (batch_bad[i])
			{
				if (config.opts.on_error == KFDW_ON_ERROR_DEAD_LETTER)
					kfdw_ingest_dead_letter(config.dead_letter, config.name,
											batch_msgs[i], batch_errors[i]);
				skipped++;
				continue;
			}
			apply_message(t, batch_msgs[i]);
			rows_before++;
		}
		current = -1;
		kfdw_ingest_target_close(t);
		/* deferred triggers of the target are the owner's code too */
		AfterTriggerFireDeferred();
		SetUserIdAndSecContext(save_userid, save_sec_context);
		store_offsets();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		*edata = CopyErrorData();
		*failed = current;
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextReset(batch_cxt);
		MemoryContextReset(row_cxt);
		/* a failure outside any message is not the message's */
		if (current < 0)
			ReThrowError(*edata);
		return false;
	}
	PG_END_TRY();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(batch_cxt);

	for (i = 0; i < nparts; i++)
	{
		if (parts[i].touched)
			parts[i].committed = parts[i].store;
		parts[i].touched = false;
	}
	pg_atomic_add_fetch_u64(&me->messages_sent, upto - skipped);
	pg_atomic_add_fetch_u64(&me->rows, rows_before);
	pg_atomic_add_fetch_u64(&me->skipped, skipped);
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	me->last_batch_at = GetCurrentTimestamp();
	me->failures = 0;
	if (me->state == KFDW_CDC_RETRYING || me->state == KFDW_CDC_STARTING)
		me->state = KFDW_CDC_STREAMING;
	LWLockRelease(kfdw_cdc_shared->lock);
	commit_group_offsets();
	return true;
}

/* One message into the target (as the owner, in the batch's transaction) */
static void
apply_message(KafkaIngestTarget *t, rd_kafka_message_t *msg)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(row_cxt);
	KafkaIngestChange change;

	if (config.mode == KFDW_INGEST_DEBEZIUM)
		kfdw_ingest_change_from_debezium(t, msg, &change);
	else
	{
		kfdw_decode_message(&decoder, msg, source_slot);
		/* ignore_junk without junk columns: the message is left out */
		if (decoder.junk_reason != NULL && source_opts.ignore_junk &&
			source_opts.junk_attnum == InvalidAttrNumber &&
			source_opts.junk_error_attnum == InvalidAttrNumber)
			change.op = 0;
		else
			kfdw_ingest_change_from_row(t, source_slot, msg, &change);
	}
	(void) kfdw_ingest_apply(t, &change);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(row_cxt);
}

/*
 * Store the next offset (and the high watermark librdkafka last saw) of
 * every partition the batch touched, in the batch's transaction, as the
 * worker's own role.
 */
static void
store_offsets(void)
{
	Oid			argtypes[4] = {TEXTOID, INT4OID, INT8OID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int			i;

	SPI_connect();
	values[0] = CStringGetTextDatum(config.name);
	for (i = 0; i < nparts; i++)
	{
		int64		low,
					high;

		if (!parts[i].touched)
			continue;
		values[1] = Int32GetDatum(i);
		values[2] = Int64GetDatum(parts[i].store);
		if (rd_kafka_get_watermark_offsets(consumer->rk, source_opts.topic, i,
										   &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
			high >= 0)
		{
			values[3] = Int64GetDatum(Max(high, parts[i].store));
			nulls[3] = ' ';
		}
		else
			nulls[3] = 'n';
		if (SPI_execute_with_args("INSERT INTO kafka_fdw.ingest_offsets "
								  "(name, \"partition\", next_offset, high_watermark) "
								  "VALUES ($1, $2, $3, $4) "
								  "ON CONFLICT (name, \"partition\") DO UPDATE "
								  "SET next_offset = EXCLUDED.next_offset, "
								  "high_watermark = EXCLUDED.high_watermark",
								  4, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store the offsets of ingest stream \"%s\"",
				 config.name);
	}
	SPI_finish();
}

/* The committed next offset of each of this worker's partitions */
static rd_kafka_topic_partition_list_t *
group_position(void)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
	int			i;

	for (i = 0; i < nparts; i++)
	{
		if (parts[i].mine && parts[i].committed >= 0)
			rd_kafka_topic_partition_list_add(list, source_opts.topic, i)->offset =
				parts[i].committed;
	}
	return list;
}

/* After a batch committed: its offsets to the group, for Kafka's tools */
static void
commit_group_offsets(void)
{
	rd_kafka_topic_partition_list_t *list;

	if (config.opts.group_id == NULL)
		return;
	list = group_position();
	if (list->cnt > 0)
	{
		rd_kafka_resp_err_t err = rd_kafka_commit(consumer->rk, list, 1);

		if (err)
			elog(LOG, "kafka_fdw ingest stream \"%s\": could not commit offsets to group \"%s\": %s",
				 config.name, config.opts.group_id, rd_kafka_err2str(err));
	}
	rd_kafka_topic_partition_list_destroy(list);
}

static void
free_batch(void)
{
	int			i;

	for (i = 0; i < batch_n; i++)
	{
		rd_kafka_message_destroy(batch_msgs[i]);
		if (batch_errors[i])
			pfree(batch_errors[i]);
	}
	batch_n = 0;
}

/*
 * Is this error the message's fault (it is not a row of the source, or the
 * target refuses it), rather than the server's or Kafka's?  Data
 * exceptions, integrity constraint violations and messages the source
 * cannot parse are; anything else makes the worker start again.
 */
static bool
is_message_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_DATA_EXCEPTION ||
		category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		sqlerrcode == ERRCODE_FDW_INVALID_STRING_FORMAT ||
		sqlerrcode == ERRCODE_FDW_INVALID_DATA_TYPE;
}

/*
 * on_error = stop: pause the stream with the error, stop its other
 * workers (they find it paused when they start again) and exit.
 */
static void
stop_stream(const char *error)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	int			i;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	values[0] = CStringGetTextDatum(config.name);
	values[1] = CStringGetTextDatum(error);
	if (SPI_execute_with_args("UPDATE kafka_fdw.ingest_streams "
							  "SET paused = true, stop_error = $2, "
							  "stopped_at = pg_catalog.now() "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not stop ingest stream \"%s\"", config.name);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	ereport(LOG,
			(errmsg("kafka_fdw ingest stream \"%s\" stopped: %s", config.name, error)));

	set_error(error);
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < kfdw_cdc_max_streams; i++)
	{
		KafkaCdcStream *s = &kfdw_cdc_shared->streams[i];

		if (s != me && s->in_use && s->kind == KFDW_STREAM_INGEST &&
			s->dboid == MyDatabaseId &&
			strcmp(NameStr(s->name), config.name) == 0 && s->pid != 0)
			kill(s->pid, SIGTERM);
	}
	LWLockRelease(kfdw_cdc_shared->lock);
	forget_entry();
}

/* Is the stream still there, not paused, with this worker in it? */
static bool
stream_still_wanted(void)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		wanted = false;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	values[0] = CStringGetTextDatum(config.name);
	if (SPI_execute("SELECT pg_catalog.to_regclass('kafka_fdw.ingest_streams') IS NOT NULL",
					true, 0) == SPI_OK_SELECT &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0 &&
		SPI_execute_with_args("SELECT 1 FROM kafka_fdw.ingest_streams "
							  "WHERE name OPERATOR(pg_catalog.=) $1 AND NOT paused",
							  1, argtypes, values, NULL, true, 1) == SPI_OK_SELECT)
		wanted = (SPI_processed == 1);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	return wanted;
}
