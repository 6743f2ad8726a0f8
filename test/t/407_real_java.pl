
# Copyright (c) kafka_fdw contributors

# Java interoperability on real Kafka, with Apache Kafka's own Java client
# (kafka-clients, compiled against from the cluster's jar cache):
# - what a Java producer writes (keys, null keys, null values, headers with
#   null values and repeated names, explicit timestamps; one batch per codec:
#   lz4, zstd, gzip, snappy) reads back through SELECT exactly: key, value,
#   headers, timestamp, partition, offset;
# - a Java consumer reads exactly what INSERT (json format, keys, headers,
#   timestamps) and a CDC stream wrote;
# - for 1,000 keys on a 7-partition topic, INSERT chooses the partition of
#   the Java client's default partitioner (murmur2).

use strict;
use warnings;
use utf8;

use Test::More;
BEGIN
{
	plan skip_all => 'needs real Kafka (KFDW_TEST_KAFKA=real)'
	  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';
}

use Encode qw(encode_utf8);
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

use KafkaTestBroker;
use KafkaFdwTest;

my @codecs = qw(lz4 zstd gzip snappy);
my $broker = KafkaTestBroker->new();
# the messages carry timestamps of 2023 and 2024: without retention.ms -1
# the broker would delete them within seconds
my %topics = (
	(map { ("j_$_" => 2) } @codecs),
	j_insert => 3,
	'jc.public.items' => 2,
	j_part => 7,
	j_part_java => 7,
	j_part_crc => 7);
$broker->create_topic($_, $topics{$_}, 'retention.ms=-1') for sort keys %topics;
my $bootstrap = $broker->bootstrap;
my $json = JSON::PP->new->utf8->canonical;

# --- the Java client, compiled into the test's tmp dir -----------------------
my $lib;
if ($ENV{KFDW_KAFKA_CACHE} && -d "$ENV{KFDW_KAFKA_CACHE}/kafka-4.1.1/lib")
{
	$lib = "$ENV{KFDW_KAFKA_CACHE}/kafka-4.1.1/lib";
}
else
{
	# the jars the cluster runs on
	$lib = slurp_file("$broker->{dir}/libdir");
	chomp $lib;
}
my @clients = glob("$lib/kafka-clients-*.jar");
ok(@clients, "the kafka-clients jar is in $lib");

my $src = File::Spec->catfile(dirname(File::Spec->rel2abs(__FILE__)),
	File::Spec->updir, 'java', 'KfdwJava.java');
my $classes = PostgreSQL::Test::Utils::tempdir('java');
my ($out, $err) = ('', '');
IPC::Run::run([ 'javac', '-nowarn', '-d', $classes, '-cp', "$lib/*", $src ],
	'<', \'', '>', \$out, '2>', \$err, IPC::Run::timeout(180));
is($?, 0, 'KfdwJava.java compiles against kafka-clients') or diag $err;
# the clients' log4j stays quiet (its complaints would go to stdout)
my $log4j = "$classes/log4j2.properties";
open(my $fh, '>', $log4j) or die "cannot write $log4j: $!";
print $fh "status = off\nrootLogger.level = off\n";
close $fh;

# run KfdwJava MODE ARGS with STDIN; returns its JSON lines, decoded
sub java
{
	my ($stdin, @args) = @_;
	my ($o, $e) = ('', '');
	$stdin = encode_utf8($stdin);
	IPC::Run::run(
		[ 'java', '-Xmx256m', '-XX:+UseSerialGC',
		  "-Dlog4j2.configurationFile=$log4j",
		  '-cp', "$classes:$lib/*", 'KfdwJava', @args ],
		'<', \$stdin, '>', \$o, '2>', \$e, IPC::Run::timeout(180));
	die "KfdwJava @args failed: $e" if $?;
	return map { $json->decode($_) } grep { /^\{/ } split /\n/, $o;
}

# Java's header list [[name, value], ...] as kafka_fdw's headers jsonb
sub headers_jsonb
{
	my ($list) = @_;
	my (%h, %n);
	$n{ $_->[0] }++ for @$list;
	for my $pair (@$list)
	{
		my ($name, $value) = @$pair;
		if ($n{$name} > 1) { push @{ $h{$name} }, $value; }
		else { $h{$name} = $value; }
	}
	return \%h;
}

my $node = kafka_fdw_node('java', cdc => 1);
create_kafka_server($node, $broker, 'k');

# --- a Java producer's messages, read by SELECT ------------------------------
for my $codec (@codecs)
{
	my @sent = java('', 'produce', $bootstrap, "j_$codec", $codec);
	is(scalar @sent, 20, "$codec: the Java producer wrote 20 messages");

	$node->safe_psql('postgres', qq{
CREATE FOREIGN TABLE j_$codec (
  part int OPTIONS (partition 'true'),
  off bigint OPTIONS (offset 'true'),
  k text OPTIONS (key 'true'),
  ts timestamptz OPTIONS (timestamp 'true'),
  hdrs jsonb OPTIONS (headers 'true'),
  v text
) SERVER k OPTIONS (topic 'j_$codec', format 'raw');
});
	my $rows = $node->safe_psql('postgres', qq{
SELECT json_agg(json_build_object('partition', part, 'offset', off, 'key', k,
         'timestamp', (extract(epoch FROM ts) * 1000)::bigint,
         'headers', hdrs, 'value', v) ORDER BY part, off)
  FROM j_$codec});
	my $got = $json->decode($rows);
	my @want = map {
		{
			partition => $_->{partition},
			offset => $_->{offset},
			key => $_->{key},
			timestamp => $_->{timestamp},
			headers => headers_jsonb($_->{headers}),
			value => $_->{value},
		}
	} sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} } @sent;
	is_deeply($got, \@want,
		"$codec: SELECT reads every key, value, header, timestamp, partition and offset");

	# the broker kept the producer's codec: the batches are compressed
	my ($dump, $derr) = ('', '');
	my @segments = glob("$broker->{dir}/broker-*/data/j_$codec-0/*.log");
	IPC::Run::run(
		[ 'java', '-Xmx256m', "-Dlog4j2.configurationFile=$log4j",
		  '-cp', "$lib/*", 'kafka.tools.DumpLogSegments', '--files', $segments[0] ],
		'<', \'', '>', \$dump, '2>', \$derr, IPC::Run::timeout(120));
	like($dump, qr/compresscodec: \Q$codec\E/i,
		"$codec: the log segment holds $codec-compressed batches")
	  or diag "$dump$derr";
}

# --- what INSERT wrote, read by a Java consumer ------------------------------
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE j_insert (
  k text OPTIONS (key 'true'),
  part int OPTIONS (partition 'true'),
  off bigint OPTIONS (offset 'true'),
  ts timestamptz OPTIONS (timestamp 'true'),
  hdrs jsonb OPTIONS (headers 'true'),
  id int, name text, amount numeric, tags text[], doc jsonb
) SERVER k OPTIONS (topic 'j_insert', format 'json');
});
my $ret = $node->safe_psql('postgres', q{
WITH ins AS (
    INSERT INTO j_insert (k, ts, hdrs, id, name, amount, tags, doc)
    SELECT 'key-' || i,
           '2024-03-01 12:00:00+00'::timestamptz + i * interval '1.5 s',
           jsonb_build_object('i', i::text, 'z', NULL, 'dup', jsonb_build_array('x', 'y')),
           i, 'name ' || i, i * 1.25, ARRAY['a', 'b' || i],
           jsonb_build_object('nested', jsonb_build_object('n', i))
      FROM generate_series(1, 30) i
    RETURNING k, part, off, id)
SELECT json_agg(ins ORDER BY id) FROM ins});
my %returned = map { $_->{k} => $_ } @{ $json->decode($ret) };
is(scalar keys %returned, 30, 'INSERT ... RETURNING returned 30 rows');

my @jmsgs = java('', 'consume', $bootstrap, 'j_insert', 30);
is(scalar @jmsgs, 30, 'the Java consumer reads 30 messages');
my $exact = 0;
my $shown = 0;
for my $m (@jmsgs)
{
	my ($i) = ($m->{key} // '') =~ /^key-(\d+)$/ or next;
	my $ts = 1709294400000 + $i * 1500;
	my $amount = sprintf('%.2f', $i * 1.25);
	my $value = qq({"id":$i,"name":"name $i","amount":$amount,"tags":["a","b$i"],"doc":{"nested": {"n": $i}}});
	my $ok = $m->{value} eq $value
	  && $m->{timestamp} == $ts
	  && $m->{timestampType} eq 'CreateTime'
	  && $json->encode($m->{headers}) eq $json->encode([ [ 'i', "$i" ], [ 'z', undef ], [ 'dup', 'x' ], [ 'dup', 'y' ] ])
	  && $m->{partition} == $returned{"key-$i"}{part}
	  && $m->{offset} == $returned{"key-$i"}{off};
	diag "message of key-$i: " . $json->encode($m) . " want value $value ts $ts at "
	  . $json->encode($returned{"key-$i"})
	  if !$ok && !$shown++;
	$exact++ if $ok;
}
is($exact, 30,
	'Java reads each INSERTed message exactly: key, JSON value, headers in order, create time, partition and offset RETURNING gave');

# --- what a CDC stream wrote, read by a Java consumer ------------------------
$node->safe_psql('postgres', q{
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);
CREATE PUBLICATION pj FOR TABLE items;
});
$node->safe_psql('postgres',
	"SELECT kafka_fdw.cdc_create('jc', 'k', 'pj', snapshot => false)");
ok($node->poll_query_until('postgres',
		"SELECT state = 'streaming' FROM kafka_fdw.cdc_status WHERE name = 'jc'"),
	'the CDC stream is streaming');
$node->safe_psql('postgres', q{
INSERT INTO items VALUES (1, 'apple', 1.10), (2, 'pear', 2.20), (3, 'plum', 3.30);
UPDATE items SET price = 1.15 WHERE id = 1;
DELETE FROM items WHERE id = 2;
});
my @cdc_java = java('', 'consume', $bootstrap, 'jc.public.items', 6);
my @cdc_kcat = $broker->consume('jc.public.items');
is(scalar @cdc_java, 6, 'Java reads the 6 messages of the stream (3 creates, update, delete, tombstone)');
my $norm = sub {
	my @m = map {
		{ partition => $_->{partition}, offset => $_->{offset}, key => $_->{key},
		  value => $_->{value} // $_->{payload}, timestamp => $_->{timestamp} }
	} @_;
	return [ sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} } @m ];
};
is_deeply($norm->(@cdc_java), $norm->(@cdc_kcat),
	'Java and kcat read the same bytes of the stream (keys, values, timestamps, positions)');
my %ops;
for my $m (sort { $a->{offset} <=> $b->{offset} } @cdc_java)
{
	my $v = cdc_payload($m->{value});
	push @{ $ops{ cdc_key($m->{key}) } }, $v ? $v->{op} : 'tombstone';
}
is_deeply(\%ops,
	{ '{"id":1}' => [ 'c', 'u' ], '{"id":2}' => [ 'c', 'd', 'tombstone' ],
	  '{"id":3}' => ['c'] },
	'Java sees each key\'s changes in order, in Debezium\'s envelope, schema and payload');
my ($upd) = grep { defined $_->{value} && $_->{value} =~ /"op":"u"/ } @cdc_java;
# price: a VariableScaleDecimal, 115 (0x73) at scale 2
is_deeply($upd && cdc_payload($upd->{value})->{after},
	{ id => 1, name => 'apple', price => { scale => 2, value => 'cw==' } },
	'the update\'s after image');

# --- the partition of each key: kafka_fdw's INSERT and the Java client ---------
my @keys = map { $_ % 10 == 0 ? "ключ-$_ ☃" : "key-$_" } 1 .. 1000;
my $values = join(",\n", map { my $k = $keys[$_ - 1]; "('$k', $_)" } 1 .. 1000);
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE j_part (k text OPTIONS (key 'true'),
  part int OPTIONS (partition 'true'), id int)
  SERVER k OPTIONS (topic 'j_part');
});
my $chosen = $node->safe_psql('postgres', encode_utf8(qq{
WITH ins AS (INSERT INTO j_part (k, id) VALUES $values RETURNING k, part)
SELECT json_agg(ins) FROM ins}));
my %fdw = map { $_->{k} => $_->{part} } @{ $json->decode($chosen) };
is(scalar keys %fdw, 1000, 'INSERT published 1000 keys');

my %stored;
$stored{ $_->{key} } = $_->{partition} for $broker->consume('j_part');
my $keys_in = join('', map { "$_\n" } @keys);
my %murmur = map { $_->{key} => $_->{partition} } java($keys_in, 'murmur2', 7);
my %javap = map { $_->{key} => $_->{partition} }
  java($keys_in, 'produce-keys', $bootstrap, 'j_part_java');
is(scalar keys %murmur, 1000, 'Java hashed 1000 keys');
is(scalar keys %javap, 1000, 'the Java producer wrote 1000 keys');

my @differ = grep { !defined $fdw{$_} || $fdw{$_} != $murmur{$_} } @keys;
is(scalar @differ, 0,
	'for all 1000 keys INSERT chose toPositive(murmur2(key)) % 7, as Utils.murmur2 computes it')
  or diag "first: $differ[0]: kafka_fdw " . ($fdw{ $differ[0] } // 'none') . ", Java $murmur{$differ[0]}";
@differ = grep { !defined $javap{$_} || !defined $stored{$_} || $stored{$_} != $javap{$_} } @keys;
is(scalar @differ, 0,
	'and each key is stored in the partition the Java producer chose for it')
  or diag "first: $differ[0]";
my %used;
$used{$_}++ for values %fdw;
is(scalar keys %used, 7, 'the keys spread over all 7 partitions');

# the comparison tells partitioners apart: librdkafka's CRC32 partitioner
# (a server option) puts most keys elsewhere
create_kafka_server($node, $broker, 'kcrc', options => { partitioner => 'consistent' });
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE j_part_crc (k text OPTIONS (key 'true'),
  part int OPTIONS (partition 'true'), id int)
  SERVER kcrc OPTIONS (topic 'j_part_crc');
});
$chosen = $node->safe_psql('postgres', encode_utf8(qq{
WITH ins AS (INSERT INTO j_part_crc (k, id) VALUES $values RETURNING k, part)
SELECT json_agg(ins) FROM ins}));
my %crc = map { $_->{k} => $_->{part} } @{ $json->decode($chosen) };
@differ = grep { !defined $crc{$_} || $crc{$_} != $murmur{$_} } @keys;
ok(@differ > 500,
	'with "partitioner" \'consistent\' (CRC32) most keys land elsewhere ('
	  . scalar(@differ) . ' of 1000)');

$node->stop;
$broker->stop;
done_testing();
