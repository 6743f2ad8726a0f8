
# Copyright (c) kafka_fdw contributors

# A slow broker (cross-region round trips of 300 ms and 1 s): SELECT,
# INSERT (plain and transactional), EXPLAIN and watermarks() succeed within
# the server's connect_timeout_ms, and what was inserted reads back, through
# the table and as kcat reads it.  Query cancel and statement_timeout still
# stop a statement within about a second while a request is out, and the
# session works again afterwards.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use KafkaTestBroker;
use KafkaFdwTest;

# latency is a fault only the embedded broker injects
plan skip_all => 'round-trip latency is injected by the embedded broker only'
  if ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';

my $broker = KafkaTestBroker->new(topics => { s300 => 2, s1000 => 2, tx => 1 });

my $node = kafka_fdw_node('slow_broker');
create_kafka_server($node, $broker, 'k',
	options => { connect_timeout_ms => '20000' }, user_mapping => 1);
create_kafka_server(
	$node, $broker, 'ktx',
	options => { connect_timeout_ms => '20000', transactional => 'true' },
	user_mapping => 1);
$node->safe_psql(
	'postgres', q{
CREATE FOREIGN TABLE s300 (p int OPTIONS (partition 'true'), id int, tag text)
  SERVER k OPTIONS (topic 's300');
CREATE FOREIGN TABLE s1000 (p int OPTIONS (partition 'true'), id int, tag text)
  SERVER k OPTIONS (topic 's1000');
CREATE FOREIGN TABLE tx (id int, tag text) SERVER ktx OPTIONS (topic 'tx');
});

my ($ret, $out, $err);

# Every statement in a new session, so that each one has to connect, ask
# for metadata and watermarks again.
foreach my $rtt (300, 1000)
{
	my $t = "s$rtt";
	$broker->rtt(1, $rtt);

	($ret, $out, $err) = $node->psql('postgres',
		"INSERT INTO $t (p, id, tag) SELECT i % 2, i, 'rtt $rtt' FROM generate_series(1, 10) i");
	is($ret, 0, "INSERT at $rtt ms round trips") or diag($err);

	($ret, $out, $err) = $node->psql('postgres',
		"SELECT count(*), sum(id), min(tag) FROM $t");
	is($ret, 0, "SELECT at $rtt ms round trips") or diag($err);
	is($out, "10|55|rtt $rtt", "SELECT at $rtt ms reads back every message");

	($ret, $out, $err) = $node->psql('postgres',
		"SELECT partition, low, high FROM kafka_fdw.watermarks('$t') ORDER BY 1");
	is($ret, 0, "watermarks() at $rtt ms round trips") or diag($err);
	is($out, "0|0|5\n1|0|5", "watermarks() at $rtt ms");

	($ret, $out, $err) = $node->psql('postgres',
		"EXPLAIN SELECT * FROM $t WHERE p = 1");
	is($ret, 0, "EXPLAIN at $rtt ms round trips") or diag($err);

	# an independent client reads the same
	my @kcat = grep { ($_->{payload} // '') =~ /"tag":"rtt $rtt"/ } $broker->consume($t);
	is(scalar @kcat, 10, "kcat reads the 10 messages inserted at $rtt ms");
}

# a Kafka transaction at 1 s round trips: init, begin, commit
($ret, $out, $err) = $node->psql('postgres',
	"INSERT INTO tx SELECT i, 'txn' FROM generate_series(1, 5) i");
is($ret, 0, 'transactional INSERT at 1000 ms round trips') or diag($err);
is(scalar(grep { ($_->{payload} // '') =~ /"tag":"txn"/ }
	  $broker->consume('tx', isolation => 'read_committed')),
	5, 'kcat reads the committed transaction');

# statement_timeout while a metadata request is out at 1 s round trips, in
# a new session; then the same session scans again
my $session = $node->background_psql('postgres', on_error_stop => 0);
my $start = time;
$session->query_safe("SET statement_timeout = '300ms'");
my $res = $session->query("SELECT count(*) FROM s1000");
my $elapsed = time - $start;
like($session->{stderr}, qr/canceling statement due to statement timeout/,
	'statement_timeout while a request is out at 1 s round trips');
cmp_ok($elapsed, '<', 1.3, 'the statement ends within a second');
$session->{stderr} = '';
$session->query_safe("SET statement_timeout = 0");
$res = $session->query("SELECT count(*) FROM s1000");
is($res, '10', 'the same session scans again after the timeout');

# query cancel while a metadata request is out, this time with no answer at
# all (a broker that is down)
$broker->down(1);
my $pid = $session->query_safe("SELECT pg_backend_pid()");
$session->{stdin} .= "SELECT count(*) FROM s300;\n";
$session->{run}->pump_nb;
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND query LIKE 'SELECT count(*) FROM s300%' AND state = 'active' AND now() - query_start > interval '300 ms'"
	),
	'a scan waits for the broker that is down');
$start = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
ok(poll_until(sub { $session->{run}->pump_nb; $session->{stderr} =~ /canceling statement/ }, 30),
	'query cancel');
$elapsed = time - $start;
like($session->{stderr}, qr/canceling statement due to user request/,
	'query cancel while the broker is down');
cmp_ok($elapsed, '<', 1.5, 'cancel ends the wait within a second');
$broker->up(1);
$session->{stderr} = '';
$session->{stdout} = '';
$res = $session->query("SELECT count(*) FROM s300");
is($res, '10', 'the same session scans again once the broker is back');
$session->quit;

$node->stop;
done_testing();
