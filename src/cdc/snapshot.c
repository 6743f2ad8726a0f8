/*-------------------------------------------------------------------------
 *
 * snapshot.c
 *		  The initial snapshot of a change data capture stream
 *
 * A stream created with snapshot => true first publishes, as events of op
 * "r", every row that the tables of its publication hold: their published
 * columns, the rows their row filters keep.  The tables are read in the
 * snapshot of the slot's creation (as CREATE_REPLICATION_SLOT ...
 * USE_SNAPSHOT gives it, and as PostgreSQL's tablesync.c reads a table for
 * a new subscription), so that nothing is missed or doubled between the
 * snapshot and the stream that decodes the slot from there on.  The last
 * row of the snapshot says so in its source ("snapshot":"last").
 *
 * The slot is kept only once Kafka has every snapshot message; a worker
 * that fails before starts over with a new slot and a new snapshot.
 *
 * IDENTIFICATION
 *		  src/cdc/snapshot.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "replication/snapbuild.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* Rows fetched at a time while reading the initial snapshot */
#define CDC_SNAPSHOT_BATCH 1000

/*
 * The latest row read, held back until the next one is read: only then is
 * it known whether it is its table's last row, or the snapshot's, which
 * its source says as Debezium's does ("last_in_data_collection", "last").
 */
typedef struct HeldRow
{
	KafkaCdcRelation *rel;		/* its table; NULL when no row is held */
	KafkaCdcRow row;
	bool		first_of_table;
	bool		first;			/* of the snapshot */
	MemoryContext cxt;			/* its values; reset once it is sent */
	const KafkaCdcConfig *config;
	bool		any_sent;
} HeldRow;

static void read_table(const KafkaCdcConfig *config, const char *nspname,
					   const char *relname, List *attnames,
					   const char *rowfilter, KafkaCdcSource *source,
					   uint64 txn_id, HeldRow *held);
static void send_held(HeldRow *held, KafkaCdcSource *source, uint64 txn_id,
					  bool last_of_table, bool last);

/*
 * Create the slot of stream config and publish, as op "r", every row of
 * the publication's tables in the slot's own snapshot; return once Kafka
 * has them all, with the slot persisted and released.
 */
void
kfdw_cdc_snapshot(const KafkaCdcConfig *config)
{
	LogicalDecodingContext *ctx;
	Snapshot	snap;
	KafkaCdcSource source;
	HeldRow		held;
	uint64		txn_id;
	bool		none_pending;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	uint64		ntables;
	uint64		i;
	SPITupleTable *tables;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	kfdw_cdc_set_state(KFDW_CDC_SNAPSHOT);
	/* a slot left over by an earlier run of this stream */
	kfdw_cdc_drop_slot(config->slot_name);

	StartTransactionCommand();
	XactIsoLevel = XACT_REPEATABLE_READ;
	ctx = kfdw_cdc_new_slot(config->slot_name, true);
	snap = SnapBuildInitialSnapshot(ctx->snapshot_builder);
	RestoreTransactionSnapshot(snap, MyProc);
	FreeDecodingContext(ctx);

	memset(&source, 0, sizeof(source));
	source.stream_name = config->topic_prefix;
	source.dbname = config->dbname;
	source.commit_time = GetCurrentTimestamp();
	source.xid = InvalidTransactionId;
	source.lsn = MyReplicationSlot->data.confirmed_flush;
	source.last_commit_lsn = InvalidXLogRecPtr;
	source.snapshot = "true";

	txn_id = kfdw_cdc_txn_begin(InvalidXLogRecPtr, InvalidXLogRecPtr,
								source.commit_time);

	/* the tables are read, and their rows encoded, as the stream's owner */
	kfdw_cdc_become_owner(config->owner, &save_userid, &save_sec_context);
	save_nestlevel = NewGUCNestLevel();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	held.rel = NULL;
	held.config = config;
	held.any_sent = false;
	held.cxt = AllocSetContextCreate(CurrentMemoryContext,
									 "kafka_fdw cdc snapshot",
									 ALLOCSET_DEFAULT_SIZES);
	values[0] = CStringGetTextDatum(config->publication);
	if (SPI_execute_with_args("SELECT schemaname::pg_catalog.text, "
							  "tablename::pg_catalog.text, "
							  "attnames::pg_catalog.text[], rowfilter "
							  "FROM pg_catalog.pg_publication_tables "
							  "WHERE pubname OPERATOR(pg_catalog.=) $1 "
							  "AND schemaname OPERATOR(pg_catalog.<>) 'kafka_fdw' "
							  "ORDER BY 1, 2",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the tables of publication \"%s\"",
			 config->publication);
	ntables = SPI_processed;
	tables = SPI_tuptable;
	for (i = 0; i < ntables; i++)
	{
		HeapTuple	tup = tables->vals[i];
		TupleDesc	desc = tables->tupdesc;
		bool		isnull;
		Datum		attnames = SPI_getbinval(tup, desc, 3, &isnull);
		List	   *names = NIL;

		if (!isnull)
		{
			ArrayType  *arr = DatumGetArrayTypeP(attnames);
			Datum	   *elems;
			int			nelems;
			int			j;

			deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, NULL, &nelems);
			for (j = 0; j < nelems; j++)
				names = lappend(names, TextDatumGetCString(elems[j]));
		}
		read_table(config, SPI_getvalue(tup, desc, 1),
				   SPI_getvalue(tup, desc, 2), names,
				   SPI_getvalue(tup, desc, 4), &source, txn_id, &held);
	}

	/* the row still held is the snapshot's last */
	send_held(&held, &source, txn_id, true, true);
	MemoryContextDelete(held.cxt);
	SPI_finish();
	PopActiveSnapshot();
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	CommitTransactionCommand();

	kfdw_cdc_txn_end(txn_id, MyReplicationSlot->data.confirmed_flush);
	kfdw_cdc_wait_delivered();
	(void) kfdw_cdc_txn_confirmable(&none_pending);

	ReplicationSlotPersist();
	ReplicationSlotRelease();
}

/*
 * Publish every row of one table (its published columns, the rows its row
 * filter keeps) as op "r".  Each row is held back until the next one is
 * read, here or in a later table.
 */
static void
read_table(const KafkaCdcConfig *config, const char *nspname,
		   const char *relname, List *attnames, const char *rowfilter,
		   KafkaCdcSource *source, uint64 txn_id, HeldRow *held)
{
	StringInfoData sql;
	Oid			relid;
	Relation	relation;
	KafkaCdcRelation *rel;
	char		relkind;
	ListCell   *lc;
	Portal		portal;
	bool		first_batch;
	int			i;

	relid = RangeVarGetRelid(makeRangeVar(pstrdup(nspname), pstrdup(relname), -1),
							 AccessShareLock, false);
	relation = relation_open(relid, NoLock);
	relkind = relation->rd_rel->relkind;

	/* published columns: the column list, or every column */
	if (attnames == NIL)
	{
		for (i = 0; i < RelationGetDescr(relation)->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(relation), i);

			if (!att->attisdropped && att->attgenerated == '\0')
				attnames = lappend(attnames, pstrdup(NameStr(att->attname)));
		}
	}

	/* lives until the snapshot ends: a row of it may be held that long */
	rel = palloc0(sizeof(KafkaCdcRelation));
	rel->relid = relid;
	rel->nspname = pstrdup(nspname);
	rel->relname = pstrdup(relname);
	rel->topic = kfdw_cdc_topic(config, nspname, relname);
	rel->ncols = list_length(attnames);
	rel->cols = palloc0(sizeof(KafkaCdcColumn) * Max(rel->ncols, 1));
	i = 0;
	foreach(lc, attnames)
	{
		char	   *attname = lfirst(lc);
		AttrNumber	attnum = get_attnum(relid, attname);

		rel->cols[i].name = attname;
		rel->cols[i].typid = get_atttype(relid, attnum);
		i++;
	}
	relation_close(relation, NoLock);

	/* types, key and schemas, as the stream will describe the table */
	kfdw_cdc_describe_relation(rel, &config->opts, config->topic_prefix);

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	foreach(lc, attnames)
	{
		if (lc != list_head(attnames))
			appendStringInfoString(&sql, ", ");
		appendStringInfoString(&sql, quote_identifier(lfirst(lc)));
	}
	appendStringInfo(&sql, " FROM %s%s",
					 relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ",
					 quote_qualified_identifier(nspname, relname));
	if (rowfilter)
		appendStringInfo(&sql, " WHERE %s", rowfilter);

	portal = SPI_cursor_open_with_args(NULL, sql.data, 0, NULL, NULL, NULL,
									   true, 0);
	for (first_batch = true;; first_batch = false)
	{
		uint64		n;

		SPI_cursor_fetch(portal, true, CDC_SNAPSHOT_BATCH);
		if (SPI_processed == 0)
			break;
		for (n = 0; n < SPI_processed; n++)
		{
			HeapTuple	tup = SPI_tuptable->vals[n];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			int			ncols = Max(rel->ncols, 1);
			MemoryContext oldcxt;

			CHECK_FOR_INTERRUPTS();
			/* the row held back is not the last: send it */
			send_held(held, source, txn_id, held->rel != rel, false);

			/* hold this one, its values copied out of the fetched batch */
			oldcxt = MemoryContextSwitchTo(held->cxt);
			held->row.values = palloc(sizeof(Datum) * ncols);
			held->row.isnull = palloc(sizeof(bool) * ncols);
			held->row.present = palloc(sizeof(bool) * ncols);
			for (i = 0; i < rel->ncols; i++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, i);
				Datum		value = SPI_getbinval(tup, desc, i + 1,
												  &held->row.isnull[i]);

				held->row.values[i] = held->row.isnull[i] ? (Datum) 0 :
					datumCopy(value, att->attbyval, att->attlen);
				held->row.present[i] = true;
			}
			held->row.unavailable = NULL;
			MemoryContextSwitchTo(oldcxt);
			held->first_of_table = (n == 0 && first_batch);
			held->first = !held->any_sent && held->first_of_table;
			held->rel = rel;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
}

/*
 * Encode and send the row held back, if any, with the snapshot marker of
 * its place: "first" (the snapshot's first row), "last" (its last),
 * "last_in_data_collection" and "first_in_data_collection" (its table's),
 * "true" otherwise.
 */
static void
send_held(HeldRow *held, KafkaCdcSource *source, uint64 txn_id,
		  bool last_of_table, bool last)
{
	const KafkaCdcOptions *opts = &held->config->opts;
	StringInfoData key;
	StringInfoData value;
	MemoryContext oldcxt;
	bool		has_key;

	if (held->rel == NULL)
		return;

	oldcxt = MemoryContextSwitchTo(held->cxt);
	if (held->first)
		source->snapshot = "first";
	else if (last)
		source->snapshot = "last";
	else if (last_of_table)
		source->snapshot = "last_in_data_collection";
	else if (held->first_of_table)
		source->snapshot = "first_in_data_collection";
	else
		source->snapshot = "true";
	initStringInfo(&key);
	initStringInfo(&value);
	kfdw_cdc_snapshot_values = true;
	has_key = kfdw_cdc_encode_key(&key, held->rel, &held->row, opts, true);
	kfdw_cdc_encode_value(&value, 'r', held->rel, NULL, &held->row, source,
						  opts);
	kfdw_cdc_snapshot_values = false;
	kfdw_cdc_produce(held->rel->topic, has_key ? &key : NULL, &value,
					 kfdw_cdc_headers(held->config->topic_prefix, NULL, NULL),
					 txn_id);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(held->cxt);
	held->rel = NULL;
	held->any_sent = true;
}
