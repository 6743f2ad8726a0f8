# Copyright (c) kafka_fdw contributors

# INSERT, INSERT ... SELECT and COPY FROM publish messages that an
# independent client (kcat) reads back as soon as the statement returns:
# contents, keys, headers and order; keyed messages land in the partition
# that the Java client's murmur2 partitioner picks; RETURNING gives the
# partition and offset that the broker assigned.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

use KafkaTestBroker;
use KafkaFdwTest;

# The Java client's murmur2 (org.apache.kafka.common.utils.Utils.murmur2),
# as a signed 32-bit integer.
sub murmur2
{
	my ($data) = @_;
	my @b = unpack('C*', $data);
	my $len = scalar @b;
	my $m = 0x5bd1e995;
	my $h = (0x9747b28c ^ $len) & 0xffffffff;
	my $i = 0;
	for (; $i + 4 <= $len; $i += 4)
	{
		my $k = $b[$i] | ($b[ $i + 1 ] << 8) | ($b[ $i + 2 ] << 16)
		  | ($b[ $i + 3 ] << 24);
		$k = ($k * $m) & 0xffffffff;
		$k ^= $k >> 24;
		$k = ($k * $m) & 0xffffffff;
		$h = ($h * $m) & 0xffffffff;
		$h ^= $k;
	}
	my $rest = $len - $i;
	$h ^= $b[ $i + 2 ] << 16 if $rest >= 3;
	$h ^= $b[ $i + 1 ] << 8 if $rest >= 2;
	if ($rest >= 1)
	{
		$h ^= $b[$i];
		$h = ($h * $m) & 0xffffffff;
	}
	$h ^= $h >> 13;
	$h = ($h * $m) & 0xffffffff;
	$h ^= $h >> 15;
	return $h >= 2**31 ? $h - 2**32 : $h;
}

# The Java client's partition of a key: toPositive(murmur2(key)) % n
sub java_partition
{
	my ($key, $n) = @_;
	return (murmur2($key) & 0x7fffffff) % $n;
}

# the implementation above gives the values Kafka's own tests expect
my %known = (
	'21' => -973932308,
	'foobar' => -790332482,
	'a-little-bit-long-string' => -985981536,
	'a-little-bit-longer-string' => -1486304829,
	'lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8' => -58897971,
	'abc' => 479470107);
is(murmur2($_), $known{$_}, "murmur2(\"$_\") as the Java client computes it")
  for sort keys %known;

my $broker = KafkaTestBroker->new(
	topics => { keyed => 6, copied => 1, meta => 3 });

my $node = kafka_fdw_node('deliveries');
create_kafka_server($node, $broker, 'kafka', user_mapping => 1);
$node->safe_psql(
	'postgres', qq{
CREATE FOREIGN TABLE keyed (k text OPTIONS (key 'true'), id int, name text)
  SERVER kafka OPTIONS (topic 'keyed');
CREATE FOREIGN TABLE copied (k text OPTIONS (key 'true'), id int, note text)
  SERVER kafka OPTIONS (topic 'copied', batch_size '100');
CREATE FOREIGN TABLE meta (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), k bytea OPTIONS (key 'true'),
  ts timestamptz OPTIONS (timestamp 'true'), h jsonb OPTIONS (headers 'true'),
  v text) SERVER kafka OPTIONS (topic 'meta', format 'raw');
});

# INSERT ... SELECT of keyed rows: everything is there when it returns
$node->safe_psql('postgres',
	"INSERT INTO keyed SELECT 'key-' || i, i, 'name ' || i FROM generate_series(1, 3000) i"
);
my @msgs = $broker->consume('keyed');
is(scalar @msgs, 3000, 'all 3000 rows published when INSERT returns');
my %seen = map { $_->{key} => $_ } @msgs;
is(scalar keys %seen, 3000, 'each key once');
my @wrong = grep { $_->{partition} != java_partition($_->{key}, 6) } @msgs;
is(scalar @wrong, 0,
	'every keyed message is in the partition of the Java murmur2 partitioner');
is_deeply(
	$seen{'key-42'}{payload} && JSON::PP->new->decode($seen{'key-42'}{payload}),
	{ id => 42, name => 'name 42' },
	'value is the JSON object of the data columns');
my $ordered = 1;
my %last;
for my $m (@msgs)
{
	my $id = JSON::PP->new->decode($m->{payload})->{id};
	$ordered = 0 if defined $last{ $m->{partition} } && $id < $last{ $m->{partition} };
	$last{ $m->{partition} } = $id;
}
ok($ordered, 'rows keep their order within each partition');

# COPY FROM
my $copy = join('', map { "c$_,$_,copied row $_\n" } 1 .. 1000);
my ($ret, $out, $err) = $node->psql('postgres',
	"COPY copied FROM STDIN WITH (FORMAT csv);\n$copy\\.\n");
is($ret, 0, 'COPY FROM succeeds') or diag $err;
like($out . $err, qr/^$|COPY 1000/, 'COPY reports 1000 rows');
@msgs = $broker->consume('copied');
is(scalar @msgs, 1000, 'COPY published 1000 messages');
is_deeply(
	[ map { $_->{key} } @msgs ],
	[ map { "c$_" } 1 .. 1000 ],
	'COPY published them in order with their keys');
is($msgs[999]{payload}, '{"id":1000,"note":"copied row 1000"}',
	'COPY row encoded as JSON');

# meta columns and RETURNING
my $returned = $node->safe_psql(
	'postgres', q{
INSERT INTO meta (p, k, ts, h, v) VALUES
  (1, '\x6b31', '2024-05-01 12:00:00+00', '{"trace": "t1", "tag": ["a", "b"]}', 'raw one'),
  (NULL, 'foobar', NULL, NULL, 'raw two'),
  (NULL, NULL, NULL, NULL, NULL)
RETURNING p, o, encode(k, 'escape'), v IS NULL;
});
@msgs = $broker->consume('meta');
is(scalar @msgs, 3, 'three raw messages');
my %by = map { ($_->{payload} // 'null') => $_ } @msgs;
is($by{'raw one'}{partition}, 1, 'explicit partition');
is($by{'raw one'}{key}, 'k1', 'bytea key');
is($by{'raw one'}{timestamp}, 1714564800000, 'timestamp column is the message timestamp');
is_deeply($by{'raw one'}{headers}, [ [ 'tag', 'a' ], [ 'tag', 'b' ], [ 'trace', 't1' ] ],
	'headers, an array giving the name once per element');
is($by{'raw two'}{partition}, java_partition('foobar', 3),
	'key without partition: Java partitioner');
ok(!defined $by{null}{key} && !defined $by{null}{payload},
	'null key and null value (a tombstone)');
my @rows = split /\n/, $returned;
is($rows[0], "1|$by{'raw one'}{offset}|k1|f", 'RETURNING partition and offset of row 1');
is($rows[1], "$by{'raw two'}{partition}|$by{'raw two'}{offset}|foobar|f",
	'RETURNING partition and offset of row 2');
is($rows[2], "$by{null}{partition}|$by{null}{offset}||t",
	'RETURNING partition and offset of row 3');

$node->stop;
$broker->stop;
done_testing();
