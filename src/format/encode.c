/*-------------------------------------------------------------------------
 *
 * encode.c
 *		  Turn a row of a foreign table into a Kafka message
 *
 * The message value is encoded by the table's format (see format.c): json
 * (an object of the data columns), csv (one line by the table's CSV
 * options) or raw (the bytes of the one data column).  The key, the
 * partition, the timestamp and the headers come from the meta columns,
 * which never appear in the value, and are encoded here whatever the
 * format: the key as raw.c gives a column's bytes.
 *
 * Everything is encoded into buffers that the encoder reuses from row to
 * row, so that encoding a row allocates nothing in the common case.
 *
 * Callers encode under kfdw_set_encoding_gucs(): values are written with ISO
 * dates, postgres-style intervals and floats with every digit, whatever the
 * session's DateStyle, IntervalStyle and extra_float_digits, so that any
 * other session (or client) reads back what was written.
 *
 * IDENTIFICATION
 *		  src/format/encode.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

static void encode_headers(KafkaEncoder *enc, Datum value);
static void append_header(StringInfo buf, const char *name, int namelen,
						  const char *value, int valuelen);
static void append_header_value(KafkaEncoder *enc, const char *name,
								int namelen, JsonbValue *v);

/*
 * Prepare an encoder for the rows of a table.  Everything it allocates goes
 * into the current memory context, which must live as long as the encoder.
 */
void
kfdw_encoder_init(KafkaEncoder *enc, KafkaTableOptions *opts)
{
	int			i;

	memset(enc, 0, sizeof(*enc));
	enc->opts = opts;
	initStringInfo(&enc->key);
	initStringInfo(&enc->value);
	initStringInfo(&enc->headers);
	initStringInfo(&enc->scratch);

	enc->format = kfdw_formats[opts->format];
	enc->data_attnums = palloc0(sizeof(AttrNumber) * Max(opts->ndata, 1));
	enc->basetypids = palloc0(sizeof(Oid) * Max(opts->natts, 1));

	for (i = 0; i < opts->natts; i++)
	{
		KafkaColumn *col = &opts->columns[i];

		if (col->dropped)
			continue;
		enc->basetypids[i] = getBaseType(col->typid);
		if (col->kind == KAFKA_COL_DATA)
			enc->data_attnums[col->data_index] = col->attnum;
	}
	if (enc->format->begin_encode)
		enc->format->begin_encode(enc);
}

/*
 * Encode the row in slot (all of whose attributes are fetched) into the
 * encoder's buffers and fields.
 */
void
kfdw_encode_row(KafkaEncoder *enc, TupleTableSlot *slot)
{
	KafkaTableOptions *opts = enc->opts;
	AttrNumber	attnum;

	resetStringInfo(&enc->key);
	resetStringInfo(&enc->value);
	resetStringInfo(&enc->headers);
	enc->has_key = false;
	enc->has_value = true;
	enc->nheaders = 0;
	enc->partition = RD_KAFKA_PARTITION_UA;
	enc->timestamp = 0;

	/* key */
	attnum = opts->key_attnum;
	if (attnum != InvalidAttrNumber && !slot->tts_isnull[attnum - 1])
	{
		kfdw_encode_bytes(&enc->key, slot->tts_values[attnum - 1],
						  enc->basetypids[attnum - 1]);
		enc->has_key = true;
	}

	/* partition */
	attnum = opts->partition_attnum;
	if (attnum != InvalidAttrNumber && !slot->tts_isnull[attnum - 1])
	{
		int64		p = kfdw_datum_to_int(slot->tts_values[attnum - 1],
										  enc->basetypids[attnum - 1]);

		if (p < 0 || p > PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid Kafka partition " INT64_FORMAT, p),
					 errhint("Leave the partition column NULL to let the key decide.")));
		enc->partition = (int32) p;
	}

	/*
	 * timestamp: milliseconds since the Unix epoch; a timestamp without time
	 * zone is in the session's TimeZone, as scans read it
	 */
	attnum = opts->timestamp_attnum;
	if (attnum != InvalidAttrNumber && !slot->tts_isnull[attnum - 1])
	{
		Datum		d = slot->tts_values[attnum - 1];
		TimestampTz ts;

		if (enc->basetypids[attnum - 1] == TIMESTAMPOID)
			d = DirectFunctionCall1(timestamp_timestamptz, d);
		ts = DatumGetTimestampTz(d);

		if (TIMESTAMP_NOT_FINITE(ts))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("a Kafka message timestamp must be finite")));
		enc->timestamp = kfdw_timestamp_to_kafka(ts);
		if (enc->timestamp < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("a Kafka message timestamp cannot be before 1970-01-01")));
	}

	/* headers */
	attnum = opts->headers_attnum;
	if (attnum != InvalidAttrNumber && !slot->tts_isnull[attnum - 1])
		encode_headers(enc, slot->tts_values[attnum - 1]);

	/* value */
	enc->format->encode(enc, slot, &enc->value);
}

/*
 * Headers from a jsonb object: each member is a header; a string gives its
 * text, null a header without a value, an array one header per element,
 * any other value its JSON text.
 */
static void
encode_headers(KafkaEncoder *enc, Datum value)
{
	Jsonb	   *jb = DatumGetJsonbP(value);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *name = NULL;
	int			namelen = 0;

	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the headers column must hold a JSON object"),
				 errhint("Write headers as {\"name\": \"value\", ...}; an array value gives the header once per element.")));

	/* skipNested: members that are arrays or objects come as jbvBinary */
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			name = v.val.string.val;
			namelen = v.val.string.len;
		}
		else if (tok == WJB_VALUE)
		{
			if (v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data))
			{
				JsonbIterator *ait = JsonbIteratorInit(v.val.binary.data);
				JsonbValue	elem;
				JsonbIteratorToken atok;

				while ((atok = JsonbIteratorNext(&ait, &elem, true)) != WJB_DONE)
				{
					if (atok == WJB_ELEM)
						append_header_value(enc, name, namelen, &elem);
				}
			}
			else
				append_header_value(enc, name, namelen, &v);
		}
	}
}

static void
append_header_value(KafkaEncoder *enc, const char *name, int namelen,
					JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			append_header(&enc->headers, name, namelen, NULL, -1);
			break;
		case jbvString:
			append_header(&enc->headers, name, namelen,
						  v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			{
				char	   *str = DatumGetCString(DirectFunctionCall1(numeric_out,
																	  NumericGetDatum(v->val.numeric)));

				append_header(&enc->headers, name, namelen, str, strlen(str));
				pfree(str);
			}
			break;
		case jbvBool:
			append_header(&enc->headers, name, namelen,
						  v->val.boolean ? "true" : "false",
						  v->val.boolean ? 4 : 5);
			break;
		case jbvBinary:
			{
				/* a nested object or array: its JSON text */
				resetStringInfo(&enc->scratch);
				(void) JsonbToCString(&enc->scratch, v->val.binary.data,
									  v->val.binary.len);
				append_header(&enc->headers, name, namelen,
							  enc->scratch.data, enc->scratch.len);
			}
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d in headers", v->type);
	}
	enc->nheaders++;
}

/*
 * Headers are kept as a sequence of (name length, name, value length or -1,
 * value), so that held messages need no librdkafka object.
 */
static void
append_header(StringInfo buf, const char *name, int namelen,
			  const char *value, int valuelen)
{
	appendBinaryStringInfo(buf, (char *) &namelen, sizeof(int));
	appendBinaryStringInfo(buf, name, namelen);
	appendBinaryStringInfo(buf, (char *) &valuelen, sizeof(int));
	if (valuelen > 0)
		appendBinaryStringInfo(buf, value, valuelen);
}

/*
 * Make librdkafka headers from the encoded form, or NULL if there are none.
 * The result belongs to the caller until passed to rd_kafka_producev().
 */
rd_kafka_headers_t *
kfdw_make_headers(const char *data, int len, int count)
{
	rd_kafka_headers_t *hdrs;
	const char *p = data;
	const char *end = data + len;

	if (count == 0)
		return NULL;

	hdrs = rd_kafka_headers_new(count);
	while (p < end)
	{
		int			namelen;
		int			valuelen;
		const char *name;

		memcpy(&namelen, p, sizeof(int));
		p += sizeof(int);
		name = p;
		p += namelen;
		memcpy(&valuelen, p, sizeof(int));
		p += sizeof(int);
		rd_kafka_header_add(hdrs, name, namelen,
							valuelen < 0 ? NULL : p,
							valuelen < 0 ? 0 : valuelen);
		if (valuelen > 0)
			p += valuelen;
	}
	return hdrs;
}
