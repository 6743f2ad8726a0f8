# Copyright (c) kafka_fdw contributors

# Timestamp pushdown on a real Kafka cluster: a lower bound on the timestamp
# column (ts >= $1, ts > x, BETWEEN) starts each partition at the offset the
# broker's offsets-for-times gives, so EXPLAIN ANALYZE shows fewer messages
# fetched than the topic holds, and the rows are exactly those a scan that
# cannot push the bound down (ts + interval '0' >= x) returns, and those kcat
# reads filtered by timestamp.  A partition whose messages are all older than
# the bound (offsets-for-times answers -1) is skipped; a partition whose
# timestamps do not grow with the offsets still gives every matching row.
#
# The embedded broker answers offsets-for-times with -1, so only real Kafka
# can answer this.

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

my $broker = KafkaTestBroker->new(topics => { times => 4 });
my $bootstrap = $broker->bootstrap;

# Messages with explicit timestamps (CreateTime), an hour ago and later:
# partition p, message i (0..99) at base + (3 i + p) s, so that the three
# partitions interleave; in partition 2 message 10 is out of order (later
# than the cut below); partition 3 holds only messages older than the cut.
my $base = (int(time()) - 3600) * 1000;
my @msgs;
for my $i (0 .. 99)
{
	for my $p (0 .. 2)
	{
		my $ts = $base + (3 * $i + $p) * 1000;
		$ts = $base + 290_000 if $p == 2 && $i == 10;
		push @msgs, { partition => $p, value => "p$p-i$i", timestamp => $ts };
	}
	push @msgs, { partition => 3, value => "p3-i$i", timestamp => $base + $i * 10 };
}
my $produce_script = <<'PY';
import json, sys
from confluent_kafka import Producer
failed = []
def report(err, msg):
    if err is not None:
        failed.append(str(err))
p = Producer({'bootstrap.servers': sys.argv[1], 'enable.idempotence': True})
for m in json.load(sys.stdin):
    p.produce(sys.argv[2], value=m['value'].encode(), partition=m['partition'],
              timestamp=m['timestamp'], on_delivery=report)
    p.poll(0)
if p.flush(60) != 0 or failed:
    sys.exit('delivery failed: %s' % failed)
PY
my ($out, $err) = ('', '');
IPC::Run::run([ '/usr/bin/python3', '-c', $produce_script, $bootstrap, 'times' ],
	'<', \JSON::PP->new->encode(\@msgs), '>', \$out, '2>', \$err,
	IPC::Run::timeout(120))
  or die "producer failed: $err";

my @kcat = $broker->consume('times');
is(scalar @kcat, 400, 'the topic holds 400 messages (kcat)');
is(scalar(grep { $_->{timestamp} == $base + 290_000 && $_->{payload} eq 'p2-i10' } @kcat),
	1, 'with the timestamps they were produced with');

my $node = kafka_fdw_node('real_ts');
create_kafka_server($node, $broker, 'k', user_mapping => 1);
$node->safe_psql(
	'postgres', q{
CREATE FOREIGN TABLE times (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), ts timestamptz OPTIONS (timestamp 'true'),
  v text) SERVER k OPTIONS (format 'raw');
});

# a timestamp of milliseconds since the epoch, as SQL
sub ts_sql
{
	my ($ms) = @_;
	return "(timestamptz 'epoch' + $ms * interval '1 millisecond')";
}

# EXPLAIN ANALYZE's lines of the scan
sub explain_scan
{
	my ($query) = @_;
	return $node->safe_psql('postgres',
		"EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) $query");
}

sub fetched
{
	my ($plan) = @_;
	return $plan =~ /Messages Fetched: (\d+)/ ? $1 : undef;
}

# what kcat reads with a timestamp at or after (or after) the cut, as
# "p|o|v" lines in partition and offset order
sub kcat_since
{
	my ($cut, $strict) = @_;
	return join("\n",
		map { "$_->{partition}|$_->{offset}|$_->{payload}" }
		sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} }
		grep { $strict ? $_->{timestamp} > $cut : $_->{timestamp} >= $cut } @kcat);
}

my $cut = $base + 150_500;			# between two messages
my $cut_sql = ts_sql($cut);
my $rows = "SELECT p, o, v FROM times WHERE %s ORDER BY p, o";

# the full scan filtered locally: no bound pushed down, every message read
my $full_plan = explain_scan(sprintf($rows, "ts + interval '0' >= $cut_sql"));
unlike($full_plan, qr/Timestamp Lower Bound/, 'ts + interval 0 is not pushed down');
is(fetched($full_plan), 400, 'the full scan fetches the whole topic');
my $full = $node->safe_psql('postgres', sprintf($rows, "ts + interval '0' >= $cut_sql"));
is($full, kcat_since($cut), 'the full scan filtered by time returns what kcat reads after the cut');
is(scalar(split /\n/, $full), 150, '150 messages at or after the cut');

# pushed down: ts >= constant
my $plan = explain_scan(sprintf($rows, "ts >= $cut_sql"));
note $plan;
like($plan, qr/Timestamp Lower Bound: /, 'the bound is pushed down');
like($plan, qr/Partition 0: offsets 51 to 99$/m,
	'partition 0 starts at the first message at or after the cut');
like($plan, qr/Partition 1: offsets 50 to 99$/m, 'so does partition 1');
like($plan, qr/Partition 2: offsets 10 to 99$/m,
	'partition 2 starts at its out-of-order message (the first at or after the cut)');
like($plan, qr/Partitions Skipped: 1$/m,
	'partition 3, all older than the cut, is skipped');
unlike($plan, qr/timestamp filtered locally/, 'the broker answered for every partition');
is(fetched($plan), 49 + 50 + 90, 'fewer messages fetched than the topic holds');
is($node->safe_psql('postgres', sprintf($rows, "ts >= $cut_sql")), $full,
	'and exactly the rows of the full scan');

# a parameter of a prepared statement, custom and generic plans
for my $mode ('force_custom_plan', 'force_generic_plan')
{
	my $sql = qq{SET plan_cache_mode = $mode;
PREPARE q(timestamptz) AS SELECT p, o, v FROM times WHERE ts >= \$1 ORDER BY p, o;
};
	my $res = $node->safe_psql('postgres', $sql . "EXECUTE q($cut_sql);");
	is($res, $full, "ts >= \$1 ($mode): the rows of the full scan");
	my $p = $node->safe_psql('postgres',
		$sql . "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE q($cut_sql);");
	is(fetched($p), 189, "ts >= \$1 ($mode): 189 of 400 messages fetched");
}

# ts > x where x is a message's exact timestamp: that message is fetched and
# filtered out
my $exact = $base + 150_000;		# partition 0, message 50
my $exact_sql = ts_sql($exact);
$plan = explain_scan(sprintf($rows, "ts > $exact_sql"));
like($plan, qr/Partition 0: offsets 5[01] to 99$/m,
	"ts > x starts at the message at x (or, as x is a whole millisecond, the next)");
is($node->safe_psql('postgres', sprintf($rows, "ts > $exact_sql")),
	kcat_since($exact, 1), 'ts > x returns what kcat reads after x, not the message at x');
is($node->safe_psql('postgres', sprintf($rows, "ts > $exact_sql")),
	$node->safe_psql('postgres', sprintf($rows, "ts + interval '0' > $exact_sql")),
	'the same as the full scan');

# BETWEEN: the lower bound is pushed down, the upper one checked locally
my $upper = $base + 200_000;
my $between = "ts BETWEEN $cut_sql AND " . ts_sql($upper);
$plan = explain_scan(sprintf($rows, $between));
is(fetched($plan), 189, 'BETWEEN pushes its lower bound down');
is($node->safe_psql('postgres', sprintf($rows, $between)),
	$node->safe_psql('postgres',
		sprintf($rows, "ts + interval '0' BETWEEN $cut_sql AND " . ts_sql($upper))),
	'BETWEEN returns the rows of the full scan');

# count(*) agrees
is($node->safe_psql('postgres', "SELECT count(*) FROM times WHERE ts >= $cut_sql"),
	'150', 'count(*) with the bound pushed down');

# a bound after every message: every partition is skipped, nothing fetched
$plan = explain_scan(sprintf($rows, "ts >= now()"));
like($plan, qr/Partitions Skipped: 4$/m, 'a bound after every message skips every partition');
is(fetched($plan), 0, 'and fetches nothing');

$node->stop;
$broker->stop;
done_testing();
