
# Copyright (c) kafka_fdw contributors

# Change data capture when things fail: Kafka taken down and brought back
# mid-stream (the stream shows "retrying", keeps its WAL, then delivers
# everything in order without a restart), an immediate shutdown of
# PostgreSQL mid-stream (after restart every committed change is in Kafka),
# and an idle stream that does not hold WAL back.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(
	topics => { 'f.public.acct' => 2, 'g.public.acct' => 1 });

my $node = kafka_fdw_node('cdcfail', cdc => 1,
	conf => [ 'restart_after_crash = on',
		"logical_decoding_work_mem = '64kB'" ]);

# The payloads of the topic's create and update events, per key (its
# payload's text) in partition order
sub creates
{
	my @msgs = $broker->consume('f.public.acct');
	my %per_key;
	for my $m (@msgs)
	{
		next unless defined $m->{payload};
		my $v = cdc_payload($m->{payload});
		next unless $v->{op} eq 'c' || $v->{op} eq 'u';
		push @{ $per_key{ cdc_key($m->{key}) } }, $v;
	}
	return \%per_key;
}

# ids whose latest event (per key, in Kafka's order) has balance = id * 10
sub ids_up_to_date
{
	my $per_key = creates();
	my %ids;
	for my $k (keys %$per_key)
	{
		my $last = $per_key->{$k}[-1];
		$ids{ $last->{after}{id} } = 1
		  if $last->{after}{balance} == $last->{after}{id} * 10;
	}
	return \%ids;
}

create_kafka_server($node, $broker, 'k');
$node->safe_psql('postgres', qq{
CREATE TABLE acct (id int PRIMARY KEY, balance int);
CREATE TABLE unrelated (id serial, filler text);
CREATE PUBLICATION pf FOR TABLE acct;
SELECT kafka_fdw.cdc_create('f', 'k', 'pf', snapshot => false);
CREATE PROCEDURE fill(lo int, hi int) LANGUAGE plpgsql AS \$\$
BEGIN
  FOR i IN lo..hi LOOP
    INSERT INTO acct VALUES (i, 0);
    COMMIT;
    UPDATE acct SET balance = i * 10 WHERE id = i;
    COMMIT;
  END LOOP;
END \$\$;
});

ok( $node->poll_query_until('postgres',
		"SELECT state = 'streaming' FROM kafka_fdw.cdc_status WHERE name = 'f'"),
	'stream f is streaming');

$node->safe_psql('postgres', 'CALL fill(1, 50)');
ok(poll_until(sub { keys %{ ids_up_to_date() } == 50 }),
	'first 50 rows arrive');

# --- Kafka down mid-stream -----------------------------------------------
$broker->down_all;
$node->safe_psql('postgres', 'CALL fill(51, 100)');
ok( $node->poll_query_until('postgres',
		"SELECT state = 'retrying' AND last_error IS NOT NULL AND last_error_at > now() - interval '1 minute' FROM kafka_fdw.cdc_status WHERE name = 'f'"
	),
	'with Kafka down the stream shows retrying and the error');
ok( $node->safe_psql('postgres',
		"SELECT lag_bytes > 0 AND confirmed_lsn < pg_current_wal_lsn() FROM kafka_fdw.cdc_status WHERE name = 'f'"
	) eq 't',
	'the slot keeps the WAL of undelivered changes');
my $pid_before = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kafka_fdw.cdc_status WHERE name = 'f'");

$broker->up_all;
ok(poll_until(sub { keys %{ ids_up_to_date() } == 100 }, 120),
	'once Kafka is back every change arrives');
ok( $node->poll_query_until('postgres',
		"SELECT state = 'streaming' FROM kafka_fdw.cdc_status WHERE name = 'f'"),
	'and the stream shows streaming again');
is($node->safe_psql('postgres',
	"SELECT worker_pid FROM kafka_fdw.cdc_status WHERE name = 'f'"),
	$pid_before, 'without a restart of the worker');

# order per key: the create before the update, nothing out of order
my $per_key = creates();
my $disorder = 0;
for my $k (keys %$per_key)
{
	my @ops = map { $_->{op} } @{ $per_key->{$k} };
	my $seen_u = 0;
	for (@ops)
	{
		$seen_u = 1 if $_ eq 'u';
		$disorder++ if $_ eq 'c' && $seen_u;
	}
	$disorder++ unless $ops[0] eq 'c' && $ops[-1] eq 'u';
}
is($disorder, 0, 'per key, events are in commit order');

# --- immediate shutdown mid-stream ---------------------------------------
# half the changes are delivered, the other half cannot be when
# PostgreSQL goes down
$node->safe_psql('postgres', 'CALL fill(101, 200)');
ok(poll_until(sub { keys %{ ids_up_to_date() } == 200 }), '200 rows arrive');
$broker->down_all;
$node->safe_psql('postgres', 'CALL fill(201, 300)');
is($node->safe_psql('postgres',
	"SELECT lag_bytes > 0 FROM kafka_fdw.cdc_status WHERE name = 'f'"),
	't', 'changes are in flight');
$node->stop('immediate');
$broker->up_all;
$node->start;
ok(poll_until(sub { keys %{ ids_up_to_date() } == 300 }, 120),
	'after an immediate shutdown every committed change reaches Kafka');

# --- Kafka refuses a message: the worker stops, and starts again ---------
# (an event with its schema is some 3 kB: 12000 bytes take it, not the pad)
$node->safe_psql('postgres',
	"ALTER SERVER k OPTIONS (ADD \"message.max.bytes\" '12000')");
$node->safe_psql('postgres',
	"INSERT INTO acct VALUES (301, 3010 + length(repeat('x', 2000)) - 2000)");
$node->safe_psql('postgres', "ALTER TABLE acct ADD COLUMN pad text");
$node->safe_psql('postgres',
	"UPDATE acct SET pad = repeat('x', 16000), balance = 3010 WHERE id = 301");
ok( $node->poll_query_until('postgres',
		"SELECT state IN ('retrying', 'waiting to retry') AND last_error LIKE '%could not produce to topic%' FROM kafka_fdw.cdc_status WHERE name = 'f'"
	),
	'a refused message stops the worker with the error in cdc_status');
ok(!(grep { exists $_->{after}{pad} } @{ creates()->{'{"id":301}'} // [] }),
	'the refused change is not in Kafka');
$node->safe_psql('postgres',
	"ALTER SERVER k OPTIONS (DROP \"message.max.bytes\")");
ok( poll_until(
		sub {
			my $per_key = creates();
			my $evs = $per_key->{'{"id":301}'} // [];
			return @$evs && ($evs->[-1]{after}{pad} // '') eq 'x' x 16000;
		},
		120),
	'the restarted worker delivers the change once Kafka takes it');

# --- an idle stream does not pin WAL -------------------------------------
ok( $node->poll_query_until('postgres',
		"SELECT state = 'streaming' FROM kafka_fdw.cdc_status WHERE name = 'f'"),
	'streaming after the restart');
my ($restart0, $confirmed0) = split /\|/, $node->safe_psql('postgres',
	"SELECT restart_lsn, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name LIKE 'kafka_fdw_%_f'");
my $target;
my $advanced = poll_until(
	sub {
		$node->safe_psql('postgres',
			"INSERT INTO unrelated (filler) SELECT repeat('x', 100) FROM generate_series(1, 1000)");
		$node->safe_psql('postgres', 'CHECKPOINT');
		$target //= $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
		return $node->safe_psql('postgres',
			"SELECT restart_lsn > '$restart0' AND confirmed_flush_lsn >= '$target' FROM pg_replication_slots WHERE slot_name LIKE 'kafka_fdw_%_f'"
		) eq 't';
	},
	60);
ok($advanced, 'restart_lsn and confirmed_flush_lsn advance under unrelated writes');

# --- Kafka down and up while the stream is idle --------------------------
$broker->down_all;
ok( $node->poll_query_until('postgres',
		"SELECT state = 'retrying' FROM kafka_fdw.cdc_status WHERE name = 'f'"),
	'an idle stream shows retrying while Kafka is down');
$broker->up_all;
ok( $node->poll_query_until('postgres',
		"SELECT state = 'streaming' FROM kafka_fdw.cdc_status WHERE name = 'f'"),
	'and streaming once Kafka answers again');

# --- a worker crash: the launcher starts it again ------------------------
my $pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kafka_fdw.cdc_status WHERE name = 'f'");
kill 'KILL', $pid;
# the postmaster restarts every process after a crash
ok($node->poll_query_until('postgres', 'SELECT true'), 'server back after the crash');
$node->safe_psql('postgres', 'CALL fill(302, 320)');
ok(poll_until(sub { keys %{ ids_up_to_date() } == 320 }, 120),
	'after a worker crash the changes arrive');
isnt($node->safe_psql('postgres',
	"SELECT worker_pid FROM kafka_fdw.cdc_status WHERE name = 'f'"), $pid,
	'from a new worker');

$node->safe_psql('postgres', "SELECT kafka_fdw.cdc_drop('f')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'),
	'0', 'no slot left after cdc_drop');

# --- a second stream on the same publication ----------------------------
$node->safe_psql('postgres',
	"SELECT kafka_fdw.cdc_create('g', 'k', 'pf', snapshot => false)");
ok( $node->poll_query_until('postgres',
		"SELECT state = 'streaming' FROM kafka_fdw.cdc_status WHERE name = 'g'"),
	'stream g is streaming');
# --- a transaction larger than logical_decoding_work_mem ----------------
# (decoding spills it to disk; messages go out as they are decoded)
my $sent0 = $node->safe_psql('postgres',
	"SELECT messages_sent FROM kafka_fdw.cdc_status WHERE name = 'g'");
$node->safe_psql('postgres',
	"INSERT INTO acct SELECT i, i * 10, 'p' FROM generate_series(100001, 150000) i");
ok( $node->poll_query_until('postgres',
		"SELECT messages_sent >= $sent0 + 50000 FROM kafka_fdw.cdc_status WHERE name = 'g'"),
	'a transaction of 50000 rows is delivered whole');
my ($last) = grep { (cdc_key($_->{key}) // '') eq '{"id":150000}' } $broker->consume('g.public.acct');
ok($last, 'its last row is in Kafka');

# --- DROP EXTENSION: the workers drop their slots -----------------------
$node->safe_psql('postgres', 'DROP EXTENSION kafka_fdw CASCADE');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_replication_slots"),
	'DROP EXTENSION leaves no slot behind');

$node->stop;
done_testing();
