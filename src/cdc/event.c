/*-------------------------------------------------------------------------
 *
 * event.c
 *		  Change events in Debezium's envelope
 *
 * A change event is a Kafka message whose key holds the table's key
 * columns and whose value is the envelope that Debezium's PostgreSQL
 * connector writes through Kafka Connect's JSON converter:
 *
 *	{"schema": {...}, "payload": {"before": ..., "after": ..., "source": {...},
 *	 "transaction": null, "op": "c", "ts_ms": ..., "ts_us": ..., "ts_ns": ...}}
 *
 * or, with "schemas.enable" false, the payload alone.  The schemas come
 * ready from cdc/schema.c, the column values from cdc/value.c.  Every
 * field of a row is written: a value the event does not have is the
 * unavailable-value placeholder (an unchanged TOASTed column) or null (a
 * required field: its type's zero), as Debezium writes them.
 *
 * Besides change events: logical decoding messages (op "m", on the topic
 * <prefix>.message), transaction BEGIN and END events (on
 * <prefix>.transaction) and the headers Debezium puts on change events.
 *
 * IDENTIFICATION
 *		  src/cdc/event.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "utils/timestamp.h"

#define MESSAGE_KEY_SCHEMA \
	"{\"type\":\"struct\",\"fields\":[" \
	"{\"type\":\"string\",\"optional\":true,\"field\":\"prefix\"}]," \
	"\"optional\":false,\"name\":\"io.debezium.connector.postgresql.MessageKey\",\"version\":1}"

#define TXN_KEY_SCHEMA \
	"{\"type\":\"struct\",\"fields\":[" \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"id\"}]," \
	"\"optional\":false,\"name\":\"io.debezium.connector.common.TransactionMetadataKey\",\"version\":1}"

#define TXN_VALUE_SCHEMA \
	"{\"type\":\"struct\",\"fields\":[" \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"status\"}," \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"id\"}," \
	"{\"type\":\"int64\",\"optional\":true,\"field\":\"event_count\"}," \
	"{\"type\":\"array\",\"items\":{\"type\":\"struct\",\"fields\":[" \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"data_collection\"}," \
	"{\"type\":\"int64\",\"optional\":false,\"field\":\"event_count\"}]," \
	"\"optional\":true,\"name\":\"event.collection\",\"version\":1},\"optional\":true,\"field\":\"data_collections\"}," \
	"{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"}]," \
	"\"optional\":false,\"name\":\"io.debezium.connector.common.TransactionMetadataValue\",\"version\":1}"

static void append_row(StringInfo buf, KafkaCdcRelation *rel,
					   KafkaCdcRow *row, bool keys_only,
					   const KafkaCdcOptions *opts);
static void append_source(StringInfo buf, const char *nspname,
						  const char *relname, KafkaCdcSource *source);
static void append_times(StringInfo buf, bool micro);
static void append_txn_block(StringInfo buf, KafkaCdcSource *source);
static void append_string_key(StringInfo buf, const char *schema,
							  const char *field, const char *value,
							  const KafkaCdcOptions *opts);
static const char *run_id(void);

/*
 * Append the message key: the key columns, with their schema if schema is
 * true and the stream sends schemas.  Returns false, appending nothing, if
 * the table has no key (the message then has a null key, as Debezium sends
 * it).
 */
bool
kfdw_cdc_encode_key(StringInfo buf, KafkaCdcRelation *rel, KafkaCdcRow *row,
					const KafkaCdcOptions *opts, bool schema)
{
	if (!rel->has_key)
		return false;
	if (schema && opts->schemas)
		appendStringInfo(buf, "{\"schema\":%s,\"payload\":", rel->key_schema);
	append_row(buf, rel, row, true, opts);
	if (schema && opts->schemas)
		appendStringInfoChar(buf, '}');
	return true;
}

/*
 * Append the message value of an event.  op is 'r' (snapshot read), 'c',
 * 'u', 'd' or 't'; before and after may be NULL (JSON null).
 */
void
kfdw_cdc_encode_value(StringInfo buf, char op, KafkaCdcRelation *rel,
					  KafkaCdcRow *before, KafkaCdcRow *after,
					  KafkaCdcSource *source, const KafkaCdcOptions *opts)
{
	if (opts->schemas)
		appendStringInfo(buf, "{\"schema\":%s,\"payload\":", rel->value_schema);

	appendStringInfoString(buf, "{\"before\":");
	if (before)
		append_row(buf, rel, before, false, opts);
	else
		appendStringInfoString(buf, "null");

	appendStringInfoString(buf, ",\"after\":");
	if (after)
		append_row(buf, rel, after, false, opts);
	else
		appendStringInfoString(buf, "null");

	appendStringInfoString(buf, ",\"source\":");
	append_source(buf, rel->nspname, rel->relname, source);

	append_txn_block(buf, source);

	appendStringInfo(buf, ",\"op\":\"%c\"", op);
	append_times(buf, true);
	appendStringInfoChar(buf, '}');

	if (opts->schemas)
		appendStringInfoChar(buf, '}');
}

/*
 * A logical decoding message (pg_logical_emit_message) as Debezium's event
 * of op "m": key and value.
 */
void
kfdw_cdc_encode_message(StringInfo key, StringInfo value, const char *prefix,
						const char *content, Size len, KafkaCdcSource *source,
						const KafkaCdcOptions *opts)
{
	KafkaCdcType bytes = {0};
	bytea	   *data = palloc(VARHDRSZ + len);

	append_string_key(key, MESSAGE_KEY_SCHEMA, "prefix", prefix, opts);

	if (opts->schemas)
	{
		appendStringInfoString(value, "{\"schema\":{\"type\":\"struct\",\"fields\":["
							   "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},"
							   "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},");
		appendStringInfoString(value, kfdw_cdc_source_schema);
		appendStringInfoChar(value, ',');
		appendStringInfoString(value, kfdw_cdc_txn_block_schema);
		appendStringInfo(value, ",{\"type\":\"struct\",\"fields\":["
						 "{\"type\":\"string\",\"optional\":true,\"field\":\"prefix\"},"
						 "{\"type\":\"%s\",\"optional\":true,\"field\":\"content\"}],"
						 "\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Message\",\"version\":1,\"field\":\"message\"}],"
						 "\"optional\":false,\"name\":\"io.debezium.connector.postgresql.MessageValue\",\"version\":1},"
						 "\"payload\":",
						 opts->binary_mode == KFDW_BINARY_BYTES ? "bytes" : "string");
	}
	appendStringInfoString(value, "{\"op\":\"m\"");
	append_times(value, false);
	appendStringInfoString(value, ",\"source\":");
	append_source(value, "", "", source);
	append_txn_block(value, source);
	appendStringInfoString(value, ",\"message\":{\"prefix\":");
	kfdw_json_append_string(value, prefix);
	appendStringInfoString(value, ",\"content\":");
	/* content: bytes, as binary.handling.mode says */
	bytes.kind = KFDW_KIND_BYTEA;
	SET_VARSIZE(data, VARHDRSZ + len);
	memcpy(VARDATA(data), content, len);
	kfdw_cdc_append_value(value, &bytes, opts, PointerGetDatum(data));
	appendStringInfoString(value, "}}");
	if (opts->schemas)
		appendStringInfoChar(value, '}');
}

/*
 * A transaction's BEGIN (begin) or END event on <prefix>.transaction.
 * counts, for END, is a list of KafkaCdcTxnCount.
 */
void
kfdw_cdc_encode_txn(StringInfo key, StringInfo value, bool begin,
					const char *txn_id, TimestampTz ts, List *counts,
					int64 total, const KafkaCdcOptions *opts)
{
	ListCell   *lc;

	append_string_key(key, TXN_KEY_SCHEMA, "id", txn_id, opts);

	if (opts->schemas)
		appendStringInfoString(value, "{\"schema\":" TXN_VALUE_SCHEMA ",\"payload\":");
	appendStringInfo(value, "{\"status\":\"%s\",\"id\":", begin ? "BEGIN" : "END");
	kfdw_json_append_string(value, txn_id);
	if (begin)
		appendStringInfoString(value, ",\"event_count\":null,\"data_collections\":null");
	else
	{
		appendStringInfo(value, ",\"event_count\":" INT64_FORMAT
						 ",\"data_collections\":[", total);
		foreach(lc, counts)
		{
			KafkaCdcTxnCount *c = lfirst(lc);

			if (lc != list_head(counts))
				appendStringInfoChar(value, ',');
			appendStringInfoString(value, "{\"data_collection\":");
			kfdw_json_append_string(value, c->collection);
			appendStringInfo(value, ",\"event_count\":" INT64_FORMAT "}", c->count);
		}
		appendStringInfoChar(value, ']');
	}
	appendStringInfo(value, ",\"ts_ms\":" INT64_FORMAT "}",
					 kfdw_timestamp_to_kafka(ts));
	if (opts->schemas)
		appendStringInfoChar(value, '}');
}

/*
 * The headers of a change event: keyname ("__debezium.newkey" or
 * "__debezium.oldkey", or NULL) with the other key's payload, then the
 * connector context Debezium adds.
 */
rd_kafka_headers_t *
kfdw_cdc_headers(const char *prefix, const char *keyname, StringInfo keypayload)
{
	rd_kafka_headers_t *headers = rd_kafka_headers_new(5);

	if (keyname)
		rd_kafka_header_add(headers, keyname, -1, keypayload->data,
							keypayload->len);
	rd_kafka_header_add(headers, "__debezium.context.connectorLogicalName", -1,
						prefix, -1);
	rd_kafka_header_add(headers, "__debezium.context.taskId", -1, "0", -1);
	rd_kafka_header_add(headers, "__debezium.context.connectorName", -1,
						"kafka_fdw", -1);
	rd_kafka_header_add(headers, "__debezium.context.runId", -1, run_id(), -1);
	return headers;
}

/*
 * Append a row as a JSON object of every column.
 */
static void
append_row(StringInfo buf, KafkaCdcRelation *rel, KafkaCdcRow *row,
		   bool keys_only, const KafkaCdcOptions *opts)
{
	bool		first = true;
	int			i;

	appendStringInfoChar(buf, '{');
	for (i = 0; i < rel->ncols; i++)
	{
		KafkaCdcColumn *col = &rel->cols[i];

		if (keys_only && !col->iskey)
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		kfdw_json_append_string(buf, col->name);
		appendStringInfoChar(buf, ':');
		if (row->present[i] && !row->isnull[i])
			kfdw_cdc_append_value(buf, &col->type, opts, row->values[i]);
		else if (!row->present[i] && row->unavailable && row->unavailable[i])
			kfdw_cdc_append_unavailable(buf, &col->type, opts);
		else if (col->default_json)
		{
			/*
			 * As Kafka Connect's JSON converter writes a null (or a value
			 * the event lacks) of a field with a default: the default
			 * (replace.null.with.default, true by default).
			 */
			appendStringInfoString(buf, col->default_json);
		}
		else if (col->notnull)
			kfdw_cdc_append_zero(buf, &col->type);
		else
			appendStringInfoString(buf, "null");
	}
	appendStringInfoChar(buf, '}');
}

/*
 * The source block, with the fields and types of Debezium's PostgreSQL
 * connector (connector "kafka_fdw" instead of "postgresql").
 */
static void
append_source(StringInfo buf, const char *nspname, const char *relname,
			  KafkaCdcSource *source)
{
	int64		us = source->commit_time + EPOCH_SHIFT_USECS_FOR_SOURCE;

	appendStringInfoString(buf, "{\"version\":\"" KFDW_CDC_VERSION
						   "\",\"connector\":\"kafka_fdw\",\"name\":");
	kfdw_json_append_string(buf, source->stream_name);
	appendStringInfo(buf, ",\"ts_ms\":" INT64_FORMAT ",\"snapshot\":\"%s\",\"db\":",
					 us / 1000, source->snapshot);
	kfdw_json_append_string(buf, source->dbname);

	/* sequence: a string holding [last commit LSN, LSN of this event] */
	if (XLogRecPtrIsInvalid(source->last_commit_lsn))
		appendStringInfoString(buf, ",\"sequence\":\"[null,");
	else
		appendStringInfo(buf, ",\"sequence\":\"[\\\"" UINT64_FORMAT "\\\",",
						 (uint64) source->last_commit_lsn);
	appendStringInfo(buf, "\\\"" UINT64_FORMAT "\\\"]\"", (uint64) source->lsn);
	appendStringInfo(buf, ",\"ts_us\":" INT64_FORMAT ",\"ts_ns\":" INT64_FORMAT,
					 us, us * 1000);

	appendStringInfoString(buf, ",\"schema\":");
	kfdw_json_append_string(buf, nspname);
	appendStringInfoString(buf, ",\"table\":");
	kfdw_json_append_string(buf, relname);
	if (TransactionIdIsValid(source->xid))
		appendStringInfo(buf, ",\"txId\":%u", source->xid);
	else
		appendStringInfoString(buf, ",\"txId\":null");
	appendStringInfo(buf, ",\"lsn\":" UINT64_FORMAT
					 ",\"xmin\":null,\"origin\":null,\"origin_lsn\":null}",
					 (uint64) source->lsn);
}

/* A key of one string field {"field": value}, with its schema if sent */
static void
append_string_key(StringInfo buf, const char *schema, const char *field,
				  const char *value, const KafkaCdcOptions *opts)
{
	if (opts->schemas)
		appendStringInfo(buf, "{\"schema\":%s,\"payload\":", schema);
	appendStringInfo(buf, "{\"%s\":", field);
	kfdw_json_append_string(buf, value);
	appendStringInfoChar(buf, '}');
	if (opts->schemas)
		appendStringInfoChar(buf, '}');
}

/* ,"transaction": the event's place in its transaction, or null */
static void
append_txn_block(StringInfo buf, KafkaCdcSource *source)
{
	appendStringInfoString(buf, ",\"transaction\":");
	if (source->txn_id)
	{
		appendStringInfoString(buf, "{\"id\":");
		kfdw_json_append_string(buf, source->txn_id);
		appendStringInfo(buf, ",\"total_order\":" INT64_FORMAT
						 ",\"data_collection_order\":" INT64_FORMAT "}",
						 source->total_order, source->collection_order);
	}
	else
		appendStringInfoString(buf, "null");
}

/* ts_ms, and with micro ts_us and ts_ns: when the event was made */
static void
append_times(StringInfo buf, bool micro)
{
	int64		us = GetCurrentTimestamp() + EPOCH_SHIFT_USECS_FOR_SOURCE;

	appendStringInfo(buf, ",\"ts_ms\":" INT64_FORMAT, us / 1000);
	if (micro)
		appendStringInfo(buf, ",\"ts_us\":" INT64_FORMAT ",\"ts_ns\":" INT64_FORMAT,
						 us, us * 1000);
}

/* __debezium.context.runId: a random UUID, one per worker run */
static const char *
run_id(void)
{
	static char id[37];

	if (id[0] == '\0')
	{
		uint8		b[16];

		if (!pg_strong_random(b, sizeof(b)))
			memset(b, 0, sizeof(b));
		b[6] = (b[6] & 0x0f) | 0x40;
		b[8] = (b[8] & 0x3f) | 0x80;
		snprintf(id, sizeof(id),
				 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
				 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
				 b[10], b[11], b[12], b[13], b[14], b[15]);
	}
	return id;
}
