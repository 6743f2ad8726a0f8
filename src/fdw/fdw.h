/*-------------------------------------------------------------------------
 *
 * fdw.h
 *		  The foreign data wrapper: options of tables, planning and pushdown, scans
 *		  and modifications
 *
 * IDENTIFICATION
 *		  src/fdw/fdw.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KFDW_FDW_H
#define KFDW_FDW_H

#include "postgres.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "foreign/fdwapi.h"
#include "kafka/kafka.h"
#include "format/format.h"
#include "nodes/pg_list.h"

/* in option.c */
extern void kfdw_get_table_options(Oid relid, KafkaTableOptions *opts);
extern void kfdw_check_table(Oid relid);

/* in kafka_fdw.c */
extern PGDLLEXPORT Datum kafka_fdw_handler(PG_FUNCTION_ARGS);

/* in planner.c */
extern void kfdw_set_plan_routines(FdwRoutine *routine);

/*
 * The pushdown of a scan, as planner.c hands it to scan.c in fdw_private:
 * a tree of Lists whose first element is an Integer KafkaPushdownKind.
 *	 AND/OR:	(kind, child, child, ...)
 *	 CMP:		(kind, field, strategy, index of the value in fdw_exprs)
 *	 TRUE:		(kind): a clause that is not pushed down (checked locally)
 * strategy is a btree strategy number, or 0 for "= ANY (array)".
 */
typedef enum KafkaPushdownKind
{
	KFDW_PD_AND,
	KFDW_PD_OR,
	KFDW_PD_CMP,
	KFDW_PD_TRUE
} KafkaPushdownKind;

typedef enum KafkaPushdownField
{
	KFDW_FIELD_PARTITION,
	KFDW_FIELD_OFFSET,
	KFDW_FIELD_TIMESTAMP
} KafkaPushdownField;

/* Indexes of the items of a ForeignScan's fdw_private */
enum KafkaFdwPrivateIndex
{
	KFDW_PRIV_PUSHDOWN,			/* pushdown tree, or NIL */
	KFDW_PRIV_TS_BOUNDS,		/* list of (strategy, index) timestamp bounds */
	KFDW_PRIV_ATTRS,			/* attnums the plan reads (Integer list) */
	KFDW_PRIV_LIMIT				/* Integer: rows the scan must return, or -1 */
};

/*
 * One range of offsets to read, [start, end), in a partition; a partition
 * may have several, in order (an OR of disjoint offset ranges)
 */
typedef struct KafkaPartitionRange
{
	int32		partition;
	int64		low;			/* watermarks at scan start */
	int64		high;
	int64		start;			/* what the scan reads */
	int64		end;
	int64		max_messages;	/* LIMIT pushed down: at most so many (0: all) */
	bool		probe_ts;		/* timestamp bound only checked locally */
} KafkaPartitionRange;

/* What a scan reads, decided when it starts */
typedef struct KafkaScanRanges
{
	int			nparts;			/* partitions of the topic */
	int			nranges;		/* partitions with something to read */
	KafkaPartitionRange *ranges;
	int			nskipped;		/* partitions with nothing to read */
	bool		limited;		/* ranges shortened by the LIMIT */
	TimestampTz ts_lower;		/* pushed-down timestamp bound, or NOBEGIN */
	/* a consumer group's scan, by partition (else NULL) */
	int64	   *group_committed;	/* the group's offset, or -1: none */
	int64	   *group_start;	/* where the group makes the scan start */
} KafkaScanRanges;

/* The consumer group a scan reads for */
typedef struct KafkaScanGroup
{
	char	   *id;
	bool		latest;			/* no committed offset: start at the end */
} KafkaScanGroup;

/* in ranges.c */
extern void kfdw_compute_ranges(KafkaHandle *handle, const char *topic,
								List *pushdown, List *ts_bounds, int nvalues,
								Datum *values, bool *nulls, Oid *types,
								int64 limit, const KafkaScanGroup *group,
								KafkaScanRanges *ranges);
extern double kfdw_estimate_messages(List *pushdown, List *values, int nparts,
									 int64 *low, int64 *high,
									 int *nsurviving);

/* in scan.c */
extern void kfdw_set_scan_routines(FdwRoutine *routine);
extern int	kfdw_sample_rows(Relation relation, int elevel, HeapTuple *rows,
							 int targrows, double *totalrows,
							 double *totaldeadrows);

/* in modify.c */
extern void kfdw_set_modify_routines(FdwRoutine *routine);

/* in publish.c */
typedef struct KafkaPublisher KafkaPublisher;

extern KafkaPublisher *kfdw_publisher_begin(Oid serverid, Oid userid,
											const char *topic);
extern int	kfdw_publisher_partitions(KafkaPublisher *pub);
extern bool kfdw_publisher_holds(KafkaPublisher *pub);
extern void kfdw_publish(KafkaPublisher *pub, KafkaEncoder *enc);
extern void kfdw_publisher_wait(KafkaPublisher *pub, int32 *partition,
								int64 *offset);
extern void kfdw_publisher_end(KafkaPublisher *pub);

/* in group.c */
extern void kfdw_define_scan_gucs(void);
extern char *kfdw_scan_group(Oid relid, bool *latest);
extern void kfdw_group_read(Oid serverid, Oid userid, const char *group,
							const char *topic, int32 partition, int64 next);

/* in functions.c */
extern PGDLLEXPORT Datum kafka_fdw_watermarks(PG_FUNCTION_ARGS);

#endif							/* KFDW_FDW_H */
