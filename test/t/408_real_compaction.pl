# Copyright (c) kafka_fdw contributors

# Compacted topics on a real Kafka cluster: the log cleaner keeps the last
# message of each key and leaves gaps in the offsets.  A scan reads over
# them: its rows are what kcat reads (keys, values, offsets), count(*)
# counts messages (not offsets), and partition/offset ranges that start or
# end inside a gap, or lie wholly in one, work, and a pushed-down LIMIT
# counts messages, not offsets.
#
# The embedded broker does not compact, so only real Kafka can answer this.

use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs real Kafka (KFDW_TEST_KAFKA=real)'
  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new();
my $bootstrap = $broker->bootstrap;
# segments roll every 100 ms (at the next append) and the cleaner takes any
# closed segment at once
$broker->create_topic('comp', 2, 'cleanup.policy=compact', 'segment.ms=100',
	'min.cleanable.dirty.ratio=0.01', 'min.compaction.lag.ms=0',
	'delete.retention.ms=86400000');

# Four rounds of 200 messages per partition, 0.2 s apart (so that each
# round is a segment of its own): every fourth message has a key of its own,
# the others the keys k0..k9 again and again; then a tail of 20 messages with
# keys of their own, which closes the last round's segment and stays in the
# active one (never compacted).
my $produce_script = <<'PY';
import sys, time
from confluent_kafka import Producer
failed = []
def report(err, msg):
    if err is not None:
        failed.append(str(err))
p = Producer({'bootstrap.servers': sys.argv[1], 'enable.idempotence': True,
              'linger.ms': 5})
n = 0
for r in range(1, 6):
    for part in (0, 1):
        for j in range(200 if r < 5 else 20):
            if r == 5:
                key = 'tail-%d-%d' % (part, j)
            elif j % 4 == 0:
                key = 'u-%d-%d-%d' % (part, r, j)
            else:
                key = 'k%d' % (j % 10)
            p.produce('comp', key=key.encode(), value=('r%d-j%d' % (r, j)).encode(),
                      partition=part, on_delivery=report)
            n += 1
    if p.flush(60) != 0 or failed:
        sys.exit('delivery failed: %s' % failed)
    time.sleep(0.2)
print(n)
PY
my ($out, $err) = ('', '');
IPC::Run::run([ '/usr/bin/python3', '-c', $produce_script, $bootstrap ],
	'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(120))
  or die "producer failed: $err";
is($out, "1640\n", '1640 messages produced');

# what kcat reads, per partition: [ [offset, key, value], ... ]
sub kcat_partitions
{
	my %p = (0 => [], 1 => []);
	push @{ $p{ $_->{partition} } }, [ $_->{offset}, $_->{key}, $_->{payload} ]
	  for $broker->consume('comp');
	@$_ = sort { $a->[0] <=> $b->[0] } @$_ for values %p;
	return \%p;
}

sub has_gaps
{
	my ($msgs) = @_;
	return 0 unless @$msgs;
	return $msgs->[-1][0] - $msgs->[0][0] + 1 > @$msgs;
}

# wait until the cleaner has compacted every closed segment of both
# partitions: then each holds 4 x 50 + 20 messages with keys of their own
# and one of each of k0..k9, and no longer changes
my $kcat;
ok( poll_until(
		sub {
			$kcat = kcat_partitions();
			return @{ $kcat->{0} } == 230 && @{ $kcat->{1} } == 230;
		},
		120),
	'the log cleaner compacted both partitions');
note 'messages left: partition 0: ' . scalar(@{ $kcat->{0} })
  . ', partition 1: ' . scalar(@{ $kcat->{1} });

# every key's last message survives; older versions of k0..k9 are gone
for my $part (0, 1)
{
	my %seen;
	$seen{ $_->[1] }++ for @{ $kcat->{$part} };
	is(scalar(grep { $seen{$_} > 1 } grep { /^k/ } keys %seen), 0,
		"partition $part: each repeated key is left once");
	is(scalar(grep { /^u-|^tail-/ } keys %seen), 4 * 50 + 20,
		"partition $part: every message with a key of its own is left");
	ok(has_gaps($kcat->{$part}), "partition $part: the offsets have gaps");
}

my $node = kafka_fdw_node('real_compaction');
create_kafka_server($node, $broker, 'k', user_mapping => 1);
$node->safe_psql(
	'postgres', q{
CREATE FOREIGN TABLE comp (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), k text OPTIONS (key 'true'), v text)
  SERVER k OPTIONS (format 'raw');
});

sub rows
{
	my ($where) = @_;
	return $node->safe_psql('postgres',
		"SELECT p || '|' || o || '|' || k || '|' || v FROM comp WHERE $where ORDER BY p, o");
}

sub kcat_rows
{
	my ($part, $from, $to) = @_;
	return join("\n",
		map { "$part|$_->[0]|$_->[1]|$_->[2]" }
		grep { $_->[0] >= $from && $_->[0] <= $to } @{ $kcat->{$part} });
}

my $all = join("\n", kcat_rows(0, 0, 1e9), kcat_rows(1, 0, 1e9));
is(rows('true'), $all, 'the scan reads what kcat reads: offsets, keys and values');
my $count = @{ $kcat->{0} } + @{ $kcat->{1} };
is($node->safe_psql('postgres', 'SELECT count(*) FROM comp'), $count,
	"count(*) counts the $count messages left");
is($node->safe_psql('postgres',
		"SELECT string_agg(partition || ':' || high, ',' ORDER BY partition) FROM kafka_fdw.watermarks('comp')"),
	'0:820,1:820', 'the high watermarks still count every offset');

# a gap of partition 0: an offset that is gone, with the next one left
my @o = map { $_->[0] } @{ $kcat->{0} };
my ($gap_start, $gap_end);
for my $i (1 .. $#o)
{
	if ($o[$i] > $o[ $i - 1 ] + 2)
	{
		($gap_start, $gap_end) = ($o[ $i - 1 ] + 1, $o[$i] - 1);
		last;
	}
}
ok(defined $gap_start, "partition 0 has a gap of offsets $gap_start to $gap_end");
my $next = $gap_end + 1;
my $later = $next + 100;

is(rows("p = 0 AND o >= $gap_start AND o < $later"), kcat_rows(0, $gap_start, $later - 1),
	'a range starting inside a gap reads from the next message left');
is(rows("p = 0 AND o > $o[0] AND o <= $gap_end"), kcat_rows(0, $o[0] + 1, $gap_end),
	'a range ending inside a gap ends there');
is(rows("p = 0 AND o BETWEEN $gap_start AND $gap_end"), '',
	'a range wholly inside a gap is empty, without error');
is(rows("p = 0 AND o = $gap_start"), '', 'so is an offset that is gone');
is(rows("(p = 0 AND o >= $gap_start) OR (p = 1 AND o < 100)"),
	join("\n", kcat_rows(0, $gap_start, 1e9), kcat_rows(1, 0, 99)),
	'ranges of both partitions');
is($node->safe_psql('postgres', "SELECT count(*) FROM comp WHERE p = 0 AND o >= $gap_start"),
	scalar(grep { $_ >= $gap_start } @o), 'count(*) over a range that starts in a gap');

# a pushed-down LIMIT must read n messages, not n offsets
my $plan = $node->safe_psql('postgres',
	'EXPLAIN (COSTS OFF) SELECT o FROM comp WHERE p = 0 LIMIT 50');
note $plan;
like($plan, qr/Limit Pushed Down: 50/, 'the LIMIT is pushed down');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM (SELECT o FROM comp WHERE p = 0 LIMIT 50) s'),
	'50', 'LIMIT 50 on a compacted partition returns 50 rows');
is($node->safe_psql('postgres',
		"SELECT string_agg(o::text, ',' ORDER BY o) FROM (SELECT o FROM comp WHERE p = 0 AND o >= $gap_start LIMIT 5) s"),
	join(',', (grep { $_ >= $gap_start } @o)[ 0 .. 4 ]),
	'LIMIT 5 from inside a gap returns the next 5 messages');
# without pushdown (ORDER BY) the LIMIT is right: the scan itself is
is($node->safe_psql('postgres',
		"SELECT string_agg(o::text, ',' ORDER BY o) FROM (SELECT o FROM comp WHERE p = 0 AND o >= $gap_start ORDER BY o LIMIT 5) s"),
	join(',', (grep { $_ >= $gap_start } @o)[ 0 .. 4 ]),
	'LIMIT 5 after ORDER BY from inside a gap returns the next 5 messages');

$node->stop;
$broker->stop;
done_testing();
