/*-------------------------------------------------------------------------
 *
 * raw.c
 *		  Decoding of messages in raw format: the whole value is one column
 *
 * A raw table has a single data column of type text, varchar, bytea, json
 * or jsonb that takes the message value as it is.  The same conversion
 * serves the key column of every table.
 *
 * IDENTIFICATION
 *		  src/format/raw.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"

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

	if (cd->category == 'x')
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
	if (!pg_verify_mbstr(GetDatabaseEncoding(), data, len, true))
	{
		kfdw_decoder_fail(dec, cd,
						  psprintf("invalid byte sequence for encoding \"%s\"",
								   GetDatabaseEncodingName()));
		return;
	}

	kfdw_decoder_set(dec, cd, pnstrdup(data, len), false);
}

/*
 * Decode a raw message value: the table's one data column takes it whole.
 */
void
kfdw_decode_raw(KafkaDecoder *dec, const char *data, int len)
{
	KafkaColumnDecoder *cd;

	if (dec->opts->ndata == 0)
		return;
	cd = dec->data[0];
	if (cd->needed)
		kfdw_decoder_set_bytes(dec, cd, data, len);
}
