/*-------------------------------------------------------------------------
 *
 * wait.c
 *		  The one way a backend waits for librdkafka
 *
 * A backend never blocks inside librdkafka.  Every handle has a pipe that
 * librdkafka itself writes a byte to (rd_kafka_queue_io_event_enable) when
 * one of the handle's queues gets something while it was empty: the main
 * queue, where logs, errors and delivery reports arrive, and for a
 * consumer the queue its messages are fetched into, so that a message
 * wakes the scan at once.  kfdw_wait() sleeps on that pipe and on the
 * backend's latch, with a wait event for pg_stat_activity: a cancel, a
 * statement_timeout or the death of the postmaster ends it at once.
 *
 * librdkafka writes at most one byte per queue until the queue is read
 * again, so the pipe is read only when the wait says it is readable, and a
 * scan that finds messages queued takes them in batches without a system
 * call of its own.  A caller reads (or serves) its queues before it waits
 * again; kfdw_wait() itself serves the main queue.
 *
 * IDENTIFICATION
 *		  src/kafka/wait.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka/kafka.h"

#include <fcntl.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

/* The wake-up pipe of a handle and the queues that write to it */
typedef struct KafkaWaiter
{
	int			fds[2];			/* read end, write end; non-blocking */
	rd_kafka_queue_t *main;		/* the handle's main queue */
	rd_kafka_queue_t *consumer; /* a consumer's message queue, or NULL */
} KafkaWaiter;

/* Names of the wait events, by KafkaWaitEvent; their ids once known */
static const char *const wait_event_names[] = {
	"KafkaFetch",
	"KafkaProduce",
	"KafkaMetadata",
	"KafkaOffsets",
	"KafkaCdcIdle",
	"KafkaCdcStop"
};
static uint32 wait_event_ids[lengthof(wait_event_names)];

static KafkaWaiter *get_waiter(KafkaHandle *handle);
static void watch_queue(KafkaWaiter *w, rd_kafka_queue_t *queue);
static void drain_pipe(KafkaWaiter *w);

/*
 * The wait_event_info of a KafkaWaitEvent, for kfdw_wait().  Registered
 * with the server at first use where the server names extension events.
 */
uint32
kfdw_wait_event(KafkaWaitEvent event)
{
	Assert(event >= 0 && event < lengthof(wait_event_names));
	if (wait_event_ids[event] == 0)
		wait_event_ids[event] = KFDW_WAIT_EVENT_NEW(wait_event_names[event]);
	return wait_event_ids[event];
}

/*
 * Wait until librdkafka queues something for the handle, the latch is set
 * or timeout_ms has passed, whichever comes first; then check for
 * interrupts and serve the handle's events.  The caller loops on what it
 * waits for.
 */
void
kfdw_wait(KafkaHandle *handle, int timeout_ms, uint32 wait_event_info)
{
	KafkaWaiter *w = get_waiter(handle);
	int			rc;

	/*
	 * An interrupt already pending is served without sleeping first.  The
	 * main queue is served before the wait too: what was queued before the
	 * pipe was watched (or while the queue was not empty) writes no byte.
	 */
	CHECK_FOR_INTERRUPTS();
	kfdw_serve_events(handle);
	rc = WaitLatchOrSocket(MyLatch,
						   WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT |
						   WL_EXIT_ON_PM_DEATH,
						   w->fds[0], Max(timeout_ms, 0), wait_event_info);
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();

	/* drain first: what is queued after the drain writes again */
	if (rc & WL_SOCKET_READABLE)
		drain_pipe(w);
	kfdw_serve_events(handle);
}

/*
 * Wait for the whole of timeout_ms (a pause between two tries), serving
 * the handle's events and interrupts meanwhile.
 */
void
kfdw_sleep(KafkaHandle *handle, int timeout_ms, uint32 wait_event_info)
{
	KafkaDeadline deadline;
	int			left;

	kfdw_deadline_start(&deadline, timeout_ms);
	while ((left = kfdw_deadline_remaining(&deadline)) > 0)
		kfdw_wait(handle, left, wait_event_info);
}

/*
 * A descriptor that a thread of the backend's own (never librdkafka's,
 * which have theirs) may write a byte to, to end the handle's wait.  It
 * stays open as long as the client of the handle.
 */
int
kfdw_wait_wakeup_fd(KafkaHandle *handle)
{
	return get_waiter(handle)->fds[1];
}

/*
 * The queue a consumer's messages are fetched into, watched by the
 * handle's waits.
 */
rd_kafka_queue_t *
kfdw_consumer_queue(KafkaHandle *handle)
{
	KafkaWaiter *w = get_waiter(handle);

	if (w->consumer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg_internal("Kafka client of server %u has no consumer queue",
								 handle->serverid)));
	return w->consumer;
}

/*
 * Let go of the handle's pipe and queues, before its client is destroyed.
 * librdkafka stops writing to the pipe before it is closed.
 */
void
kfdw_wait_close(KafkaHandle *handle)
{
	KafkaWaiter *w = handle->waiter;

	if (w == NULL)
		return;
	handle->waiter = NULL;
	if (w->consumer)
	{
		rd_kafka_queue_io_event_enable(w->consumer, -1, NULL, 0);
		rd_kafka_queue_destroy(w->consumer);
	}
	if (w->main)
	{
		rd_kafka_queue_io_event_enable(w->main, -1, NULL, 0);
		rd_kafka_queue_destroy(w->main);
	}
	close(w->fds[0]);
	close(w->fds[1]);
	ReleaseExternalFD();
	ReleaseExternalFD();
	pfree(w);
}

/*
 * The waiter of a handle, made at its first wait: a non-blocking pipe
 * (counted against max_files_per_process) that the handle's queues write
 * to.
 */
static KafkaWaiter *
get_waiter(KafkaHandle *handle)
{
	KafkaWaiter *w = handle->waiter;
	bool		fds_ok = true;
	int			i;

	if (w != NULL)
		return w;

	/* the two ends of the pipe count against max_files_per_process */
	if (!AcquireExternalFD())
		fds_ok = false;
	else if (!AcquireExternalFD())
	{
		ReleaseExternalFD();
		fds_ok = false;
	}
	if (!fds_ok)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not wait for Kafka brokers \"%s\"",
						handle->brokers),
				 errdetail("There are too many open files on the local server."),
				 errhint("Raise the server's max_files_per_process and/or \"ulimit -n\" limits.")));

	w = MemoryContextAllocZero(TopMemoryContext, sizeof(KafkaWaiter));
	if (pipe(w->fds) != 0)
		fds_ok = false;
	for (i = 0; i < 2 && fds_ok; i++)
	{
		if (fcntl(w->fds[i], F_SETFL, O_NONBLOCK) == -1 ||
			fcntl(w->fds[i], F_SETFD, FD_CLOEXEC) == -1)
		{
			int			save_errno = errno;

			close(w->fds[0]);
			close(w->fds[1]);
			errno = save_errno;
			fds_ok = false;
		}
	}
	if (!fds_ok)
	{
		int			save_errno = errno;

		pfree(w);
		ReleaseExternalFD();
		ReleaseExternalFD();
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create a pipe to wait for Kafka: %m")));
	}

	w->main = rd_kafka_queue_get_main(handle->rk);
	watch_queue(w, w->main);
	if (handle->kind == KFDW_HANDLE_CONSUMER)
	{
		/* NULL only for a consumer without group.id: option.c sets one */
		w->consumer = rd_kafka_queue_get_consumer(handle->rk);
		if (w->consumer)
			watch_queue(w, w->consumer);
	}
	handle->waiter = w;
	return w;
}

/* Have librdkafka write a byte to the pipe when queue stops being empty */
static void
watch_queue(KafkaWaiter *w, rd_kafka_queue_t *queue)
{
	static const char payload[1] = {'k'};

	rd_kafka_queue_io_event_enable(queue, w->fds[1], payload, sizeof(payload));
}

/* Read what librdkafka (or a blocking call's thread) wrote */
static void
drain_pipe(KafkaWaiter *w)
{
	char		buf[64];

	/* a short read empties it: a byte per queue (and call) at most */
	while (read(w->fds[0], buf, sizeof(buf)) == sizeof(buf))
		;
}

/*
 * Sleep on the latch alone, for waits that involve no Kafka client (the
 * CDC launcher, a backend waiting for a stream's worker to stop), with
 * interrupts checked when it ends.
 */
void
kfdw_nap(long timeout_ms, uint32 wait_event_info)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout_ms, wait_event_info);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}
