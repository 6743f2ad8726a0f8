/*-------------------------------------------------------------------------
 *
 * scan.c
 *		  Execution of scans of Kafka topics
 *
 * A scan reads, for each partition that survives the pushed-down quals, the
 * offsets from the low watermark (or a pushed-down lower bound) up to the
 * high watermark read when the scan starts, and then ends: no timeout
 * decides where it stops.  Messages are fetched by the backend's cached
 * consumer with explicit assignments, in batches; when none is queued the
 * scan waits on the latch until one arrives (kafka/wait.c), so that
 * interrupts are served at once.
 *
 * librdkafka messages are not palloc'd: the ones of the current batch
 * belong to the consumer handle (kafka/consumer.c).  EndForeignScan gives
 * the handle back; when a scan ends with an error, connection.c destroys
 * the consumer it still has checked out, and its messages with it.
 *
 * Memory stays bounded whatever the size of the topic: librdkafka's
 * prefetching is limited by the consumer configuration (option.c), each
 * row is made in a context reset for every row, and each message is freed
 * as soon as its row is made.
 *
 * IDENTIFICATION
 *		  src/fdw/scan.c
 *
 *-------------------------------------------------------------------------
 */
#include "fdw/fdw.h"

#include <math.h>

#include "access/parallel.h"
#include "access/xact.h"
#include "commands/explain.h"
#include "commands/vacuum.h"
#include "datatype/timestamp.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "port/atomics.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

/*
 * Longest single wait for messages: past connect_timeout_ms without one,
 * the scan looks at what librdkafka last said about the brokers this often
 * (an error wakes it sooner)
 */
#define KFDW_FETCH_WAIT_MS 1000

/* Shared among the participants of a parallel scan (in DSM) */
typedef struct KafkaParallelShared
{
	pg_atomic_uint32 next_range;	/* next range to claim */
	pg_atomic_uint64 messages;	/* fetched by the workers, for EXPLAIN */
	pg_atomic_uint64 bytes;
	int			nranges;
	KafkaPartitionRange ranges[FLEXIBLE_ARRAY_MEMBER];
} KafkaParallelShared;

typedef struct KafkaScanState
{
	KafkaTableOptions opts;
	Oid			userid;
	char	   *topic;

	/* from the plan */
	List	   *pushdown;
	List	   *ts_bounds;
	List	   *value_states;	/* ExprStates of fdw_exprs */
	List	   *value_types;
	bool		exec_params;	/* values use PARAM_EXEC (initplans, outer
								 * rows): known only when the scan runs */
	int64		limit;

	/* the consumer group the scan reads for, or NULL */
	KafkaScanGroup *group;
	int64	   *group_committed;	/* by partition, see KafkaScanRanges */
	int64	   *group_start;
	int64	   *group_next;		/* by partition: last offset returned + 1,
								 * or 0 */

	/* what the plan reads */
	bool	   *attr_needed;	/* by attnum - 1 */

	KafkaDecoder dec;

	/* the ranges to read, computed at scan start */
	bool		prepared;
	int			nparts;
	int			nranges;
	KafkaPartitionRange *ranges;
	int			nskipped;		/* partitions with nothing to read */
	bool		limited;		/* ranges were shortened by the LIMIT */
	TimestampTz ts_lower;		/* pushed-down timestamp bound, or NOBEGIN */

	/* consumption */
	KafkaHandle *handle;		/* checked out from BeginForeignScan on */
	bool		started;
	bool		finished;
	int		   *range_of;		/* partition -> index in ranges, or -1 */
	bool	   *done;			/* by range */
	int64	   *returned;		/* by range: messages returned (LIMIT) */
	int64	   *next;			/* by range: first offset not returned yet */
	int			nopen;
	KafkaParallelShared *shared;

	MemoryContext tuple_cxt;	/* reset for every row */

	/* for EXPLAIN ANALYZE */
	int64		messages;
	int64		bytes;
	int64		worker_messages;	/* of the parallel workers */
	int64		worker_bytes;
} KafkaScanState;

static void kafkaBeginForeignScan(ForeignScanState *node, int eflags);
static TupleTableSlot *kafkaIterateForeignScan(ForeignScanState *node);
static void kafkaReScanForeignScan(ForeignScanState *node);
static void kafkaEndForeignScan(ForeignScanState *node);
static void kafkaExplainForeignScan(ForeignScanState *node, ExplainState *es);
static bool kafkaIsForeignScanParallelSafe(PlannerInfo *root, RelOptInfo *rel,
										   RangeTblEntry *rte);
static Size kafkaEstimateDSMForeignScan(ForeignScanState *node,
										ParallelContext *pcxt);
static void kafkaInitializeDSMForeignScan(ForeignScanState *node,
										  ParallelContext *pcxt,
										  void *coordinate);
static void kafkaReInitializeDSMForeignScan(ForeignScanState *node,
											ParallelContext *pcxt,
											void *coordinate);
static void kafkaInitializeWorkerForeignScan(ForeignScanState *node,
											 shm_toc *toc,
											 void *coordinate);
static void kafkaShutdownForeignScan(ForeignScanState *node);

static void prepare_ranges(KafkaScanState *st, ExprContext *econtext);
static void start_reading(KafkaScanState *st);
static bool assign_next(KafkaScanState *st);
static void assign_partitions(KafkaScanState *st,
							  rd_kafka_topic_partition_list_t *list);
static rd_kafka_message_t *next_message(KafkaScanState *st);
static void finish_partition(KafkaScanState *st, int r);
static void stop_reading(KafkaScanState *st);
static void make_row(KafkaScanState *st, rd_kafka_message_t *msg,
					 TupleTableSlot *slot);
static void open_resources(KafkaScanState *st);
static void close_resources(KafkaScanState *st);
static void alloc_range_state(KafkaScanState *st, int nranges);
static void record_group_reads(KafkaScanState *st);
static bool has_exec_param(Node *node, void *context);
static void explain_ranges(KafkaScanState *st, ExplainState *es);

void
kfdw_set_scan_routines(FdwRoutine *routine)
{
	routine->BeginForeignScan = kafkaBeginForeignScan;
	routine->IterateForeignScan = kafkaIterateForeignScan;
	routine->ReScanForeignScan = kafkaReScanForeignScan;
	routine->EndForeignScan = kafkaEndForeignScan;
	routine->ExplainForeignScan = kafkaExplainForeignScan;
	routine->IsForeignScanParallelSafe = kafkaIsForeignScanParallelSafe;
	routine->EstimateDSMForeignScan = kafkaEstimateDSMForeignScan;
	routine->InitializeDSMForeignScan = kafkaInitializeDSMForeignScan;
	routine->ReInitializeDSMForeignScan = kafkaReInitializeDSMForeignScan;
	routine->InitializeWorkerForeignScan = kafkaInitializeWorkerForeignScan;
	routine->ShutdownForeignScan = kafkaShutdownForeignScan;
}

/*
 * Begin a scan: read the options, check out a consumer, set up decoding.
 * Nothing is asked of the brokers yet.
 *
 * The consumer is checked out here rather than at the first row so that it
 * belongs to the (sub)transaction that started the executor: a cursor
 * fetched inside a later subtransaction that fails keeps its consumer.
 */
static void
kafkaBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	RangeTblEntry *rte = exec_rt_fetch(fsplan->scan.scanrelid, estate);
	Relation	rel = node->ss.ss_currentRelation;
	KafkaScanState *st;
	List	   *attrs;
	ListCell   *lc;

	st = (KafkaScanState *) palloc0(sizeof(KafkaScanState));
	node->fdw_state = st;

	kfdw_get_table_options(RelationGetRelid(rel), &st->opts);
	st->topic = st->opts.topic;
	st->userid = OidIsValid(KFDW_RTE_CHECK_AS_USER(estate, rte)) ?
		KFDW_RTE_CHECK_AS_USER(estate, rte) : GetUserId();

	st->pushdown = (List *) list_nth(fsplan->fdw_private, KFDW_PRIV_PUSHDOWN);
	st->ts_bounds = (List *) list_nth(fsplan->fdw_private, KFDW_PRIV_TS_BOUNDS);
	attrs = (List *) list_nth(fsplan->fdw_private, KFDW_PRIV_ATTRS);
	st->limit = intVal(list_nth(fsplan->fdw_private, KFDW_PRIV_LIMIT));
	st->value_states = ExecInitExprList(fsplan->fdw_exprs, (PlanState *) node);
	foreach(lc, fsplan->fdw_exprs)
		st->value_types = lappend_oid(st->value_types,
									  exprType((Node *) lfirst(lc)));
	st->exec_params = has_exec_param((Node *) fsplan->fdw_exprs, NULL);

	{
		bool		latest;
		char	   *group = kfdw_scan_group(RelationGetRelid(rel), &latest);

		if (group)
		{
			/* kafka_fdw.group_id was set after planning */
			if (fsplan->scan.plan.parallel_aware)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("a scan of Kafka consumer group \"%s\" cannot run in parallel",
								group),
						 errhint("Plan the query again with kafka_fdw.group_id set, or set max_parallel_workers_per_gather to 0.")));
			st->group = palloc(sizeof(KafkaScanGroup));
			st->group->id = group;
			st->group->latest = latest;
		}
	}

	/* which columns the plan reads; a whole-row reference reads them all */
	st->attr_needed = palloc0(sizeof(bool) * Max(st->opts.natts, 1));
	foreach(lc, attrs)
	{
		int			attnum = intVal(lfirst(lc));

		if (attnum == 0)
		{
			int			i;

			for (i = 0; i < st->opts.natts; i++)
				st->attr_needed[i] = true;
		}
		else if (attnum > 0 && attnum <= st->opts.natts)
			st->attr_needed[attnum - 1] = true;
	}

	st->tuple_cxt = AllocSetContextCreate(estate->es_query_cxt,
										  "kafka_fdw tuple",
										  ALLOCSET_DEFAULT_SIZES);
	kfdw_decoder_init(&st->dec, &st->opts, st->attr_needed,
					  estate->es_query_cxt);

	open_resources(st);
	st->ts_lower = DT_NOBEGIN;
}

/*
 * Check out a consumer.  It is given back by close_resources(), or, when
 * the scan ends with an error, destroyed by connection.c with the messages
 * it holds.
 */
static void
open_resources(KafkaScanState *st)
{
	st->handle = kfdw_acquire_handle(st->opts.serverid, st->userid,
									 KFDW_HANDLE_CONSUMER);
}

/* Give back what open_resources() took */
static void
close_resources(KafkaScanState *st)
{
	if (st->handle == NULL)
		return;
	stop_reading(st);
	kfdw_release_handle(st->handle);
	st->handle = NULL;
}

/*
 * Return the next row, or an empty slot at the end of the scan.
 */
static TupleTableSlot *
kafkaIterateForeignScan(ForeignScanState *node)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	rd_kafka_message_t *msg;

	ExecClearTuple(slot);
	if (st->finished)
		return slot;

	if (!st->prepared && st->shared == NULL)
		prepare_ranges(st, node->ss.ps.ps_ExprContext);
	if (!st->started)
		start_reading(st);

	msg = next_message(st);
	if (msg == NULL)
	{
		st->finished = true;
		stop_reading(st);
		return slot;
	}

	make_row(st, msg, slot);

	/* the row holds copies: the message can go */
	kfdw_consumer_next(st->handle);

	return slot;
}

/*
 * Make the row of a message in the slot, in the per-row context.
 */
static void
make_row(KafkaScanState *st, rd_kafka_message_t *msg, TupleTableSlot *slot)
{
	MemoryContext oldcxt;

	st->messages++;
	st->bytes += msg->len + msg->key_len;
	MemoryContextReset(st->tuple_cxt);
	oldcxt = MemoryContextSwitchTo(st->tuple_cxt);
	kfdw_decode_message(&st->dec, msg, slot);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Decide what the scan reads (see ranges.c), with the pushed-down values
 * evaluated now, at scan start.
 */
static void
prepare_ranges(KafkaScanState *st, ExprContext *econtext)
{
	int			n = list_length(st->value_states);
	Datum	   *values = palloc0(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc0(sizeof(bool) * Max(n, 1));
	Oid		   *types = palloc0(sizeof(Oid) * Max(n, 1));
	KafkaScanRanges r;
	ListCell   *lc1,
			   *lc2;
	int			i = 0;
	MemoryContext oldcxt;

	MemoryContextReset(econtext->ecxt_per_tuple_memory);
	oldcxt = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
	forboth(lc1, st->value_states, lc2, st->value_types)
	{
		values[i] = ExecEvalExpr((ExprState *) lfirst(lc1), econtext,
								 &nulls[i]);
		types[i] = lfirst_oid(lc2);
		i++;
	}
	MemoryContextSwitchTo(GetMemoryChunkContext(st));

	kfdw_compute_ranges(st->handle, st->topic, st->pushdown,
						st->ts_bounds, n, values, nulls, types, st->limit,
						st->group, &r);
	st->nparts = r.nparts;
	st->nranges = r.nranges;
	st->ranges = r.ranges;
	st->nskipped = r.nskipped;
	st->limited = r.limited;
	st->ts_lower = r.ts_lower;
	st->group_committed = r.group_committed;
	st->group_start = r.group_start;
	if (st->group)
		st->group_next = palloc0(sizeof(int64) * Max(r.nparts, 1));
	st->range_of = palloc(sizeof(int) * Max(r.nparts, 1));
	alloc_range_state(st, r.nranges);
	st->prepared = true;

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(econtext->ecxt_per_tuple_memory);
}

/* The state of each range of a scan: done, messages returned, next offset */
static void
alloc_range_state(KafkaScanState *st, int nranges)
{
	st->done = palloc0(sizeof(bool) * Max(nranges, 1));
	st->returned = palloc0(sizeof(int64) * Max(nranges, 1));
	st->next = palloc0(sizeof(int64) * Max(nranges, 1));
}

/*
 * Walker: does the expression have a PARAM_EXEC parameter (the output of
 * an initplan, or a value of an outer row)?
 */
static bool
has_exec_param(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param))
		return ((Param *) node)->paramkind == PARAM_EXEC;
	return expression_tree_walker(node, has_exec_param, context);
}

/*
 * A consumer group's scan: hand the offsets it returned to group.c, which
 * commits them to the group when the transaction commits.  A group that
 * starts at the latest offset where it has none also commits that start,
 * read or not: the next scan goes on from there.
 */
static void
record_group_reads(KafkaScanState *st)
{
	int			i;

	if (st->group == NULL || st->group_next == NULL)
		return;
	for (i = 0; i < st->nparts; i++)
	{
		int64		next = st->group_next[i];

		if (next == 0 && st->group->latest && st->group_committed[i] < 0 &&
			st->group_start[i] > 0)
			next = st->group_start[i];
		if (next > 0)
			kfdw_group_read(st->opts.serverid, st->userid, st->group->id,
							st->topic, i, next);
		st->group_next[i] = 0;
	}
}

/*
 * Assign the ranges to the consumer: the first range of each partition
 * (the next one follows when it is read), or in a parallel scan the first
 * range this participant claims.
 */
static void
start_reading(KafkaScanState *st)
{
	int			i;

	st->started = true;
	for (i = 0; i < st->nparts; i++)
		st->range_of[i] = -1;
	st->nopen = 0;

	if (st->shared)
	{
		if (!assign_next(st))
			st->finished = true;
		return;
	}

	if (st->nranges > 0)
	{
		rd_kafka_topic_partition_list_t *list;

		list = rd_kafka_topic_partition_list_new(st->nranges);
		for (i = 0; i < st->nranges; i++)
		{
			KafkaPartitionRange *r = &st->ranges[i];

			st->done[i] = false;
			st->returned[i] = 0;
			st->next[i] = r->start;
			if (st->range_of[r->partition] >= 0)
				continue;		/* a later range of the partition */
			rd_kafka_topic_partition_list_add(list, st->topic,
											  r->partition)->offset = r->start;
			st->range_of[r->partition] = i;
			st->nopen++;
		}
		assign_partitions(st, list);
	}
	else
		st->finished = true;
}

/*
 * Make the consumer read the partitions of list (which this frees) from
 * their offsets.
 */
static void
assign_partitions(KafkaScanState *st, rd_kafka_topic_partition_list_t *list)
{
	rd_kafka_resp_err_t err;

	err = rd_kafka_assign(st->handle->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	kfdw_consumer_set_wake(st->handle, true);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(kfdw_errcode(err)),
				 errmsg("could not assign partitions of Kafka topic \"%s\"",
						st->topic),
				 kfdw_errdetail_kafka(st->handle, err, NULL),
				 kfdw_errhint_kafka(st->handle, err)));
}

/*
 * Parallel scans: claim the next range no participant has taken yet and
 * assign it.  Returns false when none is left.
 */
static bool
assign_next(KafkaScanState *st)
{
	uint32		i = pg_atomic_fetch_add_u32(&st->shared->next_range, 1);
	KafkaPartitionRange *r;
	rd_kafka_topic_partition_list_t *list;

	if (i >= (uint32) st->shared->nranges)
		return false;
	r = &st->ranges[i];
	list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(list, st->topic, r->partition)->offset =
		r->start;
	st->range_of[r->partition] = i;
	st->done[i] = false;
	st->returned[i] = 0;
	st->next[i] = r->start;
	st->nopen = 1;
	assign_partitions(st, list);
	return true;
}

/*
 * A range has been read up to its end: go on with the next range of its
 * partition (a seek: what was fetched past the end is dropped), or stop
 * fetching the partition.  (Pausing would do too, but a paused partition
 * assigned again by the next scan starts fetching only after a delay.)
 */
static void
finish_partition(KafkaScanState *st, int r)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_error_t *error;
	int32		partition = st->ranges[r].partition;

	if (st->done[r])
		return;
	st->done[r] = true;
	list = rd_kafka_topic_partition_list_new(1);
	if (st->shared == NULL && r + 1 < st->nranges &&
		st->ranges[r + 1].partition == partition)
	{
		/* messages of the old position that are still queued are skipped */
		rd_kafka_topic_partition_list_add(list, st->topic, partition)->offset =
			st->ranges[r + 1].start;
		st->range_of[partition] = r + 1;
		error = rd_kafka_seek_partitions(st->handle->rk, list, 0);
		rd_kafka_topic_partition_list_destroy(list);
		if (error)
		{
			rd_kafka_resp_err_t err = rd_kafka_error_code(error);
			char	   *errstr = pstrdup(rd_kafka_error_string(error));

			rd_kafka_error_destroy(error);
			ereport(ERROR,
					(errcode(kfdw_errcode(err)),
					 errmsg("could not seek in partition %d of Kafka topic \"%s\"",
							(int) partition, st->topic),
					 kfdw_errdetail_kafka(st->handle, err, errstr)));
		}
		return;
	}
	st->nopen--;
	rd_kafka_topic_partition_list_add(list, st->topic, partition);
	error = rd_kafka_incremental_unassign(st->handle->rk, list);
	if (error)
	{
		/* harmless: its messages are ignored anyway */
		elog(DEBUG1, "kafka_fdw: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	rd_kafka_topic_partition_list_destroy(list);
}

/*
 * The next message inside the ranges, or NULL when every range has been
 * read.  The message stays in the consumer's batch for the caller, who
 * moves past it with kfdw_consumer_next().
 *
 * A partition ends when a message at or past its end offset arrives, or
 * at partition EOF: with read_committed, EOF comes at the last stable
 * offset, and transaction markers and aborted messages leave gaps in the
 * offsets, so ends are never found by counting messages.
 */
static rd_kafka_message_t *
next_message(KafkaScanState *st)
{
	KafkaHandle *handle = st->handle;
	KafkaDeadline idle;

	kfdw_deadline_start(&idle, handle->connect_timeout_ms);
	for (;;)
	{
		rd_kafka_message_t *msg;
		int			n;
		int			wait_ms;

		while ((msg = kfdw_consumer_peek(handle)) != NULL)
		{
			int			r = (msg->partition >= 0 && msg->partition < st->nparts) ?
				st->range_of[msg->partition] : -1;

			if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && r >= 0 &&
				!st->done[r] && msg->offset < st->next[r])
			{
				/* before the range, or read already (before a seek) */
				kfdw_consumer_next(handle);
				continue;
			}

			if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && r >= 0 &&
				!st->done[r] && msg->offset < st->ranges[r].end)
			{
				st->next[r] = msg->offset + 1;
				if (st->group_next)
					st->group_next[msg->partition] = msg->offset + 1;
				if (msg->offset + 1 >= st->ranges[r].end ||
					(st->ranges[r].max_messages > 0 &&
					 ++st->returned[r] >= st->ranges[r].max_messages))
				{
					/* the last one: the range is done after it */
					finish_partition(st, r);
				}
				return msg;
			}

			if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				/* past the range: maybe the start of the next one */
				if (r >= 0 && !st->done[r])
				{
					finish_partition(st, r);
					if (st->range_of[msg->partition] != r)
						continue;
				}
			}
			else if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			{
				/*
				 * Nothing after: the partition's ranges are done (in order,
				 * what was queued before the EOF has been seen)
				 */
				while (r >= 0 && !st->done[r])
				{
					finish_partition(st, r);
					r = st->range_of[msg->partition];
				}
			}
			else if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
					 kfdw_errcode(msg->err) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
			{
				/* librdkafka retries these itself */
				elog(DEBUG1, "kafka_fdw: %s", rd_kafka_message_errstr(msg));
			}
			else
			{
				rd_kafka_resp_err_t err = msg->err;
				char	   *errstr = pstrdup(rd_kafka_message_errstr(msg));

				kfdw_consumer_next(handle);
				ereport(ERROR,
						(errcode(kfdw_errcode(err)),
						 errmsg("could not read Kafka topic \"%s\"",
								st->topic),
						 kfdw_errdetail_kafka(handle, err, errstr),
						 kfdw_errhint_kafka(handle, err)));
			}
			kfdw_consumer_next(handle);
		}

		if (st->nopen == 0)
		{
			if (st->shared == NULL || !assign_next(st))
				return NULL;
		}

		/*
		 * Take what is queued, or wait for the first message; past the
		 * idle deadline, wake up now and then to look at the brokers.
		 */
		CHECK_FOR_INTERRUPTS();
		wait_ms = kfdw_deadline_remaining(&idle);
		if (wait_ms == 0)
			wait_ms = KFDW_FETCH_WAIT_MS;
		n = kfdw_consumer_fetch(handle, st->opts.batch_size, wait_ms);
		if (n < 0)
			ereport(ERROR,
					(errcode(kfdw_errcode(rd_kafka_last_error())),
					 errmsg("could not read Kafka topic \"%s\"", st->topic),
					 kfdw_errdetail_kafka(handle, rd_kafka_last_error(), NULL),
					 kfdw_errhint_kafka(handle, rd_kafka_last_error())));
		if (n > 0)
			kfdw_deadline_start(&idle, handle->connect_timeout_ms);
		else if (kfdw_deadline_passed(&idle) &&
				 handle->last_err != RD_KAFKA_RESP_ERR_NO_ERROR &&
				 kfdw_errcode(handle->last_err) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
		{
			/*
			 * Nothing arrives although data is known to be there: the
			 * brokers cannot be reached for connect_timeout_ms.
			 */
			ereport(ERROR,
					(errcode(kfdw_errcode(handle->last_err)),
					 errmsg("could not fetch messages from Kafka brokers \"%s\" within %d ms",
							handle->brokers, handle->connect_timeout_ms),
					 kfdw_errdetail_kafka(handle, handle->last_err, NULL),
					 kfdw_errhint_kafka(handle, handle->last_err)));
		}
	}
}

/* Leave the consumer without assignment, with no message kept */
static void
stop_reading(KafkaScanState *st)
{
	if (st->handle == NULL)
		return;
	kfdw_consumer_clear(st->handle);
	kfdw_consumer_set_wake(st->handle, false);
	if (st->started)
		(void) rd_kafka_assign(st->handle->rk, NULL);
	st->started = false;
}

static void
kafkaReScanForeignScan(ForeignScanState *node)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;

	stop_reading(st);
	st->finished = false;
	/* what was read before counts: it reads again from the group's start */
	record_group_reads(st);
	/* parameters changed: the ranges are computed again */
	if (node->ss.ps.chgParam != NULL && st->shared == NULL)
		st->prepared = false;
}

static void
kafkaEndForeignScan(ForeignScanState *node)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;

	if (st != NULL)
	{
		record_group_reads(st);
		kfdw_decoder_end(&st->dec);
		close_resources(st);
	}
}

/*
 * EXPLAIN: the topic, the consumer group and, per partition to read, the
 * offsets; with ANALYZE, the messages and bytes fetched.  Plain EXPLAIN
 * asks the brokers for the watermarks (and the group's offsets) to show
 * the ranges, unless they depend on values only the run knows (initplans,
 * outer rows): the Filter shows the quals they come from.
 */
static void
kafkaExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;

	ExplainPropertyText("Kafka Topic", st->topic, es);
	if (st->group)
		ExplainPropertyText("Consumer Group", st->group->id, es);
	if (!st->prepared && st->shared == NULL && st->exec_params && !es->analyze)
	{
		ExplainPropertyText("Offsets", "decided at scan start, with the values of parameters", es);
		return;
	}
	if (!st->prepared && st->shared == NULL)
		prepare_ranges(st, node->ss.ps.ps_ExprContext);

	if (st->ts_lower != DT_NOBEGIN)
		ExplainPropertyText("Timestamp Lower Bound",
							timestamptz_to_str(st->ts_lower), es);
	if (st->limited)
		ExplainPropertyInteger("Limit Pushed Down", NULL, st->limit, es);
	if (st->group && st->group_start)
	{
		StringInfoData buf;
		int			i;

		initStringInfo(&buf);
		for (i = 0; i < st->nparts; i++)
			appendStringInfo(&buf, "%s%d at " INT64_FORMAT " (%s)",
							 i > 0 ? ", " : "", i, st->group_start[i],
							 st->group_committed[i] >= 0 ? "committed" :
							 st->group->latest ? "latest" : "earliest");
		ExplainPropertyText("Group Starts", buf.data, es);
	}
	explain_ranges(st, es);
	ExplainPropertyInteger("Partitions Skipped", NULL, st->nskipped, es);
	if (es->analyze)
	{
		ExplainPropertyInteger("Messages Fetched", NULL,
							   st->messages + st->worker_messages, es);
		ExplainPropertyInteger("Bytes Fetched", "bytes",
							   st->bytes + st->worker_bytes, es);
	}
}

/* EXPLAIN: per partition, the ranges it reads */
static void
explain_ranges(KafkaScanState *st, ExplainState *es)
{
	int			i;

	for (i = 0; i < st->nranges; i++)
	{
		StringInfoData buf;
		int			partition = st->ranges[i].partition;

		initStringInfo(&buf);
		appendStringInfoString(&buf, "offsets ");
		for (; i < st->nranges && st->ranges[i].partition == partition; i++)
		{
			KafkaPartitionRange *r = &st->ranges[i];

			if (buf.len > 8)
				appendStringInfoString(&buf, " and ");
			appendStringInfo(&buf, INT64_FORMAT " to " INT64_FORMAT "%s%s",
							 r->start, r->end - 1,
							 r->max_messages > 0
							 ? psprintf(", the first " INT64_FORMAT " messages",
										r->max_messages) : "",
							 r->probe_ts ? " (timestamp filtered locally)" : "");
		}
		i--;
		ExplainPropertyText(psprintf("Partition %d", partition), buf.data, es);
	}
}

/*
 * Parallel safe, unless decoding needs subtransactions, which parallel mode
 * forbids (see kfdw_decoder_parallel_safe), or the scan reads for a
 * consumer group: one backend reads it all and commits what it read.
 */
static bool
kafkaIsForeignScanParallelSafe(PlannerInfo *root, RelOptInfo *rel,
							   RangeTblEntry *rte)
{
	KafkaTableOptions opts;
	bool		latest;

	kfdw_get_table_options(rte->relid, &opts);
	if (kfdw_scan_group(rte->relid, &latest) != NULL)
		return false;
	return kfdw_decoder_parallel_safe(&opts);
}

/*
 * Parallel scans: the leader computes the ranges once (one snapshot of the
 * watermarks for everybody) and puts them in shared memory; participants
 * claim whole partitions, one at a time, through an atomic counter.
 */
static Size
kafkaEstimateDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;

	if (!st->prepared)
		prepare_ranges(st, node->ss.ps.ps_ExprContext);
	return add_size(offsetof(KafkaParallelShared, ranges),
					mul_size(sizeof(KafkaPartitionRange), Max(st->nranges, 1)));
}

static void
kafkaInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt,
							  void *coordinate)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;
	KafkaParallelShared *shared = (KafkaParallelShared *) coordinate;

	pg_atomic_init_u32(&shared->next_range, 0);
	pg_atomic_init_u64(&shared->messages, 0);
	pg_atomic_init_u64(&shared->bytes, 0);
	shared->nranges = st->nranges;
	if (st->nranges > 0)
		memcpy(shared->ranges, st->ranges,
			   sizeof(KafkaPartitionRange) * st->nranges);
	st->shared = shared;
}

static void
kafkaReInitializeDSMForeignScan(ForeignScanState *node, ParallelContext *pcxt,
								void *coordinate)
{
	KafkaParallelShared *shared = (KafkaParallelShared *) coordinate;

	pg_atomic_write_u32(&shared->next_range, 0);
}

/*
 * Before the shared memory goes: workers add what they fetched, the
 * leader (whose Gather has waited for the workers) takes the totals.
 */
static void
kafkaShutdownForeignScan(ForeignScanState *node)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;

	if (st == NULL || st->shared == NULL)
		return;
	if (IsParallelWorker())
	{
		pg_atomic_fetch_add_u64(&st->shared->messages, st->messages);
		pg_atomic_fetch_add_u64(&st->shared->bytes, st->bytes);
		st->messages = st->bytes = 0;
	}
	else
	{
		st->worker_messages = pg_atomic_read_u64(&st->shared->messages);
		st->worker_bytes = pg_atomic_read_u64(&st->shared->bytes);
	}
	st->shared = NULL;
}

static void
kafkaInitializeWorkerForeignScan(ForeignScanState *node, shm_toc *toc,
								 void *coordinate)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;
	KafkaParallelShared *shared = (KafkaParallelShared *) coordinate;
	int			nparts = 0;
	int			i;

	st->shared = shared;
	st->nranges = shared->nranges;
	st->ranges = shared->ranges;
	for (i = 0; i < shared->nranges; i++)
		nparts = Max(nparts, shared->ranges[i].partition + 1);
	st->nparts = nparts;
	st->range_of = palloc(sizeof(int) * Max(nparts, 1));
	alloc_range_state(st, shared->nranges);
	st->prepared = true;
}

/*
 * ANALYZE: read a sample of messages for column statistics.  Each
 * partition gives its most recent messages, in proportion to its size,
 * targrows in all.  Messages that do not parse count as rows with NULL
 * data columns rather than failing ANALYZE.
 */
int
kfdw_sample_rows(Relation relation, int elevel, HeapTuple *rows,
				 int targrows, double *totalrows, double *totaldeadrows)
{
	KafkaScanState *st = palloc0(sizeof(KafkaScanState));
	TupleTableSlot *slot;
	int64	   *low,
			   *high;
	double		total = 0;
	int			nrows = 0;
	int			i;
	MemoryContext cxt = CurrentMemoryContext;

	kfdw_get_table_options(RelationGetRelid(relation), &st->opts);
	st->topic = st->opts.topic;
	st->userid = GetUserId();
	st->limit = -1;
	st->ts_lower = DT_NOBEGIN;
	st->attr_needed = palloc(sizeof(bool) * Max(st->opts.natts, 1));
	for (i = 0; i < st->opts.natts; i++)
		st->attr_needed[i] = true;
	st->tuple_cxt = AllocSetContextCreate(cxt, "kafka_fdw tuple",
										  ALLOCSET_DEFAULT_SIZES);
	kfdw_decoder_init(&st->dec, &st->opts, st->attr_needed, cxt);
	st->dec.tolerate_junk = true;
	open_resources(st);

	st->nparts = kfdw_topic_watermarks(st->handle, st->topic, &low, &high);
	for (i = 0; i < st->nparts; i++)
		total += (double) (high[i] - low[i]);

	st->ranges = palloc0(sizeof(KafkaPartitionRange) * Max(st->nparts, 1));
	st->range_of = palloc(sizeof(int) * Max(st->nparts, 1));
	alloc_range_state(st, st->nparts);
	for (i = 0; i < st->nparts; i++)
	{
		KafkaPartitionRange *r = &st->ranges[st->nranges];
		int64		want;

		if (high[i] <= low[i])
			continue;
		want = (int64) ceil(targrows * (double) (high[i] - low[i]) / total);
		r->partition = i;
		r->low = low[i];
		r->high = high[i];
		r->end = high[i];
		r->start = Max(low[i], high[i] - want);
		st->nranges++;
	}
	st->prepared = true;

	slot = MakeSingleTupleTableSlot(RelationGetDescr(relation),
									&TTSOpsVirtual);
	start_reading(st);
	while (!st->finished && nrows < targrows)
	{
		rd_kafka_message_t *msg = next_message(st);

		if (msg == NULL)
			break;
		make_row(st, msg, slot);
		rows[nrows++] = ExecCopySlotHeapTuple(slot);
		kfdw_consumer_next(st->handle);
		vacuum_delay_point();
	}
	ExecDropSingleTupleTableSlot(slot);
	kfdw_decoder_end(&st->dec);
	close_resources(st);

	ereport(elevel,
			(errmsg("\"%s\": sampled %d of %.0f Kafka messages",
					RelationGetRelationName(relation), nrows, total)));
	*totalrows = total;
	*totaldeadrows = 0;
	return nrows;
}
