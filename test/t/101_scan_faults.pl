
# Copyright (c) kafka_fdw contributors

# Scans and faults: every message read back as produced; query cancel and
# statement_timeout stop a scan within a second wherever it waits (a slow
# broker during planning and during a fetch, a broker that is down); an
# unreachable broker gives an ERROR naming the brokers within the server's
# connect_timeout_ms; a failed scan leaks no consumer.

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { f1 => 2, f2 => 1, big => 1, e8 => 8 }, brokers => 1);
my $bootstrap = $broker->bootstrap;

my $node = kafka_fdw_node('scan_faults');
create_kafka_server($node, $broker, 'k',
	options => { connect_timeout_ms => '2000' }, user_mapping => 1);
create_kafka_server($node, $broker, 'kpatient',
	options => { connect_timeout_ms => '600000' }, user_mapping => 1);
create_kafka_server(
	$node, $broker, 'ksmall',
	options => {
		connect_timeout_ms => '600000',
		'queued.max.messages.kbytes' => '1024',
		'fetch.max.bytes' => '1048576'
	},
	user_mapping => 1);
$node->safe_psql(
	'postgres', qq{
CREATE FOREIGN TABLE f1 (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), k text OPTIONS (key 'true'), v text)
  SERVER k OPTIONS (format 'raw');
CREATE FOREIGN TABLE f1_patient (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), v text)
  SERVER kpatient OPTIONS (topic 'f1', format 'raw');
CREATE FOREIGN TABLE big (o bigint OPTIONS (offset 'true'), v text)
  SERVER ksmall OPTIONS (format 'raw');
});

# every message, as an independent client reads it
my @sent = map { { key => "k$_", value => "v$_", partition => $_ % 2 } } 1 .. 100;
is($broker->produce('f1', \@sent), 100, '100 messages produced');
my @kcat = sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} }
  $broker->consume('f1');
my $expected = join("\n",
	map { join('|', $_->{partition}, $_->{offset}, $_->{key}, $_->{payload}) } @kcat);
is($node->safe_psql('postgres', 'SELECT p, o, k, v FROM f1 ORDER BY p, o'),
	$expected, 'the scan returns every message kcat reads, with its attributes');

# headers: repeated names become arrays in order, a null value is JSON null;
# null keys and values are NULL
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE f2 (o bigint OPTIONS (offset 'true'), k text OPTIONS (key 'true'),
  h jsonb OPTIONS (headers 'true'), v text) SERVER k OPTIONS (format 'raw');
});
$broker->produce(
	'f2',
	[
		{ key => 'h', value => 'with headers', partition => 0,
		  headers => [ [ 'a', '1' ], [ 'b', undef ], [ 'a', '2' ], [ 'c', 'x"y' ] ] },
		{ key => undef, value => 'no key', partition => 0 },
		{ key => 'tombstone', value => undef, partition => 0 },
	]);
is( $node->safe_psql(
		'postgres', q{SELECT o, k IS NULL, h, v IS NULL, v FROM f2 ORDER BY o}),
	qq{0|f|{"a": ["1", "2"], "b": null, "c": "x\\"y"}|f|with headers
1|t|{}|f|no key
2|f|{}|t|},
	'headers, null keys and tombstones');

# an empty topic costs nothing: no partition is fetched
$node->safe_psql('postgres',
	"CREATE FOREIGN TABLE e8 (v text) SERVER k OPTIONS (format 'raw')");
my $t0 = time;
is($node->safe_psql('postgres', 'SELECT count(*) FROM e8'), '0',
	'count over an empty 8-partition topic');
cmp_ok(time - $t0, '<', 1.0, 'returns in well under a second');

# Pump a background psql until the scalar matches the pattern, for at
# most 60 seconds.
sub wait_for_output
{
	my ($h, $ref, $pattern) = @_;
	my $deadline = time + 60;
	while ($$ref !~ $pattern && time < $deadline)
	{
		$h->pump_nb;
		usleep(10_000);
	}
	return $$ref =~ $pattern;
}

# Run a statement that must fail; return its stderr and how long it took.
sub timed_failure
{
	my ($sql) = @_;
	my $start = time;
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	my $elapsed = time - $start;
	isnt($ret, 0, "fails: $sql");
	return ($err, $elapsed);
}

my ($err, $elapsed, $blob, $stdin, $stdout, $stderr, $psql, $start);
SKIP:
{
	skip 'latency is a fault of the embedded broker only', 6
	  if $broker->is_real;

	# A slow broker while planning: every request takes 5 s
	$broker->rtt(1, 5000);
	($err, $elapsed) = timed_failure(
		"SET statement_timeout = '500ms'; SELECT count(*) FROM f1_patient");
	like($err, qr/canceling statement due to statement timeout/,
		'statement_timeout during metadata and watermark requests');
	cmp_ok($elapsed, '<', 2.0, 'the wait for the brokers ends within a second');
	$broker->rtt(1, 0);

	# A slow broker while fetching: the cursor has its ranges, then every fetch
	# takes 5 s.  3 MB in the topic, more than the consumer of server ksmall
	# prefetches.
	$blob = 'x' x 10000;
	$broker->produce('big', [ map { { value => "$_:$blob" } } 1 .. 300 ]);
	$stdin = "BEGIN;\nDECLARE c CURSOR FOR SELECT o, v FROM big;\n"
	  . "FETCH 1 FROM c;\n\\echo fetched\n";
	($stdout, $stderr) = ('', '');
	$psql = IPC::Run::start(
		[ 'psql', '-XAt', '-d', $node->connstr('postgres') ],
		'<', \$stdin, '>', \$stdout, '2>', \$stderr);
	wait_for_output($psql, \$stdout, qr/fetched/);
	like($stdout, qr/^0\|1:x+\nfetched/m, 'first message of the cursor');
	$broker->rtt(1, 5000);
	$start = time;
	$stdin .= "SET statement_timeout = '500ms';\nFETCH ALL FROM c;\n";
	wait_for_output($psql, \$stderr, qr/statement timeout/);
	$elapsed = time - $start;
	like($stderr, qr/canceling statement due to statement timeout/,
		'statement_timeout while waiting for a fetch');
	cmp_ok($elapsed, '<', 2.0, 'the fetch wait ends within a second');
	$stdin .= "ROLLBACK;\n\\q\n";
	eval { $psql->finish } or $psql->kill_kill;
	$broker->rtt(1, 0);
}

# The broker is down: query cancel stops the wait
$broker->down_all;
$stdout = '';
$stderr = '';
$stdin = "SELECT count(*) FROM f1_patient;\n";
$psql = IPC::Run::start(
	[ 'psql', '-XAt', '-d', $node->connstr('postgres') ],
	'<', \$stdin, '>', \$stdout, '2>', \$stderr);
wait_for_output($psql, \$stdin, qr/^$/);
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM f1_patient%' AND state = 'active' AND now() - query_start > interval '300 ms'"
	),
	'a scan waits for the broker that is down');
$start = time;
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM f1_patient%'"
);
wait_for_output($psql, \$stderr, qr/canceling statement/);
$elapsed = time - $start;
like($stderr, qr/canceling statement due to user request/, 'query cancel');
cmp_ok($elapsed, '<', 1.5, 'cancel ends the wait within a second');
$stdin .= "\\q\n";
eval { $psql->finish } or $psql->kill_kill;

# The broker is down: an ERROR that names the brokers, in a bounded time
($err, $elapsed) = timed_failure('SELECT count(*) FROM f1');
like($err, qr/\Q$bootstrap\E/, 'the error names the brokers');
like($err, qr/within 2000 ms/, 'the error says how long it waited');
cmp_ok($elapsed, '<', 6, 'the error comes within the connect timeout');

# watermarks() too
($err, $elapsed) = timed_failure("SELECT * FROM kafka_fdw.watermarks('f1')");
like($err, qr/\Q$bootstrap\E/, 'watermarks(): the error names the brokers');

# In one session: a failed scan leaves nothing behind, the next one works
$broker->up_all;
$stdout = '';
$stderr = '';
$stdin = "SELECT count(*) FROM f1;\n";
$psql = IPC::Run::start(
	[ 'psql', '-XAt', '-d', $node->connstr('postgres') ],
	'<', \$stdin, '>', \$stdout, '2>', \$stderr);
wait_for_output($psql, \$stdout, qr/^100$/m);
is($stdout, "100\n", 'first scan of the session');
$broker->down_all;
$stdin .= "SELECT count(*) FROM f1;\n";
wait_for_output($psql, \$stderr, qr/ERROR/);
like($stderr, qr/ERROR/, 'a scan of the same session fails while the broker is down');
$broker->up_all;
$stdin .= "SELECT count(*), sum(o) FROM f1;\n";
wait_for_output($psql, \$stdout, qr/\|/);
is($stdout, "100\n100|2450\n", 'the session scans again once the broker is back');

# ALTER SERVER re-makes the session's consumer: a wrong address fails,
# naming it, and the right one works again
$stdin .= "ALTER SERVER k OPTIONS (SET brokers '127.0.0.1:9');\n"
  . "SELECT count(*) FROM f1;\n";
wait_for_output($psql, \$stderr, qr/127\.0\.0\.1:9/);
like($stderr, qr/ERROR:.*"127\.0\.0\.1:9"/, 'after ALTER SERVER the new brokers are used');
$stdin .= "ALTER SERVER k OPTIONS (SET brokers '$bootstrap');\n"
  . "SELECT 'again', count(*) FROM f1;\n";
wait_for_output($psql, \$stdout, qr/again/);
like($stdout, qr/^again\|100$/m, 'and after ALTER SERVER back, the old ones');
$stdin .= "\\q\n";
eval { $psql->finish } or $psql->kill_kill;

$node->stop;
done_testing();
