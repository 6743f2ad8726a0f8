/*-------------------------------------------------------------------------
 *
 * debezium_sql.c
 *		  kafka_fdw.debezium_decode(): what the debezium mode makes of an event
 *
 * The decoder of ingest streams' debezium mode, callable from SQL: one
 * event (and its message key) for a target table gives its op and the
 * row, as to_jsonb writes it, with only the columns the event gives.
 * Type input runs as the caller, who needs SELECT on the target.
 *
 * IDENTIFICATION
 *		  src/ingest/debezium_sql.c
 *
 *-------------------------------------------------------------------------
 */
#include "ingest/debezium.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(kafka_fdw_debezium_decode);

static void set_options(KafkaDbzTarget *t, Jsonb *options);
static Datum row_jsonb(Relation rel, Datum *values, bool *nulls,
					   bool *present);

/*
 * kafka_fdw.debezium_decode(event text, target regclass, key text,
 *                           options jsonb, OUT op text, OUT row jsonb)
 */
Datum
kafka_fdw_debezium_decode(PG_FUNCTION_ARGS)
{
	text	   *event = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	text	   *key = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	Oid			relid;
	TupleDesc	resdesc;
	Relation	rel;
	AclResult	aclresult;
	MemoryContext cxt;
	KafkaDbzTarget *t;
	int			natts;
	Datum	   *values;
	bool	   *nulls;
	bool	   *present;
	char		op;
	Datum		result[2];
	bool		result_nulls[2] = {true, true};

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null")));
	relid = PG_GETARG_OID(1);
	if (get_call_result_type(fcinfo, NULL, &resdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
	rel = relation_open(relid, AccessShareLock);
	switch (rel->rd_rel->relkind)
	{
		case RELKIND_RELATION:
		case RELKIND_PARTITIONED_TABLE:
		case RELKIND_FOREIGN_TABLE:
		case RELKIND_VIEW:
		case RELKIND_MATVIEW:
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a table", RelationGetRelationName(rel))));
	}

	cxt = AllocSetContextCreate(CurrentMemoryContext, "kafka_fdw debezium_decode",
								ALLOCSET_DEFAULT_SIZES);
	t = kfdw_dbz_prepare(rel, cxt);
	if (!PG_ARGISNULL(3))
		set_options(t, PG_GETARG_JSONB_P(3));

	natts = RelationGetDescr(rel)->natts;
	values = palloc(sizeof(Datum) * Max(natts, 1));
	nulls = palloc(sizeof(bool) * Max(natts, 1));
	present = palloc(sizeof(bool) * Max(natts, 1));
	op = kfdw_dbz_decode(t,
						 key ? VARDATA_ANY(key) : NULL,
						 key ? VARSIZE_ANY_EXHDR(key) : -1,
						 event ? VARDATA_ANY(event) : NULL,
						 event ? VARSIZE_ANY_EXHDR(event) : -1,
						 values, nulls, present);
	if (op != 0)
	{
		char		optext[2] = {op, '\0'};

		result[0] = CStringGetTextDatum(optext);
		result_nulls[0] = false;
		result[1] = row_jsonb(rel, values, nulls, present);
		result_nulls[1] = false;
	}
	relation_close(rel, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(resdesc),
													  result, result_nulls)));
}

/* The options object: Debezium's option names, string values */
static void
set_options(KafkaDbzTarget *t, Jsonb *options)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *name = NULL;

	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *value;

		if (tok == WJB_KEY)
		{
			name = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		if (v.type == jbvString)
			value = pnstrdup(v.val.string.val, v.val.string.len);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("value of option \"%s\" must be a string", name)));
		if (!kfdw_dbz_set_option(t, name, value))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\"", name),
					 errhint("Valid options are: %s.", kfdw_dbz_option_names)));
	}
}

/* The decoded row as to_jsonb writes it, only the columns present */
static Datum
row_jsonb(Relation rel, Datum *values, bool *nulls, bool *present)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool	   *isnull = palloc(sizeof(bool) * Max(desc->natts, 1));
	HeapTuple	tuple;
	Datum		json;
	Datum		jsonb;
	int			i;

	for (i = 0; i < desc->natts; i++)
		isnull[i] = !present[i] || nulls[i];
	tuple = heap_form_tuple(desc, values, isnull);
	json = DirectFunctionCall1(row_to_json, heap_copy_tuple_as_datum(tuple, desc));
	jsonb = DirectFunctionCall1(jsonb_in,
								CStringGetDatum(TextDatumGetCString(json)));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!present[i] && !att->attisdropped)
			jsonb = DirectFunctionCall2(jsonb_delete, jsonb,
										CStringGetTextDatum(NameStr(att->attname)));
	}
	return jsonb;
}
