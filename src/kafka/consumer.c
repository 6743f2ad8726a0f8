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
} KafkaBatch;

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
		kfdw_wait(handle, timeout_ms, kfdw_wait_event(KFDW_WAIT_FETCH));
		n = rd_kafka_consume_batch_queue(queue, 0, b->msgs, max_messages);
	}
	if (n < 0)
		return -1;
	b->nmsgs = (int) n;
	return (int) n;
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
