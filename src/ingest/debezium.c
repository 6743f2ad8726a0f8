#include "postgres.h"
#include "ingest/debezium.h"
KafkaDbzTarget *kfdw_dbz_prepare(Relation target, MemoryContext cxt) { return NULL; }
char kfdw_dbz_decode(KafkaDbzTarget *t, const char *key, int keylen, const char *value, int valuelen, Datum *values, bool *nulls, bool *present)
{ ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("debezium mode is not built yet"))); return 0; }
