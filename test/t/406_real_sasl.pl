
# Copyright (c) kafka_fdw contributors

# SASL on real Kafka: credentials from a user mapping connect to a
# SASL_PLAINTEXT listener with ACLs; a wrong password and an ACL denial give
# clean ERRORs (SQLSTATE, the topic named), and the password is nowhere: not
# in the error, the server log, EXPLAIN VERBOSE or pg_stat_activity.
#
# The mechanism is PLAIN: Debian's librdkafka 2.0.2 cannot do SCRAM against
# Kafka 4 (librdkafka#4895), so SCRAM-SHA-512 is not tested here.  The users
# are test/kafka.sh's: admin/admin-secret (superuser), writer/writer-secret
# (may only write and describe topic sasl_writable).

use strict;
use warnings;

use Test::More;
BEGIN
{
	plan skip_all => 'needs real Kafka (KFDW_TEST_KAFKA=real)'
	  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';
}

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use JSON::PP;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(sasl => 1, topics => { sasl_other => 1 });
my $sasl = $broker->sasl_bootstrap;
ok($sasl, "the cluster has SASL listeners ($sasl)");

my $node = kafka_fdw_node('sasl');

# passwords that must never show up anywhere
my $good = 'writer-secret';
my $bad = 'Wr0ng-pa55word-7Q';

# Creating the user mappings is kept out of the server log (log_statement
# is "all" in TAP nodes, and PostgreSQL logs a statement's text, as it does
# for CREATE ROLE ... PASSWORD): every later appearance of a password in the
# log would come from kafka_fdw.
my $sql = <<"SQL";
SET log_statement = 'none';
CREATE ROLE regress_writer LOGIN;
CREATE ROLE regress_wrong LOGIN;
CREATE SERVER ksasl FOREIGN DATA WRAPPER kafka_fdw
  OPTIONS (brokers '$sasl', "security.protocol" 'SASL_PLAINTEXT',
           "sasl.mechanisms" 'PLAIN', connect_timeout_ms '5000',
           "message.timeout.ms" '10000');
GRANT USAGE ON FOREIGN SERVER ksasl TO regress_writer, regress_wrong;
CREATE USER MAPPING FOR regress_writer SERVER ksasl
  OPTIONS ("sasl.username" 'writer', "sasl.password" '$good');
CREATE USER MAPPING FOR regress_wrong SERVER ksasl
  OPTIONS ("sasl.username" 'writer', "sasl.password" '$bad');
CREATE FOREIGN TABLE sasl_writable (
  k text OPTIONS (key 'true'),
  part int OPTIONS (partition 'true'),
  off bigint OPTIONS (offset 'true'),
  id int, note text
) SERVER ksasl OPTIONS (topic 'sasl_writable');
CREATE FOREIGN TABLE sasl_other (id int, note text)
  SERVER ksasl OPTIONS (topic 'sasl_other');
GRANT SELECT, INSERT ON sasl_writable, sasl_other TO regress_writer, regress_wrong;
SQL
$node->safe_psql('postgres', $sql);
unlike(slurp_file($node->logfile), qr/\Q$good\E|\Q$bad\E/,
	'setting up the user mappings left no password in the log');

# psql as ROLE; returns (exit code, stdout, stderr)
sub psql_as
{
	my ($role, $query) = @_;
	my ($out, $err, $timed_out);
	my $rc = $node->psql('postgres', $query,
		stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ],
		timeout => 60, timed_out => \$timed_out);
	$err = "psql timed out after 60 s\n" . ($err // '') if $timed_out;
	return ($timed_out ? -1 : $rc, $out // '', $err // '');
}

# kcat on the SASL listener as admin
sub kcat_admin
{
	my ($topic) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[ 'kcat', '-C', '-e', '-q', '-J', '-o', 'beginning', '-b', $sasl,
		  '-X', 'security.protocol=SASL_PLAINTEXT',
		  '-X', 'sasl.mechanisms=PLAIN', '-X', 'sasl.username=admin',
		  '-X', 'sasl.password=admin-secret', '-t', $topic ],
		'<', \'', '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	die "kcat as admin failed: $err" if $?;
	my $json = JSON::PP->new->utf8;
	return map { $json->decode($_) } grep { /^\{/ } split /\n/, $out;
}

# --- the right credentials --------------------------------------------------
my ($rc, $out, $err) = psql_as('regress_writer',
	"INSERT INTO sasl_writable (k, id, note) VALUES ('a', 1, 'one'), ('b', 2, 'two')");
is($rc, 0, 'INSERT with the user mapping\'s credentials works') or diag $err;
my @msgs = sort { $a->{key} cmp $b->{key} } kcat_admin('sasl_writable');
is_deeply(
	[ map { [ $_->{key}, JSON::PP->new->decode($_->{payload}) ] } @msgs ],
	[ [ 'a', { id => 1, note => 'one' } ], [ 'b', { id => 2, note => 'two' } ] ],
	'kcat as admin reads both messages back');

# --- a wrong password -------------------------------------------------------
my $logpos = -s $node->logfile;
($rc, $out, $err) = psql_as('regress_wrong',
	"INSERT INTO sasl_writable (k, id, note) VALUES ('c', 3, 'three')");
isnt($rc, 0, 'INSERT with a wrong password fails');
like($err, qr/ERROR:  (\w{5}): /, 'with an ERROR and a SQLSTATE');
like($err, qr/ERROR:  (08001|HV00N|28P01|28000)/,
	'the SQLSTATE says the connection or the authorization failed')
  or diag $err;
like($err, qr/auth|SASL|credential/i, 'the error says authentication failed')
  or diag $err;
unlike($err, qr/\Q$bad\E/, 'the wrong password is not in the error');

($rc, $out, $err) = psql_as('regress_wrong',
	"SELECT count(*) FROM sasl_writable");
isnt($rc, 0, 'SELECT with a wrong password fails');
like($err, qr/ERROR:  \w{5}: /, 'with an ERROR and a SQLSTATE') or diag $err;
unlike($err, qr/\Q$bad\E/, 'the wrong password is not in the SELECT\'s error');

# EXPLAIN (VERBOSE) with the right credentials shows the table's options,
# not the user mapping's; with the wrong ones it fails like any statement
for my $case ([ 'regress_writer', $good ], [ 'regress_wrong', $bad ])
{
	my ($role, $password) = @$case;
	($rc, $out, $err) = psql_as($role, q{
EXPLAIN (VERBOSE) INSERT INTO sasl_writable (k, id) VALUES ('x', 9);
EXPLAIN (VERBOSE) SELECT * FROM sasl_writable WHERE id = 1;
});
	if ($role eq 'regress_writer')
	{
		is($rc, 0, 'EXPLAIN (VERBOSE) works with the right credentials') or diag $err;
		like($out, qr/Foreign Scan.*sasl_writable/s, 'EXPLAIN shows the foreign scan');
	}
	else
	{
		like("$out$err", qr/Foreign Insert|ERROR:  \w{5}: /,
			'EXPLAIN (VERBOSE) with a wrong password shows a plan or a clean ERROR');
	}
	unlike("$out$err", qr/\Q$password\E|sasl\.password/,
		"EXPLAIN (VERBOSE) as $role shows no password");
}

# pg_stat_activity while a statement with the wrong password is waiting
my $bg = $node->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-U', 'regress_wrong' ]);
$bg->query_until(qr/started/, q{\echo started
SELECT count(*) FROM sasl_writable;
});
my $activity = '';
ok( poll_until(
		sub {
			$activity = $node->safe_psql('postgres', q{
SELECT string_agg(coalesce(query, '') || ' ' || coalesce(backend_type, '')
                  || ' ' || coalesce(application_name, ''), E'\n')
  FROM pg_stat_activity WHERE usename = 'regress_wrong'});
			$activity =~ /sasl_writable/;
		},
		30),
	'the statement shows in pg_stat_activity');
unlike($activity, qr/\Q$bad\E/, 'pg_stat_activity shows no password');
$bg->quit;

my $log = slurp_file($node->logfile, $logpos);
like($log, qr/ERROR/, 'the failures are in the server log');
unlike($log, qr/\Q$bad\E/, 'the wrong password is nowhere in the server log');
unlike(slurp_file($node->logfile), qr/\Q$good\E|\Q$bad\E/,
	'no password anywhere in the server log');

# --- ACL denials ------------------------------------------------------------
$logpos = -s $node->logfile;
($rc, $out, $err) = psql_as('regress_writer',
	"INSERT INTO sasl_other VALUES (1, 'not allowed')");
isnt($rc, 0, 'INSERT into a topic the user may not write fails');
like($err, qr/ERROR:  \w{5}: .*"sasl_other"/, 'the error names the topic')
  or diag $err;
like($err, qr/ERROR:  42501: /, 'with SQLSTATE 42501 (insufficient_privilege)');
like($err, qr/authori[sz]|not allowed|denied/i,
	'and says the authorization failed') or diag $err;
unlike($err, qr/\Q$good\E/, 'without the password');
my @other = $broker->consume('sasl_other');
is(scalar @other, 0, 'nothing was written to the forbidden topic');

# A scan's consumer has group.id kafka_fdw (it never joins or commits, but
# librdkafka still asks for the group's coordinator): without Read on that
# group the scan is denied on the group
($rc, $out, $err) = psql_as('regress_writer', "SELECT id FROM sasl_writable");
isnt($rc, 0, 'SELECT without Read on group kafka_fdw fails');
like($err, qr/ERROR:  \w{5}: .*"sasl_writable"/, 'the error names the topic')
  or diag "rc $rc out $out err $err";
like($err, qr/Group authorization failed/i, 'and says the group authorization failed')
  or diag $err;

# with Read on the group, the scan is denied on the topic it may not read
$broker->kafka_sh('tool', 'org.apache.kafka.tools.AclCommand',
	'--bootstrap-server', $broker->bootstrap, '--add',
	'--allow-principal', 'User:writer', '--operation', 'Read',
	'--group', 'kafka_fdw');
# (every broker learns of the new ACL from the metadata log, soon)
poll_until(
	sub {
		($rc, $out, $err) = psql_as('regress_writer', "SELECT id FROM sasl_writable");
		$err !~ /Group authorization failed/;
	},
	30);
isnt($rc, 0, 'SELECT of a topic the user may not read fails');
like($err, qr/ERROR:  \w{5}: .*"sasl_writable"/, 'the error names the topic')
  or diag "rc $rc out $out err $err";
like($err, qr/Topic authorization failed|not authorized/i,
	'and says the topic authorization failed') or diag $err;
like($err, qr/ERROR:  42501: /, 'with SQLSTATE 42501 (insufficient_privilege)')
  or diag $err;

$log = slurp_file($node->logfile, $logpos);
unlike($log, qr/\Q$good\E|\Q$bad\E/, 'no password in the log of the denials');

# the writer still writes
($rc, $out, $err) = psql_as('regress_writer',
	"INSERT INTO sasl_writable (k, id, note) VALUES ('d', 4, 'four')");
is($rc, 0, 'after the denials the writer still writes its topic') or diag $err;
is(scalar(kcat_admin('sasl_writable')), 3, 'and kcat reads three messages');

$node->stop;
$broker->stop;
done_testing();
