
# Copyright (c) kafka_fdw contributors

# A Debezium-aware consumer reads kafka_fdw's change events unchanged:
# Debezium's own JDBC sink connector (test/debezium/debezium.sh, in Kafka
# Connect standalone, JsonConverter with schemas, upserts by record key,
# deletes enabled) replicates a kafka_fdw stream into a second database of
# the same cluster, and after a mixed workload the copy equals the source
# table row for row: a snapshot; inserts, updates, key changes (one column
# and composite), deletes, re-inserts, NULLs in every column; int, bigint,
# text, numeric(10,2), boolean, date, timestamp, timestamptz, bytea, uuid,
# jsonb; a transaction of some 6,000 changes.
#
# The same sink, reading the topics of Debezium's own PostgreSQL connector
# over the same publication, is the control: it proves the harness and the
# comparison, so that a failure of the kafka_fdw copy is kafka_fdw's.
# KFDW_DBZ_SINK_SOURCES (default "kafka_fdw,debezium") picks the sources.
#
# Run alone:
#   flock -o /tmp/kfdw-test.lock env KFDW_TEST_KAFKA=real \
#     test/run_tests.sh 410_debezium_jdbc_sink.pl

use strict;
use warnings;

use Test::More;
BEGIN
{
	plan skip_all => 'needs real Kafka (KFDW_TEST_KAFKA=real)'
	  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';
}

use File::Basename qw(dirname);
use File::Spec;
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

use KafkaTestBroker;
use KafkaFdwTest;

my %sources = map { $_ => 1 } split /\s*,\s*/,
  ($ENV{KFDW_DBZ_SINK_SOURCES} // 'kafka_fdw,debezium');
for (keys %sources)
{
	die "KFDW_DBZ_SINK_SOURCES: unknown source $_ (kafka_fdw, debezium)"
	  unless $_ eq 'kafka_fdw' || $_ eq 'debezium';
}

my $here = dirname(File::Spec->rel2abs(__FILE__));
my $debezium_sh = "$here/../debezium/debezium.sh";
my $templates = "$here/../debezium/sink";

# the tables, their sort keys, and one marker row each (written last)
my @tables = (
	[ 'items', 'id', 'id = 2147483647' ],
	[ 'pairs', 'a, b', 'a = 2147483647' ],
	[ 'bulk', 'id', 'id = 9223372036854775807' ]);

my $schema = q{
CREATE TABLE items (
  id int PRIMARY KEY,
  big bigint, t text, n numeric(10,2), flag boolean, d date,
  ts timestamp, tstz timestamptz, raw bytea, u uuid, doc jsonb);
CREATE TABLE pairs (a int, b text, v int, note text, PRIMARY KEY (a, b));
CREATE TABLE bulk (id bigint PRIMARY KEY, v int, t text, n numeric(10,2));
};

# in the snapshot
my $snapshot_rows = q{
INSERT INTO items VALUES
  (1, 9223372036854775807, 'snap one', 12345678.90, true, '2024-02-29',
   '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+02', '\x00ff00',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2, {"b": null}]}'),
  (2, -9223372036854775808, '', -0.01, false, '1969-12-31',
   '1900-01-01 00:00:00.000001', '1970-01-01 00:00:00+00', '\x',
   '00000000-0000-0000-0000-000000000000', '[]'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO pairs VALUES (1, 'a', 1, 'x'), (1, 'b', 2, NULL), (2, 'a', 3, 'y');
INSERT INTO bulk SELECT g, g, 'snap ' || g, g / 100.0 FROM generate_series(1, 200) g;
};

# streamed, once every source and sink runs
my $changes = q{
INSERT INTO items VALUES
  (4, 42, E'quote '' "dq" back\\\\slash\nnewline tab\t ü € 😀', 99999999.99, true,
   '0001-01-01', '2038-01-19 03:14:08', '2000-06-30 23:59:59.999999-07:30',
   '\xdeadbeef', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
   '{"nested": {"x": [1, 2.5, "s"]}, "q": "a\"b"}'),
  (5, 0, 'five', 0, false, '2099-12-31', '1999-12-31 23:59:59.5',
   '1999-12-31 23:59:59.5+14', '\x01', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12',
   '"just a string"'),
  (6, 6, 'six', 6.5, NULL, NULL, NULL, NULL, NULL, NULL, 'null');
UPDATE items SET t = 'snap one, updated', n = n + 1, doc = '{"updated": true}' WHERE id = 1;
UPDATE items SET big = 7, t = 'was null', n = 3.14, flag = true, d = '2020-01-01',
  ts = '2020-01-01 00:00:00', tstz = '2020-01-01 00:00:00+00', raw = '\x00',
  u = 'c0ffee00-0000-4000-8000-000000000003', doc = '{}' WHERE id = 3;
UPDATE items SET big = NULL, t = NULL, raw = NULL, doc = NULL WHERE id = 5;
UPDATE items SET id = 104 WHERE id = 4;
UPDATE items SET id = 2000, t = 'moved and changed' WHERE id = 2;
DELETE FROM items WHERE id = 6;
INSERT INTO items (id, t) VALUES (6, 'six again');
UPDATE pairs SET v = v * 10 WHERE a = 1;
UPDATE pairs SET b = 'c' WHERE a = 1 AND b = 'a';
UPDATE pairs SET a = 3 WHERE a = 2;
DELETE FROM pairs WHERE a = 1 AND b = 'b';
INSERT INTO pairs VALUES (1, 'b', NULL, 'reinserted'), (4, 'ü', 4, NULL);
BEGIN;
INSERT INTO bulk SELECT g, g, 'big txn ' || g, g / 7.0 FROM generate_series(201, 6000) g;
UPDATE bulk SET v = -v, t = NULL WHERE id % 3 = 0;
UPDATE bulk SET id = id + 100000 WHERE id % 11 = 0;
DELETE FROM bulk WHERE id % 7 = 0;
UPDATE items SET n = 1.23 WHERE id = 1;
COMMIT;
DELETE FROM bulk WHERE id BETWEEN 1 AND 50;
};

my $markers = q{
INSERT INTO items (id, t) VALUES (2147483647, 'end marker');
INSERT INTO pairs (a, b, note) VALUES (2147483647, 'end', 'end marker');
INSERT INTO bulk (id, t) VALUES (9223372036854775807, 'end marker');
};

# --- the cluster, the source and the target databases ----------------------
my $broker = KafkaTestBroker->new();
my $bootstrap = $broker->bootstrap;
# each sink keeps a pool of 5 connections (Agroal's connection.pool.min_size):
# more than the test cluster's default max_connections of 10 allows
my $node = kafka_fdw_node('dbz_sink', cdc => 1,
	conf => [ "listen_addresses = '127.0.0.1'", 'max_connections = 50' ]);
my $port = $node->port;
my $user = $node->safe_psql('postgres', 'SELECT current_user');

# one variant per source: its topic prefix and its target database
my @variants;
push @variants, { source => 'kafka_fdw', prefix => 'kf', db => 'copy_kf' }
  if $sources{kafka_fdw};
push @variants, { source => 'debezium', prefix => 'dbz', db => 'copy_dbz' }
  if $sources{debezium};

$node->safe_psql('postgres', $schema . $snapshot_rows
	  . 'CREATE PUBLICATION pub FOR TABLE items, pairs, bulk;');
for my $v (@variants)
{
	$node->safe_psql('postgres', "CREATE DATABASE $v->{db}");
	# the same tables, empty: the sink fills them
	$node->safe_psql($v->{db}, $schema);
	$broker->create_topic("$v->{prefix}.public.$_->[0]", 3) for @tables;
}

# --- Kafka Connect workers ------------------------------------------------
my @connect_dirs;
END
{
	local $?;
	system($debezium_sh, 'stop', $_) for reverse @connect_dirs;
}

# a template of test/debezium/sink with its @NAME@s filled in
sub fill_template
{
	my ($template, $file, %values) = @_;
	my $text = slurp_file("$templates/$template");
	$text =~ s/\@([A-Z]+)\@/
	  defined $values{$1} ? $values{$1} : die "$template: no value for \@$1\@"/ge;
	open(my $fh, '>', $file) or die "cannot write $file: $!";
	print $fh $text;
	close $fh;
	return $file;
}

# Start Kafka Connect with one connector; returns its directory
sub start_connect
{
	my ($name, $template, %values) = @_;
	my $dir = "$PostgreSQL::Test::Utils::log_path/410_connect_$name";
	my $props = fill_template($template, "$PostgreSQL::Test::Utils::tmp_check/$name.properties",
		NAME => $name, PORT => $port, USER => $user, %values);
	push @connect_dirs, $dir;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $debezium_sh, 'start', $dir, '--bootstrap', $bootstrap,
			'--props', $props ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(300));
	ok($ok, "Kafka Connect with $name runs") or diag "$out\n$err";
	return $dir;
}

# The connector's task: undef while RUNNING, else its state and trace
sub task_failure
{
	my ($dir) = @_;
	my $rest = -s "$dir/rest" ? slurp_file("$dir/rest") : undef;
	return 'no REST server' unless $rest;
	chomp $rest;
	my $name = slurp_file("$dir/name");
	chomp $name;
	my $res = HTTP::Tiny->new(timeout => 5)->get("$rest/connectors/$name/status");
	return "status: $res->{status} $res->{content}" unless $res->{success};
	my $st = JSON::PP->new->decode($res->{content});
	for my $t ($st->{connector}, @{ $st->{tasks} // [] })
	{
		next if $t->{state} eq 'RUNNING';
		# the exception and its causes, without the stack
		my $trace = join("\n", grep { !/^\s+at / } split /\n/, $t->{trace} // '');
		return "$t->{state}: $trace";
	}
	return undef;
}

# The first error the sink logged, with the lines that follow it
sub first_error
{
	my ($dir) = @_;
	my @lines = split /\n/, slurp_file("$dir/connect.log");
	for my $i (0 .. $#lines)
	{
		# (the plugin scan's complaints about CloudEventsConverter are not)
		next unless $lines[$i] =~ /\] ERROR / && $lines[$i] !~ /Scanner\)$/;
		my @shown = ($lines[$i]);
		for my $l (@lines[ $i + 1 .. $#lines ])
		{
			last if $l =~ /^\[/ || @shown >= 12;
			push @shown, $l unless $l =~ /^\s+at /;
		}
		return join("\n", @shown);
	}
	return '(no ERROR in connect.log)';
}

# The record Connect's error handler named (errors.log.include.messages),
# as it is in Kafka: key and value
sub failed_record
{
	my ($dir) = @_;
	my ($topic, $partition, $offset) = slurp_file("$dir/connect.log") =~
	  /consumed record is \{topic='([^']+)', partition=(\d+), offset=(\d+)/
	  or return '(connect.log names no failed record)';
	my ($m) = grep { $_->{partition} == $partition && $_->{offset} == $offset }
	  $broker->consume($topic);
	return "the record $topic/$partition/$offset is not in Kafka" unless $m;
	my $show = sub {
		my $s = shift // 'null';
		return length($s) > 4000 ? substr($s, 0, 4000) . '...' : $s;
	};
	return "the record it failed on, $topic/$partition/$offset:\n key: "
	  . $show->($m->{key}) . "\n value: " . $show->($m->{payload});
}

# --- the sources ------------------------------------------------------------
for my $v (@variants)
{
	if ($v->{source} eq 'kafka_fdw')
	{
		create_kafka_server($node, $broker, 'k');
		$node->safe_psql('postgres',
			"SELECT kafka_fdw.cdc_create('kf', 'k', 'pub', 'kf', snapshot => true)");
		ok( $node->poll_query_until('postgres',
				"SELECT state = 'streaming' AND snapshot_done FROM kafka_fdw.cdc_status WHERE name = 'kf'"),
			'kafka_fdw stream kf has taken its snapshot');
	}
	else
	{
		start_connect('dbz_source', 'postgres-source.properties',
			DBNAME => 'postgres', PREFIX => 'dbz', PUBLICATION => 'pub', SLOT => 'dbz_source',
			TABLES => join(',', map { "public.$_->[0]" } @tables));
		# from its slot on, every change is captured (the snapshot is the slot's)
		ok( $node->poll_query_until('postgres',
				"SELECT count(*) = 1 FROM pg_replication_slots WHERE slot_name = 'dbz_source'"),
			"Debezium's PostgreSQL connector has its slot");
	}
	$v->{dir} = start_connect("sink_$v->{prefix}", 'jdbc-sink.properties',
		DBNAME => $v->{db},
		TOPICS => join(',', map { "$v->{prefix}.public.$_->[0]" } @tables));
}

# --- the workload -------------------------------------------------------------
$node->safe_psql('postgres', $changes);
$node->safe_psql('postgres', $markers);
my $source_counts = $node->safe_psql('postgres',
	join(' UNION ALL ', map { "SELECT count(*) FROM $_->[0]" } @tables));
note "source rows: " . join(', ', split /\n/, $source_counts);

# every row of a table as text (a JSON string: one line), in key order
sub rows
{
	my ($db, $table) = @_;
	my ($name, $order) = @$table;
	return [ split /\n/,
		$node->safe_psql($db, "SELECT to_json(r::text) FROM $name r ORDER BY $order") ];
}

# Rows of the first list that are not in the second (a multiset EXCEPT ALL)
sub except_all
{
	my ($a, $b) = @_;
	my %left;
	$left{$_}++ for @$b;
	return [ grep { !($left{$_} && $left{$_}-- > 0) } @$a ];
}

my $done_sql = join(' AND ',
	map { "EXISTS (SELECT FROM $_->[0] WHERE $_->[2])" } @tables);
my $counts_sql = join(' UNION ALL ', map { "SELECT count(*) FROM $_->[0]" } @tables);

for my $v (@variants)
{
	my $what = "$v->{source} -> JDBC sink";
	my $start = time;
	my $failure;
	my $tries = 0;
	# the markers came last, but a topic has three partitions: then poll
	# until the copy is equal too (deadline), failing fast if the sink did
	my $same = poll_until(
		sub {
			if (++$tries % 20 == 0 && ($failure = task_failure($v->{dir})))
			{
				return 1;
			}
			return 0
			  unless $node->safe_psql($v->{db}, "SELECT $done_sql") eq 't'
			  && $node->safe_psql($v->{db}, $counts_sql) eq $source_counts;
			for my $t (@tables)
			{
				return 0
				  unless join("\n", @{ rows('postgres', $t) }) eq
				  join("\n", @{ rows($v->{db}, $t) });
			}
			return 1;
		},
		240);
	$failure //= task_failure($v->{dir});
	diag "$what: the copy is not equal to the source after 240 s"
	  unless $same || $failure;
	ok(!$failure, "$what: the sink task is RUNNING")
	  or diag "$failure\nfirst ERROR of $v->{dir}/connect.log:\n"
	  . first_error($v->{dir}) . "\n" . failed_record($v->{dir});
	note sprintf('%s: copy complete or given up after %d s', $what, time - $start);

	for my $t (@tables)
	{
		my ($src, $copy) = (rows('postgres', $t), rows($v->{db}, $t));
		my $missing = except_all($src, $copy);
		my $extra = except_all($copy, $src);
		is(scalar @$copy, scalar @$src, "$what: $t->[0] has as many rows as the source");
		is_deeply([ @$missing[ 0 .. ($#$missing < 9 ? $#$missing : 9) ] ], [],
			"$what: every row of $t->[0] is in the copy (source EXCEPT ALL copy)")
		  or diag scalar(@$missing) . ' rows missing';
		is_deeply([ @$extra[ 0 .. ($#$extra < 9 ? $#$extra : 9) ] ], [],
			"$what: the copy of $t->[0] has no other row (copy EXCEPT ALL source)")
		  or diag scalar(@$extra) . ' rows too many';
	}
}

system($debezium_sh, 'stop', $_) for reverse @connect_dirs;
@connect_dirs = ();
$node->stop;
$broker->stop;
done_testing();
