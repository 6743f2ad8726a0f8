/*-------------------------------------------------------------------------
 *
 * ranges.c
 *		  What a scan reads: watermarks, pushdown ranges, timestamp bounds
 *
 * At scan start the pushdown tree that planner.c built is evaluated, per
 * partition, into one range of offsets, intersected with the watermarks
 * read then; lower bounds on the timestamp go through offsets-for-times.
 * A range may hold more than the quals accept (they are checked again
 * locally), never less.
 *
 * Requests to the brokers are made in short tries so that interrupts are
 * served, and fail after the server's connect_timeout_ms.
 *
 * IDENTIFICATION
 *		  src/fdw/ranges.c
 *
 *-------------------------------------------------------------------------
 */
#include "fdw/fdw.h"

#include "access/stratnum.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

/* Longest a single wait for librdkafka lasts before interrupts are checked */
#define KFDW_POLL_MS 100

/* A value of the pushdown evaluated at scan start */
typedef struct PushdownValue
{
	int			n;				/* number of values (arrays), 0 if NULL,
								 * -1 if unknown (planning) */
	int64	   *vals;
} PushdownValue;

/*
 * A range of offsets computed from the pushdown for one partition.  Sets
 * of offsets are only ever ranges: a union of disjoint ones is their hull,
 * which holds more than asked for and so is not exact.
 */
typedef struct OffsetSet
{
	int64		lo;				/* [lo, hi); empty when lo >= hi */
	int64		hi;
	bool		exact;			/* exactly the offsets the quals accept */
} OffsetSet;

static const OffsetSet all_offsets = {0, PG_INT64_MAX, true};
static const OffsetSet no_offsets = {0, 0, true};


static void retry_offsets_request(KafkaHandle *handle,
								  rd_kafka_topic_partition_list_t *list,
								  int64 *query, const char *what);
static PushdownValue *convert_values(int n, Datum *values, bool *nulls,
									 bool *known, Oid *types);
static OffsetSet set_compare(int strategy, int64 v);
static bool set_empty(OffsetSet s);
static bool set_contains(OffsetSet s, int64 v);
static OffsetSet set_intersect(OffsetSet a, OffsetSet b);
static OffsetSet set_union(OffsetSet a, OffsetSet b);
static OffsetSet eval_pushdown(List *node, int32 partition,
							   PushdownValue *values);
static OffsetSet partition_offsets(List *pushdown, int32 partition,
								   PushdownValue *values,
								   int64 low, int64 high);
static void apply_ts_bound(KafkaHandle *handle, const char *topic,
						   TimestampTz bound, KafkaPartitionRange *ranges,
						   int n);

/*
 * Number of partitions of a topic (ERROR if it does not exist).
 */
int
kfdw_topic_partitions(KafkaHandle *handle, const char *topic)
{
	const rd_kafka_metadata_t *md = kfdw_get_metadata(handle, topic);
	int			n = md->topics[0].partition_cnt;

	rd_kafka_metadata_destroy(md);
	return n;
}

/*
 * Run an offsets request (offsets-for-times, where -2 asks for the low and
 * -1 for the high watermark) in tries that may each take what is left of the
 * deadline, serving interrupts while they wait (see kfdw_offsets_for_times),
 * until the server's connect_timeout_ms runs out.  query[i] is what to ask
 * for the i-th partition of the list; the answers are left in the list.
 *
 * librdkafka sends the consumer's isolation.level with ListOffsets, so for
 * a read_committed consumer the high watermark is the last stable offset.
 */
static void
retry_offsets_request(KafkaHandle *handle,
					  rd_kafka_topic_partition_list_t *list,
					  int64 *query, const char *what)
{
	instr_time	start,
				now;
	rd_kafka_resp_err_t err;
	int			i;

	INSTR_TIME_SET_CURRENT(start);
	for (;;)
	{
		long		elapsed;
		bool		retry = false;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < list->cnt; i++)
		{
			list->elems[i].offset = query[i];
			list->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
		}
		/* each try may take what is left of the deadline; cancels are served */
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		elapsed = (long) INSTR_TIME_GET_MILLISEC(now);
		err = kfdw_offsets_for_times(handle, list,
									 handle->connect_timeout_ms - (int) elapsed);

		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			for (i = 0; i < list->cnt; i++)
			{
				rd_kafka_resp_err_t perr = list->elems[i].err;

				if (perr == RD_KAFKA_RESP_ERR_NO_ERROR)
					continue;
				if (kfdw_errcode(perr) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
				{
					retry = true;
					err = perr;
					continue;
				}
				kfdw_report_error(ERROR, handle, perr, NULL,
								  psprintf("could not get %s of Kafka topic \"%s\", partition %d",
										   what, list->elems[i].topic,
										   list->elems[i].partition));
			}
			if (!retry)
				return;
		}
		else if (kfdw_errcode(err) != ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
			kfdw_report_error(ERROR, handle, err, NULL,
							  psprintf("could not get %s of Kafka topic \"%s\"",
									   what, list->cnt > 0 ? list->elems[0].topic : ""));

		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		elapsed = (long) INSTR_TIME_GET_MILLISEC(now);
		if (elapsed >= handle->connect_timeout_ms)
			break;
		/* a transport error came early: wait a little before the next try */
		if (err != RD_KAFKA_RESP_ERR__TIMED_OUT)
			kfdw_wait(handle, KFDW_POLL_MS);
	}

	if ((err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR_NO_ERROR) &&
		handle->last_err != RD_KAFKA_RESP_ERR_NO_ERROR)
		err = handle->last_err;
	if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR_NO_ERROR)
		err = RD_KAFKA_RESP_ERR__TRANSPORT;
	kfdw_report_error(ERROR, handle, err, NULL,
					  psprintf("could not get %s from Kafka brokers \"%s\" within %d ms",
							   what, handle->brokers, handle->connect_timeout_ms));
}

/*
 * Read the low and high watermarks of partitions 0 .. nparts-1 of a topic,
 * in two batched requests.
 */
void
kfdw_query_watermarks(KafkaHandle *handle, const char *topic, int nparts,
					  int64 *low, int64 *high)
{
	rd_kafka_topic_partition_list_t *list;
	int64	   *query;
	int			i;

	if (nparts <= 0)
		return;
	list = rd_kafka_topic_partition_list_new(nparts);
	query = palloc(sizeof(int64) * nparts);
	PG_TRY();
	{
		for (i = 0; i < nparts; i++)
			rd_kafka_topic_partition_list_add(list, topic, i);

		for (i = 0; i < nparts; i++)
			query[i] = RD_KAFKA_OFFSET_BEGINNING;
		retry_offsets_request(handle, list, query, "low watermarks");
		for (i = 0; i < nparts; i++)
			low[list->elems[i].partition] = Max(list->elems[i].offset, 0);

		for (i = 0; i < nparts; i++)
			query[i] = RD_KAFKA_OFFSET_END;
		retry_offsets_request(handle, list, query, "high watermarks");
		for (i = 0; i < nparts; i++)
		{
			int32		p = list->elems[i].partition;

			high[p] = Max(list->elems[i].offset, low[p]);
		}
	}
	PG_FINALLY();
	{
		rd_kafka_topic_partition_list_destroy(list);
	}
	PG_END_TRY();
	pfree(query);
}

/*
 * Turn the pushed-down values, evaluated by the caller, into 64-bit
 * integers: partitions and offsets as they are, timestamps as timestamptz
 * microseconds.  A NULL value has no element (the comparison accepts
 * nothing); known[i] false means "not known" (planning), which accepts
 * everything.
 */
static PushdownValue *
convert_values(int n, Datum *values, bool *nulls, bool *known, Oid *types)
{
	PushdownValue *result = palloc0(sizeof(PushdownValue) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		Oid			typid = types[i];
		Oid			elemtype = get_element_type(typid);
		Datum	   *elems;
		bool	   *enulls;
		int			nelems;
		int			j;

		if (known && !known[i])
		{
			result[i].n = -1;
			continue;
		}
		if (nulls[i])
			continue;
		if (OidIsValid(elemtype))
		{
			int16		typlen;
			bool		typbyval;
			char		typalign;

			get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
			deconstruct_array(DatumGetArrayTypeP(values[i]), elemtype, typlen,
							  typbyval, typalign, &elems, &enulls, &nelems);
			typid = elemtype;
		}
		else
		{
			elems = &values[i];
			enulls = &nulls[i];
			nelems = 1;
		}

		result[i].vals = palloc(sizeof(int64) * Max(nelems, 1));
		for (j = 0; j < nelems; j++)
		{
			int64		v;

			if (enulls[j])
				continue;
			switch (typid)
			{
				case INT2OID:
				case INT4OID:
				case INT8OID:
					v = kfdw_datum_to_int(elems[j], typid);
					break;
				case TIMESTAMPOID:
					v = DatumGetTimestampTz(DirectFunctionCall1(timestamp_timestamptz,
																elems[j]));
					break;
				case DATEOID:
					v = DatumGetTimestampTz(DirectFunctionCall1(date_timestamptz,
																elems[j]));
					break;
				default:		/* timestamptz */
					v = DatumGetTimestampTz(elems[j]);
					break;
			}
			result[i].vals[result[i].n++] = v;
		}
	}
	return result;
}

/*
 * Offsets accepted by a comparison "offset <strategy> v" (the partition
 * is compared the same way: partitions, like offsets, are never negative)
 */
static OffsetSet
set_compare(int strategy, int64 v)
{
	OffsetSet	s = all_offsets;
	int64		after = v < PG_INT64_MAX ? v + 1 : v;	/* first offset > v */

	switch (strategy)
	{
		case BTLessStrategyNumber:
			s.hi = v;
			break;
		case BTLessEqualStrategyNumber:
			s.hi = after;
			break;
		case BTEqualStrategyNumber:
			s.lo = v;
			s.hi = after;
			break;
		case BTGreaterEqualStrategyNumber:
			s.lo = v;
			break;
		case BTGreaterStrategyNumber:
			s.lo = after;
			break;
	}
	return s;
}

static bool
set_empty(OffsetSet s)
{
	return s.lo >= s.hi;
}

static bool
set_contains(OffsetSet s, int64 v)
{
	return s.lo <= v && v < s.hi;
}

/* The offsets in both sets; an empty result keeps its bounds */
static OffsetSet
set_intersect(OffsetSet a, OffsetSet b)
{
	OffsetSet	r;

	r.lo = Max(a.lo, b.lo);
	r.hi = Min(a.hi, b.hi);
	r.exact = a.exact && b.exact;
	return r;
}

/* The offsets in either set: the hull, not exact when they are disjoint */
static OffsetSet
set_union(OffsetSet a, OffsetSet b)
{
	OffsetSet	r;

	if (set_empty(b))
		return a;
	if (set_empty(a))
		return b;
	r.lo = Min(a.lo, b.lo);
	r.hi = Max(a.hi, b.hi);
	r.exact = a.exact && b.exact && !(b.lo > a.hi || a.lo > b.hi);
	return r;
}

/*
 * Evaluate the pushdown tree for one partition into the range of offsets
 * to read.  A range can only be wider than what the quals accept (an OR of
 * disjoint ranges reads their hull; a clause not pushed down accepts
 * everything), never narrower; exact says it is not wider.
 */
static OffsetSet
eval_pushdown(List *node, int32 partition, PushdownValue *values)
{
	OffsetSet	inexact_all = {0, PG_INT64_MAX, false};
	int			kind = intVal(linitial(node));
	ListCell   *lc;

	switch (kind)
	{
		case KFDW_PD_TRUE:
			return inexact_all;
		case KFDW_PD_AND:
			{
				OffsetSet	r = all_offsets;

				for_each_from(lc, node, 1)
					r = set_intersect(r, eval_pushdown((List *) lfirst(lc),
													   partition, values));
				return set_empty(r) ? no_offsets : r;
			}
		case KFDW_PD_OR:
			{
				OffsetSet	r = no_offsets;

				for_each_from(lc, node, 1)
					r = set_union(r, eval_pushdown((List *) lfirst(lc),
												   partition, values));
				return r;
			}
		case KFDW_PD_CMP:
			{
				int			field = intVal(lsecond(node));
				int			strategy = intVal(lthird(node));
				PushdownValue *v = &values[intVal(lfourth(node))];
				OffsetSet	r = no_offsets;
				int			i;

				/* not known at plan time */
				if (v->n < 0)
					return inexact_all;
				/* "= ANY (array)": equal to one of the values */
				if (strategy == 0)
					strategy = BTEqualStrategyNumber;

				if (field == KFDW_FIELD_PARTITION)
				{
					for (i = 0; i < v->n; i++)
					{
						if (set_contains(set_compare(strategy, v->vals[i]),
										 partition))
							return all_offsets;
					}
					return no_offsets;
				}
				if (field == KFDW_FIELD_OFFSET)
				{
					for (i = 0; i < v->n; i++)
						r = set_union(r, set_compare(strategy, v->vals[i]));
					return r;
				}
				return inexact_all;
			}
	}
	elog(ERROR, "unrecognized kafka_fdw pushdown node %d", kind);
	return no_offsets;			/* keep compiler quiet */
}

/*
 * The offsets to read in one partition: its watermarks, narrowed by the
 * pushdown tree (if any).  exact is the pushdown's: the watermarks only
 * say where the messages are.
 */
static OffsetSet
partition_offsets(List *pushdown, int32 partition, PushdownValue *values,
				  int64 low, int64 high)
{
	OffsetSet	watermarks = {low, high, true};

	if (pushdown == NIL)
		return watermarks;
	return set_intersect(eval_pushdown(pushdown, partition, values),
						 watermarks);
}

/*
 * Decide what a scan reads: the watermarks of every partition, narrowed by
 * the pushdown tree and the timestamp bounds (with the values the caller
 * evaluated at scan start), and by the LIMIT, when the ranges enforce
 * every qual exactly.  The result is palloc'd in the current context.
 */
void
kfdw_compute_ranges(KafkaHandle *handle, const char *topic, List *pushdown,
					List *ts_bounds, int nvalues, Datum *datums, bool *nulls,
					Oid *types, int64 limit, KafkaScanRanges *st)
{
	PushdownValue *values;
	int64	   *low,
			   *high;
	int			nparts;
	int			i;
	bool		exact = true;

	values = convert_values(nvalues, datums, nulls, NULL, types);

	nparts = kfdw_topic_partitions(handle, topic);
	low = palloc0(sizeof(int64) * Max(nparts, 1));
	high = palloc0(sizeof(int64) * Max(nparts, 1));
	st->ranges = palloc0(sizeof(KafkaPartitionRange) * Max(nparts, 1));
	st->nparts = nparts;
	st->nranges = 0;
	st->nskipped = 0;
	st->limited = false;
	st->ts_lower = DT_NOBEGIN;

	kfdw_query_watermarks(handle, topic, nparts, low, high);

	for (i = 0; i < nparts; i++)
	{
		KafkaPartitionRange *r = &st->ranges[st->nranges];
		OffsetSet	s = partition_offsets(pushdown, i, values, low[i], high[i]);

		r->partition = i;
		r->low = low[i];
		r->high = high[i];
		r->start = s.lo;
		r->end = s.hi;
		exact = exact && s.exact;
		if (!set_empty(s))
			st->nranges++;
		else
			st->nskipped++;
	}

	/* a lower bound on the timestamp moves each start forward */
	if (ts_bounds != NIL && st->nranges > 0)
	{
		TimestampTz bound = DT_NOBEGIN;
		ListCell   *lc;

		foreach(lc, ts_bounds)
		{
			PushdownValue *v = &values[intVal(lsecond((List *) lfirst(lc)))];

			if (v->n == 0)
			{
				/* ts >= NULL: no row passes the quals */
				st->nskipped += st->nranges;
				st->nranges = 0;
				break;
			}
			bound = Max(bound, v->vals[0]);
		}
		st->ts_lower = bound;
		if (st->nranges > 0 && bound != DT_NOBEGIN)
			apply_ts_bound(handle, topic, st->ts_lower, st->ranges, st->nranges);
		exact = false;
	}

	/*
	 * A LIMIT applies to the scan itself only when every qual is enforced
	 * exactly by the ranges: then no partition needs more than limit
	 * messages.  Messages, not offsets: compaction, aborted transactions
	 * and transaction markers leave offsets without a message.
	 */
	if (limit >= 0 && exact)
	{
		for (i = 0; i < st->nranges; i++)
		{
			KafkaPartitionRange *r = &st->ranges[i];

			if (r->end - r->start > limit)
			{
				if (limit == 0)
					r->end = r->start;
				else
					r->max_messages = limit;
				st->limited = true;
			}
		}
	}

	/* drop the ranges the timestamp bound or the LIMIT emptied */
	{
		int			j = 0;

		for (i = 0; i < st->nranges; i++)
		{
			if (st->ranges[i].start < st->ranges[i].end)
				st->ranges[j++] = st->ranges[i];
			else
				st->nskipped++;
		}
		st->nranges = j;
	}

}

/*
 * Move the start of each range to the first message whose timestamp is at
 * or after bound, as far as offsets-for-times can tell.  Where the
 * broker answers -1 ("no such message"), the partition's last message is
 * read: if it is older than the bound, the partition has nothing to read;
 * otherwise the broker could not answer, and the whole range is read and
 * filtered here.
 */
static void
apply_ts_bound(KafkaHandle *handle, const char *topic, TimestampTz bound,
			   KafkaPartitionRange *ranges, int n)
{
	rd_kafka_queue_t *queue = NULL;
	rd_kafka_topic_partition_list_t *list;
	int64	   *query;
	int64		ms;
	int			i;
	int			nprobe = 0;

	/* Kafka timestamps are milliseconds since the Unix epoch */
	ms = kfdw_timestamp_to_kafka(bound);
	if (ms < 0)
		return;					/* every message is at or after the bound */

	list = rd_kafka_topic_partition_list_new(n);
	query = palloc(sizeof(int64) * n);
	PG_TRY();
	{
		for (i = 0; i < n; i++)
		{
			rd_kafka_topic_partition_list_add(list, topic,
											  ranges[i].partition);
			query[i] = ms;
		}
		retry_offsets_request(handle, list, query, "offsets for timestamp");

		for (i = 0; i < n; i++)
		{
			int64		off = list->elems[i].offset;

			if (off >= 0)
				ranges[i].start = Max(ranges[i].start, Min(off, ranges[i].end));
			else
			{
				ranges[i].probe_ts = true;
				nprobe++;
			}
		}
	}
	PG_FINALLY();
	{
		rd_kafka_topic_partition_list_destroy(list);
	}
	PG_END_TRY();

	if (nprobe == 0)
		return;

	/*
	 * Read the last message of each partition the broker did not answer
	 * for.  A partition whose last message cannot be read within the
	 * connect timeout (for example a transaction marker) is read whole.
	 */
	{
		rd_kafka_topic_partition_list_t *assign;
		instr_time	start,
					now;
		int			left = nprobe;
		bool	   *probed = palloc0(sizeof(bool) * n);

		assign = rd_kafka_topic_partition_list_new(nprobe);
		for (i = 0; i < n; i++)
		{
			if (ranges[i].probe_ts)
				rd_kafka_topic_partition_list_add(assign, topic,
												  ranges[i].partition)->offset =
					ranges[i].high - 1;
		}
		PG_TRY();
		{
			rd_kafka_assign(handle->rk, assign);
			queue = rd_kafka_queue_get_consumer(handle->rk);
			INSTR_TIME_SET_CURRENT(start);
			while (left > 0)
			{
				rd_kafka_message_t *m;
				int			r;

				CHECK_FOR_INTERRUPTS();
				INSTR_TIME_SET_CURRENT(now);
				INSTR_TIME_SUBTRACT(now, start);
				if (INSTR_TIME_GET_MILLISEC(now) >= handle->connect_timeout_ms)
					break;
				kfdw_serve_events(handle);
				m = rd_kafka_consume_queue(queue, KFDW_POLL_MS);
				if (m == NULL)
					continue;
				for (r = 0; r < n; r++)
				{
					if (ranges[r].partition == m->partition && ranges[r].probe_ts)
						break;
				}
				if (r < n && !probed[r] &&
					(m->err == RD_KAFKA_RESP_ERR_NO_ERROR ||
					 m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF))
				{
					if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
					{
						int64		mts = rd_kafka_message_timestamp(m, NULL);

						/* older than the bound: nothing to read */
						if (mts >= 0 && mts < ms)
						{
							ranges[r].start = ranges[r].end;
							ranges[r].probe_ts = false;
						}
					}
					probed[r] = true;
					left--;
				}
				rd_kafka_message_destroy(m);
			}
		}
		PG_FINALLY();
		{
			if (queue)
				rd_kafka_queue_destroy(queue);
			rd_kafka_assign(handle->rk, NULL);
			rd_kafka_topic_partition_list_destroy(assign);
		}
		PG_END_TRY();
	}
}

/*
 * Planning: the number of messages in the ranges the pushdown leaves,
 * with the values that are constants at plan time (the others accept
 * everything).  *nsurviving is the number of partitions to read.
 */
double
kfdw_estimate_messages(List *pushdown, List *values, int nparts,
					   int64 *low, int64 *high, int *nsurviving)
{
	int			n = list_length(values);
	Datum	   *datums = palloc0(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc0(sizeof(bool) * Max(n, 1));
	bool	   *known = palloc0(sizeof(bool) * Max(n, 1));
	Oid		   *types = palloc0(sizeof(Oid) * Max(n, 1));
	PushdownValue *pv;
	double		total = 0;
	ListCell   *lc;
	int			i = 0;

	foreach(lc, values)
	{
		Node	   *expr = (Node *) lfirst(lc);

		types[i] = exprType(expr);
		if (IsA(expr, Const))
		{
			known[i] = true;
			datums[i] = ((Const *) expr)->constvalue;
			nulls[i] = ((Const *) expr)->constisnull;
		}
		i++;
	}
	pv = convert_values(n, datums, nulls, known, types);

	*nsurviving = 0;
	for (i = 0; i < nparts; i++)
	{
		OffsetSet	s = partition_offsets(pushdown, i, pv, low[i], high[i]);

		if (!set_empty(s))
		{
			total += (double) (s.hi - s.lo);
			(*nsurviving)++;
		}
	}
	return total;
}
