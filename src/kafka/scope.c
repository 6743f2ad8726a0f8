/*-------------------------------------------------------------------------
 *
 * scope.c
 *		  Lists of objects that belong to the (sub)transaction that took them
 *
 * What is not palloc'd and outlives a statement that fails (a consumer
 * checked out by a scan the executor never ends, ...) is put on a
 * KafkaScopedList with the subtransaction that took it.  The owner of the
 * list calls kfdw_scoped_xact_end() and kfdw_scoped_subxact_end() from its
 * transaction callbacks: what a committed subtransaction took passes to
 * its parent; what an aborted one took, and whatever is left when the top
 * transaction ends, is released.
 *
 * IDENTIFICATION
 *		  src/kafka/scope.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka/kafka.h"

#include "utils/memutils.h"

typedef struct KafkaScoped
{
	void	   *object;
	SubTransactionId subid;
} KafkaScoped;

static void release_owned(KafkaScopedList *list, SubTransactionId subid);

/* Put object on the list, owned by the current subtransaction */
void
kfdw_scoped_add(KafkaScopedList *list, void *object)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	KafkaScoped *item = palloc(sizeof(KafkaScoped));

	item->object = object;
	item->subid = GetCurrentSubTransactionId();
	list->items = lappend(list->items, item);
	MemoryContextSwitchTo(oldcxt);
}

/* Take object off the list (given back by its user); no-op if not on it */
void
kfdw_scoped_remove(KafkaScopedList *list, void *object)
{
	ListCell   *lc;

	foreach(lc, list->items)
	{
		KafkaScoped *item = (KafkaScoped *) lfirst(lc);

		if (item->object == object)
		{
			list->items = foreach_delete_current(list->items, lc);
			pfree(item);
			return;
		}
	}
}

/* The top transaction ends, whether it commits or aborts: release all */
void
kfdw_scoped_xact_end(KafkaScopedList *list, XactEvent event)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
		release_owned(list, InvalidSubTransactionId);
}

void
kfdw_scoped_subxact_end(KafkaScopedList *list, SubXactEvent event,
						SubTransactionId mySubid,
						SubTransactionId parentSubid)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
		release_owned(list, mySubid);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* what the subtransaction took now belongs to its parent */
		foreach(lc, list->items)
		{
			KafkaScoped *item = (KafkaScoped *) lfirst(lc);

			if (item->subid == mySubid)
				item->subid = parentSubid;
		}
	}
}

/*
 * Release what subid owns (everything, if invalid).  The objects are taken
 * off the list first, so that a release may use the list.
 */
static void
release_owned(KafkaScopedList *list, SubTransactionId subid)
{
	List	   *owned = NIL;
	ListCell   *lc;

	foreach(lc, list->items)
	{
		KafkaScoped *item = (KafkaScoped *) lfirst(lc);

		if (subid != InvalidSubTransactionId && item->subid != subid)
			continue;
		list->items = foreach_delete_current(list->items, lc);
		owned = lappend(owned, item->object);
		pfree(item);
	}
	foreach(lc, owned)
		list->release(lfirst(lc));
	list_free(owned);
}
