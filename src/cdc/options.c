/*-------------------------------------------------------------------------
 *
 * options.c
 *		  The options of a change data capture stream
 *
 * cdc_create's options take the names and values of Debezium's PostgreSQL
 * connector (and "schemas.enable" of Kafka Connect's JSON converter), so a
 * configuration moves between the two unchanged.  Every option is checked
 * when the stream is created; the worker reads them again with the same
 * parser at its start.  Values are JSON strings as in a connector's
 * properties; the boolean ones take JSON booleans as well.
 *
 * IDENTIFICATION
 *		  src/cdc/options.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "catalog/pg_collation.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#define VALID_OPTIONS "schemas.enable, time.precision.mode, " \
	"decimal.handling.mode, binary.handling.mode, interval.handling.mode, " \
	"hstore.handling.mode, unavailable.value.placeholder, " \
	"skipped.operations, tombstones.on.delete, message.key.columns, " \
	"provide.transaction.metadata, message.prefix.include.list, " \
	"message.prefix.exclude.list"

static bool option_bool(const char *key, JsonbValue *v);
static char *option_string(const char *key, JsonbValue *v);
static int	option_choice(const char *key, const char *value,
						 const char *const *choices);
static int	parse_skipped(const char *value);
static void check_key_columns(const char *value);
static void check_regex_list(const char *key, const char *value);

static const char *const time_modes[] = {
	"adaptive", "adaptive_time_microseconds", "connect", "isostring", NULL
};
static const char *const decimal_modes[] = {
	"precise", "double", "string", NULL
};
static const char *const binary_modes[] = {
	"bytes", "base64", "base64-url-safe", "hex", NULL
};
static const char *const interval_modes[] = {"numeric", "string", NULL};
static const char *const hstore_modes[] = {"json", "map", NULL};

/*
 * Fill opts from the options object (NULL: every default), raising an
 * ERROR for an unknown option or a value the option does not take.
 */
void
kfdw_cdc_parse_options(Jsonb *options, KafkaCdcOptions *opts)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	/* Debezium's defaults, and those of Kafka Connect's JSON converter */
	memset(opts, 0, sizeof(*opts));
	opts->schemas = true;
	opts->time_mode = KFDW_TIME_ADAPTIVE;
	opts->decimal_mode = KFDW_DECIMAL_PRECISE;
	opts->binary_mode = KFDW_BINARY_BYTES;
	opts->placeholder = "__debezium_unavailable_value";
	opts->skipped = KFDW_SKIP_TRUNCATE;
	opts->tombstones = true;

	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options of cdc_create must be a JSON object")));

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

		if (strcmp(key, "schemas.enable") == 0)
			opts->schemas = option_bool(key, &v);
		else if (strcmp(key, "time.precision.mode") == 0)
			opts->time_mode = option_choice(key, option_string(key, &v),
										   time_modes);
		else if (strcmp(key, "decimal.handling.mode") == 0)
			opts->decimal_mode = option_choice(key, option_string(key, &v),
											  decimal_modes);
		else if (strcmp(key, "binary.handling.mode") == 0)
			opts->binary_mode = option_choice(key, option_string(key, &v),
											 binary_modes);
		else if (strcmp(key, "interval.handling.mode") == 0)
			opts->interval_string = option_choice(key, option_string(key, &v),
												 interval_modes) == 1;
		else if (strcmp(key, "hstore.handling.mode") == 0)
			opts->hstore_map = option_choice(key, option_string(key, &v),
											hstore_modes) == 1;
		else if (strcmp(key, "unavailable.value.placeholder") == 0)
			opts->placeholder = option_string(key, &v);
		else if (strcmp(key, "skipped.operations") == 0)
			opts->skipped = parse_skipped(option_string(key, &v));
		else if (strcmp(key, "tombstones.on.delete") == 0)
			opts->tombstones = option_bool(key, &v);
		else if (strcmp(key, "message.key.columns") == 0)
		{
			opts->key_columns = option_string(key, &v);
			check_key_columns(opts->key_columns);
		}
		else if (strcmp(key, "provide.transaction.metadata") == 0)
			opts->txn_metadata = option_bool(key, &v);
		else if (strcmp(key, "message.prefix.include.list") == 0)
		{
			opts->message_include = option_string(key, &v);
			check_regex_list(key, opts->message_include);
		}
		else if (strcmp(key, "message.prefix.exclude.list") == 0)
		{
			opts->message_exclude = option_string(key, &v);
			check_regex_list(key, opts->message_exclude);
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\" of cdc_create", key),
					 errhint("Valid options are: %s.", VALID_OPTIONS)));
	}
	if (opts->message_include && opts->message_exclude)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options \"message.prefix.include.list\" and \"message.prefix.exclude.list\" of cdc_create cannot be used together")));
}

/* Is an operation ('c', 'u', 'd', 't') left out of the stream? */
bool
kfdw_cdc_op_skipped(const KafkaCdcOptions *opts, char op)
{
	switch (op)
	{
		case 'c':
			return (opts->skipped & KFDW_SKIP_CREATE) != 0;
		case 'u':
			return (opts->skipped & KFDW_SKIP_UPDATE) != 0;
		case 'd':
			return (opts->skipped & KFDW_SKIP_DELETE) != 0;
		case 't':
			return (opts->skipped & KFDW_SKIP_TRUNCATE) != 0;
	}
	return false;
}

/* Is a logical decoding message of this prefix published? */
bool
kfdw_cdc_message_wanted(const KafkaCdcOptions *opts, const char *prefix)
{
	if (opts->message_include)
		return kfdw_cdc_list_matches(opts->message_include, prefix);
	if (opts->message_exclude)
		return !kfdw_cdc_list_matches(opts->message_exclude, prefix);
	return true;
}

/*
 * Does name match one of the comma-separated regular expressions of list,
 * each matching the whole name (as Java's Pattern.matches())?
 */
bool
kfdw_cdc_list_matches(const char *list, const char *name)
{
	char	   *copy = pstrdup(list);
	char	   *item;
	char	   *save = NULL;
	bool		match = false;

	for (item = strtok_r(copy, ",", &save); item && !match;
		 item = strtok_r(NULL, ",", &save))
	{
		char	   *pattern;

		while (*item == ' ')
			item++;
		if (*item == '\0')
			continue;
		pattern = psprintf("^(?:%s)$", item);
		match = DatumGetBool(DirectFunctionCall2Coll(textregexeq,
													 C_COLLATION_OID,
													 CStringGetTextDatum(name),
													 CStringGetTextDatum(pattern)));
		pfree(pattern);
	}
	pfree(copy);
	return match;
}

static bool
option_bool(const char *key, JsonbValue *v)
{
	if (v->type == jbvBool)
		return v->val.boolean;
	if (v->type == jbvString)
	{
		char	   *s = pnstrdup(v->val.string.val, v->val.string.len);

		if (pg_strcasecmp(s, "true") == 0)
			return true;
		if (pg_strcasecmp(s, "false") == 0)
			return false;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" of cdc_create must be true or false", key)));
	return false;				/* keep compiler quiet */
}

static char *
option_string(const char *key, JsonbValue *v)
{
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" of cdc_create must be a string", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The index of value in choices; an ERROR naming them if it is none */
static int
option_choice(const char *key, const char *value, const char *const *choices)
{
	StringInfoData valid;
	int			i;

	for (i = 0; choices[i]; i++)
		if (strcmp(value, choices[i]) == 0)
			return i;

	initStringInfo(&valid);
	for (i = 0; choices[i]; i++)
		appendStringInfo(&valid, "%s%s", i > 0 ? ", " : "", choices[i]);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value \"%s\" for option \"%s\" of cdc_create",
					value, key),
			 errhint("Valid values are: %s.", valid.data)));
	return 0;					/* keep compiler quiet */
}

/* skipped.operations: "none", or a comma-separated list of c, u, d, t */
static int
parse_skipped(const char *value)
{
	char	   *copy = pstrdup(value);
	char	   *item;
	char	   *save = NULL;
	int			skipped = 0;

	if (strcmp(value, "none") == 0)
		return 0;
	for (item = strtok_r(copy, ",", &save); item;
		 item = strtok_r(NULL, ",", &save))
	{
		while (*item == ' ')
			item++;
		if (strcmp(item, "c") == 0)
			skipped |= KFDW_SKIP_CREATE;
		else if (strcmp(item, "u") == 0)
			skipped |= KFDW_SKIP_UPDATE;
		else if (strcmp(item, "d") == 0)
			skipped |= KFDW_SKIP_DELETE;
		else if (strcmp(item, "t") == 0)
			skipped |= KFDW_SKIP_TRUNCATE;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value \"%s\" for option \"skipped.operations\" of cdc_create",
							value),
					 errhint("Give \"none\" or a comma-separated list of the operations c, u, d and t.")));
	}
	return skipped;
}

/*
 * message.key.columns: "<table>:<column>,<column>;<table>:..." where
 * <table> is a regular expression over "schema.table".
 */
static void
check_key_columns(const char *value)
{
	char	   *copy = pstrdup(value);
	char	   *item;
	char	   *save = NULL;

	for (item = strtok_r(copy, ";", &save); item;
		 item = strtok_r(NULL, ";", &save))
	{
		char	   *colon = strrchr(item, ':');

		if (colon == NULL || colon == item || colon[1] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value \"%s\" for option \"message.key.columns\" of cdc_create",
							value),
					 errhint("Give \"<schema>.<table>:<column>,...\" entries separated by \";\"; the table is a regular expression.")));
		*colon = '\0';
		check_regex_list("message.key.columns", item);
	}
}

/* Compile every regular expression of a list, for its error now */
static void
check_regex_list(const char *key, const char *value)
{
	(void) key;
	(void) kfdw_cdc_list_matches(value, "");
}
