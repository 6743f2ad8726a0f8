
# Copyright (c) kafka_fdw contributors

# Exactly-once ingestion across crashes: an independent client produces
# 200,000 keyed JSON messages into an 8-partition topic while an append
# stream ingests them; in the middle the stream's worker is SIGKILLed (the
# postmaster then restarts every backend, as after any crash), and later
# the whole server stops with "pg_ctl -m immediate" and starts again.  The
# target has no unique index, so a message ingested twice would be there
# twice: once the stream has caught up, the target, compared with what kcat
# reads from the topic, holds every message exactly once (count, count per
# key, no (partition, offset) twice, none missing), and
# kafka_fdw.ingest_offsets has each partition's next offset equal to its
# high watermark.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

my $total = 200_000;
my $partitions = 8;

my $broker = KafkaTestBroker->new(topics => { eo => $partitions });
# after the SIGKILL of a worker the postmaster restarts every backend
my $node = kafka_fdw_node('eo', cdc => 1, conf => ['restart_after_crash = on']);
create_kafka_server($node, $broker, 'k', user_mapping => 1);
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE eo_src (
  part int    OPTIONS (partition 'true'),
  off  bigint OPTIONS (offset 'true'),
  k    text   OPTIONS (key 'true'),
  id   int,
  vk   text   OPTIONS (json 'k')
) SERVER k OPTIONS (topic 'eo', format 'json');
-- (part, off) identifies a message, but nothing refuses it twice
CREATE TABLE eo_tgt (part int, off bigint, k text, id int, vk text);
});

# The producer runs at a pace the worker outruns, so that the stream is
# always in the middle of the topic until the producer ends: at each kill,
# 0 < rows ingested <= messages delivered so far < total.  batch.rows 500
# makes a commit every few milliseconds, so the kills land among batches.
my $producer = $broker->ingest_produce('eo', count => $total, keys => 1000,
	rate => 4000, background => 1);
$node->safe_psql('postgres', q{
SELECT kafka_fdw.ingest_create('eo', 'eo_src', 'eo_tgt', 'append',
                               '{"batch.rows": 500}')});

sub rows
{
	# psql fails (or dies) while the server restarts
	my ($rc, $out) = eval { $node->psql('postgres', 'SELECT count(*) FROM eo_tgt') };
	return defined $rc && $rc == 0 ? $out : -1;
}

# Wait until the target has at least MORE rows more than AFTER and the
# producer is still going; returns the rows then and the deliveries.
sub midway
{
	my ($what, $after, $more) = @_;
	my ($n, $delivered) = (-1, 0);
	ok( poll_until(
			sub { $n = rows(); $delivered = $producer->delivered; $n >= $after + $more },
			120),
		"$what: the stream ingests ($n rows)");
	ok($n > 0 && $delivered < $total && $producer->running,
		"$what: happens mid-ingestion ($n rows of $delivered delivered, $total to come)");
	return ($n, $delivered);
}

# --- kill -9 of the worker ---------------------------------------------------
my $st;
ok(poll_until(sub { $st = ingest_status($node, 'eo'); $st && $st->{worker_pids} && @{ $st->{worker_pids} } }, 60),
	'the stream has a worker');
my $pid = $st->{worker_pids}[0];
is( $node->safe_psql('postgres',
		"SELECT backend_type FROM pg_stat_activity WHERE pid = $pid"),
	'kafka_fdw ingest worker', "its pid $pid is the server's ingest worker");
my ($at_kill) = midway('kill -9 of the worker', 0, 20_000);
is(kill('KILL', $pid), 1, "worker $pid killed with SIGKILL");

# the postmaster restarts after the crash, the launcher restarts the worker
my $pid2;
ok( poll_until(
		sub {
			$st = ingest_status($node, 'eo');
			$pid2 = $st && $st->{worker_pids} ? $st->{worker_pids}[0] : undef;
			defined $pid2 && $pid2 != $pid;
		},
		120),
	'a new worker runs after the crash (' . ($pid2 // 'none') . ')');

# --- pg_ctl -m immediate ------------------------------------------------------
my ($at_stop) = midway('stop -m immediate', $at_kill, 20_000);
$node->stop('immediate');
$node->start;
ok(poll_until(sub { my $s = ingest_status($node, 'eo'); $s && $s->{worker_pids} && @{ $s->{worker_pids} } }, 60),
	'after the restart the stream has a worker again');

# --- everything arrives, each message once ------------------------------------
is($producer->finish, $total, "the producer delivered its $total messages");
my $positions = $broker->ingest_positions('eo');
is(scalar keys %$positions, $total, "kcat reads $total messages back");
my %high;
for (keys %$positions)
{
	my ($p, $o) = split /:/;
	$high{$p} = $o + 1 if ($high{$p} // 0) < $o + 1;
}
is(scalar keys %high, $partitions, 'every partition has messages');

my $want = join(',', map { "$_:$high{$_}" } sort { $a <=> $b } keys %high);
my $offsets_sql = q{SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition)
  FROM kafka_fdw.ingest_offsets WHERE name = 'eo'};
ok($node->poll_query_until('postgres', $offsets_sql, $want),
	'the stream catches up: ingest_offsets reaches the end of every partition');
is($node->safe_psql('postgres', $offsets_sql), $want,
	'ingest_offsets next_offset per partition equals the high watermark (kcat)');
is( $node->safe_psql('postgres',
		q{SELECT string_agg(partition || ':' || high, ',' ORDER BY partition)
		  FROM kafka_fdw.watermarks('eo_src')}),
	$want, 'and kafka_fdw.watermarks agrees');

ingest_compare('after kill -9 and -m immediate', $positions, [ $node, 'eo_tgt' ]);
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM eo_tgt WHERE vk IS DISTINCT FROM k OR id IS NULL}),
	'0', "every row has its message's value");

$st = ingest_status($node, 'eo');
is($st->{state}, 'running', 'the stream is running');
ok($node->poll_query_until('postgres',
		q{SELECT lag = 0 FROM kafka_fdw.ingest_status WHERE name = 'eo'}),
	'its lag is 0');
note(sprintf('killed at %d rows, stopped at %d rows', $at_kill, $at_stop));

$node->stop;
done_testing();
