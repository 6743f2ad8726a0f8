/*-------------------------------------------------------------------------
 *
 * modify.c
 *		  INSERT and COPY FROM into a topic's foreign table
 *
 * Every row becomes one message: format/encode.c encodes it and publish.c
 * publishes it (and waits for the brokers, or holds it for the Kafka
 * transaction).  UPDATE and DELETE are refused: a topic is append-only.
 *
 * IDENTIFICATION
 *		  src/fdw/modify.c
 *
 *-------------------------------------------------------------------------
 */
#include "fdw/fdw.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

/* Execution state of an INSERT or COPY into a foreign table */
typedef struct KafkaModifyState
{
	KafkaTableOptions opts;
	KafkaEncoder enc;
	KafkaPublisher *pub;
	bool		returning_meta; /* RETURNING needs partition, offset... */
	TupleTableSlot *retslot;
	MemoryContext temp_cxt;		/* reset for each row */
	int64		nrows;
} KafkaModifyState;

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
									  int32 partition, int64 offset);

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
	int32		partition;
	int64		offset;
	int			nestlevel;

	nestlevel = kfdw_set_encoding_gucs();
	insert_row(st, slot);
	kfdw_reset_encoding_gucs(nestlevel);

	if (!st->returning_meta)
		return slot;

	if (kfdw_publisher_holds(st->pub))
	{
		/* held until commit: no offset yet (see insert_row for partition) */
		return returning_slot(st, slot, false, st->enc.partition, -1);
	}

	/* wait for this row's delivery report */
	kfdw_publisher_wait(st->pub, &partition, &offset);
	return returning_slot(st, slot, true, partition, offset);
}

static TupleTableSlot **
kafkaExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo,
							TupleTableSlot **slots, TupleTableSlot **planSlots,
							int *numSlots)
{
	KafkaModifyState *st = (KafkaModifyState *) rinfo->ri_FdwState;
	int			nestlevel;
	int			i;

	/* the settings that values are written with: once per batch */
	nestlevel = kfdw_set_encoding_gucs();
	for (i = 0; i < *numSlots; i++)
		insert_row(st, slots[i]);
	kfdw_reset_encoding_gucs(nestlevel);
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

	/* an unknown topic that cannot be auto-created fails here */
	st->pub = kfdw_publisher_begin(st->opts.serverid, userid, st->opts.topic);

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
 * Encode a row and produce it, or hold it for the transaction.  The caller
 * fixed the settings values are written with (kfdw_set_encoding_gucs).
 */
static void
insert_row(KafkaModifyState *st, TupleTableSlot *slot)
{
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
		st->enc.partition >= kfdw_publisher_partitions(st->pub))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Kafka topic \"%s\" has no partition %d",
						st->opts.topic, st->enc.partition),
				 errdetail("The topic has %d partitions.",
						   kfdw_publisher_partitions(st->pub))));

	error_context_stack = errcallback.previous;

	/*
	 * When RETURNING shows the timestamp, stamp the create time here rather
	 * than let librdkafka do it, so that it is known
	 */
	if (st->returning_meta && st->enc.timestamp == 0 &&
		st->opts.timestamp_attnum != InvalidAttrNumber)
		st->enc.timestamp = kfdw_timestamp_to_kafka(GetCurrentTimestamp());

	/*
	 * A message held until commit gets its partition now, when RETURNING
	 * shows it: the key's, as the Java client's partitioner picks it
	 */
	if (st->returning_meta && kfdw_publisher_holds(st->pub) &&
		st->enc.partition == RD_KAFKA_PARTITION_UA && st->enc.has_key)
		st->enc.partition =
			rd_kafka_msg_partitioner_murmur2(NULL, st->enc.key.data,
											 st->enc.key.len,
											 kfdw_publisher_partitions(st->pub),
											 NULL, NULL);

	kfdw_publish(st->pub, &st->enc);
}

static void
insert_error_callback(void *arg)
{
	KafkaModifyState *st = (KafkaModifyState *) arg;

	errcontext("row " INT64_FORMAT " for Kafka topic \"%s\"",
			   st->nrows, st->opts.topic);
}

/*
 * The slot RETURNING sees: the row, with the partition and offset the broker
 * assigned and the message's timestamp.  Unknown values (a message held
 * until commit has no offset yet) are NULL.
 */
static TupleTableSlot *
returning_slot(KafkaModifyState *st, TupleTableSlot *slot, bool known,
			   int32 partition, int64 offset)
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
		ret->tts_values[attnum - 1] = kfdw_int_to_datum(partition, typid);
	}
	attnum = opts->offset_attnum;
	if (attnum != InvalidAttrNumber)
	{
		ret->tts_isnull[attnum - 1] = !known || offset < 0;
		ret->tts_values[attnum - 1] = Int64GetDatum(offset);
	}
	attnum = opts->timestamp_attnum;
	if (attnum != InvalidAttrNumber && ret->tts_isnull[attnum - 1])
	{
		/* the create time insert_row() stamped on the message */
		TimestampTz ts = kfdw_timestamp_from_kafka(st->enc.timestamp);

		ret->tts_isnull[attnum - 1] = false;
		if (getBaseType(opts->columns[attnum - 1].typid) == TIMESTAMPOID)
			ret->tts_values[attnum - 1] =
				DirectFunctionCall1(timestamptz_timestamp,
									TimestampTzGetDatum(ts));
		else
			ret->tts_values[attnum - 1] = TimestampTzGetDatum(ts);
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
	KafkaPublisher *pub = st->pub;

	if (pub == NULL)
		return;
	st->pub = NULL;
	kfdw_publisher_end(pub);

	if (st->retslot)
		ExecDropSingleTupleTableSlot(st->retslot);
	MemoryContextDelete(st->temp_cxt);
}
