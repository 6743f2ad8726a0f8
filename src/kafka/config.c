/*-------------------------------------------------------------------------
 *
 * config.c
 *		  Server and user mapping options, and the librdkafka configuration
 *		  built from them
 *
 * Server options are kafka_fdw's own (brokers, ...) or librdkafka global
 * configuration properties, which librdkafka itself checks when the server
 * is created or altered, one by one and then as the whole configuration of
 * each client the server can make.  A role that is not a superuser may set
 * only the properties of an allow-list; credentials live only in user
 * mappings.  Every client of the extension (scans, INSERT, CDC streams) is
 * configured here, by kfdw_build_conf().
 *
 * IDENTIFICATION
 *		  src/kafka/config.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka/kafka.h"

#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

/*
 * The server and user mapping options that kafka_fdw itself knows, with the
 * catalog each belongs to.  Every other server option is a librdkafka
 * property.
 */
typedef struct KafkaConfOption
{
	const char *optname;
	Oid			optcontext;		/* OID of catalog in which option may appear */
} KafkaConfOption;

static const KafkaConfOption conf_options[] = {
	/* server */
	{"brokers", ForeignServerRelationId},
	{"transactional", ForeignServerRelationId},
	{"connect_timeout_ms", ForeignServerRelationId},
	{"transaction_hold_bytes", ForeignServerRelationId},

	/* user mapping: credentials, passed to librdkafka */
	{"sasl.username", UserMappingRelationId},
	{"sasl.password", UserMappingRelationId},
	{"ssl.key.password", UserMappingRelationId},
	{"ssl.key.pem", UserMappingRelationId},
	{"ssl.keystore.password", UserMappingRelationId},
	{"sasl.oauthbearer.client.id", UserMappingRelationId},
	{"sasl.oauthbearer.client.secret", UserMappingRelationId},

	/* Sentinel */
	{NULL, InvalidOid}
};

/*
 * The librdkafka properties that a role other than a superuser may set in a
 * server: the allow-list.  Every other property, including every one that a
 * later librdkafka adds, is superuser-only.  README's "The security model"
 * says why each one is harmless.  max bounds a value that sizes memory the
 * backend allocates (0: librdkafka's own range is safe).
 */
typedef struct KafkaOpenProperty
{
	const char *name;
	int64		max;
} KafkaOpenProperty;

#define KFDW_MAX_OPEN_BYTES		INT64CONST(104857600)	/* 100 MB */
#define KFDW_MAX_OPEN_KBYTES	INT64CONST(1048576)		/* 1 GB */
#define KFDW_MAX_OPEN_MESSAGES	INT64CONST(1000000)

static const KafkaOpenProperty open_properties[] = {
	/* identity */
	{"client.id", 0},
	{"client.rack", 0},
	{"builtin.features", 0},
	/* connections and metadata: timers and counts */
	{"socket.timeout.ms", 0},
	{"socket.blocking.max.ms", 0},
	{"socket.keepalive.enable", 0},
	{"socket.nagle.disable", 0},
	{"socket.max.fails", 0},
	{"socket.send.buffer.bytes", 0},
	{"socket.receive.buffer.bytes", 0},
	{"socket.connection.setup.timeout.ms", 0},
	{"connections.max.idle.ms", 0},
	{"reconnect.backoff.jitter.ms", 0},
	{"reconnect.backoff.ms", 0},
	{"reconnect.backoff.max.ms", 0},
	{"broker.address.ttl", 0},
	{"broker.address.family", 0},
	{"max.in.flight.requests.per.connection", 0},
	{"max.in.flight", 0},
	{"topic.metadata.refresh.interval.ms", 0},
	{"metadata.max.age.ms", 0},
	{"topic.metadata.refresh.fast.interval.ms", 0},
	{"topic.metadata.refresh.fast.cnt", 0},
	{"topic.metadata.refresh.sparse", 0},
	{"topic.metadata.propagation.max.ms", 0},
	{"api.version.request", 0},
	{"api.version.request.timeout.ms", 0},
	{"api.version.fallback.ms", 0},
	{"broker.version.fallback", 0},
	{"log.connection.close", 0},
	{"log.thread.name", 0},
	/* security: no files, commands or URLs */
	{"security.protocol", 0},
	{"sasl.mechanisms", 0},
	{"sasl.mechanism", 0},
	{"ssl.cipher.suites", 0},
	{"ssl.curves.list", 0},
	{"ssl.sigalgs.list", 0},
	{"ssl.certificate.pem", 0},
	{"ssl.ca.pem", 0},
	{"enable.ssl.certificate.verification", 0},
	{"ssl.endpoint.identification.algorithm", 0},
	/* reading */
	{"isolation.level", 0},
	{"allow.auto.create.topics", 0},
	{"check.crcs", 0},
	{"queued.min.messages", 0},
	{"queued.max.messages.kbytes", KFDW_MAX_OPEN_KBYTES},
	{"fetch.wait.max.ms", 0},
	{"fetch.min.bytes", 0},
	{"fetch.max.bytes", KFDW_MAX_OPEN_BYTES},
	{"max.partition.fetch.bytes", KFDW_MAX_OPEN_BYTES},
	{"fetch.message.max.bytes", KFDW_MAX_OPEN_BYTES},
	{"fetch.error.backoff.ms", 0},
	/* publishing */
	{"acks", 0},
	{"request.required.acks", 0},
	{"enable.idempotence", 0},
	{"enable.gapless.guarantee", 0},
	{"transaction.timeout.ms", 0},
	{"message.timeout.ms", 0},
	{"delivery.timeout.ms", 0},
	{"request.timeout.ms", 0},
	{"linger.ms", 0},
	{"queue.buffering.max.ms", 0},
	{"queue.buffering.max.messages", KFDW_MAX_OPEN_MESSAGES},
	{"queue.buffering.max.kbytes", KFDW_MAX_OPEN_KBYTES},
	{"queue.buffering.backpressure.threshold", 0},
	{"message.send.max.retries", 0},
	{"retries", 0},
	{"retry.backoff.ms", 0},
	{"compression.codec", 0},
	{"compression.type", 0},
	{"compression.level", 0},
	{"batch.num.messages", 0},
	{"batch.size", KFDW_MAX_OPEN_BYTES},
	{"message.max.bytes", KFDW_MAX_OPEN_BYTES},
	{"message.copy.max.bytes", KFDW_MAX_OPEN_BYTES},
	{"sticky.partitioning.linger.ms", 0},
	{"partitioner", 0},
	{"queuing.strategy", 0},
	{"produce.offset.report", 0},
	{NULL, 0}
};

/*
 * librdkafka properties that kafka_fdw sets itself: a user setting them
 * would break scans, transactions, deliveries or the handling of logs.
 */
static const char *const reserved_options[] = {
	"bootstrap.servers",
	"metadata.broker.list",
	"group.id",
	"group.instance.id",
	"transactional.id",
	"enable.auto.commit",
	"enable.auto.offset.store",
	"enable.partition.eof",
	"auto.offset.reset",		/* "error" or "latest" would hang or skip rows */
	"delivery.report.only.error",	/* statements count their deliveries */
	"log.queue",
	"enabled_events",
	NULL
};

/*
 * Refused to everyone: librdkafka would install a handler of this signal
 * in the backend, replacing PostgreSQL's (statement_timeout, cancel,
 * terminate and ProcSignal barriers would stop working).
 */
#define KFDW_SIGNAL_OPTION "internal.termination.signal"

/* the transactional.id of the clients that validation makes */
#define KFDW_CHECK_TRANSACTIONAL_ID "kafka_fdw-check"

static bool is_conf_option(const char *option, Oid context);
static bool is_kafka_fdw_option(const char *option);
static bool is_secret_option(const char *name);
static bool in_list(const char *name, const char *const *list);
static const KafkaOpenProperty *find_open_property(const char *name);
static void validate_server_option(DefElem *def, rd_kafka_conf_t *conf);
static void check_librdkafka_option(rd_kafka_conf_t *conf, DefElem *def,
									bool check_privilege);
static void name_property_as_given(char *errstr, size_t size,
								   const char *name);
static void check_kerberos(rd_kafka_conf_t *conf);
static void report_conf_error(const char *name, const char *value,
							  char *errstr);
static void set_conf(rd_kafka_conf_t *conf, const char *name,
					 const char *value);
static bool can_show_conf_error(const char *name, const char *value,
								const char *errstr);
static void apply_librdkafka_options(rd_kafka_conf_t *conf, List *options);
static rd_kafka_conf_t *make_conf(List *server_options, List *user_options,
								  const char *brokers,
								  const KafkaClientSpec *spec);
static void check_client_confs(List *server_options, List *user_options,
							   bool with_mapping);
static void check_client_conf(List *server_options, List *user_options,
							  bool with_mapping, KafkaHandleKind kind);

/* size of the buffers librdkafka writes its configuration errors to */
#define CONF_ERRSTR_SIZE 512

/*
 * Validate the options of a kafka_fdw server, one by one and then, through
 * librdkafka, as the configuration of every client the server may make.
 */
void
kfdw_validate_server_options(List *options)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	bool		have_brokers = false;
	ListCell   *cell;

	PG_TRY();
	{
		foreach(cell, options)
		{
			DefElem    *def = (DefElem *) lfirst(cell);

			validate_server_option(def, conf);
			if (strcmp(def->defname, "brokers") == 0)
				have_brokers = true;
		}

		if (!superuser())
			check_kerberos(conf);

		if (!have_brokers)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_DYNAMIC_PARAMETER_VALUE_NEEDED),
					 errmsg("option \"brokers\" is required for a kafka_fdw server"),
					 errhint("Give a comma-separated list of host:port, for example OPTIONS (brokers 'localhost:9092').")));

		/*
		 * Every option is right on its own; now let librdkafka check the
		 * configuration of every client the server may make, as a whole.  A
		 * user mapping's credentials are checked with its server's options
		 * by kfdw_check_mapping_conf(), from an event trigger: a validator
		 * is not told which server a user mapping is for.
		 */
		check_client_confs(options, NIL, false);
	}
	PG_FINALLY();
	{
		rd_kafka_conf_destroy(conf);
	}
	PG_END_TRY();
}

/*
 * Validate the options of a user mapping for a kafka_fdw server: credentials
 * that librdkafka accepts.
 */
void
kfdw_validate_mapping_options(List *options)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	ListCell   *cell;

	PG_TRY();
	{
		foreach(cell, options)
		{
			DefElem    *def = (DefElem *) lfirst(cell);

			if (!is_conf_option(def->defname, UserMappingRelationId))
			{
				const KafkaConfOption *opt;
				StringInfoData buf;

				initStringInfo(&buf);
				for (opt = conf_options; opt->optname; opt++)
				{
					if (opt->optcontext == UserMappingRelationId)
						appendStringInfo(&buf, "%s%s", (buf.len > 0) ? ", " : "",
										 opt->optname);
				}
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("invalid option \"%s\"", def->defname),
						 errhint("Valid options in this context are: %s",
								 buf.data)));
			}
			check_librdkafka_option(conf, def, false);
		}
	}
	PG_FINALLY();
	{
		rd_kafka_conf_destroy(conf);
	}
	PG_END_TRY();
}

/*
 * Check the credentials of a user mapping with its server's options, as the
 * clients of its user will be configured.
 */
void
kfdw_check_mapping_conf(ForeignServer *server, List *user_options)
{
	check_client_confs(server->options, user_options, true);
}

/*
 * Check one server option: kafka_fdw's own, or a librdkafka property that
 * this role may set and librdkafka accepts.
 */
static void
validate_server_option(DefElem *def, rd_kafka_conf_t *conf)
{
	const char *name = def->defname;

	if (strcmp(name, "brokers") == 0)
	{
		if (defGetString(def)[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"brokers\" must not be empty")));
		set_conf(conf, "bootstrap.servers", defGetString(def));
		return;
	}
	if (strcmp(name, "transactional") == 0)
	{
		(void) kfdw_get_bool_option(def);
		return;
	}
	if (strcmp(name, "connect_timeout_ms") == 0)
	{
		(void) kfdw_get_int_option(def, 1);
		return;
	}
	if (strcmp(name, "transaction_hold_bytes") == 0)
	{
		(void) kfdw_get_int_option(def, 0);
		return;
	}

	if (is_secret_option(name))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("option \"%s\" belongs in a user mapping", name),
				 errhint("Credentials are kept in user mappings so that only their owners and superusers can read them.")));

	if (in_list(name, reserved_options))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("option \"%s\" is set by kafka_fdw and cannot be changed", name),
				 strcmp(name, "bootstrap.servers") == 0 ||
				 strcmp(name, "metadata.broker.list") == 0
				 ? errhint("Use the option \"brokers\".") : 0));

	if (strcmp(name, KFDW_SIGNAL_OPTION) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("option \"%s\" cannot be set", name),
				 errdetail("librdkafka would replace the database server's own handler of that signal, on which query cancel, statement_timeout and shutdown depend.")));

	check_librdkafka_option(conf, def, true);
}

/*
 * Ask librdkafka whether it knows the property and accepts the value, and,
 * for a role that is not a superuser, whether the property is on the
 * allow-list and its value within kafka_fdw's bounds.  The value of a
 * secret never appears in the error.
 */
static void
check_librdkafka_option(rd_kafka_conf_t *conf, DefElem *def,
						bool check_privilege)
{
	const char *name = def->defname;
	const char *value = defGetString(def);
	const KafkaOpenProperty *prop = NULL;
	char		errstr[CONF_ERRSTR_SIZE];
	rd_kafka_conf_res_t res;

	res = rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr));
	if (res == RD_KAFKA_CONF_UNKNOWN)
	{
		const KafkaConfOption *opt;
		StringInfoData buf;

		initStringInfo(&buf);
		for (opt = conf_options; opt->optname; opt++)
		{
			if (opt->optcontext == ForeignServerRelationId)
				appendStringInfo(&buf, "%s, ", opt->optname);
		}
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\"", name),
				 errhint("Valid options in this context are: %sor any librdkafka configuration property.",
						 buf.data)));
	}

	if (check_privilege && !superuser())
	{
		prop = find_open_property(name);
		if (prop == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to set option \"%s\"", name),
					 errdetail("Only superusers may set librdkafka properties that are not on kafka_fdw's list of harmless ones."),
					 errhint("The list is in the section \"The security model\" of kafka_fdw's README.")));
	}

	if (res != RD_KAFKA_CONF_OK)
		report_conf_error(name, value, errstr);

	/* librdkafka accepted the value: an integer, for a bounded property */
	if (prop != NULL && prop->max > 0 &&
		strtoi64(value, NULL, 10) > prop->max)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set option \"%s\" to %s",
						name, value),
				 errdetail("It sizes memory of the database server's processes: only superusers may set it above " INT64_FORMAT ".",
						   prop->max)));
}

/*
 * librdkafka names a property by its canonical name even when it was set
 * through an alias ("linger.ms" is "queue.buffering.max.ms"): put the name
 * the user wrote in its place.
 */
static void
name_property_as_given(char *errstr, size_t size, const char *name)
{
	static const char *const markers[] = {"property \"", "property: \"", NULL};
	const char *const *marker;

	for (marker = markers; *marker; marker++)
	{
		char	   *start = strstr(errstr, *marker);
		char	   *end;

		if (start == NULL)
			continue;
		start += strlen(*marker);
		end = strchr(start, '"');
		if (end == NULL)
			continue;
		if ((size_t) (end - start) != strlen(name) ||
			strncmp(start, name, end - start) != 0)
		{
			char	   *fixed = psprintf("%.*s%s%s", (int) (start - errstr),
										 errstr, name, end);

			strlcpy(errstr, fixed, size);
			pfree(fixed);
		}
		return;
	}
}

/*
 * Refuse SASL GSSAPI (Kerberos) to non-superusers: for it librdkafka runs
 * the shell command of sasl.kerberos.kinit.cmd and authenticates with the
 * database server's own Kerberos credentials.  GSSAPI is librdkafka's
 * default mechanism, so a SASL protocol without "sasl.mechanisms" is
 * GSSAPI too; conf holds the server's options on top of librdkafka's
 * defaults.
 */
static void
check_kerberos(rd_kafka_conf_t *conf)
{
	char		protocol[64];
	char		mechanisms[256];
	size_t		size;

	size = sizeof(protocol);
	if (rd_kafka_conf_get(conf, "security.protocol", protocol, &size) !=
		RD_KAFKA_CONF_OK || pg_strncasecmp(protocol, "sasl", 4) != 0)
		return;

	size = sizeof(mechanisms);
	if (rd_kafka_conf_get(conf, "sasl.mechanisms", mechanisms, &size) !=
		RD_KAFKA_CONF_OK)
		return;
	if (pg_strcasecmp(mechanisms, "GSSAPI") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to use SASL mechanism GSSAPI"),
				 errdetail("For GSSAPI librdkafka runs the kinit command and uses the database server's Kerberos credentials; only superusers may use it."),
				 errhint("Set \"sasl.mechanisms\" to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, or have a superuser create the server.")));
}


int
kfdw_get_int_option(DefElem *def, int min)
{
	int			result;

	if (!parse_int(defGetString(def), &result, 0, NULL) || result < min)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"",
						def->defname, defGetString(def)),
				 errhint("The value must be an integer of at least %d.", min)));
	return result;
}

/*
 * A boolean option.  Not defGetBoolean: it reports a bad value as a syntax
 * error (42601), where an option's bad value is HV024.
 */
bool
kfdw_get_bool_option(DefElem *def)
{
	bool		result;

	if (!parse_bool(defGetString(def), &result))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"",
						def->defname, defGetString(def)),
				 errhint("The value must be a boolean: true or false.")));
	return result;
}


/*
 * Is the option one that kafka_fdw knows in this context (the catalog of
 * the object the option is for)?
 */
static bool
is_conf_option(const char *option, Oid context)
{
	const KafkaConfOption *opt;

	for (opt = conf_options; opt->optname; opt++)
	{
		if (context == opt->optcontext && strcmp(opt->optname, option) == 0)
			return true;
	}
	return false;
}

/* Is the option one that kafka_fdw interprets, rather than librdkafka? */
static bool
is_kafka_fdw_option(const char *option)
{
	return is_conf_option(option, ForeignServerRelationId);
}

static bool
in_list(const char *name, const char *const *list)
{
	for (; *list; list++)
	{
		if (strcmp(name, *list) == 0)
			return true;
	}
	return false;
}

/* The allow-list's entry for a property, or NULL: superusers only */
static const KafkaOpenProperty *
find_open_property(const char *name)
{
	const KafkaOpenProperty *prop;

	for (prop = open_properties; prop->name; prop++)
	{
		if (strcmp(prop->name, name) == 0)
			return prop;
	}
	return NULL;
}

/*
 * May librdkafka's complaint about a property be shown?  Not if it is a
 * credential whose value the complaint repeats, even in part (errstr was
 * filled to its end: a truncated repetition cannot be searched for).
 */
static bool
can_show_conf_error(const char *name, const char *value, const char *errstr)
{
	if (!is_secret_option(name))
		return true;
	return value[0] != '\0' && strlen(errstr) < CONF_ERRSTR_SIZE - 1 &&
		strstr(errstr, value) == NULL;
}

/*
 * Is the option a credential?  Credentials are accepted only in user
 * mappings, and their values are never shown.
 */
static bool
is_secret_option(const char *name)
{
	return is_conf_option(name, UserMappingRelationId);
}

/*
 * Read the options of a server that kafka_fdw itself interprets.
 */
void
kfdw_get_server_options(ForeignServer *server, KafkaServerOptions *opts)
{
	ListCell   *cell;

	opts->brokers = NULL;
	opts->transactional = false;
	opts->connect_timeout_ms = KFDW_DEFAULT_CONNECT_TIMEOUT_MS;
	opts->transaction_hold_bytes = KFDW_DEFAULT_TRANSACTION_HOLD_BYTES;

	foreach(cell, server->options)
	{
		DefElem    *def = (DefElem *) lfirst(cell);

		if (strcmp(def->defname, "brokers") == 0)
			opts->brokers = defGetString(def);
		else if (strcmp(def->defname, "transactional") == 0)
			opts->transactional = kfdw_get_bool_option(def);
		else if (strcmp(def->defname, "connect_timeout_ms") == 0)
			opts->connect_timeout_ms = kfdw_get_int_option(def, 1);
		else if (strcmp(def->defname, "transaction_hold_bytes") == 0)
			opts->transaction_hold_bytes = kfdw_get_int_option(def, 0);
	}

	if (opts->brokers == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_DYNAMIC_PARAMETER_VALUE_NEEDED),
				 errmsg("server \"%s\" has no option \"brokers\"",
						server->servername)));
}

static void
set_conf(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[CONF_ERRSTR_SIZE];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) !=
		RD_KAFKA_CONF_OK)
		report_conf_error(name, value, errstr);
}

/*
 * librdkafka refused value for property name with errstr (a buffer of
 * CONF_ERRSTR_SIZE): its text is shown only when it cannot reveal the value
 * of a secret, and with the property named as the user wrote it.
 */
static void
report_conf_error(const char *name, const char *value, char *errstr)
{
	/* decided on librdkafka's own text, before it is changed */
	bool		show = can_show_conf_error(name, value, errstr);

	name_property_as_given(errstr, CONF_ERRSTR_SIZE, name);
	if (!show)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\"", name)));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
			 errmsg("invalid value for option \"%s\"", name),
			 errdetail_internal("%s", errstr)));
}

/* Pass every option that kafka_fdw does not interpret itself to librdkafka */
static void
apply_librdkafka_options(rd_kafka_conf_t *conf, List *options)
{
	ListCell   *cell;

	foreach(cell, options)
	{
		DefElem    *def = (DefElem *) lfirst(cell);

		if (!is_kafka_fdw_option(def->defname))
			set_conf(conf, def->defname, defGetString(def));
	}
}

/*
 * Build the librdkafka configuration of a client from the server's and the
 * user mapping's options, for what spec asks.  The caller owns the result:
 * it passes it to rd_kafka_new() or destroys it.
 */
rd_kafka_conf_t *
kfdw_build_conf(ForeignServer *server, UserMapping *user,
				const KafkaClientSpec *spec)
{
	KafkaServerOptions sopts;

	kfdw_get_server_options(server, &sopts);
	return make_conf(server->options, user ? user->options : NIL,
					 sopts.brokers, spec);
}

/*
 * The configuration of a client: defaults that suit kafka_fdw and the
 * client's kind come first, then the server's and the user mapping's
 * properties (which may override them), then what kafka_fdw and the user of
 * the client rely on and users cannot set.  Without brokers (validation)
 * the client never connects anywhere.
 */
static rd_kafka_conf_t *
make_conf(List *server_options, List *user_options, const char *brokers,
		  const KafkaClientSpec *spec)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	KafkaHandleKind kind = spec->kind;

	PG_TRY();
	{
		set_conf(conf, "client.id",
				 spec->client_id ? spec->client_id : "kafka_fdw");
		if (kind == KFDW_HANDLE_CONSUMER)
		{
			set_conf(conf, "isolation.level", "read_committed");
			/*
			 * Bound prefetched memory.  Scans assign partitions to the
			 * consumer, whose one queue holds the messages of all of them:
			 * 64 MB in all, plus what the fetches in flight hold (8 MB, 1 MB
			 * a partition).  librdkafka 2.0 holds back the next fetch for a
			 * whole second once the queue is full, so a smaller queue makes
			 * a serial scan wait on that backoff (16 MB: a parsed scan of
			 * 600,000 messages took 2.1 s, 64 MB: 0.8 s).
			 */
			set_conf(conf, "queued.max.messages.kbytes", "65536");
			set_conf(conf, "fetch.max.bytes", "8388608");
			set_conf(conf, "max.partition.fetch.bytes", "1048576");
			set_conf(conf, "allow.auto.create.topics", "false");
			/*
			 * A fetch waiting for new data holds up the requests queued
			 * behind it on the connection (metadata, watermarks of the next
			 * scan): scans read up to a known end, so never wait long.
			 */
			set_conf(conf, "fetch.wait.max.ms", "20");
			/* an offset deleted by retention: start from what remains */
			set_conf(conf, "auto.offset.reset", "earliest");
		}
		else
		{
			char		buf[32];

			set_conf(conf, "enable.idempotence", "true");
			set_conf(conf, "acks", "all");
			/* keyed messages land where the Java client puts them */
			set_conf(conf, "partitioner", "murmur2_random");
			/* bound what a backend queues: 64 MB, not librdkafka's 1 GB */
			set_conf(conf, "queue.buffering.max.kbytes", "65536");
			snprintf(buf, sizeof(buf), "%d", KFDW_DEFAULT_MESSAGE_TIMEOUT_MS);
			set_conf(conf, "message.timeout.ms", buf);
		}

		apply_librdkafka_options(conf, server_options);
		apply_librdkafka_options(conf, user_options);

		if (brokers)
			set_conf(conf, "bootstrap.servers", brokers);
		set_conf(conf, "log.queue", "true");
		if (kind == KFDW_HANDLE_CONSUMER)
		{
			/* scans assign partitions themselves and never commit offsets */
			set_conf(conf, "group.id", "kafka_fdw");
			set_conf(conf, "enable.auto.commit", "false");
			set_conf(conf, "enable.auto.offset.store", "false");
			set_conf(conf, "enable.partition.eof", "true");
		}
		else if (kind == KFDW_HANDLE_TXN_PRODUCER)
		{
			Assert(spec->transactional_id != NULL);
			set_conf(conf, "transactional.id", spec->transactional_id);
		}
		if (spec->settings)
		{
			const char *const *setting;

			for (setting = spec->settings; setting[0]; setting += 2)
				set_conf(conf, setting[0], setting[1]);
		}
	}
	PG_CATCH();
	{
		rd_kafka_conf_destroy(conf);
		PG_RE_THROW();
	}
	PG_END_TRY();

	return conf;
}

/*
 * Let librdkafka check, as a whole, the configuration of every client a
 * server may make: a consumer for scans, a producer for INSERT and CDC,
 * and a transactional producer if the server is transactional.
 * rd_kafka_new() makes the checks that involve more than one property
 * (acks with enable.idempotence, fetch.max.bytes with message.max.bytes,
 * ...).  The clients get no brokers, so validation never connects.
 *
 * A server alone has no credentials (they are in user mappings, checked
 * with the server's options when they are created): it is checked with
 * stand-in SASL credentials, which SASL PLAIN and SCRAM require.
 */
static void
check_client_confs(List *server_options, List *user_options,
				   bool with_mapping)
{
	bool		transactional = false;
	ListCell   *cell;

	foreach(cell, server_options)
	{
		DefElem    *def = (DefElem *) lfirst(cell);

		if (strcmp(def->defname, "transactional") == 0)
			transactional = kfdw_get_bool_option(def);
	}

	check_client_conf(server_options, user_options, with_mapping,
					  KFDW_HANDLE_CONSUMER);
	check_client_conf(server_options, user_options, with_mapping,
					  KFDW_HANDLE_PRODUCER);
	if (transactional)
		check_client_conf(server_options, user_options, with_mapping,
						  KFDW_HANDLE_TXN_PRODUCER);
}

static void
check_client_conf(List *server_options, List *user_options,
				  bool with_mapping, KafkaHandleKind kind)
{
	KafkaClientSpec spec = {0};
	rd_kafka_conf_t *conf;
	char		errstr[CONF_ERRSTR_SIZE];
	const char *what;
	bool		show = true;
	rd_kafka_t *rk;
	ListCell   *cell;

	spec.kind = kind;
	spec.transactional_id = KFDW_CHECK_TRANSACTIONAL_ID;
	conf = make_conf(server_options, user_options, NULL, &spec);
	if (!with_mapping)
	{
		(void) rd_kafka_conf_set(conf, "sasl.username", "kafka_fdw",
								 errstr, sizeof(errstr));
		(void) rd_kafka_conf_set(conf, "sasl.password", "kafka_fdw",
								 errstr, sizeof(errstr));
	}

	rk = rd_kafka_new(kind == KFDW_HANDLE_CONSUMER ? RD_KAFKA_CONSUMER :
					  RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk != NULL)
	{
		/* no group was joined: nothing to leave */
		rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
		return;
	}
	rd_kafka_conf_destroy(conf);

	what = kind == KFDW_HANDLE_CONSUMER ? "consumer" :
		kind == KFDW_HANDLE_PRODUCER ? "producer" : "transactional producer";

	/* the complaint may quote a credential: then leave it out */
	foreach(cell, user_options)
	{
		DefElem    *def = (DefElem *) lfirst(cell);

		if (is_secret_option(def->defname) &&
			!can_show_conf_error(def->defname, defGetString(def), errstr))
			show = false;
	}
	if (!show)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid librdkafka configuration for a %s", what)));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
			 errmsg("invalid librdkafka configuration for a %s", what),
			 errdetail_internal("%s", errstr),
			 errhint("A kafka_fdw server makes consumers to read and producers to publish: its options, with kafka_fdw's defaults, must suit both.")));
}
