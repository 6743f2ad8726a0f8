
# Copyright (c) kafka_fdw contributors

# Transactional topics: transaction markers take offsets but are no
# messages, so a scan must end at the last stable offset without counting
# messages, and return exactly what a read_committed client reads.  (The
# embedded broker does not hide aborted transactions from read_committed
# consumers and writes no markers, so the test compares with kcat instead of
# asserting those.)

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { tx => 2 }, brokers => 1);
my $bootstrap = $broker->bootstrap;

# Transactions of 5, 3 and 2 messages into both partitions, all committed
my $script = <<'PY';
import sys
from confluent_kafka import Producer
p = Producer({'bootstrap.servers': sys.argv[1], 'transactional.id': 'kfdw-scan-test'})
p.init_transactions(30)
n = 0
for size in (5, 3, 2):
    p.begin_transaction()
    for i in range(size):
        p.produce('tx', value=('m%d' % n).encode(), partition=n % 2)
        n += 1
    p.commit_transaction(30)
p.flush(30)
print(n)
PY
my ($out, $err) = ('', '');
IPC::Run::run([ '/usr/bin/python3', '-c', $script, $bootstrap ],
	'>', \$out, '2>', \$err)
  or die "transactional producer failed: $err";
is($out, "10\n", 'three committed transactions, 10 messages');

my $node = kafka_fdw_node('scan_tx');
create_kafka_server($node, $broker, 'k', user_mapping => 1);
$node->safe_psql(
	'postgres', qq{
CREATE FOREIGN TABLE tx (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), v text) SERVER k OPTIONS (format 'raw');
});

my @kcat = sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} }
  $broker->consume('tx', isolation => 'read_committed');
is(scalar @kcat, 10, 'kcat reads 10 committed messages');
my $expected = join("\n", map { "$_->{partition}|$_->{offset}|$_->{payload}" } @kcat);
is($node->safe_psql('postgres', 'SELECT p, o, v FROM tx ORDER BY p, o'),
	$expected, 'the scan returns the same messages, offsets and values');

# the watermarks say where each partition ends (with a real broker, past the
# markers of the last transaction)
my %last;
$last{ $_->{partition} } = $_->{offset} for @kcat;
my $ends = $node->safe_psql('postgres',
	"SELECT string_agg((high > " . "CASE partition WHEN 0 THEN $last{0} ELSE $last{1} END)::text, ',' "
	  . "ORDER BY partition) FROM kafka_fdw.watermarks('tx')");
is($ends, 'true,true', 'each high watermark is past the last message');
is( $node->safe_psql(
		'postgres', 'SELECT count(*) FROM tx WHERE p = 1 AND o >= 2'),
	scalar(grep { $_->{partition} == 1 && $_->{offset} >= 2 } @kcat),
	'offset pushdown across markers');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tx LIMIT 4'),
	'10', 'count over the whole topic ends');

$node->stop;
done_testing();
