/*-------------------------------------------------------------------------
 *
 * consumer.c
 *		  A consumer's batch of fetched messages
 *
 * The messages a consumer has fetched and its user has not used yet belong
 * to the consumer handle, not to its user: librdkafka's messages are not
 * palloc'd and must all be destroyed before their client is.  When a scan
 * ends with an error the executor never ends it, and the handle it had
 * checked out is discarded by connection.c, which frees the batch with
 * the client: one place cleans up consumers, whatever the order of the
 * transaction callbacks.
 *
 * IDENTIFICATION
 *		  src/kafka/consumer.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka/kafka.h"

#include "utils/memutils.h"

/* The messages fetched by a consumer, in TopMemoryContext */
typedef struct KafkaBatch
{
	rd_kafka_message_t **msgs;
	int			size;			/* room in msgs */
	int			nmsgs;			/* fetched */
	int			next;			/* first one not used yet */

	/* messages and bytes taken since the fetchers were last woken */
	int64		since_wake;
	int64		bytes_since_wake;
	int64		wake_msgs;		/* queued.min.messages, 0 until read */
	int64		wake_bytes;		/* queued.max.messages.kbytes, in bytes */
} KafkaBatch;

static void wake_fetchers(KafkaHandle *handle, KafkaBatch *b);

/*
 * Fetch up to max_messages into the handle's batch, which must have been
 * used up: what is queued, at once, or when nothing is, what arrives within
 * timeout_ms (a single wait, ended by the first message).  Returns how many
 * were fetched, or -1 with rd_kafka_last_error() set.
 */
int
kfdw_consumer_fetch(KafkaHandle *handle, int max_messages, int timeout_ms)
{
	KafkaBatch *b = handle->batch;
	rd_kafka_queue_t *queue = kfdw_consumer_queue(handle);
	ssize_t		n;
	ssize_t		i;

	if (b == NULL)
		b = handle->batch = MemoryContextAllocZero(TopMemoryContext,
												   sizeof(KafkaBatch));
	kfdw_consumer_clear(handle);
	if (b->size < max_messages)
	{
		rd_kafka_message_t **msgs;

		msgs = MemoryContextAllocZero(TopMemoryContext,
									  sizeof(rd_kafka_message_t *) * max_messages);
		if (b->msgs)
			pfree(b->msgs);
		b->msgs = msgs;
		b->size = max_messages;
	}

	/*
	 * Take what is queued without waiting (a batch call with a timeout
	 * would wait for a full batch); when nothing is, wait for the first
	 * message and take what has come.
	 */
	kfdw_serve_events(handle);
	n = rd_kafka_consume_batch_queue(queue, 0, b->msgs, max_messages);
	if (n == 0 && timeout_ms > 0)
	{
		if (handle->wake_fetchers)
			wake_fetchers(handle, b);
		kfdw_wait(handle, timeout_ms, kfdw_wait_event(KFDW_WAIT_FETCH));
		n = rd_kafka_consume_batch_queue(queue, 0, b->msgs, max_messages);
	}
	if (n < 0)
		return -1;
	b->nmsgs = (int) n;
	b->since_wake += n;
	for (i = 0; i < n; i++)
		b->bytes_since_wake += b->msgs[i]->len;
	return (int) n;
}

/*
 * The queue is empty.  librdkafka 2.0 stops fetching while the consumer's
 * queue holds queued.min.messages (or queued.max.messages.kbytes), and
 * fetches again only when its broker thread wakes for something else, up
 * to a second later: a consumer that empties a full queue faster than
 * that sits idle (a stream ingesting a backlog did, 0.65 s in every
 * second).  Once a queue's worth has been taken since the last time, seek
 * each partition to its position (the offset after the last message
 * taken): a seek wakes the broker threads, and as the queue is empty
 * nothing fetched is lost.  A partition that has no position (nothing
 * taken since it was assigned or sought) is left alone; pausing and
 * resuming would not do: the main thread handles those, without waking
 * the fetchers.  A scan's own seek, if its operation is not handled yet,
 * may be overtaken by this one to an older offset: the scan skips the
 * messages before its range.
 */
static void
wake_fetchers(KafkaHandle *handle, KafkaBatch *b)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	rd_kafka_topic_partition_list_t *seek;
	int			i;

	if (b->wake_msgs == 0)
	{
		const rd_kafka_conf_t *conf = rd_kafka_conf(handle->rk);
		char		buf[64];
		size_t		size = sizeof(buf);

		b->wake_msgs = 100000;
		b->wake_bytes = (int64) 65536 * 1024;
		if (rd_kafka_conf_get(conf, "queued.min.messages", buf, &size) ==
			RD_KAFKA_CONF_OK)
			b->wake_msgs = Max(strtoll(buf, NULL, 10), 1);
		size = sizeof(buf);
		if (rd_kafka_conf_get(conf, "queued.max.messages.kbytes", buf, &size) ==
			RD_KAFKA_CONF_OK)
			b->wake_bytes = Max(strtoll(buf, NULL, 10), 1) * 1024;
	}
	if (b->since_wake < b->wake_msgs && b->bytes_since_wake < b->wake_bytes)
		return;
	b->since_wake = b->bytes_since_wake = 0;
	if (rd_kafka_assignment(handle->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (parts)
			rd_kafka_topic_partition_list_destroy(parts);
		return;
	}
	seek = rd_kafka_topic_partition_list_new(parts->cnt);
	if (rd_kafka_position(handle->rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		for (i = 0; i < parts->cnt; i++)
			if (parts->elems[i].offset >= 0)
				rd_kafka_topic_partition_list_add(seek, parts->elems[i].topic,
												  parts->elems[i].partition)->offset =
					parts->elems[i].offset;
	}
	if (seek->cnt > 0)
	{
		rd_kafka_error_t *error = rd_kafka_seek_partitions(handle->rk, seek, 0);

		if (error)
			rd_kafka_error_destroy(error);
	}
	rd_kafka_topic_partition_list_destroy(seek);
	rd_kafka_topic_partition_list_destroy(parts);
}

/*
 * Let kfdw_consumer_fetch() wake librdkafka's fetchers while the handle
 * reads (see wake_fetchers), or not; the count of messages taken starts
 * again, so that only messages of the current reading count.
 */
void
kfdw_consumer_set_wake(KafkaHandle *handle, bool on)
{
	handle->wake_fetchers = on;
	if (handle->batch)
		handle->batch->since_wake = handle->batch->bytes_since_wake = 0;
}

/* The next message of the batch, left in it; NULL when it is used up */
rd_kafka_message_t *
kfdw_consumer_peek(KafkaHandle *handle)
{
	KafkaBatch *b = handle->batch;

	if (b == NULL || b->next >= b->nmsgs)
		return NULL;
	return b->msgs[b->next];
}

/* Destroy the message kfdw_consumer_peek() returned, and move past it */
void
kfdw_consumer_next(KafkaHandle *handle)
{
	KafkaBatch *b = handle->batch;
	rd_kafka_message_t *msg;

	Assert(b != NULL && b->next < b->nmsgs);
	msg = b->msgs[b->next];
	b->msgs[b->next++] = NULL;
	rd_kafka_message_destroy(msg);
}

/*
 * Take the message kfdw_consumer_peek() returned out of the batch: the
 * caller destroys it (rd_kafka_message_destroy) when done with it.
 */
rd_kafka_message_t *
kfdw_consumer_take(KafkaHandle *handle)
{
	KafkaBatch *b = handle->batch;
	rd_kafka_message_t *msg;

	Assert(b != NULL && b->next < b->nmsgs);
	msg = b->msgs[b->next];
	b->msgs[b->next++] = NULL;
	return msg;
}

/* Destroy the messages of the batch not used yet */
void
kfdw_consumer_clear(KafkaHandle *handle)
{
	KafkaBatch *b = handle->batch;

	if (b == NULL)
		return;
	while (b->next < b->nmsgs)
		kfdw_consumer_next(handle);
	b->next = b->nmsgs = 0;
}

/* Free the batch, before the client of the handle is destroyed */
void
kfdw_consumer_close(KafkaHandle *handle)
{
	KafkaBatch *b = handle->batch;

	if (b == NULL)
		return;
	kfdw_consumer_clear(handle);
	handle->batch = NULL;
	if (b->msgs)
		pfree(b->msgs);
	pfree(b);
}
