
# Copyright (c) kafka_fdw contributors

# SELECT for a consumer group, as a cron job uses it: each run copies the
# messages that came since the last one into a table, in one transaction.
# Every message arrives once while nothing fails; when the brokers are
# down at COMMIT, PostgreSQL commits, a WARNING says Kafka did not, and the
# next run copies the same messages again (at least once), none missing.
# The committed offsets are read back by an independent client
# (confluent_kafka's Consumer.committed()).  A transaction or an exception
# block that rolls back commits nothing.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { ev => 3 });
my $committed_py = File::Spec->catfile(dirname(File::Spec->rel2abs(__FILE__)),
	File::Spec->updir, 'kafka', 'committed.py');
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';

my $node = kafka_fdw_node('scan_groups');
create_kafka_server($node, $broker, 'k',
	options => { connect_timeout_ms => '30000' }, user_mapping => 1);
$node->safe_psql(
	'postgres', q{
CREATE FOREIGN TABLE ev_in (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), v text)
  SERVER k OPTIONS (topic 'ev', format 'raw', "group.id" 'tap_cron');
CREATE TABLE sink (p int, o bigint, v text);
});
my $cron = 'INSERT INTO sink SELECT p, o, v FROM ev_in';

my $next = 0;
sub produce_some
{
	my ($n) = @_;
	my @msgs = map { { key => undef, value => 'm' . ($next + $_), partition => ($next + $_) % 3 } }
	  0 .. $n - 1;
	$next += $n;
	return $broker->produce('ev', \@msgs);
}

# the group's offsets as an independent client reads them: "p:offset,..."
sub committed
{
	my ($out, $err);
	IPC::Run::run([ $python, $committed_py, $broker->bootstrap, 'tap_cron', 'ev', 3 ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(120))
	  or die "committed.py failed: $err";
	return join(',', map { /^partition (\d+): (\S+)$/ ? "$1:$2" : () } split /\n/, $out);
}

# every message the topic holds, as kcat reads it: "p|o|v" lines
sub topic_rows
{
	my @all = sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} }
	  $broker->consume('ev');
	return join("\n", map { "$_->{partition}|$_->{offset}|$_->{payload}" } @all);
}

is(produce_some(30), 30, '30 messages produced');
is(committed(), '0:none,1:none,2:none', 'the group has no offsets yet');

# runs of the cron job: each message once
$node->safe_psql('postgres', $cron);
is($node->safe_psql('postgres', 'SELECT count(*) FROM sink'), '30', 'the first run copies all');
is(committed(), '0:10,1:10,2:10', 'the offsets read are committed to the group');
$node->safe_psql('postgres', $cron);
is($node->safe_psql('postgres', 'SELECT count(*) FROM sink'), '30', 'a run with nothing new copies nothing');
produce_some(15);
$node->safe_psql('postgres', $cron);
is($node->safe_psql('postgres', 'SELECT p, o, v FROM sink ORDER BY p, o'),
	topic_rows(), 'after three runs the sink holds each message of the topic once');
is(committed(), '0:15,1:15,2:15', 'the group stands at the end of each partition');

# a run that rolls back, and one whose exception block rolls back its
# subtransaction, copy nothing and commit nothing: the next run copies
produce_some(6);
$node->safe_psql('postgres', "BEGIN; $cron; ROLLBACK;");
$node->safe_psql(
	'postgres', qq{
DO \$\$
BEGIN
  BEGIN
    $cron;
    RAISE EXCEPTION 'the run fails';
  EXCEPTION WHEN raise_exception THEN
    NULL;
  END;
END
\$\$;
});
is(committed(), '0:15,1:15,2:15', 'rolled-back runs commit nothing');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sink'), '45', 'and copied nothing');
$node->safe_psql('postgres', $cron);
is($node->safe_psql('postgres', 'SELECT p, o, v FROM sink ORDER BY p, o'),
	topic_rows(), 'the next run copies what they read, once');

# the brokers are down when the run commits: PostgreSQL commits, Kafka does
# not; the next run copies the same messages again
$node->safe_psql('postgres', "ALTER SERVER k OPTIONS (SET connect_timeout_ms '2000')");
produce_some(6);
my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe('BEGIN');
$s->query_safe($cron);
$broker->down_all;
$s->query('COMMIT');
$broker->up_all;
unlike($s->{stderr}, qr/ERROR/, 'COMMIT succeeds while the brokers are down');
like(
	$s->{stderr},
	qr/WARNING:  could not commit the offsets of Kafka consumer group "tap_cron"/,
	'a WARNING says the offsets were not committed');
$s->quit;
is($node->safe_psql('postgres', 'SELECT count(*) FROM sink'), '57', 'the rows of the run are committed');
$node->safe_psql('postgres', "ALTER SERVER k OPTIONS (SET connect_timeout_ms '30000')");
is(committed(), '0:17,1:17,2:17', 'the group still stands where the run started');
$node->safe_psql('postgres', $cron);
is($node->safe_psql('postgres', 'SELECT p, o, v FROM sink GROUP BY p, o, v ORDER BY p, o'),
	topic_rows(), 'at least once: no message is missing');
is( $node->safe_psql('postgres',
		'SELECT count(*) FROM (SELECT p, o FROM sink GROUP BY p, o HAVING count(*) > 1) d'),
	'6', 'the 6 messages of the run whose offsets were not committed came twice');
$node->safe_psql('postgres', $cron);
is($node->safe_psql('postgres', 'SELECT count(*) FROM sink'), '63', 'then nothing more');
is(committed(), '0:19,1:19,2:19', 'the group is at the end again');

$node->stop;
done_testing();
