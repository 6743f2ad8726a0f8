# Copyright (c) kafka_fdw contributors

# What a producing statement does when the brokers go away: it fails with
# an ERROR once message.timeout.ms runs out (saying how many messages failed
# and why), never reports as published what was not, and a query cancel or
# statement_timeout interrupts its wait within about a second, after which
# nothing it had queued is published later.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { events => 1, waits => 1, stuck => 1 });

my $node = kafka_fdw_node('failures');
create_kafka_server($node, $broker, 'short',
	options => { 'message.timeout.ms' => '2000' }, user_mapping => 1);
create_kafka_server($node, $broker, 'long',
	options => { 'message.timeout.ms' => '120000' }, user_mapping => 1);
create_kafka_server(
	$node, $broker, 'tiny',
	options => {
		'message.timeout.ms' => '120000',
		'queue.buffering.max.messages' => '3'
	},
	user_mapping => 1);
$node->safe_psql(
	'postgres', qq{
CREATE FOREIGN TABLE stuck (id int, note text) SERVER tiny OPTIONS (topic 'stuck');
CREATE FOREIGN TABLE events (id int, note text)
  SERVER short OPTIONS (topic 'events', batch_size '10');
CREATE FOREIGN TABLE waits (id int, note text) SERVER long OPTIONS (topic 'waits');
CREATE FUNCTION slow(i int) RETURNS int LANGUAGE sql
  AS 'SELECT i FROM pg_sleep(0.01)';
});

# a broker taken down in the middle of a statement: the statement fails
# once message.timeout.ms runs out
my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe("INSERT INTO events VALUES (0, 'warm up')");
$s->query_until(qr/started/, q{\echo started
INSERT INTO events SELECT slow(i), 'mid-statement' FROM generate_series(1, 30000) i;
});
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'INSERT INTO events SELECT slow%'"
	),
	'the long INSERT is running');
# wait until the first of its messages are in Kafka (the high watermark
# passes the warm-up message; kcat -e would chase a partition that grows
# every 10 ms), then stop the brokers
ok( $node->poll_query_until(
		'postgres',
		"SELECT sum(high) > 1 FROM kafka_fdw.watermarks('events')"),
	'some messages of the statement were delivered');
$broker->down_all;
my $t0 = time;
my ($out, $ret) = $s->query('SELECT 1');
my $elapsed = time - $t0;
like(
	$s->{stderr},
	qr/ERROR:  could not publish \d+ of \d+ messages to Kafka topic "events"/,
	'the statement fails saying how many of its messages failed');
like($s->{stderr}, qr/DETAIL:  First failure \(partition 0\): .*timed out/i,
	'and why the first one failed');
ok($elapsed < 10, "it fails soon after message.timeout.ms ($elapsed s)");
$s->{stderr} = '';

# with the broker already down, a statement fails after message.timeout.ms
# (or connect_timeout_ms, if it has to ask for the topic's metadata)
$t0 = time;
($out, $ret) = $s->query("INSERT INTO events VALUES (-1, 'broker down')");
$elapsed = time - $t0;
like(
	$s->{stderr},
	qr/ERROR:  could not (publish 1 of 1 messages to Kafka topic "events"|get metadata from Kafka brokers)/,
	'an INSERT with the broker down fails');
ok($elapsed >= 1.9 && $elapsed < 10, "after the timeout ($elapsed s)");
$s->{stderr} = '';
$broker->up_all;
# (librdkafka may take a few seconds to reconnect: retry meanwhile)
my $back = 0;
for my $try (1 .. 20)
{
	($out, $ret) =
	  $s->query("INSERT INTO events VALUES (501, 'after the broker is back')");
	my $failed = $s->{stderr} ne '';
	$s->{stderr} = '';
	if (!$failed)
	{
		$back = 1;
		last;
	}
}
ok($back, 'a later statement succeeds once the broker is back');
my @msgs = $broker->consume('events');
ok((grep { ($_->{payload} // '') =~ /after the broker is back/ } @msgs) >= 1,
	'and its message is in the topic');

# query cancel interrupts the wait for delivery within a second
$s->query_safe("INSERT INTO waits VALUES (0, 'warm up')");
my $pid = $s->query_safe('SELECT pg_backend_pid()');
$broker->down_all;
$s->query_until(qr/started/, q{\echo started
INSERT INTO waits VALUES (1, 'cancelled');
});
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND query LIKE 'INSERT INTO waits VALUES (1%' AND state = 'active'"
	),
	'the INSERT waits for the broker');
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
($out, $ret) = $s->query('SELECT 1');
$elapsed = time - $t0;
like($s->{stderr}, qr/canceling statement due to user request/,
	'the INSERT was cancelled');
ok($elapsed < 2, "cancel took effect within a second or so ($elapsed s)");
$s->{stderr} = '';

# statement_timeout too
$s->query_safe("SET statement_timeout = '500ms'");
$t0 = time;
($out, $ret) = $s->query("INSERT INTO waits VALUES (2, 'timed out')");
$elapsed = time - $t0;
like($s->{stderr}, qr/canceling statement due to statement timeout/,
	'statement_timeout interrupts the wait');
ok($elapsed < 2.5, "within a second of the timeout ($elapsed s)");
$s->{stderr} = '';
$s->query_safe("RESET statement_timeout");

# once the broker is back, what the cancelled statements had queued is
# never published: a later message goes out alone
$broker->up_all;
$s->query_safe("INSERT INTO waits VALUES (3, 'after cancel')");
@msgs = $broker->consume('waits');
is_deeply(
	[ map { $_->{payload} } @msgs ],
	[ '{"id":0,"note":"warm up"}', '{"id":3,"note":"after cancel"}' ],
	'cancelled messages were purged, not published later');

# a full local queue: the statement waits for room, and cancel still works
$s->query_safe("INSERT INTO stuck VALUES (0, 'warm up')");
$broker->down_all;
$s->query_until(qr/started/, q{\echo started
INSERT INTO stuck SELECT i, 'queue full' FROM generate_series(1, 50) i;
});
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND query LIKE 'INSERT INTO stuck SELECT%' AND state = 'active'"
	),
	'the INSERT waits for room in the full queue');
$t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
($out, $ret) = $s->query('SELECT 1');
$elapsed = time - $t0;
like($s->{stderr}, qr/canceling statement due to user request/,
	'the INSERT waiting for room was cancelled');
ok($elapsed < 2, "within a second or so ($elapsed s)");
$s->{stderr} = '';
$broker->up_all;
$s->query_safe("INSERT INTO stuck VALUES (51, 'after cancel')");
is_deeply(
	[ map { $_->{payload} } $broker->consume('stuck') ],
	[ '{"id":0,"note":"warm up"}', '{"id":51,"note":"after cancel"}' ],
	'what the cancelled statement had queued was never published');
$s->quit;

$node->stop;
$broker->stop;
done_testing();
