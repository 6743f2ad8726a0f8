/*-------------------------------------------------------------------------
 *
 * debezium.c
 *		  Debezium change events decoded into rows of a target table
 *
 * An event is a message value in either form of Kafka Connect's JSON
 * converter: {"schema": ..., "payload": <envelope>} (schemas.enable=true)
 * or the envelope alone.  It is parsed once with PostgreSQL's JSON parser
 * into a small tree of what decoding needs: the envelope's op, before and
 * after; the schema, the source and the transaction blocks are skipped
 * without building anything.  The schema's text is compared with the last
 * one seen, and only a new schema (the first event, or one after DDL) is
 * parsed to learn each field's Connect type and logical name; the fields
 * of 'after' are then matched to the target's columns by name and each
 * value is turned back into PostgreSQL's by debezium_value.c.
 *
 * A delete takes 'before' (Debezium's and kafka_fdw's CDC give the
 * replica identity's columns there), then, for the columns it lacks (its
 * before is null with REPLICA IDENTITY NOTHING), the fields of the message
 * key, in the same two forms.
 *
 * IDENTIFICATION
 *		  src/ingest/debezium.c
 *
 *-------------------------------------------------------------------------
 */
#include "ingest/debezium_int.h"

#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "compat.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#define DBZ_PLACEHOLDER "__debezium_unavailable_value"

const char *const kfdw_dbz_option_names =
"binary.handling.mode, decimal.handling.mode, time.precision.mode, "
"unavailable.value.placeholder";

/* A column of the target; name NULL for dropped and generated columns */
typedef struct DbzColumn
{
	char	   *name;
	DbzType		type;
} DbzColumn;

/* The last schema seen, and the schema of each column's field in it */
typedef struct DbzSchemaCache
{
	MemoryContext cxt;			/* holds all of it */
	char	   *text;
	int			len;
	DbzField  **row;			/* a key's fields, or 'after's */
	DbzField  **before;
} DbzSchemaCache;

struct KafkaDbzTarget
{
	MemoryContext cxt;
	MemoryContext scratch;		/* reset by each decode */
	int			natts;
	DbzColumn  *cols;			/* by attnum - 1 */
	int			guess;			/* the column the next field likely is */
	DbzOptions	opts;
	DbzSchemaCache value_schema;
	DbzSchemaCache key_schema;
	const char *column;			/* being decoded, for the error */
};

/* The state of one parse */
typedef struct DbzParse
{
	JsonLexContext *lex;
	bool		envelope;		/* skip schema, source and transaction */
	DbzJson    *root;
	DbzJson    *cur;			/* object or array being filled */
	char	   *key;			/* of the member whose value comes next */
	int			skipping;		/* depth inside a skipped value */
	bool		in_schema;
	bool		skipped_schema;
	const char *schema;
	int			schemalen;
} DbzParse;

static int	find_column(KafkaDbzTarget *t, const char *name);
static void clear_columns(KafkaDbzTarget *t, Datum *values, bool *nulls,
						  bool *present);
static char decode_event(KafkaDbzTarget *t, const char *key, int keylen,
						 const char *value, int valuelen,
						 Datum *values, bool *nulls, bool *present,
						 MemoryContext caller);
static bool is_other_event(DbzJson *payload);
static DbzJson *envelope_payload(const char *text, int len, const char *what,
								 const char **schema, int *schemalen);
static void decode_row(KafkaDbzTarget *t, DbzJson *row, DbzField **fields,
					   Datum *values, bool *nulls, bool *present,
					   bool only_missing, MemoryContext caller);
static void use_schema(KafkaDbzTarget *t, DbzSchemaCache *cache,
					   const char *text, int len, bool key);
static DbzField **field_schemas(KafkaDbzTarget *t, DbzJson *fields);
static DbzField *field_schema(DbzJson *schema);
static bool is_skipped(DbzParse *p, bool *schema);
static DbzJson *new_node(DbzParse *p, DbzJsonType type);
static KFDW_JSON_ACTION parse_object_start(void *state);
static KFDW_JSON_ACTION parse_object_end(void *state);
static KFDW_JSON_ACTION parse_field_start(void *state, char *fname, bool isnull);
static KFDW_JSON_ACTION parse_scalar(void *state, char *token,
									 JsonTokenType tokentype);

KafkaDbzTarget *
kfdw_dbz_prepare(Relation target, MemoryContext cxt)
{
	TupleDesc	desc = RelationGetDescr(target);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	KafkaDbzTarget *t = palloc0(sizeof(KafkaDbzTarget));
	int			i;

	t->cxt = cxt;
	t->scratch = AllocSetContextCreate(cxt, "kafka_fdw debezium event",
									   ALLOCSET_DEFAULT_SIZES);
	t->value_schema.cxt = AllocSetContextCreate(cxt, "kafka_fdw debezium schema",
												ALLOCSET_SMALL_SIZES);
	t->key_schema.cxt = AllocSetContextCreate(cxt, "kafka_fdw debezium key schema",
											  ALLOCSET_SMALL_SIZES);
	t->natts = desc->natts;
	t->cols = palloc0(sizeof(DbzColumn) * Max(desc->natts, 1));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		t->cols[i].name = pstrdup(NameStr(att->attname));
		kfdw_dbz_describe_type(&t->cols[i].type, att->atttypid,
							   att->atttypmod, cxt);
	}
	t->opts.placeholder = DBZ_PLACEHOLDER;
	t->opts.placeholder_len = strlen(DBZ_PLACEHOLDER);
	MemoryContextSwitchTo(old);
	return t;
}

bool
kfdw_dbz_set_option(KafkaDbzTarget *t, const char *name, const char *value)
{
	const char *valid = NULL;

	if (strcmp(name, "unavailable.value.placeholder") == 0)
	{
		t->opts.placeholder = MemoryContextStrdup(t->cxt, value);
		t->opts.placeholder_len = strlen(value);
		return true;
	}
	if (strcmp(name, "binary.handling.mode") == 0)
	{
		if (strcmp(value, "hex") == 0)
			t->opts.binary_hex = true;
		else if (strcmp(value, "bytes") == 0 || strcmp(value, "base64") == 0 ||
				 strcmp(value, "base64-url-safe") == 0)
			t->opts.binary_hex = false;
		else
			valid = "bytes, base64, base64-url-safe, hex";
	}
	else if (strcmp(name, "decimal.handling.mode") == 0)
	{
		if (strcmp(value, "precise") == 0)
			t->opts.decimal_mode = DBZ_DECIMAL_PRECISE;
		else if (strcmp(value, "double") == 0)
			t->opts.decimal_mode = DBZ_DECIMAL_DOUBLE;
		else if (strcmp(value, "string") == 0)
			t->opts.decimal_mode = DBZ_DECIMAL_STRING;
		else
			valid = "precise, double, string";
	}
	else if (strcmp(name, "time.precision.mode") == 0)
	{
		if (strcmp(value, "adaptive") == 0)
			t->opts.time_mode = DBZ_TIME_ADAPTIVE;
		else if (strcmp(value, "adaptive_time_microseconds") == 0)
			t->opts.time_mode = DBZ_TIME_ADAPTIVE_MICRO;
		else if (strcmp(value, "connect") == 0)
			t->opts.time_mode = DBZ_TIME_CONNECT;
		else if (strcmp(value, "isostring") == 0)
			t->opts.time_mode = DBZ_TIME_ISOSTRING;
		else
			valid = "adaptive, adaptive_time_microseconds, connect, isostring";
	}
	else
		return false;
	if (valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errhint("Valid values are: %s.", valid)));
	return true;
}

char
kfdw_dbz_decode(KafkaDbzTarget *t, const char *key, int keylen,
				const char *value, int valuelen,
				Datum *values, bool *nulls, bool *present)
{
	MemoryContext caller = CurrentMemoryContext;
	char		op;

	clear_columns(t, values, nulls, present);
	if (value == NULL || valuelen < 0)
		return 0;				/* a tombstone */

	MemoryContextReset(t->scratch);
	t->column = NULL;
	PG_TRY();
	{
		op = decode_event(t, key, keylen, value, valuelen, values, nulls,
						  present, caller);
	}
	PG_CATCH();
	{
		/* a value's error, an input function's too, names its column */
		if (t->column != NULL)
		{
			ErrorData  *edata;
			int			category;

			MemoryContextSwitchTo(caller);
			edata = CopyErrorData();
			category = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
			if (category == ERRCODE_DATA_EXCEPTION ||
				category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
			{
				FlushErrorState();
				edata->message = psprintf("invalid value for column \"%s\": %s",
										  t->column, edata->message);
				t->column = NULL;
				ReThrowError(edata);
			}
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	return op;
}

bool
kfdw_dbz_decode_key(KafkaDbzTarget *t, const char *key, int keylen,
					Datum *values, bool *nulls, bool *present)
{
	MemoryContext caller = CurrentMemoryContext;
	DbzJson    *k;
	const char *schema;
	int			schemalen;
	int			i;

	clear_columns(t, values, nulls, present);
	for (i = 0; key != NULL && i < keylen &&
		 (key[i] == ' ' || key[i] == '\t' || key[i] == '\r' || key[i] == '\n'); i++)
		;
	if (key == NULL || i >= keylen || key[i] != '{')
		return false;

	MemoryContextReset(t->scratch);
	t->column = NULL;
	MemoryContextSwitchTo(t->scratch);
	k = envelope_payload(key, keylen, "key", &schema, &schemalen);
	if (k != NULL)
	{
		DbzField  **key_fields = NULL;

		if (schema != NULL)
		{
			use_schema(t, &t->key_schema, schema, schemalen, true);
			key_fields = t->key_schema.row;
		}
		decode_row(t, k, key_fields, values, nulls, present, false, caller);
	}
	MemoryContextSwitchTo(caller);
	return k != NULL;
}

static char
decode_event(KafkaDbzTarget *t, const char *key, int keylen,
			 const char *value, int valuelen,
			 Datum *values, bool *nulls, bool *present, MemoryContext caller)
{
	DbzJson    *payload;
	DbzJson    *opnode;
	DbzJson    *row;
	const char *schema;
	int			schemalen;
	DbzField  **after_fields = NULL;
	DbzField  **before_fields = NULL;
	char		op;
	int			i;

	MemoryContextSwitchTo(t->scratch);
	payload = envelope_payload(value, valuelen, "value", &schema, &schemalen);
	if (payload == NULL)
		return 0;				/* a JSON null */
	opnode = kfdw_dbz_member(payload, "op");
	if (opnode == NULL)
	{
		if (is_other_event(payload))
			return 0;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Debezium event has no \"op\""),
				 errdetail("A change event's payload has \"op\", \"before\" and \"after\".")));
	}
	if (opnode->type != DBZ_JSON_STRING || strlen(opnode->str) != 1 ||
		strchr("crudtm", opnode->str[0]) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Debezium event has an unknown \"op\": %s",
						opnode->str ? opnode->str : "an object or array"),
				 errdetail("Known operations are c, r, u, d, t and m.")));
	op = opnode->str[0];
	if (op == 'm')
		return 0;
	if (op == 't')
		return 't';

	if (schema != NULL)
	{
		use_schema(t, &t->value_schema, schema, schemalen, false);
		after_fields = t->value_schema.row;
		before_fields = t->value_schema.before;
	}

	if (op != 'd')
	{
		row = kfdw_dbz_member(payload, "after");
		if (row == NULL || row->type != DBZ_JSON_OBJECT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("Debezium event of op \"%c\" has no \"after\" row", op)));
		decode_row(t, row, after_fields, values, nulls, present, false, caller);
		return op;
	}

	row = kfdw_dbz_member(payload, "before");
	if (row != NULL && row->type == DBZ_JSON_OBJECT)
		decode_row(t, row, before_fields, values, nulls, present, false,
				   caller);
	if (key != NULL && keylen >= 0)
	{
		DbzJson    *k = envelope_payload(key, keylen, "key", &schema, &schemalen);
		DbzField  **key_fields = NULL;

		if (k != NULL && schema != NULL)
		{
			use_schema(t, &t->key_schema, schema, schemalen, true);
			key_fields = t->key_schema.row;
		}
		if (k != NULL)
			decode_row(t, k, key_fields, values, nulls, present, true, caller);
	}
	for (i = 0; i < t->natts; i++)
		if (present[i])
			return 'd';
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("Debezium delete event identifies no row of the target"),
			 errdetail("Neither its \"before\" nor its message key has a field named as a column of the target.")));
	return 0;					/* keep the compiler quiet */
}

/*
 * A message that is no change event: transaction metadata (BEGIN, END),
 * a schema change event, a heartbeat ({"ts_ms": ...} alone).
 */
static bool
is_other_event(DbzJson *payload)
{
	DbzJson    *m;

	if (kfdw_dbz_member(payload, "status") != NULL ||
		kfdw_dbz_member(payload, "ddl") != NULL ||
		kfdw_dbz_member(payload, "tableChanges") != NULL ||
		kfdw_dbz_member(payload, "databaseName") != NULL)
		return true;
	for (m = payload->first; m != NULL; m = m->next)
		if (strcmp(m->key, "ts_ms") != 0)
			return false;
	return true;
}

/*
 * The payload of a key or value in either form (NULL for a JSON null), and
 * the text of its schema (NULL without one).
 */
static DbzJson *
envelope_payload(const char *text, int len, const char *what,
				 const char **schema, int *schemalen)
{
	DbzJson    *root = kfdw_dbz_parse_json(text, len, true, schema, schemalen);
	DbzJson    *payload = root;

	if (root->type == DBZ_JSON_NULL)
		return NULL;
	if (root->type != DBZ_JSON_OBJECT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Debezium event's %s is not a JSON object", what)));
	if (*schema != NULL || kfdw_dbz_member(root, "payload") != NULL)
	{
		payload = kfdw_dbz_member(root, "payload");
		if (payload == NULL)
		{
			/* a "schema" that is a field of the payload alone */
			*schema = NULL;
			return kfdw_dbz_parse_json(text, len, false, schema, schemalen);
		}
		if (payload->type == DBZ_JSON_NULL)
			return NULL;
		if (payload->type != DBZ_JSON_OBJECT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("Debezium event's %s has a payload that is not a JSON object",
							what)));
	}
	return payload;
}

/* Decode the fields of row into the columns of their names */
static void
decode_row(KafkaDbzTarget *t, DbzJson *row, DbzField **fields,
		   Datum *values, bool *nulls, bool *present, bool only_missing,
		   MemoryContext caller)
{
	DbzJson    *m;

	for (m = row->first; m != NULL; m = m->next)
	{
		int			i = find_column(t, m->key);
		DbzColumn  *col;
		Datum		d;

		if (i < 0 || (only_missing && present[i]))
			continue;
		col = &t->cols[i];
		t->column = col->name;
		switch (kfdw_dbz_value(&t->opts, &col->type, m, fields ? fields[i] : NULL,
							   &d))
		{
			case DBZ_VALUE:
				MemoryContextSwitchTo(caller);
				values[i] = datumCopy(d, col->type.typbyval, col->type.typlen);
				MemoryContextSwitchTo(t->scratch);
				nulls[i] = false;
				present[i] = true;
				break;
			case DBZ_NULL:
				values[i] = (Datum) 0;
				nulls[i] = true;
				present[i] = true;
				break;
			case DBZ_ABSENT:
				present[i] = false;
				break;
		}
		t->column = NULL;
	}
}

/* No column present, every one null */
static void
clear_columns(KafkaDbzTarget *t, Datum *values, bool *nulls, bool *present)
{
	int			i;

	for (i = 0; i < t->natts; i++)
	{
		values[i] = (Datum) 0;
		nulls[i] = true;
		present[i] = false;
	}
}

/* The column of a field's name (fields mostly come in column order), or -1 */
static int
find_column(KafkaDbzTarget *t, const char *name)
{
	int			i = t->guess;

	if (i < t->natts && t->cols[i].name && strcmp(t->cols[i].name, name) == 0)
	{
		t->guess = i + 1;
		return i;
	}
	for (i = 0; i < t->natts; i++)
	{
		if (t->cols[i].name && strcmp(t->cols[i].name, name) == 0)
		{
			t->guess = i + 1;
			return i;
		}
	}
	return -1;
}

/*
 * Make the schema text the cache's, unless it already is: the schema of
 * each column's field, from a value's envelope schema (before and after)
 * or a key's struct schema.
 */
static void
use_schema(KafkaDbzTarget *t, DbzSchemaCache *cache, const char *text,
		   int len, bool key)
{
	MemoryContext old;
	DbzJson    *root;
	DbzJson    *fields;
	DbzJson    *f;
	const char *dummy;
	int			dummylen;

	if (cache->text != NULL && cache->len == len &&
		memcmp(cache->text, text, len) == 0)
		return;

	MemoryContextReset(cache->cxt);
	cache->text = NULL;
	cache->row = NULL;
	cache->before = NULL;
	old = MemoryContextSwitchTo(cache->cxt);
	root = kfdw_dbz_parse_json(text, len, false, &dummy, &dummylen);
	fields = kfdw_dbz_member(root, "fields");
	if (fields != NULL && fields->type == DBZ_JSON_ARRAY)
	{
		if (key)
			cache->row = field_schemas(t, fields);
		else
		{
			for (f = fields->first; f != NULL; f = f->next)
			{
				DbzJson    *name = kfdw_dbz_member(f, "field");
				DbzJson    *sub = kfdw_dbz_member(f, "fields");

				if (name == NULL || name->type != DBZ_JSON_STRING ||
					sub == NULL || sub->type != DBZ_JSON_ARRAY)
					continue;
				if (strcmp(name->str, "after") == 0)
					cache->row = field_schemas(t, sub);
				else if (strcmp(name->str, "before") == 0)
					cache->before = field_schemas(t, sub);
			}
		}
	}
	cache->text = palloc(len);
	memcpy(cache->text, text, len);
	cache->len = len;
	MemoryContextSwitchTo(old);
}

/* The schemas of a struct's fields, by the target's column */
static DbzField **
field_schemas(KafkaDbzTarget *t, DbzJson *fields)
{
	DbzField  **result = palloc0(sizeof(DbzField *) * Max(t->natts, 1));
	DbzJson    *f;

	for (f = fields->first; f != NULL; f = f->next)
	{
		DbzJson    *name = kfdw_dbz_member(f, "field");
		int			i;

		if (name == NULL || name->type != DBZ_JSON_STRING)
			continue;
		i = find_column(t, name->str);
		if (i >= 0)
			result[i] = field_schema(f);
	}
	return result;
}

/* What a field's schema (or an array's items) says */
static DbzField *
field_schema(DbzJson *schema)
{
	static const struct
	{
		const char *name;
		DbzLogical	logical;
	}			names[] =
	{
		{"io.debezium.time.Date", DBZ_L_DATE},
		{"org.apache.kafka.connect.data.Date", DBZ_L_DATE},
		{"io.debezium.time.Time", DBZ_L_TIME_MS},
		{"org.apache.kafka.connect.data.Time", DBZ_L_TIME_MS},
		{"io.debezium.time.MicroTime", DBZ_L_TIME_US},
		{"io.debezium.time.NanoTime", DBZ_L_TIME_NS},
		{"io.debezium.time.Timestamp", DBZ_L_TS_MS},
		{"org.apache.kafka.connect.data.Timestamp", DBZ_L_TS_MS},
		{"io.debezium.time.MicroTimestamp", DBZ_L_TS_US},
		{"io.debezium.time.NanoTimestamp", DBZ_L_TS_NS},
		{"io.debezium.time.ZonedTimestamp", DBZ_L_ZONED},
		{"io.debezium.time.ZonedTime", DBZ_L_ZONED},
		{"io.debezium.time.IsoDate", DBZ_L_ISO_DATE},
		{"io.debezium.time.IsoTime", DBZ_L_ISO_TIME},
		{"io.debezium.time.IsoTimestamp", DBZ_L_ISO_TS},
		{"org.apache.kafka.connect.data.Decimal", DBZ_L_DECIMAL},
		{"io.debezium.data.VariableScaleDecimal", DBZ_L_VSDECIMAL},
		{"io.debezium.time.MicroDuration", DBZ_L_MICRO_DURATION},
		{"io.debezium.time.Interval", DBZ_L_INTERVAL},
		{"io.debezium.data.Bits", DBZ_L_BITS},
		{"io.debezium.data.geometry.Point", DBZ_L_POINT},
		{"io.debezium.data.geometry.Geometry", DBZ_L_GEOMETRY},
		{"io.debezium.data.geometry.Geography", DBZ_L_GEOMETRY},
		{NULL, DBZ_L_NONE}
	};
	DbzField   *fs = palloc0(sizeof(DbzField));
	DbzJson    *type = kfdw_dbz_member(schema, "type");
	DbzJson    *name = kfdw_dbz_member(schema, "name");
	DbzJson    *params = kfdw_dbz_member(schema, "parameters");
	DbzJson    *items = kfdw_dbz_member(schema, "items");
	int			i;

	fs->length = -1;
	if (type != NULL && type->type == DBZ_JSON_STRING)
	{
		const char *s = type->str;

		if (strncmp(s, "int", 3) == 0)
			fs->type = DBZ_T_INT;
		else if (strcmp(s, "float") == 0 || strcmp(s, "double") == 0 ||
				 strcmp(s, "float32") == 0 || strcmp(s, "float64") == 0)
			fs->type = DBZ_T_FLOAT;
		else if (strcmp(s, "boolean") == 0)
			fs->type = DBZ_T_BOOL;
		else if (strcmp(s, "string") == 0)
			fs->type = DBZ_T_STRING;
		else if (strcmp(s, "bytes") == 0)
			fs->type = DBZ_T_BYTES;
		else if (strcmp(s, "array") == 0)
			fs->type = DBZ_T_ARRAY;
		else if (strcmp(s, "map") == 0)
			fs->type = DBZ_T_MAP;
		else if (strcmp(s, "struct") == 0)
			fs->type = DBZ_T_STRUCT;
	}
	if (name != NULL && name->type == DBZ_JSON_STRING)
	{
		for (i = 0; names[i].name; i++)
			if (strcmp(names[i].name, name->str) == 0)
				fs->logical = names[i].logical;
		if (fs->logical == DBZ_L_NONE && strncmp(name->str, "io.debezium.data.", 17) == 0)
			fs->logical = DBZ_L_TEXT;
	}
	if (params != NULL && params->type == DBZ_JSON_OBJECT)
	{
		DbzJson    *scale = kfdw_dbz_member(params, "scale");
		DbzJson    *length = kfdw_dbz_member(params, "length");

		if (scale != NULL && scale->str != NULL)
			fs->scale = atoi(scale->str);
		if (length != NULL && length->str != NULL)
			fs->length = atoi(length->str);
	}
	if (items != NULL && items->type == DBZ_JSON_OBJECT)
		fs->items = field_schema(items);
	return fs;
}

/* The member key of an object, or NULL */
DbzJson *
kfdw_dbz_member(DbzJson *obj, const char *key)
{
	DbzJson    *m;

	if (obj == NULL || obj->type != DBZ_JSON_OBJECT)
		return NULL;
	for (m = obj->first; m != NULL; m = m->next)
		if (strcmp(m->key, key) == 0)
			return m;
	return NULL;
}

/*
 * How values of type typid (typmod) are read: its input function and
 * what kind of type it is, domains by their base type.
 */
void
kfdw_dbz_describe_type(DbzType *type, Oid typid, int32 typmod,
					   MemoryContext cxt)
{
	Oid			infunc;
	Oid			elem;
	int32		basemod = typmod;

	memset(type, 0, sizeof(*type));
	type->typid = typid;
	type->typmod = typmod;
	type->base = getBaseTypeAndTypmod(typid, &basemod);
	type->basemod = basemod;
	getTypeInputInfo(typid, &infunc, &type->ioparam);
	fmgr_info_cxt(infunc, &type->input, cxt);
	get_typlenbyvalalign(type->base, &type->typlen, &type->typbyval,
						 &type->typalign);

	elem = get_element_type(type->base);
	if (OidIsValid(elem) && type->typlen == -1)
	{
		type->kind = DBZ_K_ARRAY;
		type->elem = MemoryContextAlloc(cxt, sizeof(DbzType));
		kfdw_dbz_describe_type(type->elem, elem, basemod, cxt);
		return;
	}
	switch (type->base)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
			type->kind = DBZ_K_INT;
			break;
		case FLOAT4OID:
		case FLOAT8OID:
			type->kind = DBZ_K_FLOAT;
			break;
		case BOOLOID:
			type->kind = DBZ_K_BOOL;
			break;
		case NUMERICOID:
			type->kind = DBZ_K_NUMERIC;
			break;
		case CASHOID:
			type->kind = DBZ_K_MONEY;
			break;
		case BYTEAOID:
			type->kind = DBZ_K_BYTEA;
			break;
		case BITOID:
			type->kind = DBZ_K_BIT;
			break;
		case VARBITOID:
			type->kind = DBZ_K_VARBIT;
			break;
		case DATEOID:
			type->kind = DBZ_K_DATE;
			break;
		case TIMEOID:
			type->kind = DBZ_K_TIME;
			break;
		case TIMETZOID:
			type->kind = DBZ_K_TIMETZ;
			break;
		case TIMESTAMPOID:
			type->kind = DBZ_K_TIMESTAMP;
			break;
		case TIMESTAMPTZOID:
			type->kind = DBZ_K_TIMESTAMPTZ;
			break;
		case INTERVALOID:
			type->kind = DBZ_K_INTERVAL;
			break;
		case POINTOID:
			type->kind = DBZ_K_POINT;
			break;
		default:
			{
				HeapTuple	tup = SearchSysCache1(TYPEOID,
												  ObjectIdGetDatum(type->base));

				if (HeapTupleIsValid(tup))
				{
					if (strcmp(NameStr(((Form_pg_type) GETSTRUCT(tup))->typname),
							   "hstore") == 0)
						type->kind = DBZ_K_HSTORE;
					ReleaseSysCache(tup);
				}
			}
			break;
	}
}

/*
 * Parse JSON text into a tree.  With envelope, the values of a top-level
 * "schema" (whose text, if it is an object, *schema gets) and of the
 * "source" and "transaction" blocks of the payload are skipped.
 */
DbzJson *
kfdw_dbz_parse_json(const char *text, int len, bool envelope,
					const char **schema, int *schemalen)
{
	DbzParse	p;
	JsonSemAction sem;
	JsonParseErrorType res;

	memset(&p, 0, sizeof(p));
	p.lex = KFDW_MAKE_JSON_LEX((char *) text, len, true);
	p.envelope = envelope;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &p;
	sem.object_start = parse_object_start;
	sem.object_end = parse_object_end;
	sem.array_start = parse_object_start;
	sem.array_end = parse_object_end;
	sem.object_field_start = parse_field_start;
	sem.scalar = parse_scalar;

	res = pg_parse_json(p.lex, &sem);
	if (res != JSON_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("Debezium event is not valid JSON"),
				 errdetail_internal("%s", json_errdetail(res, p.lex))));
	*schema = p.schema;
	*schemalen = p.schemalen;
	return p.root;
}

/*
 * Is the value that starts now skipped?  *schema: it is the top-level
 * schema.
 */
static bool
is_skipped(DbzParse *p, bool *schema)
{
	const char *key = p->key;

	*schema = false;
	if (!p->envelope || key == NULL || p->cur == NULL)
		return false;
	if (p->cur == p->root)
	{
		if (strcmp(key, "schema") == 0)
			return *schema = true;
	}
	else if (!(p->cur->parent == p->root && p->cur->key != NULL &&
			   strcmp(p->cur->key, "payload") == 0))
		return false;
	return strcmp(key, "source") == 0 || strcmp(key, "transaction") == 0;
}

static DbzJson *
new_node(DbzParse *p, DbzJsonType type)
{
	DbzJson    *node = palloc(sizeof(DbzJson));

	node->type = type;
	node->key = p->key;
	node->str = NULL;
	node->raw = NULL;
	node->rawlen = 0;
	node->n = 0;
	node->first = node->last = node->next = NULL;
	node->parent = p->cur;
	p->key = NULL;
	if (p->cur == NULL)
		p->root = node;
	else
	{
		if (p->cur->last)
			p->cur->last->next = node;
		else
			p->cur->first = node;
		p->cur->last = node;
		p->cur->n++;
	}
	return node;
}

/* an object or an array starts (the lexer is on its first character) */
static KFDW_JSON_ACTION
parse_object_start(void *state)
{
	DbzParse   *p = state;
	bool		schema;
	DbzJson    *node;

	if (p->skipping > 0)
	{
		p->skipping++;
		KFDW_JSON_ACTION_DONE;
	}
	if (is_skipped(p, &schema))
	{
		p->skipping = 1;
		p->key = NULL;
		if (schema)
		{
			p->in_schema = true;
			p->schema = p->lex->token_start;
		}
		KFDW_JSON_ACTION_DONE;
	}
	node = new_node(p, *p->lex->token_start == '{' ? DBZ_JSON_OBJECT :
					DBZ_JSON_ARRAY);
	node->raw = p->lex->token_start;
	p->cur = node;
	KFDW_JSON_ACTION_DONE;
}

/* an object or an array ends (the lexer is past its last character) */
static KFDW_JSON_ACTION
parse_object_end(void *state)
{
	DbzParse   *p = state;

	if (p->skipping > 0)
	{
		if (--p->skipping == 0 && p->in_schema)
		{
			p->schemalen = p->lex->prev_token_terminator - p->schema;
			p->in_schema = false;
		}
		KFDW_JSON_ACTION_DONE;
	}
	p->cur->rawlen = p->lex->prev_token_terminator - p->cur->raw;
	p->cur = p->cur->parent;
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
parse_field_start(void *state, char *fname, bool isnull)
{
	DbzParse   *p = state;

	if (p->skipping == 0)
		p->key = fname;
	KFDW_JSON_ACTION_DONE;
}

static KFDW_JSON_ACTION
parse_scalar(void *state, char *token, JsonTokenType tokentype)
{
	DbzParse   *p = state;
	bool		schema;
	DbzJson    *node;
	DbzJsonType type;

	if (p->skipping > 0)
		KFDW_JSON_ACTION_DONE;
	if (is_skipped(p, &schema))
	{
		p->key = NULL;
		KFDW_JSON_ACTION_DONE;
	}
	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			type = DBZ_JSON_STRING;
			break;
		case JSON_TOKEN_NUMBER:
			type = DBZ_JSON_NUMBER;
			break;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			type = DBZ_JSON_BOOL;
			break;
		default:
			type = DBZ_JSON_NULL;
			break;
	}
	node = new_node(p, type);
	node->str = token;
	KFDW_JSON_ACTION_DONE;
}
