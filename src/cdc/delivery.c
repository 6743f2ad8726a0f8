/*-------------------------------------------------------------------------
 *
 * delivery.c
 *		  Delivery of a stream's events to Kafka, and the stream's status
 *
 * A stream's worker hands its events to the producer made here.  Every
 * event belongs to a transaction (the snapshot counts as one); the slot may
 * be confirmed up to the end of a transaction once Kafka has acknowledged
 * its every message and every message before it.  Delivery reports, errors
 * and logs of librdkafka are served by kfdw_cdc_serve() on the worker, and
 * show in the stream's entry of shared memory (kafka_fdw.cdc_status).
 *
 * IDENTIFICATION
 *		  src/cdc/delivery.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/xact.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

/* How often an idle stream in "retrying" asks whether Kafka is back */
#define CDC_PROBE_MS 2000

/*
 * A transaction whose messages are in flight.  The slot is confirmed up to
 * the end of the oldest transactions that are closed (commit seen) and
 * fully acknowledged.
 */
typedef struct PendingTxn
{
	XLogRecPtr	first_lsn;		/* its first published change */
	XLogRecPtr	commit_lsn;
	TimestampTz commit_time;
	XLogRecPtr	end_lsn;
	int64		pending;		/* messages not yet acknowledged */
	bool		closed;
} PendingTxn;

static KafkaCdcStream *me;		/* the stream's registry entry */
static const char *stream_name;
static MemoryContext delivery_cxt;
static KafkaCdcState normal_state = KFDW_CDC_STREAMING;

/* the producer and what it was built from */
static rd_kafka_t *producer;
static const char *server_name;
static Oid	owner;
static char *producer_signature;

/* in-flight transactions: a ring of PendingTxn, txns[head] has id first_id */
static PendingTxn *txns;
static int	txn_cap;
static int	txn_head;
static int	txn_tail;
static uint64 txn_first_id;

/* set by librdkafka's callbacks, served on this process */
static bool delivery_failed = false;
static rd_kafka_resp_err_t delivery_err;
static char delivery_errstr[512];

static ForeignServer *get_server_and_mapping(UserMapping **user);
static char *options_signature(ForeignServer *server, UserMapping *user);
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg,
					  void *opaque);
static void error_cb(rd_kafka_t *rk, int err, const char *reason,
					 void *opaque);
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
				   const char *buf);
static PendingTxn *txn_get(uint64 id);
static void leave_retrying(void);

/*
 * Set up delivery for the stream of registry entry entry; memory that must
 * last goes in cxt.
 */
void
kfdw_cdc_delivery_init(KafkaCdcStream *entry, const char *name,
					   MemoryContext cxt)
{
	me = entry;
	stream_name = name;
	delivery_cxt = cxt;
}

/*
 * Show what the stream does.  A stream in "retrying" stays there when it
 * moves on to its snapshot or to streaming: it leaves "retrying" only when
 * Kafka takes a message (dr_msg_cb) or, with nothing to send, answers
 * (kfdw_cdc_recover_state), so that a worker started again after an error
 * does not show "streaming" while it fails again.
 */
void
kfdw_cdc_set_state(KafkaCdcState state)
{
	if (state == KFDW_CDC_SNAPSHOT || state == KFDW_CDC_STREAMING)
	{
		normal_state = state;
		if (me->state == KFDW_CDC_RETRYING)
			return;
	}
	if (me->state != state)
	{
		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		me->state = state;
		LWLockRelease(kfdw_cdc_shared->lock);
		pgstat_report_activity(STATE_RUNNING, kfdw_cdc_state_name(state));
	}
}

/* Kafka answers again: show what the stream does */
static void
leave_retrying(void)
{
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	if (me->state == KFDW_CDC_RETRYING)
		me->state = normal_state;
	LWLockRelease(kfdw_cdc_shared->lock);
}

/* Show the stream's last error */
void
kfdw_cdc_set_error(const char *message)
{
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	strlcpy(me->last_error, message, sizeof(me->last_error));
	me->last_error_at = GetCurrentTimestamp();
	LWLockRelease(kfdw_cdc_shared->lock);
}

/*
 * The stream's server and the user mapping of its owner (or PUBLIC, or
 * none).  The caller is in a transaction.
 */
static ForeignServer *
get_server_and_mapping(UserMapping **user)
{
	ForeignServer *server = GetForeignServerByName(server_name, false);

	*user = NULL;
	if (SearchSysCacheExists2(USERMAPPINGUSERSERVER,
							  ObjectIdGetDatum(owner),
							  ObjectIdGetDatum(server->serverid)) ||
		SearchSysCacheExists2(USERMAPPINGUSERSERVER,
							  ObjectIdGetDatum(InvalidOid),
							  ObjectIdGetDatum(server->serverid)))
		*user = GetUserMapping(owner, server->serverid);
	return server;
}

/*
 * Everything the producer was built from, as one string in the worker's
 * memory, to tell a real change from an unrelated invalidation (decoding
 * replays the invalidations of every transaction it decodes).
 */
static char *
options_signature(ForeignServer *server, UserMapping *user)
{
	StringInfoData buf;
	ListCell   *lc;
	MemoryContext oldcxt = MemoryContextSwitchTo(delivery_cxt);

	initStringInfo(&buf);
	appendStringInfo(&buf, "%u", server->serverid);
	foreach(lc, server->options)
		appendStringInfo(&buf, "|%s=%s", ((DefElem *) lfirst(lc))->defname,
						 defGetString((DefElem *) lfirst(lc)));
	if (user)
	{
		appendStringInfo(&buf, "|user %u", user->umid);
		foreach(lc, user->options)
			appendStringInfo(&buf, "|%s=%s", ((DefElem *) lfirst(lc))->defname,
							 defGetString((DefElem *) lfirst(lc)));
	}
	MemoryContextSwitchTo(oldcxt);
	return buf.data;
}

/* Did ALTER SERVER or USER MAPPING change what the producer is built from? */
bool
kfdw_cdc_producer_is_stale(void)
{
	ForeignServer *server;
	UserMapping *user;
	char	   *signature;
	bool		stale;

	StartTransactionCommand();
	server = get_server_and_mapping(&user);
	signature = options_signature(server, user);
	stale = strcmp(signature, producer_signature) != 0;
	pfree(signature);
	CommitTransactionCommand();
	return stale;
}

/*
 * The stream's producer: the server's configuration with the owner's user
 * mapping, idempotent with acks=all, partitioned by key like Kafka's Java
 * client, and never giving up a message.
 */
void
kfdw_cdc_producer_create(const char *servername, Oid owner_id)
{
	ForeignServer *server;
	UserMapping *user = NULL;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char		errstr[512];

	server_name = MemoryContextStrdup(delivery_cxt, servername);
	owner = owner_id;

	StartTransactionCommand();
	server = get_server_and_mapping(&user);
	conf = kfdw_build_conf(server, user, KFDW_HANDLE_PRODUCER);
	producer_signature = options_signature(server, user);
	CommitTransactionCommand();

	/* the stream owns its messages until Kafka has them */
	if (rd_kafka_conf_set(conf, "message.timeout.ms", "0", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "partitioner", "murmur2_random", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "queue.buffering.max.kbytes", "65536", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not configure the producer of stream \"%s\"",
						stream_name),
				 errdetail_internal("%s", errstr)));
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);

	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("could not create a Kafka producer for stream \"%s\"",
						stream_name),
				 errdetail_internal("%s", errstr)));
	}
	rd_kafka_set_log_queue(rk, NULL);
	producer = rk;
}

/*
 * Delivery report, served by rd_kafka_poll() on this process.
 */
static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	PendingTxn *txn = txn_get((uint64) (uintptr_t) msg->_private);

	if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (!delivery_failed)
		{
			delivery_failed = true;
			delivery_err = msg->err;
			snprintf(delivery_errstr, sizeof(delivery_errstr),
					 "topic \"%s\": %s", rd_kafka_topic_name(msg->rkt),
					 rd_kafka_err2str(msg->err));
		}
		return;
	}

	if (txn)
		txn->pending--;
	pg_atomic_fetch_add_u64(&me->messages_sent, 1);
	if (me->failures != 0 || me->state == KFDW_CDC_RETRYING)
	{
		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		me->failures = 0;
		LWLockRelease(kfdw_cdc_shared->lock);
		leave_retrying();
	}
}

/*
 * librdkafka reports trouble with the brokers: show it at once.  The
 * messages stay queued and librdkafka keeps retrying.
 */
static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	char		buf[KFDW_CDC_ERROR_LEN];

	snprintf(buf, sizeof(buf), "Kafka: %s", reason);
	kfdw_cdc_set_error(buf);
	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char		fatal[512];

		delivery_failed = true;
		delivery_err = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
		strlcpy(delivery_errstr, fatal, sizeof(delivery_errstr));
	}
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	me->state = KFDW_CDC_RETRYING;
	LWLockRelease(kfdw_cdc_shared->lock);
	elog(LOG, "kafka_fdw stream \"%s\": %s", stream_name, reason);
}

static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	elog(level <= 4 ? LOG : DEBUG1, "librdkafka: %s: %s", fac, buf);
}

/*
 * Open a new in-flight transaction and return its id.  first_lsn is the
 * position of its first change, commit_lsn that of its commit (both
 * invalid for the snapshot), commit_time when it committed.
 */
uint64
kfdw_cdc_txn_begin(XLogRecPtr first_lsn, XLogRecPtr commit_lsn,
				   TimestampTz commit_time)
{
	if (txns == NULL)
	{
		txn_cap = 64;
		txns = MemoryContextAlloc(delivery_cxt, sizeof(PendingTxn) * txn_cap);
	}
	if (txn_tail == txn_cap)
	{
		if (txn_head > 0)
		{
			memmove(txns, txns + txn_head,
					sizeof(PendingTxn) * (txn_tail - txn_head));
			txn_tail -= txn_head;
			txn_head = 0;
		}
		else
		{
			txn_cap *= 2;
			txns = repalloc(txns, sizeof(PendingTxn) * txn_cap);
		}
	}
	txns[txn_tail].first_lsn = first_lsn;
	txns[txn_tail].commit_lsn = commit_lsn;
	txns[txn_tail].commit_time = commit_time;
	txns[txn_tail].end_lsn = InvalidXLogRecPtr;
	txns[txn_tail].pending = 0;
	txns[txn_tail].closed = false;
	txn_tail++;
	return txn_first_id + (txn_tail - 1 - txn_head);
}

/* The transaction txn_id has all its messages: they end at end_lsn */
void
kfdw_cdc_txn_end(uint64 txn_id, XLogRecPtr end_lsn)
{
	PendingTxn *txn = txn_get(txn_id);

	txn->end_lsn = end_lsn;
	txn->closed = true;
}

/*
 * Forget the oldest transactions that Kafka has entirely, and return the
 * end of the last of them (or InvalidXLogRecPtr).  *none_pending tells
 * whether nothing at all is in flight any more.
 */
XLogRecPtr
kfdw_cdc_txn_confirmable(bool *none_pending)
{
	XLogRecPtr	lsn = InvalidXLogRecPtr;

	while (txn_head < txn_tail && txns[txn_head].closed &&
		   txns[txn_head].pending == 0)
	{
		lsn = txns[txn_head].end_lsn;
		txn_head++;
		txn_first_id++;
	}
	*none_pending = (txn_head == txn_tail);
	if (*none_pending)
		txn_head = txn_tail = 0;
	return lsn;
}

/*
 * Show the oldest transaction that Kafka does not have entirely, for
 * cdc_status's lag_bytes and undelivered_age; confirmed is where the slot
 * is confirmed.  With nothing in flight, what an earlier run of the worker
 * left undelivered is still owed until the slot is confirmed past its
 * commit.
 */
void
kfdw_cdc_show_undelivered(XLogRecPtr confirmed)
{
	XLogRecPtr	lsn = InvalidXLogRecPtr;
	XLogRecPtr	commit = InvalidXLogRecPtr;
	TimestampTz at = 0;

	/* the oldest transaction with a message not acknowledged */
	if (txn_head < txn_tail)
	{
		PendingTxn *txn = &txns[txn_head];

		lsn = txn->first_lsn;
		commit = txn->commit_lsn;
		at = txn->commit_time;
	}
	else if (!XLogRecPtrIsInvalid(me->undelivered_commit) &&
			 confirmed <= me->undelivered_commit)
		return;

	if (me->undelivered_lsn != lsn || me->undelivered_commit != commit ||
		me->undelivered_at != at)
	{
		LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
		me->undelivered_lsn = lsn;
		me->undelivered_commit = commit;
		me->undelivered_at = at;
		LWLockRelease(kfdw_cdc_shared->lock);
	}
}

static PendingTxn *
txn_get(uint64 id)
{
	if (id < txn_first_id || id - txn_first_id >= (uint64) (txn_tail - txn_head))
		return NULL;
	return &txns[txn_head + (id - txn_first_id)];
}

/*
 * Serve librdkafka (delivery reports, errors, logs) for up to timeout_ms,
 * and fail if a message was refused.
 */
void
kfdw_cdc_serve(int timeout_ms)
{
	rd_kafka_poll(producer, timeout_ms);
	if (delivery_failed)
		ereport(ERROR,
				(errcode(kfdw_errcode(delivery_err)),
				 errmsg("stream \"%s\" could not deliver a message to Kafka",
						stream_name),
				 errdetail_internal("%s", delivery_errstr),
				 errhint("The stream starts again from its last confirmed position.")));
}

/*
 * Hand a message to librdkafka, waiting while its queue is full.  value
 * NULL sends a tombstone.
 */
void
kfdw_cdc_produce(const char *topic, StringInfo key, StringInfo value, uint64 txn_id)
{
	for (;;)
	{
		rd_kafka_resp_err_t err;

		err = rd_kafka_producev(producer,
								RD_KAFKA_V_TOPIC(topic),
								RD_KAFKA_V_KEY(key ? key->data : NULL,
											   key ? key->len : 0),
								RD_KAFKA_V_VALUE(value ? value->data : NULL,
												 value ? value->len : 0),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_OPAQUE((void *) (uintptr_t) txn_id),
								RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			ereport(ERROR,
					(errcode(kfdw_errcode(err)),
					 errmsg("stream \"%s\" could not produce to topic \"%s\"",
							stream_name, topic),
					 errdetail_internal("%s", rd_kafka_err2str(err))));
		/* Kafka is slow or away: wait for room, answering interrupts */
		kfdw_cdc_serve(100);
		CHECK_FOR_INTERRUPTS();
		if (!PostmasterIsAlive())
			proc_exit(1);
	}
	txn_get(txn_id)->pending++;
	kfdw_cdc_serve(0);
}

/* Wait until Kafka has acknowledged every message */
void
kfdw_cdc_wait_delivered(void)
{
	while (rd_kafka_outq_len(producer) > 0)
	{
		kfdw_cdc_serve(100);
		CHECK_FOR_INTERRUPTS();
		if (!PostmasterIsAlive())
			proc_exit(1);
	}
	kfdw_cdc_serve(0);
}

/*
 * A stream that showed "retrying" while it had nothing to send goes back
 * to "streaming" once the brokers answer again (a delivered message does it
 * at once, see dr_msg_cb).  Asked at most every CDC_PROBE_MS, for at most
 * 100 ms.
 */
void
kfdw_cdc_recover_state(void)
{
	static TimestampTz last_probe = 0;
	const struct rd_kafka_metadata *md;
	TimestampTz now;

	if (me->state != KFDW_CDC_RETRYING || rd_kafka_outq_len(producer) > 0)
		return;
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last_probe, now, CDC_PROBE_MS))
		return;
	last_probe = now;
	if (rd_kafka_metadata(producer, 0, NULL, &md, 100) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_metadata_destroy(md);
		leave_retrying();
	}
}
