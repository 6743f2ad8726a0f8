#!/bin/bash
#
# test/demo.sh: kafka_fdw end to end (the README's demo command)
#
# Installs the Debian packages it needs (as root), builds and installs
# kafka_fdw, starts the embedded Kafka broker and a throwaway PostgreSQL 15
# cluster (an unprivileged user, wal_level=logical, kafka_fdw preloaded),
# then runs test/demo.sql with psql: a server, a foreign table, INSERT into a
# topic, SELECT back, and a CDC stream of a table's changes.  Both stay
# running; it prints how to connect.
#
#   test/demo.sh          start (restarts a running demo)
#   test/demo.sh stop     stop the cluster and the broker, remove the files
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
# KFDW_DEMO_DIR (default /tmp/kafka_fdw_demo), KFDW_DEMO_KAFKA (mock, the
# default: the embedded broker, which starts in milliseconds; real: a
# 3-broker Apache Kafka cluster from test/kafka.sh).

set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=test/lib.sh
. "$REPO/test/lib.sh"

DEMO_DIR=${KFDW_DEMO_DIR:-/tmp/kafka_fdw_demo}
DEMO_DB=kafka_demo
# the topics the demo uses, NAME:PARTITIONS
DEMO_TOPICS=(demo_orders:3 demo.public.customers:3)

demo_stop()
{
	[ -d "$DEMO_DIR" ] || return 0
	WORK=$DEMO_DIR
	kfdw_set_user "$WORK"
	kfdw_pg_paths
	kfdw_stop_cluster
	kfdw_stop_broker
	kfdw_stop_real_kafka
	rm -rf "$DEMO_DIR"
}

if [ "${1:-}" = stop ]; then
	demo_stop
	echo "kafka_fdw demo stopped"
	exit 0
elif [ $# -gt 0 ]; then
	die "usage: test/demo.sh [stop]"
fi

DEMO_KAFKA=${KFDW_DEMO_KAFKA:-mock}
case $DEMO_KAFKA in mock | real) ;; *) die "KFDW_DEMO_KAFKA must be mock or real" ;; esac

kfdw_install_packages
[ "$DEMO_KAFKA" = real ] && kfdw_fetch_kafka
kfdw_build_install
demo_stop
kfdw_make_workdir "$DEMO_DIR"

if [ "$DEMO_KAFKA" = real ]; then
	say "starting a real Apache Kafka cluster (3 brokers, test/kafka.sh)"
	kfdw_start_real_kafka "${DEMO_TOPICS[@]}"
	BROKER_WHAT="Apache Kafka, 3 brokers, logs in $WORK/kafka/broker-*/server.log"
else
	say "starting the embedded Kafka broker"
	KFDW_DETACH=1 kfdw_start_broker "${DEMO_TOPICS[@]}"
	BROKER_WHAT="kafka_test_broker, pid $BROKER_PID"
fi
echo "broker at $KAFKA_BROKERS (topics: ${DEMO_TOPICS[*]})"

say "starting a PostgreSQL cluster (wal_level=logical, kafka_fdw preloaded)"
kfdw_start_cluster
as_user "$PGBIN/createdb" "$DEMO_DB" || die "createdb failed"
echo "cluster at 127.0.0.1 port $PGPORT, database $DEMO_DB"

say "running test/demo.sql"
as_user "$PGBIN/psql" -X --echo-queries -d "$DEMO_DB" -v brokers="$KAFKA_BROKERS" \
	-f "$WORK/test/demo.sql" 2>&1 | tee "$WORK/demo.out"
psql_status=${PIPESTATUS[0]}
# a failed step prints its error and the demo goes on; it fails at the end
errors=$(grep -c -E '^psql:.*(ERROR|FATAL|error):' "$WORK/demo.out")
[ "$psql_status" != 0 ] && [ "$errors" = 0 ] && errors=1

say "the messages in Kafka, read by an independent client (kcat)"
kcat -b "$KAFKA_BROKERS" -C -t demo_orders -e -q \
	-f 'partition %p offset %o key %k: %s\n' || errors=$((errors + 1))

say "the change events of table customers in Kafka (kcat): snapshot, insert, update, delete, tombstone"
kcat -b "$KAFKA_BROKERS" -C -t demo.public.customers -e -q -Z \
	-f 'partition %p offset %o key %k:\n  %s\n' || errors=$((errors + 1))

PSQL="psql -h 127.0.0.1 -p $PGPORT -U $(as_user id -un) -d $DEMO_DB"
# stopping needs the same directory: name it when it is not the default
STOP="$REPO/test/demo.sh stop"
[ -n "${KFDW_DEMO_DIR:-}" ] && STOP="KFDW_DEMO_DIR=$(printf %q "$KFDW_DEMO_DIR") $STOP"
cat <<MSG

==> the demo keeps running
  connect:     $PSQL
  broker:      $KAFKA_BROKERS ($BROKER_WHAT; e.g. kcat -b $KAFKA_BROKERS -L)
  files, logs: $WORK (postgres.log, broker.log)
  stop it:     $STOP
MSG

if [ "$errors" -gt 0 ]; then
	echo
	echo "ERROR: $errors demo step(s) failed (see the ERROR lines above)"
	exit 1
fi
