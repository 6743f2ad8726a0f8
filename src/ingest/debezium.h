/*-------------------------------------------------------------------------
 *
 * debezium.h
 *		  Debezium change events decoded into rows of a target table
 *
 * The decoder of the debezium mode of ingest streams (and of
 * kafka_fdw.debezium_decode): one event, in either form of Kafka Connect's
 * JSON converter, becomes its operation and the target's columns it
 * carries.  The applier (upsert, delete, truncate) is the caller's.
 *
 * IDENTIFICATION
 *		  src/ingest/debezium.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KFDW_INGEST_DEBEZIUM_H
#define KFDW_INGEST_DEBEZIUM_H

#include "postgres.h"

#include "utils/palloc.h"
#include "utils/relcache.h"

/* in debezium.c */

/* What is prepared per target relation (private) */
typedef struct KafkaDbzTarget KafkaDbzTarget;

/* the options kfdw_dbz_set_option takes, for a hint */
extern const char *const kfdw_dbz_option_names;

/*
 * Prepare to decode events into rows of target; everything lives in cxt
 * (which must outlive the result; each decode resets a child of it).
 */
extern KafkaDbzTarget *kfdw_dbz_prepare(Relation target, MemoryContext cxt);

/*
 * Set one of Debezium's connector options (kfdw_dbz_option_names) for the
 * events that do not say it themselves: unavailable.value.placeholder
 * (default __debezium_unavailable_value), binary.handling.mode (what a
 * string for a bytea column is: bytes/base64/base64-url-safe read either
 * base64 alphabet, hex), and for events without schemas
 * decimal.handling.mode and time.precision.mode.  Returns false for an
 * unknown name; a bad value is an ERROR (22023).
 */
extern bool kfdw_dbz_set_option(KafkaDbzTarget *t, const char *name,
								const char *value);

/*
 * Decode one message (key and value may be NULL with len -1: a null key,
 * a tombstone).  Returns the op: 'c', 'r', 'u', 'd', 't', or 0 for a
 * message that is no row change (a tombstone, a schema change event,
 * transaction metadata, a heartbeat, an 'm' message event).
 *
 * values/nulls/present are arrays of the target's natts, by attnum - 1.
 * For c/r/u they hold 'after'; present[i] is false for a column the event
 * does not have or whose value is Debezium's unchanged-TOAST placeholder
 * (the stored value is to be kept).  For d they hold 'before' (with the
 * default replica identity only its key columns are meaningful), and the
 * message key's fields for the columns 'before' does not give.  For t
 * nothing is present.  Values are allocated in the caller's memory
 * context and made by the columns' input functions as the current user.
 *
 * A malformed event raises an ERROR: 22P02 when it is not JSON or a value
 * does not fit its column (the message names the column and says what was
 * expected; an input function's own errors keep their SQLSTATE), 22023
 * when it is not a change event (no op, no after for c/r/u, nothing to
 * identify the row of a d).
 */
extern char kfdw_dbz_decode(KafkaDbzTarget *t, const char *key, int keylen,
							const char *value, int valuelen,
							Datum *values, bool *nulls, bool *present);

/*
 * Decode a key alone, in either form: the __debezium.oldkey and
 * __debezium.newkey headers of a key change carry the other key so.
 * values/nulls/present as for kfdw_dbz_decode.  Returns false, with
 * nothing present, for what is not a JSON object (Kafka Connect's simple
 * header converter writes "Struct{...}"); malformed JSON is an ERROR.
 */
extern bool kfdw_dbz_decode_key(KafkaDbzTarget *t, const char *key,
								int keylen, Datum *values, bool *nulls,
								bool *present);

#endif							/* KFDW_INGEST_DEBEZIUM_H */
