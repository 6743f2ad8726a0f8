/*-------------------------------------------------------------------------
 *
 * apply.c
 *		  Rows of an ingest stream into its target table
 *
 * The worker decodes each message into a row of the source foreign table
 * (format/decode.c) or, in the debezium mode, into a change event
 * (ingest/debezium.c); here the row becomes a change of the target: an
 * insert, an upsert by the target's primary key, a delete or a truncate.
 * Target columns take the source column of the same name.  Changes go
 * through the executor's simple-relation routines, as the apply worker of
 * PostgreSQL's logical replication does (replication/logical/worker.c):
 * constraints, indexes, triggers, generated columns and partition routing
 * all apply.  The worker runs this as the stream's owner in a
 * security-restricted operation.
 *
 * IDENTIFICATION
 *		  src/ingest/apply.c
 *
 *-------------------------------------------------------------------------
 */
#include "ingest/ingest.h"

#include "access/detoast.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "access/attmap.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "access/tupconvert.h"
#include "fdw/fdw.h"
#include "foreign/foreign.h"
#include "ingest/debezium.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/syscache.h"

/* The target of a batch: the relation, opened for one transaction */
struct KafkaIngestTarget
{
	Oid			relid;
	KafkaIngestMode mode;
	KafkaTableOptions *source;
	const KafkaIngestOptions *opts;
	MemoryContext cxt;

	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	ModifyTableState *mtstate;	/* partitioned targets */
	PartitionTupleRouting *proute;
	EPQState	epqstate;
	TupleTableSlot *slot;		/* the new row */

	int			natts;
	AttrNumber *src_attnum;		/* by target attnum - 1: source attnum, or 0 */
	int			nkeys;			/* primary key columns */
	AttrNumber *key_attnums;	/* target attnums */
	Oid			pkindex;
	FmgrInfo   *key_infuncs;	/* input functions of the key columns */
	Oid		   *key_ioparams;

	Datum	   *values;			/* a change's row, by target attnum - 1 */
	bool	   *nulls;
	bool	   *present;
	ExprState **defaults;		/* of columns, once asked for */
	bool	   *default_known;
	KafkaDbzTarget *dbz;

	/* key changes (debezium mode): the other key, and a row looked up */
	Datum	   *other_values;
	bool	   *other_nulls;
	bool	   *other_present;
	Datum	   *row_values;
	bool	   *row_nulls;
};

static void open_relation(KafkaIngestTarget *t);
static void close_relation(KafkaIngestTarget *t);
static void map_columns(KafkaIngestTarget *t, Relation rel);
static void find_key(KafkaIngestTarget *t, Relation rel, bool required);
static void key_from_message(KafkaIngestTarget *t,
							 const rd_kafka_message_t *msg,
							 KafkaIngestChange *change);
static void apply_truncate(KafkaIngestTarget *t);
static bool other_key(KafkaIngestTarget *t, const rd_kafka_message_t *msg,
					  const char *header);
static int	apply_key_change_delete(KafkaIngestTarget *t,
									KafkaIngestChange *change);
static bool lookup_row(KafkaIngestTarget *t, const Datum *key,
					   const bool *keynulls, Datum *row, bool *rownulls);
static ResultRelInfo *route(KafkaIngestTarget *t, TupleTableSlot **slot,
							AttrMap **map);
static void set_defaults(KafkaIngestTarget *t, TupleTableSlot *slot,
						 const bool *present);
static Oid	leaf_key_index(KafkaIngestTarget *t, ResultRelInfo *rri);
static char *qualified_name(Oid relid);

/*
 * ingest_create's checks of the target: an ordinary or partitioned table
 * that the owner may write to, with a column in common with the source,
 * and a primary key for the modes that need one.
 */
void
kfdw_ingest_check_target(Oid target, Oid source, KafkaIngestMode mode,
						 Oid owner)
{
	Relation	rel = table_open(target, AccessShareLock);
	KafkaIngestTarget t = {0};
	AclMode		needed = ACL_INSERT;
	KafkaTableOptions sopts;
	int			i;
	bool		any = false;

	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" is not a table",
						RelationGetRelationName(rel)),
				 errdetail("An ingest stream writes into an ordinary or partitioned table.")));

	if (mode != KFDW_INGEST_APPEND)
		needed |= ACL_UPDATE | ACL_DELETE | ACL_SELECT;
	if (mode == KFDW_INGEST_DEBEZIUM)
		needed |= ACL_TRUNCATE;
	if (pg_class_aclcheck(target, owner, needed) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s",
						RelationGetRelationName(rel)),
				 errdetail("The stream's owner needs %s on its target.",
						   mode == KFDW_INGEST_APPEND ? "INSERT" :
						   mode == KFDW_INGEST_UPSERT ? "SELECT, INSERT, UPDATE and DELETE" :
						   "SELECT, INSERT, UPDATE, DELETE and TRUNCATE")));
	if (check_enable_rls(target, owner, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("target \"%s\" has row-level security enabled for the stream's owner",
						RelationGetRelationName(rel)),
				 errhint("Ingest into a table without row-level security, or as a role that bypasses it.")));

	if (mode != KFDW_INGEST_DEBEZIUM)
	{
		kfdw_get_table_options(source, &sopts);
		t.source = &sopts;
		map_columns(&t, rel);
		for (i = 0; i < t.natts; i++)
			any |= (t.src_attnum[i] != 0);
		if (!any)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("target \"%s\" has no column of the same name as a column of source \"%s\"",
							RelationGetRelationName(rel), get_rel_name(source)),
					 errdetail("Target columns are filled from the source's columns of the same name.")));
	}
	find_key(&t, rel, mode != KFDW_INGEST_APPEND);
	if (mode == KFDW_INGEST_UPSERT)
	{
		for (i = 0; i < t.nkeys; i++)
		{
			if (t.src_attnum[t.key_attnums[i] - 1] == 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("source \"%s\" has no column \"%s\" for the primary key of target \"%s\"",
								get_rel_name(source),
								NameStr(TupleDescAttr(rel->rd_att, t.key_attnums[i] - 1)->attname),
								RelationGetRelationName(rel))));
		}
	}
	table_close(rel, AccessShareLock);
}

/*
 * The dead-letter table: a table the owner may insert into, with only
 * columns the worker knows how to fill (or that have defaults).
 */
void
kfdw_ingest_check_dead_letter(Oid relid, Oid owner)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;
	bool		any = false;

	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("dead-letter table \"%s\" is not a table",
						RelationGetRelationName(rel))));
	if (pg_class_aclcheck(relid, owner, ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s",
						RelationGetRelationName(rel)),
				 errdetail("The stream's owner needs INSERT on its dead-letter table.")));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *n = NameStr(att->attname);

		if (att->attisdropped)
			continue;
		if (strcmp(n, "stream") == 0 || strcmp(n, "topic") == 0 ||
			strcmp(n, "partition") == 0 || strcmp(n, "offset") == 0 ||
			strcmp(n, "key") == 0 || strcmp(n, "value") == 0 ||
			strcmp(n, "timestamp") == 0 || strcmp(n, "error") == 0)
			any = true;
	}
	if (!any)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("dead-letter table \"%s\" has none of the columns stream, topic, partition, offset, key, value, timestamp, error",
						RelationGetRelationName(rel))));
	table_close(rel, AccessShareLock);
}

/*
 * Open the target for the changes of one transaction.  Runs in the
 * transaction, as the stream's owner; everything lives in cxt, a context
 * the caller resets after kfdw_ingest_target_close().
 */
KafkaIngestTarget *
kfdw_ingest_target_open(Oid target, KafkaTableOptions *source,
						KafkaIngestMode mode, const KafkaIngestOptions *opts,
						MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	KafkaIngestTarget *t = palloc0(sizeof(KafkaIngestTarget));

	t->relid = target;
	t->mode = mode;
	t->source = source;
	t->cxt = cxt;
	t->opts = opts;
	open_relation(t);
	MemoryContextSwitchTo(oldcxt);
	return t;
}

static void
open_relation(KafkaIngestTarget *t)
{
	RangeTblEntry *rte;
	Relation	rel;
	AclMode		needed = ACL_INSERT;
	MemoryContext oldcxt = MemoryContextSwitchTo(t->cxt);

	rel = t->rel = table_open(t->relid, RowExclusiveLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" is not a table",
						RelationGetRelationName(rel))));
	/* the owner's rights, each transaction: a REVOKE stops the stream */
	if (t->mode != KFDW_INGEST_APPEND)
		needed |= ACL_UPDATE | ACL_DELETE | ACL_SELECT;
	if (pg_class_aclcheck(t->relid, GetUserId(), needed) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s",
						RelationGetRelationName(rel))));
	if (check_enable_rls(t->relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("target \"%s\" has row-level security enabled for the stream's owner",
						RelationGetRelationName(rel))));

	t->natts = RelationGetDescr(rel)->natts;
	if (t->mode != KFDW_INGEST_DEBEZIUM)
		map_columns(t, rel);
	find_key(t, rel, t->mode != KFDW_INGEST_APPEND);
	t->values = palloc0(sizeof(Datum) * t->natts);
	t->nulls = palloc0(sizeof(bool) * t->natts);
	t->present = palloc0(sizeof(bool) * t->natts);
	t->defaults = palloc0(sizeof(ExprState *) * t->natts);
	t->default_known = palloc0(sizeof(bool) * t->natts);
	if (t->mode == KFDW_INGEST_DEBEZIUM && t->dbz == NULL)
	{
		int			i;

		t->dbz = kfdw_dbz_prepare(rel, t->cxt);
		for (i = 0; t->opts && i < t->opts->ndbz; i++)
			(void) kfdw_dbz_set_option(t->dbz, t->opts->dbz_names[i],
									   t->opts->dbz_values[i]);
	}
	if (t->mode == KFDW_INGEST_DEBEZIUM)
	{
		t->other_values = palloc0(sizeof(Datum) * t->natts);
		t->other_nulls = palloc0(sizeof(bool) * t->natts);
		t->other_present = palloc0(sizeof(bool) * t->natts);
		t->row_values = palloc0(sizeof(Datum) * t->natts);
		t->row_nulls = palloc0(sizeof(bool) * t->natts);
	}

	t->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = t->relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(t->estate, list_make1(rte));
	t->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(t->rri, rel, 1, NULL, 0);
	t->estate->es_output_cid = GetCurrentCommandId(true);
	if (rel->rd_rel->relkind == RELKIND_RELATION)
		ExecOpenIndices(t->rri, false);
	else
	{
		t->mtstate = makeNode(ModifyTableState);
		t->mtstate->ps.plan = NULL;
		t->mtstate->ps.state = t->estate;
		t->mtstate->operation = CMD_INSERT;
		t->mtstate->resultRelInfo = t->rri;
		t->proute = ExecSetupPartitionTupleRouting(t->estate, rel);
	}
	EvalPlanQualInit(&t->epqstate, t->estate, NULL, NIL, -1);
	t->slot = ExecInitExtraTupleSlot(t->estate, RelationGetDescr(rel),
									 &TTSOpsVirtual);
	AfterTriggerBeginQuery();
	MemoryContextSwitchTo(oldcxt);
}

/* The end of a batch: fire the queued AFTER triggers and let go */
void
kfdw_ingest_target_close(KafkaIngestTarget *t)
{
	close_relation(t);
}

static void
close_relation(KafkaIngestTarget *t)
{
	if (t->rel == NULL)
		return;
	AfterTriggerEndQuery(t->estate);
	EvalPlanQualEnd(&t->epqstate);
	if (t->proute)
		ExecCleanupTupleRouting(t->mtstate, t->proute);
	else
		ExecCloseIndices(t->rri);
	ExecResetTupleTable(t->estate->es_tupleTable, false);
	FreeExecutorState(t->estate);
	table_close(t->rel, NoLock);
	t->rel = NULL;
	t->proute = NULL;
	t->mtstate = NULL;
}

/* Each target column takes the source column of its name, if any */
static void
map_columns(KafkaIngestTarget *t, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	KafkaTableOptions *src = t->source;
	int			i,
				j;

	t->natts = desc->natts;
	t->src_attnum = palloc0(sizeof(AttrNumber) * desc->natts);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		for (j = 0; j < src->natts; j++)
		{
			KafkaColumn *col = &src->columns[j];

			if (col->dropped || strcmp(col->attname, NameStr(att->attname)) != 0)
				continue;
			if (col->typid != att->atttypid)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" is of type %s in the source but %s in the target",
								NameStr(att->attname),
								format_type_be(col->typid),
								format_type_be(att->atttypid)),
						 errhint("Give the source column the target's type: the source decodes each message into its columns' types.")));
			t->src_attnum[i] = col->attnum;
		}
	}
}

/* The target's primary key: its columns and their input functions */
static void
find_key(KafkaIngestTarget *t, Relation rel, bool required)
{
	Bitmapset  *keys;
	int			k = -1;
	int			n = 0;

	t->pkindex = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(t->pkindex))
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
					 errmsg("target \"%s\" has no primary key",
							RelationGetRelationName(rel)),
					 errdetail("The upsert and debezium modes find rows by the target's primary key.")));
		t->nkeys = 0;
		return;
	}
	keys = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	t->nkeys = bms_num_members(keys);
	t->key_attnums = palloc(sizeof(AttrNumber) * Max(t->nkeys, 1));
	t->key_infuncs = palloc(sizeof(FmgrInfo) * Max(t->nkeys, 1));
	t->key_ioparams = palloc(sizeof(Oid) * Max(t->nkeys, 1));
	while ((k = bms_next_member(keys, k)) >= 0)
	{
		AttrNumber	a = k + FirstLowInvalidHeapAttributeNumber;
		Oid			infunc;

		t->key_attnums[n] = a;
		getTypeInputInfo(TupleDescAttr(rel->rd_att, a - 1)->atttypid,
						 &infunc, &t->key_ioparams[n]);
		fmgr_info_cxt(infunc, &t->key_infuncs[n], CurrentMemoryContext);
		n++;
	}
}

/*
 * The change a row of the source makes: append inserts it; upsert
 * replaces the row of its primary key, or deletes it for a tombstone.
 */
void
kfdw_ingest_change_from_row(KafkaIngestTarget *t, TupleTableSlot *srcslot,
							const rd_kafka_message_t *msg,
							KafkaIngestChange *change)
{
	int			i;

	change->values = t->values;
	change->nulls = t->nulls;
	change->present = t->present;
	change->other_key = false;
	for (i = 0; i < t->natts; i++)
	{
		AttrNumber	s = t->src_attnum[i];

		t->present[i] = (s != 0);
		t->values[i] = s ? srcslot->tts_values[s - 1] : (Datum) 0;
		t->nulls[i] = s ? srcslot->tts_isnull[s - 1] : true;
	}
	if (t->mode == KFDW_INGEST_APPEND)
		change->op = 'i';
	else if (msg->payload != NULL)
		change->op = 'u';
	else
	{
		change->op = 'd';
		key_from_message(t, msg, change);
	}
}

/*
 * A tombstone's primary key: columns that the source reads from the
 * message key keep their value; the others are fields of the key read as
 * a JSON object, or, for a one-column key, the whole key.
 */
static void
key_from_message(KafkaIngestTarget *t, const rd_kafka_message_t *msg,
				 KafkaIngestChange *change)
{
	Jsonb	   *obj = NULL;
	char	   *keytext = NULL;
	int			i;

	for (i = 0; i < t->nkeys; i++)
	{
		AttrNumber	a = t->key_attnums[i];
		AttrNumber	s = t->src_attnum[a - 1];
		const char *name = NameStr(TupleDescAttr(t->rel->rd_att, a - 1)->attname);
		char	   *text = NULL;

		if (s != 0 && s == t->source->key_attnum && !change->nulls[a - 1])
			continue;
		if (msg->key == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a message with a null value and a null key deletes nothing"),
					 errdetail("In the upsert mode a tombstone's key gives the primary key of the row to delete.")));
		if (keytext == NULL)
		{
			keytext = pnstrdup(msg->key, msg->key_len);
			if (pg_verify_mbstr(GetDatabaseEncoding(), keytext, msg->key_len, true) &&
				keytext[strspn(keytext, " \t\r\n")] == '{')
				obj = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														 CStringGetDatum(keytext)));
		}
		if (obj != NULL)
		{
			JsonbValue	k;
			JsonbValue *v;

			k.type = jbvString;
			k.val.string.val = (char *) name;
			k.val.string.len = strlen(name);
			v = findJsonbValueFromContainer(&obj->root, JB_FOBJECT, &k);
			if (v == NULL || v->type == jbvNull)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the key of a tombstone has no field \"%s\" of the primary key",
								name)));
			if (v->type == jbvString)
				text = pnstrdup(v->val.string.val, v->val.string.len);
			else if (v->type == jbvNumeric)
				text = DatumGetCString(DirectFunctionCall1(numeric_out,
														   NumericGetDatum(v->val.numeric)));
			else if (v->type == jbvBool)
				text = v->val.boolean ? "true" : "false";
			else
				text = JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		}
		else if (t->nkeys == 1)
			text = keytext;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the key of a tombstone is not a JSON object with the fields of the primary key")));
		change->values[a - 1] = InputFunctionCall(&t->key_infuncs[i], text,
												  t->key_ioparams[i],
												  TupleDescAttr(t->rel->rd_att, a - 1)->atttypmod);
		change->nulls[a - 1] = false;
		change->present[a - 1] = true;
	}
}

/*
 * The change a Debezium event makes.  A key change comes as a delete of the
 * old key and a create of the new one, maybe on two partitions and so in
 * either order, and the create lacks the columns whose unchanged value the
 * WAL does not carry (TOASTed ones): each names the other key, so that the
 * applier moves the old row's values to the new key (see kfdw_ingest_apply).
 */
void
kfdw_ingest_change_from_debezium(KafkaIngestTarget *t,
								 const rd_kafka_message_t *msg,
								 KafkaIngestChange *change)
{
	char		op;

	change->values = t->values;
	change->nulls = t->nulls;
	change->present = t->present;
	change->other_key = false;
	change->other_values = t->other_values;
	change->other_nulls = t->other_nulls;
	memset(t->present, 0, sizeof(bool) * t->natts);
	op = kfdw_dbz_decode(t->dbz, msg->key, msg->key ? (int) msg->key_len : -1,
						 msg->payload, msg->payload ? (int) msg->len : -1,
						 t->values, t->nulls, t->present);
	switch (op)
	{
		case 'c':
		case 'r':
		case 'u':
			change->op = 'u';
			break;
		case 'd':
			change->op = 'd';
			break;
		case 't':
			change->op = 't';
			break;
		default:
			change->op = 0;
			break;
	}
	if (op == 'd')
		change->other_key = other_key(t, msg, "__debezium.newkey");
	else if (op == 'c')
		change->other_key = other_key(t, msg, "__debezium.oldkey");
}

/*
 * The other key of a key change, from the message's header, into
 * t->other_values; false when the header is missing or does not give every
 * column of the target's primary key.
 */
static bool
other_key(KafkaIngestTarget *t, const rd_kafka_message_t *msg,
		  const char *header)
{
	rd_kafka_headers_t *headers;
	const void *value;
	size_t		size;
	int			i;

	if (t->nkeys == 0 ||
		rd_kafka_message_headers((rd_kafka_message_t *) msg, &headers) !=
		RD_KAFKA_RESP_ERR_NO_ERROR ||
		rd_kafka_header_get_last(headers, header, &value, &size) !=
		RD_KAFKA_RESP_ERR_NO_ERROR || value == NULL)
		return false;
	if (!kfdw_dbz_decode_key(t->dbz, value, (int) size, t->other_values,
							 t->other_nulls, t->other_present))
		return false;
	for (i = 0; i < t->nkeys; i++)
	{
		AttrNumber	a = t->key_attnums[i];

		if (!t->other_present[a - 1] || t->other_nulls[a - 1])
			return false;
	}
	return true;
}

/*
 * Apply a change to the target.  Returns the number of rows it wrote (a
 * delete of a missing row writes none).
 */
int
kfdw_ingest_apply(KafkaIngestTarget *t, KafkaIngestChange *change)
{
	TupleTableSlot *slot = t->slot;
	ResultRelInfo *rri = t->rri;
	AttrMap    *map = NULL;
	TupleTableSlot *found;
	int			i;
	bool		all_present = true;
	Oid			index;

	if (change->op == 0)
		return 0;
	if (change->op == 't')
	{
		apply_truncate(t);
		return 1;
	}
	if (change->op == 'd' && change->other_key)
		return apply_key_change_delete(t, change);

	ExecClearTuple(slot);
	for (i = 0; i < t->natts; i++)
	{
		slot->tts_values[i] = change->values[i];
		slot->tts_isnull[i] = change->nulls[i];
		if (!change->present[i])
			all_present = false;
	}

	/* upsert and delete: earlier changes of the batch must be seen */
	if (change->op != 'i')
	{
		CommandCounterIncrement();
		t->estate->es_output_cid = GetCurrentCommandId(true);
	}

	if (change->op == 'i' || (change->op == 'u' && all_present))
	{
		/* a column the message does not have takes its default */
		if (!all_present)
			set_defaults(t, slot, change->present);
		ExecStoreVirtualTuple(slot);
		if (t->proute)
			rri = route(t, &slot, &map);
		if (change->op == 'i')
		{
			ExecSimpleRelationInsert(rri, t->estate, slot);
			return 1;
		}
	}
	else
	{
		ExecStoreVirtualTuple(slot);
		if (t->proute)
			rri = route(t, &slot, &map);
	}

	index = t->proute ? leaf_key_index(t, rri) : t->pkindex;
	found = ExecGetReturningSlot(t->estate, rri);
	if (!RelationFindReplTupleByIndex(rri->ri_RelationDesc, index,
									  LockTupleExclusive, slot, found))
	{
		if (change->op == 'd')
			return 0;
		if (!all_present)
		{
			/*
			 * A new row: what the event does not have comes from the row
			 * of the old key when this is a key change whose delete is
			 * not applied yet, else takes its default.
			 */
			if (change->other_key &&
				lookup_row(t, change->other_values, change->other_nulls,
						   t->row_values, t->row_nulls))
			{
				for (i = 0; i < t->natts; i++)
				{
					if (change->present[i])
						continue;
					change->values[i] = t->row_values[i];
					change->nulls[i] = t->row_nulls[i];
					change->present[i] = true;
				}
			}
			change->op = 'i';
			change->other_key = false;
			return kfdw_ingest_apply(t, change);
		}
		ExecSimpleRelationInsert(rri, t->estate, slot);
		return 1;
	}
	if (change->op == 'd')
	{
		ExecSimpleRelationDelete(rri, t->estate, &t->epqstate, found);
		return 1;
	}

	/* the stored row's values where the message has none */
	if (!all_present)
	{
		slot_getallattrs(found);
		for (i = 0; i < slot->tts_tupleDescriptor->natts; i++)
		{
			AttrNumber	root = map ? map->attnums[i] : i + 1;

			if (root > 0 && !change->present[root - 1])
			{
				slot->tts_values[i] = found->tts_values[i];
				slot->tts_isnull[i] = found->tts_isnull[i];
			}
		}
	}
	ExecSimpleRelationUpdate(rri, t->estate, &t->epqstate, found, slot);
	return 1;
}

/*
 * The delete of a key change.  When the create of the new key came first,
 * it took the old row's values: delete the old row.  Otherwise move the
 * old row to the new key (delete it and insert its values under the new
 * key), so that the create, when it comes, finds a row that has the
 * values it lacks.  Returns the number of rows written.
 */
static int
apply_key_change_delete(KafkaIngestTarget *t, KafkaIngestChange *change)
{
	int			i;

	change->other_key = false;
	if (lookup_row(t, change->other_values, change->other_nulls, NULL, NULL) ||
		!lookup_row(t, change->values, change->nulls, t->row_values,
					t->row_nulls))
		return kfdw_ingest_apply(t, change);

	(void) kfdw_ingest_apply(t, change);
	for (i = 0; i < t->nkeys; i++)
	{
		AttrNumber	a = t->key_attnums[i];

		t->row_values[a - 1] = change->other_values[a - 1];
		t->row_nulls[a - 1] = false;
	}
	change->op = 'i';
	change->values = t->row_values;
	change->nulls = t->row_nulls;
	for (i = 0; i < t->natts; i++)
		change->present[i] = true;
	return kfdw_ingest_apply(t, change) + 1;
}

/*
 * Find the row of the target whose primary key is key (by target attnum
 * - 1, key columns only) and, when row is not NULL, copy its columns (by
 * target attnum - 1, TOASTed values fetched) into row and rownulls.  Only
 * key changes need it, and they are rare: the slots are its own.
 */
static bool
lookup_row(KafkaIngestTarget *t, const Datum *key, const bool *keynulls,
		   Datum *row, bool *rownulls)
{
	TupleDesc	desc = RelationGetDescr(t->rel);
	TupleTableSlot *search = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	TupleTableSlot *leaf_search = search;
	TupleTableSlot *out;
	Relation	rel = t->rel;
	Oid			index = t->pkindex;
	AttrMap    *map = NULL;
	bool		found;
	int			i;

	ExecClearTuple(search);
	for (i = 0; i < t->natts; i++)
	{
		search->tts_values[i] = (Datum) 0;
		search->tts_isnull[i] = true;
	}
	for (i = 0; i < t->nkeys; i++)
	{
		AttrNumber	a = t->key_attnums[i];

		search->tts_values[a - 1] = key[a - 1];
		search->tts_isnull[a - 1] = keynulls[a - 1];
	}
	ExecStoreVirtualTuple(search);
	if (t->proute)
	{
		ResultRelInfo *leaf = ExecFindPartition(t->mtstate, t->rri, t->proute,
												search, t->estate);

		rel = leaf->ri_RelationDesc;
		index = leaf_key_index(t, leaf);
		if (leaf->ri_RootToPartitionMap != NULL)
		{
			map = leaf->ri_RootToPartitionMap->attrMap;
			leaf_search = MakeSingleTupleTableSlot(RelationGetDescr(rel),
												   &TTSOpsVirtual);
			execute_attr_map_slot(map, search, leaf_search);
		}
	}

	CommandCounterIncrement();
	t->estate->es_output_cid = GetCurrentCommandId(true);
	out = table_slot_create(rel, NULL);
	found = RelationFindReplTupleByIndex(rel, index, LockTupleExclusive,
										 leaf_search, out);
	if (found && row != NULL)
	{
		TupleDesc	outdesc = out->tts_tupleDescriptor;

		for (i = 0; i < t->natts; i++)
		{
			row[i] = (Datum) 0;
			rownulls[i] = true;
		}
		slot_getallattrs(out);
		for (i = 0; i < outdesc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(outdesc, i);
			AttrNumber	root = map ? map->attnums[i] : i + 1;
			Datum		d = out->tts_values[i];

			if (root <= 0 || att->attisdropped)
				continue;
			rownulls[root - 1] = out->tts_isnull[i];
			if (out->tts_isnull[i])
				row[root - 1] = (Datum) 0;
			else if (att->attlen == -1 && VARATT_IS_EXTERNAL(DatumGetPointer(d)))
				row[root - 1] = PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(d)));
			else
				row[root - 1] = datumCopy(d, att->attbyval, att->attlen);
		}
	}
	ExecDropSingleTupleTableSlot(out);
	if (leaf_search != search)
		ExecDropSingleTupleTableSlot(leaf_search);
	ExecDropSingleTupleTableSlot(search);
	return found;
}

/* Columns not present take their default, as an INSERT would give them */
static void
set_defaults(KafkaIngestTarget *t, TupleTableSlot *slot, const bool *present)
{
	int			i;

	for (i = 0; i < t->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(slot->tts_tupleDescriptor, i);

		if (present[i] || att->attisdropped || att->attgenerated)
			continue;
		if (!t->default_known[i])
		{
			/* kept for the batch: in the target's context, not the row's */
			MemoryContext oldcxt = MemoryContextSwitchTo(t->cxt);
			Expr	   *defexpr = (Expr *) build_column_default(t->rel, i + 1);

			t->defaults[i] = defexpr ? ExecInitExpr(expression_planner(defexpr), NULL) : NULL;
			t->default_known[i] = true;
			MemoryContextSwitchTo(oldcxt);
		}
		if (t->defaults[i] == NULL)
		{
			slot->tts_values[i] = (Datum) 0;
			slot->tts_isnull[i] = true;
		}
		else
			slot->tts_values[i] = ExecEvalExprSwitchContext(t->defaults[i],
															GetPerTupleExprContext(t->estate),
															&slot->tts_isnull[i]);
	}
}

/*
 * The leaf partition of a row, and the row in the leaf's column order
 * (*map: the leaf's attributes' numbers in the target, or NULL when the
 * two agree).
 */
static ResultRelInfo *
route(KafkaIngestTarget *t, TupleTableSlot **slot, AttrMap **map)
{
	ResultRelInfo *leaf;
	TupleConversionMap *conv;

	leaf = ExecFindPartition(t->mtstate, t->rri, t->proute, *slot, t->estate);
	conv = leaf->ri_RootToPartitionMap;
	*map = NULL;
	if (conv != NULL)
	{
		*slot = execute_attr_map_slot(conv->attrMap, *slot,
									  leaf->ri_PartitionTupleSlot);
		*map = conv->attrMap;
	}
	return leaf;
}

/* The primary key index of a leaf partition */
static Oid
leaf_key_index(KafkaIngestTarget *t, ResultRelInfo *rri)
{
	Oid			index = RelationGetPrimaryKeyIndex(rri->ri_RelationDesc);

	if (!OidIsValid(index))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
				 errmsg("partition \"%s\" of target \"%s\" has no primary key",
						RelationGetRelationName(rri->ri_RelationDesc),
						RelationGetRelationName(t->rel))));
	return index;
}

/*
 * A Debezium truncate event: TRUNCATE the target (and its partitions),
 * with the owner's TRUNCATE privilege, between the batch's other changes.
 */
static void
apply_truncate(KafkaIngestTarget *t)
{
	List	   *relids;
	List	   *rels = NIL;
	List	   *logged = NIL;
	ListCell   *lc;

	if (pg_class_aclcheck(t->relid, GetUserId(), ACL_TRUNCATE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s",
						get_rel_name(t->relid)),
				 errdetail("A truncate event needs TRUNCATE on the target.")));
	close_relation(t);
	LockRelationOid(t->relid, AccessExclusiveLock);
	relids = find_all_inheritors(t->relid, AccessExclusiveLock, NULL);
	foreach(lc, relids)
	{
		Relation	r = table_open(lfirst_oid(lc), NoLock);

		if (r->rd_rel->relkind == RELKIND_RELATION)
		{
			rels = lappend(rels, r);
			if (RelationIsLogicallyLogged(r))
				logged = lappend_oid(logged, lfirst_oid(lc));
		}
		else
			table_close(r, NoLock);
	}
	ExecuteTruncateGuts(rels, relids, logged, DROP_RESTRICT, false);
	foreach(lc, rels)
		table_close((Relation) lfirst(lc), NoLock);
	CommandCounterIncrement();
	open_relation(t);
}

/*
 * Keep a message that could not be ingested, with why, in the dead-letter
 * table (in the batch's transaction).  Columns are matched by name; key
 * and value go into bytea columns as they are, into text columns as text
 * (bytes that are not text in the escape form of bytea).
 */
void
kfdw_ingest_dead_letter(Oid relid, const char *stream,
						const rd_kafka_message_t *msg, const char *error)
{
	Relation	rel = table_open(relid, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData sql;
	StringInfoData cols;
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	Oid		   *types = palloc0(sizeof(Oid) * desc->natts);
	char	   *nulls = palloc0(desc->natts + 1);
	int			n = 0;
	int			i;

	initStringInfo(&sql);
	initStringInfo(&cols);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		const char *data = NULL;
		int			len = -1;
		bool		isnull = false;
		Datum		v = (Datum) 0;
		Oid			typ = att->atttypid;

		if (att->attisdropped)
			continue;
		if (strcmp(name, "key") == 0 || strcmp(name, "value") == 0)
		{
			if (name[0] == 'k')
				data = msg->key, len = msg->key ? (int) msg->key_len : -1;
			else
				data = msg->payload, len = msg->payload ? (int) msg->len : -1;
			if (data == NULL)
				isnull = true;
			else if (typ == BYTEAOID)
			{
				bytea	   *b = palloc(len + VARHDRSZ);

				SET_VARSIZE(b, len + VARHDRSZ);
				memcpy(VARDATA(b), data, len);
				v = PointerGetDatum(b);
			}
			else
			{
				if (pg_verify_mbstr(GetDatabaseEncoding(), data, len, true) &&
					memchr(data, '\0', len) == NULL)
					v = PointerGetDatum(cstring_to_text_with_len(data, len));
				else
				{
					bytea	   *b = palloc(len + VARHDRSZ);

					SET_VARSIZE(b, len + VARHDRSZ);
					memcpy(VARDATA(b), data, len);
					v = CStringGetTextDatum(DatumGetCString(DirectFunctionCall1(byteaout,
																				PointerGetDatum(b))));
				}
				typ = TEXTOID;
			}
		}
		else if (strcmp(name, "stream") == 0)
			v = CStringGetTextDatum(stream), typ = TEXTOID;
		else if (strcmp(name, "topic") == 0)
			v = CStringGetTextDatum(rd_kafka_topic_name(msg->rkt)), typ = TEXTOID;
		else if (strcmp(name, "partition") == 0)
			v = Int32GetDatum(msg->partition), typ = INT4OID;
		else if (strcmp(name, "offset") == 0)
			v = Int64GetDatum(msg->offset), typ = INT8OID;
		else if (strcmp(name, "error") == 0)
			v = CStringGetTextDatum(error), typ = TEXTOID;
		else if (strcmp(name, "timestamp") == 0)
		{
			rd_kafka_timestamp_type_t tstype;
			int64		ms = rd_kafka_message_timestamp(msg, &tstype);

			isnull = (ms < 0);
			v = TimestampTzGetDatum(kfdw_timestamp_from_kafka(Max(ms, 0)));
			typ = TIMESTAMPTZOID;
		}
		else
			continue;

		appendStringInfo(&cols, "%s%s", n ? ", " : "", quote_identifier(name));
		values[n] = v;
		types[n] = typ;
		nulls[n] = isnull ? 'n' : ' ';
		n++;
	}
	table_close(rel, NoLock);

	/* $n::type casts to the column's type, by assignment */
	appendStringInfo(&sql, "INSERT INTO %s (%s) VALUES (", qualified_name(relid),
					 cols.data);
	for (i = 0; i < n; i++)
		appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
	appendStringInfoChar(&sql, ')');

	SPI_connect();
	if (SPI_execute_with_args(sql.data, n, types, values, nulls, false, 0) !=
		SPI_OK_INSERT)
		elog(ERROR, "could not insert into dead-letter table \"%s\"",
			 get_rel_name(relid));
	SPI_finish();
}

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}
