/*-------------------------------------------------------------------------
 *
 * csv.c
 *		  Decoding of messages in CSV format: one record per message
 *
 * Fields go to the data columns by position.  The table options delimiter,
 * quote, escape and null follow COPY's CSV format: an unquoted field equal
 * to the null string is NULL, a quoted one never is.  Missing trailing
 * fields are NULL; extra fields are ignored unless the table is strict.
 *
 * IDENTIFICATION
 *		  src/format/csv.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "mb/pg_wchar.h"

/*
 * Split one CSV record and store its fields in the data columns.
 */
void
kfdw_decode_csv(KafkaDecoder *dec, const char *data, int len)
{
	KafkaTableOptions *opts = dec->opts;
	const char *p = data;
	const char *end = data + len;
	StringInfoData field;
	int			fieldno = 0;

	if (!pg_verify_mbstr(GetDatabaseEncoding(), data, len, true))
	{
		kfdw_decoder_fail(dec, NULL,
						  psprintf("invalid byte sequence for encoding \"%s\"",
								   GetDatabaseEncodingName()));
		return;
	}

	/* a record may end with a line break, as a line of a CSV file does */
	if (end > p && end[-1] == '\n')
		end--;
	if (end > p && end[-1] == '\r')
		end--;

	initStringInfo(&field);
	for (;;)
	{
		bool		quoted = false;
		bool		last;

		resetStringInfo(&field);

		/* read one field, up to an unquoted delimiter or the end */
		while (p < end && *p != opts->delimiter)
		{
			if (*p == opts->quote)
			{
				quoted = true;
				p++;
				for (;;)
				{
					if (p >= end)
					{
						kfdw_decoder_fail(dec, NULL,
										  "unterminated CSV quoted field");
						return;
					}
					if (*p == opts->escape && p + 1 < end &&
						(p[1] == opts->quote || p[1] == opts->escape) &&
						(opts->escape != opts->quote || p[1] == opts->quote))
					{
						appendStringInfoChar(&field, p[1]);
						p += 2;
						continue;
					}
					if (*p == opts->quote)
					{
						p++;
						break;
					}
					appendStringInfoChar(&field, *p++);
				}
				continue;
			}
			appendStringInfoChar(&field, *p++);
		}
		last = (p >= end);

		if (fieldno < opts->ndata)
		{
			KafkaColumnDecoder *cd = dec->data[fieldno];

			if (cd->needed)
			{
				bool		is_null_string = strcmp(field.data,
													opts->null_string) == 0;

				/* as COPY: force_not_null, then force_null (quoted too) */
				if (is_null_string &&
					(quoted ? cd->col->force_null :
					 !cd->col->force_not_null))
					dec->nulls[cd->col->attnum - 1] = true;
				else
					kfdw_decoder_set(dec, cd, pstrdup(field.data), false);
			}
		}
		else if (opts->strict)
		{
			kfdw_decoder_fail(dec, NULL,
							  psprintf("CSV record has more than %d fields",
									   opts->ndata));
			return;
		}
		fieldno++;

		if (last)
			break;
		p++;					/* skip the delimiter */
	}
	pfree(field.data);
}
