/*-------------------------------------------------------------------------
 *
 * ingest.h
 *		  Ingest streams: background workers that consume a topic into a
 *		  table, exactly once, with their offsets kept in the database
 *
 * A stream's workers are entries of the launcher's registry (cdc/launcher.c),
 * started, restarted and backed off like change data capture workers.
 *
 * IDENTIFICATION
 *		  src/ingest/ingest.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KFDW_INGEST_H
#define KFDW_INGEST_H

#include "postgres.h"

#include "cdc/cdc.h"
#include "executor/tuptable.h"
#include "format/format.h"
#include "kafka/kafka.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

/* in options.c: ingest_create's mode and options */

typedef enum KafkaIngestMode
{
	KFDW_INGEST_APPEND,			/* insert every message */
	KFDW_INGEST_UPSERT,			/* by the target's primary key; null deletes */
	KFDW_INGEST_DEBEZIUM		/* Debezium change events */
} KafkaIngestMode;

typedef enum KafkaIngestOnError
{
	KFDW_ON_ERROR_STOP,
	KFDW_ON_ERROR_SKIP,
	KFDW_ON_ERROR_DEAD_LETTER
} KafkaIngestOnError;

/* Where a partition without a stored offset starts */
typedef enum KafkaIngestStart
{
	KFDW_START_EARLIEST,
	KFDW_START_LATEST,
	KFDW_START_TIMESTAMP
} KafkaIngestStart;

typedef struct KafkaIngestOptions
{
	KafkaIngestStart start;
	int64		start_ms;		/* KFDW_START_TIMESTAMP: ms since 1970 */
	int			batch_rows;
	int			batch_ms;
	KafkaIngestOnError on_error;
	char	   *dead_letter_table;	/* as given, or NULL */
	int			workers;
	char	   *group_id;		/* or NULL */

	/* the debezium mode: Debezium's options for the events' values */
	int			ndbz;
	const char *dbz_names[4];
	char	   *dbz_values[4];
} KafkaIngestOptions;

#define KFDW_INGEST_MAX_WORKERS 64

extern KafkaIngestMode kfdw_ingest_parse_mode(const char *mode);
extern const char *kfdw_ingest_mode_name(KafkaIngestMode mode);
extern void kfdw_ingest_parse_options(Jsonb *options, KafkaIngestOptions *opts);
extern Oid	kfdw_ingest_dead_letter_relid(const char *name, bool missing_ok);

/* in apply.c: rows into the target table */

typedef struct KafkaIngestTarget KafkaIngestTarget;

/* What a message is, once decoded, for the target */
typedef struct KafkaIngestChange
{
	char		op;				/* 'i' insert, 'u' upsert, 'd' delete, 't'
								 * truncate, 0 nothing */
	Datum	   *values;			/* by target attnum - 1 */
	bool	   *nulls;
	bool	   *present;		/* false: keep the stored value (upsert) */

	/*
	 * A key change in the debezium mode: the delete of the old key names
	 * the new one, the create of the new key names the old one (the
	 * __debezium.newkey and oldkey headers); other_values and other_nulls
	 * hold that other key's columns, by target attnum - 1.
	 */
	bool		other_key;
	Datum	   *other_values;
	bool	   *other_nulls;
} KafkaIngestChange;

extern void kfdw_ingest_check_target(Oid target, Oid source,
									 KafkaIngestMode mode, Oid owner);
extern void kfdw_ingest_check_dead_letter(Oid relid, Oid owner);
extern KafkaIngestTarget *kfdw_ingest_target_open(Oid target,
												  KafkaTableOptions *source,
												  KafkaIngestMode mode,
												  const KafkaIngestOptions *opts,
												  MemoryContext cxt);
extern void kfdw_ingest_change_from_row(KafkaIngestTarget *t,
										TupleTableSlot *srcslot,
										const rd_kafka_message_t *msg,
										KafkaIngestChange *change);
extern void kfdw_ingest_change_from_debezium(KafkaIngestTarget *t,
											 const rd_kafka_message_t *msg,
											 KafkaIngestChange *change);
extern int	kfdw_ingest_apply(KafkaIngestTarget *t, KafkaIngestChange *change);
extern void kfdw_ingest_target_close(KafkaIngestTarget *t);
extern void kfdw_ingest_dead_letter(Oid relid, const char *stream,
									const rd_kafka_message_t *msg,
									const char *error);

/* in worker.c */
extern PGDLLEXPORT void kfdw_ingest_worker_main(Datum main_arg);

/* api.c exports only SQL-callable functions */

#endif							/* KFDW_INGEST_H */
