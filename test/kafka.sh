#!/bin/bash
#
# test/kafka.sh: a real Apache Kafka cluster (KRaft, on the JVM) for tests
#
# The broker's jars come from Maven Central (test/kafka/pom.xml pins the
# version) into a cache that later runs reuse; no Docker, no other download.
#
#   test/kafka.sh fetch
#       fetch the jars into the cache (run once as root on a fresh machine:
#       installs the JDK and Maven from Debian's packages when missing)
#   test/kafka.sh start DIR [--brokers N] [--topic NAME:PARTITIONS[:RF]]... [--sasl]
#       start N brokers (default 3), each a combined broker and controller,
#       on free loopback ports; wait until the cluster is ready; create the
#       topics; print "BOOTSTRAP host:port,..." (also in DIR/bootstrap) and,
#       with --sasl, "SASL host:port,..." (also in DIR/sasl)
#   test/kafka.sh down DIR ID      SIGKILL broker ID (1..N), as a crash
#   test/kafka.sh up DIR ID        start broker ID again, same port and data
#   test/kafka.sh topic DIR NAME PARTITIONS [RF] [CONFIG=VALUE]...
#   test/kafka.sh tool DIR CLASS [ARGS]...
#       run a Kafka tool class (org.apache.kafka.tools.ProducerPerformance,
#       ...) with the cluster's jars; DIR/admin.properties configures a
#       client of the SASL listener as the admin user
#   test/kafka.sh stop DIR         stop every broker of DIR
#
# Defaults: replication factor min(N, 3); min.insync.replicas 2 when N >= 3;
# log.retention.ms=-1 (messages with old timestamps stay);
# auto.create.topics.enable=false.  --sasl adds a SASL_PLAINTEXT listener
# with the mechanisms SCRAM-SHA-512 and PLAIN and ACLs: user "admin"
# (password "admin-secret") is a superuser, user "writer" (password
# "writer-secret") may only write the topic "sasl_writable", which is
# created.  The PLAINTEXT listener stays open to everyone (its principal
# ANONYMOUS is a superuser).  librdkafka before 2.6.1 (Debian 12 has 2.0.2)
# fails SCRAM against Kafka 4 (librdkafka#4895): its clients use PLAIN,
# Java clients either.
#
# Environment: KFDW_KAFKA_CACHE (default /var/cache/kafka_fdw as root,
# else ~/.cache/kafka_fdw), KFDW_KAFKA_HEAP (default "-Xms64m -Xmx512m").

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$HERE/kafka/pom.xml
ADMIN_PY=$HERE/kafka/admin.py
PY=/usr/bin/python3

die() { printf 'kafka.sh: %s\n' "$*" >&2; exit 1; }

kafka_version()
{
	sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM"
}

cache_dir()
{
	if [ -n "${KFDW_KAFKA_CACHE:-}" ]; then
		echo "$KFDW_KAFKA_CACHE"
	elif [ "$(id -u)" = 0 ]; then
		echo /var/cache/kafka_fdw
	else
		echo "${HOME:-/tmp}/.cache/kafka_fdw"
	fi
}

# The directory of the jars of the pinned version; fetches them if needed.
lib_dir()
{
	local dir
	dir=$(cache_dir)/kafka-$(kafka_version)
	if [ ! -f "$dir/complete" ]; then
		fetch_jars "$dir" >&2 || die "could not fetch the Kafka jars into $dir"
	fi
	echo "$dir/lib"
}

fetch_jars()
{
	local dir=$1 tmp
	if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
		[ "$(id -u)" = 0 ] || die "java and mvn are missing (install default-jdk-headless and maven as root)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			default-jdk-headless maven >&2 || die "could not install the JDK and Maven"
	fi
	mkdir -p "$dir" || return 1
	tmp=$(mktemp -d "$dir/lib.XXXXXX") || return 1
	echo "kafka.sh: fetching Apache Kafka $(kafka_version) from Maven Central"
	if ! mvn -q -B -f "$POM" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
		rm -rf "$tmp"
		return 1
	fi
	rm -rf "$dir/lib"
	mv "$tmp" "$dir/lib" && chmod -R a+rX "$(cache_dir)" && touch "$dir/complete"
}

# Print COUNT TCP ports nobody listens on now, all different.
free_ports()
{
	perl -MIO::Socket::INET -e '
		my @s = map { IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
			LocalPort => 0, ReuseAddr => 0) or die "no free port: $!" } 1..$ARGV[0];
		print join(" ", map { $_->sockport } @s), "\n";' "$1"
}

java_run()
{
	local lib=$1
	shift
	# shellcheck disable=SC2086  # KFDW_KAFKA_HEAP is a list of JVM flags
	java ${KFDW_KAFKA_HEAP:--Xms64m -Xmx512m} -XX:+UseSerialGC \
		-Djava.awt.headless=true -cp "$lib/*" "$@"
}

# Start broker ID of DIR in the background, in a session of its own.
start_broker()
{
	local dir=$1 id=$2 lib
	lib=$(cat "$dir/libdir")
	# A session of its own, and none of our descriptors but 0-2 (a lock
	# that flock(1) holds for the caller must not outlive the caller).
	# shellcheck disable=SC2016  # $$ and $0 belong to the inner shell
	setsid -f bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; echo $$ >"$0"; exec "$@"' "$dir/broker-$id/pid" \
		java ${KFDW_KAFKA_HEAP:--Xms64m -Xmx512m} -XX:+UseSerialGC \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$dir/log4j2.properties" \
		-Dkafka.logs.dir="$dir/broker-$id" \
		-cp "$lib/*" kafka.Kafka "$dir/broker-$id/server.properties" \
		</dev/null >>"$dir/broker-$id/stdout" 2>&1
	for _ in $(seq 50); do
		[ -s "$dir/broker-$id/pid" ] && return 0
		sleep 0.1
	done
	die "broker $id did not start"
}

broker_alive()
{
	local pidfile=$1/broker-$2/pid
	[ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

write_config()
{
	local dir=$1 id=$2 n=$3 sasl=$4 port=$5 cport=$6 sport=$7 voters=$8
	local rf=$(( n < 3 ? n : 3 )) isr=1 listeners advertised
	[ "$n" -ge 3 ] && isr=2
	listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
	advertised="PLAINTEXT://127.0.0.1:$port"
	if [ "$sasl" = 1 ]; then
		listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$sport"
		advertised="$advertised,SASL_PLAINTEXT://127.0.0.1:$sport"
	fi
	mkdir -p "$dir/broker-$id/data"
	cat >"$dir/broker-$id/server.properties" <<-EOF
	# written by test/kafka.sh
	process.roles=broker,controller
	node.id=$id
	controller.quorum.voters=$voters
	controller.listener.names=CONTROLLER
	inter.broker.listener.name=PLAINTEXT
	listeners=$listeners
	advertised.listeners=$advertised
	listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
	log.dirs=$dir/broker-$id/data
	num.partitions=1
	default.replication.factor=$rf
	min.insync.replicas=$isr
	offsets.topic.replication.factor=$rf
	offsets.topic.num.partitions=4
	transaction.state.log.replication.factor=$rf
	transaction.state.log.min.isr=$isr
	transaction.state.log.num.partitions=4
	auto.create.topics.enable=false
	group.initial.rebalance.delay.ms=0
	# test data carries old timestamps on purpose: keep everything
	log.retention.ms=-1
	log.segment.bytes=16777216
	log.retention.check.interval.ms=1000
	log.segment.delete.delay.ms=0
	num.network.threads=2
	num.io.threads=2
	num.recovery.threads.per.data.dir=1
	socket.request.max.bytes=104857600
	EOF
	if [ "$sasl" = 1 ]; then
		cat >>"$dir/broker-$id/server.properties" <<-EOF
		sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
		listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
		listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" user_writer="writer-secret";
		authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
		super.users=User:ANONYMOUS;User:admin
		allow.everyone.if.no.acl.found=false
		EOF
	fi
}

write_log_config()
{
	cat >"$1/log4j2.properties" <<-'EOF'
	# written by test/kafka.sh: each broker logs to broker-ID/server.log
	status = warn
	appender.file.type = File
	appender.file.name = file
	appender.file.fileName = ${sys:kafka.logs.dir}/server.log
	appender.file.layout.type = PatternLayout
	appender.file.layout.pattern = [%d] %p %m (%c)%n
	rootLogger.level = INFO
	rootLogger.appenderRef.file.ref = file
	logger.kafka.name = kafka
	logger.kafka.level = INFO
	logger.apache.name = org.apache.kafka
	logger.apache.level = INFO
	EOF
}

create_topic()
{
	local dir=$1 name=$2 parts=$3 rf=${4:-}
	shift 3
	[ $# -gt 0 ] && shift
	[ -n "$rf" ] || rf=$(cat "$dir/rf")
	"$PY" "$ADMIN_PY" "$(cat "$dir/bootstrap")" topic "$name" "$parts" "$rf" "$@" ||
		die "could not create topic $name"
}

cmd_start()
{
	local dir=$1 n=3 sasl=0 topics=() id lib ports voters bootstrap saslboot
	shift
	while [ $# -gt 0 ]; do
		case $1 in
			--brokers) n=$2; shift 2 ;;
			--topic) topics+=("$2"); shift 2 ;;
			--sasl) sasl=1; shift ;;
			*) die "unknown argument $1" ;;
		esac
	done
	[ "$n" -ge 1 ] 2>/dev/null || die "--brokers needs a number"
	[ -e "$dir/bootstrap" ] && die "$dir already holds a cluster (test/kafka.sh stop $dir)"
	command -v "$PY" >/dev/null || die "$PY is missing"
	"$PY" -c 'import confluent_kafka' 2>/dev/null ||
		die "python3-confluent-kafka is missing (apt-get install python3-confluent-kafka)"
	lib=$(lib_dir) || exit 1
	mkdir -p "$dir" || die "cannot create $dir"
	dir=$(cd "$dir" && pwd)
	echo "$lib" >"$dir/libdir"
	echo "$n" >"$dir/brokers"
	echo $(( n < 3 ? n : 3 )) >"$dir/rf"

	# three ports a broker: PLAINTEXT, CONTROLLER, SASL_PLAINTEXT
	read -r -a ports <<<"$(free_ports $((3 * n)))"
	voters= bootstrap= saslboot=
	for id in $(seq "$n"); do
		voters="$voters${voters:+,}$id@127.0.0.1:${ports[3 * id - 2]}"
		bootstrap="$bootstrap${bootstrap:+,}127.0.0.1:${ports[3 * id - 3]}"
		saslboot="$saslboot${saslboot:+,}127.0.0.1:${ports[3 * id - 1]}"
	done
	write_log_config "$dir"
	local cluster_id scram=()
	cluster_id=$(java_run "$lib" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
	[ -n "$cluster_id" ] || die "could not make a cluster id"
	if [ "$sasl" = 1 ]; then
		scram=(--add-scram 'SCRAM-SHA-512=[name=admin,password=admin-secret]'
			--add-scram 'SCRAM-SHA-512=[name=writer,password=writer-secret]')
	fi
	for id in $(seq "$n"); do
		write_config "$dir" "$id" "$n" "$sasl" "${ports[3 * id - 3]}" \
			"${ports[3 * id - 2]}" "${ports[3 * id - 1]}" "$voters"
		java_run "$lib" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
			-Dkafka.logs.dir="$dir/broker-$id" kafka.tools.StorageTool format \
			-t "$cluster_id" -c "$dir/broker-$id/server.properties" "${scram[@]}" \
			>"$dir/broker-$id/format.log" 2>&1 ||
			{ cat "$dir/broker-$id/format.log" >&2; die "could not format broker $id"; }
	done
	echo "$bootstrap" >"$dir/bootstrap.pending"
	for id in $(seq "$n"); do
		start_broker "$dir" "$id"
	done
	if ! "$PY" "$ADMIN_PY" "$bootstrap" wait "$n" 120; then
		for id in $(seq "$n"); do
			tail -20 "$dir/broker-$id/server.log" "$dir/broker-$id/stdout" >&2 2>/dev/null
		done
		cmd_stop "$dir"
		die "the cluster did not become ready"
	fi
	mv "$dir/bootstrap.pending" "$dir/bootstrap"
	if [ "$sasl" = 1 ]; then
		echo "$saslboot" >"$dir/sasl"
		cat >"$dir/admin.properties" <<-EOF
		security.protocol=SASL_PLAINTEXT
		sasl.mechanism=SCRAM-SHA-512
		sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="admin-secret";
		EOF
		create_topic "$dir" sasl_writable 1
		java_run "$lib" org.apache.kafka.tools.AclCommand --bootstrap-server "$bootstrap" \
			--add --allow-principal User:writer --operation Write --operation Describe \
			--topic sasl_writable >"$dir/acl.log" 2>&1 ||
			{ cat "$dir/acl.log" >&2; die "could not create the ACLs"; }
	fi
	local t name parts rf
	for t in "${topics[@]}"; do
		IFS=: read -r name parts rf <<<"$t"
		create_topic "$dir" "$name" "${parts:-1}" "${rf:-}"
	done
	echo "BOOTSTRAP $bootstrap"
	[ "$sasl" = 1 ] && echo "SASL $saslboot"
	return 0
}

cmd_down()
{
	local dir=$1 id=$2 pid
	[ -s "$dir/broker-$id/pid" ] || die "no broker $id in $dir"
	pid=$(cat "$dir/broker-$id/pid")
	kill -KILL "$pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	die "broker $id (pid $pid) did not die"
}

cmd_up()
{
	local dir=$1 id=$2
	[ -f "$dir/broker-$id/server.properties" ] || die "no broker $id in $dir"
	broker_alive "$dir" "$id" && die "broker $id is running"
	rm -f "$dir/broker-$id/pid"
	start_broker "$dir" "$id"
}

cmd_stop()
{
	local dir=$1 id pids=() p
	for id in $(seq "$(cat "$dir/brokers" 2>/dev/null || echo 0)"); do
		broker_alive "$dir" "$id" && pids+=("$(cat "$dir/broker-$id/pid")")
	done
	[ ${#pids[@]} -gt 0 ] || { rm -f "$dir/bootstrap"; return 0; }
	# the data is thrown away: a short controlled shutdown, then SIGKILL
	kill -TERM "${pids[@]}" 2>/dev/null
	for _ in $(seq 100); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null
	rm -f "$dir/bootstrap"
	return 0
}

[ $# -ge 1 ] || die "usage: test/kafka.sh fetch|start|down|up|topic|tool|stop DIR ..."
cmd=$1
shift
case $cmd in
	fetch) lib_dir ;;
	start) [ $# -ge 1 ] || die "usage: start DIR [options]"; cmd_start "$@" ;;
	down) [ $# -eq 2 ] || die "usage: down DIR ID"; cmd_down "$@" ;;
	up) [ $# -eq 2 ] || die "usage: up DIR ID"; cmd_up "$@" ;;
	topic) [ $# -ge 3 ] || die "usage: topic DIR NAME PARTITIONS [RF] [CONFIG=VALUE]..."
		[ -s "$1/bootstrap" ] || die "no running cluster in $1"
		create_topic "$@" ;;
	tool) [ $# -ge 2 ] || die "usage: tool DIR CLASS [ARGS]..."
		lib=$(cat "$1/libdir") || die "no cluster in $1"
		shift
		java_run "$lib" -Dlog4j2.configurationFile="${KFDW_TOOL_LOG4J:-/dev/null}" "$@" ;;
	stop) [ $# -eq 1 ] || die "usage: stop DIR"; cmd_stop "$1" ;;
	*) die "unknown command $cmd" ;;
esac
