/*-------------------------------------------------------------------------
 *
 * group.c
 *		  Consumer groups of scans: which group a scan reads for, and the
 *		  offsets it read, committed to the group when PostgreSQL commits
 *
 * A scan of a table with the option group.id (or, when the table has none,
 * in a session that sets kafka_fdw.group_id) starts each partition where
 * the group's committed offset says (ranges.c), and the offsets it read
 * wait here until the transaction ends: when it has committed, the next
 * offset of every partition read is committed to the group, so a
 * statement run again (a cron job) reads what came since.  On rollback,
 * or when the subtransaction of the scan aborts, nothing is committed and
 * the same messages are read again.  PostgreSQL commits first: a failure
 * to commit to Kafka then is a WARNING, and the messages are read again
 * by the next scan of the group (at least once).
 *
 * The commit itself waits for the brokers in XACT_EVENT_COMMIT, where
 * nothing may fail, at most connect_timeout_ms.  The handle it uses is
 * taken in XACT_EVENT_PRE_COMMIT, while catalogs can still be read, and
 * pinned until then.
 *
 * IDENTIFICATION
 *		  src/fdw/group.c
 *
 *-------------------------------------------------------------------------
 */
#include "fdw/fdw.h"

#include "access/xact.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/* One partition's next offset to commit for a group */
typedef struct PendingOffset
{
	Oid			serverid;
	Oid			userid;
	char	   *group;
	char	   *topic;
	int32		partition;
	int64		next;
	SubTransactionId subid;		/* subtransaction whose scan read it */
} PendingOffset;

/* A handle taken at pre-commit for the commits of one server and user */
typedef struct CommitHandle
{
	Oid			serverid;
	Oid			userid;
	KafkaHandle *handle;
} CommitHandle;

/* kafka_fdw.group_id */
static char *scan_group_id = NULL;

/* Offsets read in this transaction, in TopMemoryContext */
static List *pending = NIL;
static List *commit_handles = NIL;
static bool callbacks_registered = false;

static void commit_pending(void);
static void forget_pending(void);
static void take_handles(void);
static void group_xact_callback(XactEvent event, void *arg);
static void group_subxact_callback(SubXactEvent event,
								   SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);

/*
 * The settings of scans, called from _PG_init (whether or not the library
 * is preloaded).
 */
void
kfdw_define_scan_gucs(void)
{
	DefineCustomStringVariable("kafka_fdw.group_id",
							   "Kafka consumer group of scans of tables without the option group.id.",
							   "A scan for a group starts where the group's committed offsets say and commits the offsets it read when the transaction commits.  Empty: no group.",
							   &scan_group_id,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);
}

/*
 * The consumer group a scan of the table reads for: the table's option
 * group.id, else kafka_fdw.group_id, else none (NULL).  *latest says where
 * a partition starts that the group has no offset for (option
 * group.start): at the high watermark, else at the low one.
 */
char *
kfdw_scan_group(Oid relid, bool *latest)
{
	ForeignTable *table = GetForeignTable(relid);
	char	   *group = NULL;
	ListCell   *lc;

	*latest = false;
	foreach(lc, table->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "group.id") == 0)
			group = defGetString(def);
		else if (strcmp(def->defname, "group.start") == 0)
			*latest = strcmp(defGetString(def), "latest") == 0;
	}
	if (group == NULL && scan_group_id != NULL && scan_group_id[0] != '\0')
		group = pstrdup(scan_group_id);
	return group;
}

/*
 * A scan of the current subtransaction read partition of topic up to
 * next - 1 for group: commit next when the transaction commits (the
 * highest of what every scan read).
 */
void
kfdw_group_read(Oid serverid, Oid userid, const char *group,
				const char *topic, int32 partition, int64 next)
{
	MemoryContext oldcxt;
	PendingOffset *p;
	ListCell   *lc;

	if (!callbacks_registered)
	{
		RegisterXactCallback(group_xact_callback, NULL);
		RegisterSubXactCallback(group_subxact_callback, NULL);
		callbacks_registered = true;
	}

	foreach(lc, pending)
	{
		p = (PendingOffset *) lfirst(lc);
		if (p->serverid == serverid && p->userid == userid &&
			p->partition == partition && p->subid == GetCurrentSubTransactionId() &&
			strcmp(p->group, group) == 0 && strcmp(p->topic, topic) == 0)
		{
			p->next = Max(p->next, next);
			return;
		}
	}

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	p = palloc(sizeof(PendingOffset));
	p->serverid = serverid;
	p->userid = userid;
	p->group = pstrdup(group);
	p->topic = pstrdup(topic);
	p->partition = partition;
	p->next = next;
	p->subid = GetCurrentSubTransactionId();
	pending = lappend(pending, p);
	MemoryContextSwitchTo(oldcxt);
}

static void
group_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			take_handles();
			break;
		case XACT_EVENT_COMMIT:
			commit_pending();
			forget_pending();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (pending != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that read a Kafka consumer group")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			forget_pending();
			break;
		default:
			break;
	}
}

/*
 * What a subtransaction read belongs to its parent when it commits, and
 * is forgotten when it aborts.
 */
static void
group_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	foreach(lc, pending)
	{
		PendingOffset *p = (PendingOffset *) lfirst(lc);

		if (p->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			p->subid = parentSubid;
		else if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			pending = foreach_delete_current(pending, lc);
			pfree(p->group);
			pfree(p->topic);
			pfree(p);
		}
	}
}

/*
 * Pre-commit: a consumer handle of each server and user that has offsets
 * to commit, pinned so that it lives until the commit.
 */
static void
take_handles(void)
{
	ListCell   *lc,
			   *lc2;

	foreach(lc, pending)
	{
		PendingOffset *p = (PendingOffset *) lfirst(lc);
		CommitHandle *ch = NULL;
		MemoryContext oldcxt;
		KafkaHandle *handle;

		foreach(lc2, commit_handles)
		{
			CommitHandle *c = (CommitHandle *) lfirst(lc2);

			if (c->serverid == p->serverid && c->userid == p->userid)
				ch = c;
		}
		if (ch)
			continue;

		handle = kfdw_acquire_handle(p->serverid, p->userid,
									 KFDW_HANDLE_CONSUMER);
		kfdw_release_handle(handle);
		kfdw_pin_handle(handle);
		oldcxt = MemoryContextSwitchTo(TopMemoryContext);
		ch = palloc(sizeof(CommitHandle));
		ch->serverid = p->serverid;
		ch->userid = p->userid;
		ch->handle = handle;
		commit_handles = lappend(commit_handles, ch);
		MemoryContextSwitchTo(oldcxt);
	}
}

/*
 * PostgreSQL has committed: commit the offsets to each group, one request
 * per server, user and group.  Nothing here may throw.
 */
static void
commit_pending(void)
{
	ListCell   *lc;

	while (pending != NIL)
	{
		PendingOffset *first = (PendingOffset *) linitial(pending);
		rd_kafka_topic_partition_list_t *list;
		KafkaHandle *handle = NULL;
		char		errstr[512];
		int			n = 0;

		foreach(lc, commit_handles)
		{
			CommitHandle *c = (CommitHandle *) lfirst(lc);

			if (c->serverid == first->serverid && c->userid == first->userid)
				handle = c->handle;
		}

		/* the offsets of the same server, user and group, taken off */
		list = rd_kafka_topic_partition_list_new(list_length(pending));
		foreach(lc, pending)
		{
			PendingOffset *p = (PendingOffset *) lfirst(lc);
			rd_kafka_topic_partition_t *tp;

			if (p == first)
				continue;
			if (p->serverid != first->serverid || p->userid != first->userid ||
				strcmp(p->group, first->group) != 0)
				continue;
			tp = rd_kafka_topic_partition_list_find(list, p->topic,
													p->partition);
			if (tp == NULL)
			{
				tp = rd_kafka_topic_partition_list_add(list, p->topic,
													   p->partition);
				tp->offset = p->next;
				n++;
			}
			else
				tp->offset = Max(tp->offset, p->next);
			pending = foreach_delete_current(pending, lc);
			pfree(p->group);
			pfree(p->topic);
			pfree(p);
		}
		{
			rd_kafka_topic_partition_t *tp;

			tp = rd_kafka_topic_partition_list_find(list, first->topic,
													first->partition);
			if (tp == NULL)
			{
				tp = rd_kafka_topic_partition_list_add(list, first->topic,
													   first->partition);
				tp->offset = first->next;
				n++;
			}
			else
				tp->offset = Max(tp->offset, first->next);
		}

		if (handle == NULL)
			ereport(WARNING,
					(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
					 errmsg("could not commit the offsets of Kafka consumer group \"%s\"",
							first->group),
					 errdetail("No Kafka client was ready when the transaction committed."),
					 errhint("The messages read will be read again by the next scan of the group.")));
		else if (!kfdw_group_commit(handle, first->group, list, errstr,
									sizeof(errstr)))
			ereport(WARNING,
					(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
					 errmsg("could not commit the offsets of Kafka consumer group \"%s\"",
							first->group),
					 errdetail_internal("%s", errstr),
					 errhint("The transaction has committed; the messages read will be read again by the next scan of the group.")));
		else
			elog(DEBUG1, "kafka_fdw: committed %d offsets of group \"%s\"",
				 n, first->group);

		rd_kafka_topic_partition_list_destroy(list);
		pending = list_delete_first(pending);
		pfree(first->group);
		pfree(first->topic);
		pfree(first);
	}
}

/* Forget the offsets read, and give the pinned handles back */
static void
forget_pending(void)
{
	ListCell   *lc;

	foreach(lc, pending)
	{
		PendingOffset *p = (PendingOffset *) lfirst(lc);

		pfree(p->group);
		pfree(p->topic);
		pfree(p);
	}
	list_free(pending);
	pending = NIL;

	foreach(lc, commit_handles)
	{
		CommitHandle *c = (CommitHandle *) lfirst(lc);

		kfdw_unpin_handle(c->handle);
		pfree(c);
	}
	list_free(commit_handles);
	commit_handles = NIL;
}
