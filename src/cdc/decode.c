/*-------------------------------------------------------------------------
 *
 * decode.c
 *		  pgoutput's messages to change events
 *
 * A stream's worker decodes its slot through PostgreSQL's logical decoding
 * and the built-in pgoutput plugin, in-process, as
 * pg_logical_slot_get_changes() does; this file is the output side of that
 * decoding context (its prepare_write and write callbacks).  Each pgoutput
 * message becomes rows of the table it names (KafkaCdcRow, values read with
 * the column types' input functions) and, through cdc/event.c, messages of
 * Debezium's envelope that cdc/delivery.c sends in the transaction they
 * belong to.  It also knows how a table's key and topic are found, which
 * the initial snapshot (cdc/snapshot.c) shares.
 *
 * Like PostgreSQL's logical replication worker (worker.c's apply_dispatch),
 * it keeps the relations pgoutput described in a hash by OID, and rebuilds
 * an entry when a Relation message says the table changed.
 *
 * IDENTIFICATION
 *		  src/cdc/decode.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/xlogutils.h"
#include "catalog/pg_class.h"
#include "libpq/pqformat.h"
#include "nodes/makefuncs.h"
#include "replication/logical.h"
#include "replication/logicalproto.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"

/* A relation of the pgoutput stream, by its OID */
typedef struct RelEntry
{
	Oid			relid;			/* hash key */
	KafkaCdcRelation rel;
	bool		skip;			/* kafka_fdw's own tables */
	bool		old_is_key;		/* old rows carry only the identity columns */
} RelEntry;

static const KafkaCdcConfig *config;	/* the stream being decoded */
static MemoryContext decode_cxt;	/* lives as long as the decoding */
static MemoryContext change_cxt;	/* reset for every pgoutput message */
static HTAB *relations;

static uint64 current_txn;		/* id of the open transaction */
static bool txn_open = false;

/* the transaction being decoded */
static TransactionId cur_xid;
static TimestampTz cur_commit_time;
static XLogRecPtr last_commit_lsn = InvalidXLogRecPtr;

/*
 * provide.transaction.metadata: the open transaction's counts, and the id
 * of its BEGIN or END event ("<xid>:<lsn>", as Debezium's: the LSN is the
 * position of the event, so BEGIN, END and each change differ).
 */
static MemoryContext txn_cxt;
static char *txn_id;
static int64 txn_total;
static List *txn_counts;		/* of KafkaCdcTxnCount */

static void prepare_write(LogicalDecodingContext *ctx, XLogRecPtr lsn,
						  TransactionId xid, bool last_write);
static void do_write(LogicalDecodingContext *ctx, XLogRecPtr lsn,
					 TransactionId xid, bool last_write);
static void handle_relation(LogicalRepRelation *lrel);
static void tuple_to_row(KafkaCdcRelation *rel, LogicalRepTupleData *tup,
						 KafkaCdcRow *row, KafkaCdcRow *old, bool key_only);
static void emit(RelEntry *entry, char op, KafkaCdcRow *before,
				 KafkaCdcRow *after, KafkaCdcRow *keyrow, XLogRecPtr lsn,
				 const char *keyheader, StringInfo otherkey);
static void fill_source(KafkaCdcSource *source, XLogRecPtr lsn);
static void handle_message(StringInfo in, XLogRecPtr lsn);
static void send_txn_event(bool begin);
static int64 count_event(const char *nspname, const char *relname);

/*
 * The decoding context of stream cfg, whose slot this process has
 * acquired: pgoutput (protocol 1) over the stream's publication, its output
 * turned into events here.  What the decoding keeps lives in cxt.
 */
LogicalDecodingContext *
kfdw_cdc_decode_start(const KafkaCdcConfig *cfg, MemoryContext cxt)
{
	List	   *options;
	HASHCTL		hctl;

	config = cfg;
	decode_cxt = cxt;
	change_cxt = AllocSetContextCreate(cxt, "kafka_fdw cdc change",
									   ALLOCSET_DEFAULT_SIZES);
	txn_cxt = AllocSetContextCreate(cxt, "kafka_fdw cdc transaction",
									ALLOCSET_DEFAULT_SIZES);

	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(Oid);
	hctl.entrysize = sizeof(RelEntry);
	hctl.hcxt = cxt;
	relations = hash_create("kafka_fdw cdc relations", 64, &hctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	options = list_make3(makeDefElem("proto_version", (Node *) makeString("1"), -1),
						 makeDefElem("publication_names",
									 (Node *) makeString((char *) quote_identifier(config->publication)),
									 -1),
						 makeDefElem("messages", (Node *) makeString("true"), -1));

	return CreateDecodingContext(InvalidXLogRecPtr, options, false,
								 XL_ROUTINE(.page_read = read_local_xlog_page,
											.segment_open = wal_segment_open,
											.segment_close = wal_segment_close),
								 prepare_write, do_write, NULL);
}

/*
 * Is a transaction's BEGIN decoded but not its COMMIT?  The slot is not
 * confirmed past what was read while one is.
 */
bool
kfdw_cdc_decode_in_txn(void)
{
	return txn_open;
}

/* The topic of a table of stream cfg */
char *
kfdw_cdc_topic(const KafkaCdcConfig *cfg, const char *nspname,
			   const char *relname)
{
	char	   *topic = psprintf("%s.%s.%s", cfg->topic_prefix, nspname, relname);
	char	   *c;

	/* as Debezium: what Kafka does not take in a topic name becomes "_" */
	for (c = topic; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			*c = '_';
	return topic;
}

static void
prepare_write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid,
			  bool last_write)
{
	resetStringInfo(ctx->out);
}

/*
 * A pgoutput message is ready in ctx->out: turn it into events.  lsn is
 * the position of the change (or of the commit).
 */
static void
do_write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid,
		 bool last_write)
{
	StringInfoData in;
	char		action;
	MemoryContext oldcxt;

	MemoryContextReset(change_cxt);
	oldcxt = MemoryContextSwitchTo(change_cxt);

	/*
	 * Input functions may run SQL (a domain's CHECK in PL/pgSQL): give them
	 * the decoding's historic snapshot, as pg_logical_slot_get_changes()
	 * has its query's.
	 */
	PushActiveSnapshot(GetTransactionSnapshot());

	in.data = ctx->out->data;
	in.len = ctx->out->len;
	in.maxlen = ctx->out->maxlen;
	in.cursor = 0;
	action = pq_getmsgbyte(&in);

	switch (action)
	{
		case LOGICAL_REP_MSG_BEGIN:
			{
				LogicalRepBeginData begin;

				logicalrep_read_begin(&in, &begin);
				cur_xid = begin.xid;
				cur_commit_time = begin.committime;
				/* lsn: of the first change that pgoutput publishes */
				current_txn = kfdw_cdc_txn_begin(lsn, begin.final_lsn,
												 begin.committime);
				txn_open = true;
				if (config->opts.txn_metadata)
				{
					MemoryContextReset(txn_cxt);
					txn_id = MemoryContextStrdup(txn_cxt,
												 psprintf("%u:" UINT64_FORMAT,
														  cur_xid, (uint64) lsn));
					txn_total = 0;
					txn_counts = NIL;
					send_txn_event(true);
				}
				break;
			}
		case LOGICAL_REP_MSG_COMMIT:
			{
				LogicalRepCommitData commit;
				logicalrep_read_commit(&in, &commit);
				if (config->opts.txn_metadata)
				{
					/* as Debezium: each event names the position it is at */
					txn_id = MemoryContextStrdup(txn_cxt,
												 psprintf("%u:" UINT64_FORMAT,
														  cur_xid, (uint64) lsn));
					send_txn_event(false);
				}
				kfdw_cdc_txn_end(current_txn, commit.end_lsn);
				txn_open = false;
				/* as Debezium: the position the commit message came at */
				last_commit_lsn = lsn;
				break;
			}
		case LOGICAL_REP_MSG_RELATION:
			{
				LogicalRepRelation *lrel = logicalrep_read_rel(&in);

				MemoryContextSwitchTo(oldcxt);
				handle_relation(lrel);
				MemoryContextSwitchTo(change_cxt);
				break;
			}
		case LOGICAL_REP_MSG_INSERT:
			{
				LogicalRepTupleData newtup;
				LogicalRepRelId relid = logicalrep_read_insert(&in, &newtup);
				RelEntry   *entry = hash_search(relations, &relid, HASH_FIND, NULL);
				KafkaCdcRow after;

				if (entry == NULL || entry->skip)
					break;
				tuple_to_row(&entry->rel, &newtup, &after, NULL, false);
				emit(entry, 'c', NULL, &after, &after, lsn, NULL, NULL);
				break;
			}
		case LOGICAL_REP_MSG_UPDATE:
			{
				LogicalRepTupleData oldtup;
				LogicalRepTupleData newtup;
				bool		has_old;
				LogicalRepRelId relid = logicalrep_read_update(&in, &has_old,
															   &oldtup, &newtup);
				RelEntry   *entry = hash_search(relations, &relid, HASH_FIND, NULL);
				KafkaCdcRow before;
				KafkaCdcRow after;

				if (entry == NULL || entry->skip)
					break;
				if (has_old)
					tuple_to_row(&entry->rel, &oldtup, &before, NULL,
								 entry->old_is_key);
				tuple_to_row(&entry->rel, &newtup, &after,
							 has_old ? &before : NULL, false);

				if (has_old && entry->rel.has_key)
				{
					StringInfoData oldkey;
					StringInfoData newkey;

					initStringInfo(&oldkey);
					initStringInfo(&newkey);
					kfdw_cdc_encode_key(&oldkey, &entry->rel, &before,
										&config->opts, false);
					kfdw_cdc_encode_key(&newkey, &entry->rel, &after,
										&config->opts, false);
					if (strcmp(oldkey.data, newkey.data) != 0)
					{
						/*
						 * As Debezium: a delete of the old key, a create of
						 * the new, each naming the other key in a header.
						 */
						emit(entry, 'd', &before, NULL, &before, lsn,
							 "__debezium.newkey", &newkey);
						emit(entry, 'c', NULL, &after, &after, lsn,
							 "__debezium.oldkey", &oldkey);
						break;
					}
				}
				emit(entry, 'u', has_old ? &before : NULL, &after, &after, lsn,
					 NULL, NULL);
				break;
			}
		case LOGICAL_REP_MSG_DELETE:
			{
				LogicalRepTupleData oldtup;
				LogicalRepRelId relid = logicalrep_read_delete(&in, &oldtup);
				RelEntry   *entry = hash_search(relations, &relid, HASH_FIND, NULL);
				KafkaCdcRow before;

				if (entry == NULL || entry->skip)
					break;
				tuple_to_row(&entry->rel, &oldtup, &before, NULL,
							 entry->old_is_key);
				emit(entry, 'd', &before, NULL, &before, lsn, NULL, NULL);
				break;
			}
		case LOGICAL_REP_MSG_TRUNCATE:
			{
				bool		cascade;
				bool		restart_seqs;
				List	   *relids = logicalrep_read_truncate(&in, &cascade,
															  &restart_seqs);
				ListCell   *lc;

				foreach(lc, relids)
				{
					LogicalRepRelId relid = lfirst_oid(lc);
					RelEntry   *entry = hash_search(relations, &relid, HASH_FIND, NULL);

					if (entry == NULL || entry->skip)
						continue;
					emit(entry, 't', NULL, NULL, NULL, lsn, NULL, NULL);
				}
				break;
			}
		case LOGICAL_REP_MSG_MESSAGE:
			handle_message(&in, lsn);
			break;
		default:
			/* origin and type messages carry no row changes */
			break;
	}

	PopActiveSnapshot();
	MemoryContextSwitchTo(oldcxt);
}

/*
 * A Relation message: (re)build what events need to know of the table.
 * pgoutput sends one before the first change of a table and again after
 * its definition changed, so later events have the new shape.
 */
static void
handle_relation(LogicalRepRelation *lrel)
{
	RelEntry   *entry;
	bool		found;
	MemoryContext oldcxt;
	int			i;

	entry = hash_search(relations, &lrel->remoteid, HASH_ENTER, &found);
	if (found)
	{
		/* the table's definition changed: forget the old one */
		for (i = 0; i < entry->rel.ncols; i++)
			pfree(entry->rel.cols[i].name);
		pfree(entry->rel.cols);
		pfree(entry->rel.nspname);
		pfree(entry->rel.relname);
		pfree(entry->rel.topic);
	}
	oldcxt = MemoryContextSwitchTo(decode_cxt);
	memset(&entry->rel, 0, sizeof(entry->rel));
	entry->relid = lrel->remoteid;
	entry->skip = strcmp(lrel->nspname, "kafka_fdw") == 0;
	entry->old_is_key = lrel->replident != REPLICA_IDENTITY_FULL;
	entry->rel.relid = lrel->remoteid;
	entry->rel.nspname = pstrdup(lrel->nspname);
	entry->rel.relname = pstrdup(lrel->relname);
	entry->rel.topic = kfdw_cdc_topic(config, lrel->nspname, lrel->relname);
	entry->rel.ncols = lrel->natts;
	entry->rel.cols = palloc0(sizeof(KafkaCdcColumn) * Max(lrel->natts, 1));
	for (i = 0; i < lrel->natts; i++)
	{
		KafkaCdcColumn *col = &entry->rel.cols[i];

		col->name = pstrdup(lrel->attnames[i]);
		col->typid = lrel->atttyps[i];
		col->isidentity = bms_is_member(i, lrel->attkeys);
		getTypeInputInfo(col->typid, &col->typinput, &col->typioparam);
	}
	if (!entry->skip)
		kfdw_cdc_describe_relation(&entry->rel, &config->opts,
								   config->topic_prefix);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Convert a pgoutput tuple (text values) into a row of Datums.  A value
 * that the WAL does not carry is left out, never sent as null: a column
 * left unchanged and TOASTed, unless the old row (REPLICA IDENTITY FULL)
 * has its value; and with key_only, every column of an old row that is not
 * in the replica identity (pgoutput sends those as nulls).
 */
static void
tuple_to_row(KafkaCdcRelation *rel, LogicalRepTupleData *tup, KafkaCdcRow *row,
			 KafkaCdcRow *old, bool key_only)
{
	int			n = Max(rel->ncols, 1);
	int			i;

	row->values = palloc0(sizeof(Datum) * n);
	row->isnull = palloc0(sizeof(bool) * n);
	row->present = palloc0(sizeof(bool) * n);
	row->unavailable = palloc0(sizeof(bool) * n);

	for (i = 0; i < rel->ncols && i < tup->ncols; i++)
	{
		KafkaCdcColumn *col = &rel->cols[i];

		if (key_only && !col->isidentity)
			continue;
		switch (tup->colstatus[i])
		{
			case LOGICALREP_COLUMN_NULL:
				row->isnull[i] = true;
				row->present[i] = true;
				break;
			case LOGICALREP_COLUMN_UNCHANGED:
				if (old && old->present[i])
				{
					row->values[i] = old->values[i];
					row->isnull[i] = old->isnull[i];
					row->present[i] = true;
				}
				else
					row->unavailable[i] = true;
				break;
			case LOGICALREP_COLUMN_TEXT:
				row->values[i] = OidInputFunctionCall(col->typinput,
													  tup->colvalues[i].data,
													  col->typioparam, -1);
				row->present[i] = true;
				break;
			default:
				elog(ERROR, "unexpected column status '%c' in change of table \"%s.%s\"",
					 tup->colstatus[i], rel->nspname, rel->relname);
		}
	}
}

/* The source block of an event at lsn of the transaction being decoded */
static void
fill_source(KafkaCdcSource *source, XLogRecPtr lsn)
{
	memset(source, 0, sizeof(*source));
	source->stream_name = config->topic_prefix;
	source->dbname = config->dbname;
	source->commit_time = cur_commit_time;
	source->xid = cur_xid;
	source->lsn = lsn;
	source->last_commit_lsn = last_commit_lsn;
	source->snapshot = "false";
}

/*
 * Send one change event (unless skipped.operations leaves it out), and
 * after a delete its tombstone.  keyheader, if given, names the header
 * that carries otherkey, the key's payload before or after a key change.
 */
static void
emit(RelEntry *entry, char op, KafkaCdcRow *before, KafkaCdcRow *after,
	 KafkaCdcRow *keyrow, XLogRecPtr lsn, const char *keyheader,
	 StringInfo otherkey)
{
	const KafkaCdcOptions *opts = &config->opts;
	KafkaCdcSource source;
	StringInfoData key;
	StringInfoData value;
	bool		has_key = false;

	if (kfdw_cdc_op_skipped(opts, op))
		return;

	fill_source(&source, lsn);
	if (opts->txn_metadata)
	{
		source.txn_id = psprintf("%u:" UINT64_FORMAT, cur_xid, (uint64) lsn);
		source.total_order = ++txn_total;
		source.collection_order = count_event(entry->rel.nspname,
											  entry->rel.relname);
	}

	initStringInfo(&key);
	if (keyrow)
		has_key = kfdw_cdc_encode_key(&key, &entry->rel, keyrow, opts, true);
	initStringInfo(&value);
	kfdw_cdc_encode_value(&value, op, &entry->rel, before, after, &source, opts);

	kfdw_cdc_produce(entry->rel.topic, has_key ? &key : NULL, &value,
					 kfdw_cdc_headers(config->topic_prefix, keyheader, otherkey),
					 current_txn);
	/* as Debezium: a tombstone after each delete, even of a keyless row */
	if (op == 'd' && opts->tombstones)
		kfdw_cdc_produce(entry->rel.topic, has_key ? &key : NULL, NULL,
						 kfdw_cdc_headers(config->topic_prefix, keyheader, otherkey),
						 current_txn);
}

/*
 * A logical decoding message: pgoutput's flags, LSN, prefix and content.
 * Published as Debezium's "m" event on <prefix>.message if its prefix is
 * wanted; a message outside a transaction is a transaction of its own for
 * the stream's delivery accounting.
 */
static void
handle_message(StringInfo in, XLogRecPtr lsn)
{
	uint8		flags = pq_getmsgbyte(in);
	XLogRecPtr	msg_lsn = pq_getmsgint64(in);
	const char *prefix = pq_getmsgstring(in);
	Size		len = pq_getmsgint(in, 4);
	const char *content = pq_getmsgbytes(in, len);
	bool		transactional = (flags & 1) != 0;
	KafkaCdcSource source;
	StringInfoData key;
	StringInfoData value;
	char	   *topic;
	uint64		txn = current_txn;

	if (!kfdw_cdc_message_wanted(&config->opts, prefix))
		return;

	fill_source(&source, msg_lsn);
	if (transactional && config->opts.txn_metadata)
	{
		/* counted under its prefix among the transaction's collections */
		source.txn_id = psprintf("%u:" UINT64_FORMAT, cur_xid, (uint64) msg_lsn);
		source.total_order = ++txn_total;
		source.collection_order = count_event(NULL, prefix);
	}
	if (!transactional)
	{
		source.xid = InvalidTransactionId;
		source.commit_time = GetCurrentTimestamp();
		txn = kfdw_cdc_txn_begin(lsn, lsn, source.commit_time);
	}
	initStringInfo(&key);
	initStringInfo(&value);
	kfdw_cdc_encode_message(&key, &value, prefix, content, len, &source,
							&config->opts);
	topic = psprintf("%s.message", config->topic_prefix);
	kfdw_cdc_produce(topic, &key, &value, NULL, txn);
	if (!transactional)
		kfdw_cdc_txn_end(txn, lsn);
}

/* provide.transaction.metadata: the open transaction's BEGIN or END */
static void
send_txn_event(bool begin)
{
	StringInfoData key;
	StringInfoData value;

	initStringInfo(&key);
	initStringInfo(&value);
	kfdw_cdc_encode_txn(&key, &value, begin, txn_id, cur_commit_time,
						txn_counts, txn_total, &config->opts);
	kfdw_cdc_produce(psprintf("%s.transaction", config->topic_prefix),
					 &key, &value, NULL, current_txn);
}

/*
 * Count an event of a table (nspname NULL: a message, relname its prefix)
 * in the open transaction; its order there
 */
static int64
count_event(const char *nspname, const char *relname)
{
	char	   *name = nspname ? psprintf("%s.%s", nspname, relname) :
		pstrdup(relname);
	KafkaCdcTxnCount *c;
	ListCell   *lc;
	MemoryContext oldcxt;

	foreach(lc, txn_counts)
	{
		c = lfirst(lc);
		if (strcmp(c->collection, name) == 0)
			return ++c->count;
	}
	oldcxt = MemoryContextSwitchTo(txn_cxt);
	c = palloc(sizeof(KafkaCdcTxnCount));
	c->collection = pstrdup(name);
	c->count = 1;
	txn_counts = lappend(txn_counts, c);
	MemoryContextSwitchTo(oldcxt);
	return 1;
}
