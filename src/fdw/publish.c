/*-------------------------------------------------------------------------
 *
 * publish.c
 *		  Publishing the messages of INSERT statements, and Kafka transactions
 *
 * A publisher produces the messages of one statement into one topic.
 * Without the server option transactional, it produces them as they come
 * and, at the end of the statement, waits until the brokers acknowledged
 * every one of them; any failed delivery fails the statement.  With
 * transactional 'true', the messages of a PostgreSQL transaction are held in
 * backend memory and published in one Kafka transaction at PRE_COMMIT, or,
 * past the server's transaction_hold_bytes, streamed into a Kafka
 * transaction that is committed or aborted with the PostgreSQL transaction.
 *
 * Messages are produced and their deliveries counted by the Kafka client
 * layer (kafka/produce.c): each message carries a pointer to the
 * KafkaDelivery that accounts for it, which outlives its statement until
 * its last report has arrived.  An error or cancel releases what a
 * statement holds through the (sub)transaction abort callbacks, purging
 * what it had queued.
 *
 * IDENTIFICATION
 *		  src/fdw/publish.c
 *
 *-------------------------------------------------------------------------
 */
#include "fdw/fdw.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/memutils.h"

/*
 * How often (in messages) a producing statement serves delivery reports,
 * and fails early if one says a message could not be delivered
 */
#define KFDW_POLL_INTERVAL 100

/* Slice of the transactional calls' waits, so that interrupts are served */
#define KFDW_WAIT_SLICE_MS 100

/* Bound of the wait for a Kafka transaction to abort, when PostgreSQL aborts */
#define KFDW_TXN_ABORT_TIMEOUT_MS 3000

/* A message held until the PostgreSQL transaction commits */
typedef struct HeldMessage
{
	const char *topic;			/* kept by the KafkaTxnServer */
	int32		partition;
	int64		timestamp;
	int			keylen;			/* -1: no key */
	int			valuelen;		/* -1: null value */
	int			headerslen;
	int			nheaders;
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* key, value, headers */
} HeldMessage;

/* Where a subtransaction's messages start */
typedef struct SubxactMark
{
	SubTransactionId subid;
	int			count;			/* messages added before it */
} SubxactMark;

/*
 * What a PostgreSQL transaction published through one transactional
 * server (and user mapping).  Lives in txn_context.
 */
typedef struct KafkaTxnServer
{
	Oid			serverid;
	Oid			userid;
	char	   *servername;
	KafkaHandle *handle;		/* pinned until the transaction ends */
	int			hold_limit;		/* transaction_hold_bytes */
	bool		streaming;		/* the Kafka transaction has begun */
	bool		doomed;			/* sent messages of a rolled-back subxact */
	bool		committed;
	List	   *held;			/* HeldMessage *, while not streaming */
	int64		held_bytes;
	int			nadded;			/* messages published in this transaction */
	SubxactMark *marks;
	int			nmarks;
	int			maxmarks;
	List	   *topics;			/* topic names held messages point to */
	KafkaDelivery *delivery;
} KafkaTxnServer;

/* State the producer handles of kind KFDW_HANDLE_TXN_PRODUCER keep */
typedef struct KafkaProducerState
{
	bool		txn_initialized;	/* init_transactions() done */
} KafkaProducerState;

/*
 * A statement publishing to a topic.  Lives in TopMemoryContext and is
 * listed in active_publishers until the statement ends, so that an error or
 * cancel releases what it holds.
 */
struct KafkaPublisher
{
	KafkaHandle *handle;		/* pinned */
	rd_kafka_topic_t *rkt;
	char	   *topic;
	int			partition_cnt;
	KafkaDelivery *delivery;	/* own, or the transaction's */
	KafkaTxnServer *txn;		/* transactional server, or NULL */
	SubTransactionId subid;
	int64		nmessages;
};

static List *active_publishers = NIL;
static List *txn_servers = NIL;
static MemoryContext txn_context = NULL;
static bool xact_callbacks_registered = false;

static void delivery_check(KafkaDelivery *d, KafkaHandle *handle,
						   const char *topic);
static void produce(KafkaHandle *handle, rd_kafka_topic_t *rkt,
					const char *topic, int32 partition, int64 timestamp,
					const char *key, int keylen, const char *value,
					int valuelen, const char *headers, int headerslen,
					int nheaders, KafkaDelivery *d);
static void producer_spec(KafkaClientSpec *spec, KafkaHandleKind kind,
						  Oid serverid, Oid userid);
static KafkaPublisher *publisher_new(KafkaHandle *handle, const char *topic,
									 KafkaTxnServer *ts);
static void publisher_release(KafkaPublisher *pub, bool aborted);
static void release_aborted_publishers(SubTransactionId subid);
static bool handle_in_use(KafkaHandle *handle);
static void register_xact_callbacks(void);
static KafkaTxnServer *txn_server_get(Oid serverid, Oid userid,
									  KafkaServerOptions *sopts);
static void txn_hold(KafkaTxnServer *ts, const char *topic_name,
					 KafkaEncoder *enc);
static void txn_mark(KafkaTxnServer *ts);
static void txn_begin(KafkaTxnServer *ts);
static void txn_send_held(KafkaTxnServer *ts);
static void txn_commit(KafkaTxnServer *ts);
static void txn_abort(KafkaTxnServer *ts);
static int	fatal_hint(rd_kafka_resp_err_t err);
static void txn_check_error(KafkaTxnServer *ts, rd_kafka_error_t *error,
							const char *what, int limit);
static void txn_servers_reset(void);
static void publish_xact_callback(XactEvent event, void *arg);
static void publish_subxact_callback(SubXactEvent event,
									 SubTransactionId mySubid,
									 SubTransactionId parentSubid, void *arg);

/*
 * Begin publishing a statement's messages to a topic of a server, with the
 * user mapping of userid.  ERROR if the topic does not exist (and the
 * brokers did not create it on request).
 */
KafkaPublisher *
kfdw_publisher_begin(Oid serverid, Oid userid, const char *topic)
{
	KafkaServerOptions sopts;
	KafkaHandle *handle;
	KafkaTxnServer *ts = NULL;
	KafkaPublisher *pub;
	int			partition_cnt;

	kfdw_get_server_options(GetForeignServer(serverid), &sopts);

	register_xact_callbacks();
	if (sopts.transactional)
	{
		if (IsInParallelMode())
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
					 errmsg("cannot publish to a transactional Kafka server in parallel mode")));
		ts = txn_server_get(serverid, userid, &sopts);
		handle = ts->handle;
	}
	else
	{
		KafkaClientSpec spec;

		producer_spec(&spec, KFDW_HANDLE_PRODUCER, serverid, userid);
		handle = kfdw_acquire_client(serverid, userid, &spec);
	}

	partition_cnt = kfdw_producer_partitions(handle, topic);
	if (partition_cnt <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
				 errmsg("Kafka topic \"%s\" has no partitions", topic)));

	pub = publisher_new(handle, topic, ts);
	pub->partition_cnt = partition_cnt;
	return pub;
}

/* How many partitions the topic has */
int
kfdw_publisher_partitions(KafkaPublisher *pub)
{
	return pub->partition_cnt;
}

/*
 * Are the messages held until the transaction commits (so that their
 * partition and offset are not known yet)?
 */
bool
kfdw_publisher_holds(KafkaPublisher *pub)
{
	return pub->txn != NULL && !pub->txn->streaming;
}

/*
 * Publish the row last encoded by enc: hand it to librdkafka, or hold it
 * for the transaction.  Now and then, serve delivery reports and fail if a
 * message could not be delivered.
 */
void
kfdw_publish(KafkaPublisher *pub, KafkaEncoder *enc)
{
	pub->nmessages++;
	if (kfdw_publisher_holds(pub))
	{
		txn_hold(pub->txn, pub->topic, enc);
		return;
	}

	if (pub->txn)
		txn_mark(pub->txn);
	produce(pub->handle, pub->rkt, pub->topic, enc->partition,
			enc->timestamp,
			enc->has_key ? enc->key.data : NULL,
			enc->has_key ? enc->key.len : -1,
			enc->has_value ? enc->value.data : NULL,
			enc->has_value ? enc->value.len : -1,
			enc->headers.data, enc->headers.len, enc->nheaders,
			pub->delivery);
	if (pub->txn)
		pub->txn->nadded++;

	if (pub->nmessages % KFDW_POLL_INTERVAL == 0)
	{
		kfdw_serve_events(pub->handle);
		kfdw_delivery_check_stall(pub->handle, pub->delivery);
		delivery_check(pub->delivery, pub->handle, pub->topic);
	}
}

/*
 * Wait until every message produced so far was acknowledged; ERROR if any
 * failed.  Gives the partition and offset of the last one acknowledged (for
 * RETURNING).
 */
void
kfdw_publisher_wait(KafkaPublisher *pub, int32 *partition, int64 *offset)
{
	kfdw_delivery_wait(pub->handle, pub->delivery);
	delivery_check(pub->delivery, pub->handle, pub->topic);
	if (partition)
		*partition = pub->delivery->partition;
	if (offset)
		*offset = pub->delivery->offset;
}

/*
 * End a statement: wait for its messages (unless they wait for the
 * transaction's commit) and let go of what it holds.
 */
void
kfdw_publisher_end(KafkaPublisher *pub)
{
	if (!kfdw_publisher_holds(pub))
		kfdw_publisher_wait(pub, NULL, NULL);
	publisher_release(pub, false);
}

/*
 * ERROR if any message counted by d failed: how many, and the first reason.
 */
static void
delivery_check(KafkaDelivery *d, KafkaHandle *handle, const char *topic)
{
	char		fatal[512];
	rd_kafka_resp_err_t ferr;

	if (d->failed == 0)
		return;

	/*
	 * A fatal error (a transactional producer fenced by another with its
	 * id) purges what was queued: that error, not the purge, is the cause.
	 */
	ferr = kfdw_fatal_error(handle, fatal, sizeof(fatal));
	if (ferr != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(kfdw_errcode(ferr)),
				 errmsg("could not publish " INT64_FORMAT " of " INT64_FORMAT " messages to Kafka topic \"%s\"",
						d->failed, d->produced, topic),
				 errdetail_internal("The Kafka producer failed: %s", fatal),
				 fatal_hint(ferr)));

	ereport(ERROR,
			(errcode(kfdw_errcode(d->first_err)),
			 errmsg("could not publish " INT64_FORMAT " of " INT64_FORMAT " messages to Kafka topic \"%s\"",
					d->failed, d->produced, topic),
			 errdetail_internal("First failure (partition %d): %s",
								d->first_partition, d->first_errstr),
			 kfdw_errcode(d->first_err) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION
			 ? errhint("Check that the brokers \"%s\" are reachable; the server option \"message.timeout.ms\" bounds how long a message may wait for them.",
					   handle->brokers)
			 : 0));
}

/*
 * Hand one message to librdkafka (which copies it), counted in d; headers
 * are in the form of kfdw_make_headers().  ERROR if librdkafka refuses it.
 */
static void
produce(KafkaHandle *handle, rd_kafka_topic_t *rkt, const char *topic,
		int32 partition, int64 timestamp, const char *key, int keylen,
		const char *value, int valuelen, const char *headers, int headerslen,
		int nheaders, KafkaDelivery *d)
{
	KafkaOutMessage msg;
	rd_kafka_resp_err_t err;
	char		errstr[512];

	msg.rkt = rkt;
	msg.topic = topic;
	msg.partition = partition;
	msg.timestamp = timestamp;
	msg.key = key;
	msg.keylen = keylen;
	msg.value = value;
	msg.valuelen = valuelen;
	msg.headers = nheaders > 0 ?
		kfdw_make_headers(headers, headerslen, nheaders) : NULL;
	msg.opaque = d;
	err = kfdw_produce(handle, &msg, d, errstr, sizeof(errstr));
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(kfdw_errcode(err)),
				 errmsg("could not publish a message to Kafka topic \"%s\"",
						topic),
				 kfdw_errdetail_kafka(handle, err, errstr),
				 kfdw_errhint_kafka(handle, err)));
}

/*
 * What publishing asks of a producer of the server for userid: deliveries
 * counted by kfdw_delivery_report(), and, for a transactional producer, a
 * transactional id of its own.  The id is unique per backend, so that
 * backends never fence each other, and per server and user too: a
 * transaction that publishes through two transactional producers (two
 * servers, or a SECURITY DEFINER function) must not fence either.
 */
static void
producer_spec(KafkaClientSpec *spec, KafkaHandleKind kind, Oid serverid,
			  Oid userid)
{
	static char txnid[128];

	memset(spec, 0, sizeof(*spec));
	spec->kind = kind;
	spec->on_delivery = kfdw_delivery_report;
	if (kind == KFDW_HANDLE_TXN_PRODUCER)
	{
		snprintf(txnid, sizeof(txnid),
				 "kafka_fdw-" UINT64_FORMAT "-%d-%ld-%u-%u",
				 GetSystemIdentifier(), MyProcPid, (long) MyStartTime,
				 serverid, userid);
		spec->transactional_id = txnid;
	}
}

static KafkaPublisher *
publisher_new(KafkaHandle *handle, const char *topic, KafkaTxnServer *ts)
{
	KafkaPublisher *pub;
	MemoryContext oldcxt;

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	pub = palloc0(sizeof(KafkaPublisher));
	pub->handle = handle;
	pub->txn = ts;
	pub->subid = GetCurrentSubTransactionId();
	pub->topic = pstrdup(topic);
	kfdw_pin_handle(handle);
	pub->rkt = rd_kafka_topic_new(handle->rk, topic, NULL);
	if (pub->rkt == NULL)
	{
		rd_kafka_resp_err_t err = rd_kafka_last_error();

		kfdw_unpin_handle(handle);
		pfree(pub->topic);
		pfree(pub);
		MemoryContextSwitchTo(oldcxt);
		ereport(ERROR,
				(errcode(kfdw_errcode(err)),
				 errmsg("could not open Kafka topic \"%s\"", topic),
				 kfdw_errdetail_kafka(handle, err, NULL),
				 kfdw_errhint_kafka(handle, err)));
	}
	pub->delivery = ts ? ts->delivery : kfdw_delivery_new(handle);
	active_publishers = lappend(active_publishers, pub);
	MemoryContextSwitchTo(oldcxt);
	return pub;
}

/*
 * Let go of what a statement holds.  After an error or cancel, what is
 * still queued in librdkafka is purged so that it is never sent: those
 * messages may or may not have reached the brokers already.
 */
static void
publisher_release(KafkaPublisher *pub, bool aborted)
{
	active_publishers = list_delete_ptr(active_publishers, pub);

	if (pub->txn == NULL)
	{
		/*
		 * Purging works on the whole producer: spare the messages of an
		 * outer statement that is still running (when a subtransaction
		 * inside it failed).
		 */
		if (aborted && pub->delivery->outstanding > 0 &&
			!handle_in_use(pub->handle))
		{
			rd_kafka_purge(pub->handle->rk, RD_KAFKA_PURGE_F_QUEUE);
			rd_kafka_poll(pub->handle->rk, 0);
		}
		kfdw_delivery_release(pub->delivery);
	}
	rd_kafka_topic_destroy(pub->rkt);
	kfdw_unpin_handle(pub->handle);
	pfree(pub->topic);
	pfree(pub);
}

/* Does an active statement publish through this handle? */
static bool
handle_in_use(KafkaHandle *handle)
{
	ListCell   *lc;

	foreach(lc, active_publishers)
	{
		if (((KafkaPublisher *) lfirst(lc))->handle == handle)
			return true;
	}
	return false;
}

static void
register_xact_callbacks(void)
{
	if (xact_callbacks_registered)
		return;
	RegisterXactCallback(publish_xact_callback, NULL);
	RegisterSubXactCallback(publish_subxact_callback, NULL);
	xact_callbacks_registered = true;
}

/*
 * The transactional state of a server for the current transaction, made at
 * its first use.
 */
static KafkaTxnServer *
txn_server_get(Oid serverid, Oid userid, KafkaServerOptions *sopts)
{
	KafkaTxnServer *ts;
	KafkaClientSpec spec;
	ListCell   *lc;
	MemoryContext oldcxt;

	foreach(lc, txn_servers)
	{
		ts = (KafkaTxnServer *) lfirst(lc);
		if (ts->serverid == serverid && ts->userid == userid)
			return ts;
	}

	if (txn_context == NULL)
		txn_context = AllocSetContextCreate(TopTransactionContext,
											"kafka_fdw transaction",
											ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(txn_context);
	ts = palloc0(sizeof(KafkaTxnServer));
	ts->serverid = serverid;
	ts->userid = userid;
	ts->servername = pstrdup(GetForeignServer(serverid)->servername);
	ts->hold_limit = sopts->transaction_hold_bytes;
	ts->maxmarks = 8;
	ts->marks = palloc(sizeof(SubxactMark) * ts->maxmarks);
	MemoryContextSwitchTo(oldcxt);

	producer_spec(&spec, KFDW_HANDLE_TXN_PRODUCER, serverid, userid);
	ts->handle = kfdw_acquire_client(serverid, userid, &spec);
	if (ts->handle->private == NULL)
		ts->handle->private = MemoryContextAllocZero(TopMemoryContext,
													 sizeof(KafkaProducerState));
	kfdw_pin_handle(ts->handle);
	ts->delivery = kfdw_delivery_new(ts->handle);

	oldcxt = MemoryContextSwitchTo(txn_context);
	txn_servers = lappend(txn_servers, ts);
	MemoryContextSwitchTo(oldcxt);
	return ts;
}

/*
 * Note where the current subtransaction's messages start, the first time it
 * publishes.
 */
static void
txn_mark(KafkaTxnServer *ts)
{
	SubTransactionId subid = GetCurrentSubTransactionId();

	if (ts->nmarks > 0 && ts->marks[ts->nmarks - 1].subid == subid)
		return;
	if (ts->nmarks == ts->maxmarks)
	{
		ts->maxmarks *= 2;
		ts->marks = repalloc(ts->marks, sizeof(SubxactMark) * ts->maxmarks);
	}
	ts->marks[ts->nmarks].subid = subid;
	ts->marks[ts->nmarks].count = ts->nadded;
	ts->nmarks++;
}

/*
 * Hold the encoded row until commit.  Past the server's bound, begin the
 * Kafka transaction and send what is held: from then on, messages are
 * streamed into it.
 */
static void
txn_hold(KafkaTxnServer *ts, const char *topic_name, KafkaEncoder *enc)
{
	int			keylen = enc->has_key ? enc->key.len : 0;
	int			valuelen = enc->has_value ? enc->value.len : 0;
	Size		size = keylen + valuelen + enc->headers.len;
	HeldMessage *m;
	MemoryContext oldcxt;
	const char *topic = NULL;
	ListCell   *lc;

	txn_mark(ts);

	oldcxt = MemoryContextSwitchTo(txn_context);
	foreach(lc, ts->topics)
	{
		if (strcmp((char *) lfirst(lc), topic_name) == 0)
		{
			topic = (char *) lfirst(lc);
			break;
		}
	}
	if (topic == NULL)
	{
		topic = pstrdup(topic_name);
		ts->topics = lappend(ts->topics, (char *) topic);
	}

	m = palloc(offsetof(HeldMessage, data) + size);
	m->topic = topic;
	m->partition = enc->partition;
	m->timestamp = enc->timestamp;
	m->keylen = enc->has_key ? keylen : -1;
	m->valuelen = enc->has_value ? valuelen : -1;
	m->headerslen = enc->headers.len;
	m->nheaders = enc->nheaders;
	memcpy(m->data, enc->key.data, keylen);
	memcpy(m->data + keylen, enc->value.data, valuelen);
	memcpy(m->data + keylen + valuelen, enc->headers.data, enc->headers.len);
	ts->held = lappend(ts->held, m);
	MemoryContextSwitchTo(oldcxt);

	ts->held_bytes += size;
	ts->nadded++;

	if (ts->held_bytes > ts->hold_limit || ts->hold_limit == 0)
	{
		txn_begin(ts);
		txn_send_held(ts);
	}
}

/*
 * How long a transactional call may keep retrying: the time to deliver
 * (message.timeout.ms) plus the time to reach a restarted coordinator.
 */
static int
txn_limit_ms(KafkaTxnServer *ts)
{
	return kfdw_message_timeout_ms(ts->handle) + ts->handle->connect_timeout_ms;
}

/*
 * Begin the Kafka transaction (initializing the producer's transactions
 * first, once per handle).  Both calls are retried in short slices while
 * librdkafka says they may be, so that interrupts are served.
 */
static void
txn_begin(KafkaTxnServer *ts)
{
	KafkaProducerState *ps = (KafkaProducerState *) ts->handle->private;
	rd_kafka_error_t *error;

	if (!ps->txn_initialized)
	{
		instr_time	start,
					now;
		int			limit = txn_limit_ms(ts);

		INSTR_TIME_SET_CURRENT(start);
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			error = rd_kafka_init_transactions(ts->handle->rk,
											   KFDW_WAIT_SLICE_MS * 5);
			kfdw_serve_events(ts->handle);
			if (error == NULL)
				break;
			INSTR_TIME_SET_CURRENT(now);
			INSTR_TIME_SUBTRACT(now, start);
			if ((rd_kafka_error_is_retriable(error) ||
				 rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__TIMED_OUT) &&
				INSTR_TIME_GET_MILLISEC(now) < limit)
			{
				rd_kafka_error_destroy(error);
				continue;
			}
			txn_check_error(ts, error,
							gettext_noop("could not initialize Kafka transactions for server \"%s\""),
							0);
		}
		ps->txn_initialized = true;
	}

	error = rd_kafka_begin_transaction(ts->handle->rk);
	if (error)
		txn_check_error(ts, error,
						gettext_noop("could not begin a Kafka transaction for server \"%s\""),
						0);
	ts->streaming = true;
}

/* Produce the held messages into the begun Kafka transaction */
static void
txn_send_held(KafkaTxnServer *ts)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, ts->held)
	{
		HeldMessage *m = (HeldMessage *) lfirst(lc);
		int			keylen = Max(m->keylen, 0);
		int			valuelen = Max(m->valuelen, 0);

		produce(ts->handle, NULL, m->topic, m->partition, m->timestamp,
				m->data, m->keylen,
				m->data + keylen, m->valuelen,
				m->data + keylen + valuelen, m->headerslen, m->nheaders,
				ts->delivery);
		if (++n % KFDW_POLL_INTERVAL == 0)
			kfdw_serve_events(ts->handle);
	}
	list_free_deep(ts->held);
	ts->held = NIL;
	ts->held_bytes = 0;
}

/*
 * Commit the Kafka transaction of a server (at PRE_COMMIT): begin it and
 * send what is held if it had not begun, then commit, retrying in short
 * slices while librdkafka flushes.  ERROR if it cannot be committed.
 */
static void
txn_commit(KafkaTxnServer *ts)
{
	instr_time	start;
	int			limit;

	if (ts->doomed)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("cannot commit: messages of a rolled-back subtransaction were already sent to Kafka through server \"%s\"",
						ts->servername),
				 errdetail("Past transaction_hold_bytes, messages are streamed into the Kafka transaction and a rollback to a savepoint cannot withdraw them."),
				 errhint("Roll back the whole transaction, or raise the server option \"transaction_hold_bytes\".")));

	if (!ts->streaming)
	{
		if (ts->held == NIL)
			return;
		txn_begin(ts);
		txn_send_held(ts);
	}

	INSTR_TIME_SET_CURRENT(start);
	limit = txn_limit_ms(ts);
	for (;;)
	{
		rd_kafka_error_t *error;
		instr_time	now;

		CHECK_FOR_INTERRUPTS();
		error = rd_kafka_commit_transaction(ts->handle->rk,
											KFDW_WAIT_SLICE_MS * 5);
		if (error == NULL)
			break;
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);

		/*
		 * Retry while librdkafka flushes, unless a message already failed
		 * (the transaction can then only abort) or the brokers stay out of
		 * reach past the delivery timeout.
		 */
		if ((rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__TIMED_OUT ||
			 (rd_kafka_error_is_retriable(error) &&
			  !rd_kafka_error_txn_requires_abort(error))) &&
			ts->delivery->failed == 0 &&
			INSTR_TIME_GET_MILLISEC(now) < limit)
		{
			rd_kafka_error_destroy(error);
			continue;
		}
		txn_check_error(ts, error,
						INSTR_TIME_GET_MILLISEC(now) < limit
						? gettext_noop("could not commit the Kafka transaction of server \"%s\"")
						: gettext_noop("could not commit the Kafka transaction of server \"%s\" within %d ms"),
						limit);
	}
	ts->streaming = false;
	ts->committed = true;
}

/*
 * Abort a begun Kafka transaction, when PostgreSQL aborts.  Must not throw:
 * a producer that cannot abort is destroyed, which leaves the transaction to
 * be aborted by the broker (at the next init_transactions() of this
 * backend's transactional id, or after transaction.timeout.ms).
 */
static void
txn_abort(KafkaTxnServer *ts)
{
	rd_kafka_error_t *error;

	if (!ts->streaming)
		return;
	ts->streaming = false;

	error = rd_kafka_abort_transaction(ts->handle->rk,
									   KFDW_TXN_ABORT_TIMEOUT_MS);
	if (error)
	{
		elog(LOG, "kafka_fdw: could not abort the Kafka transaction of server \"%s\": %s",
			 ts->servername, rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		ts->handle->stale = true;
	}
}

/*
 * ERROR for a failed transactional call, with the deliveries that failed.
 * what is the primary message, marked for translation by the caller with
 * gettext_noop(); it is formatted with the server's name and limit, as its
 * conversions say (as PostgreSQL's aclcheck_error() does).  A fatal error
 * makes the producer unusable: it is re-made at next use.
 */
static void
txn_check_error(KafkaTxnServer *ts, rd_kafka_error_t *error, const char *what,
				int limit)
{
	rd_kafka_resp_err_t err = rd_kafka_error_code(error);
	char		errstr[512];
	char		fatal[512];
	rd_kafka_resp_err_t ferr;
	KafkaDelivery *d = ts->delivery;

	strlcpy(errstr, rd_kafka_error_string(error), sizeof(errstr));
	if (rd_kafka_error_is_fatal(error))
		ts->handle->stale = true;
	rd_kafka_error_destroy(error);

	/* a fatal error purged the deliveries: it is the cause */
	ferr = kfdw_fatal_error(ts->handle, fatal, sizeof(fatal));
	if (ferr != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(kfdw_errcode(ferr)),
				 errmsg(what, ts->servername, limit),
				 errdetail_internal("The Kafka producer failed: %s", fatal),
				 fatal_hint(ferr)));

	if (d->failed > 0)
		ereport(ERROR,
				(errcode(kfdw_errcode(d->first_err)),
				 errmsg("%s: " INT64_FORMAT " of " INT64_FORMAT " messages could not be published",
						psprintf(_(what), ts->servername, limit),
						d->failed, d->produced),
				 errdetail_internal("First failure (partition %d): %s; %s",
									d->first_partition, d->first_errstr,
									errstr)));
	ereport(ERROR,
			(errcode(kfdw_errcode(err)),
			 errmsg(what, ts->servername, limit),
			 kfdw_errdetail_kafka(ts->handle, err, errstr),
			 kfdw_errhint_kafka(ts->handle, err)));
}

/* What to do after a producer's fatal error */
static int
fatal_hint(rd_kafka_resp_err_t err)
{
	if (err == RD_KAFKA_RESP_ERR__FENCED ||
		err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
		err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)
		return errhint("Another producer took over this session's transactional id; nothing of the transaction is visible to read_committed consumers. The next statement starts a new producer.");
	return errhint("The next statement starts a new producer.");
}

/*
 * Release the statements that an error cut short, in the subtransaction
 * subid and those below it (InvalidSubTransactionId: all).
 */
static void
release_aborted_publishers(SubTransactionId subid)
{
	for (;;)
	{
		KafkaPublisher *victim = NULL;
		ListCell   *lc;

		foreach(lc, active_publishers)
		{
			KafkaPublisher *pub = (KafkaPublisher *) lfirst(lc);

			if (subid == InvalidSubTransactionId || pub->subid >= subid)
			{
				victim = pub;
				break;
			}
		}
		if (victim == NULL)
			break;
		publisher_release(victim, true);
	}
}

/* Forget the transactional state at the end of a transaction */
static void
txn_servers_reset(void)
{
	ListCell   *lc;

	foreach(lc, txn_servers)
	{
		KafkaTxnServer *ts = (KafkaTxnServer *) lfirst(lc);

		kfdw_delivery_release(ts->delivery);
		kfdw_unpin_handle(ts->handle);
	}
	/* the memory goes with TopTransactionContext */
	txn_servers = NIL;
	txn_context = NULL;
}

static void
publish_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			foreach(lc, txn_servers)
				txn_commit((KafkaTxnServer *) lfirst(lc));
			break;
		case XACT_EVENT_PRE_PREPARE:
			foreach(lc, txn_servers)
			{
				KafkaTxnServer *ts = (KafkaTxnServer *) lfirst(lc);

				if (ts->nadded > 0 || ts->streaming)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot prepare a transaction that published messages through transactional Kafka server \"%s\"",
									ts->servername),
							 errdetail("Kafka transactions cannot take part in two-phase commit.")));
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			release_aborted_publishers(InvalidSubTransactionId);
			txn_servers_reset();
			break;
		case XACT_EVENT_ABORT:
			release_aborted_publishers(InvalidSubTransactionId);
			foreach(lc, txn_servers)
			{
				KafkaTxnServer *ts = (KafkaTxnServer *) lfirst(lc);

				if (!ts->committed)
					txn_abort(ts);
			}
			txn_servers_reset();
			break;
		default:
			break;
	}
}

/*
 * Subtransactions: a rolled-back one discards the messages it held; if they
 * were already streamed into the Kafka transaction, the transaction can no
 * longer commit (txn_commit says why).
 */
static void
publish_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
		release_aborted_publishers(mySubid);

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;

	foreach(lc, txn_servers)
	{
		KafkaTxnServer *ts = (KafkaTxnServer *) lfirst(lc);
		int			i;

		/* the first mark of mySubid or of a subtransaction below it */
		for (i = 0; i < ts->nmarks; i++)
		{
			if (ts->marks[i].subid >= mySubid)
				break;
		}
		if (i == ts->nmarks)
			continue;

		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			/* its messages now belong to the parent */
			if (i > 0 && ts->marks[i - 1].subid == parentSubid)
				ts->nmarks = i;
			else
			{
				ts->marks[i].subid = parentSubid;
				ts->nmarks = i + 1;
			}
			continue;
		}

		/* rolled back */
		if (ts->marks[i].count < ts->nadded)
		{
			if (ts->streaming)
				ts->doomed = true;
			else
			{
				int			keep = ts->marks[i].count;
				int			j;

				for (j = keep; j < list_length(ts->held); j++)
				{
					HeldMessage *m = (HeldMessage *) list_nth(ts->held, j);

					ts->held_bytes -= Max(m->keylen, 0) +
						Max(m->valuelen, 0) + m->headerslen;
					pfree(m);
				}
				ts->held = list_truncate(ts->held, keep);
				ts->nadded = keep;
			}
		}
		ts->nmarks = i;
	}
}
