/*-------------------------------------------------------------------------
 *
 * connection.c
 *		  The librdkafka handle cache of a backend, and its blocking requests
 *
 * Handles are made (by client.c) per server, user and what their user asks
 * (a KafkaClientSpec), kept for the life of the backend, and re-made when
 * ALTER SERVER or ALTER USER MAPPING changes what they were built from.  A
 * consumer is checked out by one scan at a time, on a list scoped to the
 * (sub)transaction that took it (scope.c); one that is still checked out
 * when that aborts is destroyed with the messages it holds (consumer.c), so
 * a failed or cancelled scan leaks nothing.
 *
 * librdkafka's metadata and offsets requests block their caller until the
 * answer or the timeout.  A slow broker (cross-region round trips of a
 * second) needs the whole of the user's connect_timeout_ms for them, but a
 * cancel must not wait that long: such a call runs in a helper thread, which
 * calls only librdkafka, while the backend waits (kfdw_wait) until the
 * thread writes to the handle's wake-up pipe.  A call cut short by an ERROR
 * goes on in its thread; its handle is then destroyed only once the call
 * returned.
 *
 * IDENTIFICATION
 *		  src/kafka/connection.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka/kafka.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

/* Longest wait for a blocking call before its state is looked at again */
#define KFDW_CALL_SLICE_MS 1000

/* Pause after a metadata request that failed early, before the next one */
#define KFDW_RETRY_PAUSE_MS 100

/*
 * A blocking librdkafka call run in a helper thread: metadata (list is NULL)
 * or offsets for times (list is the call's own copy of the caller's list).
 * The thread reads and writes only this struct and calls only librdkafka;
 * the backend allocated it, and frees it once the thread is joined.
 */
typedef struct BlockingCall
{
	pthread_t	thread;
	rd_kafka_t *rk;
	int			wake_fd;		/* written to when the call returns */
	int			timeout_ms;
	char	   *topic;			/* metadata of this topic, or of all */
	const rd_kafka_metadata_t *md;	/* metadata answer */
	rd_kafka_topic_partition_list_t *list;	/* offsets request and answer */
	rd_kafka_resp_err_t err;
	bool		started;		/* thread created, not joined yet */
	pg_atomic_uint32 done;		/* set by the thread when it returns */
} BlockingCall;

/* Bookkeeping of one cached handle, beside the public part */
typedef struct HandleEntry
{
	KafkaHandle handle;
	bool		check_options;	/* server or a user mapping invalidated */
	List	   *calls;			/* BlockingCall * cut short by an ERROR */
} HandleEntry;

/* All handles of this backend, in TopMemoryContext */
static List *handle_entries = NIL;
/* Destroyed handles whose blocking call is still out */
static List *zombie_entries = NIL;
static bool callbacks_registered = false;

static void discard_checked_out(void *object);

/* Consumers checked out, by the (sub)transaction that took them */
static KafkaScopedList checked_out = {NIL, discard_checked_out};

static void check_options(HandleEntry *entry);
static void discard_handle(KafkaHandle *handle);
static void destroy_handle(HandleEntry *entry);
static void free_handle(HandleEntry *entry);
static void reap_zombies(void);
static rd_kafka_resp_err_t run_blocking_call(KafkaHandle *handle,
											 BlockingCall *call,
											 uint32 wait_event_info);
static void *blocking_call_main(void *arg);
static void free_blocking_call(BlockingCall *call);
static bool calls_returned(HandleEntry *entry);
static void inval_callback(Datum arg, int cacheid, uint32 hashvalue);
static void xact_callback(XactEvent event, void *arg);
static void subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg);

/*
 * Get a consumer for the server, with the user mapping of userid (or
 * PUBLIC, or none), checked out until kfdw_release_handle().
 */
KafkaHandle *
kfdw_acquire_handle(Oid serverid, Oid userid, KafkaHandleKind kind)
{
	KafkaClientSpec spec = {0};

	Assert(kind == KFDW_HANDLE_CONSUMER);
	spec.kind = kind;
	return kfdw_acquire_client(serverid, userid, &spec);
}

/*
 * Get a handle for the server, with the user mapping of userid (or PUBLIC,
 * or none), made for what spec asks.  A consumer is checked out until
 * kfdw_release_handle(); producers are shared.
 */
KafkaHandle *
kfdw_acquire_client(Oid serverid, Oid userid, const KafkaClientSpec *spec)
{
	HandleEntry *entry = NULL;
	ListCell   *lc;

	if (!callbacks_registered)
	{
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, inval_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(USERMAPPINGOID, inval_callback, (Datum) 0);
		RegisterXactCallback(xact_callback, NULL);
		RegisterSubXactCallback(subxact_callback, NULL);
		callbacks_registered = true;
	}

	reap_zombies();

	/* drop stale handles that nobody uses, reuse a fitting one */
	foreach(lc, handle_entries)
	{
		HandleEntry *e = (HandleEntry *) lfirst(lc);

		if (e->check_options)
			check_options(e);
		if (e->handle.stale && !e->handle.busy && e->handle.pins == 0)
		{
			handle_entries = foreach_delete_current(handle_entries, lc);
			destroy_handle(e);
			continue;
		}
		if (entry == NULL && !e->handle.stale && !e->handle.busy &&
			e->handle.serverid == serverid && e->handle.userid == userid &&
			kfdw_client_matches(&e->handle, spec))
			entry = e;
	}

	if (entry == NULL)
	{
		MemoryContext oldcxt;

		entry = (HandleEntry *) kfdw_client_new(GetForeignServer(serverid),
												userid, spec,
												sizeof(HandleEntry));
		oldcxt = MemoryContextSwitchTo(TopMemoryContext);
		handle_entries = lappend(handle_entries, entry);
		MemoryContextSwitchTo(oldcxt);
	}

	if (spec->kind == KFDW_HANDLE_CONSUMER)
	{
		kfdw_scoped_add(&checked_out, &entry->handle);
		entry->handle.busy = true;
	}
	entry->handle.last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
	entry->handle.last_errstr[0] = '\0';

	return &entry->handle;
}

/*
 * Give a checked-out handle back to the cache.  The caller must have left
 * it as it found it (no assignment, no open transaction); messages it did
 * not use are destroyed.
 */
void
kfdw_release_handle(KafkaHandle *handle)
{
	kfdw_scoped_remove(&checked_out, handle);
	kfdw_consumer_clear(handle);
	handle->busy = false;
	if (handle->stale)
		discard_handle(handle);
}

/*
 * Keep a shared (producer) handle alive while messages it produced may still
 * be reported, or while a Kafka transaction is open on it: a pinned handle
 * that turns stale is re-made only once it is unpinned.
 */
void
kfdw_pin_handle(KafkaHandle *handle)
{
	handle->pins++;
}

void
kfdw_unpin_handle(KafkaHandle *handle)
{
	Assert(handle->pins > 0);
	handle->pins--;
	if (handle->pins == 0 && handle->stale && !handle->busy)
		discard_handle(handle);
}

/*
 * An invalidation came for a server or a user mapping: does the handle's
 * server (or the mapping of its user) now say something else than what the
 * handle was made from?  A dropped server does.
 */
static void
check_options(HandleEntry *entry)
{
	ForeignServer *server;

	entry->check_options = false;
	server = GetForeignServerExtended(entry->handle.serverid, FSV_MISSING_OK);
	if (server == NULL || kfdw_client_changed(&entry->handle, server))
		entry->handle.stale = true;
}

/*
 * Destroy a handle whose state is unknown, for example after an error in
 * the middle of its use.
 */
static void
discard_handle(KafkaHandle *handle)
{
	HandleEntry *entry = (HandleEntry *) handle;

	if (handle->busy)
		kfdw_scoped_remove(&checked_out, handle);
	handle_entries = list_delete_ptr(handle_entries, entry);
	destroy_handle(entry);
}

static void
destroy_handle(HandleEntry *entry)
{
	if (entry->handle.rk && entry->handle.kind != KFDW_HANDLE_CONSUMER)
	{
		/*
		 * Fail what is still queued or in flight, and serve the delivery
		 * reports, so that the accounting of statements that are gone is
		 * freed by them.
		 */
		rd_kafka_purge(entry->handle.rk,
					   RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(entry->handle.rk, 0);
	}

	/* a blocking call still out uses the client: destroy it after the call */
	if (!calls_returned(entry))
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		zombie_entries = lappend(zombie_entries, entry);
		MemoryContextSwitchTo(oldcxt);
		return;
	}
	free_handle(entry);
}

/* Destroy the client of a handle whose blocking call (if any) returned */
static void
free_handle(HandleEntry *entry)
{
	ListCell   *lc;

	foreach(lc, entry->calls)
		free_blocking_call((BlockingCall *) lfirst(lc));
	list_free(entry->calls);
	/* messages and queues first: the client waits for them to go */
	kfdw_consumer_close(&entry->handle);
	kfdw_wait_close(&entry->handle);
	kfdw_client_free(&entry->handle);
}

/* Free the destroyed handles whose blocking call has returned since */
static void
reap_zombies(void)
{
	ListCell   *lc;

	foreach(lc, zombie_entries)
	{
		HandleEntry *e = (HandleEntry *) lfirst(lc);

		if (!calls_returned(e))
			continue;
		zombie_entries = foreach_delete_current(zombie_entries, lc);
		free_handle(e);
	}
}

/*
 * Fetch metadata for one topic (or all topics when topic is NULL), retrying
 * in short requests so that interrupts are served, until the server's
 * connect_timeout_ms runs out.  The caller destroys the result with
 * rd_kafka_metadata_destroy().
 */
const rd_kafka_metadata_t *
kfdw_get_metadata(KafkaHandle *handle, const char *topic)
{
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	KafkaDeadline deadline;

	kfdw_deadline_start(&deadline, handle->connect_timeout_ms);
	for (;;)
	{
		BlockingCall *call;

		/* each try may take what is left of the deadline */
		call = MemoryContextAllocZero(TopMemoryContext, sizeof(BlockingCall));
		if (topic)
			call->topic = MemoryContextStrdup(TopMemoryContext, topic);
		call->timeout_ms = Max(kfdw_deadline_remaining(&deadline), 1);
		err = run_blocking_call(handle, call,
								kfdw_wait_event(KFDW_WAIT_METADATA));
		md = call->md;
		call->md = NULL;
		free_blocking_call(call);

		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			/*
			 * A topic that exists but has no leader yet is retried; any
			 * other answer about it (unknown, not authorized) is final.
			 */
			if (topic == NULL || md->topic_cnt != 1 ||
				!(md->topics[0].err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
				  (md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
				   md->topics[0].partition_cnt == 0)))
				break;
			err = md->topics[0].err;
			rd_kafka_metadata_destroy(md);
			md = NULL;
		}

		if (kfdw_deadline_passed(&deadline))
			break;
		if (err != RD_KAFKA_RESP_ERR__TIMED_OUT)
			kfdw_sleep(handle, KFDW_RETRY_PAUSE_MS,
					   kfdw_wait_event(KFDW_WAIT_METADATA));
	}

	if (md == NULL)
	{
		if (err == RD_KAFKA_RESP_ERR__TIMED_OUT && handle->last_err != 0)
			err = handle->last_err;
		if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
			err = RD_KAFKA_RESP_ERR__TRANSPORT;
		ereport(ERROR,
				(errcode(kfdw_errcode(err)),
				 errmsg("could not get metadata from Kafka brokers \"%s\" within %d ms",
						handle->brokers, handle->connect_timeout_ms),
				 kfdw_errdetail_kafka(handle, err, NULL),
				 kfdw_errhint_kafka(handle, err)));
	}

	if (topic && md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_resp_err_t terr = md->topics[0].err;

		rd_kafka_metadata_destroy(md);
		if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
					 errmsg("Kafka topic \"%s\" does not exist", topic)));
		ereport(ERROR,
				(errcode(kfdw_errcode(terr)),
				 errmsg("could not get metadata for Kafka topic \"%s\"", topic),
				 kfdw_errdetail_kafka(handle, terr, NULL),
				 kfdw_errhint_kafka(handle, terr)));
	}

	return md;
}

/*
 * rd_kafka_offsets_for_times() on list, for at most timeout_ms, serving
 * interrupts while it waits: the answers (offsets and errors) are left in
 * list, in its order.
 */
rd_kafka_resp_err_t
kfdw_offsets_for_times(KafkaHandle *handle,
					   rd_kafka_topic_partition_list_t *list, int timeout_ms)
{
	BlockingCall *call;
	rd_kafka_resp_err_t err;
	int			i;

	call = MemoryContextAllocZero(TopMemoryContext, sizeof(BlockingCall));
	call->list = rd_kafka_topic_partition_list_copy(list);
	call->timeout_ms = Max(timeout_ms, 1);
	err = run_blocking_call(handle, call, kfdw_wait_event(KFDW_WAIT_OFFSETS));
	for (i = 0; i < list->cnt && i < call->list->cnt; i++)
	{
		list->elems[i].offset = call->list->elems[i].offset;
		list->elems[i].err = call->list->elems[i].err;
	}
	free_blocking_call(call);
	return err;
}

/*
 * Run a blocking call in a helper thread and wait for it, serving
 * librdkafka's events and interrupts, until the thread says it returned.
 * If an interrupt (or any ERROR) ends the wait, the call belongs to the
 * handle, which is marked stale: it is destroyed, and the call freed, once
 * the thread has returned.
 */
static rd_kafka_resp_err_t
run_blocking_call(KafkaHandle *handle, BlockingCall *call,
				  uint32 wait_event_info)
{
	HandleEntry *entry = (HandleEntry *) handle;
	sigset_t	all,
				old;
	int			rc;

	call->rk = handle->rk;
	call->wake_fd = kfdw_wait_wakeup_fd(handle);
	pg_atomic_init_u32(&call->done, 0);

	/* signals are the backend's: the thread blocks every one */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&call->thread, NULL, blocking_call_main, call);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
	{
		free_blocking_call(call);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a thread for a Kafka request: %s",
						strerror(rc))));
	}
	call->started = true;

	PG_TRY();
	{
		while (pg_atomic_read_u32(&call->done) == 0)
		{
			/* the thread ends this wait early through the pipe */
			kfdw_wait(handle, KFDW_CALL_SLICE_MS, wait_event_info);

			/*
			 * Wrong credentials: no retry will answer, so say so at once
			 * (the call goes on in its thread, as after a cancel).
			 */
			if (handle->last_err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
						 errmsg("could not authenticate to Kafka brokers \"%s\"",
								handle->brokers),
						 errdetail_internal("%s", handle->last_errstr),
						 errhint("Check the credentials of the user mapping.")));
		}
	}
	PG_CATCH();
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

		/* the call goes on: the handle goes too, once the call returned */
		entry->calls = lappend(entry->calls, call);
		MemoryContextSwitchTo(oldcxt);
		handle->stale = true;
		PG_RE_THROW();
	}
	PG_END_TRY();

	pthread_join(call->thread, NULL);
	call->started = false;
	kfdw_serve_events(handle);
	return call->err;
}

/*
 * The helper thread of a blocking call.  Calls only librdkafka, and touches
 * no memory but the call's.
 */
static void *
blocking_call_main(void *arg)
{
	BlockingCall *call = (BlockingCall *) arg;
	ssize_t		rc;

	if (call->list)
		call->err = rd_kafka_offsets_for_times(call->rk, call->list,
											   call->timeout_ms);
	else
	{
		rd_kafka_topic_t *rkt = NULL;

		if (call->topic)
			rkt = rd_kafka_topic_new(call->rk, call->topic, NULL);
		if (call->topic && rkt == NULL)
			call->err = rd_kafka_last_error();
		else
			call->err = rd_kafka_metadata(call->rk, call->topic == NULL, rkt,
										  &call->md, call->timeout_ms);
		if (rkt)
			rd_kafka_topic_destroy(rkt);
	}

	/* publish the results, then wake the backend's wait */
	(void) pg_atomic_exchange_u32(&call->done, 1);
	rc = write(call->wake_fd, "c", 1);
	(void) rc;
	return NULL;
}

/* Join the thread of a call that returned (if not done yet) and free it */
static void
free_blocking_call(BlockingCall *call)
{
	if (call->started)
		pthread_join(call->thread, NULL);
	if (call->md)
		rd_kafka_metadata_destroy(call->md);
	if (call->list)
		rd_kafka_topic_partition_list_destroy(call->list);
	if (call->topic)
		pfree(call->topic);
	pfree(call);
}

/* Have all blocking calls cut short on this handle returned? */
static bool
calls_returned(HandleEntry *entry)
{
	ListCell   *lc;

	foreach(lc, entry->calls)
	{
		if (pg_atomic_read_u32(&((BlockingCall *) lfirst(lc))->done) == 0)
			return false;
	}
	return true;
}

/*
 * Syscache invalidation: a server or a user mapping changed, or the cache
 * was reset.  Any change of a user mapping may change which mapping a
 * handle should use (a user's own mapping, created or dropped, replaces or
 * uncovers the PUBLIC one), so every handle compares what it was built from
 * with the catalogs at the next checkout (check_options, in a transaction):
 * one that differs is re-made then, or once it is given back.
 */
static void
inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	ListCell   *lc;

	foreach(lc, handle_entries)
		((HandleEntry *) lfirst(lc))->check_options = true;
}

/* A consumer still checked out when its (sub)transaction ended */
static void
discard_checked_out(void *object)
{
	discard_handle((KafkaHandle *) object);
}

static void
xact_callback(XactEvent event, void *arg)
{
	kfdw_scoped_xact_end(&checked_out, event);
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	kfdw_scoped_subxact_end(&checked_out, event, mySubid, parentSubid);
}
