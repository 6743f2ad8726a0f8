#!/bin/bash
#
# test/debezium/debezium.sh: the real Debezium, in Kafka Connect standalone,
# as the reference kafka_fdw's change events are compared with
#
# Every jar comes from Maven Central (test/debezium/pom.xml pins Debezium's
# versions; Kafka Connect's is test/kafka/pom.xml's Kafka version) into a
# cache that later runs reuse; no Docker, no other download.
#
#   test/debezium/debezium.sh fetch
#       fetch the jars into the cache (run once as root on a fresh machine:
#       installs the JDK and Maven from Debian's packages when missing);
#       prints the cache directory, which holds
#         runtime/            Kafka Connect and log4j 2: the class path
#         plugins/postgres/   debezium-connector-postgres (a Connect plugin)
#         plugins/jdbc/       debezium-connector-jdbc + the PostgreSQL driver
#       (plugin.path is plugins/: each connector has a class loader of its
#       own, so their dependency versions cannot clash)
#   test/debezium/debezium.sh start DIR --bootstrap HOST:PORT,... \
#           --props CONNECTOR.properties [--worker-prop KEY=VALUE]...
#       start Kafka Connect standalone with that one connector: REST on a
#       free loopback port (printed as "REST http://127.0.0.1:PORT", also in
#       DIR/rest), offsets in DIR/offsets, logs in DIR/connect.log and
#       DIR/connect.out; waits until GET /connectors/NAME/status says the
#       connector and its task are RUNNING, or fails with the log's tail.
#       --worker-prop sets a worker property (later ones win), e.g.
#       value.converter.schemas.enable=false
#   test/debezium/debezium.sh status DIR
#       print the connector's status JSON (GET /connectors/NAME/status)
#   test/debezium/debezium.sh stop DIR
#       stop it (SIGTERM: Connect commits its offsets) and wait for the exit
#
# The worker: JsonConverter for keys and values (schemas.enable=true, the
# converter's default), offset.flush.interval.ms=1000, plugin.discovery
# service_load (the plugins' manifests: 1.5 s where scanning takes 12 s).
# The connector's properties file is the caller's.
#
# Environment: KFDW_KAFKA_CACHE (as test/kafka.sh: default
# /var/cache/kafka_fdw as root, else ~/.cache/kafka_fdw),
# KFDW_DEBEZIUM_HEAP (default "-Xms64m -Xmx768m"), KFDW_DEBEZIUM_TIMEOUT
# (seconds start waits for RUNNING, default 180).

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$HERE/pom.xml
KAFKA_POM=$HERE/../kafka/pom.xml
PY=/usr/bin/python3

die() { printf 'debezium.sh: %s\n' "$*" >&2; exit 1; }

pom_property()
{
	sed -n "s:.*<$2>\(.*\)</$2>.*:\1:p" "$1" | head -1
}

debezium_version() { pom_property "$POM" debezium.version; }

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

# The cache directory of the pinned versions; fetches the jars if needed.
home_dir()
{
	local dir
	dir=$(cache_dir)/debezium-$(debezium_version)
	if [ ! -f "$dir/complete" ]; then
		fetch_all "$dir" >&2 || die "could not fetch Debezium into $dir"
	fi
	echo "$dir"
}

# mvn copy-dependencies of pom.xml's profile $1 into the new directory $2
fetch_profile()
{
	local profile=$1 out=$2 kv lv excl=()
	kv=$(pom_property "$KAFKA_POM" kafka.version)
	lv=$(pom_property "$KAFKA_POM" log4j.version)
	[ -n "$kv" ] && [ -n "$lv" ] || die "no kafka.version/log4j.version in $KAFKA_POM"
	# a plugin gets Kafka's API and SLF4J from the worker's class path
	[ "$profile" != runtime ] && excl=(-DexcludeGroupIds=org.apache.kafka,org.slf4j)
	# and the sink Jackson too: with a jackson-databind of its own, the
	# worker's jackson-datatype-jdk8 is "not a subtype" of its Module
	# (ServiceConfigurationError as the sink task starts)
	[ "$profile" = jdbc ] && excl=(-DexcludeGroupIds=org.apache.kafka,org.slf4j,com.fasterxml.jackson.core,com.fasterxml.jackson.datatype)
	mvn -q -B -s "$HERE/settings.xml" -f "$POM" -P "$profile" -Dkafka.version="$kv" -Dlog4j.version="$lv" \
		dependency:copy-dependencies -DincludeScope=runtime "${excl[@]}" \
		-DoutputDirectory="$out"
}

fetch_all()
{
	local dir=$1 tmp
	if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
		[ "$(id -u)" = 0 ] || die "java and mvn are missing (install default-jdk-headless and maven as root)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			default-jdk-headless maven >&2 || die "could not install the JDK and Maven"
	fi
	mkdir -p "$dir" || return 1
	tmp=$(mktemp -d "$dir/fetch.XXXXXX") || return 1
	echo "debezium.sh: fetching Debezium $(debezium_version) and Kafka Connect from Maven Central"
	if ! fetch_profile runtime "$tmp/runtime" >&2 ||
		! fetch_profile postgres "$tmp/plugins/postgres" >&2 ||
		! fetch_profile jdbc "$tmp/plugins/jdbc" >&2; then
		rm -rf "$tmp"
		return 1
	fi
	rm -rf "$dir/runtime" "$dir/plugins"
	mv "$tmp/runtime" "$dir/runtime" && mv "$tmp/plugins" "$dir/plugins" &&
		rmdir "$tmp" && chmod -R a+rX "$(cache_dir)" && touch "$dir/complete"
}

connector_name()
{
	sed -n 's/^[[:space:]]*name[[:space:]]*[=:][[:space:]]*\(.*[^[:space:]]\)[[:space:]]*$/\1/p' "$1" | tail -1
}

# GET $1 (a URL): prints the body, fails on an error or no answer
http_get()
{
	"$PY" - "$1" <<-'EOF'
	import sys, urllib.error, urllib.request
	try:
	    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
	        sys.stdout.write(r.read().decode())
	except urllib.error.HTTPError as e:
	    sys.stdout.write(e.read().decode(errors='replace'))
	    sys.exit(1)
	except Exception:
	    sys.exit(1)
	EOF
}

# Prints RUNNING when the connector and every task (at least one) run,
# FAILED when one of them failed, else what it is
status_word()
{
	"$PY" -c '
import sys, json
try:
    s = json.load(sys.stdin)
except Exception:
    print("NONE"); sys.exit(0)
states = [s.get("connector", {}).get("state")] + [t.get("state") for t in s.get("tasks", [])]
if "FAILED" in states: print("FAILED")
elif len(states) > 1 and all(x == "RUNNING" for x in states): print("RUNNING")
else: print("waiting:" + ",".join(str(x) for x in states))'
}

alive()
{
	[ -s "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null
}

fail_start()
{
	local dir=$1
	shift
	echo "debezium.sh: $*" >&2
	# the errors (one line each, with their causes), then the log's tail
	echo "--- errors in $dir/connect.log" >&2
	grep -E '^\[.*\] ERROR|^Caused by|^[a-z.]+(Exception|Error)' "$dir/connect.log" 2>/dev/null |
		grep -v CloudEventsConverter | cut -c1-400 | head -20 >&2
	echo "--- tail of $dir/connect.log" >&2
	grep -E '^\[' "$dir/connect.log" 2>/dev/null | tail -15 | cut -c1-400 >&2
	tail -5 "$dir/connect.out" 2>/dev/null | cut -c1-400 >&2
	cmd_stop "$dir"
	exit 1
}

cmd_start()
{
	local dir=$1 bootstrap= props= wprops=() home name p deadline url st
	shift
	while [ $# -gt 0 ]; do
		case $1 in
			--bootstrap) bootstrap=$2; shift 2 ;;
			--props) props=$2; shift 2 ;;
			--worker-prop) wprops+=("$2"); shift 2 ;;
			*) die "unknown argument $1" ;;
		esac
	done
	[ -n "$bootstrap" ] || die "start needs --bootstrap"
	[ -f "$props" ] || die "start needs --props FILE (a connector's properties)"
	name=$(connector_name "$props")
	[ -n "$name" ] || die "$props has no name="
	command -v "$PY" >/dev/null || die "$PY is missing"
	home=$(home_dir) || exit 1
	mkdir -p "$dir" || die "cannot create $dir"
	dir=$(cd "$dir" && pwd)
	alive "$dir" && die "$dir already runs Kafka Connect (debezium.sh stop $dir)"
	rm -f "$dir/pid" "$dir/rest"
	cp "$props" "$dir/connector.properties"
	echo "$name" >"$dir/name"
	cat >"$dir/worker.properties" <<-EOF
	# written by test/debezium/debezium.sh
	bootstrap.servers=$bootstrap
	key.converter=org.apache.kafka.connect.json.JsonConverter
	value.converter=org.apache.kafka.connect.json.JsonConverter
	offset.storage.file.filename=$dir/offsets
	offset.flush.interval.ms=1000
	listeners=http://127.0.0.1:0
	plugin.path=$home/plugins
	plugin.discovery=service_load
	EOF
	for p in "${wprops[@]}"; do
		case $p in *=*) ;; *) die "--worker-prop needs KEY=VALUE, not $p" ;; esac
		echo "$p" >>"$dir/worker.properties"
	done
	cat >"$dir/log4j2.properties" <<-EOF
	# written by test/debezium/debezium.sh
	status = warn
	appender.file.type = File
	appender.file.name = file
	appender.file.fileName = $dir/connect.log
	appender.file.layout.type = PatternLayout
	appender.file.layout.pattern = [%d] %p %m (%c)%n
	rootLogger.level = INFO
	rootLogger.appenderRef.file.ref = file
	EOF
	: >"$dir/connect.log"
	# A session of its own, and none of our descriptors but 0-2 (a lock
	# that flock(1) holds for the caller must not outlive the caller).
	# shellcheck disable=SC2016,SC2086  # $$/$0 are the inner shell's; HEAP is a list
	setsid -f bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; echo $$ >"$0"; exec "$@"' "$dir/pid" \
		java ${KFDW_DEBEZIUM_HEAP:--Xms64m -Xmx768m} -XX:+UseSerialGC \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$dir/log4j2.properties" \
		-cp "$home/runtime/*" org.apache.kafka.connect.cli.ConnectStandalone \
		"$dir/worker.properties" "$dir/connector.properties" \
		</dev/null >"$dir/connect.out" 2>&1
	for _ in $(seq 50); do
		[ -s "$dir/pid" ] && break
		sleep 0.1
	done
	[ -s "$dir/pid" ] || fail_start "$dir" "Kafka Connect did not start"
	deadline=$(( $(date +%s) + ${KFDW_DEBEZIUM_TIMEOUT:-180} ))
	url= st=
	while [ "$(date +%s)" -lt "$deadline" ]; do
		alive "$dir" || fail_start "$dir" "Kafka Connect exited"
		if [ -z "$url" ]; then
			url=$(sed -n 's|.*REST server listening at \(http://[^/,]*\)/.*|\1|p' "$dir/connect.log" | head -1)
			[ -n "$url" ] && echo "$url" >"$dir/rest"
		fi
		if [ -n "$url" ]; then
			st=$(http_get "$url/connectors/$name/status" | status_word)
			case $st in
				RUNNING) echo "REST $url"; return 0 ;;
				FAILED) echo "--- status" >&2
					http_get "$url/connectors/$name/status" >&2
					echo >&2
					fail_start "$dir" "connector $name FAILED" ;;
			esac
		fi
		sleep 0.2
	done
	fail_start "$dir" "connector $name not RUNNING in ${KFDW_DEBEZIUM_TIMEOUT:-180} s (${st:-no REST server})"
}

cmd_status()
{
	local dir=$1
	[ -s "$dir/rest" ] || die "no Kafka Connect REST server in $dir"
	http_get "$(cat "$dir/rest")/connectors/$(cat "$dir/name")/status"
	echo
}

cmd_stop()
{
	local dir=$1 pid
	[ -s "$dir/pid" ] || return 0
	pid=$(cat "$dir/pid")
	if kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq 300); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null
			for _ in $(seq 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
		fi
	fi
	rm -f "$dir/pid" "$dir/rest"
	return 0
}

[ $# -ge 1 ] || die "usage: test/debezium/debezium.sh fetch|start|status|stop DIR ..."
cmd=$1
shift
case $cmd in
	fetch) [ $# -eq 0 ] || die "usage: fetch"; home_dir ;;
	start) [ $# -ge 1 ] || die "usage: start DIR --bootstrap B --props FILE [--worker-prop K=V]..."
		cmd_start "$@" ;;
	status) [ $# -eq 1 ] || die "usage: status DIR"; cmd_status "$1" ;;
	stop) [ $# -eq 1 ] || die "usage: stop DIR"; cmd_stop "$1" ;;
	*) die "unknown command $cmd" ;;
esac
