
# Copyright (c) kafka_fdw contributors

# A backend waiting for Kafka says so: pg_stat_activity shows the wait
# event type "Extension" (PostgreSQL 15; named events from 17 on) while a
# scan waits for metadata, while a cursor waits for a fetch, and while an
# INSERT waits for its deliveries, and a query cancel ends each wait within
# a second.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { w1 => 2, wbig => 1, wout => 1 }, brokers => 1);

my $node = kafka_fdw_node('wait_event');
create_kafka_server($node, $broker, 'kpatient',
	options => { connect_timeout_ms => '600000' }, user_mapping => 1);
create_kafka_server(
	$node, $broker, 'ksmall',
	options => {
		connect_timeout_ms => '600000',
		'queued.max.messages.kbytes' => '1024',
		'fetch.max.bytes' => '1048576'
	},
	user_mapping => 1);
create_kafka_server($node, $broker, 'klong',
	options => { 'message.timeout.ms' => '120000' }, user_mapping => 1);
$node->safe_psql(
	'postgres', qq{
CREATE FOREIGN TABLE w1 (o bigint OPTIONS (offset 'true'), v text)
  SERVER kpatient OPTIONS (format 'raw');
CREATE FOREIGN TABLE wbig (o bigint OPTIONS (offset 'true'), v text)
  SERVER ksmall OPTIONS (format 'raw');
CREATE FOREIGN TABLE wout (id int, note text) SERVER klong;
});

# The wait events kafka_fdw's waits may show, by PostgreSQL version
my $events = "('Extension', 'KafkaFetch', 'KafkaProduce', 'KafkaMetadata', 'KafkaOffsets')";

# Wait until the session's backend waits for Kafka, as pg_stat_activity
# tells; cancel it and return how long the cancel took
sub check_wait
{
	my ($s, $pid, $what) = @_;

	ok( $node->poll_query_until(
			'postgres',
			"SELECT wait_event_type = 'Extension' AND wait_event IN $events FROM pg_stat_activity WHERE pid = $pid AND state = 'active'"
		),
		"pg_stat_activity: wait_event_type Extension while $what");
	my $t0 = time;
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	$s->query('SELECT 1');
	my $elapsed = time - $t0;
	like($s->{stderr}, qr/canceling statement due to user request/,
		"query cancel while $what");
	cmp_ok($elapsed, '<', 1.5, "the cancel ends the wait within a second ($what)");
	$s->{stderr} = '';
}

my $s = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $s->query_safe('SELECT pg_backend_pid()');
$broker->produce('w1', [ map { { value => "v$_" } } 1 .. 10 ]);
is($s->query_safe('SELECT count(*) FROM w1'), '10', 'the scan reads the topic');
$s->query_safe("INSERT INTO wout VALUES (0, 'warm up')");

SKIP:
{
	skip 'latency is a fault of the embedded broker only', 3
	  if $broker->is_real;

	# a cursor that has its ranges waits for a fetch that takes 5 s (3 MB in
	# the topic, more than the consumer of server ksmall prefetches)
	my $blob = 'x' x 10000;
	$broker->produce('wbig', [ map { { value => "$_:$blob" } } 1 .. 300 ]);
	$s->query_safe("BEGIN");
	$s->query_safe("DECLARE c CURSOR FOR SELECT o, length(v) FROM wbig");
	$s->query_safe("FETCH 1 FROM c");
	$broker->rtt(1, 5000);
	$s->query_until(qr/started/, "\\echo started\nFETCH ALL FROM c;\n");
	check_wait($s, $pid, 'a cursor waits for a fetch');
	$s->query('ROLLBACK');
	$s->{stderr} = '';
	$broker->rtt(1, 0);
}

$broker->down_all;

# a scan waits for the metadata of a broker that is down
$s->query_until(qr/started/, "\\echo started\nSELECT count(*) FROM w1;\n");
check_wait($s, $pid, 'a scan waits for a broker that is down');

# an INSERT waits for the delivery of its message
$s->query_until(qr/started/, "\\echo started\nINSERT INTO wout VALUES (1, 'waits');\n");
check_wait($s, $pid, 'an INSERT waits for its delivery');

$broker->up_all;
$s->quit;
$node->stop;
done_testing();
