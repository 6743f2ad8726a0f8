# test/bench/ingest.sh: the ingest figures of test/bench.sh (sourced by it;
# uses its helpers, cluster and broker)
#
#   7. append ingest: a stream (kafka_fdw.ingest_create, mode append) reads
#      a backlog of 1,000,000 keyed JSON messages (the scan figures' shape,
#      ~75 bytes, 32 partitions) into the typed table a user would make
#      (id bigint, customer_id int, amount numeric, note text), from
#      ingest_create until ingest_offsets holds the topic's end
#                        vs  kcat -C -e -f '%s\n' | psql -c "COPY t FROM STDIN"
#                            into a one-column jsonb table (the JSON lines
#                            as they are: COPY cannot type them)
#   8. upsert ingest: the same with each of 200,000 keys written 5 times,
#      mode upsert into the same table with PRIMARY KEY (id)
#                        vs  the same kcat | COPY of those messages
#   9. latency: 5,000 messages/s for 20 s from an independent producer
#      (test/bench/ingest_rate.py), stream with the default options: message
#      timestamp (CreateTime) to the commit of the batch that made the row
#      visible (pg_xact_commit_timestamp of the row, track_commit_timestamp
#      on); p50 / p99 (also printed: to the row's insertion,
#      ingested_at DEFAULT clock_timestamp())
#  10. worker memory: the peak RSS (VmHWM) of the worker of figure 7
#
# Figures 7 and 8 are the best of RUNS, each run a new stream into a new
# table from the same topic; each reference run into a truncated table.
# Environment: KFDW_BENCH_INGEST_ROWS (1000000), KFDW_BENCH_INGEST_RATE
# (5000), KFDW_BENCH_INGEST_SECONDS (20).
#
# IDENTIFICATION
#		  test/bench/ingest.sh

ING_ROWS=${KFDW_BENCH_INGEST_ROWS:-1000000}
ING_RATE=${KFDW_BENCH_INGEST_RATE:-5000}
ING_SECONDS=${KFDW_BENCH_INGEST_SECONDS:-20}
ING_KEYS=$((ING_ROWS / 5))			# upsert: each key 5 times
ING_TOPICS=("bench_ing:32" "bench_ups:32" "bench_ing_lat:4")

# Time the reference into table REF from TOPIC: kcat -C | psql COPY; sets
# CMD_MS, or returns 1.
ing_reference()
{
	local topic=$1 ref=$2 t0 st
	psql_q -c "TRUNCATE $ref" || return 1
	t0=$(now_ms)
	kcat -C -b "$KAFKA_BROKERS" -t "$topic" -e -q -o beginning -f '%s\n' |
		as_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" -c "COPY $ref FROM STDIN"
	st=("${PIPESTATUS[@]}")
	CMD_MS=$(( $(now_ms) - t0 ))
	[ "${st[0]}" = 0 ] && [ "${st[1]}" = 0 ]
}

# One timed ingest run: stream NAME from SOURCE into TARGET in MODE until
# ingest_offsets sums to WANT; sets ING_MS and ING_PID (a worker's pid).
ing_run()
{
	local name=$1 source=$2 target=$3 mode=$4 want=$5 out
	out=$(psql_q 2>&1 <<-EOF
		SELECT clock_timestamp() AS t0 \gset
		SELECT kafka_fdw.ingest_create('$name', '$source', '$target', '$mode');
		DO \$\$
		DECLARE
		  t0 timestamptz := clock_timestamp();
		BEGIN
		  WHILE coalesce((SELECT sum(next_offset) FROM kafka_fdw.ingest_offsets
		                  WHERE name = '$name'), 0) < $want LOOP
		    IF clock_timestamp() - t0 > interval '15 min' THEN
		      RAISE EXCEPTION 'stream $name did not ingest $want messages in 15 minutes';
		    END IF;
		    PERFORM pg_sleep(0.01);
		  END LOOP;
		END
		\$\$;
		SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000)
		       || ' ' || coalesce((SELECT worker_pids[1] FROM kafka_fdw.ingest_status
		                           WHERE name = '$name'), 0);
	EOF
	) || { ING_ERROR=$out; return 1; }
	read -r ING_MS ING_PID <<<"$(tail -1 <<<"$out")"
}

# Figures 7 and 8 for one MODE (append or upsert) from TOPIC.
ing_throughput()
{
	local mode=$1 topic=$2 label=$3 target=$4 want_count=$5 want_sum=$6
	local i ours=() ref=() hwm=() cpu=() got pid t
	topic_count "$topic" || { broke "reading the watermarks of $topic failed"; return 1; }
	[ "$TC_HIGH" = "$ING_ROWS" ] || { broke "$topic holds $TC_HIGH messages, not $ING_ROWS"; return 1; }

	say "reference: kcat -C -e -f '%s\\n' -t $topic | psql -c \"COPY ing_ref FROM STDIN\" (one jsonb column), x$RUNS"
	for i in $(seq "$RUNS"); do
		ing_reference "$topic" ing_ref || { broke "the reference pipeline failed"; return 1; }
		got=$(psql_q -c "SELECT count(*) FROM ing_ref")
		[ "$got" = "$ING_ROWS" ] || broke "the reference copied $got rows, not $ING_ROWS"
		ref+=("$CMD_MS")
		echo "   run $i: $(ms_s "$CMD_MS")"
	done

	say "kafka_fdw: ingest_create(..., '$mode') of the $ING_ROWS messages into a typed table, x$RUNS"
	for i in $(seq "$RUNS"); do
		t=ing_${mode}_$i
		psql_q -c "CREATE TABLE $t (LIKE $target INCLUDING ALL)" || { broke "creating $t failed"; return 1; }
		if ! ing_run "bench_${mode}_$i" "bench_${mode}_src" "$t" "$mode" "$ING_ROWS"; then
			broke "$label: $ING_ERROR"; return 1
		fi
		pid=$ING_PID
		hwm+=("$(hwm_kb "$pid")")
		cpu+=("$(awk -v tck="$CLK_TCK" '{ printf "%d", ($14 + $15) * 1000 / tck }' "/proc/$pid/stat" 2>/dev/null)")
		got=$(psql_q -c "SELECT count(*) || ' ' || sum(amount) FROM $t")
		[ "$got" = "$want_count $want_sum" ] ||
			broke "$label: the table holds (count, sum) $got, not $want_count $want_sum"
		ours+=("$ING_MS")
		echo "   run $i: $(ms_s "$ING_MS"), worker $pid: peak RSS $(kb_mb "${hwm[-1]}"), CPU $(ms_s "${cpu[-1]:-0}")"
		psql_q -c "SELECT kafka_fdw.ingest_drop('bench_${mode}_$i')" >/dev/null ||
			broke "ingest_drop failed"
		psql_q -c "DROP TABLE $t" >/dev/null
	done
	ING_HWM_MAX=$(printf '%s\n' "${hwm[@]}" | sort -g | tail -1)
	row "$label" "$(ms_s "$(min_of "${ours[@]}")")" "$(ms_s "$(min_of "${ref[@]}")") (kcat | COPY jsonb)" \
		"$(ratio "$(min_of "${ref[@]}")" "$(min_of "${ours[@]}")")" "$7" "$(kb_mb "$ING_HWM_MAX")"
	note "$label: the worker's CPU time (user + system, from its start to the end of the run): $(ms_s "$(min_of "${cpu[@]}")") in the best run"
}

ingest_figures()
{
	local label7="7. append ingest: $ING_ROWS msgs into a typed table vs kcat | COPY"
	local label8="8. upsert ingest: $ING_ROWS msgs, $ING_KEYS keys vs kcat | COPY"
	local label9="9. ingest latency: $ING_RATE msgs/s, $ING_SECONDS s (p50 / p99)"
	local label10="10. ingest worker memory: figure 7"
	local data=$WORK/ingest.tsv out sum_all sum_last n i lat t0 pid
	local n_got c50 c99 cmax w50 w99 batches

	if [ "$(psql_q -c "SELECT to_regproc('kafka_fdw.ingest_create') IS NOT NULL")" != t ]; then
		row "$label7" "n/a (feature missing: ingest)" "n/a" "n/a" ">= 1.0" "n/a"
		row "$label8" "n/a (feature missing: ingest)" "n/a" "n/a" ">= 0.5" "n/a"
		row "$label9" "n/a (feature missing: ingest)" "n/a" "n/a" "p99 <= 200 ms" "n/a"
		row "$label10" "n/a (feature missing: ingest)" "n/a" "n/a" "RSS < 256 MB" "n/a"
		return
	fi

	# the latency figure reads commit times
	say "ingest: track_commit_timestamp on (a restart of the cluster)"
	psql_q -c "ALTER SYSTEM SET track_commit_timestamp = on" &&
		as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 120 restart >/dev/null ||
		{ broke "restarting the cluster failed"; return; }

	say "loading $ING_ROWS messages into bench_ing (keys 1..$ING_ROWS) and bench_ups ($ING_KEYS keys, 5 times each) with kcat"
	awk -v n="$ING_ROWS" 'BEGIN {
		for (i = 1; i <= n; i++)
			printf "%d\t{\"id\":%d,\"customer_id\":%d,\"amount\":%.2f,\"note\":\"bench order %d\"}\n",
				i, i, i % 1000, (i * 7919 % 100000) / 100, i
	}' >"$data"
	kcat -P -b "$KAFKA_BROKERS" -t bench_ing -K $'\t' -l "$data" || { broke "kcat -P failed"; return; }
	awk -v n="$ING_ROWS" -v k="$ING_KEYS" 'BEGIN {
		for (i = 1; i <= n; i++)
			printf "%d\t{\"id\":%d,\"customer_id\":%d,\"amount\":%.2f,\"note\":\"bench order %d\"}\n",
				i % k, i % k, i % 1000, (i * 7919 % 100000) / 100, i
	}' >"$data"
	kcat -P -b "$KAFKA_BROKERS" -t bench_ups -K $'\t' -l "$data" || { broke "kcat -P failed"; return; }
	rm -f "$data"

	psql_q <<-EOF || { broke "creating the ingest tables failed"; return; }
		CREATE FOREIGN TABLE bench_append_src (k text OPTIONS (key 'true'),
		  id bigint, customer_id int, amount numeric, note text)
		  SERVER bench_kafka OPTIONS (topic 'bench_ing', format 'json');
		CREATE FOREIGN TABLE bench_upsert_src (k text OPTIONS (key 'true'),
		  id bigint, customer_id int, amount numeric, note text)
		  SERVER bench_kafka OPTIONS (topic 'bench_ups', format 'json');
		CREATE TABLE ing_append_target (id bigint, customer_id int, amount numeric, note text);
		CREATE TABLE ing_upsert_target (id bigint PRIMARY KEY, customer_id int, amount numeric, note text);
		CREATE TABLE ing_ref (doc jsonb);
	EOF
	sum_all=$(psql_q -c "SELECT sum(round((i * 7919 % 100000) / 100.0, 2)) FROM generate_series(1::bigint, $ING_ROWS) i")
	# each key's last message is one of the last ING_KEYS
	sum_last=$(psql_q -c "SELECT sum(round((i * 7919 % 100000) / 100.0, 2)) FROM generate_series($((ING_ROWS - ING_KEYS + 1))::bigint, $ING_ROWS) i")

	ing_throughput append bench_ing "$label7" ing_append_target "$ING_ROWS" "$sum_all" ">= 1.0" || return
	row "$label10" "$(kb_mb "$ING_HWM_MAX")" "n/a" "n/a" "RSS < 256 MB" "$(kb_mb "$ING_HWM_MAX")"
	ing_throughput upsert bench_ups "$label8" ing_upsert_target "$ING_KEYS" "$sum_last" ">= 0.5" || return
	# what a user needing typed columns does with the reference: COPY, then
	# INSERT ... SELECT (printed, not a figure)
	psql_q -c "CREATE TABLE ing_typed (LIKE ing_append_target)" &&
		t0=$(now_ms) && ing_reference bench_ing ing_ref &&
		psql_q -c "INSERT INTO ing_typed SELECT (doc->>'id')::bigint, (doc->>'customer_id')::int, (doc->>'amount')::numeric, doc->>'note' FROM ing_ref" >/dev/null &&
		note "reference with typed columns (kcat | COPY into jsonb, then INSERT ... SELECT into the typed table, one run): $(ms_s $(( $(now_ms) - t0 )))"
	psql_q -c "DROP TABLE ing_typed; TRUNCATE ing_ref" >/dev/null

	say "ingest latency: $ING_RATE messages/s for $ING_SECONDS s (test/bench/ingest_rate.py), a stream with the default options"
	psql_q <<-EOF || { broke "creating the latency stream failed"; return; }
		CREATE FOREIGN TABLE bench_lat_src (ts timestamptz OPTIONS (timestamp 'true'),
		  id bigint, customer_id int, amount numeric, note text)
		  SERVER bench_kafka OPTIONS (topic 'bench_ing_lat', format 'json');
		CREATE TABLE ing_lat (id bigint, customer_id int, amount numeric, note text,
		  ts timestamptz, ingested_at timestamptz DEFAULT clock_timestamp());
		SELECT kafka_fdw.ingest_create('bench_lat', 'bench_lat_src', 'ing_lat');
	EOF
	# warm up: the first message (the worker's consumer connects and fetches)
	"$PY" "$REPO/test/bench/ingest_rate.py" "$KAFKA_BROKERS" bench_ing_lat 100 0.01 0 >/dev/null ||
		{ broke "the warm-up producer failed"; return; }
	for i in $(seq 600); do
		[ "$(psql_q -c "SELECT count(*) FROM ing_lat")" -ge 1 ] && break
		sleep 0.1
	done
	pid=$(psql_q -c "SELECT worker_pids[1] FROM kafka_fdw.ingest_status WHERE name = 'bench_lat'")
	n=$(awk -v r="$ING_RATE" -v s="$ING_SECONDS" 'BEGIN { printf "%d", r * s }')
	out=$("$PY" "$REPO/test/bench/ingest_rate.py" "$KAFKA_BROKERS" bench_ing_lat "$ING_RATE" "$ING_SECONDS" 1) ||
		{ broke "the latency producer failed: $out"; return; }
	note "latency load: $out"
	for i in $(seq 600); do
		[ "$(psql_q -c "SELECT count(*) FROM ing_lat WHERE id >= 1")" -ge "$n" ] && break
		sleep 0.1
	done
	lat=$(psql_q -c "SELECT count(*),
	       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY c)::numeric, 1),
	       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY c)::numeric, 1),
	       round(max(c)::numeric, 1),
	       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY w)::numeric, 1),
	       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY w)::numeric, 1),
	       count(DISTINCT x)
	  FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - ts) * 1000 AS c,
	               extract(epoch FROM ingested_at - ts) * 1000 AS w, xmin::text AS x
	          FROM ing_lat WHERE id >= 1) s")
	IFS='|' read -r n_got c50 c99 cmax w50 w99 batches <<<"$lat"
	[ "$n_got" = "$n" ] || broke "latency: the target holds $n_got of the $n messages"
	row "$label9" "$c50 / $c99 ms" "n/a" "n/a" "p99 <= 200 ms" "$(kb_mb "$(hwm_kb "$pid")")"
	note "ingest latency: message timestamp (CreateTime) to the commit of the row's batch, $n_got messages in $batches transactions: p50 $c50 ms, p99 $c99 ms, max $cmax ms; to the row's insertion (clock_timestamp()): p50 $w50 ms, p99 $w99 ms"
	psql_q -c "SELECT kafka_fdw.ingest_drop('bench_lat')" >/dev/null
}
