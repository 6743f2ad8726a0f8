
# Copyright (c) kafka_fdw contributors

# Change data capture and privileges: the registry's trigger fires only for
# kafka_fdw.cdc_streams; last_error is shown only to the stream's owner,
# superusers and pg_read_all_stats; a stream whose owner loses USAGE on the
# server or REPLICATION, or is dropped, stops with a clear last_error
# without losing a change; a stream cannot be dropped in the transaction
# that created it.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { 'o.public.t1' => 1 });

my $node = kafka_fdw_node('cdcpriv', cdc => 1);

# The ids of the create events in topic o.public.t1, in Kafka's order
sub ids
{
	my @ids;
	for my $m ($broker->consume('o.public.t1'))
	{
		next unless defined $m->{payload};
		my $v = cdc_payload($m->{payload});
		push @ids, $v->{after}{id} if $v->{op} eq 'c';
	}
	return join(',', @ids);
}

sub wait_ids
{
	my ($want, $name) = @_;
	my $got;
	poll_until(sub { $got = ids(); $got eq $want }, 120);
	is($got, $want, $name);
}

# last_error of stream o as role
sub error_seen_by
{
	my ($role) = @_;
	return $node->safe_psql('postgres',
		"SET ROLE $role; SELECT coalesce(last_error, '<null>') FROM kafka_fdw.cdc_status WHERE name = 'o'");
}

create_kafka_server($node, $broker, 'k');
$node->safe_psql('postgres', qq{
CREATE ROLE regress_owner LOGIN REPLICATION;
CREATE ROLE regress_other LOGIN;
CREATE ROLE regress_stats LOGIN;
GRANT pg_read_all_stats TO regress_stats;
GRANT USAGE ON FOREIGN SERVER k TO regress_owner;
GRANT CREATE ON DATABASE postgres TO regress_owner;
GRANT CREATE ON SCHEMA public TO regress_owner, regress_other;
SET ROLE regress_owner;
CREATE TABLE t1 (id int PRIMARY KEY);
CREATE PUBLICATION po FOR TABLE t1;
});

# --- the registry's trigger ---------------------------------------------
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
SET ROLE regress_other;
CREATE TABLE fake (name text);
CREATE TRIGGER fake AFTER INSERT ON fake
  FOR EACH ROW EXECUTE FUNCTION kafka_fdw.cdc_streams_inserted();
});
like($stderr, qr/permission denied for function kafka_fdw\.cdc_streams_inserted/,
	'a plain role cannot attach the registry trigger to its table');
($ret, $stdout, $stderr) = $node->psql('postgres', q{
CREATE TABLE fake2 (name text);
CREATE TRIGGER fake2 AFTER INSERT ON fake2
  FOR EACH ROW EXECUTE FUNCTION kafka_fdw.cdc_streams_inserted();
INSERT INTO fake2 VALUES ('bogus');
});
like($stderr, qr/function "cdc_streams_inserted" may only be fired by table kafka_fdw\.cdc_streams/,
	'the registry trigger refuses to fire for another table');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM kafka_fdw.cdc_worker_status() WHERE name = 'bogus'"),
	'0', 'no registry entry for a bogus name');

# cdc_create still works, through the trigger
$node->safe_psql('postgres', q{
SET ROLE regress_owner;
SELECT kafka_fdw.cdc_create('o', 'k', 'po', snapshot => false);
});
$node->safe_psql('postgres', "INSERT INTO t1 VALUES (1)");
wait_ids('1', 'a stream created by a REPLICATION role delivers');

# --- the owner loses USAGE on the server ---------------------------------
$node->safe_psql('postgres', "REVOKE USAGE ON FOREIGN SERVER k FROM regress_owner");
ok( $node->poll_query_until(
		'postgres',
		"SELECT state IN ('retrying', 'waiting to retry') AND last_error LIKE '%no longer has USAGE on foreign server k%' FROM kafka_fdw.cdc_status WHERE name = 'o'"
	),
	'owner without USAGE: the stream stops with a clear last_error');
# changes made meanwhile are kept in the slot
my $lsn_before = $node->safe_psql('postgres',
	"SELECT confirmed_lsn FROM kafka_fdw.cdc_status WHERE name = 'o'");
$node->safe_psql('postgres', "INSERT INTO t1 VALUES (2)");

# --- last_error is the owner's business -----------------------------------
like(error_seen_by('regress_owner'), qr/no longer has USAGE/, 'the owner sees last_error');
like(error_seen_by('regress_stats'), qr/no longer has USAGE/, 'pg_read_all_stats sees last_error');
is(error_seen_by('regress_other'), '<null>', 'another role does not see last_error');
is($node->safe_psql('postgres',
	"SET ROLE regress_other; SELECT count(*) FROM kafka_fdw.cdc_worker_status() WHERE last_error IS NOT NULL"),
	'0', 'nor through cdc_worker_status()');
like($node->safe_psql('postgres',
	"SET ROLE regress_other; SELECT state FROM kafka_fdw.cdc_status WHERE name = 'o'"),
	qr/^(retrying|waiting to retry)$/, 'but it sees the state');

is(ids(), '1', 'nothing sent while the owner lacks USAGE');
is($node->safe_psql('postgres',
	"SELECT confirmed_lsn FROM kafka_fdw.cdc_status WHERE name = 'o'"),
	$lsn_before, 'the slot does not move while the stream is stopped');

$node->safe_psql('postgres', "GRANT USAGE ON FOREIGN SERVER k TO regress_owner");
wait_ids('1,2', 'USAGE granted again: the change made meanwhile arrives');
ok( $node->poll_query_until(
		'postgres',
		"SELECT state = 'streaming' FROM kafka_fdw.cdc_status WHERE name = 'o'"),
	'and the stream is streaming again');

# --- the owner loses REPLICATION -------------------------------------------
$node->safe_psql('postgres', "ALTER ROLE regress_owner NOREPLICATION");
ok( $node->poll_query_until(
		'postgres',
		"SELECT state IN ('retrying', 'waiting to retry') AND last_error LIKE 'owner regress_owner of stream \"o\" no longer has the REPLICATION attribute%' FROM kafka_fdw.cdc_status WHERE name = 'o'"
	),
	'owner without REPLICATION: the stream stops with a clear last_error');
$node->safe_psql('postgres', "INSERT INTO t1 VALUES (3)");
$node->safe_psql('postgres', "ALTER ROLE regress_owner REPLICATION");
wait_ids('1,2,3', 'REPLICATION given back: the change made meanwhile arrives');

# --- the owner is dropped -------------------------------------------------
$node->safe_psql('postgres', q{
REASSIGN OWNED BY regress_owner TO CURRENT_USER;
DROP OWNED BY regress_owner;
DROP ROLE regress_owner;
});
ok( $node->poll_query_until(
		'postgres',
		"SELECT state IN ('retrying', 'waiting to retry') AND last_error LIKE 'owner role of stream \"o\" no longer exists: The role with OID % that created the stream was dropped.' FROM kafka_fdw.cdc_status WHERE name = 'o'"
	),
	'owner dropped: the stream stops with a clear last_error');
$node->safe_psql('postgres', "INSERT INTO t1 VALUES (4)");
is($node->safe_psql('postgres',
	"SELECT count(*) FROM kafka_fdw.cdc_streams WHERE name = 'o'"), '1',
	'the stream stays until dropped');
$node->safe_psql('postgres', "SELECT kafka_fdw.cdc_drop('o')");
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'kafka_fdw_%'"),
	'0', 'a superuser drops it, with its slot');
is(ids(), '1,2,3', 'nothing was sent for the orphaned stream');

# --- cdc_drop in the transaction that created the stream ------------------
for my $snapshot ('false', 'true')
{
	($ret, $stdout, $stderr) = $node->psql('postgres', qq{
BEGIN;
SELECT kafka_fdw.cdc_create('tx', 'k', 'po', snapshot => $snapshot);
SELECT kafka_fdw.cdc_drop('tx');
COMMIT;
});
	like($stderr, qr/cannot drop a stream created in the same transaction/,
		"cdc_drop after cdc_create (snapshot $snapshot) in one transaction");
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM kafka_fdw.cdc_streams WHERE name = 'tx'") . ' '
		  . $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'kafka_fdw_%'"),
		'0 0', "the transaction left no stream and no slot (snapshot $snapshot)");
}
# committed, it drops
$node->safe_psql('postgres',
	"SELECT kafka_fdw.cdc_create('tx', 'k', 'po', snapshot => false)");
$node->safe_psql('postgres', "SELECT kafka_fdw.cdc_drop('tx')");
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'kafka_fdw_%'"),
	'0', 'a stream created by a committed transaction drops');

$node->stop;
done_testing();
