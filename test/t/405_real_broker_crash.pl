
# Copyright (c) kafka_fdw contributors

# A broker crash on real Kafka (3 brokers, replication factor 3,
# min.insync.replicas 2, and kafka_fdw's producer with acks=all and
# idempotence): the leader of a partition is SIGKILLed in the middle of a
# 200,000-row INSERT ... SELECT, of a COPY FROM and of a CDC stream under
# load.  Every row a statement reported as published is in Kafka exactly
# once (each row has a unique key, read back with kcat), a statement either
# succeeds or fails with an ERROR, and the CDC stream delivers every
# committed change, in order per key, with the same worker.  Then two of the
# three brokers go down: an INSERT fails with an ERROR within its
# message.timeout.ms instead of reporting success, and what it reported as
# published is in Kafka once the brokers are back.

use strict;
use warnings;

use Test::More;
BEGIN
{
	plan skip_all => 'needs real Kafka (KFDW_TEST_KAFKA=real)'
	  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';
}

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

my @topics = ('crash_ins', 'crash_copy', 'c1.public.load', 'crash_down');
my $broker = KafkaTestBroker->new(topics => { map { $_ => 3 } @topics });
my $bootstrap = $broker->bootstrap;

my $node = kafka_fdw_node('crash', cdc => 1);
# long enough to ride out a leader election
create_kafka_server($node, $broker, 'k',
	options => { 'message.timeout.ms' => '120000', connect_timeout_ms => '30000' },
	user_mapping => 1);
create_kafka_server($node, $broker, 'kshort',
	options => { 'message.timeout.ms' => '10000', connect_timeout_ms => '5000' },
	user_mapping => 1);
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE crash_ins (k text OPTIONS (key 'true'), id int, pad text)
  SERVER k OPTIONS (topic 'crash_ins');
CREATE FOREIGN TABLE crash_copy (k text OPTIONS (key 'true'), id int, pad text)
  SERVER k OPTIONS (topic 'crash_copy');
CREATE FOREIGN TABLE crash_down (k text OPTIONS (key 'true'), id int)
  SERVER kshort OPTIONS (topic 'crash_down');
});

# Run a client; returns its stdout, dies if it fails
sub run_client
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', \'', '>', \$out, '2>', \$err,
		IPC::Run::timeout(120));
	die "@cmd failed: $err" if $?;
	return $out;
}

# The sum of TOPIC's high watermarks, or -1 if kcat cannot tell
sub high_watermarks
{
	my ($topic) = @_;
	my $out = eval {
		run_client('kcat', '-Q', '-b', $bootstrap, '-m', '5',
			map { ('-t', "$topic:$_:-1") } 0 .. 2);
	};
	return -1 unless defined $out;
	my $sum = 0;
	my $n = 0;
	while ($out =~ /\[\d+\]\s+offset\s+(-?\d+)/g) { $sum += $1; $n++; }
	return $n == 3 ? $sum : -1;
}

# The leader of partition 0 of TOPIC
sub leader
{
	my ($topic) = @_;
	my $md = $broker->metadata($topic, timeout => 10) or return undef;
	my ($t) = grep { $_->{topic} eq $topic } @{ $md->{topics} };
	my ($p) = grep { $_->{partition} == 0 } @{ $t->{partitions} };
	return $p ? $p->{leader} : undef;
}

# True once every partition of every topic has a leader and three in-sync
# replicas: the cluster has recovered from a crash
sub fully_replicated
{
	my $md = $broker->metadata(undef, timeout => 10) or return 0;
	for my $t (grep { my $n = $_->{topic}; grep { $_ eq $n } @topics } @{ $md->{topics} })
	{
		for my $p (@{ $t->{partitions} })
		{
			return 0 if ($p->{leader} // -1) < 0 || @{ $p->{isrs} // [] } != 3;
		}
	}
	return 1;
}

# Every key of TOPIC with how many times it is there
sub key_counts
{
	my ($topic) = @_;
	my %n;
	$n{$_}++ for split /\n/,
	  run_client('kcat', '-C', '-e', '-q', '-o', 'beginning', '-b', $bootstrap,
		'-t', $topic, '-f', '%k\n');
	return \%n;
}

# Check what a statement publishing keys k1..kN left in TOPIC: all of them
# exactly once if it succeeded; if it failed, nothing twice and nothing else
sub check_published
{
	my ($what, $topic, $n, $failed) = @_;
	my $counts = key_counts($topic);
	my @dups = grep { $counts->{$_} > 1 } keys %$counts;
	my @strange = grep { !/^k(\d+)$/ || $1 < 1 || $1 > $n } keys %$counts;
	is(scalar @dups, 0, "$what: no message is in Kafka twice")
	  or diag "e.g. $dups[0] $counts->{$dups[0]} times";
	is(scalar @strange, 0, "$what: no message that was not sent");
	if (!$failed)
	{
		is(scalar keys %$counts, $n,
			"$what succeeded: all $n rows are in Kafka, each exactly once");
	}
	else
	{
		ok(1, "$what failed: " . scalar(keys %$counts) . " of its rows are in Kafka");
	}
	return $counts;
}

# Kill the leader of partition 0 of TOPIC once PROGRESS (a function
# returning how many messages were sent) reaches MORE, while the statement
# matching LIKE in pg_stat_activity runs; returns the killed broker's id
sub kill_leader_midway
{
	my ($what, $topic, $progress, $more, $like) = @_;
	my $leader = leader($topic);
	ok(defined $leader, "$what: partition 0 of $topic has a leader (broker "
		  . ($leader // '?') . ")");
	my $sent = -1;
	ok(poll_until(sub { $sent = $progress->(); $sent >= $more }, 120),
		"$what: some of its messages reached Kafka ($sent)");
	$broker->down($leader);
	if (defined $like)
	{
		is( $node->safe_psql('postgres',
				"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '$like%'"),
			'1',
			"$what: broker $leader (the leader) was killed while the statement was still running");
	}
	return $leader;
}

# --- a 200,000-row INSERT ... SELECT -----------------------------------------
my $rows = 200_000;
my $s = $node->background_psql('postgres', on_error_stop => 0, timeout => 600);
$s->query_until(qr/started/, qq{\\echo started
INSERT INTO crash_ins SELECT 'k' || g, g, repeat('x', 200) FROM generate_series(1, $rows) g;
});
my $t0 = time;
my $killed = kill_leader_midway('INSERT', 'crash_ins',
	sub { high_watermarks('crash_ins') }, 20_000,
	'INSERT INTO crash_ins');
$s->query('SELECT 1');
my $err = $s->{stderr};
$s->{stderr} = '';
diag sprintf('INSERT ended after %.1f s: %s', time - $t0, $err || 'success');
ok($err eq '' || $err =~ /ERROR:  /,
	'the INSERT either succeeded or failed with an ERROR');
check_published('INSERT', 'crash_ins', $rows, $err ne '');
$broker->up($killed);
ok(poll_until(\&fully_replicated, 120), "broker $killed is back in sync");

# --- a COPY FROM -------------------------------------------------------------
my $copyrows = 50_000;
my $file = PostgreSQL::Test::Utils::tempdir() . '/copy.csv';
open(my $fh, '>', $file) or die "cannot write $file: $!";
print $fh "k$_,$_," . ('y' x 200) . "\n" for 1 .. $copyrows;
close $fh;
$s->query_until(qr/started/, qq{\\echo started
COPY crash_copy (k, id, pad) FROM '$file' WITH (FORMAT csv);
});
$t0 = time;
$killed = kill_leader_midway('COPY', 'crash_copy',
	sub { high_watermarks('crash_copy') }, 10_000, 'COPY crash_copy');
$s->query('SELECT 1');
$err = $s->{stderr};
$s->{stderr} = '';
diag sprintf('COPY ended after %.1f s: %s', time - $t0, $err || 'success');
ok($err eq '' || $err =~ /ERROR:  /,
	'the COPY either succeeded or failed with an ERROR');
check_published('COPY', 'crash_copy', $copyrows, $err ne '');
$broker->up($killed);
ok(poll_until(\&fully_replicated, 120), "broker $killed is back in sync");

# --- a CDC stream under load -------------------------------------------------
my $keys = 50;
my $updates = 5_000;
$node->safe_psql('postgres', q{
CREATE TABLE load (id int PRIMARY KEY, v int NOT NULL);
CREATE PUBLICATION pl FOR TABLE load;
});
$node->safe_psql('postgres',
	"SELECT kafka_fdw.cdc_create('c1', 'k', 'pl', snapshot => false)");
ok($node->poll_query_until('postgres',
		"SELECT state = 'streaming' FROM kafka_fdw.cdc_status WHERE name = 'c1'"),
	'the CDC stream is streaming');
my $pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kafka_fdw.cdc_status WHERE name = 'c1'");
$node->safe_psql('postgres',
	"INSERT INTO load SELECT g, 0 FROM generate_series(0, $keys - 1) g");
# one change per transaction, each key's v counting up, for about ten
# seconds (so that the crash comes while changes are still being made)
$s->query_until(qr/started/, qq{\\echo started
DO \$\$ BEGIN
  FOR i IN 1..$updates LOOP
    UPDATE load SET v = v + 1 WHERE id = i % $keys;
    COMMIT;
    IF i % 10 = 0 THEN PERFORM pg_sleep(0.02); END IF;
  END LOOP;
END \$\$;
});
my $messages_sent = sub {
	return $node->safe_psql('postgres',
		"SELECT messages_sent FROM kafka_fdw.cdc_status WHERE name = 'c1'");
};
my $total = $keys + $updates;
$killed = kill_leader_midway('CDC', 'c1.public.load', $messages_sent,
	$keys + 500, 'DO');
my $at_kill = $messages_sent->();
ok($at_kill < $total,
	"CDC: broker $killed (the leader) was killed while the stream was sending ($at_kill of $total sent)");
$s->query('SELECT 1');
is($s->{stderr}, '', 'the load committed every change');
$s->{stderr} = '';
my $end = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
ok( $node->poll_query_until('postgres',
		"SELECT confirmed_lsn >= '$end' FROM kafka_fdw.cdc_status WHERE name = 'c1'",
		't'),
	'the stream confirmed every committed change ('
	  . $messages_sent->() . ' messages sent)');
my %seq;
for my $line (split /\n/,
	run_client('kcat', '-C', '-e', '-q', '-o', 'beginning', '-b', $bootstrap,
		'-t', 'c1.public.load', '-f', '%k\t%s\n'))
{
	my ($k, $v) = split /\t/, $line, 2;
	next unless defined $v && $v ne '';
	my $id = cdc_payload($k)->{id};
	push @{ $seq{$id} }, cdc_payload($v)->{after}{v};
}
my @missing = grep {
	my %have = map { $_ => 1 } @{ $seq{$_} // [] };
	my $want = int($updates / $keys) + ($_ > 0 && $_ <= $updates % $keys ? 1 : 0);
	grep { !$have{$_} } 0 .. $want;
} 0 .. $keys - 1;
is(scalar @missing, 0, 'CDC delivered every committed change at least once')
  or diag "key $missing[0] has: @{ $seq{ $missing[0] } // [] }";
my @unordered = grep {
	my @v = @{ $seq{$_} // [] };
	grep { $v[$_] < $v[ $_ - 1 ] } 1 .. $#v;
} 0 .. $keys - 1;
is(scalar @unordered, 0, 'in order per key')
  or diag "key $unordered[0]: @{ $seq{ $unordered[0] } }";
is( $node->safe_psql('postgres',
		"SELECT worker_pid || ' ' || state FROM kafka_fdw.cdc_status WHERE name = 'c1'"),
	"$pid streaming",
	'the same worker streamed on through the crash');
$broker->up($killed);
ok(poll_until(\&fully_replicated, 120), "broker $killed is back in sync");

# --- two of three brokers down -----------------------------------------------
# the server's metadata is warm
$node->safe_psql('postgres', "INSERT INTO crash_down VALUES ('k0', 0)");
$broker->down(1);
$broker->down(2);
$t0 = time;
my ($rc, $out);
$rc = $node->psql('postgres',
	"INSERT INTO crash_down SELECT 'k' || g, g FROM generate_series(1, 1000) g",
	stdout => \$out, stderr => \$err, timeout => 180);
my $elapsed = time - $t0;
isnt($rc, 0, 'with two of three brokers down the INSERT does not report success');
like($err, qr/ERROR:  could not publish (\d+) of 1000 messages to Kafka topic "crash_down"/m,
	'it fails with an ERROR saying how many messages failed') or diag $err;
my ($failed) = $err =~ /could not publish (\d+) of 1000/;
ok($elapsed < 10 + 5 + 15,
	sprintf('within message.timeout.ms and connect_timeout_ms (%.1f s)', $elapsed));
$broker->up(1);
$broker->up(2);
ok(poll_until(\&fully_replicated, 120), 'brokers 1 and 2 are back in sync');
my $counts = key_counts('crash_down');
delete $counts->{k0};
my @dups = grep { $counts->{$_} > 1 } keys %$counts;
is(scalar @dups, 0, 'no message of the failed INSERT is in Kafka twice');
ok(scalar(keys %$counts) >= 1000 - ($failed // 0),
	'every message it did not report as failed is in Kafka ('
	  . scalar(keys %$counts) . ' of 1000, ' . ($failed // '?') . ' reported failed)');

$s->quit;
$node->stop;
$broker->stop;
done_testing();
