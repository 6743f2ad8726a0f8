/*-------------------------------------------------------------------------
 *
 * kafka.h
 *		  The Kafka client layer: librdkafka handles made from a server and a user
 *		  mapping, their events, errors and waits
 *
 * IDENTIFICATION
 *		  src/kafka/kafka.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KFDW_KAFKA_H
#define KFDW_KAFKA_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "compat.h"
#include "access/xact.h"
#include "datatype/timestamp.h"
#include "foreign/foreign.h"
#include "nodes/pg_list.h"
#include "portability/instr_time.h"

/* Default for the server option connect_timeout_ms (interactive SQL: seconds) */
#define KFDW_DEFAULT_CONNECT_TIMEOUT_MS 5000
/* Default for message.timeout.ms unless the server sets it */
#define KFDW_DEFAULT_MESSAGE_TIMEOUT_MS 30000
/* Default for the server option transaction_hold_bytes */
#define KFDW_DEFAULT_TRANSACTION_HOLD_BYTES (16 * 1024 * 1024)

/*
 * Kafka's timestamps are milliseconds since the Unix epoch; PostgreSQL's are
 * microseconds since 2000-01-01.  To Kafka, a fraction of a millisecond is
 * dropped towards the past.
 */
#define KFDW_UNIX_EPOCH_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

static inline int64
kfdw_timestamp_to_kafka(TimestampTz ts)
{
	int64		us = ts + KFDW_UNIX_EPOCH_USECS;

	return us >= 0 ? us / 1000 : -((-us + 999) / 1000);
}

static inline TimestampTz
kfdw_timestamp_from_kafka(int64 ms)
{
	return (TimestampTz) ms * 1000 - KFDW_UNIX_EPOCH_USECS;
}

/* The options of a server that kafka_fdw itself interprets */
typedef struct KafkaServerOptions
{
	char	   *brokers;
	bool		transactional;
	int			connect_timeout_ms;
	int			transaction_hold_bytes;
} KafkaServerOptions;

/*
 * A librdkafka client handle, owned by the handle cache of connection.c.
 *
 * librdkafka's threads never call into PostgreSQL: logs and errors are put on
 * the handle's main queue and served by kfdw_serve_events() from the backend.
 */
typedef enum KafkaHandleKind
{
	KFDW_HANDLE_CONSUMER,		/* checked out by one scan at a time */
	KFDW_HANDLE_PRODUCER,		/* shared by all writers of a backend */
	KFDW_HANDLE_TXN_PRODUCER	/* transactional producer, one per backend */
} KafkaHandleKind;

typedef struct KafkaHandle
{
	rd_kafka_t *rk;
	KafkaHandleKind kind;
	Oid			serverid;
	Oid			userid;			/* user the mapping was looked up for */
	char	   *brokers;		/* for messages; never holds credentials */
	int			connect_timeout_ms;
	bool		busy;			/* checked out (consumers) */
	int			pins;			/* holders that keep it alive (producers) */
	bool		stale;			/* server or user mapping changed */
	/* last error reported by librdkafka's error callback */
	rd_kafka_resp_err_t last_err;
	char		last_errstr[512];
	bool		last_err_fatal;
	void	   *private;		/* for the owner of the handle */
	struct KafkaWaiter *waiter; /* wait.c: wake-up pipe, or NULL */
	struct KafkaBatch *batch;	/* consumer.c: fetched messages, or NULL */
} KafkaHandle;

/*
 * What a backend waits for, as pg_stat_activity shows it (see compat.h:
 * named events where the server has them, else "Extension").
 */
typedef enum KafkaWaitEvent
{
	KFDW_WAIT_FETCH,			/* a scan, for messages */
	KFDW_WAIT_PRODUCE,			/* a writer, for deliveries or queue room */
	KFDW_WAIT_METADATA,			/* metadata of the cluster or of a topic */
	KFDW_WAIT_OFFSETS			/* watermarks, offsets for timestamps */
} KafkaWaitEvent;

/*
 * A deadline: what is left of timeout_ms since it was started.  Every
 * "retry until connect_timeout_ms" loop counts with one.
 */
typedef struct KafkaDeadline
{
	instr_time	start;
	int			timeout_ms;
} KafkaDeadline;

static inline void
kfdw_deadline_start(KafkaDeadline *deadline, int timeout_ms)
{
	INSTR_TIME_SET_CURRENT(deadline->start);
	deadline->timeout_ms = timeout_ms;
}

/* Milliseconds left, 0 once the deadline has passed */
static inline int
kfdw_deadline_remaining(const KafkaDeadline *deadline)
{
	instr_time	now;
	double		elapsed;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, deadline->start);
	elapsed = INSTR_TIME_GET_MILLISEC(now);
	if (elapsed >= deadline->timeout_ms)
		return 0;
	return deadline->timeout_ms - (int) elapsed;
}

static inline bool
kfdw_deadline_passed(const KafkaDeadline *deadline)
{
	return kfdw_deadline_remaining(deadline) == 0;
}

/*
 * Objects (consumers checked out, ...) that belong to the (sub)transaction
 * that took them: given to the parent when a subtransaction commits, and
 * released when theirs aborts or the top transaction ends.
 */
typedef void (*KafkaScopedRelease) (void *object);

typedef struct KafkaScopedList
{
	List	   *items;			/* in TopMemoryContext */
	KafkaScopedRelease release;
} KafkaScopedList;

/* in fdw/option.c: the server's options and the librdkafka configuration */
extern void kfdw_get_server_options(ForeignServer *server,
									KafkaServerOptions *opts);
extern rd_kafka_conf_t *kfdw_build_conf(ForeignServer *server,
										UserMapping *user,
										KafkaHandleKind kind);
extern bool kfdw_is_secret_option(const char *name);

/* in connection.c */
extern KafkaHandle *kfdw_acquire_handle(Oid serverid, Oid userid,
										KafkaHandleKind kind);
extern void kfdw_release_handle(KafkaHandle *handle);
extern void kfdw_discard_handle(KafkaHandle *handle);
extern void kfdw_pin_handle(KafkaHandle *handle);
extern void kfdw_unpin_handle(KafkaHandle *handle);
extern void kfdw_serve_events(KafkaHandle *handle);
extern int	kfdw_errcode(rd_kafka_resp_err_t err);
extern void kfdw_report_error(int elevel, KafkaHandle *handle,
							  rd_kafka_resp_err_t err,
							  const char *errstr,
							  const char *message);
extern const rd_kafka_metadata_t *kfdw_get_metadata(KafkaHandle *handle,
													const char *topic);
extern rd_kafka_resp_err_t kfdw_offsets_for_times(KafkaHandle *handle,
												  rd_kafka_topic_partition_list_t *list,
												  int timeout_ms);

/* in wait.c */
extern uint32 kfdw_wait_event(KafkaWaitEvent event);
extern void kfdw_wait(KafkaHandle *handle, int timeout_ms,
					  uint32 wait_event_info);
extern void kfdw_sleep(KafkaHandle *handle, int timeout_ms,
					   uint32 wait_event_info);
extern int	kfdw_wait_wakeup_fd(KafkaHandle *handle);
extern rd_kafka_queue_t *kfdw_consumer_queue(KafkaHandle *handle);
extern void kfdw_wait_close(KafkaHandle *handle);

/* in consumer.c */
extern int	kfdw_consumer_fetch(KafkaHandle *handle, int max_messages,
								int timeout_ms);
extern rd_kafka_message_t *kfdw_consumer_peek(KafkaHandle *handle);
extern void kfdw_consumer_next(KafkaHandle *handle);
extern void kfdw_consumer_clear(KafkaHandle *handle);
extern void kfdw_consumer_close(KafkaHandle *handle);

/* in topic.c */
extern int	kfdw_topic_partitions(KafkaHandle *handle, const char *topic);
extern int	kfdw_topic_watermarks(KafkaHandle *handle, const char *topic,
								  int64 **low, int64 **high);
extern void kfdw_query_offsets(KafkaHandle *handle,
							   rd_kafka_topic_partition_list_t *list,
							   int64 *query, const char *what);

/* in scope.c */
extern void kfdw_scoped_add(KafkaScopedList *list, void *object);
extern void kfdw_scoped_remove(KafkaScopedList *list, void *object);
extern void kfdw_scoped_xact_end(KafkaScopedList *list, XactEvent event);
extern void kfdw_scoped_subxact_end(KafkaScopedList *list,
									SubXactEvent event,
									SubTransactionId mySubid,
									SubTransactionId parentSubid);

#endif							/* KFDW_KAFKA_H */
