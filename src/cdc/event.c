/*-------------------------------------------------------------------------
 *
 * event.c
 *		  Encoding of change events in Debezium's envelope
 *
 * A change event is a Kafka message whose key is a JSON object of the
 * table's key columns and whose value is the envelope that Debezium's
 * PostgreSQL connector writes through Kafka Connect's JSON converter with
 * schemas disabled:
 *
 *	{"before": ..., "after": ..., "source": {...}, "op": "c", "ts_ms": ...,
 *	 "transaction": null}
 *
 * Column values go through the JSON encoder that INSERT uses as well, so a
 * value reads the same in a topic whichever way it got there.
 *
 * IDENTIFICATION
 *		  src/cdc/event.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "utils/timestamp.h"

static void append_row(StringInfo buf, KafkaCdcRelation *rel,
					   KafkaCdcRow *row, bool keys_only);
static void append_source(StringInfo buf, KafkaCdcRelation *rel,
						  KafkaCdcSource *source);

/*
 * Append the message key: {"col": value, ...} over the key columns.
 * Returns false, appending nothing, if the table has no key (the message
 * then has a null key, as Debezium sends it).
 */
bool
kfdw_cdc_encode_key(StringInfo buf, KafkaCdcRelation *rel, KafkaCdcRow *row)
{
	if (!rel->has_key)
		return false;
	append_row(buf, rel, row, true);
	return true;
}

/*
 * Append the message value of an event.  op is 'r' (snapshot read), 'c',
 * 'u', 'd' or 't'; before and after may be NULL (JSON null).
 */
void
kfdw_cdc_encode_value(StringInfo buf, char op, KafkaCdcRelation *rel,
					  KafkaCdcRow *before, KafkaCdcRow *after,
					  KafkaCdcSource *source)
{
	appendStringInfoString(buf, "{\"before\":");
	if (before)
		append_row(buf, rel, before, false);
	else
		appendStringInfoString(buf, "null");

	appendStringInfoString(buf, ",\"after\":");
	if (after)
		append_row(buf, rel, after, false);
	else
		appendStringInfoString(buf, "null");

	appendStringInfoString(buf, ",\"source\":");
	append_source(buf, rel, source);

	appendStringInfo(buf, ",\"op\":\"%c\",\"ts_ms\":" INT64_FORMAT
					 ",\"transaction\":null}",
					 op, kfdw_timestamp_to_kafka(GetCurrentTimestamp()));
}

/*
 * Append a row as a JSON object.  Columns not present (an unchanged TOASTed
 * value that the WAL does not carry) are left out rather than given a
 * made-up value.
 */
static void
append_row(StringInfo buf, KafkaCdcRelation *rel, KafkaCdcRow *row,
		   bool keys_only)
{
	bool		first = true;
	int			i;

	appendStringInfoChar(buf, '{');
	for (i = 0; i < rel->ncols; i++)
	{
		KafkaCdcColumn *col = &rel->cols[i];

		if (keys_only && !col->iskey)
			continue;
		if (!row->present[i])
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		kfdw_json_append_string(buf, col->name);
		appendStringInfoChar(buf, ':');
		kfdw_json_append_datum(buf, row->values[i], row->isnull[i],
							   col->typid);
	}
	appendStringInfoChar(buf, '}');
}

/*
 * The source block, with the fields and types of Debezium's PostgreSQL
 * connector (connector "kafka_fdw" instead of "postgresql").
 */
static void
append_source(StringInfo buf, KafkaCdcRelation *rel, KafkaCdcSource *source)
{
	appendStringInfoString(buf, "{\"version\":\"" KFDW_CDC_VERSION
						   "\",\"connector\":\"kafka_fdw\",\"name\":");
	kfdw_json_append_string(buf, source->stream_name);
	appendStringInfo(buf, ",\"ts_ms\":" INT64_FORMAT ",\"snapshot\":\"%s\",\"db\":",
					 kfdw_timestamp_to_kafka(source->commit_time), source->snapshot);
	kfdw_json_append_string(buf, source->dbname);

	/* sequence: a string holding [last commit LSN, LSN of this event] */
	if (XLogRecPtrIsInvalid(source->last_commit_lsn))
		appendStringInfoString(buf, ",\"sequence\":\"[null,");
	else
		appendStringInfo(buf, ",\"sequence\":\"[\\\"" UINT64_FORMAT "\\\",",
						 (uint64) source->last_commit_lsn);
	appendStringInfo(buf, "\\\"" UINT64_FORMAT "\\\"]\"", (uint64) source->lsn);

	appendStringInfoString(buf, ",\"schema\":");
	kfdw_json_append_string(buf, rel->nspname);
	appendStringInfoString(buf, ",\"table\":");
	kfdw_json_append_string(buf, rel->relname);
	if (TransactionIdIsValid(source->xid))
		appendStringInfo(buf, ",\"txId\":%u", source->xid);
	else
		appendStringInfoString(buf, ",\"txId\":null");
	appendStringInfo(buf, ",\"lsn\":" UINT64_FORMAT ",\"xmin\":null}",
					 (uint64) source->lsn);
}
