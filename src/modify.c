/*-------------------------------------------------------------------------
 *
 * modify.c
 *		  INSERT and COPY FROM into a topic's foreign table: publishing
 *
 * Every row becomes one message.  Without the server option transactional,
 * a statement produces its messages as it goes and returns only once the
 * brokers acknowledged every one of them; any failed delivery fails the
 * statement.  With transactional 'true', the messages of a PostgreSQL
 * transaction are held in backend memory and published in one Kafka
 * transaction at PRE_COMMIT, or, past the server's transaction_hold_bytes,
 * streamed into a Kafka transaction that is committed or aborted with the
 * PostgreSQL transaction.
 *
 * Delivery reports are served by rd_kafka_poll() from the backend; each
 * message carries a pointer to the KafkaDelivery that accounts for it, which
 * outlives its statement until its last report has arrived.
 *
 * IDENTIFICATION
 *		  src/modify.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka_fdw.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

/*
 * How often (in messages) a producing statement serves delivery reports,
 * and fails early if one says a message could not be delivered
 */
#define KFDW_POLL_INTERVAL 100

/* Slice of every wait, so that interrupts are served within a second */
#define KFDW_WAIT_SLICE_MS 100

/* How long the partition count of a topic is trusted */
#define KFDW_TOPIC_CACHE_MS 30000

/* Bound of the wait for a Kafka transaction to abort, when PostgreSQL aborts */
#define KFDW_TXN_ABORT_TIMEOUT_MS 3000

/*
 * Delivery accounting of a group of messages: the messages of a statement,
 * or of a Kafka transaction.  Lives in TopMemoryContext; once its owner is
 * gone, the last delivery report frees it.
 */
typedef struct KafkaDelivery
{
	int64		outstanding;	/* produced, not yet reported */
	int64		produced;
	int64		failed;
	rd_kafka_resp_err_t first_err;
	int32		first_partition;
	char		first_errstr[256];
	bool		owner_gone;
	/* the last successful report, for RETURNING */
	int32		partition;
	int64		offset;
	int64		timestamp;
} KafkaDelivery;

/* A message held until the PostgreSQL transaction commits */
typedef struct HeldMessage
{
	const char *topic;			/* kept by the KafkaTxnServer */
	int32		partition;
	int64		timestamp;
	int			keylen;			/* -1: no key */
	int			valuelen;		/* -1: null value */
	int			headerslen;
	int			nheaders;
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* key, value, headers */
} HeldMessage;

/* Where a subtransaction's messages start */
typedef struct SubxactMark
{
	SubTransactionId subid;
	int			count;			/* messages added before it */
} SubxactMark;

/*
 * What a PostgreSQL transaction published through one transactional
 * server (and user mapping).  Lives in txn_context.
 */
typedef struct KafkaTxnServer
{
	Oid			serverid;
	Oid			userid;
	char	   *servername;
	KafkaHandle *handle;		/* pinned until the transaction ends */
	int			hold_limit;		/* transaction_hold_bytes */
	bool		streaming;		/* the Kafka transaction has begun */
	bool		doomed;			/* sent messages of a rolled-back subxact */
	bool		committed;
	List	   *held;			/* HeldMessage *, while not streaming */
	int64		held_bytes;
	int			nadded;			/* messages published in this transaction */
	SubxactMark *marks;
	int			nmarks;
	int			maxmarks;
	List	   *topics;			/* topic names held messages point to */
	KafkaDelivery *delivery;
} KafkaTxnServer;

/* State the producer handles of kind KFDW_HANDLE_TXN_PRODUCER keep */
typedef struct KafkaProducerState
{
	bool		txn_initialized;	/* init_transactions() done */
} KafkaProducerState;

/*
 * A statement writing to a table.  Lives in TopMemoryContext and is listed
 * in active_writers until the statement ends, so that an error or cancel
 * releases what it holds.
 */
typedef struct KafkaWriter
{
	KafkaHandle *handle;		/* pinned */
	rd_kafka_topic_t *rkt;
	KafkaDelivery *delivery;	/* own, or the transaction's */
	KafkaTxnServer *txn;		/* transactional server, or NULL */
	SubTransactionId subid;
} KafkaWriter;

/* Execution state of an INSERT or COPY into a foreign table */
typedef struct KafkaModifyState
{
	KafkaTableOptions opts;
	KafkaEncoder enc;
	KafkaWriter *writer;
	int			partition_cnt;
	bool		returning_meta; /* RETURNING needs partition, offset... */
	TupleTableSlot *retslot;
	MemoryContext temp_cxt;		/* reset for each row */
	int64		nrows;
} KafkaModifyState;

/* Partition counts of topics, per handle, so that a statement need not ask */
typedef struct TopicCacheEntry
{
	KafkaHandle *handle;
	char	   *topic;
	int			partition_cnt;
	instr_time	fetched;
} TopicCacheEntry;

static List *active_writers = NIL;
static List *txn_servers = NIL;
static MemoryContext txn_context = NULL;
static List *topic_cache = NIL;
static bool xact_callbacks_registered = false;

/* FDW callbacks */
static void kafkaAddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
										 RangeTblEntry *target_rte,
										 Relation target_relation);
static List *kafkaPlanForeignModify(PlannerInfo *root, ModifyTable *plan,
									Index resultRelation, int subplan_index);
static void kafkaBeginForeignModify(ModifyTableState *mtstate,
									ResultRelInfo *rinfo, List *fdw_private,
									int subplan_index, int eflags);
static TupleTableSlot *kafkaExecForeignInsert(EState *estate,
											  ResultRelInfo *rinfo,
											  TupleTableSlot *slot,
											  TupleTableSlot *planSlot);
static TupleTableSlot **kafkaExecForeignBatchInsert(EState *estate,
													ResultRelInfo *rinfo,
													TupleTableSlot **slots,
													TupleTableSlot **planSlots,
													int *numSlots);
static int	kafkaGetForeignModifyBatchSize(ResultRelInfo *rinfo);
static TupleTableSlot *kafkaExecForeignUpdate(EState *estate,
											  ResultRelInfo *rinfo,
											  TupleTableSlot *slot,
											  TupleTableSlot *planSlot);
static TupleTableSlot *kafkaExecForeignDelete(EState *estate,
											  ResultRelInfo *rinfo,
											  TupleTableSlot *slot,
											  TupleTableSlot *planSlot);
static void kafkaEndForeignModify(EState *estate, ResultRelInfo *rinfo);
static void kafkaBeginForeignInsert(ModifyTableState *mtstate,
									ResultRelInfo *rinfo);
static void kafkaEndForeignInsert(EState *estate, ResultRelInfo *rinfo);
static int	kafkaIsForeignRelUpdatable(Relation rel);

/* helpers */
static void refuse_modification(CmdType operation, Relation rel);
static KafkaModifyState *begin_modify(EState *estate, ResultRelInfo *rinfo,
									  bool returning_meta);
static void end_modify(KafkaModifyState *st);
static void insert_row(KafkaModifyState *st, TupleTableSlot *slot);
static void insert_error_callback(void *arg);
static TupleTableSlot *returning_slot(KafkaModifyState *st,
									  TupleTableSlot *slot, bool known,
									  int32 partition, int64 offset,
									  int64 timestamp);
static int	topic_partition_count(KafkaHandle *handle, const char *topic);
static KafkaDelivery *delivery_new(void);
static void delivery_release(KafkaDelivery *d);
static void delivery_wait(KafkaHandle *handle, KafkaDelivery *d);
static void delivery_check(KafkaDelivery *d, KafkaHandle *handle,
						   const char *topic);
static void produce(KafkaHandle *handle, rd_kafka_topic_t *rkt,
					const char *topic, int32 partition, int64 timestamp,
					const char *key, int keylen, const char *value,
					int valuelen, const char *headers, int headerslen,
					int nheaders, KafkaDelivery *d);
static KafkaWriter *writer_new(KafkaHandle *handle, const char *topic,
							   KafkaTxnServer *ts);
static void writer_release(KafkaWriter *w, bool aborted);
static void register_xact_callbacks(void);
static KafkaTxnServer *txn_server_get(Oid serverid, Oid userid,
									  KafkaServerOptions *sopts);
static void txn_hold(KafkaTxnServer *ts, KafkaModifyState *st);
static void txn_mark(KafkaTxnServer *ts);
static void txn_begin(KafkaTxnServer *ts);
static void txn_send_held(KafkaTxnServer *ts);
static void txn_commit(KafkaTxnServer *ts);
static void txn_abort(KafkaTxnServer *ts);
static void txn_check_error(KafkaTxnServer *ts, rd_kafka_error_t *error,
							const char *what);
static int	message_timeout_ms(KafkaHandle *handle);
static void release_aborted_writers(SubTransactionId subid);
static void txn_servers_reset(void);
static void modify_xact_callback(XactEvent event, void *arg);
static void modify_subxact_callback(SubXactEvent event,
									SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);

void
kfdw_set_modify_routines(FdwRoutine *routine)
{
	routine->AddForeignUpdateTargets = kafkaAddForeignUpdateTargets;
	routine->PlanForeignModify = kafkaPlanForeignModify;
	routine->BeginForeignModify = kafkaBeginForeignModify;
	routine->ExecForeignInsert = kafkaExecForeignInsert;
	routine->ExecForeignBatchInsert = kafkaExecForeignBatchInsert;
	routine->GetForeignModifyBatchSize = kafkaGetForeignModifyBatchSize;
	routine->ExecForeignUpdate = kafkaExecForeignUpdate;
	routine->ExecForeignDelete = kafkaExecForeignDelete;
	routine->EndForeignModify = kafkaEndForeignModify;
	routine->BeginForeignInsert = kafkaBeginForeignInsert;
	routine->EndForeignInsert = kafkaEndForeignInsert;
	routine->IsForeignRelUpdatable = kafkaIsForeignRelUpdatable;
}

/*
 * A topic is append-only: refuse UPDATE and DELETE while planning, before
 * anything reaches the brokers.
 */
static void
refuse_modification(CmdType operation, Relation rel)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 operation == CMD_DELETE
			 ? errmsg("cannot delete from foreign table \"%s\"",
					  RelationGetRelationName(rel))
			 : errmsg("cannot update foreign table \"%s\"",
					  RelationGetRelationName(rel)),
			 errdetail("A Kafka topic is append-only: published messages cannot be changed or removed."),
			 errhint("Publish a new message with INSERT instead.")));
}

static void
kafkaAddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
							 RangeTblEntry *target_rte,
							 Relation target_relation)
{
	refuse_modification(root->parse->commandType, target_relation);
}

static int
kafkaIsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT);
}

static TupleTableSlot *
kafkaExecForeignUpdate(EState *estate, ResultRelInfo *rinfo,
					   TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	refuse_modification(CMD_UPDATE, rinfo->ri_RelationDesc);
	return NULL;
}

static TupleTableSlot *
kafkaExecForeignDelete(EState *estate, ResultRelInfo *rinfo,
					   TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	refuse_modification(CMD_DELETE, rinfo->ri_RelationDesc);
	return NULL;
}

/*
 * Plan an INSERT: remember whether RETURNING needs what only the broker
 * knows (partition, offset, timestamp), because then each row must wait for
 * its delivery report.
 */
static List *
kafkaPlanForeignModify(PlannerInfo *root, ModifyTable *plan,
					   Index resultRelation, int subplan_index)
{
	RangeTblEntry *rte = planner_rt_fetch(resultRelation, root);
	Relation	rel;
	bool		returning_meta = false;

	if (plan->operation != CMD_INSERT)
	{
		rel = table_open(rte->relid, NoLock);
		refuse_modification(plan->operation, rel);
	}
	if (plan->onConflictAction != ONCONFLICT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("INSERT with ON CONFLICT is not supported on a Kafka topic")));

	if (plan->returningLists)
	{
		List	   *returningList = (List *) list_nth(plan->returningLists,
													  subplan_index);
		Bitmapset  *attrs = NULL;
		KafkaTableOptions opts;
		AttrNumber	metas[3];
		int			i;

		kfdw_get_table_options(rte->relid, &opts);
		pull_varattnos((Node *) returningList, resultRelation, &attrs);
		metas[0] = opts.partition_attnum;
		metas[1] = opts.offset_attnum;
		metas[2] = opts.timestamp_attnum;
		if (bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs))
			returning_meta = true;	/* a whole-row reference */
		for (i = 0; i < lengthof(metas); i++)
		{
			if (metas[i] != InvalidAttrNumber &&
				bms_is_member(metas[i] - FirstLowInvalidHeapAttributeNumber,
							  attrs))
				returning_meta = true;
		}
	}

	return list_make1(makeInteger(returning_meta ? 1 : 0));
}

static void
kafkaBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
						List *fdw_private, int subplan_index, int eflags)
{
	bool		returning_meta = intVal(linitial(fdw_private)) != 0;

	/* EXPLAIN without ANALYZE: nothing to set up */
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	rinfo->ri_FdwState = begin_modify(mtstate->ps.state, rinfo,
									  returning_meta);
}

/*
 * COPY FROM, or rows routed to a partition that is a foreign table.
 */
static void
kafkaBeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	rinfo->ri_FdwState = begin_modify(mtstate->ps.state, rinfo,
									  rinfo->ri_returningList != NIL);
}

static TupleTableSlot *
kafkaExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
					   TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	KafkaModifyState *st = (KafkaModifyState *) rinfo->ri_FdwState;

	insert_row(st, slot);

	if (!st->returning_meta)
		return slot;

	if (st->writer->txn && !st->writer->txn->streaming)
	{
		/* held until commit: the partition is known only if given */
		int32		partition = st->enc.partition;

		if (partition == RD_KAFKA_PARTITION_UA && st->enc.has_key)
			partition = rd_kafka_msg_partitioner_murmur2(NULL,
														 st->enc.key.data,
														 st->enc.key.len,
														 st->partition_cnt,
														 NULL, NULL);
		return returning_slot(st, slot, false, partition, -1,
							  st->enc.timestamp);
	}

	/* wait for this row's delivery report */
	delivery_wait(st->writer->handle, st->writer->delivery);
	delivery_check(st->writer->delivery, st->writer->handle,
				   st->opts.topic);
	return returning_slot(st, slot, true, st->writer->delivery->partition,
						  st->writer->delivery->offset,
						  st->writer->delivery->timestamp);
}

static TupleTableSlot **
kafkaExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo,
							TupleTableSlot **slots, TupleTableSlot **planSlots,
							int *numSlots)
{
	KafkaModifyState *st = (KafkaModifyState *) rinfo->ri_FdwState;
	int			i;

	for (i = 0; i < *numSlots; i++)
		insert_row(st, slots[i]);
	return slots;
}

/*
 * Batches of rows are used unless something needs each row at once:
 * RETURNING or row triggers.
 */
static int
kafkaGetForeignModifyBatchSize(ResultRelInfo *rinfo)
{
	KafkaModifyState *st = (KafkaModifyState *) rinfo->ri_FdwState;
	TriggerDesc *trigdesc = rinfo->ri_TrigDesc;

	if (rinfo->ri_projectReturning != NULL ||
		(trigdesc && (trigdesc->trig_insert_after_row ||
					  trigdesc->trig_insert_before_row)))
		return 1;

	if (st)
		return st->opts.batch_size;
	else
	{
		KafkaTableOptions opts;

		kfdw_get_table_options(RelationGetRelid(rinfo->ri_RelationDesc),
							   &opts);
		return opts.batch_size;
	}
}

static void
kafkaEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
	KafkaModifyState *st = (KafkaModifyState *) rinfo->ri_FdwState;

	if (st)
		end_modify(st);
}

static void
kafkaEndForeignInsert(EState *estate, ResultRelInfo *rinfo)
{
	KafkaModifyState *st = (KafkaModifyState *) rinfo->ri_FdwState;

	if (st)
		end_modify(st);
}

/*
 * Set up the publishing of rows into rinfo's table.
 */
static KafkaModifyState *
begin_modify(EState *estate, ResultRelInfo *rinfo, bool returning_meta)
{
	Relation	rel = rinfo->ri_RelationDesc;
	Oid			relid = RelationGetRelid(rel);
	KafkaModifyState *st;
	RangeTblEntry *rte;
	Oid			userid;
	ForeignServer *server;
	KafkaServerOptions sopts;
	KafkaHandle *handle;
	KafkaTxnServer *ts = NULL;

	/* the table must be usable as it is defined now */
	kfdw_check_table(relid);

	st = palloc0(sizeof(KafkaModifyState));
	kfdw_get_table_options(relid, &st->opts);
	st->returning_meta = returning_meta;

	/* the user whose mapping applies: as in postgres_fdw */
	if (rinfo->ri_RangeTableIndex == 0)
		rte = exec_rt_fetch(rinfo->ri_RootResultRelInfo->ri_RangeTableIndex,
							estate);
	else
		rte = exec_rt_fetch(rinfo->ri_RangeTableIndex, estate);
	userid = KFDW_RTE_CHECK_AS_USER(estate, rte);
	if (!OidIsValid(userid))
		userid = GetUserId();

	server = GetForeignServer(st->opts.serverid);
	kfdw_get_server_options(server, &sopts);

	register_xact_callbacks();
	if (sopts.transactional)
	{
		if (IsInParallelMode())
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
					 errmsg("cannot publish to a transactional Kafka server in parallel mode")));
		ts = txn_server_get(st->opts.serverid, userid, &sopts);
		handle = ts->handle;
	}
	else
		handle = kfdw_acquire_handle(st->opts.serverid, userid,
									 KFDW_HANDLE_PRODUCER);

	/* an unknown topic that cannot be auto-created fails here */
	st->partition_cnt = topic_partition_count(handle, st->opts.topic);
	if (st->partition_cnt <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
				 errmsg("Kafka topic \"%s\" has no partitions", st->opts.topic)));

	st->writer = writer_new(handle, st->opts.topic, ts);

	kfdw_encoder_init(&st->enc, &st->opts);
	st->temp_cxt = AllocSetContextCreate(estate->es_query_cxt,
										 "kafka_fdw insert row",
										 ALLOCSET_DEFAULT_SIZES);
	if (returning_meta)
		st->retslot = MakeSingleTupleTableSlot(RelationGetDescr(rel),
											   &TTSOpsVirtual);
	return st;
}

/*
 * Encode a row and produce it, or hold it for the transaction.
 */
static void
insert_row(KafkaModifyState *st, TupleTableSlot *slot)
{
	KafkaWriter *w = st->writer;
	MemoryContext oldcxt;
	ErrorContextCallback errcallback;

	slot_getallattrs(slot);
	st->nrows++;

	/* say which row a complaint is about */
	errcallback.callback = insert_error_callback;
	errcallback.arg = st;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	MemoryContextReset(st->temp_cxt);
	oldcxt = MemoryContextSwitchTo(st->temp_cxt);
	kfdw_encode_row(&st->enc, slot);
	MemoryContextSwitchTo(oldcxt);

	if (st->enc.partition != RD_KAFKA_PARTITION_UA &&
		st->enc.partition >= st->partition_cnt)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Kafka topic \"%s\" has no partition %d",
						st->opts.topic, st->enc.partition),
				 errdetail("The topic has %d partitions.", st->partition_cnt)));

	error_context_stack = errcallback.previous;

	if (w->txn && !w->txn->streaming)
		txn_hold(w->txn, st);
	else
	{
		KafkaEncoder *enc = &st->enc;

		if (w->txn)
			txn_mark(w->txn);
		produce(w->handle, w->rkt, st->opts.topic, enc->partition,
				enc->timestamp,
				enc->has_key ? enc->key.data : NULL,
				enc->has_key ? enc->key.len : -1,
				enc->has_value ? enc->value.data : NULL,
				enc->has_value ? enc->value.len : -1,
				enc->headers.data, enc->headers.len, enc->nheaders,
				w->delivery);
		if (w->txn)
			w->txn->nadded++;
		if (st->nrows % KFDW_POLL_INTERVAL == 0)
		{
			kfdw_serve_events(w->handle);
			delivery_check(w->delivery, w->handle, st->opts.topic);
		}
	}
}

static void
insert_error_callback(void *arg)
{
	KafkaModifyState *st = (KafkaModifyState *) arg;

	errcontext("row " INT64_FORMAT " for Kafka topic \"%s\"",
			   st->nrows, st->opts.topic);
}

/*
 * The slot RETURNING sees: the row, with what the broker assigned.  Unknown
 * values (a message held until commit has no offset yet) are NULL.
 */
static TupleTableSlot *
returning_slot(KafkaModifyState *st, TupleTableSlot *slot, bool known,
			   int32 partition, int64 offset, int64 timestamp)
{
	TupleTableSlot *ret = st->retslot;
	KafkaTableOptions *opts = &st->opts;
	int			natts = slot->tts_tupleDescriptor->natts;
	AttrNumber	attnum;

	ExecClearTuple(ret);
	memcpy(ret->tts_values, slot->tts_values, natts * sizeof(Datum));
	memcpy(ret->tts_isnull, slot->tts_isnull, natts * sizeof(bool));

	attnum = opts->partition_attnum;
	if (attnum != InvalidAttrNumber)
	{
		Oid			typid = getBaseType(opts->columns[attnum - 1].typid);

		ret->tts_isnull[attnum - 1] = (partition < 0);
		if (typid == INT8OID)
			ret->tts_values[attnum - 1] = Int64GetDatum(partition);
		else if (typid == INT2OID)
			ret->tts_values[attnum - 1] = Int16GetDatum(partition);
		else
			ret->tts_values[attnum - 1] = Int32GetDatum(partition);
	}
	attnum = opts->offset_attnum;
	if (attnum != InvalidAttrNumber)
	{
		ret->tts_isnull[attnum - 1] = !known || offset < 0;
		ret->tts_values[attnum - 1] = Int64GetDatum(offset);
	}
	attnum = opts->timestamp_attnum;
	if (attnum != InvalidAttrNumber && ret->tts_isnull[attnum - 1] &&
		known && timestamp > 0)
	{
		/* the time librdkafka stamped on the message, in the column's type */
		Timestamp	ts = (timestamp -
						  (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) *
						  SECS_PER_DAY * 1000) * 1000;

		ret->tts_isnull[attnum - 1] = false;
		ret->tts_values[attnum - 1] = TimestampGetDatum(ts);
	}
	return ExecStoreVirtualTuple(ret);
}

/*
 * Finish a statement: wait until the brokers acknowledged every message it
 * produced (unless they wait for the transaction's commit), then let go of
 * what it holds.  Any failed delivery fails the statement.
 */
static void
end_modify(KafkaModifyState *st)
{
	KafkaWriter *w = st->writer;

	if (w == NULL)
		return;

	if (w->txn == NULL || w->txn->streaming)
	{
		delivery_wait(w->handle, w->delivery);
		delivery_check(w->delivery, w->handle, st->opts.topic);
	}

	st->writer = NULL;
	writer_release(w, false);
	if (st->retslot)
		ExecDropSingleTupleTableSlot(st->retslot);
	MemoryContextDelete(st->temp_cxt);
}

/*
 * How many partitions a topic has; ERROR if it does not exist (and the
 * brokers did not create it on request).  Remembered for a while per handle.
 */
static int
topic_partition_count(KafkaHandle *handle, const char *topic)
{
	const rd_kafka_metadata_t *md;
	TopicCacheEntry *entry = NULL;
	ListCell   *lc;
	instr_time	now;
	int			count;
	MemoryContext oldcxt;

	INSTR_TIME_SET_CURRENT(now);
	foreach(lc, topic_cache)
	{
		TopicCacheEntry *e = (TopicCacheEntry *) lfirst(lc);

		if (e->handle == handle && strcmp(e->topic, topic) == 0)
		{
			instr_time	age = now;

			INSTR_TIME_SUBTRACT(age, e->fetched);
			if (INSTR_TIME_GET_MILLISEC(age) < KFDW_TOPIC_CACHE_MS)
				return e->partition_cnt;
			entry = e;
			break;
		}
	}

	md = kfdw_get_metadata(handle, topic);
	count = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);

	if (entry == NULL)
	{
		/* handles are few and topics per handle too: a list will do */
		oldcxt = MemoryContextSwitchTo(TopMemoryContext);
		entry = palloc(sizeof(TopicCacheEntry));
		entry->handle = handle;
		entry->topic = pstrdup(topic);
		topic_cache = lappend(topic_cache, entry);
		MemoryContextSwitchTo(oldcxt);
	}
	entry->partition_cnt = count;
	entry->fetched = now;
	return count;
}

/*
 * librdkafka's delivery report callback, run by rd_kafka_poll() in the
 * backend.  Counts the message as delivered or failed; never throws.
 */
void
kfdw_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *rkmessage,
					 void *opaque)
{
	KafkaDelivery *d = (KafkaDelivery *) rkmessage->_private;

	if (d == NULL)
		return;

	d->outstanding--;
	if (rkmessage->err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (d->failed++ == 0)
		{
			d->first_err = rkmessage->err;
			d->first_partition = rkmessage->partition;
			strlcpy(d->first_errstr, rd_kafka_err2str(rkmessage->err),
					sizeof(d->first_errstr));
		}
	}
	else
	{
		d->partition = rkmessage->partition;
		d->offset = rkmessage->offset;
		d->timestamp = rd_kafka_message_timestamp(rkmessage, NULL);
	}

	if (d->owner_gone && d->outstanding == 0)
		pfree(d);
}

static KafkaDelivery *
delivery_new(void)
{
	return MemoryContextAllocZero(TopMemoryContext, sizeof(KafkaDelivery));
}

/* The owner is done with d: free it now, or with its last report */
static void
delivery_release(KafkaDelivery *d)
{
	if (d->outstanding == 0)
		pfree(d);
	else
		d->owner_gone = true;
}

/*
 * Wait until every message counted by d was reported, serving interrupts
 * at least every KFDW_WAIT_SLICE_MS.  rd_kafka_flush() sends at once what
 * lingers in the queues and serves the delivery reports.
 */
static void
delivery_wait(KafkaHandle *handle, KafkaDelivery *d)
{
	while (d->outstanding > 0)
	{
		CHECK_FOR_INTERRUPTS();
		(void) rd_kafka_flush(handle->rk, KFDW_WAIT_SLICE_MS);
	}
}

/*
 * ERROR if any message counted by d failed: how many, and the first reason.
 */
static void
delivery_check(KafkaDelivery *d, KafkaHandle *handle, const char *topic)
{
	if (d->failed == 0)
		return;

	ereport(ERROR,
			(errcode(kfdw_errcode(d->first_err)),
			 errmsg("could not publish " INT64_FORMAT " of " INT64_FORMAT " messages to Kafka topic \"%s\"",
					d->failed, d->produced, topic),
			 errdetail_internal("First failure (partition %d): %s",
								d->first_partition, d->first_errstr),
			 kfdw_errcode(d->first_err) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION
			 ? errhint("Check that the brokers \"%s\" are reachable; the server option \"message.timeout.ms\" bounds how long a message may wait for them.",
					   handle->brokers)
			 : 0));
}

/*
 * Hand one message to librdkafka (which copies it).  A full local queue is
 * waited on, serving delivery reports and interrupts; other errors are
 * reported at once.
 */
static void
produce(KafkaHandle *handle, rd_kafka_topic_t *rkt, const char *topic,
		int32 partition, int64 timestamp, const char *key, int keylen,
		const char *value, int valuelen, const char *headers, int headerslen,
		int nheaders, KafkaDelivery *d)
{
	rd_kafka_vu_t vus[8];
	int			n = 0;
	rd_kafka_headers_t *hdrs = NULL;

	if (rkt)
	{
		vus[n].vtype = RD_KAFKA_VTYPE_RKT;
		vus[n++].u.rkt = rkt;
	}
	else
	{
		vus[n].vtype = RD_KAFKA_VTYPE_TOPIC;
		vus[n++].u.cstr = topic;
	}
	vus[n].vtype = RD_KAFKA_VTYPE_PARTITION;
	vus[n++].u.i32 = partition;
	vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
	vus[n++].u.i = RD_KAFKA_MSG_F_COPY;
	vus[n].vtype = RD_KAFKA_VTYPE_VALUE;
	vus[n].u.mem.ptr = valuelen < 0 ? NULL : (void *) value;
	vus[n++].u.mem.size = valuelen < 0 ? 0 : valuelen;
	if (keylen >= 0)
	{
		vus[n].vtype = RD_KAFKA_VTYPE_KEY;
		vus[n].u.mem.ptr = (void *) key;
		vus[n++].u.mem.size = keylen;
	}
	if (timestamp > 0)
	{
		vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
		vus[n++].u.i64 = timestamp;
	}
	vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
	vus[n++].u.ptr = d;
	if (nheaders > 0)
	{
		hdrs = kfdw_make_headers(headers, headerslen, nheaders);
		vus[n].vtype = RD_KAFKA_VTYPE_HEADERS;
		vus[n++].u.headers = hdrs;
	}

	for (;;)
	{
		rd_kafka_error_t *error = rd_kafka_produceva(handle->rk, vus, n);
		rd_kafka_resp_err_t err;
		char		errstr[512];

		if (error == NULL)
			break;

		err = rd_kafka_error_code(error);
		strlcpy(errstr, rd_kafka_error_string(error), sizeof(errstr));
		rd_kafka_error_destroy(error);

		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		{
			/* wait for room: deliveries or timeouts free it */
			PG_TRY();
			{
				CHECK_FOR_INTERRUPTS();
			}
			PG_CATCH();
			{
				if (hdrs)
					rd_kafka_headers_destroy(hdrs);
				PG_RE_THROW();
			}
			PG_END_TRY();
			rd_kafka_poll(handle->rk, 10);
			continue;
		}

		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		kfdw_report_error(ERROR, handle, err, errstr,
						  psprintf("could not publish a message to Kafka topic \"%s\"",
								   topic));
	}
	d->outstanding++;
	d->produced++;
}

static KafkaWriter *
writer_new(KafkaHandle *handle, const char *topic, KafkaTxnServer *ts)
{
	KafkaWriter *w;
	MemoryContext oldcxt;

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	w = palloc0(sizeof(KafkaWriter));
	w->handle = handle;
	w->txn = ts;
	w->subid = GetCurrentSubTransactionId();
	kfdw_pin_handle(handle);
	w->rkt = rd_kafka_topic_new(handle->rk, topic, NULL);
	if (w->rkt == NULL)
	{
		rd_kafka_resp_err_t err = rd_kafka_last_error();

		kfdw_unpin_handle(handle);
		pfree(w);
		MemoryContextSwitchTo(oldcxt);
		kfdw_report_error(ERROR, handle, err, NULL,
						  psprintf("could not open Kafka topic \"%s\"", topic));
	}
	w->delivery = ts ? ts->delivery : delivery_new();
	active_writers = lappend(active_writers, w);
	MemoryContextSwitchTo(oldcxt);
	return w;
}

/*
 * Let go of what a statement holds.  After an error or cancel, what is
 * still queued in librdkafka is purged so that it is never sent: those
 * messages may or may not have reached the brokers already.
 */
static void
writer_release(KafkaWriter *w, bool aborted)
{
	active_writers = list_delete_ptr(active_writers, w);

	if (w->txn == NULL)
	{
		if (aborted && w->delivery->outstanding > 0)
		{
			rd_kafka_purge(w->handle->rk, RD_KAFKA_PURGE_F_QUEUE);
			rd_kafka_poll(w->handle->rk, 0);
		}
		delivery_release(w->delivery);
	}
	rd_kafka_topic_destroy(w->rkt);
	kfdw_unpin_handle(w->handle);
	pfree(w);
}

static void
register_xact_callbacks(void)
{
	if (xact_callbacks_registered)
		return;
	RegisterXactCallback(modify_xact_callback, NULL);
	RegisterSubXactCallback(modify_subxact_callback, NULL);
	xact_callbacks_registered = true;
}

/*
 * The transactional state of a server for the current transaction, made at
 * its first use.
 */
static KafkaTxnServer *
txn_server_get(Oid serverid, Oid userid, KafkaServerOptions *sopts)
{
	KafkaTxnServer *ts;
	ListCell   *lc;
	MemoryContext oldcxt;

	foreach(lc, txn_servers)
	{
		ts = (KafkaTxnServer *) lfirst(lc);
		if (ts->serverid == serverid && ts->userid == userid)
			return ts;
	}

	if (txn_context == NULL)
		txn_context = AllocSetContextCreate(TopTransactionContext,
											"kafka_fdw transaction",
											ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(txn_context);
	ts = palloc0(sizeof(KafkaTxnServer));
	ts->serverid = serverid;
	ts->userid = userid;
	ts->servername = pstrdup(GetForeignServer(serverid)->servername);
	ts->hold_limit = sopts->transaction_hold_bytes;
	ts->maxmarks = 8;
	ts->marks = palloc(sizeof(SubxactMark) * ts->maxmarks);
	MemoryContextSwitchTo(oldcxt);

	ts->handle = kfdw_acquire_handle(serverid, userid,
									 KFDW_HANDLE_TXN_PRODUCER);
	if (ts->handle->private == NULL)
		ts->handle->private = MemoryContextAllocZero(TopMemoryContext,
													 sizeof(KafkaProducerState));
	kfdw_pin_handle(ts->handle);
	ts->delivery = delivery_new();

	oldcxt = MemoryContextSwitchTo(txn_context);
	txn_servers = lappend(txn_servers, ts);
	MemoryContextSwitchTo(oldcxt);
	return ts;
}

/*
 * Note where the current subtransaction's messages start, the first time it
 * publishes.
 */
static void
txn_mark(KafkaTxnServer *ts)
{
	SubTransactionId subid = GetCurrentSubTransactionId();

	if (ts->nmarks > 0 && ts->marks[ts->nmarks - 1].subid == subid)
		return;
	if (ts->nmarks == ts->maxmarks)
	{
		ts->maxmarks *= 2;
		ts->marks = repalloc(ts->marks, sizeof(SubxactMark) * ts->maxmarks);
	}
	ts->marks[ts->nmarks].subid = subid;
	ts->marks[ts->nmarks].count = ts->nadded;
	ts->nmarks++;
}

/*
 * Hold the encoded row until commit.  Past the server's bound, begin the
 * Kafka transaction and send what is held: from then on, messages are
 * streamed into it.
 */
static void
txn_hold(KafkaTxnServer *ts, KafkaModifyState *st)
{
	KafkaEncoder *enc = &st->enc;
	int			keylen = enc->has_key ? enc->key.len : 0;
	int			valuelen = enc->has_value ? enc->value.len : 0;
	Size		size = keylen + valuelen + enc->headers.len;
	HeldMessage *m;
	MemoryContext oldcxt;
	const char *topic = NULL;
	ListCell   *lc;

	txn_mark(ts);

	oldcxt = MemoryContextSwitchTo(txn_context);
	foreach(lc, ts->topics)
	{
		if (strcmp((char *) lfirst(lc), st->opts.topic) == 0)
		{
			topic = (char *) lfirst(lc);
			break;
		}
	}
	if (topic == NULL)
	{
		topic = pstrdup(st->opts.topic);
		ts->topics = lappend(ts->topics, (char *) topic);
	}

	m = palloc(offsetof(HeldMessage, data) + size);
	m->topic = topic;
	m->partition = enc->partition;
	m->timestamp = enc->timestamp;
	m->keylen = enc->has_key ? keylen : -1;
	m->valuelen = enc->has_value ? valuelen : -1;
	m->headerslen = enc->headers.len;
	m->nheaders = enc->nheaders;
	memcpy(m->data, enc->key.data, keylen);
	memcpy(m->data + keylen, enc->value.data, valuelen);
	memcpy(m->data + keylen + valuelen, enc->headers.data, enc->headers.len);
	ts->held = lappend(ts->held, m);
	MemoryContextSwitchTo(oldcxt);

	ts->held_bytes += size;
	ts->nadded++;

	if (ts->held_bytes > ts->hold_limit)
	{
		txn_begin(ts);
		txn_send_held(ts);
	}
}

/*
 * Begin the Kafka transaction (initializing the producer's transactions
 * first, once per handle).  Both calls are retried in short slices while
 * librdkafka says they may be, so that interrupts are served.
 */
static void
txn_begin(KafkaTxnServer *ts)
{
	KafkaProducerState *ps = (KafkaProducerState *) ts->handle->private;
	rd_kafka_error_t *error;

	if (!ps->txn_initialized)
	{
		instr_time	start,
					now;
		int			limit = message_timeout_ms(ts->handle);

		INSTR_TIME_SET_CURRENT(start);
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			error = rd_kafka_init_transactions(ts->handle->rk,
											   KFDW_WAIT_SLICE_MS * 5);
			kfdw_serve_events(ts->handle);
			if (error == NULL)
				break;
			INSTR_TIME_SET_CURRENT(now);
			INSTR_TIME_SUBTRACT(now, start);
			if ((rd_kafka_error_is_retriable(error) ||
				 rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__TIMED_OUT) &&
				INSTR_TIME_GET_MILLISEC(now) < limit)
			{
				rd_kafka_error_destroy(error);
				continue;
			}
			txn_check_error(ts, error,
							psprintf("could not initialize Kafka transactions for server \"%s\"",
									 ts->servername));
		}
		ps->txn_initialized = true;
	}

	error = rd_kafka_begin_transaction(ts->handle->rk);
	if (error)
		txn_check_error(ts, error,
						psprintf("could not begin a Kafka transaction for server \"%s\"",
								 ts->servername));
	ts->streaming = true;
}

/* Produce the held messages into the begun Kafka transaction */
static void
txn_send_held(KafkaTxnServer *ts)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, ts->held)
	{
		HeldMessage *m = (HeldMessage *) lfirst(lc);
		int			keylen = Max(m->keylen, 0);
		int			valuelen = Max(m->valuelen, 0);

		produce(ts->handle, NULL, m->topic, m->partition, m->timestamp,
				m->data, m->keylen,
				m->data + keylen, m->valuelen,
				m->data + keylen + valuelen, m->headerslen, m->nheaders,
				ts->delivery);
		if (++n % KFDW_POLL_INTERVAL == 0)
			kfdw_serve_events(ts->handle);
	}
	list_free_deep(ts->held);
	ts->held = NIL;
	ts->held_bytes = 0;
}

/*
 * Commit the Kafka transaction of a server (at PRE_COMMIT): begin it and
 * send what is held if it had not begun, then commit, retrying in short
 * slices while librdkafka flushes.  ERROR if it cannot be committed.
 */
static void
txn_commit(KafkaTxnServer *ts)
{
	instr_time	start;
	int			limit;

	if (ts->doomed)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot commit: messages of a rolled-back subtransaction were already sent to Kafka through server \"%s\"",
						ts->servername),
				 errdetail("Past transaction_hold_bytes, messages are streamed into the Kafka transaction and a rollback to a savepoint cannot withdraw them."),
				 errhint("Roll back the whole transaction, or raise the server option \"transaction_hold_bytes\".")));

	if (!ts->streaming)
	{
		if (ts->held == NIL)
			return;
		txn_begin(ts);
		txn_send_held(ts);
	}

	INSTR_TIME_SET_CURRENT(start);
	limit = message_timeout_ms(ts->handle) + ts->handle->connect_timeout_ms;
	for (;;)
	{
		rd_kafka_error_t *error;
		instr_time	now;

		CHECK_FOR_INTERRUPTS();
		error = rd_kafka_commit_transaction(ts->handle->rk,
											KFDW_WAIT_SLICE_MS * 5);
		if (error == NULL)
			break;
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);

		/*
		 * Retry while librdkafka flushes, unless a message already failed
		 * (the transaction can then only abort) or the brokers stay out of
		 * reach past the delivery timeout.
		 */
		if ((rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__TIMED_OUT ||
			 (rd_kafka_error_is_retriable(error) &&
			  !rd_kafka_error_txn_requires_abort(error))) &&
			ts->delivery->failed == 0 &&
			INSTR_TIME_GET_MILLISEC(now) < limit)
		{
			rd_kafka_error_destroy(error);
			continue;
		}
		txn_check_error(ts, error,
						INSTR_TIME_GET_MILLISEC(now) < limit
						? psprintf("could not commit the Kafka transaction of server \"%s\"",
								   ts->servername)
						: psprintf("could not commit the Kafka transaction of server \"%s\" within %d ms",
								   ts->servername, limit));
	}
	ts->streaming = false;
	ts->committed = true;
}

/*
 * Abort a begun Kafka transaction, when PostgreSQL aborts.  Must not throw:
 * a producer that cannot abort is destroyed, which leaves the transaction to
 * be aborted by the broker (at the next init_transactions() of this
 * backend's transactional id, or after transaction.timeout.ms).
 */
static void
txn_abort(KafkaTxnServer *ts)
{
	rd_kafka_error_t *error;

	if (!ts->streaming)
		return;
	ts->streaming = false;

	error = rd_kafka_abort_transaction(ts->handle->rk,
									   KFDW_TXN_ABORT_TIMEOUT_MS);
	if (error)
	{
		elog(LOG, "kafka_fdw: could not abort the Kafka transaction of server \"%s\": %s",
			 ts->servername, rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		ts->handle->stale = true;
	}
}

/*
 * ERROR for a failed transactional call, with the deliveries that failed.
 * A fatal error makes the producer unusable: it is re-made at next use.
 */
static void
txn_check_error(KafkaTxnServer *ts, rd_kafka_error_t *error, const char *what)
{
	rd_kafka_resp_err_t err = rd_kafka_error_code(error);
	char		errstr[512];
	KafkaDelivery *d = ts->delivery;

	strlcpy(errstr, rd_kafka_error_string(error), sizeof(errstr));
	if (rd_kafka_error_is_fatal(error))
		ts->handle->stale = true;
	rd_kafka_error_destroy(error);

	if (d->failed > 0)
		ereport(ERROR,
				(errcode(kfdw_errcode(d->first_err)),
				 errmsg("%s: " INT64_FORMAT " of " INT64_FORMAT " messages could not be published",
						what, d->failed, d->produced),
				 errdetail_internal("First failure (partition %d): %s; %s",
									d->first_partition, d->first_errstr,
									errstr)));
	kfdw_report_error(ERROR, ts->handle, err, errstr, what);
}

/* The producer's message.timeout.ms: how long delivery may take */
static int
message_timeout_ms(KafkaHandle *handle)
{
	char		buf[32];
	size_t		size = sizeof(buf);
	int			result;

	if (rd_kafka_conf_get(rd_kafka_conf(handle->rk), "message.timeout.ms",
						  buf, &size) != RD_KAFKA_CONF_OK ||
		(result = atoi(buf)) <= 0)
		result = KFDW_DEFAULT_MESSAGE_TIMEOUT_MS;
	return result;
}

/*
 * Release the statements that an error cut short, in the subtransaction
 * subid and those below it (InvalidSubTransactionId: all).
 */
static void
release_aborted_writers(SubTransactionId subid)
{
	for (;;)
	{
		KafkaWriter *victim = NULL;
		ListCell   *lc;

		foreach(lc, active_writers)
		{
			KafkaWriter *w = (KafkaWriter *) lfirst(lc);

			if (subid == InvalidSubTransactionId || w->subid >= subid)
			{
				victim = w;
				break;
			}
		}
		if (victim == NULL)
			break;
		writer_release(victim, true);
	}
}

/* Forget the transactional state at the end of a transaction */
static void
txn_servers_reset(void)
{
	ListCell   *lc;

	foreach(lc, txn_servers)
	{
		KafkaTxnServer *ts = (KafkaTxnServer *) lfirst(lc);

		delivery_release(ts->delivery);
		kfdw_unpin_handle(ts->handle);
	}
	/* the memory goes with TopTransactionContext */
	txn_servers = NIL;
	txn_context = NULL;
}

static void
modify_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			foreach(lc, txn_servers)
				txn_commit((KafkaTxnServer *) lfirst(lc));
			break;
		case XACT_EVENT_PRE_PREPARE:
			foreach(lc, txn_servers)
			{
				KafkaTxnServer *ts = (KafkaTxnServer *) lfirst(lc);

				if (ts->nadded > 0 || ts->streaming)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot prepare a transaction that published messages through transactional Kafka server \"%s\"",
									ts->servername),
							 errdetail("Kafka transactions cannot take part in two-phase commit.")));
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			release_aborted_writers(InvalidSubTransactionId);
			txn_servers_reset();
			break;
		case XACT_EVENT_ABORT:
			release_aborted_writers(InvalidSubTransactionId);
			foreach(lc, txn_servers)
			{
				KafkaTxnServer *ts = (KafkaTxnServer *) lfirst(lc);

				if (!ts->committed)
					txn_abort(ts);
			}
			txn_servers_reset();
			break;
		default:
			break;
	}
}

/*
 * Subtransactions: a rolled-back one discards the messages it held; if they
 * were already streamed into the Kafka transaction, the transaction can no
 * longer commit (txn_commit says why).
 */
static void
modify_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
		release_aborted_writers(mySubid);

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;

	foreach(lc, txn_servers)
	{
		KafkaTxnServer *ts = (KafkaTxnServer *) lfirst(lc);
		int			i;

		/* the first mark of mySubid or of a subtransaction below it */
		for (i = 0; i < ts->nmarks; i++)
		{
			if (ts->marks[i].subid >= mySubid)
				break;
		}
		if (i == ts->nmarks)
			continue;

		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			/* its messages now belong to the parent */
			if (i > 0 && ts->marks[i - 1].subid == parentSubid)
				ts->nmarks = i;
			else
			{
				ts->marks[i].subid = parentSubid;
				ts->nmarks = i + 1;
			}
			continue;
		}

		/* rolled back */
		if (ts->marks[i].count < ts->nadded)
		{
			if (ts->streaming)
				ts->doomed = true;
			else
			{
				int			keep = ts->marks[i].count;
				int			j;

				for (j = keep; j < list_length(ts->held); j++)
				{
					HeldMessage *m = (HeldMessage *) list_nth(ts->held, j);

					ts->held_bytes -= Max(m->keylen, 0) +
						Max(m->valuelen, 0) + m->headerslen;
					pfree(m);
				}
				ts->held = list_truncate(ts->held, keep);
				ts->nadded = keep;
			}
		}
		ts->nmarks = i;
	}
}
