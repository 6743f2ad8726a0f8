#!/bin/bash
#
# test/run_tests.sh: run every kafka_fdw test (the README's test command)
#
# A thin wrapper around PGXS's own test targets.  Installs the Debian
# packages it needs (as root), builds kafka_fdw (no compiler warnings
# allowed), installs it and starts a throwaway PostgreSQL cluster as an
# unprivileged user.  Then, on each Kafka backend, starts the broker(s) and
# runs "make installcheck" (pg_regress over sql/*.sql) and "make
# prove_installcheck" (each test/t/*.pl): first on the embedded mock broker
# (fast, injects faults), then on a real 3-broker Apache Kafka cluster
# (test/kafka.sh; its jars come from Maven Central).  Last, it builds the
# Debian package and installs it (test/debian_package.sh).  Stops what it
# started and exits non-zero on any failure.  The last line it prints is
# "N passed, N failed", counting every run.
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
# KFDW_TEST_USER (default kafka_fdw_test, used when run as root),
# KFDW_TEST_KAFKA=both (default), mock or real: the backends to run on,
# KFDW_TEST_BOOTSTRAP=host:port,...: run pg_regress on that existing
# cluster instead (it deletes and recreates the topics of
# test/regress_topics.txt there; TAP tests are skipped),
# KFDW_KEEP=1 keeps the work directory.
#
# Arguments (optional): names of pg_regress tests or TAP files to run only
# those, or debian_package, e.g. "test/run_tests.sh options 001_broker.pl".

set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=test/lib.sh
. "$REPO/test/lib.sh"

# The topics pg_regress tests need: one NAME:PARTITIONS per line.
REGRESS_TOPICS_FILE=$REPO/test/regress_topics.txt

passed=0
failed=0
summary_printed=

# Stop what we started; keep the work directory after a failure.
stop_all()
{
	local status=$1
	[ -n "${WORK:-}" ] || return 0
	kfdw_stop_cluster
	kfdw_stop_broker
	kfdw_stop_real_kafka
	if [ "$status" = 0 ] && [ -z "${KFDW_KEEP:-}" ]; then
		rm -rf "$WORK"
	else
		echo "work directory kept: $WORK"
	fi
	WORK=
}

# On any exit: stop everything; the summary line is always the last line.
# shellcheck disable=SC2317  # run by the EXIT trap
on_exit()
{
	local status=$1
	set +e
	stop_all "$status"
	if [ -z "$summary_printed" ]; then
		[ "$status" != 0 ] && [ "$failed" = 0 ] && failed=1
		echo "$passed passed, $failed failed"
	fi
}
trap 'on_exit $?' EXIT
trap 'exit 130' INT TERM

case ${KFDW_TEST_KAFKA:-both} in
	both) backends=(mock real) ;;
	mock) backends=(mock) ;;
	real) backends=(real) ;;
	*) die "KFDW_TEST_KAFKA must be both, mock or real" ;;
esac
# an existing cluster instead: pg_regress only (TAP tests crash and restart
# brokers, which only a cluster of their own allows)
[ -n "${KFDW_TEST_BOOTSTRAP:-}" ] && backends=(external)

# what to run: every test, or those named (debian_package is
# test/debian_package.sh)
regress_tests=()
tap_tests=()
debian_test=1
for f in "$REPO"/sql/*.sql; do
	[ -e "$f" ] && regress_tests+=("$(basename "$f" .sql)")
done
for f in "$REPO"/test/t/*.pl; do
	[ -e "$f" ] && tap_tests+=("$(basename "$f")")
done
if [ $# -gt 0 ]; then
	sel_r=() sel_t=() debian_test=
	for a in "$@"; do
		a=$(basename "$a")
		for t in "${regress_tests[@]}"; do [ "$t" = "${a%.sql}" ] && sel_r+=("$t"); done
		for t in "${tap_tests[@]}"; do [ "$t" = "$a" ] && sel_t+=("$t"); done
		[ "${a%.sh}" = debian_package ] && debian_test=1
	done
	regress_tests=("${sel_r[@]}")
	tap_tests=("${sel_t[@]}")
	[ $((${#regress_tests[@]} + ${#tap_tests[@]})) -gt 0 ] || [ -n "$debian_test" ] ||
		die "no test named: $*"
fi

if [ -n "$debian_test" ]; then
	# shellcheck disable=SC2086
	kfdw_install_packages $KFDW_DEB_PACKAGES
else
	kfdw_install_packages
fi
some_suite=$((${#regress_tests[@]} + ${#tap_tests[@]}))
if [ "$some_suite" -gt 0 ]; then
	for b in "${backends[@]}"; do [ "$b" = real ] && kfdw_fetch_kafka; done
fi
kfdw_build_install
kfdw_make_workdir kafka_fdw_test

topics=()
if [ -f "$REGRESS_TOPICS_FILE" ]; then
	while read -r line; do
		line=${line%%#*}
		line=$(echo "$line" | tr -d '[:space:]')
		[ -n "$line" ] && topics+=("$line")
	done <"$REGRESS_TOPICS_FILE"
fi

# "make installcheck" (pg_regress only: TAP_TESTS= leaves the TAP tests to
# run_tap) against the running cluster and the broker in $KAFKA_BROKERS, in a
# directory of the test user; $1 names the backend (mock or real)
run_regress()
{
	local backend=$1 out=$WORK/regress-$1 ok bad missing
	say "pg_regress on $backend Kafka: ${regress_tests[*]}"
	mkdir -p "$out"
	[ "$(id -u)" = 0 ] && chown "$KFDW_TEST_USER:" "$out"
	as_user env KAFKA_BROKERS="$KAFKA_BROKERS" PGHOST="$PGHOST" PGPORT="$PGPORT" \
		KFDW_TEST_KAFKA="$backend" \
		make -s --no-print-directory -C "$out" -f "$WORK/Makefile" \
		PG_CONFIG="$PG_CONFIG" TAP_TESTS= REGRESS="${regress_tests[*]}" \
		installcheck 2>&1 | tee "$out/output.txt"
	# "test x ... ok" (PostgreSQL 15) or "ok 1 - x" (16 and later)
	ok=$(grep -c -E '\.\.\. ok|^ok [0-9]+ ' "$out/output.txt")
	bad=$(grep -c -E '\.\.\. (FAILED|failed)|^not ok [0-9]+ ' "$out/output.txt")
	# a test that never reported counts as failed
	missing=$(( ${#regress_tests[@]} - ok - bad ))
	[ "$missing" -gt 0 ] && bad=$((bad + missing))
	passed=$((passed + ok))
	failed=$((failed + bad))
	if [ "$bad" -gt 0 ] && [ -f "$out/regression.diffs" ]; then
		say "regression.diffs ($backend Kafka)"
		cat "$out/regression.diffs"
	fi
}

# Every TAP test on backend $1, one "make prove_installcheck" each, so that
# each keeps its logs in a directory of its own (TESTDIR, the make
# directory); each starts its own clusters and brokers.
run_tap()
{
	local backend=$1 t tdir log
	mkdir -p "$WORK/tap-$backend"
	[ "$(id -u)" = 0 ] && chown "$KFDW_TEST_USER:" "$WORK/tap-$backend"
	for t in "${tap_tests[@]}"; do
		say "TAP on $backend Kafka: $t"
		tdir=$WORK/tap-$backend/${t%.pl}
		mkdir -p "$tdir"
		[ "$(id -u)" = 0 ] && chown "$KFDW_TEST_USER:" "$tdir"
		if as_user env KFDW_TEST_KAFKA="$backend" \
			KAFKA_TEST_BROKER="$WORK/test/kafka_test_broker" \
			KFDW_KAFKA_CACHE="${KFDW_KAFKA_CACHE:-}" \
			make -s --no-print-directory -C "$tdir" -f "$WORK/Makefile" \
			PG_CONFIG="$PG_CONFIG" PROVE_TESTS="test/t/$t" prove_installcheck; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			for log in "$tdir"/tmp_check/log/*; do
				[ -f "$log" ] || continue
				say "$log"
				cat "$log"
			done
		fi
	done
}

# The Debian package (test/debian_package.sh): built from this tree,
# installed, CREATE EXTENSION on a clean cluster; it puts back the files
# "make install" had installed.  Run last, once, as it replaces them for
# its duration.
run_debian()
{
	say "Debian package: build, install, CREATE EXTENSION"
	if "$REPO/test/debian_package.sh"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
}

if [ "$some_suite" -gt 0 ]; then
	say "starting a throwaway cluster"
	kfdw_start_cluster
	echo "cluster at host $PGHOST port $PGPORT"
else
	backends=()
fi

for backend in "${backends[@]}"; do
	# the TAP tests start brokers of their own
	if [ ${#regress_tests[@]} = 0 ] && [ "$backend" != external ]; then
		run_tap "$backend"
		continue
	fi
	if [ "$backend" = external ]; then
		[ ${#regress_tests[@]} = 0 ] && { say "TAP tests skipped: they need clusters of their own"; break; }
		say "existing Kafka cluster $KFDW_TEST_BOOTSTRAP: recreating the topics ${topics[*]:-none}"
		KAFKA_BROKERS=$KFDW_TEST_BOOTSTRAP
		export KAFKA_BROKERS
		for t in "${topics[@]}"; do
			/usr/bin/python3 "$REPO/test/kafka/admin.py" "$KAFKA_BROKERS" drop "${t%%:*}" &&
				/usr/bin/python3 "$REPO/test/kafka/admin.py" "$KAFKA_BROKERS" topic "${t%%:*}" "${t#*:}" 0 ||
				die "could not recreate topic ${t%%:*} on $KAFKA_BROKERS"
		done
	elif [ "$backend" = mock ]; then
		say "starting the embedded broker (topics: ${topics[*]:-none})"
		kfdw_start_broker "${topics[@]}"
	else
		say "starting a real Kafka cluster, 3 brokers (topics: ${topics[*]:-none})"
		kfdw_start_real_kafka "${topics[@]}"
	fi
	echo "$backend Kafka at $KAFKA_BROKERS"
	run_regress "$backend"
	if [ "$backend" = mock ]; then
		kfdw_stop_broker
	elif [ "$backend" = real ]; then
		kfdw_stop_real_kafka
	fi
	if [ "$backend" = external ]; then
		[ ${#tap_tests[@]} -gt 0 ] && say "TAP tests skipped: they need clusters of their own"
	else
		[ ${#tap_tests[@]} -gt 0 ] && run_tap "$backend"
	fi
done
[ -n "$debian_test" ] && run_debian

status=0
[ "$failed" = 0 ] || status=1
stop_all "$status"
echo
echo "$passed passed, $failed failed"
summary_printed=1
exit "$status"
