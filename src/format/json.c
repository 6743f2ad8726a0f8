/*-------------------------------------------------------------------------
 *
 * json.c
 *		  Messages in JSON format: an object whose top-level keys are columns
 *
 * Decoding: a message value is a JSON object; each data column takes the
 * top-level key of its name (or of its column option json).  The value is
 * parsed once, with PostgreSQL's own JSON parser and semantic actions that
 * only note where each wanted value starts and ends, so no intermediate
 * tree is built.  Scalars then go through the column type's input
 * function; nested objects and arrays are passed as JSON text to json and
 * jsonb columns (and to text ones), and are turned into array or composite
 * literals (json_literal.c) for array and composite columns.  A JSON string
 * read into bytea is base64, as the encoder writes it.
 *
 * Encoding: an object of the data columns, each value as json_encode.c
 * writes it.
 *
 * IDENTIFICATION
 *		  src/format/json.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"

/* What the parse found for one data column */
typedef struct JsonFound
{
	bool		present;
	JsonTokenType type;			/* of a scalar, or OBJECT_START/ARRAY_START */
	char	   *start;			/* JSON text of an object or array */
	int			len;
	char	   *str;			/* a scalar: de-escaped string, or lexeme */
} JsonFound;

typedef struct JsonDecodeState
{
	KafkaDecoder *dec;
	JsonLexContext *lex;
	int			depth;
	bool		top_is_object;
	int			target;			/* data_index of the current key, or -1 */
	char	   *nested_start;
	JsonFound  *found;			/* by data_index */
	char	   *unknown_key;	/* strict: first key no column takes */
} JsonDecodeState;

static KFDW_JSON_ACTION json_object_start(void *state);
static KFDW_JSON_ACTION json_object_end(void *state);
static KFDW_JSON_ACTION json_array_start(void *state);
static KFDW_JSON_ACTION json_array_end(void *state);
static KFDW_JSON_ACTION json_field_start(void *state, char *fname, bool isnull);
static KFDW_JSON_ACTION json_scalar(void *state, char *token, JsonTokenType tokentype);
static bool parse_message(KafkaDecoder *dec, JsonLexContext *lex,
						  JsonSemAction *sem, JsonParseErrorType *res);
static void nested_start(JsonDecodeState *st, JsonTokenType type);
static void nested_end(JsonDecodeState *st, JsonTokenType type);
static void json_decode(KafkaDecoder *dec, const char *data, int len);
static void json_begin_encode(KafkaEncoder *enc);
static void json_encode(KafkaEncoder *enc, TupleTableSlot *slot,
						StringInfo buf);

/*
 * Decode a JSON message value into the data columns.
 */
static void
json_decode(KafkaDecoder *dec, const char *data, int len)
{
	KafkaTableOptions *opts = dec->opts;
	JsonDecodeState st;
	JsonSemAction sem;
	JsonParseErrorType res;
	int			i;

	/* the parser recurses once per level: bound the levels first */
	if (!kfdw_decoder_check_text(dec, NULL, data, len) ||
		!kfdw_decoder_check_depth(dec, NULL, data, len))
		return;

	memset(&st, 0, sizeof(st));
	st.dec = dec;
	st.target = -1;
	st.found = palloc0(sizeof(JsonFound) * Max(opts->ndata, 1));
	st.lex = KFDW_MAKE_JSON_LEX((char *) data, len, true);

	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = json_object_start;
	sem.object_end = json_object_end;
	sem.array_start = json_array_start;
	sem.array_end = json_array_end;
	sem.object_field_start = json_field_start;
	sem.scalar = json_scalar;

	if (!parse_message(dec, st.lex, &sem, &res))
		return;					/* junk already */
	if (res != JSON_SUCCESS)
	{
		kfdw_decoder_fail(dec, NULL,
						  psprintf("invalid JSON: %s",
								   json_errdetail(res, st.lex)));
		return;
	}
	if (!st.top_is_object)
	{
		kfdw_decoder_fail(dec, NULL, "message value is not a JSON object");
		return;
	}
	if (st.unknown_key)
	{
		kfdw_decoder_fail(dec, NULL,
						  psprintf("JSON key \"%s\" matches no column",
								   st.unknown_key));
		return;
	}

	for (i = 0; i < opts->ndata; i++)
	{
		KafkaColumnDecoder *cd = dec->data[i];
		JsonFound  *f = &st.found[i];

		if (!cd->needed || !f->present || f->type == JSON_TOKEN_NULL)
			continue;			/* stays NULL */

		if (f->type == JSON_TOKEN_OBJECT_START ||
			f->type == JSON_TOKEN_ARRAY_START)
			kfdw_decoder_set(dec, cd, pnstrdup(f->start, f->len), true);
		else if (f->type == JSON_TOKEN_STRING &&
				 (cd->category == KAFKA_VALUE_JSON ||
				  cd->category == KAFKA_VALUE_JSONB))
		{
			/* a JSON string into a json column: quoted again */
			StringInfoData buf;

			initStringInfo(&buf);
			escape_json(&buf, f->str);
			kfdw_decoder_set(dec, cd, buf.data, false);
		}
		else if (f->type == JSON_TOKEN_STRING &&
				 cd->category == KAFKA_VALUE_BYTEA)
		{
			/* bytea travels in JSON as base64 */
			char	   *lit = kfdw_bytea_literal(f->str, strlen(f->str));

			if (lit == NULL)
				kfdw_decoder_fail(dec, cd, "invalid base64 data for type bytea");
			else
				kfdw_decoder_set(dec, cd, lit, false);
		}
		else
			kfdw_decoder_set(dec, cd, f->str, false);
	}
}

/*
 * pg_parse_json(), with the stack depth limit (which a message within
 * KFDW_JSON_MAX_DEPTH can still reach when max_stack_depth is low) making
 * the message junk: returns false then, else true with the parser's result
 * in *res.  Nothing is held while the parser runs, so the error is caught
 * as it is.
 */
static bool
parse_message(KafkaDecoder *dec, JsonLexContext *lex, JsonSemAction *sem,
			  JsonParseErrorType *res)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *reason = NULL;

	PG_TRY();
	{
		*res = pg_parse_json(lex, sem);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_STATEMENT_TOO_COMPLEX)
			PG_RE_THROW();
		FlushErrorState();
		reason = edata->message;
	}
	PG_END_TRY();

	if (reason != NULL)
	{
		kfdw_decoder_fail(dec, NULL, reason);
		return false;
	}
	return true;
}

static KFDW_JSON_ACTION
json_object_start(void *state)
{
	JsonDecodeState *st = (JsonDecodeState *) state;

	if (st->depth == 0)
		st->top_is_object = true;
	else
		nested_start(st, JSON_TOKEN_OBJECT_START);
	st->depth++;
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
json_object_end(void *state)
{
	JsonDecodeState *st = (JsonDecodeState *) state;

	st->depth--;
	nested_end(st, JSON_TOKEN_OBJECT_START);
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
json_array_start(void *state)
{
	JsonDecodeState *st = (JsonDecodeState *) state;

	nested_start(st, JSON_TOKEN_ARRAY_START);
	st->depth++;
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
json_array_end(void *state)
{
	JsonDecodeState *st = (JsonDecodeState *) state;

	st->depth--;
	nested_end(st, JSON_TOKEN_ARRAY_START);
	KFDW_JSON_ACTION_DONE;
}

/* An object or array begins: remember where, if it is a column's value */
static void
nested_start(JsonDecodeState *st, JsonTokenType type)
{
	if (st->depth == 1 && st->target >= 0)
		st->nested_start = st->lex->token_start;
}

/* An object or array ends: the text from its start is a column's value */
static void
nested_end(JsonDecodeState *st, JsonTokenType type)
{
	if (st->depth == 1 && st->target >= 0)
	{
		JsonFound  *f = &st->found[st->target];

		f->present = true;
		f->type = type;
		f->start = st->nested_start;
		f->len = st->lex->prev_token_terminator - st->nested_start;
		f->str = NULL;
	}
}

/* A top-level key: find the data column that takes it */
static KFDW_JSON_ACTION
json_field_start(void *state, char *fname, bool isnull)
{
	JsonDecodeState *st = (JsonDecodeState *) state;
	KafkaDecoder *dec = st->dec;
	int			i;

	if (st->depth != 1)
		KFDW_JSON_ACTION_DONE;

	st->target = -1;
	for (i = 0; i < dec->opts->ndata; i++)
	{
		if (strcmp(dec->data[i]->col->json_name, fname) == 0)
		{
			st->target = i;
			break;
		}
	}
	if (st->target < 0 && dec->opts->strict && st->unknown_key == NULL)
		st->unknown_key = fname;
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
json_scalar(void *state, char *token, JsonTokenType tokentype)
{
	JsonDecodeState *st = (JsonDecodeState *) state;

	if (st->depth == 1 && st->target >= 0)
	{
		JsonFound  *f = &st->found[st->target];

		/* the parser has already moved past the token: keep its copy */
		f->present = true;
		f->type = tokentype;
		f->start = NULL;
		f->len = 0;
		f->str = token;
	}
	KFDW_JSON_ACTION_DONE;
}

/*
 * The JSON member name of each data column, with the comma before every
 * member but the first: written once, copied into every message.
 */
static void
json_begin_encode(KafkaEncoder *enc)
{
	KafkaTableOptions *opts = enc->opts;
	char	  **prefixes = palloc0(sizeof(char *) * Max(opts->ndata, 1));
	int			d;

	for (d = 0; d < opts->ndata; d++)
	{
		KafkaColumn *col = &opts->columns[enc->data_attnums[d] - 1];
		StringInfoData prefix;

		initStringInfo(&prefix);
		if (d > 0)
			appendStringInfoChar(&prefix, ',');
		kfdw_json_append_string(&prefix, col->json_name);
		appendStringInfoChar(&prefix, ':');
		prefixes[d] = prefix.data;
	}
	enc->format_state = prefixes;
}

/*
 * An object of the data columns, in their order.
 */
static void
json_encode(KafkaEncoder *enc, TupleTableSlot *slot, StringInfo buf)
{
	KafkaTableOptions *opts = enc->opts;
	char	  **prefixes = (char **) enc->format_state;
	int			d;

	appendStringInfoCharMacro(buf, '{');
	for (d = 0; d < opts->ndata; d++)
	{
		int			i = enc->data_attnums[d] - 1;

		appendStringInfoString(buf, prefixes[d]);
		kfdw_json_append_datum(buf, slot->tts_values[i],
							   slot->tts_isnull[i], opts->columns[i].typid);
	}
	appendStringInfoCharMacro(buf, '}');
}

/* The format, for kfdw_formats (format.c) */
const KafkaFormatRoutine kfdw_json_format = {
	.name = "json",
	.decode = json_decode,
	.begin_encode = json_begin_encode,
	.encode = json_encode
};
