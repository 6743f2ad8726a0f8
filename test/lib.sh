# shellcheck shell=bash
# test/lib.sh: shared by test/run_tests.sh and test/demo.sh (sourced, not run)
#
# Installs the Debian packages kafka_fdw needs, builds and installs it, and
# starts/stops the throwaway pieces: an unprivileged OS user, a work
# directory it owns, the embedded Kafka broker and a PostgreSQL cluster.
#
# The caller sets REPO (the repository root) before sourcing this file.

KFDW_PACKAGES="postgresql-15 postgresql-server-dev-15 postgresql-client-15
	librdkafka-dev kcat libipc-run-perl python3-confluent-kafka make gcc perl"
# for real Kafka (test/kafka.sh): a JDK and Maven
KFDW_KAFKA_PACKAGES="default-jdk-headless maven"
# for the Debian package (test/debian_package.sh)
KFDW_DEB_PACKAGES="build-essential dpkg-dev debhelper fakeroot
	postgresql-server-dev-all"
KFDW_TEST_USER=${KFDW_TEST_USER:-kafka_fdw_test}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Install the missing Debian packages (as root), or name them and stop.
# The arguments name further packages to install.
kfdw_install_packages()
{
	local missing="" p
	for p in $KFDW_PACKAGES "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	[ "$(id -u)" = 0 ] || die "missing packages:$missing (install them as root)"
	say "installing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q || die "apt-get update failed"
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing ||
		die "apt-get install failed"
}

# Build with no compiler warnings allowed, install, build the test broker.
kfdw_build_install()
{
	[ -x "$PG_CONFIG" ] || die "PG_CONFIG $PG_CONFIG not found"
	local log
	log=$(mktemp)
	say "building kafka_fdw with $PG_CONFIG"
	make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" clean >/dev/null
	if ! make -C "$REPO" PG_CONFIG="$PG_CONFIG" >"$log" 2>&1; then
		cat "$log"; rm -f "$log"; die "build failed"
	fi
	if grep -q -i 'warning:' "$log"; then
		grep -i -B2 -A4 'warning:' "$log"; rm -f "$log"
		die "the build printed compiler warnings"
	fi
	rm -f "$log"
	make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" install >/dev/null ||
		die "make install failed"
	make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" test-broker >/dev/null ||
		die "building the test broker failed"
	kfdw_pg_paths
}

# Run a command as the unprivileged test user (as is, when not root).
# AS_USER execs the command (no fork), so "${AS_USER[@]}" cmd & gives cmd's
# own pid in $!.
AS_USER=()
as_user() { "${AS_USER[@]}" "$@"; }

# Set AS_USER for a work directory (also used by "demo.sh stop").
kfdw_set_user()
{
	if [ "$(id -u)" = 0 ]; then
		AS_USER=(setpriv --reuid="$KFDW_TEST_USER" --regid="$KFDW_TEST_USER"
			--init-groups env HOME="$1" USER="$KFDW_TEST_USER"
			LOGNAME="$KFDW_TEST_USER")
	fi
}

# The PostgreSQL the build uses.
kfdw_pg_paths()
{
	[ -x "$PG_CONFIG" ] || die "PG_CONFIG $PG_CONFIG not found"
	PGBIN=$("$PG_CONFIG" --bindir)
	PGPKGLIB=$("$PG_CONFIG" --pkglibdir)
	export PGPKGLIB
}

# Create the test user (when root) and a work directory it owns, holding a
# copy of what the tests read (the repository itself is left untouched).
# The argument is an absolute directory to create, or a prefix for a fresh
# one under /tmp.
kfdw_make_workdir()
{
	local where=$1
	if [ "$(id -u)" = 0 ] && ! id "$KFDW_TEST_USER" >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin \
			--user-group "$KFDW_TEST_USER" || die "cannot create user $KFDW_TEST_USER"
	fi
	if [ "${where#/}" != "$where" ]; then
		WORK=$where
		mkdir -p "$WORK" || die "cannot create $WORK"
		chmod 755 "$WORK"
	else
		WORK=$(mktemp -d "/tmp/$where.XXXXXX") || die "mktemp failed"
	fi
	kfdw_set_user "$WORK"
	cp -r "$REPO/test" "$WORK/test"
	cp "$REPO/Makefile" "$WORK/Makefile"  # make installcheck, prove_installcheck
	[ -d "$REPO/sql" ] && cp -r "$REPO/sql" "$WORK/sql"
	[ -d "$REPO/expected" ] && cp -r "$REPO/expected" "$WORK/expected"
	if [ "$(id -u)" = 0 ]; then
		chown -R "$KFDW_TEST_USER:" "$WORK"
	fi
}

# A TCP port nobody listens on now.
kfdw_free_port()
{
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
			LocalPort => 0, ReuseAddr => 0) or die "no free port: $!";
		print $s->sockport, "\n";'
}

# Start the embedded broker in the background (immune to hangups, stdin
# from /dev/null) with the topics given as NAME:PARTITIONS arguments; sets
# BROKER_PID and KAFKA_BROKERS.  With KFDW_DETACH=1 it gets a session of its
# own, so that it outlives the script and its process group (the demo).
kfdw_start_broker()
{
	local args=() t
	for t in "$@"; do args+=(--topic "$t"); done
	args=("$WORK/test/kafka_test_broker" --brokers "${KFDW_BROKERS:-1}"
		--ready-file "$WORK/broker.ready" "${args[@]}")
	rm -f "$WORK/broker.ready" "$WORK/broker.pid"
	if [ -n "${KFDW_DETACH:-}" ]; then
		# shellcheck disable=SC2016  # $$ and $0 belong to the inner shell
		"${AS_USER[@]}" setsid -f sh -c 'echo $$ >"$0"; exec nohup "$@"' \
			"$WORK/broker.pid" "${args[@]}" \
			</dev/null >"$WORK/broker.out" 2>"$WORK/broker.log"
		for _ in $(seq 100); do
			[ -s "$WORK/broker.pid" ] && break
			sleep 0.1
		done
		BROKER_PID=$(cat "$WORK/broker.pid" 2>/dev/null)
	else
		"${AS_USER[@]}" nohup "${args[@]}" \
			</dev/null >"$WORK/broker.out" 2>"$WORK/broker.log" &
		BROKER_PID=$!
		echo "$BROKER_PID" >"$WORK/broker.pid"
	fi
	[ -n "$BROKER_PID" ] || die "the broker did not start"
	for _ in $(seq 600); do
		[ -s "$WORK/broker.ready" ] && break
		kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/broker.log"; die "the broker did not start"; }
		sleep 0.1
	done
	[ -s "$WORK/broker.ready" ] || die "the broker did not start in 60 s"
	KAFKA_BROKERS=$(cat "$WORK/broker.ready")
	export KAFKA_BROKERS
}

# Stop the broker: SIGTERM, then wait (at most 10 s) until it is gone.
kfdw_stop_broker()
{
	local pid=${BROKER_PID:-}
	[ -z "$pid" ] && [ -f "$WORK/broker.pid" ] && pid=$(cat "$WORK/broker.pid")
	[ -n "$pid" ] || return 0
	if kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	BROKER_PID=
	rm -f "$WORK/broker.pid"
}

# Fetch the jars of real Kafka (test/kafka.sh) and of Debezium
# (test/debezium/debezium.sh) into a cache every user can read; sets and
# exports KFDW_KAFKA_CACHE for the unprivileged runs.
kfdw_fetch_kafka()
{
	if [ -z "${KFDW_KAFKA_CACHE:-}" ]; then
		if [ "$(id -u)" = 0 ]; then
			KFDW_KAFKA_CACHE=/var/cache/kafka_fdw
		else
			KFDW_KAFKA_CACHE=${HOME:-/tmp}/.cache/kafka_fdw
		fi
	fi
	export KFDW_KAFKA_CACHE
	if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
		# shellcheck disable=SC2086
		kfdw_install_packages $KFDW_KAFKA_PACKAGES
	fi
	"$REPO/test/kafka.sh" fetch >/dev/null || die "could not fetch Apache Kafka"
	# the Debezium reference (tests 409, 410) runs as the test user, who
	# cannot write the cache
	"$REPO/test/debezium/debezium.sh" fetch >/dev/null || die "could not fetch Debezium"
}

# Start a real Kafka cluster (test/kafka.sh, 3 brokers) in $WORK/kafka as the
# test user with the topics given as NAME:PARTITIONS arguments; sets and
# exports KAFKA_BROKERS.
kfdw_start_real_kafka()
{
	local args=() t out
	for t in "$@"; do args+=(--topic "$t"); done
	mkdir -p "$WORK/kafka"
	[ "$(id -u)" = 0 ] && chown "$KFDW_TEST_USER:" "$WORK/kafka"
	out=$(as_user env KFDW_KAFKA_CACHE="$KFDW_KAFKA_CACHE" \
		"$WORK/test/kafka.sh" start "$WORK/kafka" "${args[@]}") ||
		die "real Kafka did not start"
	KAFKA_BROKERS=$(echo "$out" | sed -n 's/^BOOTSTRAP //p')
	[ -n "$KAFKA_BROKERS" ] || die "real Kafka printed no bootstrap servers"
	export KAFKA_BROKERS
}

kfdw_stop_real_kafka()
{
	[ -f "$WORK/kafka/brokers" ] || return 0
	as_user "$WORK/test/kafka.sh" stop "$WORK/kafka"
}

# initdb and start a cluster in $WORK/data: wal_level=logical, kafka_fdw
# preloaded, a free port, its socket in $WORK.  Sets PGHOST and PGPORT.
kfdw_start_cluster()
{
	as_user "$PGBIN/initdb" -D "$WORK/data" -A trust -N -E UTF8 \
		--locale=C >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log"; die "initdb failed"; }
	cat >>"$WORK/data/postgresql.conf" <<-EOF

	# kafka_fdw throwaway cluster
	listen_addresses = '127.0.0.1'
	unix_socket_directories = '$WORK'
	wal_level = logical
	shared_preload_libraries = 'kafka_fdw'
	max_replication_slots = 10
	max_wal_senders = 10
	max_worker_processes = 16
	fsync = off
	EOF
	for _ in 1 2 3 4 5; do
		PGPORT=$(kfdw_free_port)
		echo "port = $PGPORT" >"$WORK/data/port.conf"
		grep -q "^include_if_exists = 'port.conf'" "$WORK/data/postgresql.conf" ||
			echo "include_if_exists = 'port.conf'" >>"$WORK/data/postgresql.conf"
		if as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" \
			-w -t 60 start >/dev/null; then
			PGHOST=$WORK
			export PGHOST PGPORT
			return 0
		fi
	done
	cat "$WORK/postgres.log"
	die "the cluster did not start"
}

kfdw_stop_cluster()
{
	[ -f "$WORK/data/postmaster.pid" ] || return 0
	as_user "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1
}
