/*-------------------------------------------------------------------------
 *
 * ranges.c
 *		  What a scan reads: watermarks, pushdown ranges, timestamp bounds
 *
 * At scan start the pushdown tree that planner.c built is evaluated, per
 * partition, into ranges of offsets (an OR of two ranges reads the two,
 * not what lies between), intersected with the watermarks read then and,
 * for a consumer group, with what follows the group's committed offset;
 * lower bounds on the timestamp go through offsets-for-times.
 * A range may hold more than the quals accept (they are checked again
 * locally), never less.
 *
 * Requests to the brokers (kafka/topic.c) are tried again while the
 * brokers cannot be reached, serving interrupts, and fail after the
 * server's connect_timeout_ms.
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
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

/* Messages taken at a time when the last message of partitions is read */
#define KFDW_PROBE_BATCH 64

/* Most ranges read in one partition (see OffsetSet) */
#define KFDW_MAX_RANGES 16

/* A value of the pushdown evaluated at scan start */
typedef struct PushdownValue
{
	int			n;				/* number of values (arrays), 0 if NULL,
								 * -1 if unknown (planning) */
	int64	   *vals;
} PushdownValue;

/*
 * The offsets computed from the pushdown for one partition: disjoint
 * ranges [lo, hi), in order.  An OR of disjoint ranges keeps them apart,
 * up to KFDW_MAX_RANGES; past that the last ones are merged into their
 * hull, which holds more than asked for and so is not exact.
 */
typedef struct OffsetSet
{
	int			n;				/* ranges; none: the empty set */
	int64		lo[KFDW_MAX_RANGES];
	int64		hi[KFDW_MAX_RANGES];
	bool		exact;			/* exactly the offsets the quals accept */
} OffsetSet;

static const OffsetSet all_offsets = {1, {0}, {PG_INT64_MAX}, true};
static const OffsetSet no_offsets = {0, {0}, {0}, true};


static PushdownValue *convert_values(int n, Datum *values, bool *nulls,
									 bool *known, Oid *types);
static OffsetSet set_compare(int strategy, int64 v);
static bool set_empty(OffsetSet s);
static bool set_contains(OffsetSet s, int64 v);
static OffsetSet set_intersect(OffsetSet a, OffsetSet b);
static OffsetSet set_union(OffsetSet a, OffsetSet b);
static void set_append(OffsetSet *s, int64 lo, int64 hi);
static double set_size(OffsetSet s);
static OffsetSet eval_pushdown(List *node, int32 partition,
							   PushdownValue *values);
static OffsetSet partition_offsets(List *pushdown, int32 partition,
								   PushdownValue *values,
								   int64 low, int64 high);
static void apply_ts_bound(KafkaHandle *handle, const char *topic,
						   TimestampTz bound, KafkaPartitionRange *ranges,
						   int n);

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
			s.hi[0] = v;
			break;
		case BTLessEqualStrategyNumber:
			s.hi[0] = after;
			break;
		case BTEqualStrategyNumber:
			s.lo[0] = v;
			s.hi[0] = after;
			break;
		case BTGreaterEqualStrategyNumber:
			s.lo[0] = v;
			break;
		case BTGreaterStrategyNumber:
			s.lo[0] = after;
			break;
	}
	if (s.lo[0] >= s.hi[0])
		s.n = 0;
	return s;
}

static bool
set_empty(OffsetSet s)
{
	return s.n == 0;
}

static bool
set_contains(OffsetSet s, int64 v)
{
	int			i;

	for (i = 0; i < s.n; i++)
	{
		if (s.lo[i] <= v && v < s.hi[i])
			return true;
	}
	return false;
}

/*
 * Add [lo, hi) after the ranges of s (it starts at or after the last
 * one's start), merging ranges that touch
 */
static void
set_append(OffsetSet *s, int64 lo, int64 hi)
{
	if (lo >= hi)
		return;
	if (s->n > 0 && lo <= s->hi[s->n - 1])
	{
		s->hi[s->n - 1] = Max(s->hi[s->n - 1], hi);
		return;
	}
	if (s->n == KFDW_MAX_RANGES)
	{
		/* too many: the last one grows into the hull */
		s->hi[s->n - 1] = hi;
		s->exact = false;
		return;
	}
	s->lo[s->n] = lo;
	s->hi[s->n] = hi;
	s->n++;
}

/* The offsets in both sets */
static OffsetSet
set_intersect(OffsetSet a, OffsetSet b)
{
	OffsetSet	r = no_offsets;
	int			i = 0,
				j = 0;

	r.exact = a.exact && b.exact;
	while (i < a.n && j < b.n)
	{
		set_append(&r, Max(a.lo[i], b.lo[j]), Min(a.hi[i], b.hi[j]));
		if (a.hi[i] < b.hi[j])
			i++;
		else
			j++;
	}
	return r;
}

/* The offsets in either set */
static OffsetSet
set_union(OffsetSet a, OffsetSet b)
{
	OffsetSet	r = no_offsets;
	int			i = 0,
				j = 0;

	r.exact = a.exact && b.exact;
	while (i < a.n || j < b.n)
	{
		if (j >= b.n || (i < a.n && a.lo[i] <= b.lo[j]))
		{
			set_append(&r, a.lo[i], a.hi[i]);
			i++;
		}
		else
		{
			set_append(&r, b.lo[j], b.hi[j]);
			j++;
		}
	}
	return r;
}

/* The number of offsets in a set */
static double
set_size(OffsetSet s)
{
	double		total = 0;
	int			i;

	for (i = 0; i < s.n; i++)
		total += (double) (s.hi[i] - s.lo[i]);
	return total;
}

/*
 * Evaluate the pushdown tree for one partition into the ranges of offsets
 * to read.  They can only be wider than what the quals accept (a clause
 * not pushed down accepts everything; too many ranges are merged), never
 * narrower; exact says they are not wider.
 */
static OffsetSet
eval_pushdown(List *node, int32 partition, PushdownValue *values)
{
	OffsetSet	inexact_all = {1, {0}, {PG_INT64_MAX}, false};
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
	OffsetSet	watermarks = {1, {low}, {high}, true};

	if (low >= high)
		watermarks.n = 0;
	if (pushdown == NIL)
		return watermarks;
	return set_intersect(eval_pushdown(pushdown, partition, values),
						 watermarks);
}

/*
 * Decide what a scan reads: the watermarks of every partition, narrowed by
 * the pushdown tree and the timestamp bounds (with the values the caller
 * evaluated at scan start), from where the consumer group (if any) stands,
 * and by the LIMIT, when the ranges enforce every qual exactly.  A
 * partition may have several ranges, in order.  The result is palloc'd in
 * the current context.
 */
void
kfdw_compute_ranges(KafkaHandle *handle, const char *topic, List *pushdown,
					List *ts_bounds, int nvalues, Datum *datums, bool *nulls,
					Oid *types, int64 limit, const KafkaScanGroup *group,
					KafkaScanRanges *st)
{
	PushdownValue *values;
	int64	   *low,
			   *high;
	int			nparts;
	int			i;
	int			total = 0;
	bool		exact = true;
	OffsetSet  *sets;

	values = convert_values(nvalues, datums, nulls, NULL, types);

	nparts = kfdw_topic_watermarks(handle, topic, &low, &high);
	st->nparts = nparts;
	st->nranges = 0;
	st->nskipped = 0;
	st->limited = false;
	st->ts_lower = DT_NOBEGIN;
	st->group_start = NULL;
	st->group_committed = NULL;

	/* where the group stands: its committed offset, else earliest/latest */
	if (group)
	{
		st->group_start = palloc0(sizeof(int64) * Max(nparts, 1));
		st->group_committed = palloc0(sizeof(int64) * Max(nparts, 1));
		kfdw_group_committed(handle, group->id, topic, nparts,
							 st->group_committed);
		for (i = 0; i < nparts; i++)
			st->group_start[i] = st->group_committed[i] >= 0 ?
				st->group_committed[i] : group->latest ? high[i] : low[i];
	}

	sets = palloc(sizeof(OffsetSet) * Max(nparts, 1));
	for (i = 0; i < nparts; i++)
	{
		sets[i] = partition_offsets(pushdown, i, values, low[i], high[i]);
		if (group)
		{
			OffsetSet	from = all_offsets;

			from.lo[0] = st->group_start[i];
			sets[i] = set_intersect(sets[i], from);
		}
		exact = exact && sets[i].exact;
		total += sets[i].n;
	}

	st->ranges = palloc0(sizeof(KafkaPartitionRange) * Max(total, 1));
	for (i = 0; i < nparts; i++)
	{
		int			j;

		for (j = 0; j < sets[i].n; j++)
		{
			KafkaPartitionRange *r = &st->ranges[st->nranges++];

			r->partition = i;
			r->low = low[i];
			r->high = high[i];
			r->start = sets[i].lo[j];
			r->end = sets[i].hi[j];
		}
	}
	pfree(sets);

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
		int			nread = 0;

		for (i = 0; i < st->nranges; i++)
		{
			if (st->ranges[i].start < st->ranges[i].end)
			{
				if (j == 0 ||
					st->ranges[j - 1].partition != st->ranges[i].partition)
					nread++;
				st->ranges[j++] = st->ranges[i];
			}
		}
		st->nranges = j;
		st->nskipped = nparts - nread;
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
	rd_kafka_topic_partition_list_t *list;
	int64	   *query;
	int64		ms;
	int			i;
	int			nprobe = 0;

	/* Kafka timestamps are milliseconds since the Unix epoch */
	ms = kfdw_timestamp_to_kafka(bound);
	if (ms < 0)
		return;					/* every message is at or after the bound */

	/* one question per partition: the ranges of a partition are together */
	list = rd_kafka_topic_partition_list_new(n);
	query = palloc(sizeof(int64) * n);
	PG_TRY();
	{
		int			q = -1;

		for (i = 0; i < n; i++)
		{
			if (i > 0 && ranges[i].partition == ranges[i - 1].partition)
				continue;
			rd_kafka_topic_partition_list_add(list, topic,
											  ranges[i].partition);
			query[list->cnt - 1] = ms;
		}
		kfdw_query_offsets(handle, list, query, "offsets for timestamp");

		for (i = 0; i < n; i++)
		{
			int64		off;

			if (i == 0 || ranges[i].partition != ranges[i - 1].partition)
				q++;
			off = list->elems[q].offset;
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
		KafkaDeadline deadline;
		int			left = nprobe;
		bool	   *probed = palloc0(sizeof(bool) * n);

		assign = rd_kafka_topic_partition_list_new(nprobe);
		for (i = 0; i < n; i++)
		{
			if (ranges[i].probe_ts &&
				rd_kafka_topic_partition_list_find(assign, topic,
												   ranges[i].partition) == NULL)
				rd_kafka_topic_partition_list_add(assign, topic,
												  ranges[i].partition)->offset =
					ranges[i].high - 1;
		}
		nprobe = assign->cnt;
		left = nprobe;
		PG_TRY();
		{
			rd_kafka_assign(handle->rk, assign);
			kfdw_deadline_start(&deadline, handle->connect_timeout_ms);
			while (left > 0)
			{
				rd_kafka_message_t *m;
				int			r;

				CHECK_FOR_INTERRUPTS();
				if (kfdw_deadline_passed(&deadline))
					break;
				if (kfdw_consumer_fetch(handle, KFDW_PROBE_BATCH,
										kfdw_deadline_remaining(&deadline)) <= 0)
					continue;
				while ((m = kfdw_consumer_peek(handle)) != NULL)
				{
					for (r = 0; r < n; r++)
					{
						if (ranges[r].partition == m->partition && ranges[r].probe_ts)
							break;
					}
					if (r < n && !probed[r] &&
						(m->err == RD_KAFKA_RESP_ERR_NO_ERROR ||
						 m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF))
					{
						int64		mts = m->err == RD_KAFKA_RESP_ERR_NO_ERROR ?
							rd_kafka_message_timestamp(m, NULL) : -1;
						int			k;

						/* older than the bound: nothing to read */
						for (k = r; k < n && ranges[k].partition == m->partition; k++)
						{
							if (mts >= 0 && mts < ms)
							{
								ranges[k].start = ranges[k].end;
								ranges[k].probe_ts = false;
							}
							probed[k] = true;
						}
						left--;
					}
					kfdw_consumer_next(handle);
				}
			}
		}
		PG_FINALLY();
		{
			kfdw_consumer_clear(handle);
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
			total += set_size(s);
			(*nsurviving)++;
		}
	}
	return total;
}
