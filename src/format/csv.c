/*-------------------------------------------------------------------------
 *
 * csv.c
 *		  Messages in CSV format: one record per message
 *
 * Fields are the data columns by position.  The table options delimiter,
 * quote, escape and null follow COPY's CSV format, both ways.  Decoding: an
 * unquoted field equal to the null string is NULL, a quoted one never is
 * (unless force_null, and force_not_null makes it a value); missing
 * trailing fields are NULL; extra fields are ignored unless the table is
 * strict.  Encoding: one line as COPY ... (FORMAT csv) writes it, without
 * the line end.
 *
 * IDENTIFICATION
 *		  src/format/csv.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "utils/lsyscache.h"

static void csv_decode(KafkaDecoder *dec, const char *data, int len);
static void csv_begin_encode(KafkaEncoder *enc);
static void csv_encode(KafkaEncoder *enc, TupleTableSlot *slot,
					   StringInfo buf);
static void append_csv_field(StringInfo buf, KafkaTableOptions *opts,
							 const char *str);

/*
 * Split one CSV record and store its fields in the data columns.
 */
static void
csv_decode(KafkaDecoder *dec, const char *data, int len)
{
	KafkaTableOptions *opts = dec->opts;
	const char *p = data;
	const char *end = data + len;
	StringInfoData field;
	int			fieldno = 0;

	if (!kfdw_decoder_check_text(dec, NULL, data, len))
		return;

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

/*
 * The output function of each data column, by data_index.
 */
static void
csv_begin_encode(KafkaEncoder *enc)
{
	KafkaTableOptions *opts = enc->opts;
	FmgrInfo   *out_functions = palloc0(sizeof(FmgrInfo) * Max(opts->ndata, 1));
	int			d;

	for (d = 0; d < opts->ndata; d++)
	{
		KafkaColumn *col = &opts->columns[enc->data_attnums[d] - 1];
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(col->typid, &outfunc, &isvarlena);
		fmgr_info(outfunc, &out_functions[d]);
	}
	enc->format_state = out_functions;
}

/*
 * One line, as COPY ... (FORMAT csv) writes it, without the line end.
 */
static void
csv_encode(KafkaEncoder *enc, TupleTableSlot *slot, StringInfo buf)
{
	KafkaTableOptions *opts = enc->opts;
	FmgrInfo   *out_functions = (FmgrInfo *) enc->format_state;
	int			d;

	for (d = 0; d < opts->ndata; d++)
	{
		int			i = enc->data_attnums[d] - 1;

		if (d > 0)
			appendStringInfoCharMacro(buf, opts->delimiter);
		if (slot->tts_isnull[i])
			appendStringInfoString(buf, opts->null_string);
		else
		{
			char	   *str = OutputFunctionCall(&out_functions[d],
												 slot->tts_values[i]);

			append_csv_field(buf, opts, str);
			pfree(str);
		}
	}
}

/*
 * Append a CSV field as COPY ... (FORMAT csv) writes it: quoted when it reads
 * as the null string (or COPY's end-of-data marker) or holds the delimiter,
 * the quote or a line end; inside the quotes, the quote and the escape are
 * preceded by the escape (so with escape equal to quote, a quote is
 * doubled).  An escape outside quotes is an ordinary character, so a value
 * that holds only that is not quoted, as COPY does not quote it.
 */
static void
append_csv_field(StringInfo buf, KafkaTableOptions *opts, const char *str)
{
	bool		use_quote = false;
	const char *p;

	if (strcmp(str, opts->null_string) == 0)
		use_quote = true;
	else if (opts->ndata == 1 &&
			 str[0] == '\\' && str[1] == '.' && str[2] == '\0')
		use_quote = true;		/* COPY's end-of-data marker, alone on a line */
	else
	{
		for (p = str; *p; p++)
		{
			if (*p == opts->delimiter || *p == opts->quote ||
				*p == '\n' || *p == '\r')
			{
				use_quote = true;
				break;
			}
		}
	}

	if (!use_quote)
	{
		appendStringInfoString(buf, str);
		return;
	}

	appendStringInfoCharMacro(buf, opts->quote);
	for (p = str; *p; p++)
	{
		if (*p == opts->quote || *p == opts->escape)
			appendStringInfoCharMacro(buf, opts->escape);
		appendStringInfoCharMacro(buf, *p);
	}
	appendStringInfoCharMacro(buf, opts->quote);
}

/* The format, for kfdw_formats (format.c) */
const KafkaFormatRoutine kfdw_csv_format = {
	.name = "csv",
	.decode = csv_decode,
	.begin_encode = csv_begin_encode,
	.encode = csv_encode
};
