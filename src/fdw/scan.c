/*-------------------------------------------------------------------------
 *
 * scan.c
 *		  Execution of scans of Kafka topics
 *
 * A scan reads, for each partition that survives the pushed-down quals, the
 * offsets from the low watermark (or a pushed-down lower bound) up to the
 * high watermark read when the scan starts, and then ends: no timeout
 * decides where it stops.  Messages are fetched by the backend's cached
 * consumer with explicit assignments, in batches, waiting at most 100 ms at
 * a time so that interrupts are served.
 *
 * librdkafka messages are not palloc'd: the ones of the current batch are
 * kept in a KafkaScanResources struct in TopMemoryContext, which is freed by
 * EndForeignScan or, when a scan ends with an error, by this file's
 * (sub)transaction callbacks.  Those are registered after connection.c's,
 * so they run first, before connection.c destroys the consumer still
 * checked out by the failed scan.
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
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "commands/vacuum.h"
#include "datatype/timestamp.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "port/atomics.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

/* Longest a single wait for librdkafka lasts before interrupts are checked */
#define KFDW_POLL_MS 100

/*
 * The non-palloc resources of a scan: the consumer it checked out and the
 * messages of the current batch.  Lives in TopMemoryContext (the executor's
 * memory may be gone when a transaction callback cleans up after an error).
 */
typedef struct KafkaScanResources
{
	KafkaHandle *handle;
	rd_kafka_queue_t *queue;	/* the consumer's queue, or NULL */
	rd_kafka_message_t **msgs;
	int			nmsgs;
	int			next;			/* first message not yet used */
	SubTransactionId subid;
} KafkaScanResources;

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
	int64		limit;

	/* what the plan reads */
	bool		need_value;
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
	KafkaScanResources *res;
	bool		started;
	bool		finished;
	int		   *range_of;		/* partition -> index in ranges, or -1 */
	bool	   *done;			/* by range */
	int64	   *returned;		/* by range: messages returned (LIMIT) */
	int			nopen;
	KafkaParallelShared *shared;

	MemoryContext tuple_cxt;	/* reset for every row */

	/* for EXPLAIN ANALYZE */
	int64		messages;
	int64		bytes;
	int64		worker_messages;	/* of the parallel workers */
	int64		worker_bytes;

	/* where the current row comes from, for the error context */
	int32		cur_partition;
	int64		cur_offset;
} KafkaScanState;

static List *active_resources = NIL;
static bool scan_callbacks_registered = false;

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
static rd_kafka_message_t *next_message(KafkaScanState *st);
static void finish_partition(KafkaScanState *st, int r);
static void stop_reading(KafkaScanState *st);
static void free_messages(KafkaScanResources *res);
static void make_row(KafkaScanState *st, rd_kafka_message_t *msg,
					 TupleTableSlot *slot);
static void init_decoder(KafkaScanState *st, MemoryContext cxt);
static bool input_is_self_contained(Oid typid);
static bool is_builtin_function(Oid funcid);
static bool is_junk_error(int sqlerrcode);
static void release_input_owner(KafkaDecoder *dec, bool isCommit);
static void input_value(KafkaDecoder *dec, KafkaColumnDecoder *cd,
						const char *str, bool json_text);
static void input_value_isolated(KafkaDecoder *dec, KafkaColumnDecoder *cd,
								 const char *str, bool json_text);
static void open_resources(KafkaScanState *st);
static void close_resources(KafkaScanState *st);
static Datum headers_to_jsonb(KafkaScanState *st, rd_kafka_message_t *msg,
							  bool *isnull);
static void scan_error_callback(void *arg);
static void scan_xact_callback(XactEvent event, void *arg);
static void scan_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								  SubTransactionId parentSubid, void *arg);

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
	init_decoder(st, estate->es_query_cxt);

	open_resources(st);
	st->ts_lower = DT_NOBEGIN;
}

/*
 * Check out a consumer and make the struct that owns the scan's
 * non-palloc resources, which the callbacks clean up after an error.
 */
static void
open_resources(KafkaScanState *st)
{
	MemoryContext oldcxt;

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	st->res = palloc0(sizeof(KafkaScanResources));
	st->res->msgs = palloc0(sizeof(rd_kafka_message_t *) * st->opts.batch_size);
	st->res->subid = GetCurrentSubTransactionId();
	active_resources = lappend(active_resources, st->res);
	MemoryContextSwitchTo(oldcxt);

	st->res->handle = kfdw_acquire_handle(st->opts.serverid, st->userid,
										  KFDW_HANDLE_CONSUMER);
	if (!scan_callbacks_registered)
	{
		/* registered after connection.c's: called before them */
		RegisterXactCallback(scan_xact_callback, NULL);
		RegisterSubXactCallback(scan_subxact_callback, NULL);
		scan_callbacks_registered = true;
	}
}

/* Give back what open_resources() took */
static void
close_resources(KafkaScanState *st)
{
	KafkaScanResources *res = st->res;

	if (res == NULL)
		return;
	stop_reading(st);
	if (res->queue)
		rd_kafka_queue_destroy(res->queue);
	res->queue = NULL;
	kfdw_release_handle(res->handle);
	active_resources = list_delete_ptr(active_resources, res);
	pfree(res->msgs);
	pfree(res);
	st->res = NULL;
}

/*
 * Set up the decoding of the columns the plan reads.
 */
static void
init_decoder(KafkaScanState *st, MemoryContext cxt)
{
	KafkaTableOptions *opts = &st->opts;
	KafkaDecoder *dec = &st->dec;
	int			i;

	dec->opts = opts;
	dec->cols = palloc0(sizeof(KafkaColumnDecoder) * Max(opts->natts, 1));
	dec->data = palloc0(sizeof(KafkaColumnDecoder *) * Max(opts->ndata, 1));
	dec->tolerate_junk = opts->ignore_junk ||
		opts->junk_attnum != InvalidAttrNumber ||
		opts->junk_error_attnum != InvalidAttrNumber;

	for (i = 0; i < opts->natts; i++)
	{
		KafkaColumn *col = &opts->columns[i];
		KafkaColumnDecoder *cd = &dec->cols[i];
		Oid			infunc;

		cd->col = col;
		if (col->dropped)
			continue;
		cd->needed = st->attr_needed[i];
		cd->basetype = getBaseType(col->typid);
		cd->isolate = !input_is_self_contained(col->typid);
		getTypeInputInfo(col->typid, &infunc, &cd->ioparam);
		fmgr_info_cxt(infunc, &cd->infunc, cxt);
		if (cd->basetype == JSONOID)
			cd->category = 'j';
		else if (cd->basetype == JSONBOID)
			cd->category = 'b';
		else if (cd->basetype == BYTEAOID)
			cd->category = 'x';
		else if (OidIsValid(get_element_type(cd->basetype)))
			cd->category = 'a';
		else if (type_is_rowtype(cd->basetype))
			cd->category = 'c';
		else
			cd->category = 's';

		if (col->kind == KAFKA_COL_DATA)
		{
			dec->data[col->data_index] = cd;
			if (cd->needed)
				st->need_value = true;
		}
	}

	/*
	 * Junk columns say whether the message parses: they need it parsed,
	 * the key and the headers too, so that a row is junk or not whatever
	 * the columns the query reads.
	 */
	if ((opts->junk_attnum != InvalidAttrNumber &&
		 st->attr_needed[opts->junk_attnum - 1]) ||
		(opts->junk_error_attnum != InvalidAttrNumber &&
		 st->attr_needed[opts->junk_error_attnum - 1]))
	{
		st->need_value = true;
		for (i = 0; i < opts->ndata; i++)
			dec->data[i]->needed = true;
		if (opts->key_attnum != InvalidAttrNumber)
			st->attr_needed[opts->key_attnum - 1] = true;
		if (opts->headers_attnum != InvalidAttrNumber)
			st->attr_needed[opts->headers_attnum - 1] = true;
	}
}

/*
 * Whether a failure of the input of type typid can be caught without a
 * subtransaction.  That holds when its input function, and those of the
 * types it is made of (array elements, composite fields, the subtype of a
 * range), are built-in C functions, which raise their data exceptions
 * before they hold any resource, and no domain on the way has constraints:
 * a CHECK may call any SQL or PL function, which takes snapshots, locks or
 * an SPI connection before it fails.  Decided once per column at scan
 * start.
 */
static bool
input_is_self_contained(Oid typid)
{
	HeapTuple	tup;
	Form_pg_type typ;
	Oid			typinput;
	char		typtype;
	Oid			typbasetype;
	Oid			typelem;
	bool		result;

	check_stack_depth();
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	typ = (Form_pg_type) GETSTRUCT(tup);
	typinput = typ->typinput;
	typtype = typ->typtype;
	typbasetype = typ->typbasetype;
	typelem = typ->typelem;
	ReleaseSysCache(tup);

	if (!is_builtin_function(typinput))
		return false;

	switch (typtype)
	{
		case TYPTYPE_DOMAIN:
			result = !DomainHasConstraints(typid) &&
				input_is_self_contained(typbasetype);
			break;
		case TYPTYPE_COMPOSITE:
			{
				TupleDesc	tupdesc = lookup_rowtype_tupdesc_copy(typid, -1);
				int			i;

				result = true;
				for (i = 0; i < tupdesc->natts && result; i++)
				{
					Form_pg_attribute att = TupleDescAttr(tupdesc, i);

					if (!att->attisdropped)
						result = input_is_self_contained(att->atttypid);
				}
				FreeTupleDesc(tupdesc);
			}
			break;
		case TYPTYPE_RANGE:
			{
				TypeCacheEntry *tc = lookup_type_cache(typid,
													   TYPECACHE_RANGE_INFO);

				/* range_in also compares bounds and canonicalizes */
				result = is_builtin_function(tc->rng_cmp_proc_finfo.fn_oid) &&
					(!OidIsValid(tc->rng_canonical_finfo.fn_oid) ||
					 is_builtin_function(tc->rng_canonical_finfo.fn_oid)) &&
					input_is_self_contained(tc->rngelemtype->type_id);
			}
			break;
		case TYPTYPE_MULTIRANGE:
			result = input_is_self_contained(get_multirange_range(typid));
			break;
		default:
			result = typinput != F_ARRAY_IN ||
				input_is_self_contained(typelem);
			break;
	}
	return result;
}

/* A C function of PostgreSQL itself (not of an extension) */
static bool
is_builtin_function(Oid funcid)
{
	HeapTuple	tup;
	bool		result;

	if (!OidIsValid(funcid) || funcid >= FirstGenbkiObjectId)
		return false;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", funcid);
	result = ((Form_pg_proc) GETSTRUCT(tup))->prolang == INTERNALlanguageId;
	ReleaseSysCache(tup);
	return result;
}

/*
 * The errors that make a value junk: data exceptions (class 22), integrity
 * constraint violations (class 23), which domain constraints raise, and a
 * value too large or nested too deep for PostgreSQL (54000, and 54001, the
 * stack depth limit of a recursive parser).  Every other error (out of
 * memory, cancel, ...) goes on.
 */
static bool
is_junk_error(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
		ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		sqlerrcode == ERRCODE_STATEMENT_TOO_COMPLEX;
}

/*
 * Store a text value in a column through the type's input function.
 * json_text says str is the JSON text of an array or object, which array
 * and composite columns take as their own literal.
 *
 * When the table tolerates junk, a junk error (is_junk_error) leaves the
 * column NULL and marks the message as junk.  For a column whose input is
 * self-contained (input_is_self_contained) the error is caught as it is,
 * with the input run under a resource owner of its own, released after a
 * failure: record_in, for one, holds a reference to its tuple descriptor
 * when a field's input fails.  Any other column's input runs in a
 * subtransaction, rolled back on error, which releases whatever the failed
 * input held.  Subtransactions cannot be started in parallel mode: there
 * (only under force_parallel_mode, as such scans are not parallel safe)
 * those columns' errors are errors.
 */
void
kfdw_decoder_set(KafkaDecoder *dec, KafkaColumnDecoder *cd, const char *str,
				 bool json_text)
{
	MemoryContext cxt = CurrentMemoryContext;

	dec->cur_column = cd->col->attname;

	/* JSON from a raw value, a CSV field or a key: bounded like a message */
	if (!json_text && (cd->category == 'j' || cd->category == 'b') &&
		!kfdw_json_depth_ok(str, strlen(str)))
	{
		dec->cur_column = NULL;
		kfdw_decoder_fail(dec, cd,
						  psprintf("JSON value nested more than %d levels deep",
								   KFDW_JSON_MAX_DEPTH));
		return;
	}

	if (!dec->tolerate_junk || (cd->isolate && IsInParallelMode()))
		input_value(dec, cd, str, json_text);
	else if (cd->isolate)
		input_value_isolated(dec, cd, str, json_text);
	else
	{
		ResourceOwner owner = CurrentResourceOwner;

		if (dec->input_owner == NULL)
			dec->input_owner = ResourceOwnerCreate(owner,
												   "kafka_fdw column input");
		CurrentResourceOwner = dec->input_owner;
		PG_TRY();
		{
			input_value(dec, cd, str, json_text);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			CurrentResourceOwner = owner;
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			if (!is_junk_error(edata->sqlerrcode))
				PG_RE_THROW();	/* the abort releases dec->input_owner */
			FlushErrorState();

			/* what the failed input held; a new owner for the next one */
			release_input_owner(dec, false);

			dec->cur_column = NULL;
			kfdw_decoder_fail(dec, cd, edata->message);
		}
		PG_END_TRY();
	}
	dec->cur_column = NULL;
}

/*
 * Release and delete the resource owner of the decoder's column inputs:
 * after a failed input (isCommit false: whatever it held is let go
 * silently), or at the end of the scan (isCommit true: an input that
 * succeeded holds nothing, or gets the usual leak WARNING).
 */
static void
release_input_owner(KafkaDecoder *dec, bool isCommit)
{
	ResourceOwner owner = dec->input_owner;

	if (owner == NULL)
		return;
	dec->input_owner = NULL;
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_BEFORE_LOCKS, isCommit, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_LOCKS, isCommit, false);
	ResourceOwnerRelease(owner, RESOURCE_RELEASE_AFTER_LOCKS, isCommit, false);
	ResourceOwnerDelete(owner);
}

/* Run the input function of the column: the value or an ERROR */
static void
input_value(KafkaDecoder *dec, KafkaColumnDecoder *cd, const char *str,
			bool json_text)
{
	int			idx = cd->col->attnum - 1;

	if (json_text && (cd->category == 'a' || cd->category == 'c'))
		str = kfdw_json_to_literal(str, cd->basetype);
	dec->values[idx] = InputFunctionCall(&cd->infunc, (char *) str,
										 cd->ioparam, cd->col->typmod);
	dec->nulls[idx] = false;
}

/*
 * input_value() in a subtransaction, as PL/pgSQL runs a block with an
 * exception handler: on error, the subtransaction is rolled back (which
 * releases the snapshots, locks, SPI connections and buffer pins the
 * failed input held), the memory context and resource owner are restored,
 * and a junk error makes the column junk; any other error is thrown again.
 */
static void
input_value_isolated(KafkaDecoder *dec, KafkaColumnDecoder *cd,
					 const char *str, bool json_text)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	/* the value is made in the caller's (per-row) context */
	MemoryContextSwitchTo(cxt);

	PG_TRY();
	{
		input_value(dec, cd, str, json_text);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();

		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;

		if (!is_junk_error(edata->sqlerrcode))
			ReThrowError(edata);
		dec->cur_column = NULL;
		kfdw_decoder_fail(dec, cd, edata->message);
	}
	PG_END_TRY();
}

/*
 * A message, or one of its columns (cd), could not be decoded.  Unless the
 * table tolerates junk this is an ERROR whose context names the topic,
 * partition, offset and column; otherwise what failed is NULL and the
 * reason is kept for the junk_error column.
 */
void
kfdw_decoder_fail(KafkaDecoder *dec, KafkaColumnDecoder *cd,
				  const char *reason)
{
	int			i;

	if (!dec->tolerate_junk)
	{
		dec->cur_column = cd ? cd->col->attname : NULL;
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("could not parse Kafka message"),
				 errdetail_internal("%s", reason),
				 errhint("Add a junk or junk_error column, or set the table option ignore_junk, to read such messages as junk.")));
	}

	if (cd)
	{
		dec->nulls[cd->col->attnum - 1] = true;
		if (dec->junk_reason == NULL)
			dec->junk_reason = psprintf("column \"%s\": %s",
										cd->col->attname, reason);
	}
	else
	{
		for (i = 0; i < dec->opts->ndata; i++)
			dec->nulls[dec->data[i]->col->attnum - 1] = true;
		if (dec->junk_reason == NULL)
			dec->junk_reason = pstrdup(reason);
	}
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
	ErrorContextCallback errcallback;

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

	st->cur_partition = msg->partition;
	st->cur_offset = msg->offset;
	errcallback.callback = scan_error_callback;
	errcallback.arg = st;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	MemoryContextReset(st->tuple_cxt);
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(st->tuple_cxt);

		make_row(st, msg, slot);
		MemoryContextSwitchTo(oldcxt);
	}

	error_context_stack = errcallback.previous;

	/* the row holds copies: the message can go */
	st->res->msgs[st->res->next++] = NULL;
	rd_kafka_message_destroy(msg);

	return slot;
}

/*
 * Fill the slot from a message.  Runs in the per-tuple context.
 */
static void
make_row(KafkaScanState *st, rd_kafka_message_t *msg, TupleTableSlot *slot)
{
	KafkaTableOptions *opts = &st->opts;
	KafkaDecoder *dec = &st->dec;
	Datum	   *values = slot->tts_values;
	bool	   *nulls = slot->tts_isnull;
	AttrNumber	a;

	memset(nulls, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	dec->values = values;
	dec->nulls = nulls;
	dec->junk_reason = NULL;
	dec->cur_column = NULL;

	st->messages++;
	st->bytes += msg->len + msg->key_len;

	if ((a = opts->partition_attnum) != InvalidAttrNumber)
	{
		Oid			typid = dec->cols[a - 1].basetype;

		values[a - 1] = kfdw_int_to_datum(msg->partition, typid);
		nulls[a - 1] = false;
	}
	if ((a = opts->offset_attnum) != InvalidAttrNumber)
	{
		values[a - 1] = Int64GetDatum(msg->offset);
		nulls[a - 1] = false;
	}
	if ((a = opts->key_attnum) != InvalidAttrNumber &&
		st->attr_needed[a - 1] && msg->key != NULL)
		kfdw_decoder_set_bytes(dec, &dec->cols[a - 1], msg->key,
							   (int) msg->key_len);
	if ((a = opts->timestamp_attnum) != InvalidAttrNumber &&
		st->attr_needed[a - 1])
	{
		rd_kafka_timestamp_type_t tstype;
		int64		ms = rd_kafka_message_timestamp(msg, &tstype);

		if (ms >= 0)
		{
			TimestampTz ts = kfdw_timestamp_from_kafka(ms);

			values[a - 1] = dec->cols[a - 1].basetype == TIMESTAMPOID ?
				DirectFunctionCall1(timestamptz_timestamp,
									TimestampTzGetDatum(ts)) :
				TimestampTzGetDatum(ts);
			nulls[a - 1] = false;
		}
	}
	if ((a = opts->headers_attnum) != InvalidAttrNumber &&
		st->attr_needed[a - 1])
		values[a - 1] = headers_to_jsonb(st, msg, &nulls[a - 1]);

	/* a tombstone (null value) has NULL data columns */
	if (st->need_value && msg->payload != NULL)
	{
		switch (opts->format)
		{
			case KAFKA_FORMAT_JSON:
				kfdw_decode_json(dec, (char *) msg->payload, (int) msg->len);
				break;
			case KAFKA_FORMAT_CSV:
				kfdw_decode_csv(dec, (const char *) msg->payload,
								(int) msg->len);
				break;
			case KAFKA_FORMAT_RAW:
				kfdw_decode_raw(dec, (const char *) msg->payload,
								(int) msg->len);
				break;
		}
	}

	if (dec->junk_reason != NULL)
	{
		if ((a = opts->junk_attnum) != InvalidAttrNumber &&
			msg->payload != NULL)
		{
			const char *data = (const char *) msg->payload;
			int			len = (int) msg->len;

			if (pg_verify_mbstr(GetDatabaseEncoding(), data, len, true))
				values[a - 1] = PointerGetDatum(cstring_to_text_with_len(data, len));
			else
			{
				/* not text: the bytes in bytea's hex format */
				bytea	   *b = (bytea *) palloc(len + VARHDRSZ);

				SET_VARSIZE(b, len + VARHDRSZ);
				memcpy(VARDATA(b), data, len);
				values[a - 1] = PointerGetDatum(cstring_to_text(DatumGetCString(DirectFunctionCall1(byteaout,
																									  PointerGetDatum(b)))));
			}
			nulls[a - 1] = false;
		}
		if ((a = opts->junk_error_attnum) != InvalidAttrNumber)
		{
			values[a - 1] = PointerGetDatum(cstring_to_text(dec->junk_reason));
			nulls[a - 1] = false;
		}
	}

	ExecStoreVirtualTuple(slot);
}

/*
 * The headers of a message as a jsonb object: name -> text value, a name
 * repeated in the message -> JSON array of its values in order, a null
 * value -> JSON null.
 */
static Datum
headers_to_jsonb(KafkaScanState *st, rd_kafka_message_t *msg, bool *isnull)
{
	rd_kafka_headers_t *hdrs;
	KafkaColumnDecoder *cd = &st->dec.cols[st->opts.headers_attnum - 1];
	StringInfoData buf;
	size_t		n,
				i,
				j;
	bool		first = true;
	bool	   *emitted;

	*isnull = false;
	if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));

	n = rd_kafka_header_cnt(hdrs);
	emitted = palloc0(sizeof(bool) * Max(n, 1));
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < n; i++)
	{
		const char *name;
		const void *val;
		size_t		size;
		int			count = 0;

		if (emitted[i])
			continue;
		(void) rd_kafka_header_get_all(hdrs, i, &name, &val, &size);
		/* how many headers have this name */
		for (j = i; j < n; j++)
		{
			const char *n2;
			const void *v2;
			size_t		s2;

			(void) rd_kafka_header_get_all(hdrs, j, &n2, &v2, &s2);
			if (strcmp(n2, name) == 0)
				count++;
		}

		if (!pg_verify_mbstr(GetDatabaseEncoding(), name, strlen(name), true))
		{
			kfdw_decoder_fail(&st->dec, cd, "header name is not valid text");
			*isnull = true;
			return (Datum) 0;
		}
		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		escape_json(&buf, name);
		appendStringInfoString(&buf, ": ");
		if (count > 1)
			appendStringInfoChar(&buf, '[');
		for (j = i; j < n; j++)
		{
			const char *n2;
			const void *v2;
			size_t		s2;

			(void) rd_kafka_header_get_all(hdrs, j, &n2, &v2, &s2);
			if (strcmp(n2, name) != 0)
				continue;
			if (j > i)
				appendStringInfoString(&buf, ", ");
			emitted[j] = true;
			if (v2 == NULL)
				appendStringInfoString(&buf, "null");
			else if (!pg_verify_mbstr(GetDatabaseEncoding(), v2, (int) s2, true))
			{
				kfdw_decoder_fail(&st->dec, cd,
								  psprintf("value of header \"%s\" is not valid text", name));
				*isnull = true;
				return (Datum) 0;
			}
			else
				escape_json(&buf, pnstrdup(v2, s2));
		}
		if (count > 1)
			appendStringInfoChar(&buf, ']');
	}
	appendStringInfoChar(&buf, '}');

	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/*
 * Error context: where the row being made comes from.
 */
static void
scan_error_callback(void *arg)
{
	KafkaScanState *st = (KafkaScanState *) arg;

	if (st->dec.cur_column)
		errcontext("Kafka topic \"%s\", partition %d, offset " INT64_FORMAT ", column \"%s\"",
				   st->topic, st->cur_partition, st->cur_offset,
				   st->dec.cur_column);
	else
		errcontext("Kafka topic \"%s\", partition %d, offset " INT64_FORMAT,
				   st->topic, st->cur_partition, st->cur_offset);
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

	kfdw_compute_ranges(st->res->handle, st->topic, st->pushdown,
						st->ts_bounds, n, values, nulls, types, st->limit, &r);
	st->nparts = r.nparts;
	st->nranges = r.nranges;
	st->ranges = r.ranges;
	st->nskipped = r.nskipped;
	st->limited = r.limited;
	st->ts_lower = r.ts_lower;
	st->range_of = palloc(sizeof(int) * Max(r.nparts, 1));
	st->done = palloc0(sizeof(bool) * Max(r.nparts, 1));
	st->returned = palloc0(sizeof(int64) * Max(r.nparts, 1));
	st->prepared = true;

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(econtext->ecxt_per_tuple_memory);
}

/*
 * Assign the ranges to the consumer: all of them, or in a parallel scan
 * the first one this participant claims.
 */
static void
start_reading(KafkaScanState *st)
{
	KafkaHandle *handle = st->res->handle;
	int			i;

	st->started = true;
	if (st->res->queue == NULL)
		st->res->queue = rd_kafka_queue_get_consumer(handle->rk);
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
		rd_kafka_resp_err_t err;

		list = rd_kafka_topic_partition_list_new(st->nranges);
		for (i = 0; i < st->nranges; i++)
		{
			KafkaPartitionRange *r = &st->ranges[i];

			rd_kafka_topic_partition_list_add(list, st->topic,
											  r->partition)->offset = r->start;
			st->range_of[r->partition] = i;
			st->done[i] = false;
			st->returned[i] = 0;
		}
		st->nopen = st->nranges;
		err = rd_kafka_assign(handle->rk, list);
		rd_kafka_topic_partition_list_destroy(list);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			kfdw_report_error(ERROR, handle, err, NULL,
							  psprintf("could not assign partitions of Kafka topic \"%s\"",
									   st->topic));
	}
	else
		st->finished = true;
}

/*
 * Parallel scans: claim the next range no participant has taken yet and
 * assign it.  Returns false when none is left.
 */
static bool
assign_next(KafkaScanState *st)
{
	KafkaHandle *handle = st->res->handle;
	uint32		i = pg_atomic_fetch_add_u32(&st->shared->next_range, 1);
	KafkaPartitionRange *r;
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;

	if (i >= (uint32) st->shared->nranges)
		return false;
	r = &st->ranges[i];
	list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(list, st->topic, r->partition)->offset =
		r->start;
	st->range_of[r->partition] = i;
	st->done[i] = false;
	st->returned[i] = 0;
	st->nopen = 1;
	err = rd_kafka_assign(handle->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		kfdw_report_error(ERROR, handle, err, NULL,
						  psprintf("could not assign partitions of Kafka topic \"%s\"",
								   st->topic));
	return true;
}

/*
 * A partition has been read up to its end: stop fetching it.  (Pausing
 * would do too, but a paused partition assigned again by the next scan
 * starts fetching only after a delay.)
 */
static void
finish_partition(KafkaScanState *st, int r)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_error_t *error;

	if (st->done[r])
		return;
	st->done[r] = true;
	st->nopen--;
	list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(list, st->topic, st->ranges[r].partition);
	error = rd_kafka_incremental_unassign(st->res->handle->rk, list);
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
 * read.  The message stays in res->msgs[res->next] for the caller.
 *
 * A partition ends when a message at or past its end offset arrives, or
 * at partition EOF: with read_committed, EOF comes at the last stable
 * offset, and transaction markers and aborted messages leave gaps in the
 * offsets, so ends are never found by counting messages.
 */
static rd_kafka_message_t *
next_message(KafkaScanState *st)
{
	KafkaScanResources *res = st->res;
	KafkaHandle *handle = res->handle;
	instr_time	idle_since;

	INSTR_TIME_SET_CURRENT(idle_since);
	for (;;)
	{
		ssize_t		n;

		while (res->next < res->nmsgs)
		{
			rd_kafka_message_t *msg = res->msgs[res->next];
			int			r = (msg->partition >= 0 && msg->partition < st->nparts) ?
				st->range_of[msg->partition] : -1;

			if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && r >= 0 &&
				!st->done[r] && msg->offset < st->ranges[r].end)
			{
				if (msg->offset + 1 >= st->ranges[r].end ||
					(st->ranges[r].max_messages > 0 &&
					 ++st->returned[r] >= st->ranges[r].max_messages))
				{
					/* the last one: the partition is done after it */
					finish_partition(st, r);
				}
				return msg;
			}

			res->msgs[res->next++] = NULL;
			if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR ||
				msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			{
				if (r >= 0)
					finish_partition(st, r);
				rd_kafka_message_destroy(msg);
			}
			else if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
					 kfdw_errcode(msg->err) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
			{
				/* librdkafka retries these itself */
				elog(DEBUG1, "kafka_fdw: %s", rd_kafka_message_errstr(msg));
				rd_kafka_message_destroy(msg);
			}
			else
			{
				rd_kafka_resp_err_t err = msg->err;
				char	   *errstr = pstrdup(rd_kafka_message_errstr(msg));

				rd_kafka_message_destroy(msg);
				kfdw_report_error(ERROR, handle, err, errstr,
								  psprintf("could not read Kafka topic \"%s\"",
										   st->topic));
			}
		}
		res->next = res->nmsgs = 0;

		if (st->nopen == 0)
		{
			if (st->shared == NULL || !assign_next(st))
				return NULL;
		}

		CHECK_FOR_INTERRUPTS();
		kfdw_serve_events(handle);
		/*
		 * Take what is queued without waiting (a batch call with a timeout
		 * would wait for a full batch); when nothing is, wait for one
		 * message, at most KFDW_POLL_MS.
		 */
		n = rd_kafka_consume_batch_queue(res->queue, 0, res->msgs,
										 st->opts.batch_size);
		if (n == 0)
		{
			rd_kafka_message_t *m = rd_kafka_consume_queue(res->queue,
														   KFDW_POLL_MS);

			if (m != NULL)
			{
				res->msgs[0] = m;
				n = 1;
			}
		}
		else if (n < 0)
			kfdw_report_error(ERROR, handle, rd_kafka_last_error(), NULL,
							  psprintf("could not read Kafka topic \"%s\"",
									   st->topic));
		res->nmsgs = (int) n;

		if (n > 0)
			INSTR_TIME_SET_CURRENT(idle_since);
		else
		{
			instr_time	now;

			/*
			 * Nothing arrives although data is known to be there: when the
			 * brokers cannot be reached for connect_timeout_ms, say so.
			 */
			INSTR_TIME_SET_CURRENT(now);
			INSTR_TIME_SUBTRACT(now, idle_since);
			if (INSTR_TIME_GET_MILLISEC(now) >= handle->connect_timeout_ms &&
				handle->last_err != RD_KAFKA_RESP_ERR_NO_ERROR &&
				kfdw_errcode(handle->last_err) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
				kfdw_report_error(ERROR, handle, handle->last_err, NULL,
								  psprintf("could not fetch messages from Kafka brokers \"%s\" within %d ms",
										   handle->brokers,
										   handle->connect_timeout_ms));
		}
	}
}

/* Destroy the messages of the current batch */
static void
free_messages(KafkaScanResources *res)
{
	int			i;

	for (i = res->next; i < res->nmsgs; i++)
	{
		if (res->msgs[i])
			rd_kafka_message_destroy(res->msgs[i]);
		res->msgs[i] = NULL;
	}
	res->next = res->nmsgs = 0;
}

/* Leave the consumer without assignment, with no message kept */
static void
stop_reading(KafkaScanState *st)
{
	if (st->res == NULL)
		return;
	free_messages(st->res);
	if (st->started)
		(void) rd_kafka_assign(st->res->handle->rk, NULL);
	st->started = false;
}

static void
kafkaReScanForeignScan(ForeignScanState *node)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;

	stop_reading(st);
	st->finished = false;
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
		release_input_owner(&st->dec, true);
		close_resources(st);
	}
}

/*
 * After an error the executor does not end the scan: destroy the messages
 * it held before connection.c's callback destroys the consumer.
 */
static void
cleanup_resources(SubTransactionId subid)
{
	ListCell   *lc;

	foreach(lc, active_resources)
	{
		KafkaScanResources *res = (KafkaScanResources *) lfirst(lc);

		if (subid != InvalidSubTransactionId && res->subid != subid)
			continue;
		free_messages(res);
		if (res->queue)
			rd_kafka_queue_destroy(res->queue);
		active_resources = foreach_delete_current(active_resources, lc);
		pfree(res->msgs);
		pfree(res);
	}
}

static void
scan_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
		cleanup_resources(InvalidSubTransactionId);
}

static void
scan_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
		cleanup_resources(mySubid);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* what the subtransaction opened now belongs to its parent */
		foreach(lc, active_resources)
		{
			KafkaScanResources *res = (KafkaScanResources *) lfirst(lc);

			if (res->subid == mySubid)
				res->subid = parentSubid;
		}
	}
}

/*
 * EXPLAIN: the topic and, per partition to read, the offsets; with
 * ANALYZE, the messages and bytes fetched.  Plain EXPLAIN asks the brokers
 * for the watermarks to show the ranges.
 */
static void
kafkaExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	KafkaScanState *st = (KafkaScanState *) node->fdw_state;
	int			i;

	ExplainPropertyText("Kafka Topic", st->topic, es);
	if (!st->prepared && st->shared == NULL)
		prepare_ranges(st, node->ss.ps.ps_ExprContext);

	if (st->ts_lower != DT_NOBEGIN)
		ExplainPropertyText("Timestamp Lower Bound",
							timestamptz_to_str(st->ts_lower), es);
	if (st->limited)
		ExplainPropertyInteger("Limit Pushed Down", NULL, st->limit, es);
	for (i = 0; i < st->nranges; i++)
	{
		KafkaPartitionRange *r = &st->ranges[i];

		ExplainPropertyText(psprintf("Partition %d", r->partition),
							psprintf("offsets " INT64_FORMAT " to " INT64_FORMAT "%s%s",
									 r->start, r->end - 1,
									 r->max_messages > 0
									 ? psprintf(", the first " INT64_FORMAT " messages",
												r->max_messages) : "",
									 r->probe_ts ? " (timestamp filtered locally)" : ""),
							es);
	}
	ExplainPropertyInteger("Partitions Skipped", NULL, st->nskipped, es);
	if (es->analyze)
	{
		ExplainPropertyInteger("Messages Fetched", NULL,
							   st->messages + st->worker_messages, es);
		ExplainPropertyInteger("Bytes Fetched", "bytes",
							   st->bytes + st->worker_bytes, es);
	}
}

/*
 * Parallel safe, unless the table tolerates junk and a column's input
 * needs a subtransaction to catch its errors (see kfdw_decoder_set), which
 * parallel mode forbids.
 */
static bool
kafkaIsForeignScanParallelSafe(PlannerInfo *root, RelOptInfo *rel,
							   RangeTblEntry *rte)
{
	KafkaTableOptions opts;
	int			i;

	kfdw_get_table_options(rte->relid, &opts);
	if (!opts.ignore_junk && opts.junk_attnum == InvalidAttrNumber &&
		opts.junk_error_attnum == InvalidAttrNumber)
		return true;
	for (i = 0; i < opts.natts; i++)
	{
		KafkaColumn *col = &opts.columns[i];

		if (!col->dropped &&
			(col->kind == KAFKA_COL_DATA || col->kind == KAFKA_COL_KEY) &&
			!input_is_self_contained(col->typid))
			return false;
	}
	return true;
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
	st->done = palloc0(sizeof(bool) * Max(shared->nranges, 1));
	st->returned = palloc0(sizeof(int64) * Max(shared->nranges, 1));
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
	init_decoder(st, cxt);
	st->dec.tolerate_junk = true;
	open_resources(st);

	st->nparts = kfdw_topic_partitions(st->res->handle, st->topic);
	low = palloc0(sizeof(int64) * Max(st->nparts, 1));
	high = palloc0(sizeof(int64) * Max(st->nparts, 1));
	kfdw_query_watermarks(st->res->handle, st->topic, st->nparts, low, high);
	for (i = 0; i < st->nparts; i++)
		total += (double) (high[i] - low[i]);

	st->ranges = palloc0(sizeof(KafkaPartitionRange) * Max(st->nparts, 1));
	st->range_of = palloc(sizeof(int) * Max(st->nparts, 1));
	st->done = palloc0(sizeof(bool) * Max(st->nparts, 1));
	st->returned = palloc0(sizeof(int64) * Max(st->nparts, 1));
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
		MemoryContext oldcxt;
		ErrorContextCallback errcallback;

		if (msg == NULL)
			break;
		st->cur_partition = msg->partition;
		st->cur_offset = msg->offset;
		errcallback.callback = scan_error_callback;
		errcallback.arg = st;
		errcallback.previous = error_context_stack;
		error_context_stack = &errcallback;
		MemoryContextReset(st->tuple_cxt);
		oldcxt = MemoryContextSwitchTo(st->tuple_cxt);
		make_row(st, msg, slot);
		MemoryContextSwitchTo(cxt);
		rows[nrows++] = ExecCopySlotHeapTuple(slot);
		MemoryContextSwitchTo(oldcxt);
		error_context_stack = errcallback.previous;
		st->res->msgs[st->res->next++] = NULL;
		rd_kafka_message_destroy(msg);
		vacuum_delay_point();
	}
	ExecDropSingleTupleTableSlot(slot);
	release_input_owner(&st->dec, true);
	close_resources(st);

	ereport(elevel,
			(errmsg("\"%s\": sampled %d of %.0f Kafka messages",
					RelationGetRelationName(relation), nrows, total)));
	*totalrows = total;
	*totaldeadrows = 0;
	return nrows;
}
