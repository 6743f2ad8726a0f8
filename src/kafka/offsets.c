/*-------------------------------------------------------------------------
 *
 * offsets.c
 *		  A consumer group's committed offsets: reading and committing them
 *
 * Scans that belong to a consumer group never join it: they assign
 * partitions themselves.  They read where the group stands and commit
 * where they stopped with the admin requests that take the group by name
 * (ListConsumerGroupOffsets, AlterConsumerGroupOffsets), so any consumer
 * handle of the server serves every group and none has a group.id of its
 * own.  The answer comes on a queue of the request's own, polled in short
 * slices: a cancel is served at once where the caller allows it.
 *
 * librdkafka 2.0 aborts the process when such a request times out inside
 * the client before the group's coordinator answered, and the coordinator
 * comes back later (the coordinator request then releases a reference
 * that the timed-out request has already freed).  So librdkafka's own
 * timeout of these requests is far longer than our wait, and a handle
 * whose request we stopped waiting for is marked stale: the cache destroys
 * it as soon as it is given back, while its request is still alive, which
 * librdkafka undoes safely.
 *
 * The members of a group (ingest workers) read their group's offsets with
 * rd_kafka_committed() and commit with rd_kafka_commit_queue(), which go
 * through the member's own group client and not through that path.
 *
 * IDENTIFICATION
 *		  src/kafka/offsets.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka/kafka.h"

#include "miscadmin.h"

/* Longest single poll of the answer's queue */
#define KFDW_OFFSETS_SLICE_MS 100

/* Longest single rd_kafka_committed() of a member, between interrupts */
#define KFDW_COMMITTED_SLICE_MS 500

/* librdkafka's own timeout of a group admin request, beyond our wait */
#define KFDW_ADMIN_LINGER_MS 60000
#define KFDW_ADMIN_MAX_TIMEOUT_MS 3600000

static rd_kafka_event_t *wait_answer(KafkaHandle *handle,
									 rd_kafka_queue_t *queue,
									 bool interruptible);
static rd_kafka_event_t *wait_admin_answer(KafkaHandle *handle,
										   rd_kafka_queue_t *queue,
										   bool interruptible);
static int	our_wait_ms(KafkaHandle *handle);
static rd_kafka_topic_partition_list_t *all_partitions(const char *topic,
													   int nparts,
													   int64 *committed);
static int	admin_timeout_ms(KafkaHandle *handle);
static rd_kafka_AdminOptions_t *admin_options(KafkaHandle *handle,
											  rd_kafka_admin_op_t op);

/*
 * The offsets that group has committed for partitions 0 .. nparts-1 of
 * topic: committed[i] is the next offset to read, or -1 where the group
 * has none.  ERROR when the brokers do not answer within the server's
 * connect_timeout_ms.
 */
void
kfdw_group_committed(KafkaHandle *handle, const char *group,
					 const char *topic, int nparts, int64 *committed)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_ListConsumerGroupOffsets_t *req;
	rd_kafka_AdminOptions_t *options;
	rd_kafka_queue_t *queue;
	rd_kafka_event_t *ev = NULL;
	int			i;

	list = all_partitions(topic, nparts, committed);
	if (list == NULL)
		return;
	req = rd_kafka_ListConsumerGroupOffsets_new(group, list);
	rd_kafka_topic_partition_list_destroy(list);
	options = admin_options(handle, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
	queue = rd_kafka_queue_new(handle->rk);

	PG_TRY();
	{
		const rd_kafka_ListConsumerGroupOffsets_result_t *result;
		const rd_kafka_group_result_t **groups;
		const rd_kafka_error_t *gerr;
		const rd_kafka_topic_partition_list_t *parts;
		size_t		ngroups;
		rd_kafka_resp_err_t err;

		rd_kafka_ListConsumerGroupOffsets(handle->rk, &req, 1, options, queue);
		ev = wait_admin_answer(handle, queue, true);
		err = rd_kafka_event_error(ev);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			ereport(ERROR,
					(errcode(kfdw_errcode(err)),
					 errmsg("could not read the offsets of Kafka consumer group \"%s\"",
							group),
					 kfdw_errdetail_kafka(handle, err,
										  rd_kafka_event_error_string(ev)),
					 kfdw_errhint_kafka(handle, err)));
		result = rd_kafka_event_ListConsumerGroupOffsets_result(ev);
		groups = rd_kafka_ListConsumerGroupOffsets_result_groups(result, &ngroups);
		if (ngroups != 1)
			elog(ERROR, "kafka_fdw: %zu groups in the answer for one", ngroups);
		gerr = rd_kafka_group_result_error(groups[0]);
		if (gerr)
			ereport(ERROR,
					(errcode(kfdw_errcode(rd_kafka_error_code(gerr))),
					 errmsg("could not read the offsets of Kafka consumer group \"%s\"",
							group),
					 kfdw_errdetail_kafka(handle, rd_kafka_error_code(gerr),
										  rd_kafka_error_string(gerr)),
					 kfdw_errhint_kafka(handle, rd_kafka_error_code(gerr))));
		parts = rd_kafka_group_result_partitions(groups[0]);
		for (i = 0; parts && i < parts->cnt; i++)
		{
			const rd_kafka_topic_partition_t *p = &parts->elems[i];

			if (p->err != RD_KAFKA_RESP_ERR_NO_ERROR)
				ereport(ERROR,
						(errcode(kfdw_errcode(p->err)),
						 errmsg("could not read the offset of Kafka consumer group \"%s\" in partition %d of topic \"%s\"",
								group, (int) p->partition, topic),
						 kfdw_errdetail_kafka(handle, p->err, NULL),
						 kfdw_errhint_kafka(handle, p->err)));
			if (p->partition >= 0 && p->partition < nparts && p->offset >= 0)
				committed[p->partition] = p->offset;
		}
	}
	PG_FINALLY();
	{
		if (ev)
			rd_kafka_event_destroy(ev);
		rd_kafka_queue_destroy(queue);
		rd_kafka_AdminOptions_destroy(options);
		rd_kafka_ListConsumerGroupOffsets_destroy(req);
	}
	PG_END_TRY();
}

/*
 * Commit offsets for group: list holds the topic, partition and next
 * offset of each.  Never throws (the caller may run after PostgreSQL
 * committed): returns false with the cause in errstr on failure.
 * Interrupts are not served: it waits at most connect_timeout_ms.
 */
bool
kfdw_group_commit(KafkaHandle *handle, const char *group,
				  const rd_kafka_topic_partition_list_t *list,
				  char *errstr, size_t size)
{
	rd_kafka_AlterConsumerGroupOffsets_t *req;
	rd_kafka_AdminOptions_t *options;
	rd_kafka_queue_t *queue;
	rd_kafka_event_t *ev;
	const rd_kafka_AlterConsumerGroupOffsets_result_t *result;
	const rd_kafka_group_result_t **groups;
	const rd_kafka_error_t *gerr;
	const rd_kafka_topic_partition_list_t *parts;
	size_t		ngroups;
	rd_kafka_resp_err_t err;
	int			i;
	bool		ok = true;
	char		buf[512];

	errstr[0] = '\0';
	req = rd_kafka_AlterConsumerGroupOffsets_new(group, list);
	options = rd_kafka_AdminOptions_new(handle->rk,
										RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
	if (options)
		(void) rd_kafka_AdminOptions_set_request_timeout(options,
														 admin_timeout_ms(handle),
														 buf, sizeof(buf));
	queue = rd_kafka_queue_new(handle->rk);
	rd_kafka_AlterConsumerGroupOffsets(handle->rk, &req, 1, options, queue);
	ev = wait_admin_answer(handle, queue, false);

	if (ev == NULL)
	{
		snprintf(errstr, size, "no answer from the brokers within %d ms",
				 our_wait_ms(handle));
		ok = false;
	}
	else if ((err = rd_kafka_event_error(ev)) != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(errstr, size, "%s", rd_kafka_event_error_string(ev));
		ok = false;
	}
	else
	{
		result = rd_kafka_event_AlterConsumerGroupOffsets_result(ev);
		groups = rd_kafka_AlterConsumerGroupOffsets_result_groups(result,
																  &ngroups);
		gerr = ngroups == 1 ? rd_kafka_group_result_error(groups[0]) : NULL;
		if (ngroups != 1)
		{
			snprintf(errstr, size, "%zu groups in the answer for one", ngroups);
			ok = false;
		}
		else if (gerr)
		{
			snprintf(errstr, size, "%s", rd_kafka_error_string(gerr));
			ok = false;
		}
		else
		{
			parts = rd_kafka_group_result_partitions(groups[0]);
			for (i = 0; parts && i < parts->cnt && ok; i++)
			{
				if (parts->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
				{
					snprintf(errstr, size, "partition %d: %s",
							 (int) parts->elems[i].partition,
							 rd_kafka_err2str(parts->elems[i].err));
					ok = false;
				}
			}
		}
	}

	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(queue);
	if (options)
		rd_kafka_AdminOptions_destroy(options);
	rd_kafka_AlterConsumerGroupOffsets_destroy(req);
	return ok;
}

/*
 * The partitions 0 .. nparts-1 of topic as a list to ask a group's offsets
 * for, with committed[] set to -1 (none yet); NULL when nparts is 0.
 */
static rd_kafka_topic_partition_list_t *
all_partitions(const char *topic, int nparts, int64 *committed)
{
	rd_kafka_topic_partition_list_t *list;
	int			i;

	for (i = 0; i < nparts; i++)
		committed[i] = -1;
	if (nparts == 0)
		return NULL;
	list = rd_kafka_topic_partition_list_new(nparts);
	for (i = 0; i < nparts; i++)
		rd_kafka_topic_partition_list_add(list, topic, i);
	return list;
}

/*
 * How long we wait for the answer of a group request: the server's
 * connect_timeout_ms, kept shorter than librdkafka's own timeout of an
 * admin request.
 */
static int
our_wait_ms(KafkaHandle *handle)
{
	return Min(handle->connect_timeout_ms,
			   KFDW_ADMIN_MAX_TIMEOUT_MS - KFDW_ADMIN_LINGER_MS);
}

/* librdkafka's own timeout of a group admin request (see the top) */
static int
admin_timeout_ms(KafkaHandle *handle)
{
	return our_wait_ms(handle) + KFDW_ADMIN_LINGER_MS;
}

/* Admin options whose request timeout outlasts our wait */
static rd_kafka_AdminOptions_t *
admin_options(KafkaHandle *handle, rd_kafka_admin_op_t op)
{
	rd_kafka_AdminOptions_t *options = rd_kafka_AdminOptions_new(handle->rk, op);
	char		errstr[512];

	if (options == NULL)
		elog(ERROR, "kafka_fdw: could not make admin options");
	if (rd_kafka_AdminOptions_set_request_timeout(options,
												  admin_timeout_ms(handle),
												  errstr, sizeof(errstr)) !=
		RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_AdminOptions_destroy(options);
		elog(ERROR, "kafka_fdw: %s", errstr);
	}
	return options;
}

/*
 * The answer of a group admin request.  Until it comes the handle counts
 * as stale, so that a wait cut short (by its deadline, a cancel or an
 * error) leaves the handle to be destroyed while the request lives.
 */
static rd_kafka_event_t *
wait_admin_answer(KafkaHandle *handle, rd_kafka_queue_t *queue,
				  bool interruptible)
{
	bool		was_stale = handle->stale;
	rd_kafka_event_t *ev;

	handle->stale = true;
	ev = wait_answer(handle, queue, interruptible);
	if (ev)
		handle->stale = was_stale;
	return ev;
}

/*
 * The answer of a request on queue, polled in short slices while the
 * handle's events are served.  An interruptible wait serves interrupts
 * and fails after our wait (connect_timeout_ms); the other returns NULL
 * then.
 */
static rd_kafka_event_t *
wait_answer(KafkaHandle *handle, rd_kafka_queue_t *queue, bool interruptible)
{
	KafkaDeadline deadline;

	kfdw_deadline_start(&deadline, our_wait_ms(handle));
	for (;;)
	{
		rd_kafka_event_t *ev;

		if (interruptible)
			CHECK_FOR_INTERRUPTS();
		ev = rd_kafka_queue_poll(queue, KFDW_OFFSETS_SLICE_MS);
		if (ev)
			return ev;
		if (interruptible)
			kfdw_serve_events(handle);
		if (kfdw_deadline_passed(&deadline))
		{
			if (!interruptible)
				return NULL;
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
					 errmsg("no answer from Kafka brokers \"%s\" about a consumer group within %d ms",
							handle->brokers, our_wait_ms(handle))));
		}
	}
}

/*
 * The offsets that group, which the handle has joined, committed for
 * partitions 0 .. nparts-1 of topic, as kfdw_group_committed() gives them,
 * asked through the member's group client in short requests, serving
 * interrupts.  ERROR when the group's coordinator does not answer within
 * connect_timeout_ms.
 */
void
kfdw_member_committed(KafkaHandle *handle, const char *group,
					  const char *topic, int nparts, int64 *committed)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;
	KafkaDeadline deadline;
	int			i;

	list = all_partitions(topic, nparts, committed);
	if (list == NULL)
		return;
	kfdw_deadline_start(&deadline, handle->connect_timeout_ms);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		err = rd_kafka_committed(handle->rk, list, KFDW_COMMITTED_SLICE_MS);
		if (err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
			err != RD_KAFKA_RESP_ERR__WAIT_COORD &&
			err != RD_KAFKA_RESP_ERR__TRANSPORT)
			break;
		if (kfdw_deadline_passed(&deadline))
			break;
	}
	for (i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < list->cnt; i++)
	{
		rd_kafka_topic_partition_t *p = &list->elems[i];

		if (p->err != RD_KAFKA_RESP_ERR_NO_ERROR)
			err = p->err;
		else if (p->offset >= 0)
			committed[p->partition] = p->offset;
	}
	rd_kafka_topic_partition_list_destroy(list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(kfdw_errcode(err)),
				 errmsg("could not read the offsets of Kafka consumer group \"%s\"",
						group),
				 kfdw_errdetail_kafka(handle, err, NULL),
				 kfdw_errhint_kafka(handle, err)));
}

/*
 * Commit offsets as a member of the consumer group the handle has joined
 * (list: topic, partition and next offset of each), and wait for the
 * answer, serving interrupts, at most connect_timeout_ms.  Returns false
 * with the cause in errstr when the group did not take them.
 */
bool
kfdw_member_commit(KafkaHandle *handle,
				   const rd_kafka_topic_partition_list_t *list,
				   char *errstr, size_t size)
{
	rd_kafka_queue_t *queue = rd_kafka_queue_new(handle->rk);
	rd_kafka_event_t *ev = NULL;
	rd_kafka_resp_err_t err;
	bool		ok = true;

	errstr[0] = '\0';
	PG_TRY();
	{
		err = rd_kafka_commit_queue(handle->rk, list, queue, NULL, NULL);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			const rd_kafka_topic_partition_list_t *parts;
			int			i;

			ev = wait_answer(handle, queue, true);
			err = rd_kafka_event_error(ev);
			parts = rd_kafka_event_topic_partition_list(ev);
			for (i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && parts &&
				 i < parts->cnt; i++)
				err = parts->elems[i].err;
		}
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			snprintf(errstr, size, "%s", rd_kafka_err2str(err));
			ok = false;
		}
	}
	PG_FINALLY();
	{
		if (ev)
			rd_kafka_event_destroy(ev);
		rd_kafka_queue_destroy(queue);
	}
	PG_END_TRY();
	return ok;
}
