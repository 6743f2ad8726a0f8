/*-------------------------------------------------------------------------
 *
 * json.c
 *		  Decoding of messages in JSON format: top-level keys to columns
 *
 * A message value is a JSON object; each data column takes the top-level
 * key of its name (or of its column option json).  The value is parsed
 * once, with PostgreSQL's own JSON parser and semantic actions that only
 * note where each wanted value starts and ends, so no intermediate tree
 * is built.  Scalars then go through the column type's input function;
 * nested objects and arrays are passed as JSON text to json and jsonb
 * columns (and to text ones), and are turned into array or composite
 * literals for array and composite columns.  A JSON string read into
 * bytea (a column, an array element or a composite field) is base64, as
 * the JSON encoder of INSERT writes it.
 *
 * IDENTIFICATION
 *		  src/format/json.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "common/base64.h"
#include "common/jsonapi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

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
static bool array_literal_fast(const char *json, Oid elemtype,
							   StringInfo out);
static char *bytea_literal(const char *b64, int len);
static char *bytea_literal_or_error(const char *b64, int len);
static KFDW_JSON_ACTION lit_array_start(void *state);
static KFDW_JSON_ACTION lit_array_end(void *state);
static KFDW_JSON_ACTION lit_element_start(void *state, bool isnull);
static KFDW_JSON_ACTION lit_object_start(void *state);
static KFDW_JSON_ACTION lit_scalar(void *state, char *token, JsonTokenType tokentype);
static void append_literal(StringInfo buf, JsonbValue *v, Oid typid);
static void append_quoted(StringInfo buf, const char *str);
static char *scalar_text(JsonbValue *v);

/*
 * Decode a JSON message value into the data columns.
 */
void
kfdw_decode_json(KafkaDecoder *dec, char *data, int len)
{
	KafkaTableOptions *opts = dec->opts;
	JsonDecodeState st;
	JsonSemAction sem;
	JsonParseErrorType res;
	int			i;

	if (!pg_verify_mbstr(GetDatabaseEncoding(), data, len, true))
	{
		kfdw_decoder_fail(dec, NULL,
						  psprintf("invalid byte sequence for encoding \"%s\"",
								   GetDatabaseEncodingName()));
		return;
	}

	/* the parser recurses once per level: bound the levels first */
	if (!kfdw_json_depth_ok(data, len))
	{
		kfdw_decoder_fail(dec, NULL,
						  psprintf("JSON value nested more than %d levels deep",
								   KFDW_JSON_MAX_DEPTH));
		return;
	}

	memset(&st, 0, sizeof(st));
	st.dec = dec;
	st.target = -1;
	st.found = palloc0(sizeof(JsonFound) * Max(opts->ndata, 1));
	st.lex = KFDW_MAKE_JSON_LEX(data, len, true);

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
				 (cd->category == 'j' || cd->category == 'b'))
		{
			/* a JSON string into a json column: quoted again */
			StringInfoData buf;

			initStringInfo(&buf);
			escape_json(&buf, f->str);
			kfdw_decoder_set(dec, cd, buf.data, false);
		}
		else if (f->type == JSON_TOKEN_STRING && cd->category == 'x')
		{
			/* bytea travels in JSON as base64 */
			char	   *lit = bytea_literal(f->str, strlen(f->str));

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
 * Whether the JSON text nests arrays and objects at most KFDW_JSON_MAX_DEPTH
 * levels deep.  A loop that skips strings as the JSON lexer does, so that
 * the levels it counts are the ones the parser would recurse into, up to
 * the first error the parser would report; text that is not JSON passes,
 * for the parser to reject.
 */
bool
kfdw_json_depth_ok(const char *data, int len)
{
	const char *p = data;
	const char *end = data + len;
	int			depth = 0;

	while (p < end)
	{
		switch (*p++)
		{
			case '[':
			case '{':
				if (++depth > KFDW_JSON_MAX_DEPTH)
					return false;
				break;
			case ']':
			case '}':
				if (depth > 0)
					depth--;
				break;
			case '"':
				/* a string: up to the next quote not escaped */
				while (p < end && *p != '"')
				{
					if (*p == '\\')
						p++;
					p++;
				}
				p++;
				break;
			default:
				break;
		}
	}
	return true;
}

/*
 * Turn a JSON array or object into the text literal of an array or
 * composite type, so that the type's input function can read it: arrays
 * of JSON arrays become multi-dimensional arrays, objects fill composite
 * fields by name (missing ones are NULL).
 */
char *
kfdw_json_to_literal(const char *json, Oid typid)
{
	Jsonb	   *jb;
	JsonbValue	v;
	StringInfoData buf;
	Oid			basetype = getBaseType(typid);
	Oid			elemtype = get_element_type(basetype);

	/* arrays of scalars, the common case, without a jsonb detour */
	if (OidIsValid(elemtype) && json[0] == '[')
	{
		Oid			elembase = getBaseType(elemtype);

		if (elembase != JSONOID && elembase != JSONBOID &&
			!type_is_rowtype(elembase))
		{
			initStringInfo(&buf);
			if (array_literal_fast(json, elemtype, &buf))
				return buf.data;
			pfree(buf.data);
		}
	}

	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));

	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;

	initStringInfo(&buf);
	append_literal(&buf, &v, typid);
	return buf.data;
}

/* State of array_literal_fast() */
typedef struct LiteralState
{
	StringInfo	out;
	bool		bytea_elems;	/* elements are bytea: strings are base64 */
	bool		first;			/* no element yet in the current array */
	bool		failed;			/* found an object: not for the fast path */
} LiteralState;

/*
 * Write the array literal of a JSON array of scalars (or of arrays of
 * them).  Returns false if the JSON holds an object, or does not parse.
 */
static bool
array_literal_fast(const char *json, Oid elemtype, StringInfo out)
{
	LiteralState ls;
	JsonSemAction sem;
	JsonLexContext *lex;

	ls.out = out;
	ls.bytea_elems = (getBaseType(elemtype) == BYTEAOID);
	ls.first = true;
	ls.failed = false;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &ls;
	sem.array_start = lit_array_start;
	sem.array_end = lit_array_end;
	sem.array_element_start = lit_element_start;
	sem.object_start = lit_object_start;
	sem.scalar = lit_scalar;
	lex = KFDW_MAKE_JSON_LEX((char *) json, strlen(json), true);
	return pg_parse_json(lex, &sem) == JSON_SUCCESS && !ls.failed;
}

static KFDW_JSON_ACTION
lit_array_start(void *state)
{
	LiteralState *ls = (LiteralState *) state;

	appendStringInfoChar(ls->out, '{');
	ls->first = true;
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
lit_array_end(void *state)
{
	LiteralState *ls = (LiteralState *) state;

	appendStringInfoChar(ls->out, '}');
	ls->first = false;
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
lit_element_start(void *state, bool isnull)
{
	LiteralState *ls = (LiteralState *) state;

	if (!ls->first)
		appendStringInfoChar(ls->out, ',');
	ls->first = false;
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
lit_object_start(void *state)
{
	((LiteralState *) state)->failed = true;
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
lit_scalar(void *state, char *token, JsonTokenType tokentype)
{
	LiteralState *ls = (LiteralState *) state;

	if (tokentype == JSON_TOKEN_NULL)
		appendStringInfoString(ls->out, "NULL");
	else if (tokentype == JSON_TOKEN_STRING && ls->bytea_elems)
		append_quoted(ls->out, bytea_literal_or_error(token, strlen(token)));
	else
		append_quoted(ls->out, token);
	KFDW_JSON_ACTION_DONE;
}

/* Append the literal of v as a value of type typid (unquoted) */
static void
append_literal(StringInfo buf, JsonbValue *v, Oid typid)
{
	Oid			basetype = getBaseType(typid);
	Oid			elemtype = get_element_type(basetype);
	JsonbContainer *jc;

	check_stack_depth();		/* recurses once per level of v */

	if (v->type == jbvString && basetype == BYTEAOID)
	{
		appendStringInfoString(buf,
							   bytea_literal_or_error(v->val.string.val,
													  v->val.string.len));
		return;
	}
	if (v->type != jbvBinary)
	{
		char	   *s = scalar_text(v);

		appendStringInfoString(buf, s ? s : "");
		return;
	}

	jc = v->val.binary.data;
	if (JsonContainerIsArray(jc) && !JsonContainerIsScalar(jc) &&
		OidIsValid(elemtype))
	{
		int			n = JsonContainerSize(jc);
		int			i;

		appendStringInfoChar(buf, '{');
		for (i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(jc, i);

			if (i > 0)
				appendStringInfoChar(buf, ',');
			if (e->type == jbvNull)
				appendStringInfoString(buf, "NULL");
			else if (e->type == jbvBinary &&
					 JsonContainerIsArray(e->val.binary.data))
				append_literal(buf, e, basetype);	/* next dimension */
			else
			{
				StringInfoData elem;

				initStringInfo(&elem);
				append_literal(&elem, e, elemtype);
				append_quoted(buf, elem.data);
			}
		}
		appendStringInfoChar(buf, '}');
		return;
	}

	if (JsonContainerIsObject(jc) && type_is_rowtype(basetype))
	{
		/*
		 * A copy, not a reference: a field's input can fail with an error
		 * that the junk handling swallows, which would leak a reference.
		 */
		TupleDesc	tupdesc = lookup_rowtype_tupdesc_copy(basetype, -1);
		bool		first = true;
		int			i;

		appendStringInfoChar(buf, '(');
		for (i = 0; i < tupdesc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, i);
			const char *name = NameStr(att->attname);
			JsonbValue *e;

			if (att->attisdropped)
				continue;
			if (!first)
				appendStringInfoChar(buf, ',');
			first = false;
			e = getKeyJsonValueFromContainer(jc, name, strlen(name), NULL);
			if (e != NULL && e->type != jbvNull)
			{
				StringInfoData field;

				initStringInfo(&field);
				append_literal(&field, e, att->atttypid);
				append_quoted(buf, field.data);
			}
		}
		appendStringInfoChar(buf, ')');
		FreeTupleDesc(tupdesc);
		return;
	}

	/* anything else is given as JSON text */
	(void) JsonbToCString(buf, jc, v->val.binary.len);
}

/* Append str double-quoted, as array and record literals want it */
static void
append_quoted(StringInfo buf, const char *str)
{
	appendStringInfoChar(buf, '"');
	for (; *str; str++)
	{
		if (*str == '"' || *str == '\\')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, *str);
	}
	appendStringInfoChar(buf, '"');
}

/*
 * The bytea literal (hex format) of the bytes that base64 text encodes, or
 * NULL if the text is not valid base64.
 */
static char *
bytea_literal(const char *b64, int len)
{
	int			maxlen = pg_b64_dec_len(len);
	char	   *bytes = palloc(maxlen + 1);
	char	   *lit;
	int			n;

	n = pg_b64_decode(b64, len, bytes, maxlen);
	if (n < 0)
	{
		pfree(bytes);
		return NULL;
	}
	lit = palloc(2 * n + 3);
	lit[0] = '\\';
	lit[1] = 'x';
	lit[2 + hex_encode(bytes, n, lit + 2)] = '\0';
	pfree(bytes);
	return lit;
}

/*
 * As bytea_literal(), for a value inside an array or composite: invalid
 * base64 is a data exception, which the junk handling of
 * kfdw_decoder_set() catches when the table tolerates junk.
 */
static char *
bytea_literal_or_error(const char *b64, int len)
{
	char	   *lit = bytea_literal(b64, len);

	if (lit == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid base64 data for type bytea")));
	return lit;
}

/* The text of a JSON scalar as an input function wants it, NULL for null */
static char *
scalar_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return v->val.boolean ? "true" : "false";
		default:
			return NULL;
	}
}
