/*-------------------------------------------------------------------------
 *
 * produce.c
 *		  Producing messages, the accounting of their deliveries, and the
 *		  partition counts of the topics produced to
 *
 * Every producer of the extension hands its messages to librdkafka through
 * kfdw_produce(), which waits for room while librdkafka's queue is full, and
 * counts each message in a KafkaDelivery: the messages of an INSERT
 * statement, of a Kafka transaction, or of a CDC stream.  Delivery reports
 * are served by rd_kafka_poll() from the backend; each one is counted by
 * kfdw_delivery_record(), called from the producer's delivery report
 * callback: kfdw_delivery_report() when the message's opaque is its
 * KafkaDelivery, or the producer's own (a CDC stream also accounts for its
 * transactions).
 *
 * A KafkaDelivery lives in TopMemoryContext and may outlive its owner (a
 * statement cut short by an error): the last report frees it then.
 *
 * The partition count of a topic is remembered for a while per server, so
 * that a producing statement need not ask the brokers for it.
 *
 * IDENTIFICATION
 *		  src/kafka/produce.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka/kafka.h"

#include "miscadmin.h"
#include "utils/memutils.h"

/* Longest wait for room in a full queue, before interrupts are served */
#define KFDW_QUEUE_FULL_WAIT_MS 10

/* Slice of the wait for deliveries, so that interrupts are served */
#define KFDW_DELIVERY_SLICE_MS 100

/*
 * Grace beyond message.timeout.ms before kafka_fdw gives up on messages that
 * librdkafka has not reported (it may time them out late when a partition's
 * leader is gone)
 */
#define KFDW_STALL_GRACE_MS 1000

/* How long the partition count of a topic is trusted */
#define KFDW_TOPIC_CACHE_MS 30000

/* Partition counts of topics, per server, so that a statement need not ask */
typedef struct TopicCacheEntry
{
	Oid			serverid;
	char	   *topic;
	int			partition_cnt;
	instr_time	fetched;
} TopicCacheEntry;

static List *topic_cache = NIL;

/*
 * Hand one message to librdkafka (which copies it) and count it in d.  A
 * full local queue is waited on, serving delivery reports and interrupts.
 * Any other error is returned, with librdkafka's text in errstr, for the
 * caller to report.  The message's headers, if any, are librdkafka's from
 * now on, or destroyed if it is not produced.
 */
rd_kafka_resp_err_t
kfdw_produce(KafkaHandle *handle, const KafkaOutMessage *msg, KafkaDelivery *d,
			 char *errstr, size_t errstr_size)
{
	rd_kafka_vu_t vus[8];
	int			n = 0;
	bool		served = false;	/* queued reports served since it was full */

	if (msg->rkt)
	{
		vus[n].vtype = RD_KAFKA_VTYPE_RKT;
		vus[n++].u.rkt = msg->rkt;
	}
	else
	{
		vus[n].vtype = RD_KAFKA_VTYPE_TOPIC;
		vus[n++].u.cstr = msg->topic;
	}
	vus[n].vtype = RD_KAFKA_VTYPE_PARTITION;
	vus[n++].u.i32 = msg->partition;
	vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
	vus[n++].u.i = RD_KAFKA_MSG_F_COPY;
	vus[n].vtype = RD_KAFKA_VTYPE_VALUE;
	vus[n].u.mem.ptr = msg->valuelen < 0 ? NULL : (void *) msg->value;
	vus[n++].u.mem.size = msg->valuelen < 0 ? 0 : msg->valuelen;
	if (msg->keylen >= 0)
	{
		vus[n].vtype = RD_KAFKA_VTYPE_KEY;
		vus[n].u.mem.ptr = (void *) msg->key;
		vus[n++].u.mem.size = msg->keylen;
	}
	if (msg->timestamp > 0)
	{
		vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
		vus[n++].u.i64 = msg->timestamp;
	}
	vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
	vus[n++].u.ptr = msg->opaque;
	if (msg->headers)
	{
		vus[n].vtype = RD_KAFKA_VTYPE_HEADERS;
		vus[n++].u.headers = msg->headers;
	}

	for (;;)
	{
		rd_kafka_error_t *error = rd_kafka_produceva(handle->rk, vus, n);
		rd_kafka_resp_err_t err;

		if (error == NULL)
			break;

		err = rd_kafka_error_code(error);
		strlcpy(errstr, rd_kafka_error_string(error), errstr_size);
		rd_kafka_error_destroy(error);

		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		{
			/*
			 * Wait for room: deliveries or timeouts free it.  Delivery
			 * reports already queued make room without a wait; the wait
			 * ends as soon as the next ones arrive.
			 */
			PG_TRY();
			{
				if (served)
					kfdw_wait(handle, KFDW_QUEUE_FULL_WAIT_MS,
							  kfdw_wait_event(KFDW_WAIT_PRODUCE));
				else
				{
					CHECK_FOR_INTERRUPTS();
					kfdw_serve_events(handle);
				}
			}
			PG_CATCH();
			{
				if (msg->headers)
					rd_kafka_headers_destroy(msg->headers);
				PG_RE_THROW();
			}
			PG_END_TRY();
			served = !served;
			continue;
		}

		if (msg->headers)
			rd_kafka_headers_destroy(msg->headers);
		return err;
	}
	if (d->outstanding++ == 0)
		INSTR_TIME_SET_CURRENT(d->last_progress);
	d->produced++;
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/*
 * A delivery report callback for producers whose messages carry their
 * KafkaDelivery as opaque: counts the message, and frees the accounting of
 * an owner that is gone with its last report.  Run by rd_kafka_poll() in
 * the backend; never throws.
 */
void
kfdw_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *rkmessage,
					 void *opaque)
{
	KafkaDelivery *d = (KafkaDelivery *) rkmessage->_private;

	if (d == NULL)
		return;
	kfdw_delivery_record(d, rkmessage);
	if (d->owner_gone && d->outstanding == 0)
		pfree(d);
}

/*
 * Count the delivery report of a message of d: delivered (where, for
 * RETURNING) or failed (the first failure, and why).  Never throws.
 */
void
kfdw_delivery_record(KafkaDelivery *d, const rd_kafka_message_t *rkmessage)
{
	d->outstanding--;
	INSTR_TIME_SET_CURRENT(d->last_progress);
	if (rkmessage->err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (d->failed++ == 0)
		{
			d->first_err = rkmessage->err;
			d->first_partition = rkmessage->partition;
			strlcpy(d->first_topic, rd_kafka_topic_name(rkmessage->rkt),
					sizeof(d->first_topic));
			if (d->stalled &&
				(rkmessage->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
				 rkmessage->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT))
			{
				/* purged by kfdw_delivery_check_stall() */
				d->first_err = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
				snprintf(d->first_errstr, sizeof(d->first_errstr),
						 "%s (no acknowledgement within message.timeout.ms, %d ms)",
						 rd_kafka_err2str(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT),
						 d->timeout_ms);
			}
			else
				strlcpy(d->first_errstr, rd_kafka_err2str(rkmessage->err),
						sizeof(d->first_errstr));
		}
	}
	else
	{
		d->partition = rkmessage->partition;
		d->offset = rkmessage->offset;
	}
}

/* New accounting for messages of the producer handle, in TopMemoryContext */
KafkaDelivery *
kfdw_delivery_new(KafkaHandle *handle)
{
	KafkaDelivery *d = MemoryContextAllocZero(TopMemoryContext,
											  sizeof(KafkaDelivery));

	d->timeout_ms = kfdw_message_timeout_ms(handle);
	return d;
}

/* The owner is done with d: free it now, or with its last report */
void
kfdw_delivery_release(KafkaDelivery *d)
{
	if (d->outstanding == 0)
		pfree(d);
	else
		d->owner_gone = true;
}

/*
 * Wait until every message counted by d was reported, serving interrupts
 * at least every KFDW_DELIVERY_SLICE_MS.  rd_kafka_flush() sends at once
 * what lingers in the queues and serves the delivery reports.
 */
void
kfdw_delivery_wait(KafkaHandle *handle, KafkaDelivery *d)
{
	while (d->outstanding > 0)
	{
		(void) rd_kafka_flush(handle->rk, 0);
		if (d->outstanding == 0)
			break;
		kfdw_wait(handle, KFDW_DELIVERY_SLICE_MS,
				  kfdw_wait_event(KFDW_WAIT_PRODUCE));
		kfdw_delivery_check_stall(handle, d);
	}
}

/*
 * If no delivery report came for longer than message.timeout.ms (and a
 * grace), give up on what librdkafka still holds: purge it, so that it is
 * reported failed now and never sent later.  A message that was in flight
 * may still have reached the broker.
 */
void
kfdw_delivery_check_stall(KafkaHandle *handle, KafkaDelivery *d)
{
	instr_time	now;

	if (d->outstanding == 0 || d->stalled)
		return;
	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, d->last_progress);
	if (INSTR_TIME_GET_MILLISEC(now) < d->timeout_ms + KFDW_STALL_GRACE_MS)
		return;

	d->stalled = true;
	rd_kafka_purge(handle->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	kfdw_serve_events(handle);
}

/*
 * How many partitions a topic has; ERROR if it does not exist (and the
 * brokers did not create it on request).  Remembered for a while per server;
 * entries past that are dropped.
 */
int
kfdw_producer_partitions(KafkaHandle *handle, const char *topic)
{
	ListCell   *lc;
	instr_time	now;
	int			count;
	MemoryContext oldcxt;
	TopicCacheEntry *entry;

	INSTR_TIME_SET_CURRENT(now);
	foreach(lc, topic_cache)
	{
		TopicCacheEntry *e = (TopicCacheEntry *) lfirst(lc);
		instr_time	age = now;

		INSTR_TIME_SUBTRACT(age, e->fetched);
		if (INSTR_TIME_GET_MILLISEC(age) >= KFDW_TOPIC_CACHE_MS)
		{
			topic_cache = foreach_delete_current(topic_cache, lc);
			pfree(e->topic);
			pfree(e);
			continue;
		}
		if (e->serverid == handle->serverid && strcmp(e->topic, topic) == 0)
			return e->partition_cnt;
	}

	count = kfdw_topic_partitions(handle, topic);

	/* a few topics per server: a list will do */
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	entry = palloc(sizeof(TopicCacheEntry));
	entry->serverid = handle->serverid;
	entry->topic = pstrdup(topic);
	entry->partition_cnt = count;
	entry->fetched = now;
	topic_cache = lappend(topic_cache, entry);
	MemoryContextSwitchTo(oldcxt);
	return count;
}

/* The producer's message.timeout.ms: how long delivery may take */
int
kfdw_message_timeout_ms(KafkaHandle *handle)
{
	char		buf[32];
	size_t		size = sizeof(buf);
	int			result;

	if (rd_kafka_conf_get(rd_kafka_conf(handle->rk), "message.timeout.ms",
						  buf, &size) != RD_KAFKA_CONF_OK ||
		(result = atoi(buf)) <= 0)
		result = KFDW_DEFAULT_MESSAGE_TIMEOUT_MS;
	return result;
}
