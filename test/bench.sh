#!/bin/bash
#
# test/bench.sh: kafka_fdw's performance figures, side by side with kcat and
# pg_recvlogical (the README's benchmark command)
#
# Installs the Debian packages it needs (as root), builds and installs
# kafka_fdw, starts the embedded Kafka broker and a throwaway PostgreSQL
# cluster (as test/run_tests.sh does), loads the data and measures, in one
# run, each figure against its reference, best of three:
#
#   1. scan:        SELECT count(*) over 600,000 keyed JSON messages (~75 bytes,
#                   32 partitions)          vs  kcat -C -e to /dev/null
#   2. parsed scan: SELECT sum(amount) over the same topic as a 4-column json
#                   table                   vs  the same kcat run
#   3. publish:     INSERT ... SELECT FROM generate_series(1, 600000), json
#                                           vs  kcat -P of the same values
#   4. CDC throughput: one transaction of 200,000 rows, COMMIT to the last
#                   acknowledgement         vs  pg_recvlogical (pgoutput) to
#                                               the commit's LSN; twice: in
#                   the default schema/payload form (4a) and with
#                   {"schemas.enable": false}, the payload alone (4b), each
#                   by its own stream and table
#   5. CDC latency: 5,000 rows/s in 10-row transactions for 30 s, commit to
#                   broker (p50, p99)
#   6. memory:      peak RSS (VmHWM) of the backend in each of the above, and
#                   of the CDC worker during a 1,000,000-row transaction
#   7-10. ingest:   streams (kafka_fdw.ingest_create) of 1,000,000 JSON
#                   messages into a typed table, append (7) and upsert (8),
#                   vs kcat -C | psql COPY into a jsonb column; latency at
#                   5,000 messages/s (9); the worker's peak RSS (10): see
#                   test/bench/ingest.sh
#
# With KFDW_BENCH_KAFKA=real, on a real 3-broker Apache Kafka cluster
# (test/kafka.sh; replication factor 3, acks=all) instead of the embedded
# broker, with Kafka's own tools as further references on the same cluster:
# kafka-consumer-perf-test (org.apache.kafka.tools.ConsumerPerformance) for
# the scans and kafka-producer-perf-test (ProducerPerformance, the same
# record count and size, acks=all) for the publish figure.
#
# and prints a table: figure | kafka_fdw | reference | ratio
# (reference/kafka_fdw, higher is better) | target | peak RSS.  A feature
# that has not landed gives "n/a (feature missing: ...)" and the run goes on.
# It reports numbers and does not judge them: the exit status is 0 unless
# something broke (a build, a wrong result, a step that failed).
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
# KFDW_TEST_USER (default kafka_fdw_test, used when run as root),
# KFDW_KEEP=1 keeps the work directory, KFDW_BENCH_ROWS (600000),
# KFDW_BENCH_CDC_ROWS (200000), KFDW_BENCH_MEM_ROWS (1000000),
# KFDW_BENCH_KAFKA (mock, the default, or real),
# KFDW_BENCH_RATE (rows/s, 5000), KFDW_BENCH_SECONDS (30): smaller sizes for
# a quick try (the figures are then not the README's); KFDW_BENCH_ONLY: some
# of "scan publish cdc ingest" (default all four; the ingest sizes are in
# test/bench/ingest.sh); KFDW_BENCH_SERVER_OPTIONS: more
# options for the server, to try a setting, e.g.
# "\"queued.max.messages.kbytes\" '65536'".
#
# IDENTIFICATION
#		  test/bench.sh

set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=test/lib.sh
. "$REPO/test/lib.sh"

ROWS=${KFDW_BENCH_ROWS:-600000}
CDC_ROWS=${KFDW_BENCH_CDC_ROWS:-200000}
MEM_ROWS=${KFDW_BENCH_MEM_ROWS:-1000000}
LAT_RATE=${KFDW_BENCH_RATE:-5000}
LAT_SECONDS=${KFDW_BENCH_SECONDS:-30}
LAT_TXN_ROWS=10					# rows per transaction in the latency run
RUNS=3
PARTS=32
LAT_PARTS=4					# the latency topic: see the README
DB=kafka_bench
PY=/usr/bin/python3				# Debian's, which has python3-confluent-kafka
PROBE=$REPO/test/bench/kafka_probe.py
# shellcheck source=test/bench/ingest.sh
. "$REPO/test/bench/ingest.sh"

# every topic, created with the broker (the mock has no CreateTopics)
TOPICS=("bench_scan:$PARTS" "bench_small:$PARTS" "bench.public.cdc_t:$PARTS" "bench.public.cdc_ns:$PARTS" "bench.public.lat_t:$LAT_PARTS" "${ING_TOPICS[@]}")
for i in $(seq $RUNS); do
	TOPICS+=("bench_pub_$i:$PARTS" "bench_kcat_$i:$PARTS" "bench_perf_$i:$PARTS")
done
KAFKA_KIND=${KFDW_BENCH_KAFKA:-mock}
case $KAFKA_KIND in mock | real) ;; *) die "KFDW_BENCH_KAFKA must be mock or real" ;; esac

# the table
T_FIG=() T_OURS=() T_REF=() T_RATIO=() T_TARGET=() T_RSS=()
NOTES=()
broken=0

row()
{
	T_FIG+=("$1") T_OURS+=("$2") T_REF+=("$3") T_RATIO+=("$4")
	T_TARGET+=("$5") T_RSS+=("$6")
}
note() { NOTES+=("$*"); echo "   $*"; }
broke() { broken=1; note "FAILED: $*"; }

now_ms() { date +%s%3N; }
CLK_TCK=$(getconf CLK_TCK)
ms_s() { awk -v m="$1" 'BEGIN { printf "%.2f s", m / 1000 }'; }
kb_mb() { [ -n "$1" ] && awk -v k="$1" 'BEGIN { printf "%.0f MB", k / 1024 }' || echo "n/a"; }
ratio() { awk -v r="$1" -v o="$2" 'BEGIN { if (o > 0) printf "%.2f", r / o; else print "n/a" }'; }
min_of() { printf '%s\n' "$@" | sort -g | head -1; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null; }

psql_q() { as_user "$PGBIN/psql" -X -At -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

# Run the SQL statements given as arguments in one new session, each timed
# by psql; sets SQL_MS (the best time), SQL_CPU_MS (the least CPU time the
# backend, all its threads, spent on one of them), SQL_RESULTS (one output
# line per statement) and SQL_HWM_KB (the backend's peak RSS over the
# session).
run_sql_timed()
{
	local f=$WORK/timed.sql out=$WORK/timed.out s times cpu i
	local cpu_line='\! awk '"'"'{ print "CPU:", $14 + $15 }'"'"' /proc/$BENCH_PID/stat'
	{
		echo 'SELECT pg_backend_pid() AS bench_pid \gset'
		echo '\setenv BENCH_PID :bench_pid'
		[ -n "${SQL_SETUP:-}" ] && echo "\\set QUIET on
$SQL_SETUP;
\\set QUIET off"
		echo '\timing on'
		for s in "$@"; do
			echo "$cpu_line"
			echo "$s;"
		done
		echo "$cpu_line"
		echo '\timing off'
		echo '\! grep VmHWM /proc/$BENCH_PID/status'
	} >"$f"
	[ "$(id -u)" = 0 ] && chown "$KFDW_TEST_USER:" "$f"
	SQL_MS='' SQL_CPU_MS='' SQL_RESULTS=() SQL_HWM_KB=''
	if ! as_user env SHELL=/bin/sh "$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 \
		-d "$DB" -f "$f" >"$out" 2>&1; then
		SQL_ERROR=$(grep -m1 -E 'ERROR|FATAL|error' "$out")
		return 1
	fi
	mapfile -t times < <(awk '/^Time:/ { print $2 }' "$out")
	SQL_MS=$(min_of "${times[@]}")
	# CPU ticks before and after each statement
	mapfile -t cpu < <(awk '/^CPU:/ { print $2 }' "$out")
	times=()
	for ((i = 1; i < ${#cpu[@]}; i++)); do
		times+=($(( (cpu[i] - cpu[i - 1]) * 1000 / CLK_TCK )))
	done
	[ ${#times[@]} -gt 0 ] && SQL_CPU_MS=$(min_of "${times[@]}")
	mapfile -t SQL_RESULTS < <(grep -v -E '^(Time:|VmHWM:|CPU:|Timing is)' "$out")
	SQL_HWM_KB=$(awk '/^VmHWM:/ { print $2 }' "$out")
}

# Time a command (stdout to /dev/null); sets CMD_MS, and CMD_CPU_MS (user
# plus system time) when /usr/bin/time is there.
time_cmd()
{
	local t0 t1
	CMD_CPU_MS=''
	t0=$(now_ms)
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%U %S' -o "$WORK/cmd.cpu" "$@" >/dev/null || return 1
	else
		"$@" >/dev/null || return 1
	fi
	t1=$(now_ms)
	CMD_MS=$((t1 - t0))
	[ -s "$WORK/cmd.cpu" ] &&
		CMD_CPU_MS=$(awk '{ printf "%.0f", ($1 + $2) * 1000 }' "$WORK/cmd.cpu")
	rm -f "$WORK/cmd.cpu"
}

# The size of a topic: sets TC_HIGH (sum of the high watermarks: every
# message appended) and TC_MAXLOW (the highest low watermark: 0 unless
# retention dropped messages).
topic_count()
{
	local out
	TC_HIGH='' TC_MAXLOW=''
	out=$("$PY" "$PROBE" watermarks "$KAFKA_BROKERS" "$1") || return 1
	read -r _ _ TC_HIGH TC_MAXLOW <<<"$out"
}

has_code() { grep -q -E "$1" "$REPO"/src/*.c "$REPO"/src/*/*.c 2>/dev/null; }

cleanup()
{
	local status=$1
	set +e
	[ -n "${LAT_PID:-}" ] && kill "$LAT_PID" 2>/dev/null
	[ -n "${WORK:-}" ] || return
	kfdw_stop_cluster
	kfdw_stop_broker
	kfdw_stop_real_kafka
	if [ "$status" = 0 ] && [ "$broken" = 0 ] && [ -z "${KFDW_KEEP:-}" ]; then
		rm -rf "$WORK"
	else
		echo "work directory kept: $WORK"
	fi
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT TERM

#
# Setup
#
kfdw_install_packages
[ -x "$PY" ] && "$PY" -c 'import confluent_kafka' 2>/dev/null ||
	die "$PY with confluent_kafka (python3-confluent-kafka) is needed"
[ "$KAFKA_KIND" = real ] && kfdw_fetch_kafka
kfdw_build_install
kfdw_make_workdir kafka_fdw_bench

if [ "$KAFKA_KIND" = real ]; then
	say "starting a real Kafka cluster: 3 brokers, replication factor 3 ($PARTS partitions per topic)"
	kfdw_start_real_kafka "${TOPICS[@]}"
else
	say "starting the embedded broker ($PARTS partitions per topic)"
	kfdw_start_broker "${TOPICS[@]}"
fi
echo "$KAFKA_KIND Kafka at $KAFKA_BROKERS"

# Run one of Kafka's Java tools on the real cluster (test/kafka.sh tool);
# its output goes to $WORK/tool.out; sets CMD_MS (wall time, JVM start
# included).
kafka_tool()
{
	local t0
	t0=$(now_ms)
	as_user "$WORK/test/kafka.sh" tool "$WORK/kafka" "$@" >"$WORK/tool.out" 2>&1 ||
		{ tail -5 "$WORK/tool.out"; return 1; }
	CMD_MS=$(( $(now_ms) - t0 ))
}

say "starting a throwaway cluster"
kfdw_start_cluster
as_user "$PGBIN/createdb" "$DB" || die "createdb failed"
psql_q <<-EOF || die "setting up the database failed"
	ALTER SYSTEM SET autovacuum = off;
	ALTER SYSTEM SET max_wal_size = '4GB';
	SELECT pg_reload_conf();
	CREATE EXTENSION kafka_fdw;
	CREATE SERVER bench_kafka FOREIGN DATA WRAPPER kafka_fdw
	  OPTIONS (brokers '$KAFKA_BROKERS'${KFDW_BENCH_SERVER_OPTIONS:+, $KFDW_BENCH_SERVER_OPTIONS});
	CREATE USER MAPPING FOR PUBLIC SERVER bench_kafka;
EOF
echo "cluster at host $PGHOST port $PGPORT, database $DB"

# the values: keyed JSON, about 75 bytes, the same for kcat and INSERT
DATA=$WORK/values.tsv
awk -v n="$ROWS" 'BEGIN {
	for (i = 1; i <= n; i++)
		printf "%d\t{\"id\":%d,\"customer_id\":%d,\"amount\":%.2f,\"note\":\"bench order %d\"}\n",
			i, i, i % 1000, (i * 7919 % 100000) / 100, i
}' >"$DATA"
[ "$(id -u)" = 0 ] && chown "$KFDW_TEST_USER:" "$DATA"
# the same rows in SQL
GEN_SQL="SELECT i::text, i, (i % 1000)::int, round((i * 7919 % 100000) / 100.0, 2), 'bench order ' || i FROM generate_series(1::bigint, $ROWS) i"
avg_bytes=$(awk -F'\t' '{ s += length($2) } END { printf "%.0f", s / NR }' "$DATA")

want() { [[ " ${KFDW_BENCH_ONLY:-scan publish cdc ingest} " == *" $1 "* ]]; }

#
# 1, 2: scans
#
if want scan; then
say "loading $ROWS messages (average value $avg_bytes bytes) into bench_scan with kcat"
kcat -P -b "$KAFKA_BROKERS" -t bench_scan -K $'\t' -l "$DATA" || die "kcat -P failed"
topic_count bench_scan || die "reading watermarks failed"
[ "$TC_HIGH" = "$ROWS" ] || die "bench_scan holds $TC_HIGH messages, not $ROWS"
[ "$TC_MAXLOW" = 0 ] || die "retention dropped messages of bench_scan (a low watermark is $TC_MAXLOW)"
echo "   $ROWS messages in $PARTS partitions, every low watermark 0"

say "reference: kcat -C -e -q -o beginning -t bench_scan > /dev/null"
got=$(kcat -C -b "$KAFKA_BROKERS" -t bench_scan -e -q -o beginning | wc -l)
[ "$got" = "$ROWS" ] || broke "kcat read $got messages, not $ROWS"
kcat_ms=() kcat_cpu=()
for i in $(seq $RUNS); do
	time_cmd kcat -C -b "$KAFKA_BROKERS" -t bench_scan -e -q -o beginning ||
		{ broke "kcat -C failed"; break; }
	kcat_ms+=("$CMD_MS")
	kcat_cpu+=("${CMD_CPU_MS:-0}")
	echo "   run $i: $(ms_s "$CMD_MS")"
done
KCAT_SCAN_MS=$(min_of "${kcat_ms[@]}")
KCAT_SCAN_CPU_MS=$(min_of "${kcat_cpu[@]}")

# kcat's fixed cost: the same command on a topic of 1,000 of the messages
# (at the end it waits for the fetch in flight, up to fetch.wait.max.ms)
head -1000 "$DATA" | kcat -P -b "$KAFKA_BROKERS" -t bench_small -K $'\t' ||
	die "kcat -P failed"
kcat_ms=()
for i in $(seq $RUNS); do
	time_cmd kcat -C -b "$KAFKA_BROKERS" -t bench_small -e -q -o beginning ||
		{ broke "kcat -C failed"; break; }
	kcat_ms+=("$CMD_MS")
done
KCAT_FIXED_MS=$(min_of "${kcat_ms[@]}")
note "kcat -C -e reads a 1,000-message $PARTS-partition topic in $(ms_s "$KCAT_FIXED_MS") (mostly its fixed cost)"

psql_q <<-EOF || die "creating the scan table failed"
	CREATE FOREIGN TABLE bench_scan (
	  k text OPTIONS (key 'true'),
	  id bigint, customer_id int, amount numeric, note text
	) SERVER bench_kafka OPTIONS (topic 'bench_scan', format 'json');
EOF
expected_sum=$(psql_q -c "SELECT sum(round((i * 7919 % 100000) / 100.0, 2)) FROM generate_series(1::bigint, $ROWS) i")

# scan_figure LABEL SQL EXPECTED TARGET [SETUP]: SETUP runs first in the
# session, untimed.
scan_figure()
{
	local label=$1 sql=$2 expected=$3 target=$4 r plan
	local SQL_SETUP=${5:-}
	say "kafka_fdw: $sql (x$RUNS${SQL_SETUP:+, after $SQL_SETUP})"
	if ! has_code 'GetForeignRelSize[[:space:]]*='; then
		row "$label" "n/a (feature missing: SELECT)" "$(ms_s "$KCAT_SCAN_MS")" "n/a" "$target" "n/a"
		note "$label: SELECT has not landed"
		return
	fi
	if ! run_sql_timed "$sql" "$sql" "$sql"; then
		row "$label" "n/a (failed)" "$(ms_s "$KCAT_SCAN_MS")" "n/a" "$target" "n/a"
		broke "$label: $SQL_ERROR"
		return
	fi
	for r in "${SQL_RESULTS[@]}"; do
		[ "$r" = "$expected" ] || broke "$label returned $r, not $expected"
	done
	echo "   best $(ms_s "$SQL_MS"), peak RSS $(kb_mb "$SQL_HWM_KB")"
	plan=$(psql_q <<-EOF | grep -o -m1 'Workers Planned: [0-9]*'
		${SQL_SETUP:+$SQL_SETUP;}
		EXPLAIN $sql;
	EOF
	)
	note "${label%%:*}: plan: ${plan:-serial}"
	note "${label%%:*}: the ratio without kcat's fixed cost is $(ratio $((KCAT_SCAN_MS - KCAT_FIXED_MS)) "$SQL_MS"); CPU time: kafka_fdw's backend $(ms_s "$SQL_CPU_MS"), kcat $(ms_s "$KCAT_SCAN_CPU_MS")"
	row "$label" "$(ms_s "$SQL_MS")" "$(ms_s "$KCAT_SCAN_MS")" \
		"$(ratio "$KCAT_SCAN_MS" "$SQL_MS")" "$target" "$(kb_mb "$SQL_HWM_KB")"
}

scan_figure "1. scan: count(*), $ROWS msgs vs kcat -C" \
	"SELECT count(*) FROM bench_scan" "$ROWS" ">= 0.8"
scan_figure "2. parsed scan: sum(amount) vs kcat -C" \
	"SELECT sum(amount) FROM bench_scan" "$expected_sum" ">= 0.5"
# the same without parallel workers, as a query that cannot use them runs
scan_figure "1s. scan, serial plan" \
	"SELECT count(*) FROM bench_scan" "$ROWS" ">= 0.8" \
	"SET max_parallel_workers_per_gather = 0"
scan_figure "2s. parsed scan, serial plan" \
	"SELECT sum(amount) FROM bench_scan" "$expected_sum" ">= 0.5" \
	"SET max_parallel_workers_per_gather = 0"

if [ "$KAFKA_KIND" = real ]; then
	say "reference: kafka-consumer-perf-test --messages $ROWS --topic bench_scan"
	perf_ms=() perf_fetch_ms=()
	for i in $(seq $RUNS); do
		kafka_tool org.apache.kafka.tools.ConsumerPerformance \
			--bootstrap-server "$KAFKA_BROKERS" --topic bench_scan \
			--messages "$ROWS" --group "bench_perf_$i" --timeout 60000 ||
			{ broke "kafka-consumer-perf-test failed"; break; }
		# start.time, end.time, MB, MB.sec, nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, ...
		line=$(grep -E '^[0-9]{4}-' "$WORK/tool.out" | tail -1)
		n=$(awk -F', *' '{ print $5 }' <<<"$line")
		[ "${n:-0}" -ge "$ROWS" ] || broke "kafka-consumer-perf-test read ${n:-0} messages, not $ROWS"
		perf_ms+=("$CMD_MS")
		perf_fetch_ms+=("$(awk -F', *' '{ printf "%d", $7 + $8 }' <<<"$line")")
	done
	if [ ${#perf_ms[@]} = "$RUNS" ]; then
		PERF_SCAN_MS=$(min_of "${perf_ms[@]}")
		note "kafka-consumer-perf-test: $(ms_s "$PERF_SCAN_MS") for the whole process, $(ms_s "$(min_of "${perf_fetch_ms[@]}")") by its own clock (group join and fetching, without the JVM's start)"
		for f in "1. scan: count(*)" "2. parsed scan: sum(amount)" "1s. scan, serial plan" "2s. parsed scan, serial plan"; do
			for i in "${!T_FIG[@]}"; do
				[[ ${T_FIG[$i]} == "$f"* ]] || continue
				ours=$(sed 's/ s$//' <<<"${T_OURS[$i]}")
				ours_ms=$(awk -v s="$ours" 'BEGIN { printf "%d", s * 1000 }')
				row "${f%%:*} vs kafka-consumer-perf-test" "${T_OURS[$i]}" "$(ms_s "$PERF_SCAN_MS")" \
					"$(ratio "$PERF_SCAN_MS" "$ours_ms")" ">= 1.0" "${T_RSS[$i]}"
			done
		done
	fi
fi
fi

#
# 3: publish
#
if want publish; then
say "reference: kcat -P -K '\\t' -l values.tsv, a fresh topic per run"
kcat_ms=() kcat_cpu=()
for i in $(seq $RUNS); do
	time_cmd kcat -P -b "$KAFKA_BROKERS" -t "bench_kcat_$i" -K $'\t' -l "$DATA" ||
		{ broke "kcat -P failed"; break; }
	topic_count "bench_kcat_$i"
	[ "$TC_HIGH" = "$ROWS" ] || broke "kcat -P published $TC_HIGH messages, not $ROWS"
	kcat_ms+=("$CMD_MS")
	kcat_cpu+=("${CMD_CPU_MS:-0}")
	echo "   run $i: $(ms_s "$CMD_MS")"
done
KCAT_PUB_MS=$(min_of "${kcat_ms[@]}")
KCAT_PUB_CPU_MS=$(min_of "${kcat_cpu[@]}")

# kafka-producer-perf-test with the same record count and size, acks=all,
# into a fresh topic per run, against the INSERT's best time ($SQL_MS)
producer_perf_figure()
{
	local ours_ms=$SQL_MS hwm=$SQL_HWM_KB perf_ms=() i line n
	say "reference: kafka-producer-perf-test --num-records $ROWS --record-size $avg_bytes, acks=all"
	for i in $(seq $RUNS); do
		kafka_tool org.apache.kafka.tools.ProducerPerformance \
			--topic "bench_perf_$i" --num-records "$ROWS" --record-size "$avg_bytes" \
			--throughput -1 --producer-props "bootstrap.servers=$KAFKA_BROKERS" \
			acks=all enable.idempotence=true ||
			{ broke "kafka-producer-perf-test failed"; return; }
		topic_count "bench_perf_$i"
		[ "$TC_HIGH" = "$ROWS" ] || broke "kafka-producer-perf-test published $TC_HIGH messages, not $ROWS"
		perf_ms+=("$CMD_MS")
	done
	line=$(grep 'records sent' "$WORK/tool.out" | tail -1)
	note "kafka-producer-perf-test (last run): $line"
	row "3. publish vs kafka-producer-perf-test" "$(ms_s "$ours_ms")" \
		"$(ms_s "$(min_of "${perf_ms[@]}")")" \
		"$(ratio "$(min_of "${perf_ms[@]}")" "$ours_ms")" ">= 0.8" "$(kb_mb "$hwm")"
}

label="3. publish: INSERT $ROWS rows (json) vs kcat -P"
say "kafka_fdw: INSERT INTO bench_pub_N ... FROM generate_series(1, $ROWS), a fresh topic per run"
if ! has_code 'ExecForeignInsert[[:space:]]*='; then
	row "$label" "n/a (feature missing: INSERT)" "$(ms_s "$KCAT_PUB_MS")" "n/a" ">= 0.5" "n/a"
else
	stmts=()
	for i in $(seq $RUNS); do
		psql_q <<-EOF || die "creating bench_pub_$i failed"
			CREATE FOREIGN TABLE bench_pub_$i (
			  k text OPTIONS (key 'true'),
			  id bigint, customer_id int, amount numeric, note text
			) SERVER bench_kafka OPTIONS (topic 'bench_pub_$i', format 'json');
		EOF
		stmts+=("INSERT INTO bench_pub_$i (k, id, customer_id, amount, note) $GEN_SQL")
	done
	if run_sql_timed "${stmts[@]}"; then
		for i in $(seq $RUNS); do
			topic_count "bench_pub_$i"
			[ "$TC_HIGH" = "$ROWS" ] || broke "INSERT published $TC_HIGH messages to bench_pub_$i, not $ROWS"
		done
		sample=$(kcat -C -b "$KAFKA_BROKERS" -t bench_pub_1 -p 0 -o beginning -c 1 -e -q -f '%k\t%s\n')
		note "publish: a message INSERT produced: $sample"
		note "publish: CPU time: kafka_fdw's backend $(ms_s "$SQL_CPU_MS") (generating the rows too), kcat $(ms_s "$KCAT_PUB_CPU_MS")"
		echo "   best $(ms_s "$SQL_MS"), peak RSS $(kb_mb "$SQL_HWM_KB")"
		row "$label" "$(ms_s "$SQL_MS")" "$(ms_s "$KCAT_PUB_MS")" \
			"$(ratio "$KCAT_PUB_MS" "$SQL_MS")" ">= 0.5" "$(kb_mb "$SQL_HWM_KB")"
		[ "$KAFKA_KIND" = real ] && producer_perf_figure
	else
		row "$label" "n/a (failed)" "$(ms_s "$KCAT_PUB_MS")" "n/a" ">= 0.5" "n/a"
		broke "publish: $SQL_ERROR"
	fi
fi
fi

#
# 4, 5, 6: change data capture
#
# messages_sent of stream STREAM (default bench)
cdc_sent() { psql_q -c "SELECT messages_sent FROM kafka_fdw.cdc_status WHERE name = '${1:-bench}'"; }

# Insert rows FROM..TO into TABLE (default cdc_t), streamed by STREAM
# (default bench), in one transaction; sets CDC_MS (COMMIT to the stream's
# last acknowledgement, as the stream counts them), INSERT_MS (BEGIN to
# COMMIT) and END_LSN (the WAL position after COMMIT).
cdc_txn()
{
	local from=$1 to=$2 table=${3:-cdc_t} stream=${4:-bench} target
	target=$(( $(cdc_sent "$stream") + to - from + 1 ))
	psql_q >"$WORK/cdc_txn.out" 2>&1 <<-EOF || { CDC_ERROR=$(cat "$WORK/cdc_txn.out"); return 1; }
		SELECT clock_timestamp() AS t_begin \gset
		BEGIN;
		INSERT INTO $table
		  SELECT g, g % 1000, round((g * 7919 % 100000) / 100.0, 2), 'bench order ' || g
		  FROM generate_series($from::bigint, $to) g;
		SELECT clock_timestamp() AS t_commit \gset
		COMMIT;
		SELECT pg_current_wal_lsn() AS end_lsn \gset
		DO \$\$
		DECLARE
		  t0 timestamptz := clock_timestamp();
		BEGIN
		  WHILE (SELECT messages_sent FROM kafka_fdw.cdc_status WHERE name = '$stream') < $target LOOP
		    IF clock_timestamp() - t0 > interval '15 min' THEN
		      RAISE EXCEPTION 'the stream did not send its messages in 15 minutes';
		    END IF;
		    PERFORM pg_sleep(0.002);
		  END LOOP;
		END
		\$\$;
		SELECT round(extract(epoch FROM clock_timestamp() - :'t_commit'::timestamptz) * 1000),
		       round(extract(epoch FROM :'t_commit'::timestamptz - :'t_begin'::timestamptz) * 1000),
		       :'end_lsn';
	EOF
	read -r CDC_MS INSERT_MS END_LSN < <(tr '|' ' ' <"$WORK/cdc_txn.out" | tail -1)
}

# The reference: pg_recvlogical decodes the slot bench_ref (made before the
# transaction) with pgoutput to /dev/null for publication PUB (default
# bench_pub), up to END_LSN; sets CMD_MS and drops the slot.
ref_decode()
{
	local status=0
	time_cmd "${AS_USER[@]}" timeout 900 "$PGBIN/pg_recvlogical" -d "$DB" \
		--slot bench_ref --start --endpos="$END_LSN" --no-loop \
		-o proto_version=1 -o publication_names="${1:-bench_pub}" -f /dev/null || status=1
	psql_q -c "SELECT pg_drop_replication_slot('bench_ref')" >/dev/null
	return $status
}
ref_slot() { psql_q -c "SELECT pg_create_logical_replication_slot('bench_ref', 'pgoutput')" >/dev/null; }

# Figure 4 for one form: RUNS transactions of CDC_ROWS rows into TABLE,
# streamed by STREAM (whose worker is PID), each then decoded by
# pg_recvlogical for PUB; a row LABEL, and a note of the average message
# size in the topic bench.public.TABLE.
cdc_throughput()
{
	local label=$1 table=$2 stream=$3 pub=$4 pid=$5 i hwm ours=() ref=() bytes
	reset_hwm "$pid"
	for i in $(seq $RUNS); do
		ref_slot || { broke "creating the reference slot failed"; return 1; }
		if ! cdc_txn $(( (i - 1) * CDC_ROWS + 1 )) $(( i * CDC_ROWS )) "$table" "$stream"; then
			broke "CDC run $i ($stream): $CDC_ERROR"; return 1
		fi
		ours+=("$CDC_MS")
		ref_decode "$pub" || { broke "pg_recvlogical failed"; return 1; }
		ref+=("$CMD_MS")
		echo "   run $i: kafka_fdw $(ms_s "$CDC_MS") after COMMIT (the INSERT took $(ms_s "$INSERT_MS")), pg_recvlogical $(ms_s "$CMD_MS")"
	done
	hwm=$(hwm_kb "$pid")
	row "$label" "$(ms_s "$(min_of "${ours[@]}")")" "$(ms_s "$(min_of "${ref[@]}")")" \
		"$(ratio "$(min_of "${ref[@]}")" "$(min_of "${ours[@]}")")" ">= 0.5" "$(kb_mb "$hwm")"
	topic_count "bench.public.$table"
	[ "${TC_HIGH:-0}" -ge $((RUNS * CDC_ROWS)) ] ||
		broke "bench.public.$table holds ${TC_HIGH:-0} messages, fewer than $((RUNS * CDC_ROWS))"
	bytes=$(kcat -C -b "$KAFKA_BROKERS" -t "bench.public.$table" -o beginning -c 1000 -e -q \
		-f '%S %K\n' | awk '{ s += $1 + ($2 > 0 ? $2 : 0) } END { if (NR) printf "%.0f", s / NR }')
	note "$label: messages of ${bytes:-?} bytes on average (value and key, of the first 1,000)"
}

cdc_figures()
{
	local label4a="4a. CDC throughput, schema/payload (default): $CDC_ROWS-row txn vs pg_recvlogical"
	local label4b="4b. CDC throughput, schemas.enable false: $CDC_ROWS-row txn vs pg_recvlogical"
	local label5="5. CDC latency: $LAT_RATE rows/s, $LAT_SECONDS s (p50 / p99)"
	local label6="6. CDC memory: $MEM_ROWS-row txn"
	local pid pid_ns i f hwm lat_rows sent tps lag out
	local L_n L_seen_p50 L_seen_p99 L_create_p50 L_create_p99 L_create_max

	say "setting up a CDC stream (publication bench_pub: cdc_t, lat_t)"
	if [ "$(psql_q -c "SELECT to_regproc('kafka_fdw.cdc_create') IS NOT NULL")" != t ]; then
		row "$label4a" "n/a (feature missing: CDC)" "n/a" "n/a" ">= 0.5" "n/a"
		row "$label4b" "n/a (feature missing: CDC)" "n/a" "n/a" ">= 0.5" "n/a"
		row "$label5" "n/a (feature missing: CDC)" "n/a" "n/a" "p99 <= 100 ms" "n/a"
		row "$label6" "n/a (feature missing: CDC)" "n/a" "n/a" "RSS < 256 MB" "n/a"
		return
	fi
	psql_q <<-EOF || { broke "setting up the CDC stream failed"; return; }
		CREATE TABLE cdc_t (id bigint PRIMARY KEY, customer_id int, amount numeric(12,2), note text);
		CREATE TABLE lat_t (id bigserial PRIMARY KEY, customer_id int, amount numeric(12,2), note text);
		CREATE TABLE cdc_ns (LIKE cdc_t INCLUDING ALL);
		CREATE PUBLICATION bench_pub FOR TABLE cdc_t, lat_t;
		CREATE PUBLICATION bench_ns_pub FOR TABLE cdc_ns;
		SELECT kafka_fdw.cdc_create('bench', 'bench_kafka', 'bench_pub',
		                            topic_prefix => 'bench', snapshot => false);
		SELECT kafka_fdw.cdc_create('bench_ns', 'bench_kafka', 'bench_ns_pub',
		                            topic_prefix => 'bench', snapshot => false,
		                            options => '{"schemas.enable": false}');
	EOF
	for i in $(seq 600); do
		[ "$(psql_q -c "SELECT count(*) FROM kafka_fdw.cdc_status WHERE name IN ('bench', 'bench_ns') AND state = 'streaming'")" = 2 ] && break
		sleep 0.1
	done
	pid=$(psql_q -c "SELECT worker_pid FROM kafka_fdw.cdc_status WHERE name = 'bench' AND state = 'streaming'")
	pid_ns=$(psql_q -c "SELECT worker_pid FROM kafka_fdw.cdc_status WHERE name = 'bench_ns' AND state = 'streaming'")
	[ -n "$pid" ] && [ -n "$pid_ns" ] || { broke "the CDC streams did not start streaming"; return; }
	echo "   worker pids $pid (bench: schema/payload), $pid_ns (bench_ns: schemas.enable false)"

	# 4: throughput, in each form (both streams run throughout: the other
	# worker decodes and skips each transaction in both measurements)
	say "CDC throughput, schema/payload form: $CDC_ROWS rows in one transaction (x$RUNS), then pg_recvlogical over the same WAL"
	cdc_throughput "$label4a" cdc_t bench bench_pub "$pid" || return
	say "CDC throughput, schemas.enable false: $CDC_ROWS rows in one transaction (x$RUNS), then pg_recvlogical over the same WAL"
	cdc_throughput "$label4b" cdc_ns bench_ns bench_ns_pub "$pid_ns" || return

	# 5: latency
	lat_rows=$((LAT_RATE * LAT_SECONDS))
	say "CDC latency: $LAT_RATE rows/s in $LAT_TXN_ROWS-row transactions for $LAT_SECONDS s (pgbench --rate)"
	echo "INSERT INTO lat_t (customer_id, amount, note) SELECT g, g * 1.25, 'bench latency' FROM generate_series(1, $LAT_TXN_ROWS) g;" >"$WORK/lat.sql"
	[ "$(id -u)" = 0 ] && chown "$KFDW_TEST_USER:" "$WORK/lat.sql"
	# warm up: the worker's producer learns the topic's metadata with the
	# first message, which is not part of the measurement
	sent=$(cdc_sent)
	psql_q -c "INSERT INTO lat_t (customer_id, amount, note) VALUES (0, 0, 'warm-up')" ||
		{ broke "the warm-up insert failed"; return; }
	for i in $(seq 600); do [ "$(cdc_sent)" -gt "$sent" ] && break; sleep 0.1; done
	reset_hwm "$pid"
	rm -f "$WORK/lat.ready"
	"$PY" "$PROBE" latency "$KAFKA_BROKERS" bench.public.lat_t "$lat_rows" 20 \
		"$WORK/lat.ready" >"$WORK/lat.out" 2>&1 &
	LAT_PID=$!
	for i in $(seq 300); do [ -s "$WORK/lat.ready" ] && break; sleep 0.1; done
	if [ ! -s "$WORK/lat.ready" ]; then
		broke "the latency consumer did not start: $(cat "$WORK/lat.out")"; return
	fi
	as_user "$PGBIN/pgbench" -n -f "$WORK/lat.sql" -R $((LAT_RATE / LAT_TXN_ROWS)) \
		-T "$LAT_SECONDS" -c 4 -j 2 "$DB" >"$WORK/pgbench.out" 2>&1 ||
		broke "pgbench failed: $(tail -3 "$WORK/pgbench.out")"
	wait "$LAT_PID"
	LAT_PID=
	tps=$(awk '/^tps/ { printf "%.0f", $3; exit }' "$WORK/pgbench.out")
	lag=$(sed -n 's/^rate limit schedule lag: //p' "$WORK/pgbench.out")
	note "latency load: pgbench reached $tps transactions/s ($((tps * LAT_TXN_ROWS)) rows/s), schedule lag $lag"
	out=$(cat "$WORK/lat.out")
	echo "   $out"
	if [[ $out == n=* ]]; then
		for f in n seen_p50 seen_p99 create_p50 create_p99 create_max; do
			printf -v "L_$f" '%s' "$(sed -n "s/.*\b$f=\([^ ]*\).*/\1/p" <<<"$out")"
		done
		[ "$L_n" -ge $((tps * LAT_TXN_ROWS * LAT_SECONDS * 9 / 10)) ] ||
			broke "the latency consumer saw $L_n events only"
		row "$label5" "${L_seen_p50} / ${L_seen_p99} ms" "n/a" "n/a" "p99 <= 100 ms" "$(kb_mb "$(hwm_kb "$pid")")"
		note "latency: commit (source.ts_ms) to the moment an independent consumer received the event (upper bound of commit-to-append), $L_n events; commit to the message's CreateTime (when the worker produced it): p50 $L_create_p50 ms, p99 $L_create_p99 ms, max $L_create_max ms"
	else
		broke "latency consumer: $out"
		row "$label5" "n/a (failed)" "n/a" "n/a" "p99 <= 100 ms" "n/a"
	fi

	# 6: memory of the worker
	say "CDC memory: $MEM_ROWS rows in one transaction"
	reset_hwm "$pid"
	ref_slot || { broke "creating the reference slot failed"; return; }
	if ! cdc_txn $((RUNS * CDC_ROWS + 1)) $((RUNS * CDC_ROWS + MEM_ROWS)); then
		broke "CDC memory run: $CDC_ERROR"; return
	fi
	hwm=$(hwm_kb "$pid")
	ref_decode || { broke "pg_recvlogical failed"; return; }
	echo "   kafka_fdw $(ms_s "$CDC_MS") after COMMIT (the INSERT took $(ms_s "$INSERT_MS")), worker peak RSS $(kb_mb "$hwm"); pg_recvlogical $(ms_s "$CMD_MS")"
	row "$label6" "$(ms_s "$CDC_MS")" "$(ms_s "$CMD_MS")" "$(ratio "$CMD_MS" "$CDC_MS")" "RSS < 256 MB" "$(kb_mb "$hwm")"
}

want cdc && cdc_figures
# 7-10: ingest (last: it restarts the cluster)
want ingest && ingest_figures

#
# The table
#
commit=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
say "results: commit $commit, $(nproc) CPUs ($cpu_model), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| figure | kafka_fdw | reference | ratio (ref/ours) | target | peak RSS (backend/worker) |"
echo "|---|---|---|---|---|---|"
for i in "${!T_FIG[@]}"; do
	echo "| ${T_FIG[$i]} | ${T_OURS[$i]} | ${T_REF[$i]} | ${T_RATIO[$i]} | ${T_TARGET[$i]} | ${T_RSS[$i]} |"
done
echo
for n in "${NOTES[@]}"; do echo "- $n"; done
[ "$broken" = 0 ] || { echo; echo "ERROR: some step failed (see FAILED above)"; exit 1; }
exit 0
