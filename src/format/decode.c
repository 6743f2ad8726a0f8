/*-------------------------------------------------------------------------
 *
 * decode.c
 *		  Turn a Kafka message into a row of a foreign table
 *
 * The meta columns come from the message itself: its partition, offset,
 * key, timestamp and headers.  The value goes to the table's format (see
 * format.c), which fills the data columns through the decoder core
 * (decoder.c).  When the message, or a column of it, could not be decoded
 * and the table tolerates junk, the junk and junk_error columns say what
 * and why.
 *
 * IDENTIFICATION
 *		  src/format/decode.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

static Datum headers_to_jsonb(KafkaDecoder *dec, rd_kafka_message_t *msg,
							  bool *isnull);
static void decode_error_callback(void *arg);

/*
 * Fill the slot with the row of a message.  Everything the row holds is
 * allocated in the current memory context: a copy, so that the message can
 * be destroyed once the row is made.
 */
void
kfdw_decode_message(KafkaDecoder *dec, rd_kafka_message_t *msg,
					TupleTableSlot *slot)
{
	KafkaTableOptions *opts = dec->opts;
	Datum	   *values = slot->tts_values;
	bool	   *nulls = slot->tts_isnull;
	ErrorContextCallback errcallback;
	AttrNumber	a;

	memset(nulls, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	dec->values = values;
	dec->nulls = nulls;
	dec->junk_reason = NULL;
	dec->cur_column = NULL;
	dec->msg = msg;

	errcallback.callback = decode_error_callback;
	errcallback.arg = dec;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	if ((a = opts->partition_attnum) != InvalidAttrNumber)
	{
		values[a - 1] = kfdw_int_to_datum(msg->partition,
										  dec->cols[a - 1].basetype);
		nulls[a - 1] = false;
	}
	if ((a = opts->offset_attnum) != InvalidAttrNumber)
	{
		values[a - 1] = Int64GetDatum(msg->offset);
		nulls[a - 1] = false;
	}
	if ((a = opts->key_attnum) != InvalidAttrNumber &&
		dec->cols[a - 1].needed && msg->key != NULL)
		kfdw_decoder_set_bytes(dec, &dec->cols[a - 1], msg->key,
							   (int) msg->key_len);
	if ((a = opts->timestamp_attnum) != InvalidAttrNumber &&
		dec->cols[a - 1].needed)
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
		dec->cols[a - 1].needed)
		values[a - 1] = headers_to_jsonb(dec, msg, &nulls[a - 1]);

	/* a tombstone (null value) has NULL data columns */
	if (dec->need_value && msg->payload != NULL)
		kfdw_formats[opts->format]->decode(dec, (const char *) msg->payload,
										   (int) msg->len);

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

	error_context_stack = errcallback.previous;
	dec->msg = NULL;
	ExecStoreVirtualTuple(slot);
}

/*
 * The headers of a message as a jsonb object: name -> text value, a name
 * repeated in the message -> JSON array of its values in order, a null
 * value -> JSON null.
 */
static Datum
headers_to_jsonb(KafkaDecoder *dec, rd_kafka_message_t *msg, bool *isnull)
{
	rd_kafka_headers_t *hdrs;
	KafkaColumnDecoder *cd = &dec->cols[dec->opts->headers_attnum - 1];
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
			kfdw_decoder_fail(dec, cd, "header name is not valid text");
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
				kfdw_decoder_fail(dec, cd,
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
decode_error_callback(void *arg)
{
	KafkaDecoder *dec = (KafkaDecoder *) arg;

	if (dec->cur_column)
		errcontext("Kafka topic \"%s\", partition %d, offset " INT64_FORMAT ", column \"%s\"",
				   dec->opts->topic, dec->msg->partition, dec->msg->offset,
				   dec->cur_column);
	else
		errcontext("Kafka topic \"%s\", partition %d, offset " INT64_FORMAT,
				   dec->opts->topic, dec->msg->partition, dec->msg->offset);
}
