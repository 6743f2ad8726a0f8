/*-------------------------------------------------------------------------
 *
 * delivery.c
 *		  Delivery of a stream's events to Kafka, and the stream's status
 *
 * A stream's worker hands its events to the producer made here by the
 * Kafka client layer (kafka/client.c, kafka/produce.c), which also counts
 * their deliveries.  Every event belongs to a transaction (the snapshot
 * counts as one): what is kept here is the ring of the transactions in
 * flight, and the slot may be confirmed up to the end of a transaction once
 * Kafka has acknowledged its every message and every message before it.
 * Delivery reports, errors and logs of librdkafka are served by
 * kfdw_cdc_serve() on the worker, and show in the stream's entry of shared
 * memory (kafka_fdw.cdc_status).
 *
 * IDENTIFICATION
 *		  src/cdc/delivery.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"
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

/* the producer, the server it was made for (by name) and its accounting */
static KafkaHandle *producer;
static const char *server_name;
static KafkaDelivery *delivery;
/* librdkafka said the producer cannot go on */
static bool producer_failed = false;

/* in-flight transactions: a ring of PendingTxn, txns[head] has id first_id */
static PendingTxn *txns;
static int	txn_cap;
static int	txn_head;
static int	txn_tail;
static uint64 txn_first_id;

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg,
					  void *opaque);
static void producer_error(KafkaHandle *handle, int err, const char *reason);
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

/* Did ALTER SERVER or USER MAPPING change what the producer is built from? */
bool
kfdw_cdc_producer_is_stale(void)
{
	bool		stale;

	StartTransactionCommand();
	stale = kfdw_client_changed(producer,
								GetForeignServerByName(server_name, false));
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
	/* the stream owns its messages until Kafka has them */
	static const char *const settings[] = {
		"message.timeout.ms", "0",
		"partitioner", "murmur2_random",
		"queue.buffering.max.kbytes", "65536",
		NULL
	};
	KafkaClientSpec spec = {0};

	server_name = MemoryContextStrdup(delivery_cxt, servername);
	spec.kind = KFDW_HANDLE_PRODUCER;
	spec.on_delivery = dr_msg_cb;
	spec.on_error = producer_error;
	spec.settings = settings;

	StartTransactionCommand();
	producer = kfdw_client_new(GetForeignServerByName(server_name, false),
							   owner_id, &spec, sizeof(KafkaHandle));
	CommitTransactionCommand();
	delivery = kfdw_delivery_new(producer);
}

/*
 * Sleep up to timeout_ms while the stream has read all WAL: on the latch
 * and on the producer, whose delivery reports end the nap (so that they
 * are confirmed at once), then serve what came.
 */
void
kfdw_cdc_nap(int timeout_ms)
{
	kfdw_wait(producer, timeout_ms, kfdw_wait_event(KFDW_WAIT_CDC_IDLE));
	kfdw_cdc_serve(0);
}

/*
 * Delivery report, served by rd_kafka_poll() on this process.
 */
static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	PendingTxn *txn = txn_get((uint64) (uintptr_t) msg->_private);

	kfdw_delivery_record(delivery, msg);
	if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;

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
 * messages stay queued and librdkafka keeps retrying, unless the error is
 * fatal (the handle then holds its cause).
 */
static void
producer_error(KafkaHandle *handle, int err, const char *reason)
{
	char		buf[KFDW_CDC_ERROR_LEN];

	snprintf(buf, sizeof(buf), "Kafka: %s", reason);
	kfdw_cdc_set_error(buf);
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		producer_failed = true;
	LWLockAcquire(kfdw_cdc_shared->lock, LW_EXCLUSIVE);
	me->state = KFDW_CDC_RETRYING;
	LWLockRelease(kfdw_cdc_shared->lock);
	elog(LOG, "kafka_fdw stream \"%s\": %s", stream_name, reason);
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
 * and fail if a message was refused or the producer failed.
 */
void
kfdw_cdc_serve(int timeout_ms)
{
	char		fatal[512];
	rd_kafka_resp_err_t err;

	if (timeout_ms > 0)
		kfdw_wait(producer, timeout_ms, kfdw_wait_event(KFDW_WAIT_PRODUCE));
	else
		kfdw_serve_events(producer);
	if (!producer_failed && delivery->failed == 0)
		return;

	/* a fatal error purged what was queued: it is the cause */
	err = kfdw_fatal_error(producer, fatal, sizeof(fatal));
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(kfdw_errcode(err)),
				 errmsg("stream \"%s\" could not deliver a message to Kafka",
						stream_name),
				 errdetail_internal("%s", fatal),
				 errhint("The stream starts again from its last confirmed position.")));
	ereport(ERROR,
			(errcode(kfdw_errcode(delivery->first_err)),
			 errmsg("stream \"%s\" could not deliver a message to Kafka",
					stream_name),
			 errdetail_internal("topic \"%s\": %s", delivery->first_topic,
								delivery->first_errstr),
			 errhint("The stream starts again from its last confirmed position.")));
}

/*
 * Hand a message to librdkafka, waiting while its queue is full.  value
 * NULL sends a tombstone.  headers (or NULL) are librdkafka's from then on.
 */
void
kfdw_cdc_produce(const char *topic, StringInfo key, StringInfo value,
				 rd_kafka_headers_t *headers, uint64 txn_id)
{
	KafkaOutMessage msg;
	rd_kafka_resp_err_t err;
	char		errstr[512];

	msg.rkt = NULL;
	msg.topic = topic;
	msg.partition = RD_KAFKA_PARTITION_UA;
	msg.timestamp = 0;
	msg.key = key ? key->data : NULL;
	msg.keylen = key ? key->len : -1;
	msg.value = value ? value->data : NULL;
	msg.valuelen = value ? value->len : -1;
	msg.headers = headers;
	msg.opaque = (void *) (uintptr_t) txn_id;
	err = kfdw_produce(producer, &msg, delivery, errstr, sizeof(errstr));
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(kfdw_errcode(err)),
				 errmsg("stream \"%s\" could not produce to topic \"%s\"",
						stream_name, topic),
				 kfdw_errdetail_kafka(producer, err, errstr)));
	txn_get(txn_id)->pending++;
	kfdw_cdc_serve(0);
}

/* Wait until Kafka has acknowledged every message */
void
kfdw_cdc_wait_delivered(void)
{
	while (delivery->outstanding > 0)
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

	if (me->state != KFDW_CDC_RETRYING || delivery->outstanding > 0)
		return;
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last_probe, now, CDC_PROBE_MS))
		return;
	last_probe = now;
	if (rd_kafka_metadata(producer->rk, 0, NULL, &md, 100) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_metadata_destroy(md);
		leave_retrying();
	}
}
