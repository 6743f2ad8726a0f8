/*-------------------------------------------------------------------------
 *
 * client.c
 *		  Making a librdkafka client from a server and a user mapping: its
 *		  callbacks, its events, and the errors it reports
 *
 * Every client of the extension is made here, whoever keeps it: the handle
 * cache of a backend (connection.c) for scans and INSERT, or a background
 * worker for its stream.  The user of a client says what it is for (a
 * KafkaClientSpec: consumer or producer, its delivery report callback, its
 * client and transactional ids, the properties it relies on); the server
 * and the user mapping say the rest (config.c).  A client remembers what it
 * was built from, so that its owner can tell an ALTER SERVER or ALTER USER
 * MAPPING that changed it from the many invalidations that do not.
 *
 * librdkafka's threads never call into PostgreSQL: logs, errors and
 * delivery reports are put on the client's main queue and served from the
 * backend by kfdw_serve_events() (or a wait), which runs the callbacks here
 * and the user's.
 *
 * IDENTIFICATION
 *		  src/kafka/client.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka/kafka.h"

#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

static UserMapping *get_user_mapping(Oid userid, Oid serverid);
static char *options_signature(ForeignServer *server, UserMapping *user);
static bool same_string(const char *a, const char *b);
static char *copy_string(const char *s);
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
				   const char *buf);
static void error_cb(rd_kafka_t *rk, int err, const char *reason,
					 void *opaque);
static bool is_transport_error(rd_kafka_resp_err_t err);

/*
 * The user mapping of userid for the server, or else the PUBLIC one; NULL
 * if there is none.
 */
static UserMapping *
get_user_mapping(Oid userid, Oid serverid)
{
	if (SearchSysCacheExists2(USERMAPPINGUSERSERVER,
							  ObjectIdGetDatum(userid),
							  ObjectIdGetDatum(serverid)) ||
		SearchSysCacheExists2(USERMAPPINGUSERSERVER,
							  ObjectIdGetDatum(InvalidOid),
							  ObjectIdGetDatum(serverid)))
	{
		/* finds the same mapping: the user's own, else PUBLIC */
		return GetUserMapping(userid, serverid);
	}
	return NULL;
}

/*
 * Make a client of the server for what spec asks, with the user mapping of
 * userid (or PUBLIC, or none).  The handle is size bytes (a struct that
 * begins with a KafkaHandle, for a cache that keeps more), zeroed but for
 * what is set here, in TopMemoryContext; kfdw_client_free() destroys it.
 * The caller is in a transaction.
 */
KafkaHandle *
kfdw_client_new(ForeignServer *server, Oid userid,
				const KafkaClientSpec *spec, Size size)
{
	UserMapping *user = get_user_mapping(userid, server->serverid);
	KafkaServerOptions sopts;
	KafkaHandle *handle;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char		errstr[512];

	Assert(size >= sizeof(KafkaHandle));
	kfdw_get_server_options(server, &sopts);
	conf = kfdw_build_conf(server, user, spec);

	handle = MemoryContextAllocZero(TopMemoryContext, size);
	handle->kind = spec->kind;
	handle->serverid = server->serverid;
	handle->userid = userid;
	handle->brokers = MemoryContextStrdup(TopMemoryContext, sopts.brokers);
	handle->connect_timeout_ms = sopts.connect_timeout_ms;
	handle->spec = *spec;
	handle->spec.client_id = copy_string(spec->client_id);
	handle->spec.transactional_id = copy_string(spec->transactional_id);
	handle->signature = options_signature(server, user);

	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	/* delivery reports are served by rd_kafka_poll() from the backend */
	if (spec->kind != KFDW_HANDLE_CONSUMER && spec->on_delivery)
		rd_kafka_conf_set_dr_msg_cb(conf, spec->on_delivery);
	if (spec->kind == KFDW_HANDLE_CONSUMER && spec->on_rebalance)
		rd_kafka_conf_set_rebalance_cb(conf, spec->on_rebalance);
	rd_kafka_conf_set_opaque(conf, handle);

	/* rd_kafka_new takes the configuration, on success only */
	rk = rd_kafka_new(spec->kind == KFDW_HANDLE_CONSUMER ?
					  RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER,
					  conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		kfdw_client_free(handle);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("could not create a Kafka client for server \"%s\"",
						server->servername),
				 errdetail_internal("%s", errstr)));
	}
	/* logs go to the main queue, served by kfdw_serve_events() */
	rd_kafka_set_log_queue(rk, NULL);
	handle->rk = rk;

	return handle;
}

/*
 * Destroy a client and its handle.  Its owner has served or purged what it
 * produced, as it needs.
 */
void
kfdw_client_free(KafkaHandle *handle)
{
	/* a consumer leaves no group: scans never join one */
	if (handle->rk)
		rd_kafka_destroy_flags(handle->rk,
							   RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (handle->private)
		pfree(handle->private);
	if (handle->spec.client_id)
		pfree((char *) handle->spec.client_id);
	if (handle->spec.transactional_id)
		pfree((char *) handle->spec.transactional_id);
	if (handle->signature)
		pfree(handle->signature);
	pfree(handle->brokers);
	pfree(handle);
}

/* Was the client made for what spec asks? */
bool
kfdw_client_matches(KafkaHandle *handle, const KafkaClientSpec *spec)
{
	return handle->spec.kind == spec->kind &&
		handle->spec.on_delivery == spec->on_delivery &&
		handle->spec.on_error == spec->on_error &&
		handle->spec.settings == spec->settings &&
		same_string(handle->spec.client_id, spec->client_id) &&
		same_string(handle->spec.transactional_id, spec->transactional_id);
}

/*
 * Would the server (as the catalogs now say) and the user mapping of the
 * client's user make a client other than this one?  The caller is in a
 * transaction.
 */
bool
kfdw_client_changed(KafkaHandle *handle, ForeignServer *server)
{
	UserMapping *user = get_user_mapping(handle->userid,
											  server->serverid);
	char	   *signature = options_signature(server, user);
	bool		changed = strcmp(signature, handle->signature) != 0;

	pfree(signature);
	return changed;
}

/*
 * Everything a client is built from, as one string: the server, its
 * options, and the user mapping and its options.  Comparing it tells a
 * real change from an unrelated invalidation (a CDC worker replays the
 * invalidations of every transaction it decodes).  Allocated in
 * TopMemoryContext; holds credentials, so it is never shown.
 */
static char *
options_signature(ForeignServer *server, UserMapping *user)
{
	StringInfoData buf;
	ListCell   *lc;
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

	initStringInfo(&buf);
	appendStringInfo(&buf, "%u", server->serverid);
	foreach(lc, server->options)
		appendStringInfo(&buf, "|%s=%s", ((DefElem *) lfirst(lc))->defname,
						 defGetString((DefElem *) lfirst(lc)));
	if (user)
	{
		appendStringInfo(&buf, "|user %u", user->umid);
		foreach(lc, user->options)
			appendStringInfo(&buf, "|%s=%s", ((DefElem *) lfirst(lc))->defname,
							 defGetString((DefElem *) lfirst(lc)));
	}
	MemoryContextSwitchTo(oldcxt);
	return buf.data;
}

static bool
same_string(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static char *
copy_string(const char *s)
{
	return s ? MemoryContextStrdup(TopMemoryContext, s) : NULL;
}

/*
 * Serve what librdkafka queued for the backend: logs, errors and, for
 * producers, delivery reports.  Never waits.
 */
void
kfdw_serve_events(KafkaHandle *handle)
{
	rd_kafka_poll(handle->rk, 0);
}

/*
 * The fatal error of a producer (fenced by another with its transactional
 * id, or an idempotence guarantee broken), or RD_KAFKA_RESP_ERR_NO_ERROR.
 * A producer with one can only be re-made: its handle is marked stale.
 */
rd_kafka_resp_err_t
kfdw_fatal_error(KafkaHandle *handle, char *errstr, size_t size)
{
	rd_kafka_resp_err_t err = rd_kafka_fatal_error(handle->rk, errstr, size);

	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		handle->stale = true;
	return err;
}

/*
 * librdkafka's log callback.  With log.queue set it runs only in the thread
 * that polls the main queue: the backend.
 */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* syslog levels: 0-4 are emergencies to warnings */
	elog(level <= 4 ? LOG : DEBUG1, "librdkafka: %s: %s", fac, buf);
}

/*
 * librdkafka's error callback, served from the backend by rd_kafka_poll().
 * Remembers the error for the message of a later ERROR (for a fatal one,
 * its cause), then tells the user of the client; never throws.
 */
static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	KafkaHandle *handle = (KafkaHandle *) opaque;

	handle->last_err = (rd_kafka_resp_err_t) err;
	strlcpy(handle->last_errstr, reason, sizeof(handle->last_errstr));
	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		handle->stale = true;
		handle->last_err = rd_kafka_fatal_error(rk, handle->last_errstr,
												sizeof(handle->last_errstr));
	}
	elog(DEBUG1, "librdkafka error: %s", reason);
	if (handle->spec.on_error)
		handle->spec.on_error(handle, err, reason);
}

/*
 * Map a librdkafka error to a SQLSTATE.
 */
int
kfdw_errcode(rd_kafka_resp_err_t err)
{
	switch (err)
	{
		case RD_KAFKA_RESP_ERR__TRANSPORT:
		case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		case RD_KAFKA_RESP_ERR__RESOLVE:
		case RD_KAFKA_RESP_ERR__TIMED_OUT:
		case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
		case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
		case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
		case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
		case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
			return ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
		case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
		case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
			return ERRCODE_FDW_TABLE_NOT_FOUND;
		case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
			return ERRCODE_FDW_INVALID_DESCRIPTOR_FIELD_IDENTIFIER;
		case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
			return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case RD_KAFKA_RESP_ERR__QUEUE_FULL:
			return ERRCODE_FDW_OUT_OF_MEMORY;
		case RD_KAFKA_RESP_ERR__INVALID_ARG:
		case RD_KAFKA_RESP_ERR_INVALID_MSG:
			return ERRCODE_FDW_INVALID_STRING_FORMAT;
		case RD_KAFKA_RESP_ERR__FENCED:
		case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
		case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
		case RD_KAFKA_RESP_ERR_INVALID_TXN_STATE:
			return ERRCODE_T_R_SERIALIZATION_FAILURE;
		default:
			return ERRCODE_FDW_ERROR;
	}
}

/* Is this error one of not reaching the brokers? */
static bool
is_transport_error(rd_kafka_resp_err_t err)
{
	return kfdw_errcode(err) == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
}

/*
 * The detail of an ERROR about a librdkafka error, for use inside ereport():
 * errstr, or else librdkafka's text for err, and, when the brokers were out
 * of reach, what librdkafka last saw of them (it never holds credentials).
 * The brokers themselves are for the primary message to name, where they
 * matter.
 */
int
kfdw_errdetail_kafka(KafkaHandle *handle, rd_kafka_resp_err_t err,
					 const char *errstr)
{
	const char *detail = errstr ? errstr : rd_kafka_err2str(err);

	if (handle && is_transport_error(err) && handle->last_errstr[0] != '\0' &&
		strcmp(handle->last_errstr, detail) != 0)
		return errdetail_internal("%s (last seen: %s)", detail,
								  handle->last_errstr);
	return errdetail_internal("%s", detail);
}

/*
 * The hint of an ERROR about a librdkafka error, for use inside ereport():
 * what to do when the brokers were out of reach.
 */
int
kfdw_errhint_kafka(KafkaHandle *handle, rd_kafka_resp_err_t err)
{
	if (handle && is_transport_error(err))
		return errhint("Check that the brokers are reachable, or raise the server option \"connect_timeout_ms\".");
	return 0;
}

