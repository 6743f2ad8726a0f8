
# Copyright (c) kafka_fdw contributors

# Change data capture settings: kafka_fdw.max_streams sizes the registry at
# server start (cdc_create beyond it fails with SQLSTATE 53400, a restart
# with a larger value makes room); kafka_fdw.naptime is changed by a reload
# and checked against its range.  The streams keep delivering through both,
# the snapshot of a stream marks its first row "first" and its very last
# row "last", also when the last table of the publication is empty; a
# TRUNCATE is skipped by default, and sent as op "t" with the option
# skipped.operations "none".

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(
	topics => {
		'a.public.t1' => 1,
		'a.public.t2' => 1,
		'b.public.t1' => 1,
		'c.public.t1' => 1,
	});

my $node = kafka_fdw_node('cdcsettings', cdc => 1,
	conf => ['kafka_fdw.max_streams = 2']);

# The values of the messages of a topic, decoded to their payload
sub values_of
{
	my ($topic) = @_;
	return map { cdc_payload($_->{payload}) }
	  grep { defined $_->{payload} } $broker->consume($topic);
}

# Wait until topic holds the create events of ids, in this order (a
# restart may send an event twice: at least once)
sub wait_creates
{
	my ($topic, $want, $name) = @_;
	my $got;
	poll_until(
		sub {
			my %seen;
			$got = join(',',
				grep { !$seen{$_}++ }
				map { $_->{after}{id} } grep { $_->{op} eq 'c' } values_of($topic));
			$got eq $want;
		},
		120);
	is($got, $want, $name);
}

create_kafka_server($node, $broker, 'k');
$node->safe_psql('postgres', q{
CREATE TABLE t1 (id int PRIMARY KEY, v text);
CREATE TABLE t2 (id int PRIMARY KEY);
INSERT INTO t1 VALUES (1, 'x'), (2, 'y'), (3, 'z');
CREATE PUBLICATION p FOR TABLE t1, t2;
});

is($node->safe_psql('postgres', 'SHOW kafka_fdw.max_streams'), '2',
	'kafka_fdw.max_streams is read from postgresql.conf');
is($node->safe_psql('postgres', 'SHOW kafka_fdw.naptime'), '10ms',
	'kafka_fdw.naptime defaults to 10 ms');

# --- two streams fit, a third does not ------------------------------------
$node->safe_psql('postgres', "SELECT kafka_fdw.cdc_create('a', 'k', 'p')");
$node->safe_psql('postgres',
	"SELECT kafka_fdw.cdc_create('b', 'k', 'p', snapshot => false)");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 2 FROM kafka_fdw.cdc_status WHERE state = 'streaming'"),
	'two streams run with kafka_fdw.max_streams = 2');

my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT kafka_fdw.cdc_create('c', 'k', 'p', snapshot => false)");
isnt($ret, 0, 'a third stream is refused');
like($stderr, qr/ERROR:  53400: too many kafka_fdw streams/,
	'the error is configuration_limit_exceeded (53400)');
like($stderr, qr/DETAIL:  A cluster can have at most 2 streams\./,
	'the detail gives the limit');
like($stderr, qr/HINT:  Raise kafka_fdw\.max_streams/,
	'the hint names the setting');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM kafka_fdw.cdc_streams WHERE name = 'c'"),
	'0', 'the refused stream left no row');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'kafka_fdw_%_c'"),
	'0', 'the refused stream left no slot');

# --- the snapshot's last row ------------------------------------------------
# t1's rows are read in insertion order; t2, read after it, is empty, so
# t1's last row is the snapshot's last
my @reads = grep { $_->{op} eq 'r' } values_of('a.public.t1');
is(join(',', map { "$_->{after}{id}:$_->{source}{snapshot}" } @reads),
	'1:first,2:true,3:last',
	'the first row of the snapshot says "first", the last "last", the others "true"');
is(scalar(grep { defined $_->{payload} } $broker->consume('a.public.t2')),
	0, 'the empty table sent nothing');

# --- kafka_fdw.naptime by reload --------------------------------------------
($ret, $stdout, $stderr) = $node->psql('postgres',
	"ALTER SYSTEM SET kafka_fdw.naptime = 0");
like($stderr, qr/0 ms is outside the valid range for parameter "kafka_fdw\.naptime" \(1 \.\. 60000\)/,
	'kafka_fdw.naptime refuses 0');
($ret, $stdout, $stderr) = $node->psql('postgres', "SET kafka_fdw.naptime = 50");
like($stderr, qr/parameter "kafka_fdw\.naptime" cannot be changed now/,
	'kafka_fdw.naptime is not a session setting');

$node->safe_psql('postgres', q{
ALTER SYSTEM SET kafka_fdw.naptime = '250ms';
SELECT pg_reload_conf();
});
ok( $node->poll_query_until('postgres', 'SHOW kafka_fdw.naptime', '250ms'),
	'a reload applies a new kafka_fdw.naptime');

$node->safe_psql('postgres', 'INSERT INTO t1 VALUES (10)');
wait_creates('a.public.t1', '10', 'stream a delivers with the new naptime');
wait_creates('b.public.t1', '10', 'stream b delivers with the new naptime');

# --- kafka_fdw.max_streams needs a restart ------------------------------------
$node->safe_psql('postgres', q{
ALTER SYSTEM SET kafka_fdw.max_streams = 3;
SELECT pg_reload_conf();
});
ok( $node->wait_for_log(
		qr/parameter "kafka_fdw\.max_streams" cannot be changed without restarting the server/),
	'a reload does not change kafka_fdw.max_streams');
is($node->safe_psql('postgres', 'SHOW kafka_fdw.max_streams'), '2',
	'kafka_fdw.max_streams keeps its value until the restart');

$node->restart;
is($node->safe_psql('postgres', 'SHOW kafka_fdw.max_streams'), '3',
	'kafka_fdw.max_streams takes its new value at the restart');
is($node->safe_psql('postgres', 'SHOW kafka_fdw.naptime'), '250ms',
	'kafka_fdw.naptime is kept across the restart');
$node->safe_psql('postgres',
	"SELECT kafka_fdw.cdc_create('c', 'k', 'p', snapshot => false, options => '{\"skipped.operations\": \"none\"}')");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 3 FROM kafka_fdw.cdc_status WHERE state = 'streaming'"),
	'with kafka_fdw.max_streams = 3 a third stream runs beside the two');

$node->safe_psql('postgres', 'INSERT INTO t1 VALUES (11)');
wait_creates('a.public.t1', '10,11', 'stream a delivers after the restart');
wait_creates('b.public.t1', '10,11', 'stream b delivers after the restart');
wait_creates('c.public.t1', '11', 'stream c delivers');

# --- TRUNCATE: skipped by default, sent with skipped.operations none -------
$node->safe_psql('postgres', 'TRUNCATE t1; INSERT INTO t1 VALUES (12)');
wait_creates('a.public.t1', '10,11,12', 'stream a delivers the create after the truncate');
wait_creates('c.public.t1', '11,12', 'stream c delivers the create after the truncate');
my $ops = sub {
	my %seen;
	return join(',', grep { !$seen{$_}++ }
		  map { $_->{op} . ($_->{after} ? $_->{after}{id} : '') } values_of(shift));
};
is($ops->('a.public.t1'), 'r1,r2,r3,c10,c11,c12',
	'default skipped.operations: the truncate is not sent');
is($ops->('c.public.t1'), 'c11,t,c12',
	'skipped.operations none: the truncate is sent, as op t, in its place');
my ($t) = grep { $_->{op} eq 't' } values_of('c.public.t1');
is_deeply([ $t->{before}, $t->{after}, $t->{source}{table} ], [ undef, undef, 't1' ],
	'the truncate names its table, with neither before nor after');

$node->stop;
done_testing();
