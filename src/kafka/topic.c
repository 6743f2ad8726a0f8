/*-------------------------------------------------------------------------
 *
 * topic.c
 *		  What the brokers say about a topic: partitions, watermarks, offsets
 *
 * Scans, planning, ANALYZE, kafka_fdw.watermarks() and publishing all ask
 * for the number of partitions of a topic and then, most of them, for the
 * watermarks of each: both are here.  Offsets requests are tried again
 * while the brokers cannot be reached, until the server's
 * connect_timeout_ms runs out, serving interrupts while they wait.
 *
 * IDENTIFICATION
 *		  src/kafka/topic.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka/kafka.h"

#include "miscadmin.h"

/* Pause after a try that failed early, before the next one */
#define KFDW_RETRY_PAUSE_MS 100

static void query_watermarks(KafkaHandle *handle, const char *topic,
							 int nparts, int64 *low, int64 *high);

/*
 * Number of partitions of a topic (ERROR if it does not exist).
 */
int
kfdw_topic_partitions(KafkaHandle *handle, const char *topic)
{
	const rd_kafka_metadata_t *md = kfdw_get_metadata(handle, topic);
	int			n = md->topics[0].partition_cnt;

	rd_kafka_metadata_destroy(md);
	return n;
}

/*
 * The partitions of a topic and their watermarks: returns the number of
 * partitions; (*low)[i] and (*high)[i] are the low and high watermarks of
 * partition i, in arrays palloc'd in the current context (of one element at
 * least).  For a read_committed consumer the high watermark is the last
 * stable offset.
 */
int
kfdw_topic_watermarks(KafkaHandle *handle, const char *topic,
					  int64 **low, int64 **high)
{
	int			nparts = kfdw_topic_partitions(handle, topic);

	*low = palloc0(sizeof(int64) * Max(nparts, 1));
	*high = palloc0(sizeof(int64) * Max(nparts, 1));
	query_watermarks(handle, topic, nparts, *low, *high);
	return nparts;
}

/*
 * Read the low and high watermarks of partitions 0 .. nparts-1 of a topic,
 * in two batched requests.
 */
static void
query_watermarks(KafkaHandle *handle, const char *topic, int nparts,
				 int64 *low, int64 *high)
{
	rd_kafka_topic_partition_list_t *list;
	int64	   *query;
	int			i;

	if (nparts <= 0)
		return;
	list = rd_kafka_topic_partition_list_new(nparts);
	query = palloc(sizeof(int64) * nparts);
	PG_TRY();
	{
		for (i = 0; i < nparts; i++)
			rd_kafka_topic_partition_list_add(list, topic, i);

		for (i = 0; i < nparts; i++)
			query[i] = RD_KAFKA_OFFSET_BEGINNING;
		kfdw_query_offsets(handle, list, query, "low watermarks");
		for (i = 0; i < nparts; i++)
			low[list->elems[i].partition] = Max(list->elems[i].offset, 0);

		for (i = 0; i < nparts; i++)
			query[i] = RD_KAFKA_OFFSET_END;
		kfdw_query_offsets(handle, list, query, "high watermarks");
		for (i = 0; i < nparts; i++)
		{
			int32		p = list->elems[i].partition;

			high[p] = Max(list->elems[i].offset, low[p]);
		}
	}
	PG_FINALLY();
	{
		rd_kafka_topic_partition_list_destroy(list);
	}
	PG_END_TRY();
	pfree(query);
}

/*
 * Run an offsets request (offsets-for-times, where -2 asks for the low and
 * -1 for the high watermark) in tries that may each take what is left of the
 * deadline, serving interrupts while they wait (see kfdw_offsets_for_times),
 * until the server's connect_timeout_ms runs out.  query[i] is what to ask
 * for the i-th partition of the list; the answers are left in the list.
 * what names the answers in messages ("low watermarks").
 *
 * librdkafka sends the consumer's isolation.level with ListOffsets, so for
 * a read_committed consumer the high watermark is the last stable offset.
 */
void
kfdw_query_offsets(KafkaHandle *handle, rd_kafka_topic_partition_list_t *list,
				   int64 *query, const char *what)
{
	KafkaDeadline deadline;
	rd_kafka_resp_err_t err;
	int			i;

	kfdw_deadline_start(&deadline, handle->connect_timeout_ms);
	for (;;)
	{
		bool		retry = false;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < list->cnt; i++)
		{
			list->elems[i].offset = query[i];
			list->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
		}
		/* each try may take what is left of the deadline; cancels are served */
		err = kfdw_offsets_for_times(handle, list,
									 kfdw_deadline_remaining(&deadline));

		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			for (i = 0; i < list->cnt; i++)
			{
				rd_kafka_resp_err_t perr = list->elems[i].err;

				if (perr == RD_KAFKA_RESP_ERR_NO_ERROR)
					continue;
				if (kfdw_errcode(perr) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
				{
					retry = true;
					err = perr;
					continue;
				}
				ereport(ERROR,
						(errcode(kfdw_errcode(perr)),
						 errmsg("could not get %s of Kafka topic \"%s\", partition %d",
								what, list->elems[i].topic, list->elems[i].partition),
						 kfdw_errdetail_kafka(handle, perr, NULL),
						 kfdw_errhint_kafka(handle, perr)));
			}
			if (!retry)
				return;
		}
		else if (kfdw_errcode(err) != ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
			ereport(ERROR,
					(errcode(kfdw_errcode(err)),
					 errmsg("could not get %s of Kafka topic \"%s\"",
							what, list->cnt > 0 ? list->elems[0].topic : ""),
					 kfdw_errdetail_kafka(handle, err, NULL),
					 kfdw_errhint_kafka(handle, err)));

		if (kfdw_deadline_passed(&deadline))
			break;
		/* a transport error came early: wait a little before the next try */
		if (err != RD_KAFKA_RESP_ERR__TIMED_OUT)
			kfdw_sleep(handle, KFDW_RETRY_PAUSE_MS,
					   kfdw_wait_event(KFDW_WAIT_OFFSETS));
	}

	if ((err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR_NO_ERROR) &&
		handle->last_err != RD_KAFKA_RESP_ERR_NO_ERROR)
		err = handle->last_err;
	if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR_NO_ERROR)
		err = RD_KAFKA_RESP_ERR__TRANSPORT;
	ereport(ERROR,
			(errcode(kfdw_errcode(err)),
			 errmsg("could not get %s from Kafka brokers \"%s\" within %d ms",
					what, handle->brokers, handle->connect_timeout_ms),
			 kfdw_errdetail_kafka(handle, err, NULL),
			 kfdw_errhint_kafka(handle, err)));
}
