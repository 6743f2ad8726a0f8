/*-------------------------------------------------------------------------
 *
 * kafka_test_broker.c
 *		  An embedded Kafka broker for kafka_fdw's tests and demo
 *
 * Runs librdkafka's mock cluster (rdkafka_mock.h): N brokers listening on
 * loopback at ephemeral ports, with topics created up front or on request,
 * and a line-based control channel on stdin to inject faults while it runs.
 *
 * Usage:
 *	kafka_test_broker [--brokers N] [--topic NAME:PARTITIONS]...
 *					  [--ready-file PATH] [--stop-on-eof]
 *
 * Once the cluster is up it prints "BOOTSTRAP host:port,..." on stdout and,
 * with --ready-file, writes the same bootstrap string to PATH (atomically:
 * written to PATH.tmp, then renamed).  Then it reads commands from stdin, one
 * per line, and answers each with "OK" or "ERR <why>":
 *
 *	topic NAME PARTITIONS	create a topic
 *	down ID					take broker ID (1..N) down
 *	up ID					bring broker ID up again
 *	rtt ID MS				add MS milliseconds of latency to broker ID
 *	quit					stop the broker
 *
 * End of input on stdin does not stop it (so it can run in the background
 * with stdin from /dev/null) unless --stop-on-eof is given; SIGTERM and
 * SIGINT stop it cleanly.
 *
 * Limits of the mock cluster (librdkafka 2.0): no admin CreateTopics, about
 * 5 MB kept per partition (older messages are dropped, the low watermark
 * moves), offsets-for-times answers -1, aborted transactions are visible to
 * read_committed consumers, and a metadata request that allows
 * auto-creation (a producer's, by default) creates an unknown topic with 4
 * partitions.
 *
 * IDENTIFICATION
 *		  test/kafka_test_broker.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_LINE 1024
#define METADATA_API_KEY 3		/* Kafka protocol ApiKey of Metadata */

static volatile sig_atomic_t stop_requested = 0;

static rd_kafka_t *rk;
static rd_kafka_mock_cluster_t *mcluster;
static int	broker_cnt = 1;

static void handle_signal(int signo);
static void die(const char *fmt, const char *arg);
static int	create_topic(const char *name, int partitions, char *why, size_t whylen);
static int	parse_int(const char *s, int min, int *out);
static void write_ready_file(const char *path, const char *bootstrap);
static void run_command(char *line);
static void answer(const char *fmt,...) __attribute__((format(printf, 1, 2)));

static void
handle_signal(int signo)
{
	(void) signo;
	stop_requested = 1;
}

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "kafka_test_broker: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

/* Parse a decimal integer >= min; returns 0 on success. */
static int
parse_int(const char *s, int min, int *out)
{
	char	   *end;
	long		v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > 1000000)
		return -1;
	*out = (int) v;
	return 0;
}

static int
create_topic(const char *name, int partitions, char *why, size_t whylen)
{
	rd_kafka_resp_err_t err;
	int			replication = broker_cnt < 3 ? broker_cnt : 3;

	err = rd_kafka_mock_topic_create(mcluster, name, partitions, replication);
	if (err)
	{
		snprintf(why, whylen, "%s", rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

static void
write_ready_file(const char *path, const char *bootstrap)
{
	char		tmp[4096];
	FILE	   *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL)
		die("cannot write ready file \"%s\"", tmp);
	fprintf(f, "%s\n", bootstrap);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		die("cannot write ready file \"%s\"", path);
}

static void
answer(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* Execute one control command and answer it. */
static void
run_command(char *line)
{
	char	   *argv[4];
	int			argc = 0;
	char	   *tok;
	char	   *save;
	int			id;
	int			n;
	rd_kafka_resp_err_t err;
	char		why[256];

	for (tok = strtok_r(line, " \t\r", &save); tok != NULL;
		 tok = strtok_r(NULL, " \t\r", &save))
	{
		if (argc == 4)
		{
			answer("ERR too many arguments");
			return;
		}
		argv[argc++] = tok;
	}
	if (argc == 0)
		return;					/* blank line: nothing to answer */

	if (strcmp(argv[0], "quit") == 0 && argc == 1)
	{
		answer("OK");
		stop_requested = 1;
		return;
	}
	if (strcmp(argv[0], "topic") == 0 && argc == 3)
	{
		if (parse_int(argv[2], 1, &n) != 0)
			answer("ERR invalid partition count \"%s\"", argv[2]);
		else if (create_topic(argv[1], n, why, sizeof(why)) != 0)
			answer("ERR %s", why);
		else
			answer("OK");
		return;
	}
	if ((strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) &&
		argc == 2)
	{
		if (parse_int(argv[1], 1, &id) != 0 || id > broker_cnt)
		{
			answer("ERR no broker \"%s\"", argv[1]);
			return;
		}
		if (argv[0][0] == 'd')
			err = rd_kafka_mock_broker_set_down(mcluster, id);
		else
			err = rd_kafka_mock_broker_set_up(mcluster, id);
		if (err)
			answer("ERR %s", rd_kafka_err2str(err));
		else
			answer("OK");
		return;
	}
	if (strcmp(argv[0], "rtt") == 0 && argc == 3)
	{
		if (parse_int(argv[1], 1, &id) != 0 || id > broker_cnt)
			answer("ERR no broker \"%s\"", argv[1]);
		else if (parse_int(argv[2], 0, &n) != 0)
			answer("ERR invalid latency \"%s\"", argv[2]);
		else if ((err = rd_kafka_mock_broker_set_rtt(mcluster, id, n)) != 0)
			answer("ERR %s", rd_kafka_err2str(err));
		else
			answer("OK");
		return;
	}
	answer("ERR unknown command or wrong arguments: %s "
		   "(commands: topic NAME PARTITIONS, down ID, up ID, rtt ID MS, quit)",
		   argv[0]);
}

int
main(int argc, char **argv)
{
	rd_kafka_conf_t *conf;
	char		errstr[512];
	const char *ready_file = NULL;
	const char *bootstrap;
	int			stop_on_eof = 0;
	int			stdin_open = 1;
	char		buf[MAX_LINE];
	size_t		buflen = 0;
	int			i;
	struct sigaction sa;

	/* the options; topics are created once the cluster exists */
	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
		{
			if (parse_int(argv[++i], 1, &broker_cnt) != 0)
				die("invalid broker count \"%s\"", argv[i]);
		}
		else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
			i++;				/* checked below */
		else if (strcmp(argv[i], "--ready-file") == 0 && i + 1 < argc)
			ready_file = argv[++i];
		else if (strcmp(argv[i], "--stop-on-eof") == 0)
			stop_on_eof = 1;
		else
			die("usage: kafka_test_broker [--brokers N] "
				"[--topic NAME:PARTITIONS]... [--ready-file PATH] "
				"[--stop-on-eof] (bad argument \"%s\")", argv[i]);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* the mock cluster lives inside an ordinary (unused) client handle */
	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) !=
		RD_KAFKA_CONF_OK)
		die("%s", errstr);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		die("cannot create client handle: %s", errstr);
	mcluster = rd_kafka_mock_cluster_new(rk, broker_cnt);
	if (mcluster == NULL)
		die("cannot create mock cluster%s", "");

	/*
	 * The mock answers Metadata up to version 2 only, where a client cannot
	 * say whether unknown topics may be auto-created, so it creates every
	 * topic asked for.  Version 4 carries the client's
	 * allow.auto.create.topics, which makes the mock behave like a real
	 * broker with auto.create.topics.enable=true: a consumer (default false)
	 * gets "unknown topic", a producer (default true) creates the topic.
	 */
	if (rd_kafka_mock_set_apiversion(mcluster, METADATA_API_KEY, 0, 4) != 0)
		die("cannot set the Metadata API version%s", "");

	for (i = 1; i < argc; i++)
	{
		char		name[512];
		char	   *colon;
		int			parts;

		if (strcmp(argv[i], "--topic") != 0)
		{
			if (strcmp(argv[i], "--brokers") == 0 ||
				strcmp(argv[i], "--ready-file") == 0)
				i++;
			continue;
		}
		snprintf(name, sizeof(name), "%s", argv[++i]);
		colon = strrchr(name, ':');
		if (colon == NULL || colon == name ||
			parse_int(colon + 1, 1, &parts) != 0)
			die("invalid topic \"%s\" (expected NAME:PARTITIONS)", argv[i]);
		*colon = '\0';
		if (create_topic(name, parts, errstr, sizeof(errstr)) != 0)
			die("cannot create topic: %s", errstr);
	}

	bootstrap = rd_kafka_mock_cluster_bootstraps(mcluster);
	printf("BOOTSTRAP %s\n", bootstrap);
	fflush(stdout);
	if (ready_file)
		write_ready_file(ready_file, bootstrap);

	/* the control loop: short polls, so that a signal is seen promptly */
	while (!stop_requested)
	{
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		ssize_t		n;
		char	   *nl;

		if (!stdin_open)
		{
			poll(NULL, 0, 200);
			continue;
		}
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = read(STDIN_FILENO, buf + buflen, sizeof(buf) - 1 - buflen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			stdin_open = 0;
			if (stop_on_eof)
				stop_requested = 1;
			continue;
		}
		buflen += n;
		buf[buflen] = '\0';
		while ((nl = strchr(buf, '\n')) != NULL)
		{
			*nl = '\0';
			run_command(buf);
			buflen -= (nl + 1 - buf);
			memmove(buf, nl + 1, buflen + 1);
		}
		if (buflen == sizeof(buf) - 1)
		{
			answer("ERR line too long");
			buflen = 0;
		}
	}

	rd_kafka_mock_cluster_destroy(mcluster);
	rd_kafka_destroy(rk);
	return 0;
}
