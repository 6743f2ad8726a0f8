/*-------------------------------------------------------------------------
 *
 * kafka.h
 *		  The Kafka client layer: librdkafka configuration from a server and a user
 *		  mapping, the handles made from it, their events, errors and waits, and
 *		  producing with delivery accounting
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
#include "nodes/parsenodes.h"
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
 * What a client is for.  Its user says so when it asks for one, with the
 * rest of a KafkaClientSpec.
 */
typedef enum KafkaHandleKind
{
	KFDW_HANDLE_CONSUMER,		/* checked out by one scan at a time */
	KFDW_HANDLE_PRODUCER,		/* shared by all writers of a backend */
	KFDW_HANDLE_TXN_PRODUCER	/* transactional producer, one per backend */
} KafkaHandleKind;

typedef struct KafkaHandle KafkaHandle;

/* librdkafka's delivery report callback; opaque is the KafkaHandle */
typedef void (*KafkaDeliveryCallback) (rd_kafka_t *rk,
									   const rd_kafka_message_t *msg,
									   void *opaque);

/*
 * Told of an error that librdkafka reports about the client (brokers down,
 * a fatal error), after the handle recorded it in last_err; runs in the
 * backend, from kfdw_serve_events() or a wait, and must not throw.
 */
typedef void (*KafkaErrorCallback) (KafkaHandle *handle, int err,
									const char *reason);

/*
 * What the user of a client asks of it, beyond the server's options and the
 * user mapping's.  Zeroed fields take the defaults.
 */
typedef struct KafkaClientSpec
{
	KafkaHandleKind kind;
	const char *client_id;		/* client.id unless the server sets one;
								 * NULL: "kafka_fdw" */
	const char *transactional_id;	/* for KFDW_HANDLE_TXN_PRODUCER */
	KafkaDeliveryCallback on_delivery;	/* producers */
	KafkaErrorCallback on_error;	/* or NULL */

	/*
	 * A consumer that joins a group (settings give group.id) and assigns
	 * the partitions itself: librdkafka's rebalance callback, served from
	 * the backend while it fetches.  NULL: librdkafka assigns.
	 */
	void		(*on_rebalance) (rd_kafka_t *rk, rd_kafka_resp_err_t err,
								 rd_kafka_topic_partition_list_t *partitions,
								 void *opaque);

	/*
	 * librdkafka properties the user of the client relies on, set over the
	 * server's and the user mapping's: name, value, ..., NULL.  Compared by
	 * address when a cached handle is looked for.
	 */
	const char *const *settings;
} KafkaClientSpec;

/*
 * A librdkafka client handle made from a server and a user mapping, by
 * kfdw_client_new() (client.c) for its owner, or by the backend's handle
 * cache (connection.c).
 *
 * librdkafka's threads never call into PostgreSQL: logs and errors are put on
 * the handle's main queue and served by kfdw_serve_events() from the backend.
 */
struct KafkaHandle
{
	rd_kafka_t *rk;
	KafkaHandleKind kind;
	Oid			serverid;
	Oid			userid;			/* user the mapping was looked up for */
	char	   *brokers;		/* for messages; never holds credentials */
	int			connect_timeout_ms;
	bool		busy;			/* checked out (consumers) */
	int			pins;			/* holders that keep it alive (producers) */
	bool		stale;			/* server or user mapping changed, or the
								 * client is unusable */
	/* last error reported by librdkafka's error callback */
	rd_kafka_resp_err_t last_err;
	char		last_errstr[512];
	void	   *private;		/* for the owner of the handle */

	/* what the client was made for and from (client.c) */
	KafkaClientSpec spec;		/* its strings copied */
	char	   *signature;		/* the options it was built from */
	struct KafkaWaiter *waiter; /* wait.c: wake-up pipe, or NULL */
	struct KafkaBatch *batch;	/* consumer.c: fetched messages, or NULL */

	/*
	 * consumer.c: wake librdkafka's fetchers when the queue runs dry after
	 * a queue's worth of messages; kfdw_consumer_set_wake() sets it.
	 */
	bool		wake_fetchers;
};

/*
 * What a backend waits for, as pg_stat_activity shows it (see compat.h:
 * named events where the server has them, else "Extension").
 */
typedef enum KafkaWaitEvent
{
	KFDW_WAIT_FETCH,			/* a scan, for messages */
	KFDW_WAIT_PRODUCE,			/* a writer, for deliveries or queue room */
	KFDW_WAIT_METADATA,			/* metadata of the cluster or of a topic */
	KFDW_WAIT_OFFSETS,			/* watermarks, offsets for timestamps */
	KFDW_WAIT_CDC_IDLE,			/* a CDC worker that read all WAL, the launcher */
	KFDW_WAIT_CDC_STOP			/* a backend, for a stream's worker to stop */
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


/*
 * Delivery accounting of a group of produced messages (produce.c): the
 * messages of a statement, of a Kafka transaction, or of a CDC stream.
 */
typedef struct KafkaDelivery
{
	int64		outstanding;	/* produced, not yet reported */
	int64		produced;
	int64		failed;
	rd_kafka_resp_err_t first_err;
	int32		first_partition;
	char		first_topic[256];
	char		first_errstr[256];
	bool		owner_gone;		/* freed by its last delivery report */
	bool		stalled;		/* purged: no report within the timeout */
	int			timeout_ms;		/* message.timeout.ms of the producer */
	instr_time	last_progress;	/* last report, or first message since */
	/* the last successful report, for RETURNING */
	int32		partition;
	int64		offset;
} KafkaDelivery;

/* A message to produce (produce.c) */
typedef struct KafkaOutMessage
{
	rd_kafka_topic_t *rkt;		/* the topic, or NULL: topic by name */
	const char *topic;
	int32		partition;		/* RD_KAFKA_PARTITION_UA: the partitioner's */
	int64		timestamp;		/* milliseconds since 1970; 0: now */
	const char *key;
	int			keylen;			/* -1: no key */
	const char *value;
	int			valuelen;		/* -1: null value (a tombstone) */
	rd_kafka_headers_t *headers;	/* or NULL; kfdw_produce() takes it */
	void	   *opaque;			/* the message's, for its delivery report */
} KafkaOutMessage;

/* in config.c: server and user mapping options, librdkafka configuration */
extern void kfdw_get_server_options(ForeignServer *server,
									KafkaServerOptions *opts);
extern void kfdw_validate_server_options(List *options);
extern void kfdw_validate_mapping_options(List *options);
extern void kfdw_check_mapping_conf(ForeignServer *server, List *user_options);
extern rd_kafka_conf_t *kfdw_build_conf(ForeignServer *server,
										UserMapping *user,
										const KafkaClientSpec *spec);
extern int	kfdw_get_int_option(DefElem *def, int min);
extern bool kfdw_get_bool_option(DefElem *def);

/* in client.c: making clients, their events, errors */
extern KafkaHandle *kfdw_client_new(ForeignServer *server, Oid userid,
									const KafkaClientSpec *spec, Size size);
extern void kfdw_client_free(KafkaHandle *handle);
extern bool kfdw_client_matches(KafkaHandle *handle,
								const KafkaClientSpec *spec);
extern bool kfdw_client_changed(KafkaHandle *handle, ForeignServer *server);
extern void kfdw_serve_events(KafkaHandle *handle);
extern rd_kafka_resp_err_t kfdw_fatal_error(KafkaHandle *handle,
											char *errstr, size_t size);
extern int	kfdw_errcode(rd_kafka_resp_err_t err);
extern int	kfdw_errdetail_kafka(KafkaHandle *handle, rd_kafka_resp_err_t err,
								 const char *errstr);
extern int	kfdw_errhint_kafka(KafkaHandle *handle, rd_kafka_resp_err_t err);

/* in connection.c: the handle cache of a backend, blocking requests */
extern KafkaHandle *kfdw_acquire_client(Oid serverid, Oid userid,
										const KafkaClientSpec *spec);
extern KafkaHandle *kfdw_acquire_handle(Oid serverid, Oid userid,
										KafkaHandleKind kind);
extern void kfdw_release_handle(KafkaHandle *handle);
extern void kfdw_pin_handle(KafkaHandle *handle);
extern void kfdw_unpin_handle(KafkaHandle *handle);
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
extern void kfdw_nap(long timeout_ms, uint32 wait_event_info);

/* in consumer.c */
extern int	kfdw_consumer_fetch(KafkaHandle *handle, int max_messages,
								int timeout_ms);
extern rd_kafka_message_t *kfdw_consumer_peek(KafkaHandle *handle);
extern void kfdw_consumer_next(KafkaHandle *handle);
extern rd_kafka_message_t *kfdw_consumer_take(KafkaHandle *handle);
extern void kfdw_consumer_clear(KafkaHandle *handle);
extern void kfdw_consumer_set_wake(KafkaHandle *handle, bool on);
extern void kfdw_consumer_close(KafkaHandle *handle);

/* in topic.c */
extern int	kfdw_topic_partitions(KafkaHandle *handle, const char *topic);
extern int	kfdw_topic_watermarks(KafkaHandle *handle, const char *topic,
								  int64 **low, int64 **high);
extern void kfdw_query_offsets(KafkaHandle *handle,
							   rd_kafka_topic_partition_list_t *list,
							   int64 *query, const char *what);

/* in offsets.c: a consumer group's committed offsets */
extern void kfdw_group_committed(KafkaHandle *handle, const char *group,
								 const char *topic, int nparts,
								 int64 *committed);
extern bool kfdw_group_commit(KafkaHandle *handle, const char *group,
							  const rd_kafka_topic_partition_list_t *list,
							  char *errstr, size_t size);
extern void kfdw_member_committed(KafkaHandle *handle, const char *group,
								  const char *topic, int nparts,
								  int64 *committed);
extern bool kfdw_member_commit(KafkaHandle *handle,
							   const rd_kafka_topic_partition_list_t *list,
							   char *errstr, size_t size);

/* in scope.c */
extern void kfdw_scoped_add(KafkaScopedList *list, void *object);
extern void kfdw_scoped_remove(KafkaScopedList *list, void *object);
extern void kfdw_scoped_xact_end(KafkaScopedList *list, XactEvent event);
extern void kfdw_scoped_subxact_end(KafkaScopedList *list,
									SubXactEvent event,
									SubTransactionId mySubid,
									SubTransactionId parentSubid);

/* in produce.c: producing, and delivery accounting */
extern rd_kafka_resp_err_t kfdw_produce(KafkaHandle *handle,
										const KafkaOutMessage *msg,
										KafkaDelivery *d, char *errstr,
										size_t errstr_size);
extern void kfdw_delivery_report(rd_kafka_t *rk,
								 const rd_kafka_message_t *rkmessage,
								 void *opaque);
extern void kfdw_delivery_record(KafkaDelivery *d,
								 const rd_kafka_message_t *rkmessage);
extern KafkaDelivery *kfdw_delivery_new(KafkaHandle *handle);
extern void kfdw_delivery_release(KafkaDelivery *d);
extern void kfdw_delivery_wait(KafkaHandle *handle, KafkaDelivery *d);
extern void kfdw_delivery_check_stall(KafkaHandle *handle, KafkaDelivery *d);
extern int	kfdw_message_timeout_ms(KafkaHandle *handle);
extern int	kfdw_producer_partitions(KafkaHandle *handle, const char *topic);

#endif							/* KFDW_KAFKA_H */
