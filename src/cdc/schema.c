/*-------------------------------------------------------------------------
 *
 * schema.c
 *		  Captured tables as Debezium's PostgreSQL connector describes them
 *
 * For each table a stream captures this file decides, once per version of
 * the table (pgoutput's Relation message, or the snapshot's read of it):
 * how each column's values are written (its KafkaCdcType, after Debezium's
 * type mapping and the stream's options), which columns form the message
 * key (Debezium's choice: the primary key, else the first unique index,
 * unless message.key.columns names them), and the Kafka Connect schemas of
 * key and value that the schema/payload form of Kafka Connect's JSON
 * converter carries.  The schemas are kept as JSON text, ready to be copied
 * into every message.
 *
 * IDENTIFICATION
 *		  src/cdc/schema.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/date.h"
#include "utils/timestamp.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

/* The source block's schema, as io.debezium.connector.postgresql.Source */
#define SOURCE_SCHEMA \
	"{\"type\":\"struct\",\"fields\":[" \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"version\"}," \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"connector\"}," \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"name\"}," \
	"{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"}," \
	"{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Enum\",\"version\":1," \
	"\"parameters\":{\"allowed\":\"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental\"}," \
	"\"default\":\"false\",\"field\":\"snapshot\"}," \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"db\"}," \
	"{\"type\":\"string\",\"optional\":true,\"field\":\"sequence\"}," \
	"{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"}," \
	"{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}," \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"schema\"}," \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"table\"}," \
	"{\"type\":\"int64\",\"optional\":true,\"field\":\"txId\"}," \
	"{\"type\":\"int64\",\"optional\":true,\"field\":\"lsn\"}," \
	"{\"type\":\"int64\",\"optional\":true,\"field\":\"xmin\"}," \
	"{\"type\":\"string\",\"optional\":true,\"field\":\"origin\"}," \
	"{\"type\":\"int64\",\"optional\":true,\"field\":\"origin_lsn\"}]," \
	"\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Source\",\"version\":1,\"field\":\"source\"}"

/* The transaction block's schema */
#define TXN_BLOCK_SCHEMA \
	"{\"type\":\"struct\",\"fields\":[" \
	"{\"type\":\"string\",\"optional\":false,\"field\":\"id\"}," \
	"{\"type\":\"int64\",\"optional\":false,\"field\":\"total_order\"}," \
	"{\"type\":\"int64\",\"optional\":false,\"field\":\"data_collection_order\"}]," \
	"\"optional\":true,\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"}"

const char *const kfdw_cdc_source_schema = SOURCE_SCHEMA;
const char *const kfdw_cdc_txn_block_schema = TXN_BLOCK_SCHEMA;

static void describe_type(KafkaCdcType *type, Oid typid, int32 typmod);
static char *enum_labels(Oid typid);
static void describe_columns(KafkaCdcRelation *rel, const KafkaCdcOptions *opts);
static char *default_json(Relation relation, AttrNumber attnum,
						  KafkaCdcColumn *col, const KafkaCdcOptions *opts);
static bool contains_user_function(Node *node, void *context);
static char *epoch_default(KafkaCdcColumn *col, const KafkaCdcOptions *opts);
static void choose_key(KafkaCdcRelation *rel, const KafkaCdcOptions *opts);
static List *index_columns(Relation relation, Oid indexoid);
static bool key_from_option(KafkaCdcRelation *rel, const char *option);
static void append_struct_schema(StringInfo buf, KafkaCdcRelation *rel,
								 const KafkaCdcOptions *opts, bool keys,
								 const char *name, bool optional,
								 const char *field);
static void append_type_body(StringInfo buf, KafkaCdcType *type,
							 const KafkaCdcOptions *opts);

/*
 * Describe the columns of rel (names and types set by the caller), choose
 * its key and build its schemas.  prefix is the stream's topic prefix,
 * which Debezium's schema names begin with.  Everything is allocated in
 * the current memory context, which must live as long as rel.
 */
void
kfdw_cdc_describe_relation(KafkaCdcRelation *rel, const KafkaCdcOptions *opts,
						   const char *prefix)
{
	StringInfoData buf;
	char	   *base = psprintf("%s.%s.%s", prefix, rel->nspname, rel->relname);
	char	   *name;

	describe_columns(rel, opts);
	choose_key(rel, opts);

	initStringInfo(&buf);
	name = psprintf("%s.Key", base);
	append_struct_schema(&buf, rel, opts, true, name, false, NULL);
	rel->key_schema = buf.data;

	initStringInfo(&buf);
	name = psprintf("%s.Value", base);
	appendStringInfoString(&buf, "{\"type\":\"struct\",\"fields\":[");
	append_struct_schema(&buf, rel, opts, false, name, true, "before");
	appendStringInfoChar(&buf, ',');
	append_struct_schema(&buf, rel, opts, false, name, true, "after");
	appendStringInfoString(&buf, "," SOURCE_SCHEMA "," TXN_BLOCK_SCHEMA
						   ",{\"type\":\"string\",\"optional\":false,\"field\":\"op\"}"
						   ",{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"}"
						   ",{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"}"
						   ",{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}]"
						   ",\"optional\":false,\"name\":");
	kfdw_json_append_string(&buf, psprintf("%s.Envelope", base));
	appendStringInfoString(&buf, ",\"version\":2}");
	rel->value_schema = buf.data;
}

/*
 * The type of each column (domains by their base type), whether it is
 * required (NOT NULL) and its default, from the catalog.
 */
static void
describe_columns(KafkaCdcRelation *rel, const KafkaCdcOptions *opts)
{
	Relation	relation = RelationIdGetRelation(rel->relid);
	int			i;

	if (!RelationIsValid(relation))
		elog(ERROR, "could not open relation with OID %u", rel->relid);

	for (i = 0; i < rel->ncols; i++)
	{
		KafkaCdcColumn *col = &rel->cols[i];
		AttrNumber	attnum = get_attnum(rel->relid, col->name);
		int32		typmod = -1;

		col->notnull = false;
		col->default_json = NULL;
		if (attnum != InvalidAttrNumber)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(relation),
												  attnum - 1);

			typmod = att->atttypmod;
			col->notnull = att->attnotnull;
		}
		describe_type(&col->type, col->typid, typmod);
		if (attnum != InvalidAttrNumber)
			col->default_json = default_json(relation, attnum, col, opts);
	}
	RelationClose(relation);
}

/* How values of type typid (typmod) are written */
static void
describe_type(KafkaCdcType *type, Oid typid, int32 typmod)
{
	Oid			base;
	Oid			elem;
	bool		isvarlena;

	base = getBaseTypeAndTypmod(typid, &typmod);
	memset(type, 0, sizeof(*type));
	type->typid = base;
	type->typmod = typmod;
	getTypeOutputInfo(base, &type->typoutput, &isvarlena);
	get_typlenbyvalalign(base, &type->typlen, &type->typbyval,
						 &type->typalign);

	elem = get_element_type(base);
	if (OidIsValid(elem) && type->typlen == -1)
	{
		type->kind = KFDW_KIND_ARRAY;
		type->elem = palloc(sizeof(KafkaCdcType));
		describe_type(type->elem, elem, typmod);
		return;
	}

	switch (base)
	{
		case INT2OID:
			type->kind = KFDW_KIND_INT16;
			break;
		case INT4OID:
			type->kind = KFDW_KIND_INT32;
			break;
		case INT8OID:
		case OIDOID:
			type->kind = KFDW_KIND_INT64;
			break;
		case FLOAT4OID:
			type->kind = KFDW_KIND_FLOAT32;
			break;
		case FLOAT8OID:
			type->kind = KFDW_KIND_FLOAT64;
			break;
		case BOOLOID:
			type->kind = KFDW_KIND_BOOL;
			break;
		case NUMERICOID:
			type->kind = KFDW_KIND_NUMERIC;
			break;
		case CASHOID:
			type->kind = KFDW_KIND_MONEY;
			break;
		case BYTEAOID:
			type->kind = KFDW_KIND_BYTEA;
			break;
		case UUIDOID:
			type->kind = KFDW_KIND_UUID;
			break;
		case DATEOID:
			type->kind = KFDW_KIND_DATE;
			break;
		case TIMEOID:
			type->kind = KFDW_KIND_TIME;
			break;
		case TIMETZOID:
			type->kind = KFDW_KIND_TIMETZ;
			break;
		case TIMESTAMPOID:
			type->kind = KFDW_KIND_TIMESTAMP;
			break;
		case TIMESTAMPTZOID:
			type->kind = KFDW_KIND_TIMESTAMPTZ;
			break;
		case INTERVALOID:
			type->kind = KFDW_KIND_INTERVAL;
			break;
		case JSONOID:
		case JSONBOID:
			type->kind = KFDW_KIND_JSON;
			break;
		case XMLOID:
			type->kind = KFDW_KIND_XML;
			break;
		case BITOID:
			type->kind = typmod == 1 ? KFDW_KIND_BIT1 : KFDW_KIND_BITS;
			break;
		case VARBITOID:
			type->kind = KFDW_KIND_BITS;
			break;
		case POINTOID:
			type->kind = KFDW_KIND_POINT;
			break;
		default:
			if (type_is_enum(base))
			{
				type->kind = KFDW_KIND_ENUM;
				type->labels = enum_labels(base);
			}
			else
			{
				char	   *typname = format_type_be(base);

				type->kind = strcmp(typname, "hstore") == 0 ||
					strcmp(typname, "public.hstore") == 0 ?
					KFDW_KIND_HSTORE : KFDW_KIND_TEXT;
			}
			break;
	}
}

/* An enum's labels in their order, comma-separated */
static char *
enum_labels(Oid typid)
{
	CatCList   *list = SearchSysCacheList1(ENUMTYPOIDNAME,
										   ObjectIdGetDatum(typid));
	int			n = list->n_members;
	HeapTuple  *tuples = palloc(sizeof(HeapTuple) * Max(n, 1));
	StringInfoData buf;
	int			i;
	int			j;

	for (i = 0; i < n; i++)
		tuples[i] = &list->members[i]->tuple;
	/* by enumsortorder: few labels, an insertion sort does */
	for (i = 1; i < n; i++)
		for (j = i; j > 0 &&
			 ((Form_pg_enum) GETSTRUCT(tuples[j]))->enumsortorder <
			 ((Form_pg_enum) GETSTRUCT(tuples[j - 1]))->enumsortorder; j--)
		{
			HeapTuple	t = tuples[j];

			tuples[j] = tuples[j - 1];
			tuples[j - 1] = t;
		}

	initStringInfo(&buf);
	for (i = 0; i < n; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? "," : "",
						 NameStr(((Form_pg_enum) GETSTRUCT(tuples[i]))->enumlabel));
	ReleaseSysCacheList(list);
	return buf.data;
}

/*
 * The schema's "default" of a column, as Debezium gives it: the value of a
 * default that is a constant (after folding immutable casts), 0 for a
 * column filled from a sequence; none for other defaults.
 */
static char *
default_json(Relation relation, AttrNumber attnum, KafkaCdcColumn *col,
			 const KafkaCdcOptions *opts)
{
	TupleConstr *constr = RelationGetDescr(relation)->constr;
	Node	   *expr = NULL;
	StringInfoData buf;
	int			i;

	if (constr == NULL)
		return NULL;
	for (i = 0; i < constr->num_defval; i++)
		if (constr->defval[i].adnum == attnum)
			expr = stringToNode(constr->defval[i].adbin);
	if (expr == NULL)
		return NULL;

	/* a serial's nextval(), cast to the column's type */
	while (IsA(expr, FuncExpr) &&
		   ((FuncExpr *) expr)->funcformat == COERCE_IMPLICIT_CAST &&
		   list_length(((FuncExpr *) expr)->args) == 1)
		expr = linitial(((FuncExpr *) expr)->args);
	if (IsA(expr, FuncExpr) &&
		((FuncExpr *) expr)->funcid == F_NEXTVAL)
	{
		switch (col->type.kind)
		{
			case KFDW_KIND_INT16:
			case KFDW_KIND_INT32:
			case KFDW_KIND_INT64:
				return pstrdup("0");
			default:
				return NULL;
		}
	}

	/* only built-in immutable functions are run, to fold casts */
	if (contain_mutable_functions(expr) || contains_user_function(expr, NULL))
		return epoch_default(col, opts);
	expr = eval_const_expressions(NULL, expr);
	if (!IsA(expr, Const) || ((Const *) expr)->constisnull)
		return epoch_default(col, opts);

	initStringInfo(&buf);
	kfdw_cdc_append_value(&buf, &col->type, opts, ((Const *) expr)->constvalue);
	return buf.data;
}

/*
 * The default Debezium gives a date or time column whose default it cannot
 * evaluate (now(), CURRENT_DATE ...): the epoch, 1970-01-01 00:00 UTC.
 */
static char *
epoch_default(KafkaCdcColumn *col, const KafkaCdcOptions *opts)
{
	StringInfoData buf;
	Datum		value;
	TimeTzADT	tz = {0, 0};

	switch (col->type.kind)
	{
		case KFDW_KIND_DATE:
			value = DateADTGetDatum(UNIX_EPOCH_JDATE - POSTGRES_EPOCH_JDATE);
			break;
		case KFDW_KIND_TIME:
			value = TimeADTGetDatum(0);
			break;
		case KFDW_KIND_TIMETZ:
			value = TimeTzADTPGetDatum(&tz);
			break;
		case KFDW_KIND_TIMESTAMP:
		case KFDW_KIND_TIMESTAMPTZ:
			value = TimestampGetDatum(-EPOCH_SHIFT_USECS_FOR_SOURCE);
			break;
		default:
			return NULL;
	}
	initStringInfo(&buf);
	kfdw_cdc_append_value(&buf, &col->type, opts, value);
	return buf.data;
}

static bool
is_user_function(Oid func_id, void *context)
{
	return func_id >= FirstGenbkiObjectId;
}

/* Does an expression call a function that is not built in? */
static bool
contains_user_function(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, is_user_function, context))
		return true;
	return expression_tree_walker(node, contains_user_function, context);
}

/*
 * Mark the key columns: those message.key.columns names for the table,
 * else the primary key's, else those of the first unique index (by name)
 * on columns only; none if there is no such index.
 */
static void
choose_key(KafkaCdcRelation *rel, const KafkaCdcOptions *opts)
{
	Relation	relation;
	List	   *indexes;
	List	   *keycols = NIL;
	char	   *best_name = NULL;
	ListCell   *lc;
	int			i;

	rel->has_key = false;
	for (i = 0; i < rel->ncols; i++)
		rel->cols[i].iskey = false;

	if (opts->key_columns && key_from_option(rel, opts->key_columns))
		return;

	relation = RelationIdGetRelation(rel->relid);
	if (!RelationIsValid(relation))
		return;
	indexes = RelationGetIndexList(relation);
	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
		Form_pg_index index;
		char	   *name;

		if (!HeapTupleIsValid(tup))
			continue;
		index = (Form_pg_index) GETSTRUCT(tup);
		if (!index->indisunique || !index->indisvalid ||
			!heap_attisnull(tup, Anum_pg_index_indexprs, NULL))
		{
			ReleaseSysCache(tup);
			continue;
		}
		name = get_rel_name(indexoid);
		if (index->indisprimary)
		{
			keycols = index_columns(relation, indexoid);
			ReleaseSysCache(tup);
			best_name = NULL;
			break;
		}
		if (best_name == NULL || strcmp(name, best_name) < 0)
		{
			best_name = name;
			keycols = index_columns(relation, indexoid);
		}
		ReleaseSysCache(tup);
	}
	RelationClose(relation);

	/* the key's fields are in the table's column order */
	for (i = 0; i < rel->ncols; i++)
	{
		foreach(lc, keycols)
		{
			if (strcmp(rel->cols[i].name, lfirst(lc)) == 0)
			{
				rel->cols[i].iskey = true;
				rel->has_key = true;
			}
		}
	}
}

/* The names of an index's columns */
static List *
index_columns(Relation relation, Oid indexoid)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	Form_pg_index index = (Form_pg_index) GETSTRUCT(tup);
	List	   *names = NIL;
	int			i;

	for (i = 0; i < index->indnkeyatts; i++)
	{
		AttrNumber	attnum = index->indkey.values[i];

		names = lappend(names,
						pstrdup(NameStr(TupleDescAttr(RelationGetDescr(relation),
													  attnum - 1)->attname)));
	}
	ReleaseSysCache(tup);
	return names;
}

/*
 * message.key.columns: "<table regex>:<col>,<col>;...".  Returns true if an
 * entry matches "schema.table" (its columns are then the key).
 */
static bool
key_from_option(KafkaCdcRelation *rel, const char *option)
{
	char	   *copy = pstrdup(option);
	char	   *qualified = psprintf("%s.%s", rel->nspname, rel->relname);
	char	   *item;
	char	   *save = NULL;

	for (item = strtok_r(copy, ";", &save); item;
		 item = strtok_r(NULL, ";", &save))
	{
		char	   *colon = strrchr(item, ':');
		char	   *col;
		char	   *colsave = NULL;
		int			i;

		*colon = '\0';
		while (*item == ' ')
			item++;
		if (!kfdw_cdc_list_matches(item, qualified))
			continue;
		for (col = strtok_r(colon + 1, ",", &colsave); col;
			 col = strtok_r(NULL, ",", &colsave))
		{
			while (*col == ' ')
				col++;
			for (i = 0; i < rel->ncols; i++)
				if (strcmp(rel->cols[i].name, col) == 0)
				{
					rel->cols[i].iskey = true;
					rel->has_key = true;
				}
		}
		return rel->has_key;
	}
	return false;
}

/*
 * The struct schema of the key (keys: its columns only) or of a row;
 * field is its field name in the envelope, or NULL.
 */
static void
append_struct_schema(StringInfo buf, KafkaCdcRelation *rel,
					 const KafkaCdcOptions *opts, bool keys, const char *name,
					 bool optional, const char *field)
{
	bool		first = true;
	int			i;

	appendStringInfoString(buf, "{\"type\":\"struct\",\"fields\":[");
	for (i = 0; i < rel->ncols; i++)
	{
		KafkaCdcColumn *col = &rel->cols[i];

		if (keys && !col->iskey)
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		kfdw_cdc_append_field_schema(buf, &col->type, opts, !col->notnull,
									 col->default_json, col->name);
	}
	appendStringInfo(buf, "],\"optional\":%s,\"name\":",
					 optional ? "true" : "false");
	kfdw_json_append_string(buf, name);
	if (field)
	{
		appendStringInfoString(buf, ",\"field\":");
		kfdw_json_append_string(buf, field);
	}
	appendStringInfoChar(buf, '}');
}

/*
 * The schema of a field (field NULL: of an array's items), in the order of
 * keys that Kafka Connect's JSON converter writes.
 */
void
kfdw_cdc_append_field_schema(StringInfo buf, KafkaCdcType *type,
							 const KafkaCdcOptions *opts, bool optional,
							 const char *deflt, const char *field)
{
	appendStringInfoChar(buf, '{');
	append_type_body(buf, type, opts);
	/* the body ends with the optional flag's key */
	appendStringInfoString(buf, optional ? "true" : "false");
	{
		const char *name = NULL;
		const char *doc = NULL;
		char	   *params = NULL;
		bool		adaptive = opts->time_mode == KFDW_TIME_ADAPTIVE;
		bool		micro = opts->time_mode == KFDW_TIME_ADAPTIVE_MICRO;
		bool		iso = opts->time_mode == KFDW_TIME_ISOSTRING;

		switch (type->kind)
		{
			case KFDW_KIND_NUMERIC:
				if (opts->decimal_mode != KFDW_DECIMAL_PRECISE)
					break;
				if (type->typmod >= (int32) VARHDRSZ)
				{
					int32		tm = type->typmod - VARHDRSZ;

					name = "org.apache.kafka.connect.data.Decimal";
					params = psprintf("{\"scale\":\"%d\",\"connect.decimal.precision\":\"%d\"}",
									  (int) (int16) (tm & 0xffff), (tm >> 16) & 0xffff);
				}
				else
				{
					name = "io.debezium.data.VariableScaleDecimal";
					doc = "Variable scaled decimal";
				}
				break;
			case KFDW_KIND_MONEY:
				if (opts->decimal_mode != KFDW_DECIMAL_PRECISE)
					break;
				name = "org.apache.kafka.connect.data.Decimal";
				params = "{\"scale\":\"2\"}";
				break;
			case KFDW_KIND_UUID:
				name = "io.debezium.data.Uuid";
				break;
			case KFDW_KIND_DATE:
				name = iso ? "io.debezium.time.IsoDate" :
					opts->time_mode == KFDW_TIME_CONNECT ?
					"org.apache.kafka.connect.data.Date" : "io.debezium.time.Date";
				break;
			case KFDW_KIND_TIME:
				if (iso)
					name = "io.debezium.time.IsoTime";
				else if (opts->time_mode == KFDW_TIME_CONNECT)
					name = "org.apache.kafka.connect.data.Time";
				else if (micro || !(adaptive && type->typmod >= 0 && type->typmod <= 3))
					name = "io.debezium.time.MicroTime";
				else
					name = "io.debezium.time.Time";
				break;
			case KFDW_KIND_TIMETZ:
				name = "io.debezium.time.ZonedTime";
				break;
			case KFDW_KIND_TIMESTAMP:
				if (iso)
					name = "io.debezium.time.IsoTimestamp";
				else if (opts->time_mode == KFDW_TIME_CONNECT)
					name = "org.apache.kafka.connect.data.Timestamp";
				else if (type->typmod >= 0 && type->typmod <= 3)
					name = "io.debezium.time.Timestamp";
				else
					name = "io.debezium.time.MicroTimestamp";
				break;
			case KFDW_KIND_TIMESTAMPTZ:
				name = "io.debezium.time.ZonedTimestamp";
				break;
			case KFDW_KIND_INTERVAL:
				name = opts->interval_string ? "io.debezium.time.Interval" :
					"io.debezium.time.MicroDuration";
				break;
			case KFDW_KIND_JSON:
				name = "io.debezium.data.Json";
				break;
			case KFDW_KIND_XML:
				name = "io.debezium.data.Xml";
				break;
			case KFDW_KIND_BITS:
				name = "io.debezium.data.Bits";
				params = psprintf("{\"length\":\"%d\"}",
								  type->typmod > 0 ? type->typmod : INT_MAX);
				break;
			case KFDW_KIND_ENUM:
				{
					StringInfoData p;

					name = "io.debezium.data.Enum";
					initStringInfo(&p);
					appendStringInfoString(&p, "{\"allowed\":");
					kfdw_json_append_string(&p, type->labels);
					appendStringInfoChar(&p, '}');
					params = p.data;
				}
				break;
			case KFDW_KIND_HSTORE:
				if (!opts->hstore_map)
					name = "io.debezium.data.Json";
				break;
			case KFDW_KIND_POINT:
				name = "io.debezium.data.geometry.Point";
				doc = "Geometry (POINT)";
				break;
			default:
				break;
		}
		if (name)
			appendStringInfo(buf, ",\"name\":\"%s\",\"version\":1", name);
		if (doc)
			appendStringInfo(buf, ",\"doc\":\"%s\"", doc);
		if (params)
			appendStringInfo(buf, ",\"parameters\":%s", params);
	}
	if (deflt)
		appendStringInfo(buf, ",\"default\":%s", deflt);
	if (field)
	{
		appendStringInfoString(buf, ",\"field\":");
		kfdw_json_append_string(buf, field);
	}
	appendStringInfoChar(buf, '}');
}

/*
 * "type" (and a struct's fields, an array's items, a map's keys and
 * values) of a field's schema, up to the key of its optional flag.
 */
static void
append_type_body(StringInfo buf, KafkaCdcType *type, const KafkaCdcOptions *opts)
{
	const char *t = "string";
	bool		micro_time;

	switch (type->kind)
	{
		case KFDW_KIND_INT16:
			t = "int16";
			break;
		case KFDW_KIND_INT32:
			t = "int32";
			break;
		case KFDW_KIND_INT64:
			t = "int64";
			break;
		case KFDW_KIND_FLOAT32:
			t = "float";
			break;
		case KFDW_KIND_FLOAT64:
			t = "double";
			break;
		case KFDW_KIND_BOOL:
		case KFDW_KIND_BIT1:
			t = "boolean";
			break;
		case KFDW_KIND_NUMERIC:
			if (opts->decimal_mode == KFDW_DECIMAL_DOUBLE)
				t = "double";
			else if (opts->decimal_mode == KFDW_DECIMAL_STRING)
				t = "string";
			else if (type->typmod >= (int32) VARHDRSZ)
				t = "bytes";
			else
			{
				appendStringInfoString(buf, "\"type\":\"struct\",\"fields\":["
									   "{\"type\":\"int32\",\"optional\":false,\"field\":\"scale\"},"
									   "{\"type\":\"bytes\",\"optional\":false,\"field\":\"value\"}],"
									   "\"optional\":");
				return;
			}
			break;
		case KFDW_KIND_MONEY:
			t = opts->decimal_mode == KFDW_DECIMAL_DOUBLE ? "double" :
				opts->decimal_mode == KFDW_DECIMAL_STRING ? "string" : "bytes";
			break;
		case KFDW_KIND_BYTEA:
			t = opts->binary_mode == KFDW_BINARY_BYTES ? "bytes" : "string";
			break;
		case KFDW_KIND_BITS:
			t = "bytes";
			break;
		case KFDW_KIND_DATE:
			t = opts->time_mode == KFDW_TIME_ISOSTRING ? "string" : "int32";
			break;
		case KFDW_KIND_TIME:
			micro_time = opts->time_mode == KFDW_TIME_ADAPTIVE_MICRO ||
				(opts->time_mode == KFDW_TIME_ADAPTIVE &&
				 !(type->typmod >= 0 && type->typmod <= 3));
			t = opts->time_mode == KFDW_TIME_ISOSTRING ? "string" :
				micro_time ? "int64" : "int32";
			break;
		case KFDW_KIND_TIMESTAMP:
			t = opts->time_mode == KFDW_TIME_ISOSTRING ? "string" : "int64";
			break;
		case KFDW_KIND_INTERVAL:
			t = opts->interval_string ? "string" : "int64";
			break;
		case KFDW_KIND_HSTORE:
			if (opts->hstore_map)
			{
				appendStringInfoString(buf, "\"type\":\"map\","
									   "\"keys\":{\"type\":\"string\",\"optional\":false},"
									   "\"values\":{\"type\":\"string\",\"optional\":true},"
									   "\"optional\":");
				return;
			}
			break;
		case KFDW_KIND_POINT:
			appendStringInfoString(buf, "\"type\":\"struct\",\"fields\":["
								   "{\"type\":\"double\",\"optional\":false,\"field\":\"x\"},"
								   "{\"type\":\"double\",\"optional\":false,\"field\":\"y\"},"
								   "{\"type\":\"bytes\",\"optional\":true,\"field\":\"wkb\"},"
								   "{\"type\":\"int32\",\"optional\":true,\"field\":\"srid\"}],"
								   "\"optional\":");
			return;
		case KFDW_KIND_ARRAY:
			appendStringInfoString(buf, "\"type\":\"array\",\"items\":");
			kfdw_cdc_append_field_schema(buf, type->elem, opts, true, NULL, NULL);
			appendStringInfoString(buf, ",\"optional\":");
			return;
		default:
			break;
	}
	appendStringInfo(buf, "\"type\":\"%s\",\"optional\":", t);
}
