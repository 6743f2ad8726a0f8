# Copyright (c) kafka_fdw contributors

# The server option transactional: a transaction's messages are held until
# COMMIT and published in one Kafka transaction, so a rolled-back
# transaction sends nothing at all (not even to read_uncommitted
# consumers); backends do not fence each other; past transaction_hold_bytes
# messages are streamed into the open Kafka transaction; a Kafka transaction
# that cannot commit fails the PostgreSQL COMMIT.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { orders => 3, audit => 1 });

my $node = kafka_fdw_node('transactions');
create_kafka_server(
	$node, $broker, 'ktx',
	options => { transactional => 'true', 'message.timeout.ms' => '3000' },
	user_mapping => 1);
create_kafka_server($node, $broker, 'ktx2',
	options => { transactional => 'true' }, user_mapping => 1);
$node->safe_psql(
	'postgres', qq{
CREATE FOREIGN TABLE orders (k text OPTIONS (key 'true'), id int, tag text)
  SERVER ktx OPTIONS (topic 'orders');
CREATE FOREIGN TABLE audit (id int, tag text) SERVER ktx OPTIONS (topic 'audit');
CREATE FOREIGN TABLE audit2 (id int, tag text) SERVER ktx2 OPTIONS (topic 'audit');
});

# how many messages with this tag a consumer sees
sub count_tag
{
	my ($tag, $isolation) = @_;
	my @all = (
		$broker->consume('orders', isolation => $isolation),
		$broker->consume('audit', isolation => $isolation));
	return scalar grep { ($_->{payload} // '') =~ /"tag":"\Q$tag\E"/ } @all;
}

# a transaction that rolls back publishes nothing, even uncommitted
my $s1 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
$s1->query_safe(
	"INSERT INTO orders SELECT 'k' || i, i, 'rolled back' FROM generate_series(1, 100) i");
$s1->query_safe("INSERT INTO audit VALUES (1, 'rolled back')");
is(count_tag('rolled back', 'read_uncommitted'), 0,
	'nothing is sent while the transaction is open');
$s1->query_safe('ROLLBACK');
is(count_tag('rolled back', 'read_uncommitted'), 0,
	'a rolled-back transaction sent nothing, even to read_uncommitted');

# two backends with open transactions at once: neither fences the other
my $s2 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
$s2->query_safe('BEGIN');
$s1->query_safe(
	"INSERT INTO orders SELECT 'a' || i, i, 'session one' FROM generate_series(1, 50) i");
$s2->query_safe(
	"INSERT INTO orders SELECT 'b' || i, i, 'session two' FROM generate_series(1, 50) i");
$s2->query_safe("INSERT INTO audit VALUES (2, 'session two')");
is(count_tag('session one', 'read_uncommitted'), 0, 'session one not yet visible');
$s1->query_safe('COMMIT');
is(count_tag('session one', 'read_committed'), 50,
	'session one visible after its COMMIT');
is(count_tag('session two', 'read_uncommitted'), 0,
	'session two still held');
$s2->query_safe('COMMIT');
is(count_tag('session two', 'read_committed'), 51,
	'session two visible after its COMMIT, across both tables');
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO audit VALUES (3, 'session one again')");
$s1->query_safe('COMMIT');
is(count_tag('session one again', 'read_committed'), 1,
	'the first backend commits again: it was not fenced');

# one transaction through two transactional servers: the backend's two
# producers have their own transactional ids and do not fence each other
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO audit VALUES (7, 'two servers')");
$s1->query_safe("INSERT INTO audit2 VALUES (8, 'two servers')");
$s1->query_safe('COMMIT');
is(count_tag('two servers', 'read_committed'), 2,
	'a transaction through two transactional servers commits both');
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO audit VALUES (9, 'two servers again')");
$s1->query_safe("INSERT INTO audit2 VALUES (10, 'two servers again')");
$s1->query_safe('COMMIT');
is(count_tag('two servers again', 'read_committed'), 2,
	'and again: neither producer was fenced by the other');

# past transaction_hold_bytes, messages are streamed into the Kafka
# transaction before COMMIT
$node->safe_psql('postgres',
	"ALTER SERVER ktx OPTIONS (ADD transaction_hold_bytes '1000')");
$s1->quit;
$s1 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
$s1->query_safe(
	"INSERT INTO orders SELECT 's' || i, i, 'streamed' FROM generate_series(1, 200) i");
is(count_tag('streamed', 'read_uncommitted'), 200,
	'past the bound, messages are in the open Kafka transaction');
$s1->query_safe('COMMIT');
is(count_tag('streamed', 'read_committed'), 200, 'streamed transaction committed');
$s1->query_safe('BEGIN');
$s1->query_safe(
	"INSERT INTO orders SELECT 's' || i, i, 'streamed then aborted' FROM generate_series(1, 200) i");
$s1->query_safe('ROLLBACK');
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO audit VALUES (4, 'after abort')");
$s1->query_safe('COMMIT');
is(count_tag('after abort', 'read_committed'), 1,
	'the producer works again after an aborted Kafka transaction');
$node->safe_psql('postgres',
	"ALTER SERVER ktx OPTIONS (DROP transaction_hold_bytes)");
$s1->quit;
$s2->quit;

# a Kafka transaction that cannot commit fails the COMMIT
$s1 = $node->background_psql('postgres', on_error_stop => 0);
$s1->query_safe("INSERT INTO audit VALUES (5, 'before the broker went down')");
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO audit VALUES (5, 'broker down at commit')");
$broker->down(1);
my ($out, $ret) = $s1->query('COMMIT');
$broker->up(1);
is($ret, 1, 'COMMIT fails when the Kafka transaction cannot commit');
like(
	$s1->{stderr},
	qr/ERROR:  could not commit the Kafka transaction of server "ktx"/,
	'with an error saying so');
$s1->{stderr} = '';
is($s1->query_safe('SELECT 1'), '1', 'the session goes on');
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO audit VALUES (6, 'after failed commit')");
$s1->query_safe('COMMIT');
is(count_tag('after failed commit', 'read_committed'), 1,
	'a later transaction commits once the broker is back');
is(count_tag('broker down at commit', 'read_committed'), 0,
	'the failed transaction did not publish');
$s1->quit;

$node->stop;
$broker->stop;
done_testing();
