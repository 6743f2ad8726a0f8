/*-------------------------------------------------------------------------
 *
 * connection.c
 *		  The librdkafka handle cache of a backend, and error mapping
 *
 * Handles are made per server, user and kind, kept for the life of the
 * backend, and re-made when ALTER SERVER or ALTER USER MAPPING changes what
 * they were built from.  A consumer is checked out by one scan at a time,
 * on a list scoped to the (sub)transaction that took it (scope.c); one that
 * is still checked out when that aborts is destroyed with the messages it
 * holds (consumer.c), so a failed or cancelled scan leaks nothing.
 *
 * librdkafka's threads never call into PostgreSQL: logs and errors are
 * queued and served here, from the backend, by kfdw_serve_events().
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
#include "fdw/fdw.h"			/* kfdw_delivery_report */

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_user_mapping.h"
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
	uint32		server_hashvalue;	/* hash of the server's syscache entry */
	uint32		mapping_hashvalue;	/* hash of the user mapping's, or 0 */
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

static HandleEntry *create_handle(Oid serverid, Oid userid,
								  KafkaHandleKind kind);
static void destroy_handle(HandleEntry *entry);
static void free_handle(HandleEntry *entry);
static void reap_zombies(void);
static rd_kafka_resp_err_t run_blocking_call(KafkaHandle *handle,
											 BlockingCall *call,
											 uint32 wait_event_info);
static void *blocking_call_main(void *arg);
static void free_blocking_call(BlockingCall *call);
static bool calls_returned(HandleEntry *entry);
static HeapTuple lookup_user_mapping(Oid userid, Oid serverid);
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
				   const char *buf);
static void error_cb(rd_kafka_t *rk, int err, const char *reason,
					 void *opaque);
static void inval_callback(Datum arg, int cacheid, uint32 hashvalue);
static void xact_callback(XactEvent event, void *arg);
static void subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg);

/*
 * Get a handle of the given kind for the server, with the user mapping of
 * userid (or PUBLIC, or none).  A consumer is checked out until
 * kfdw_release_handle(); producers are shared.
 */
KafkaHandle *
kfdw_acquire_handle(Oid serverid, Oid userid, KafkaHandleKind kind)
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

		if (e->handle.stale && !e->handle.busy && e->handle.pins == 0)
		{
			handle_entries = foreach_delete_current(handle_entries, lc);
			destroy_handle(e);
			continue;
		}
		if (entry == NULL && !e->handle.stale && !e->handle.busy &&
			e->handle.serverid == serverid && e->handle.userid == userid &&
			e->handle.kind == kind)
			entry = e;
	}

	if (entry == NULL)
	{
		MemoryContext oldcxt;

		entry = create_handle(serverid, userid, kind);
		oldcxt = MemoryContextSwitchTo(TopMemoryContext);
		handle_entries = lappend(handle_entries, entry);
		MemoryContextSwitchTo(oldcxt);
	}

	if (kind == KFDW_HANDLE_CONSUMER)
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
		kfdw_discard_handle(handle);
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
		kfdw_discard_handle(handle);
}

/*
 * Destroy a handle whose state is unknown, for example after an error in
 * the middle of its use.
 */
void
kfdw_discard_handle(KafkaHandle *handle)
{
	HandleEntry *entry = (HandleEntry *) handle;

	if (handle->busy)
		kfdw_scoped_remove(&checked_out, handle);
	handle_entries = list_delete_ptr(handle_entries, entry);
	destroy_handle(entry);
}

static HandleEntry *
create_handle(Oid serverid, Oid userid, KafkaHandleKind kind)
{
	ForeignServer *server = GetForeignServer(serverid);
	UserMapping *user = NULL;
	KafkaServerOptions sopts;
	HeapTuple	umtuple;
	HandleEntry *entry;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char		errstr[512];

	kfdw_get_server_options(server, &sopts);

	umtuple = lookup_user_mapping(userid, serverid);
	if (HeapTupleIsValid(umtuple))
	{
		/* finds the same mapping: the user's own, else PUBLIC */
		ReleaseSysCache(umtuple);
		user = GetUserMapping(userid, serverid);
	}

	entry = MemoryContextAllocZero(TopMemoryContext, sizeof(HandleEntry));
	entry->handle.kind = kind;
	entry->handle.serverid = serverid;
	entry->handle.userid = userid;
	entry->handle.brokers = MemoryContextStrdup(TopMemoryContext, sopts.brokers);
	entry->handle.connect_timeout_ms = sopts.connect_timeout_ms;
	entry->server_hashvalue =
		GetSysCacheHashValue1(FOREIGNSERVEROID, ObjectIdGetDatum(serverid));
	entry->mapping_hashvalue = user ?
		GetSysCacheHashValue1(USERMAPPINGOID, ObjectIdGetDatum(user->umid)) : 0;

	PG_TRY();
	{
		conf = kfdw_build_conf(server, user, kind);
	}
	PG_CATCH();
	{
		pfree(entry->handle.brokers);
		pfree(entry);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/*
	 * The backend's transactional id, made unique per server and user too:
	 * a transaction that publishes through two transactional producers (two
	 * servers, or a SECURITY DEFINER function) must not fence either.
	 */
	if (kind == KFDW_HANDLE_TXN_PRODUCER)
	{
		char		txnid[256];
		size_t		size = sizeof(txnid);

		if (rd_kafka_conf_get(conf, "transactional.id", txnid, &size) ==
			RD_KAFKA_CONF_OK)
		{
			char	   *unique = psprintf("%s-%u-%u", txnid, serverid, userid);

			(void) rd_kafka_conf_set(conf, "transactional.id", unique,
									 errstr, sizeof(errstr));
			pfree(unique);
		}
	}

	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	/* delivery reports are served by rd_kafka_poll() from the backend */
	if (kind != KFDW_HANDLE_CONSUMER)
		rd_kafka_conf_set_dr_msg_cb(conf, kfdw_delivery_report);
	rd_kafka_conf_set_opaque(conf, &entry->handle);

	/* rd_kafka_new takes the configuration, on success only */
	rk = rd_kafka_new(kind == KFDW_HANDLE_CONSUMER ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER,
					  conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		pfree(entry->handle.brokers);
		pfree(entry);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("could not create a Kafka client for server \"%s\"",
						server->servername),
				 errdetail_internal("%s", errstr)));
	}
	/* logs go to the main queue, served by kfdw_serve_events() */
	rd_kafka_set_log_queue(rk, NULL);
	entry->handle.rk = rk;

	return entry;
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
	/* a consumer leaves no group: scans never join one */
	if (entry->handle.rk)
		rd_kafka_destroy_flags(entry->handle.rk,
							   RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (entry->handle.private)
		pfree(entry->handle.private);
	pfree(entry->handle.brokers);
	pfree(entry);
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
 * The user mapping for userid, or else the PUBLIC one; invalid if none.
 */
static HeapTuple
lookup_user_mapping(Oid userid, Oid serverid)
{
	HeapTuple	tp;

	tp = SearchSysCache2(USERMAPPINGUSERSERVER,
						 ObjectIdGetDatum(userid), ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
		tp = SearchSysCache2(USERMAPPINGUSERSERVER,
							 ObjectIdGetDatum(InvalidOid),
							 ObjectIdGetDatum(serverid));
	return tp;
}

/*
 * Serve what librdkafka queued for the backend: logs, errors and, for
 * producers, delivery reports.  Never waits.
 */
void
kfdw_serve_events(KafkaHandle *handle)
{
	rd_kafka_poll(handle->rk, 0);
}

/*
 * librdkafka's log callback.  With log.queue set it runs only in the thread
 * that polls the main queue: the backend.
 */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* syslog levels: 0-4 are emergencies to warnings */
	elog(level <= 4 ? LOG : DEBUG1, "librdkafka: %s: %s", fac, buf);
}

/*
 * librdkafka's error callback, served from the backend by rd_kafka_poll().
 * Remembers the error for the message of a later ERROR; never throws.
 */
static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	KafkaHandle *handle = (KafkaHandle *) opaque;

	handle->last_err = (rd_kafka_resp_err_t) err;
	strlcpy(handle->last_errstr, reason, sizeof(handle->last_errstr));
	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		handle->last_err_fatal = true;
		handle->stale = true;
		handle->last_err = rd_kafka_fatal_error(rk, handle->last_errstr,
												sizeof(handle->last_errstr));
	}
	elog(DEBUG1, "librdkafka error: %s", reason);
}

/*
 * Map a librdkafka error to a SQLSTATE.
 */
int
kfdw_errcode(rd_kafka_resp_err_t err)
{
	switch (err)
	{
		case RD_KAFKA_RESP_ERR__TRANSPORT:
		case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		case RD_KAFKA_RESP_ERR__RESOLVE:
		case RD_KAFKA_RESP_ERR__TIMED_OUT:
		case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
		case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
		case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
		case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
		case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
			return ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
		case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
		case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
			return ERRCODE_FDW_TABLE_NOT_FOUND;
		case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
			return ERRCODE_FDW_INVALID_DESCRIPTOR_FIELD_IDENTIFIER;
		case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
			return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case RD_KAFKA_RESP_ERR__QUEUE_FULL:
			return ERRCODE_FDW_OUT_OF_MEMORY;
		case RD_KAFKA_RESP_ERR__INVALID_ARG:
		case RD_KAFKA_RESP_ERR_INVALID_MSG:
			return ERRCODE_FDW_INVALID_STRING_FORMAT;
		case RD_KAFKA_RESP_ERR__FENCED:
		case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
		case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
		case RD_KAFKA_RESP_ERR_INVALID_TXN_STATE:
			return ERRCODE_T_R_SERIALIZATION_FAILURE;
		default:
			return ERRCODE_FDW_ERROR;
	}
}

/* Is this error one of not reaching the brokers? */
static bool
is_transport_error(rd_kafka_resp_err_t err)
{
	return kfdw_errcode(err) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
}

/*
 * Report a librdkafka error at elevel, with the SQLSTATE that fits it.
 * message is the primary message; errstr, or else librdkafka's text for
 * err, goes in the detail.  Transport errors name the brokers (never the
 * credentials) and say what librdkafka last saw.
 */
void
kfdw_report_error(int elevel, KafkaHandle *handle, rd_kafka_resp_err_t err,
				  const char *errstr, const char *message)
{
	const char *detail = errstr ? errstr : rd_kafka_err2str(err);

	if (handle && is_transport_error(err))
		ereport(elevel,
				(errcode(kfdw_errcode(err)),
				 errmsg_internal("%s", message),
				 handle->last_errstr[0] != '\0'
				 ? errdetail_internal("%s (brokers \"%s\": %s)", detail,
									  handle->brokers, handle->last_errstr)
				 : errdetail_internal("%s (brokers \"%s\")", detail,
									  handle->brokers),
				 errhint("Check that the brokers are reachable, or raise the server option \"connect_timeout_ms\".")));
	else
		ereport(elevel,
				(errcode(kfdw_errcode(err)),
				 errmsg_internal("%s", message),
				 errdetail_internal("%s", detail)));
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
		kfdw_report_error(ERROR, handle, err, NULL,
						  psprintf("could not get metadata from Kafka brokers \"%s\" within %d ms",
								   handle->brokers, handle->connect_timeout_ms));
	}

	if (topic && md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_resp_err_t terr = md->topics[0].err;

		rd_kafka_metadata_destroy(md);
		if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
					 errmsg("Kafka topic \"%s\" does not exist", topic)));
		kfdw_report_error(ERROR, handle, terr, NULL,
						  psprintf("could not get metadata for Kafka topic \"%s\"",
								   topic));
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
 * Syscache invalidation: a server or user mapping changed, so the handles
 * built from it are re-made at their next use (or when given back).
 */
static void
inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	ListCell   *lc;

	foreach(lc, handle_entries)
	{
		HandleEntry *e = (HandleEntry *) lfirst(lc);

		/*
		 * Any change of a user mapping may change which mapping a handle
		 * should use: a user's own mapping, created or dropped, replaces or
		 * uncovers the PUBLIC one.  Mappings rarely change, so every handle
		 * is re-made.
		 */
		if (hashvalue == 0 || cacheid == USERMAPPINGOID ||
			(cacheid == FOREIGNSERVEROID && e->server_hashvalue == hashvalue))
			e->handle.stale = true;
	}
}

/* A consumer still checked out when its (sub)transaction ended */
static void
discard_checked_out(void *object)
{
	kfdw_discard_handle((KafkaHandle *) object);
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
