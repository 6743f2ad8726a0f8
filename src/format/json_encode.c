/*-------------------------------------------------------------------------
 *
 * json_encode.c
 *		  Encode PostgreSQL values as JSON, for INSERT and for CDC events
 *
 * Values become the JSON that users of other Kafka clients expect: numbers
 * unquoted with every digit (NaN and infinities as strings), booleans, null,
 * json and jsonb embedded as JSON, arrays as (nested) JSON arrays, composite
 * values as objects, domains as their base type, dates and times as ISO 8601
 * text, bytea as base64, and everything else as the JSON string of its
 * output function.
 *
 * What is needed to encode a type is looked up once per backend and kept in
 * a small hash table; the common types are encoded straight into the output
 * buffer without allocating.
 *
 * Output functions depend on the session's DateStyle, IntervalStyle and
 * extra_float_digits, and a message must read back the same in any other
 * session: every encoder (this one, and the CSV and raw ones of INSERT)
 * runs with these fixed as pg_dump fixes them, see
 * kfdw_set_encoding_gucs().
 *
 * IDENTIFICATION
 *		  src/format/json_encode.c
 *
 *-------------------------------------------------------------------------
 */
#include "format/format.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

/* How a type is encoded */
typedef enum JsonEncodeCategory
{
	JE_BOOL,
	JE_INT2,
	JE_INT4,
	JE_INT8,
	JE_OID,
	JE_FLOAT4,
	JE_FLOAT8,
	JE_NUMERIC,
	JE_TEXT,					/* text, varchar, bpchar: escaped directly */
	JE_NAME,
	JE_JSON,
	JE_JSONB,
	JE_BYTEA,
	JE_DATETIME,				/* date, time, timetz, timestamp, timestamptz */
	JE_ARRAY,
	JE_COMPOSITE,
	JE_OTHER					/* output function, as a JSON string */
} JsonEncodeCategory;

/* What the encoder knows of a type; never removed, only marked invalid */
typedef struct JsonTypeEntry
{
	Oid			typid;			/* hash key */
	bool		valid;
	JsonEncodeCategory category;
	Oid			basetypid;		/* typid, or a domain's base type */
	/* arrays: the element type */
	Oid			elemtypid;
	int16		elemlen;
	bool		elembyval;
	char		elemalign;
	/* JE_OTHER: the output function */
	FmgrInfo	outfunc;
} JsonTypeEntry;

static HTAB *json_type_cache = NULL;
static MemoryContext json_encode_context = NULL;
static JsonTypeEntry *last_entry = NULL;	/* the one looked up last */

static JsonTypeEntry *get_type_entry(Oid typid);
static void fill_type_entry(JsonTypeEntry *entry);
static void type_cache_invalidate(Datum arg, int cacheid, uint32 hashvalue);
static void append_value(StringInfo buf, Datum value, JsonTypeEntry *entry);
static void append_escaped(StringInfo buf, const char *str, int len);
static void append_array(StringInfo buf, Datum value, JsonTypeEntry *entry);
static void append_array_dim(StringInfo buf, int dim, int ndim,
							 const int *dims, array_iter *iter, int *index,
							 JsonTypeEntry *entry, JsonTypeEntry *elem);
static void append_composite(StringInfo buf, Datum value);
static void append_number_text(StringInfo buf, const char *str);

/*
 * Fix the settings output functions depend on, until
 * kfdw_reset_encoding_gucs() with the returned nest level (or the end of
 * the (sub)transaction, on ERROR): ISO dates, intervals in the postgres
 * style and floats with every digit, as pg_dump writes them, whatever the
 * session's settings.  Only values that differ are set, and a session whose
 * settings already fit pays only three comparisons (no GUC nest level,
 * whose undo walks every setting): it runs once per row where PostgreSQL
 * inserts rows one at a time (COPY, RETURNING, row triggers).
 */
int
kfdw_set_encoding_gucs(void)
{
	int			nestlevel;

	/* the common case: nothing to fix, and nothing to undo per row */
	if (DateStyle == USE_ISO_DATES && IntervalStyle == INTSTYLE_POSTGRES &&
		extra_float_digits >= 3)
		return 0;

	nestlevel = NewGUCNestLevel();
	if (DateStyle != USE_ISO_DATES)
		(void) set_config_option("datestyle", "ISO",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (IntervalStyle != INTSTYLE_POSTGRES)
		(void) set_config_option("intervalstyle", "postgres",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	/* any positive value gives the shortest text that reads back exactly */
	if (extra_float_digits < 3)
		(void) set_config_option("extra_float_digits", "3",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/* Undo kfdw_set_encoding_gucs() (0: it had nothing to fix) */
void
kfdw_reset_encoding_gucs(int nestlevel)
{
	if (nestlevel > 0)
		AtEOXact_GUC(true, nestlevel);
}

/*
 * The same settings as the session's own, for a process that only encodes
 * (a CDC worker): set once, at its start.
 */
void
kfdw_set_encoding_session_gucs(void)
{
	SetConfigOption("datestyle", "ISO", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("intervalstyle", "postgres", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("extra_float_digits", "3", PGC_SUSET, PGC_S_SESSION);
}

/*
 * Append the JSON encoding of a value of type typid to buf.
 */
void
kfdw_json_append_datum(StringInfo buf, Datum value, bool isnull, Oid typid)
{
	if (isnull)
	{
		appendBinaryStringInfo(buf, "null", 4);
		return;
	}
	append_value(buf, value, get_type_entry(typid));
}

/*
 * Append str as a JSON string (quoted and escaped) to buf.
 */
void
kfdw_json_append_string(StringInfo buf, const char *str)
{
	append_escaped(buf, str, strlen(str));
}

/*
 * The cache entry of a type, filled in if new or invalidated.  Entries stay
 * at the same address for the life of the backend, so callers may hold one
 * while encoding nested values.
 */
static JsonTypeEntry *
get_type_entry(Oid typid)
{
	JsonTypeEntry *entry;
	bool		found;

	/* consecutive values are often of one type: skip the hash then */
	if (last_entry != NULL && last_entry->typid == typid && last_entry->valid)
		return last_entry;

	if (json_type_cache == NULL)
	{
		HASHCTL		ctl;

		json_encode_context = AllocSetContextCreate(CacheMemoryContext,
													"kafka_fdw JSON encoder",
													ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(JsonTypeEntry);
		ctl.hcxt = json_encode_context;
		json_type_cache = hash_create("kafka_fdw JSON types", 64, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterSyscacheCallback(TYPEOID, type_cache_invalidate,
									  (Datum) 0);
	}

	entry = (JsonTypeEntry *) hash_search(json_type_cache, &typid,
										  HASH_ENTER, &found);
	if (!found)
		entry->valid = false;
	if (!entry->valid)
		fill_type_entry(entry);
	last_entry = entry;
	return entry;
}

/*
 * A type changed (ALTER TYPE, DROP TYPE): look every type up again at its
 * next use.  Entries are only marked, never freed, because one may be in
 * use by an encoding in progress.
 */
static void
type_cache_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS status;
	JsonTypeEntry *entry;

	if (json_type_cache == NULL)
		return;
	hash_seq_init(&status, json_type_cache);
	while ((entry = (JsonTypeEntry *) hash_seq_search(&status)) != NULL)
		entry->valid = false;
}

static void
fill_type_entry(JsonTypeEntry *entry)
{
	Oid			basetypid = getBaseType(entry->typid);
	Oid			elemtypid;

	entry->basetypid = basetypid;
	entry->elemtypid = InvalidOid;

	switch (basetypid)
	{
		case BOOLOID:
			entry->category = JE_BOOL;
			break;
		case INT2OID:
			entry->category = JE_INT2;
			break;
		case INT4OID:
			entry->category = JE_INT4;
			break;
		case INT8OID:
			entry->category = JE_INT8;
			break;
		case OIDOID:
			entry->category = JE_OID;
			break;
		case FLOAT4OID:
			entry->category = JE_FLOAT4;
			break;
		case FLOAT8OID:
			entry->category = JE_FLOAT8;
			break;
		case NUMERICOID:
			entry->category = JE_NUMERIC;
			break;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			entry->category = JE_TEXT;
			break;
		case NAMEOID:
			entry->category = JE_NAME;
			break;
		case JSONOID:
			entry->category = JE_JSON;
			break;
		case JSONBOID:
			entry->category = JE_JSONB;
			break;
		case BYTEAOID:
			entry->category = JE_BYTEA;
			break;
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			entry->category = JE_DATETIME;
			break;
		default:
			elemtypid = get_element_type(basetypid);
			if (OidIsValid(elemtypid) && type_is_array(basetypid))
			{
				entry->category = JE_ARRAY;
				entry->elemtypid = elemtypid;
				get_typlenbyvalalign(elemtypid, &entry->elemlen,
									 &entry->elembyval, &entry->elemalign);
			}
			else if (type_is_rowtype(basetypid))
				entry->category = JE_COMPOSITE;
			else
			{
				Oid			outfuncoid;
				bool		isvarlena;

				entry->category = JE_OTHER;
				getTypeOutputInfo(basetypid, &outfuncoid, &isvarlena);
				fmgr_info_cxt(outfuncoid, &entry->outfunc,
							  json_encode_context);
			}
			break;
	}
	entry->valid = true;
}

/*
 * Append a non-null value described by entry.
 */
static void
append_value(StringInfo buf, Datum value, JsonTypeEntry *entry)
{
	char		numbuf[64];
	int			len;

	switch (entry->category)
	{
		case JE_BOOL:
			if (DatumGetBool(value))
				appendBinaryStringInfo(buf, "true", 4);
			else
				appendBinaryStringInfo(buf, "false", 5);
			break;
		case JE_INT2:
			len = pg_ltoa((int32) DatumGetInt16(value), numbuf);
			appendBinaryStringInfo(buf, numbuf, len);
			break;
		case JE_INT4:
			len = pg_ltoa(DatumGetInt32(value), numbuf);
			appendBinaryStringInfo(buf, numbuf, len);
			break;
		case JE_INT8:
			len = pg_lltoa(DatumGetInt64(value), numbuf);
			appendBinaryStringInfo(buf, numbuf, len);
			break;
		case JE_OID:
			len = pg_ultoa_n(DatumGetObjectId(value), numbuf);
			appendBinaryStringInfo(buf, numbuf, len);
			break;
		case JE_FLOAT4:
			{
				float4		f = DatumGetFloat4(value);

				/* the shortest text that reads back as the same value */
				len = float_to_shortest_decimal_bufn(f, numbuf);
				if (isnan(f) || isinf(f))
					append_escaped(buf, numbuf, len);
				else
					appendBinaryStringInfo(buf, numbuf, len);
			}
			break;
		case JE_FLOAT8:
			{
				float8		f = DatumGetFloat8(value);

				len = double_to_shortest_decimal_bufn(f, numbuf);
				if (isnan(f) || isinf(f))
					append_escaped(buf, numbuf, len);
				else
					appendBinaryStringInfo(buf, numbuf, len);
			}
			break;
		case JE_NUMERIC:
			{
				char	   *str = DatumGetCString(DirectFunctionCall1(numeric_out,
																	  value));

				append_number_text(buf, str);
				pfree(str);
			}
			break;
		case JE_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				append_escaped(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				if ((Pointer) t != DatumGetPointer(value))
					pfree(t);
			}
			break;
		case JE_NAME:
			kfdw_json_append_string(buf, NameStr(*DatumGetName(value)));
			break;
		case JE_JSON:
			{
				text	   *t = DatumGetTextPP(value);

				/* json is valid JSON text already: embed it as it is */
				appendBinaryStringInfo(buf, VARDATA_ANY(t),
									   VARSIZE_ANY_EXHDR(t));
				if ((Pointer) t != DatumGetPointer(value))
					pfree(t);
			}
			break;
		case JE_JSONB:
			{
				Jsonb	   *jb = DatumGetJsonbP(value);

				(void) JsonbToCString(buf, &jb->root, VARSIZE(jb));
				if ((Pointer) jb != DatumGetPointer(value))
					pfree(jb);
			}
			break;
		case JE_BYTEA:
			{
				bytea	   *b = DatumGetByteaPP(value);
				int			srclen = VARSIZE_ANY_EXHDR(b);
				int			dstlen = pg_b64_enc_len(srclen);
				int			written;

				enlargeStringInfo(buf, dstlen + 2);
				buf->data[buf->len++] = '"';
				written = pg_b64_encode(VARDATA_ANY(b), srclen,
										buf->data + buf->len, dstlen);
				if (written < 0)
					ereport(ERROR,
							(errcode(ERRCODE_INTERNAL_ERROR),
							 errmsg("could not encode a bytea value as base64")));
				buf->len += written;
				buf->data[buf->len++] = '"';
				buf->data[buf->len] = '\0';
				if ((Pointer) b != DatumGetPointer(value))
					pfree(b);
			}
			break;
		case JE_DATETIME:
			{
				char		dtbuf[MAXDATELEN + 1];

				JsonEncodeDateTime(dtbuf, value, entry->basetypid, NULL);
				kfdw_json_append_string(buf, dtbuf);
			}
			break;
		case JE_ARRAY:
			append_array(buf, value, entry);
			break;
		case JE_COMPOSITE:
			append_composite(buf, value);
			break;
		case JE_OTHER:
			{
				char	   *str = OutputFunctionCall(&entry->outfunc, value);

				kfdw_json_append_string(buf, str);
				pfree(str);
			}
			break;
	}
}

/*
 * Append a number's text unquoted, or quoted when it is NaN or an infinity,
 * which JSON numbers cannot express.
 */
static void
append_number_text(StringInfo buf, const char *str)
{
	const char *p = str;

	if (*p == '-')
		p++;
	if (*p == 'N' || *p == 'I' || *p == 'i' || *p == 'n')
		kfdw_json_append_string(buf, str);
	else
		appendStringInfoString(buf, str);
}

/*
 * Append len bytes of str as a quoted JSON string, copying runs of bytes
 * that need no escape in one go.
 */
static void
append_escaped(StringInfo buf, const char *str, int len)
{
	const char *end = str + len;
	const char *run = str;
	const char *p;

	enlargeStringInfo(buf, len + 2);
	buf->data[buf->len++] = '"';

	for (p = str; p < end; p++)
	{
		unsigned char c = (unsigned char) *p;
		const char *esc;
		char		ubuf[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;

		if (p > run)
			appendBinaryStringInfo(buf, run, p - run);
		run = p + 1;

		switch (c)
		{
			case '"':
				esc = "\\\"";
				break;
			case '\\':
				esc = "\\\\";
				break;
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			default:
				snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
				esc = ubuf;
				break;
		}
		appendStringInfoString(buf, esc);
	}
	if (end > run)
		appendBinaryStringInfo(buf, run, end - run);
	appendStringInfoCharMacro(buf, '"');
}

/*
 * Append an array as a JSON array; a multi-dimensional one as nested arrays.
 */
static void
append_array(StringInfo buf, Datum value, JsonTypeEntry *entry)
{
	AnyArrayType *arr = DatumGetAnyArrayP(value);
	int			ndim = AARR_NDIM(arr);
	int		   *dims = AARR_DIMS(arr);
	JsonTypeEntry *elem;
	array_iter	iter;
	int			index = 0;

	if (ndim <= 0 || ArrayGetNItems(ndim, dims) == 0)
	{
		appendBinaryStringInfo(buf, "[]", 2);
		return;
	}

	elem = get_type_entry(entry->elemtypid);
	array_iter_setup(&iter, arr);
	append_array_dim(buf, 0, ndim, dims, &iter, &index, entry, elem);
}

static void
append_array_dim(StringInfo buf, int dim, int ndim, const int *dims,
				 array_iter *iter, int *index, JsonTypeEntry *entry,
				 JsonTypeEntry *elem)
{
	int			i;

	check_stack_depth();

	appendStringInfoCharMacro(buf, '[');
	for (i = 0; i < dims[dim]; i++)
	{
		if (i > 0)
			appendStringInfoCharMacro(buf, ',');
		if (dim + 1 < ndim)
			append_array_dim(buf, dim + 1, ndim, dims, iter, index, entry,
							 elem);
		else
		{
			bool		isnull;
			Datum		v;

			v = array_iter_next(iter, &isnull, (*index)++, entry->elemlen,
								entry->elembyval, entry->elemalign);
			if (isnull)
				appendBinaryStringInfo(buf, "null", 4);
			else
				append_value(buf, v, elem);
		}
	}
	appendStringInfoCharMacro(buf, ']');
}

/*
 * Append a composite value as a JSON object of its attributes.
 */
static void
append_composite(StringInfo buf, Datum value)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(value);
	Oid			tupType = HeapTupleHeaderGetTypeId(td);
	int32		tupTypmod = HeapTupleHeaderGetTypMod(td);
	TupleDesc	tupdesc;
	HeapTupleData tmptup;
	bool		first = true;
	int			i;

	check_stack_depth();

	tupdesc = lookup_rowtype_tupdesc(tupType, tupTypmod);
	tmptup.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tmptup.t_self);
	tmptup.t_tableOid = InvalidOid;
	tmptup.t_data = td;

	appendStringInfoCharMacro(buf, '{');
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		Datum		v;
		bool		isnull;

		if (att->attisdropped)
			continue;
		if (!first)
			appendStringInfoCharMacro(buf, ',');
		first = false;
		kfdw_json_append_string(buf, NameStr(att->attname));
		appendStringInfoCharMacro(buf, ':');
		v = heap_getattr(&tmptup, i + 1, tupdesc, &isnull);
		kfdw_json_append_datum(buf, v, isnull, att->atttypid);
	}
	appendStringInfoCharMacro(buf, '}');
	ReleaseTupleDesc(tupdesc);
}
