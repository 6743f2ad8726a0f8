/*-------------------------------------------------------------------------
 *
 * debezium.h
 *		  Debezium change events decoded into rows of a target table
 *
 * IDENTIFICATION
 *		  src/ingest/debezium.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KFDW_INGEST_DEBEZIUM_H
#define KFDW_INGEST_DEBEZIUM_H

#include "postgres.h"

#include "utils/relcache.h"

typedef struct KafkaDbzTarget KafkaDbzTarget;

extern KafkaDbzTarget *kfdw_dbz_prepare(Relation target, MemoryContext cxt);
extern char kfdw_dbz_decode(KafkaDbzTarget *t, const char *key, int keylen,
							const char *value, int valuelen,
							Datum *values, bool *nulls, bool *present);

#endif							/* KFDW_INGEST_DEBEZIUM_H */
