
# Copyright (c) kafka_fdw contributors

# What kafka_fdw.cdc_status says when a stream cannot deliver:
# - a topic that does not exist: last_error tells the cause (librdkafka's
#   text), and state never reads "streaming" while the worker fails, backs
#   off and starts again ("retrying", "waiting to retry");
# - Kafka down with a 5,000-row transaction undelivered: lag_bytes is at
#   least that transaction's WAL, and undelivered_age is set and grows;
#   both clear once Kafka has it.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

# l.public.owed has 8 partitions: the mock broker keeps a partition's
# newest few megabytes only (1,500 of the 5,001 events, some 17 MB in the
# schema/payload form, in one partition)
my $broker = KafkaTestBroker->new(topics => { 'l.public.owed' => 8 });
my $node = kafka_fdw_node('cdcretry', cdc => 1);

sub status
{
	my ($name, $cols) = @_;
	return split /\|/, $node->safe_psql('postgres',
		"SELECT $cols FROM kafka_fdw.cdc_status WHERE name = '$name'");
}

create_kafka_server($node, $broker, 'k');
# a server whose producer does not create topics, and soon gives up on one
# that does not exist
create_kafka_server($node, $broker, 'noauto',
	options => {
		'allow.auto.create.topics' => 'false',
		'topic.metadata.propagation.max.ms' => '500'
	});
$node->safe_psql('postgres', q{
CREATE TABLE owed (id int PRIMARY KEY, v text);
CREATE TABLE nt (id int PRIMARY KEY);
CREATE PUBLICATION p_owed FOR TABLE owed;
CREATE PUBLICATION p_nt FOR TABLE nt;
SELECT kafka_fdw.cdc_create('u', 'noauto', 'p_nt', snapshot => false);
SELECT kafka_fdw.cdc_create('l', 'k', 'p_owed', snapshot => false);
});
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM kafka_fdw.cdc_status WHERE state = 'streaming'"),
	'both streams are streaming');

# --- a topic that does not exist ---------------------------------------------
$node->safe_psql('postgres', 'INSERT INTO nt VALUES (1)');
ok( $node->poll_query_until('postgres',
		"SELECT last_error LIKE '%Unknown topic%' FROM kafka_fdw.cdc_status WHERE name = 'u'"),
	'last_error gets the cause');
my ($err) = status('u', 'last_error');
note("last_error: $err");
like($err,
	qr/^stream "u" could not deliver a message to Kafka: topic "u\.public\.nt": .*Unknown topic/,
	'last_error says what failed and why');

# watch two restarts of the failing worker: never "streaming"
my %seen;
my %pids;
my $owed_while_waiting = 0;
my $deadline = time + 90;
while (time < $deadline && keys %pids < 3)
{
	my ($state, $pid, $age) = status('u',
		"state, coalesce(worker_pid, 0), undelivered_age IS NOT NULL");
	$seen{$state}++;
	$pids{$pid} = 1 if $pid;
	$owed_while_waiting = 1 if $state eq 'waiting to retry' && $age eq 't';
	usleep(50_000);
}
ok(keys %pids >= 3, 'the worker failed and started again twice');
ok(!$seen{streaming}, 'state never reads streaming while the stream fails')
  or diag explain \%seen;
ok($seen{retrying} && $seen{'waiting to retry'},
	'it reads retrying, and waiting to retry between runs')
  or diag explain \%seen;
ok($owed_while_waiting, 'between runs the undelivered change is still owed');

$broker->create_topic('u.public.nt', 1);
ok( $node->poll_query_until('postgres',
		"SELECT state = 'streaming' AND undelivered_age IS NULL FROM kafka_fdw.cdc_status WHERE name = 'u'"),
	'once the topic exists the stream delivers and streams');
ok(poll_until(sub { grep { (cdc_key($_->{key}) // '') eq '{"id":1}' } $broker->consume('u.public.nt') }),
	'the change is in Kafka');

# --- Kafka down, a 5,000-row transaction undelivered ---------------------------
$node->safe_psql('postgres', "INSERT INTO owed VALUES (0, 'first')");
ok( $node->poll_query_until('postgres',
		"SELECT messages_sent = 1 AND undelivered_age IS NULL FROM kafka_fdw.cdc_status WHERE name = 'l'"),
	'the first change is delivered');
$broker->down_all;
my $before = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$node->safe_psql('postgres',
	"INSERT INTO owed SELECT i, 'row ' || i FROM generate_series(1, 5000) i");
my $after = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
my $txn_bytes = $node->safe_psql('postgres',
	"SELECT pg_wal_lsn_diff('$after', '$before')::bigint");
ok( $node->poll_query_until('postgres',
		"SELECT undelivered_age IS NOT NULL FROM kafka_fdw.cdc_status WHERE name = 'l'"),
	'the undelivered transaction shows an age');
my ($lag, $age1, $state) = status('l',
	"lag_bytes, extract(epoch FROM undelivered_age), state");
cmp_ok($lag, '>=', $txn_bytes,
	"lag_bytes ($lag) is at least the transaction's WAL ($txn_bytes bytes)");
is($state, 'retrying', 'the stream shows retrying');
ok( $node->poll_query_until('postgres',
		"SELECT extract(epoch FROM undelivered_age) > $age1 + 1 FROM kafka_fdw.cdc_status WHERE name = 'l'"),
	'undelivered_age grows while Kafka is down');
is( $node->safe_psql('postgres',
		"SELECT abs(extract(epoch FROM oldest_undelivered_at - (clock_timestamp() - undelivered_age))) < 1 FROM kafka_fdw.cdc_status WHERE name = 'l'"),
	't', 'undelivered_age is the age of oldest_undelivered_at');

$broker->up_all;
ok( $node->poll_query_until('postgres',
		"SELECT messages_sent = 5001 AND undelivered_age IS NULL AND oldest_undelivered_at IS NULL FROM kafka_fdw.cdc_status WHERE name = 'l'"),
	'once Kafka is back everything is delivered and nothing is owed');
ok( $node->poll_query_until('postgres',
		"SELECT lag_bytes < $txn_bytes FROM kafka_fdw.cdc_status WHERE name = 'l'"),
	'and lag_bytes falls');
is(scalar(grep { defined $_->{payload} } $broker->consume('l.public.owed')),
	5001, 'every row is in Kafka');

$node->stop;
done_testing();
