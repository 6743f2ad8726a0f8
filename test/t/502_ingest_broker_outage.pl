
# Copyright (c) kafka_fdw contributors

# An append stream through an outage of the whole Kafka cluster (mock: its
# brokers drop every connection and refuse new ones; real: every broker
# SIGKILLed, then started again on the same data): kafka_fdw.ingest_status
# goes to 'retrying' with a last_error that says what is wrong (not only
# "could not ..."), its lag unknown (NULL), and back to 'running' once the
# brokers are up.  Messages produced before the outage, during it (an
# independent producer queues them until the brokers are back) and after it
# are all in the target exactly once, as kcat reads them from the topic.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { outage => 4 }, brokers => 3);
my $node = kafka_fdw_node('outage', cdc => 1);
create_kafka_server($node, $broker, 'k', user_mapping => 1);
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE out_src (
  part int    OPTIONS (partition 'true'),
  off  bigint OPTIONS (offset 'true'),
  k    text   OPTIONS (key 'true'),
  id   int
) SERVER k OPTIONS (topic 'outage', format 'json');
CREATE TABLE out_tgt (part int, off bigint, k text, id int);
});

sub rows { return $node->safe_psql('postgres', 'SELECT count(*) FROM out_tgt'); }

# --- before: 2,000 messages, ingested -------------------------------------------
is($broker->ingest_produce('outage', first => 0, count => 2000, keys => 100),
	2000, '2,000 messages produced before the outage');
$node->safe_psql('postgres',
	q{SELECT kafka_fdw.ingest_create('out', 'out_src', 'out_tgt', 'append')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM out_tgt', '2000'),
	'they are ingested');
ok( $node->poll_query_until('postgres',
		q{SELECT state = 'running' AND lag = 0 FROM kafka_fdw.ingest_status WHERE name = 'out'}),
	'the stream is running with lag 0');

# --- every broker down ----------------------------------------------------------
$broker->down_all;
my $t0 = time;
my $st;
ok( poll_until(
		sub {
			$st = ingest_status($node, 'out');
			$st && $st->{state} eq 'retrying' && defined $st->{last_error};
		},
		120),
	sprintf('the stream goes to retrying with a last_error (after %.1f s)', time - $t0))
  or diag explain $st;
note('last_error: ' . ($st->{last_error} // 'NULL'));
like($st->{last_error} // '',
	qr/broker|transport|connect|refused|down|timed out/i,
	'last_error names the cause: the brokers cannot be reached');
unlike($st->{last_error} // '', qr/^[^:]*could not [^:]*$/,
	'last_error is more than "could not ..."');
ok(defined $st->{last_error_at}, 'last_error_at is set');
ok(!defined $st->{lag}, 'lag is NULL while Kafka cannot be asked');
is(scalar @{ $st->{worker_pids} // [] }, 1, 'the worker stays up');

# messages sent during the outage wait in the producer
my $during = $broker->ingest_produce('outage', first => 2000, count => 2000,
	keys => 100, background => 1);
is(rows(), '2000', 'nothing new arrives while the brokers are down');
ok($during->running && $during->delivered == 0,
	'the producer is still waiting for the brokers');

# --- brokers up -------------------------------------------------------------------
$broker->up_all;
$t0 = time;
ok( $node->poll_query_until('postgres',
		q{SELECT state = 'running' FROM kafka_fdw.ingest_status WHERE name = 'out'}),
	'the stream is running again');
note(sprintf('running %.1f s after the brokers came back', time - $t0));
is($during->finish, 2000, 'the 2,000 messages queued during the outage are delivered');
is($broker->ingest_produce('outage', first => 4000, count => 2000, keys => 100),
	2000, '2,000 messages produced after the outage');

# --- each message once -------------------------------------------------------------
my $positions = $broker->ingest_positions('outage');
is(scalar keys %$positions, 6000, 'kcat reads 6,000 messages');
ok($node->poll_query_until('postgres',
		q{SELECT sum(next_offset) FROM kafka_fdw.ingest_offsets WHERE name = 'out'}, '6000'),
	'ingest_offsets reaches the end of the topic');
ingest_compare('through the outage', $positions, [ $node, 'out_tgt' ]);
is($node->safe_psql('postgres', 'SELECT count(DISTINCT id) FROM out_tgt'),
	'6000', 'every id before, during and after is there');
$st = ingest_status($node, 'out');
is($st->{state}, 'running', 'the stream is running');
is($st->{lag}, 0, 'with lag 0');

$node->stop;
done_testing();
