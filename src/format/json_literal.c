/*-------------------------------------------------------------------------
 *
 * json_literal.c
 *		  JSON values as literals of array, composite and bytea columns
 *
 * A JSON array or object read into an array or composite column (from a
 * JSON message, or a CSV field, raw value or key holding JSON) is turned
 * here into the text literal of the column's type, for its input function;
 * a JSON string read into bytea is base64, as INSERT's JSON encoder writes
 * it.  The depth check bounds the nesting of any JSON text before a
 * recursive parser sees it.
 *
 * These serve the decoder core (decoder.c) and the JSON format (json.c);
 * they call neither.
 *
 * IDENTIFICATION
 *		  src/format/json_literal.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

static bool array_literal_fast(const char *json, Oid elemtype,
							   StringInfo out);
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
char *
kfdw_bytea_literal(const char *b64, int len)
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
 * As kfdw_bytea_literal(), for a value inside an array or composite: invalid
 * base64 is a data exception, which the junk handling of
 * kfdw_decoder_set() catches when the table tolerates junk.
 */
static char *
bytea_literal_or_error(const char *b64, int len)
{
	char	   *lit = kfdw_bytea_literal(b64, len);

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
