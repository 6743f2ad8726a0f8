
# Copyright (c) kafka_fdw contributors

# Change data capture runs the code of a stream's tables as the stream's
# owner, never as superuser: a REPLICATION role that owns the published
# tables has a domain whose CHECK calls its own function; the function runs
# in the worker (decoding converts every value with the domain's input
# function) as that role.  The snapshot reads the tables as the owner too
# (row-level security forced on the owner stops it, where a superuser would
# bypass it).  An error of the owner's function shows in cdc_status and the
# stream recovers once the cause is gone.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(
	topics => { 'sec.app.t' => 1, 'sec.app.a_rls' => 1 });

my $node = kafka_fdw_node('cdc_security', cdc => 1,
	conf => [ "log_line_prefix = '%m [%p] %b: '" ]);

# Every message of a topic, values decoded to their payload
sub events
{
	my ($topic) = @_;
	my @msgs = $broker->consume($topic);
	$_->{value} = cdc_payload($_->{payload}) for @msgs;
	return @msgs;
}

sub wait_events
{
	my ($topic, $n) = @_;
	my @msgs;
	poll_until(sub { @msgs = events($topic); @msgs >= $n })
	  or diag "topic $topic has " . scalar(@msgs) . " messages, expected $n";
	return @msgs;
}

# the probe's log lines written by the stream's worker
sub worker_probes
{
	my $log = slurp_file($node->logfile);
	return [ $log =~ /kafka_fdw cdc worker: LOG:  kfdw_probe: v=(\d+) current_user=(\S+)/g ];
}

create_kafka_server($node, $broker, 'k');
$node->safe_psql('postgres', qq{
CREATE ROLE regress_cdc_owner LOGIN REPLICATION;
GRANT USAGE ON FOREIGN SERVER k TO regress_cdc_owner;
GRANT CREATE ON DATABASE postgres TO regress_cdc_owner;
});

# Everything below is the owner's: its function refuses to run as a
# superuser, fails on demand, and says who runs it (the log line says in
# which process).
$node->safe_psql('postgres', q{
SET ROLE regress_cdc_owner;
CREATE SCHEMA app;
CREATE FUNCTION app.probe(v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'kfdw_probe: ran as superuser %', current_user;
  END IF;
  IF current_setting('kfdw_test.fail', true) = 'on' THEN
    RAISE EXCEPTION 'kfdw_probe: refused %', v;
  END IF;
  RAISE LOG 'kfdw_probe: v=% current_user=%', v, current_user;
  RETURN v > 0;
END $$;
CREATE DOMAIN app.pos AS int CHECK (app.probe(VALUE));
CREATE TABLE app.t (id int PRIMARY KEY, v app.pos);
INSERT INTO app.t VALUES (1, 10), (2, 20);
CREATE TABLE app.a_rls (id int PRIMARY KEY);
INSERT INTO app.a_rls VALUES (1), (2);
ALTER TABLE app.a_rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.a_rls FORCE ROW LEVEL SECURITY;
CREATE POLICY none ON app.a_rls USING (false);
CREATE PUBLICATION psec FOR TABLE app.t, app.a_rls;
SELECT kafka_fdw.cdc_create('sec', 'k', 'psec');
});

is( $node->safe_psql('postgres',
		"SELECT owner::text FROM kafka_fdw.cdc_streams WHERE name = 'sec'"),
	'regress_cdc_owner',
	'the stream belongs to the role that created it');

# --- snapshot: read as the owner -----------------------------------------
# A superuser bypasses row-level security and would read both tables; the
# owner is subject to the policy it forced on itself, and the snapshot stops
# rather than miss rows.
ok( $node->poll_query_until(
		'postgres',
		"SELECT last_error LIKE '%row-level security%' AND NOT snapshot_done "
		  . "FROM kafka_fdw.cdc_status WHERE name = 'sec'"),
	'the snapshot reads as the owner: forced row-level security stops it, in cdc_status');
is(scalar(events('sec.app.a_rls')) + scalar(events('sec.app.t')),
	0, 'nothing is sent from a snapshot that failed');

$node->safe_psql('postgres',
	"ALTER TABLE app.a_rls NO FORCE ROW LEVEL SECURITY");
ok( $node->poll_query_until(
		'postgres',
		"SELECT state = 'streaming' AND snapshot_done FROM kafka_fdw.cdc_status WHERE name = 'sec'"),
	'the snapshot goes through once the owner may read every row');

my @t = wait_events('sec.app.t', 2);
is_deeply(
	[ map { [ $_->{value}{op}, $_->{value}{after}{id}, $_->{value}{after}{v} ] } @t ],
	[ [ 'r', 1, 10 ], [ 'r', 2, 20 ] ],
	'snapshot of the table with the domain column arrived');
is(scalar(wait_events('sec.app.a_rls', 2)), 2,
	'snapshot of the table with row-level security arrived');

# --- streaming: the domain's CHECK runs as the owner -----------------------
$node->safe_psql('postgres', q{
SET ROLE regress_cdc_owner;
INSERT INTO app.t VALUES (3, 30);
UPDATE app.t SET v = 11 WHERE id = 1;
});
@t = wait_events('sec.app.t', 4);
is_deeply(
	[ map { [ $_->{value}{op}, $_->{value}{after}{id}, $_->{value}{after}{v} ] } @t[ 2 .. 3 ] ],
	[ [ 'c', 3, 30 ], [ 'u', 1, 11 ] ],
	'changes of the table with the domain column arrived');

my $probes = worker_probes();
my %ran_as;
while (my ($v, $user) = splice(@$probes, 0, 2))
{
	$ran_as{$v} = $user;
}
is_deeply(
	[ map { $ran_as{$_} // 'not run' } 30, 11 ],
	[ 'regress_cdc_owner', 'regress_cdc_owner' ],
	'the worker ran the domain check of each streamed value as the owner');

# --- an error of the owner's function -------------------------------------
$node->append_conf('postgresql.conf', "kfdw_test.fail = on\n");
$node->reload;
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kafka_fdw cdc launcher'");
$node->safe_psql('postgres', q{
SET ROLE regress_cdc_owner;
SET kfdw_test.fail = 'off';
INSERT INTO app.t VALUES (4, 40);
});
ok( $node->poll_query_until(
		'postgres',
		"SELECT last_error LIKE 'kfdw_probe: refused 40%' "
		  . "FROM kafka_fdw.cdc_status WHERE name = 'sec'"),
	"the owner's function's error shows in cdc_status");
$node->append_conf('postgresql.conf', "kfdw_test.fail = off\n");
$node->reload;
@t = wait_events('sec.app.t', 5);
is_deeply([ $t[-1]{value}{op}, $t[-1]{value}{after}{id} ],
	[ 'c', 4 ], 'the stream retried and delivered the change');
is( $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kafka_fdw cdc launcher'"),
	$launcher,
	'the launcher survived the worker\'s errors');
is($node->safe_psql('postgres',
		"SELECT state FROM kafka_fdw.cdc_status WHERE name = 'sec'"),
	'streaming', 'the stream is streaming again');

my $log = slurp_file($node->logfile);
unlike($log, qr/ERROR:  kfdw_probe: ran as superuser/,
	'no code of the owner ran as superuser');
like($log, qr/kafka_fdw cdc worker: LOG:  kfdw_probe: v=40 current_user=regress_cdc_owner/,
	'the retried change was checked as the owner');

$node->safe_psql('postgres', "SELECT kafka_fdw.cdc_drop('sec')");
$node->stop;
$broker->stop;
done_testing();
