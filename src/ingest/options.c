/*-------------------------------------------------------------------------
 *
 * options.c
 *		  The mode and options of an ingest stream
 *
 * ingest_create checks every option; the worker parses them again with the
 * same function when it starts.  Numbers are JSON numbers or strings of
 * digits, as in a connector's properties.
 *
 * IDENTIFICATION
 *		  src/ingest/options.c
 *
 *-------------------------------------------------------------------------
 */
#include "ingest/ingest.h"

#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"

#define VALID_OPTIONS "start, batch.rows, batch.ms, on_error, " \
	"dead_letter.table, workers, group.id, and for the debezium mode " \
	"binary.handling.mode, decimal.handling.mode, time.precision.mode, " \
	"unavailable.value.placeholder"

static const char *const dbz_options[] = {
	"binary.handling.mode", "decimal.handling.mode", "time.precision.mode",
	"unavailable.value.placeholder", NULL
};

/* Defaults: a batch is at most 10,000 rows or 100 ms old */
#define DEFAULT_BATCH_ROWS 10000
#define DEFAULT_BATCH_MS 100

static char *option_string(const char *key, JsonbValue *v);
static int	option_int(const char *key, JsonbValue *v, int min, int max);
static void parse_start(const char *value, KafkaIngestOptions *opts);

KafkaIngestMode
kfdw_ingest_parse_mode(const char *mode)
{
	if (strcmp(mode, "append") == 0)
		return KFDW_INGEST_APPEND;
	if (strcmp(mode, "upsert") == 0)
		return KFDW_INGEST_UPSERT;
	if (strcmp(mode, "debezium") == 0)
		return KFDW_INGEST_DEBEZIUM;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid ingest mode \"%s\"", mode),
			 errhint("Valid modes are: append, upsert, debezium.")));
	return KFDW_INGEST_APPEND;	/* keep compiler quiet */
}

const char *
kfdw_ingest_mode_name(KafkaIngestMode mode)
{
	switch (mode)
	{
		case KFDW_INGEST_APPEND:
			return "append";
		case KFDW_INGEST_UPSERT:
			return "upsert";
		case KFDW_INGEST_DEBEZIUM:
			return "debezium";
	}
	return "append";
}

/*
 * Fill opts from the options object (NULL: every default), raising an
 * ERROR for an unknown option or a value the option does not take.
 */
void
kfdw_ingest_parse_options(Jsonb *options, KafkaIngestOptions *opts)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	memset(opts, 0, sizeof(*opts));
	opts->start = KFDW_START_EARLIEST;
	opts->batch_rows = DEFAULT_BATCH_ROWS;
	opts->batch_ms = DEFAULT_BATCH_MS;
	opts->on_error = KFDW_ON_ERROR_STOP;
	opts->workers = 1;

	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options of an ingest stream must be a JSON object")));

	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;

		if (strcmp(key, "start") == 0)
			parse_start(option_string(key, &v), opts);
		else if (strcmp(key, "batch.rows") == 0)
			opts->batch_rows = option_int(key, &v, 1, 1000000);
		else if (strcmp(key, "batch.ms") == 0)
			opts->batch_ms = option_int(key, &v, 1, 3600000);
		else if (strcmp(key, "on_error") == 0)
		{
			char	   *s = option_string(key, &v);

			if (strcmp(s, "stop") == 0)
				opts->on_error = KFDW_ON_ERROR_STOP;
			else if (strcmp(s, "skip") == 0)
				opts->on_error = KFDW_ON_ERROR_SKIP;
			else if (strcmp(s, "dead_letter") == 0)
				opts->on_error = KFDW_ON_ERROR_DEAD_LETTER;
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value \"%s\" for option \"on_error\"", s),
						 errhint("Valid values are: stop, skip, dead_letter.")));
		}
		else if (strcmp(key, "dead_letter.table") == 0)
			opts->dead_letter_table = option_string(key, &v);
		else if (strcmp(key, "workers") == 0)
			opts->workers = option_int(key, &v, 1, KFDW_INGEST_MAX_WORKERS);
		else if (strcmp(key, "group.id") == 0)
		{
			opts->group_id = option_string(key, &v);
			if (opts->group_id[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"group.id\" must not be empty")));
		}
		else
		{
			int			i;

			for (i = 0; dbz_options[i]; i++)
			{
				if (strcmp(key, dbz_options[i]) == 0)
					break;
			}
			if (dbz_options[i] != NULL && opts->ndbz < lengthof(opts->dbz_names))
			{
				opts->dbz_names[opts->ndbz] = dbz_options[i];
				opts->dbz_values[opts->ndbz++] = option_string(key, &v);
				continue;
			}
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown ingest option \"%s\"", key),
					 errhint("Valid options are: %s.", VALID_OPTIONS)));
		}
	}

	if (opts->on_error == KFDW_ON_ERROR_DEAD_LETTER &&
		opts->dead_letter_table == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"on_error\" = \"dead_letter\" needs option \"dead_letter.table\"")));
	if (opts->dead_letter_table != NULL &&
		opts->on_error != KFDW_ON_ERROR_DEAD_LETTER)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"dead_letter.table\" is only used with \"on_error\" = \"dead_letter\"")));
}

/*
 * The table named by dead_letter.table (a possibly qualified name, looked
 * up with the search_path in force), or InvalidOid if missing_ok.
 */
Oid
kfdw_ingest_dead_letter_relid(const char *name, bool missing_ok)
{
	List	   *names = stringToQualifiedNameList(name);

	return RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock,
							missing_ok);
}

static char *
option_string(const char *key, JsonbValue *v)
{
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a string", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static int
option_int(const char *key, JsonbValue *v, int min, int max)
{
	char	   *s;
	char	   *end;
	long		n;

	if (v->type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out,
												NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvString)
		s = pnstrdup(v->val.string.val, v->val.string.len);
	else
		s = NULL;
	if (s != NULL)
	{
		errno = 0;
		n = strtol(s, &end, 10);
		if (errno == 0 && end != s && *end == '\0' && n >= min && n <= max)
			return (int) n;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be an integer from %d to %d",
					key, min, max)));
	return min;					/* keep compiler quiet */
}

/*
 * "earliest", "latest" or a finite timestamp with time zone.  The text is
 * parsed as timestamptz_in parses it, but with the parser's return codes,
 * so that a value that is no time is this option's error (22023), not the
 * datetime input's (22007, 22008).
 */
static void
parse_start(const char *value, KafkaIngestOptions *opts)
{
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	struct pg_tm tt;
	fsec_t		fsec;
	int			tz;
	TimestampTz ts = 0;
	bool		valid = false;

	if (strcmp(value, "earliest") == 0)
	{
		opts->start = KFDW_START_EARLIEST;
		return;
	}
	if (strcmp(value, "latest") == 0)
	{
		opts->start = KFDW_START_LATEST;
		return;
	}
	if (ParseDateTime(value, workbuf, sizeof(workbuf), field, ftype,
					  MAXDATEFIELDS, &nf) == 0 &&
		DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz) == 0)
	{
		if (dtype == DTK_EPOCH)
		{
			ts = SetEpochTimestamp();
			valid = true;
		}
		else if (dtype == DTK_DATE)
			valid = tm2timestamp(&tt, fsec, &tz, &ts) == 0 &&
				IS_VALID_TIMESTAMP(ts);
	}
	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value \"%s\" for option \"start\"", value),
				 errhint("Valid values are: earliest, latest, or a finite timestamp with time zone.")));
	opts->start = KFDW_START_TIMESTAMP;
	opts->start_ms = kfdw_timestamp_to_kafka(ts);
}
