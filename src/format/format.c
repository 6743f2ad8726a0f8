/*-------------------------------------------------------------------------
 *
 * format.c
 *		  The table of message formats
 *
 * A format is one file (json.c, csv.c, raw.c) that defines a
 * KafkaFormatRoutine: the decoding of a message value into the data
 * columns of a row, and the encoding back.  decode.c and encode.c find the
 * table's format here, by its KafkaFormat; a new format is one more file,
 * one more KafkaFormat and one more entry below.
 *
 * IDENTIFICATION
 *		  src/format/format.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

const KafkaFormatRoutine *const kfdw_formats[KAFKA_NUM_FORMATS] = {
	[KAFKA_FORMAT_JSON] = &kfdw_json_format,
	[KAFKA_FORMAT_CSV] = &kfdw_csv_format,
	[KAFKA_FORMAT_RAW] = &kfdw_raw_format
};

/*
 * The KafkaFormat of a format name, as the table option format gives it,
 * or -1 if there is no such format.
 */
int
kfdw_format_by_name(const char *name)
{
	int			i;

	for (i = 0; i < KAFKA_NUM_FORMATS; i++)
	{
		if (strcmp(kfdw_formats[i]->name, name) == 0)
			return i;
	}
	return -1;
}
