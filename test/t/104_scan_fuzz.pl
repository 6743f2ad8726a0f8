
# Copyright (c) kafka_fdw contributors

# Scan fuzzing: over 200,000 seeded messages (JSON, CSV and raw values with
# keys and headers; invalid values, wrong JSON types, huge numbers, deep
# nesting, invalid UTF-8, truncations, bit flips; see
# test/fuzz/gen_messages.py) are read through tables with columns of every
# kind of type and junk columns.  Each scan returns one row per message,
# with no error and no WARNING; the clean messages are never junk and read
# back their values; two scans, a parallel one and a run of the generator
# with the same seed give the same rows; the server log shows no crash or
# leak.  The seed is $KFDW_FUZZ_SEED (default fixed), printed on failure.

use strict;
use warnings;

use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $seed = $ENV{KFDW_FUZZ_SEED} // 20261201;
note "fuzz seed $seed";

# how many messages, in how many partitions (about 3 MB each at most: the
# embedded broker keeps 5 MB per partition).  What is fuzzed is the
# decoder, the same on both backends: on real Kafka, where producing and
# replicating cost more, a quarter of them shows that the fuzzed bytes
# come back unchanged.
my $share = ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real' ? 4 : 1;
my %plan = (
	json => { topic => 'fuzz_json', partitions => 32, count => 85_000 / $share },
	csv => { topic => 'fuzz_csv', partitions => 16, count => 70_000 / $share },
	raw => { topic => 'fuzz_raw', partitions => 8, count => 50_000 / $share },
	again => { topic => 'fuzz_json_again', partitions => 32, count => 5_000 / $share },
);

my $broker = KafkaTestBroker->new(
	topics => { map { $_->{topic} => $_->{partitions} } values %plan });
my $node = kafka_fdw_node('scan_fuzz');
create_kafka_server($node, $broker, 'k', user_mapping => 1);

my $generator = dirname(__FILE__) . '/../fuzz/gen_messages.py';
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';

# Produce a topic's messages; returns the file of its clean messages
sub generate
{
	my ($name, $format) = @_;
	my $p = $plan{$name};
	my $clean = "$PostgreSQL::Test::Utils::tmp_check/clean_$name.tsv";
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(
		[
			$python, $generator, $broker->bootstrap, $format,
			$p->{topic}, $p->{partitions}, $p->{count}, $seed, $clean
		],
		'>', \$out, '2>', \$err,
		IPC::Run::timeout(300));
	die "generator failed for $name (seed $seed): $err" unless $ok;
	chomp $out;
	is($out, $p->{count}, "$p->{count} $format messages produced into $p->{topic}");
	return $clean;
}

my %clean;
$clean{$_} = generate($_, $_) for qw(json csv raw);
$clean{again} = generate('again', 'json');

#
# The tables: every kind of type, in the generator's column order
#
my $columns = q{
  c_int2 int2, c_int4 int4, c_int8 int8, c_numeric numeric,
  c_float4 float4, c_float8 float8, c_bool bool, c_text text,
  c_varchar varchar(8), c_char char(4), c_bytea bytea, c_date date,
  c_time time, c_timetz timetz, c_timestamp timestamp,
  c_timestamptz timestamptz, c_interval interval, c_uuid uuid, c_json json,
  c_jsonb jsonb, c_int4s int4[], c_texts text[], c_pair fz_pair,
  c_pairs fz_pair[], c_pos fz_pos, c_color fz_color, c_inet inet,
  c_range int4range};
my $meta = q{p int OPTIONS (partition 'true'), o bigint OPTIONS (offset 'true'),
  ts timestamptz OPTIONS (timestamp 'true')};
my $junk = q{junk text OPTIONS (junk 'true'), why text OPTIONS (junk_error 'true')};
(my $par_columns = $columns) =~ s/c_pos fz_pos, //;

$node->safe_psql(
	'postgres', qq{
ALTER DATABASE postgres SET timezone = 'UTC';
CREATE TYPE fz_pair AS (a int, b text);
CREATE DOMAIN fz_pos AS int CHECK (VALUE > 0);
CREATE TYPE fz_color AS ENUM ('red', 'green', 'blue');
CREATE FOREIGN TABLE fuzz_all ($meta, k text OPTIONS (key 'true'),
  h jsonb OPTIONS (headers 'true'), $columns, $junk)
  SERVER k OPTIONS (topic 'fuzz_json');
CREATE FOREIGN TABLE fuzz_all_again ($meta, k text OPTIONS (key 'true'),
  h jsonb OPTIONS (headers 'true'), $columns, $junk)
  SERVER k OPTIONS (topic 'fuzz_json_again');
CREATE FOREIGN TABLE fuzz_par ($meta, k jsonb OPTIONS (key 'true'),
  $par_columns, $junk)
  SERVER k OPTIONS (topic 'fuzz_json');
CREATE FOREIGN TABLE fuzz_strict ($meta, c_int4 int4, c_text text,
  c_jsonb jsonb, c_pair fz_pair)
  SERVER k OPTIONS (topic 'fuzz_json', strict 'true', ignore_junk 'true');
CREATE FOREIGN TABLE fuzz_csv ($meta, k bytea OPTIONS (key 'true'),
  h jsonb OPTIONS (headers 'true'), $columns, $junk)
  SERVER k OPTIONS (topic 'fuzz_csv', format 'csv');
CREATE FOREIGN TABLE fuzz_csv_strict ($meta, $columns)
  SERVER k OPTIONS (topic 'fuzz_csv', format 'csv', strict 'true',
                    ignore_junk 'true');
CREATE FOREIGN TABLE fuzz_raw_text ($meta, k text OPTIONS (key 'true'),
  h jsonb OPTIONS (headers 'true'), v text, $junk)
  SERVER k OPTIONS (topic 'fuzz_raw', format 'raw');
CREATE FOREIGN TABLE fuzz_raw_bytea ($meta, k bytea OPTIONS (key 'true'),
  v bytea, $junk)
  SERVER k OPTIONS (topic 'fuzz_raw', format 'raw');
CREATE FOREIGN TABLE fuzz_raw_json ($meta, k json OPTIONS (key 'true'),
  v json, $junk)
  SERVER k OPTIONS (topic 'fuzz_raw', format 'raw');
CREATE FOREIGN TABLE fuzz_raw_jsonb ($meta, k jsonb OPTIONS (key 'true'),
  h jsonb OPTIONS (headers 'true'), v jsonb)
  SERVER k OPTIONS (topic 'fuzz_raw', format 'raw', ignore_junk 'true');
CREATE FOREIGN TABLE fuzz_raw_varchar ($meta, v varchar(10), $junk)
  SERVER k OPTIONS (topic 'fuzz_raw', format 'raw');
CREATE TABLE clean_json (p int, o bigint, c_int4 int);
CREATE TABLE clean_csv (p int, o bigint, c_int4 int);
COPY clean_json FROM '$clean{json}';
COPY clean_csv FROM '$clean{csv}';
});

# Nothing was dropped by the broker's retention
for my $t (qw(fuzz_all fuzz_csv fuzz_raw_text fuzz_all_again))
{
	my ($parts, $low, $total) = split /\|/,
	  $node->safe_psql('postgres',
		"SELECT count(*), max(low), sum(high) FROM kafka_fdw.watermarks('$t')");
	is("$low|$total", "0|" . ($t eq 'fuzz_all' ? $plan{json}{count}
		  : $t eq 'fuzz_csv' ? $plan{csv}{count}
		  : $t eq 'fuzz_raw_text' ? $plan{raw}{count}
		  : $plan{again}{count}),
		"$t: every message is kept ($parts partitions, low watermarks 0)");
}

# Run a query; it must succeed with nothing on stderr (no WARNING)
sub query_clean
{
	my ($sql, $name, @settings) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', join('', map { "SET $_;\n" } @settings) . $sql);
	ok($ret == 0 && $err eq '', "$name: no error, no WARNING")
	  or diag("seed $seed: $sql\nstderr: $err");
	return $out;
}

# One row per message, with the same digest on a second scan
my %digest;
my %count_of = (
	fuzz_all => $plan{json}{count}, fuzz_par => $plan{json}{count},
	fuzz_strict => $plan{json}{count}, fuzz_csv => $plan{csv}{count},
	fuzz_csv_strict => $plan{csv}{count}, fuzz_raw_text => $plan{raw}{count},
	fuzz_raw_bytea => $plan{raw}{count}, fuzz_raw_json => $plan{raw}{count},
	fuzz_raw_jsonb => $plan{raw}{count}, fuzz_raw_varchar => $plan{raw}{count});
for my $t (sort keys %count_of)
{
	my $sql = "SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY p, o)) FROM $t t";
	my $first = query_clean($sql, "$t first scan");
	my $second = query_clean($sql, "$t second scan");
	my ($count, $md5) = split /\|/, $first;
	is($count, $count_of{$t}, "$t: one row per message") or diag("seed $seed");
	is($second, $first, "$t: the same rows on a second scan") or diag("seed $seed");
	$digest{$t} = $md5;
}

# Junk rows say why, the others hold no junk
for my $t (qw(fuzz_all fuzz_par fuzz_csv fuzz_raw_text fuzz_raw_json fuzz_raw_varchar))
{
	# junk holds the value: none for a tombstone with a junk key or header
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM $t WHERE (junk IS NOT NULL AND why IS NULL) "
			  . "OR (junk IS NULL AND why IS NOT NULL "
			  . "AND why NOT LIKE 'column \"k\": %' AND why NOT LIKE 'column \"h\": %')"),
		'0', "$t: junk and junk_error agree");
	my $junk_rows = $node->safe_psql('postgres', "SELECT count(*) FROM $t WHERE why IS NOT NULL");
	cmp_ok($junk_rows, '>', 0, "$t: some messages are junk ($junk_rows)");
}

# A row is junk or not whatever the columns read
for my $t (qw(fuzz_all fuzz_par fuzz_csv fuzz_raw_text fuzz_raw_json))
{
	my $sql = "SELECT count(*) FILTER (WHERE why IS NOT NULL), "
	  . "md5(string_agg(p || ':' || o || ':' || coalesce(why, ''), E'\\n' ORDER BY p, o)) FROM $t t";
	is( query_clean($sql, "$t junk_error alone"),
		query_clean("$sql WHERE t::text IS NOT NULL", "$t whole rows"),
		"$t: the same junk reasons when only junk_error is read")
	  or diag("seed $seed");
}

# The messages reach the failures they are made for
my %reasons = (
	fuzz_all => [
		'JSON value nested more than 1000 levels deep',
		'invalid JSON: %', 'invalid byte sequence for encoding %',
		'message value is not a JSON object',
		'column "c\_pair": %', 'column "c\_pairs": %',
		'column "c\_pos": %', 'column "c\_color": %',
		'column "c\_int4s": %', 'column "c\_numeric": %',
		'column "c\_varchar": %', 'column "c\_bytea": invalid base64%',
		'column "c\_timestamptz": %', 'column "k": %', 'column "h": %',
	],
	fuzz_par => [ 'column "k": JSON value nested more than 1000 levels deep' ],
	fuzz_csv => [
		'unterminated CSV quoted field', 'column "c\_pair": %',
		'column "c\_jsonb": %', 'invalid byte sequence for encoding %',
	],
	fuzz_raw_json => [ 'column "v": JSON value nested more than 1000 levels deep' ],
);
for my $t (sort keys %reasons)
{
	note "$t, junk reasons:\n" . $node->safe_psql('postgres', qq{
SELECT count(*), left(regexp_replace(why, ': .*', ''), 60) AS reason
  FROM $t WHERE why IS NOT NULL GROUP BY 2 ORDER BY 1 DESC LIMIT 40});
	for my $r (@{ $reasons{$t} })
	{
		(my $lit = $r) =~ s/'/''/g;
		cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM $t WHERE why LIKE '$lit'"),
			'>', 0, "$t: some messages are junk for: $r");
	}
	# within the nesting limit, the default stack is enough
	is($node->safe_psql('postgres', "SELECT count(*) FROM $t WHERE why LIKE '%stack depth%'"),
		'0', "$t: no message overflows the stack");
}

# The clean messages are never junk and read back as produced
for my $f (qw(json csv))
{
	my $t = $f eq 'json' ? 'fuzz_all' : 'fuzz_csv';
	my ($n, $good) = split /\|/, $node->safe_psql(
		'postgres', qq{
SELECT count(*), count(*) FILTER (WHERE t.why IS NULL
                                   AND t.c_int4 IS NOT DISTINCT FROM c.c_int4)
  FROM clean_$f c LEFT JOIN $t t ON t.p = c.p AND t.o = c.o});
	cmp_ok($n, '>', $count_of{$t} / 5, "$t: many clean messages ($n)");
	is($good, $n, "$t: every clean message is a good row with its value")
	  or diag("seed $seed: "
		  . $node->safe_psql('postgres',
			"SELECT t.p, t.o, t.why FROM clean_$f c JOIN $t t USING (p, o) WHERE t.why IS NOT NULL LIMIT 5"));
}

# Parallel workers give the same rows
my @parallel = (
	'parallel_setup_cost = 0', 'parallel_tuple_cost = 0',
	'min_parallel_table_scan_size = 0', 'max_parallel_workers_per_gather = 2');
like(
	query_clean('EXPLAIN (COSTS OFF) SELECT count(*) FROM fuzz_par', 'EXPLAIN parallel', @parallel),
	qr/Gather/, 'fuzz_par is read by parallel workers');
my $par = query_clean(
	"SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY p, o)) FROM fuzz_par t",
	'fuzz_par parallel scan', @parallel);
is($par, "$count_of{fuzz_par}|$digest{fuzz_par}", 'fuzz_par: the same rows from parallel workers')
  or diag("seed $seed");

# A second run of the generator with the same seed made the same rows
is( query_clean(
		"SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY p, o)) FROM fuzz_all_again t",
		'fuzz_all_again scan'),
	query_clean(
		"SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY p, o)) FROM fuzz_all t "
		  . "WHERE (p, o) IN (SELECT p, o FROM fuzz_all_again)",
		'fuzz_all first messages scan'),
	'the same seed gives the same rows')
  or diag("seed $seed");

# ANALYZE reads samples of every table
for my $t (sort keys %count_of)
{
	query_clean("ANALYZE $t", "ANALYZE $t");
}

# Nothing crashed or leaked
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|server process .* was terminated/,
	'no backend crashed');
unlike($log, qr/WARNING|leak/, 'no WARNING and no leak in the server log')
  or diag("seed $seed: " . join("\n", grep { /WARNING|leak/ } split /\n/, $log));

done_testing();
