/*-------------------------------------------------------------------------
 *
 * slot.c
 *		  The logical replication slots of change data capture streams
 *
 * Every stream decodes one pgoutput slot, named after its database and its
 * name.  This file owns how slots are named, created, looked up and
 * dropped, for cdc_create and cdc_drop (api.c) as for the stream's worker
 * (worker.c, snapshot.c), as PostgreSQL's slotfuncs.c does for the SQL
 * functions and the walsender.
 *
 * IDENTIFICATION
 *		  src/cdc/slot.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/xlogutils.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/latch.h"
#include "storage/spin.h"

/*
 * The replication slot of a stream: unique in the cluster, made of valid
 * slot-name characters.
 */
char *
kfdw_cdc_slot_name(Oid dboid, const char *name)
{
	return psprintf("kafka_fdw_%u_%s", dboid, name);
}

/* Does a slot of that name exist? */
bool
kfdw_cdc_slot_exists(const char *slot_name)
{
	return SearchNamedReplicationSlot(slot_name, true) != NULL;
}

/*
 * Create the ephemeral pgoutput slot slot_name, acquired by this process,
 * and find its consistent point (which waits for the transactions in
 * progress to end).  need_snapshot: the caller takes the slot's initial
 * snapshot from the context's snapshot builder.  The caller frees the
 * context, then persists the slot or lets it go.
 */
LogicalDecodingContext *
kfdw_cdc_new_slot(const char *slot_name, bool need_snapshot)
{
	LogicalDecodingContext *ctx;

	KFDW_REPLICATION_SLOT_CREATE(slot_name, true, RS_EPHEMERAL, false);
	ctx = CreateInitDecodingContext("pgoutput", NIL, need_snapshot,
									InvalidXLogRecPtr,
									XL_ROUTINE(.page_read = read_local_xlog_page,
											   .segment_open = wal_segment_open,
											   .segment_close = wal_segment_close),
									NULL, NULL, NULL);
	DecodingContextFindStartpoint(ctx);
	return ctx;
}

/*
 * Create slot_name for good, starting from now, and let go of it (what a
 * stream without a snapshot needs).
 */
void
kfdw_cdc_create_slot(const char *slot_name)
{
	LogicalDecodingContext *ctx = kfdw_cdc_new_slot(slot_name, false);

	FreeDecodingContext(ctx);
	ReplicationSlotPersist();
	ReplicationSlotRelease();
}

/* Drop slot_name if it exists; it must not be in use */
void
kfdw_cdc_drop_slot(const char *slot_name)
{
	if (kfdw_cdc_slot_exists(slot_name))
		ReplicationSlotDrop(slot_name, true);
}

/*
 * Drop slot_name, if it exists, once whoever holds it (a worker on its way
 * out) has let go of it.  An ephemeral slot of an unfinished snapshot
 * disappears by itself.
 */
void
kfdw_cdc_drop_slot_when_released(const char *slot_name)
{
	for (;;)
	{
		ReplicationSlot *slot;
		pid_t		active_pid = 0;

		LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
		slot = SearchNamedReplicationSlot(slot_name, false);
		if (slot)
		{
			SpinLockAcquire(&slot->mutex);
			active_pid = slot->active_pid;
			SpinLockRelease(&slot->mutex);
		}
		LWLockRelease(ReplicationSlotControlLock);

		if (slot == NULL)
			break;
		if (active_pid == 0)
		{
			ReplicationSlotDrop(slot_name, true);
			break;
		}
		kfdw_nap(10L, kfdw_wait_event(KFDW_WAIT_CDC_STOP));
	}
}
