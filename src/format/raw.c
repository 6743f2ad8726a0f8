/*-------------------------------------------------------------------------
 *
 * raw.c
 *		  Messages in raw format: the whole value is one column
 *
 * A raw table has a single data column of type text, varchar, bytea, json
 * or jsonb that takes the message value as it is, and gives it back as it
 * is.  The same conversions serve the key column of every table, both ways
 * (decode.c and encode.c call them).
 *
 * IDENTIFICATION
 *		  src/format/raw.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

static void raw_decode(KafkaDecoder *dec, const char *data, int len);
static void raw_encode(KafkaEncoder *enc, TupleTableSlot *slot,
					   StringInfo buf);

/*
 * Store bytes that come from Kafka (a value, a key) into a column: a bytea
 * column takes them as they are; any other type must get text in the
 * database encoding, which goes through the type's input function.
 */
void
kfdw_decoder_set_bytes(KafkaDecoder *dec, KafkaColumnDecoder *cd,
					   const char *data, int len)
{
	int			idx = cd->col->attnum - 1;

	if (cd->category == KAFKA_VALUE_BYTEA)
	{
		bytea	   *result = (bytea *) palloc(len + VARHDRSZ);

		SET_VARSIZE(result, len + VARHDRSZ);
		if (len > 0)
			memcpy(VARDATA(result), data, len);
		dec->values[idx] = PointerGetDatum(result);
		dec->nulls[idx] = false;
		return;
	}

	/* text input functions need a NUL-free string in the server encoding */
	if (!kfdw_decoder_check_text(dec, cd, data, len))
		return;
	kfdw_decoder_set(dec, cd, pnstrdup(data, len), false);
}

/*
 * Append the bytes of a column value (a key, a raw value) to buf: text as
 * it is, bytea's bytes, json's text, jsonb as its text.
 */
void
kfdw_encode_bytes(StringInfo buf, Datum value, Oid basetypid)
{
	switch (basetypid)
	{
		case JSONBOID:
			{
				Jsonb	   *jb = DatumGetJsonbP(value);

				(void) JsonbToCString(buf, &jb->root, VARSIZE(jb));
			}
			break;
		case TEXTOID:
		case VARCHAROID:
		case BYTEAOID:
		case JSONOID:
			{
				struct varlena *v = PG_DETOAST_DATUM_PACKED(value);

				appendBinaryStringInfo(buf, VARDATA_ANY(v),
									   VARSIZE_ANY_EXHDR(v));
			}
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("cannot publish a value of type %s as raw bytes",
							format_type_be(basetypid)),
					 errhint("Use text, varchar, bytea, json or jsonb.")));
	}
}

/*
 * Decode a raw message value: the table's one data column takes it whole.
 */
static void
raw_decode(KafkaDecoder *dec, const char *data, int len)
{
	KafkaColumnDecoder *cd;

	if (dec->opts->ndata == 0)
		return;
	cd = dec->data[0];
	if (cd->needed)
		kfdw_decoder_set_bytes(dec, cd, data, len);
}

/*
 * The value is the bytes of the one data column; NULL (or no data column)
 * is a null value, a tombstone.
 */
static void
raw_encode(KafkaEncoder *enc, TupleTableSlot *slot, StringInfo buf)
{
	int			i;

	if (enc->opts->ndata == 0)
	{
		enc->has_value = false;
		return;
	}
	i = enc->data_attnums[0] - 1;
	if (slot->tts_isnull[i])
		enc->has_value = false;
	else
		kfdw_encode_bytes(buf, slot->tts_values[i], enc->basetypids[i]);
}

/* The format, for kfdw_formats (format.c) */
const KafkaFormatRoutine kfdw_raw_format = {
	.name = "raw",
	.decode = raw_decode,
	.begin_encode = NULL,
	.encode = raw_encode
};
