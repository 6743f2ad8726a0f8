# Copyright (c) kafka_fdw contributors

# Retention on a real Kafka cluster: records deleted through the admin API
# (DeleteRecords, Kafka's own DeleteRecordsCommand) before a scan starts
# and while a scan runs.  The scan reads what remains, without error; its
# rows, count(*) and kafka_fdw.watermarks() agree with kcat.
#
# The embedded broker has no admin API, so only real Kafka can answer this.

use strict;
use warnings;

use File::Temp ();
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

plan skip_all => 'needs real Kafka (KFDW_TEST_KAFKA=real)'
  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { before => 2, during => 1, during2 => 1 });
my $bootstrap = $broker->bootstrap;

# N messages "m<offset>-xxx..." (100 bytes) into one partition with kcat;
# the value names the offset it gets (one producer, a fresh partition)
my $pad = 'x' x 90;
sub fill
{
	my ($topic, $partition, $n) = @_;
	my $in = join('', map { "m$_-$pad\n" } 0 .. $n - 1);
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'kcat', '-P', '-b', $bootstrap, '-t', $topic, '-p', $partition ],
		'<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(120))
	  or die "kcat produce failed: $err";
}

# DeleteRecords: every record of TOPIC's PARTITION before OFFSET; returns the
# low watermark the tool reports
sub delete_records
{
	my ($topic, $partition, $offset) = @_;
	my $tmp = File::Temp->new(SUFFIX => '.json');
	print $tmp qq({"partitions":[{"topic":"$topic","partition":$partition,"offset":$offset}],"version":1}\n);
	close $tmp;
	my ($out) = $broker->kafka_sh('tool', 'org.apache.kafka.tools.DeleteRecordsCommand',
		'--bootstrap-server', $bootstrap, '--offset-json-file', $tmp->filename);
	return $out =~ /partition: \Q$topic\E-$partition\s+low_watermark: (\d+)/ ? $1 : "no answer: $out";
}

# kcat's messages as "p|o" lines, in partition and offset order, and check
# that each value names its offset
sub kcat_rows
{
	my ($topic) = @_;
	my @m = sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} }
	  $broker->consume($topic);
	return join("\n", map { "$_->{partition}|$_->{offset}|" . substr($_->{payload}, 0, index($_->{payload}, '-')) } @m);
}

fill('before', 0, 1000);
fill('before', 1, 1000);
fill('during', 0, 50000);
fill('during2', 0, 50000);

my $node = kafka_fdw_node('real_retention');
create_kafka_server($node, $broker, 'k', user_mapping => 1);
# small fetches and a small prefetch queue, so that a scan in progress has
# fetched only a little ahead of the rows it returned
create_kafka_server(
	$node, $broker, 'kslow',
	options => {
		'fetch.max.bytes' => '16384',
		'max.partition.fetch.bytes' => '16384',
		'message.max.bytes' => '16384',
		'queued.max.messages.kbytes' => '16',
		'queued.min.messages' => '10',
	},
	user_mapping => 1);
$node->safe_psql(
	'postgres', q{
CREATE FOREIGN TABLE before (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), v text) SERVER k OPTIONS (format 'raw');
CREATE FOREIGN TABLE during (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), v text) SERVER kslow OPTIONS (format 'raw');
CREATE FOREIGN TABLE during2 (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), v text) SERVER kslow OPTIONS (format 'raw');
});
my $rows_sql = q{SELECT p || '|' || o || '|' || split_part(v, '-', 1) FROM %s ORDER BY p, o};

# --- deleted before the scan starts -------------------------------------
is($node->safe_psql('postgres', "SELECT count(*) FROM before"), '2000',
	'2000 messages before the deletion');
is(delete_records('before', 0, 300), 300, 'DeleteRecords: partition 0 now starts at 300');
is(delete_records('before', 1, 700), 700, 'DeleteRecords: partition 1 now starts at 700');
is($node->safe_psql('postgres',
		"SELECT partition || ':' || low || '-' || high FROM kafka_fdw.watermarks('before') ORDER BY 1"),
	"0:300-1000\n1:700-1000", 'kafka_fdw.watermarks() shows the new low watermarks');
my $kcat = kcat_rows('before');
is(scalar(split /\n/, $kcat), 1000, 'kcat reads the 1000 that remain');
is($node->safe_psql('postgres', sprintf($rows_sql, 'before')), $kcat,
	'the scan reads exactly what remains, offsets and values');
is($node->safe_psql('postgres', 'SELECT count(*) FROM before'), '1000',
	'count(*) = the sum of high - low');
is($node->safe_psql('postgres',
		'SELECT count(*), min(o), max(o) FROM before WHERE p = 0 AND o >= 100 AND o < 400'),
	'100|300|399', 'an offset range that starts among the deleted records reads from the low watermark');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM before WHERE p = 1 AND o < 700'),
	'0', 'a range wholly deleted is empty, without error');

# --- deleted while a cursor is open -------------------------------------
my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe('BEGIN');
$s->query_safe(q{DECLARE c CURSOR FOR SELECT o, split_part(v, '-', 1) FROM during});
my $first = $s->query_safe('FETCH 100 FROM c');
is((split /\n/, $first)[-1], '99|m99', 'the cursor returned offsets 0 to 99');
is(delete_records('during', 0, 40000), 40000, 'DeleteRecords up to 40000 while the cursor is open');
my ($rest) = $s->query('FETCH ALL FROM c');
is($s->{stderr}, '', 'the scan goes on without error');
$s->{stderr} = '';
$s->query_safe('COMMIT');

# every row returned names its own offset, offsets grow, and they are a
# prefix (what had been fetched before the deletion) then every offset from
# the new low watermark to the end
sub check_offsets
{
	my ($what, $low, $high, @lines) = @_;
	my @o = map { (split /\|/)[0] } @lines;
	is(scalar(grep { my ($o, $v) = split /\|/; $v ne "m$o" } @lines), 0,
		"$what: every row is the record at its offset");
	my $prefix = 0;
	$prefix++ while $prefix < @o && $o[$prefix] == $prefix;
	my @tail = @o[ $prefix .. $#o ];
	is(scalar(@tail), $high - $low, "$what: then the " . ($high - $low) . " records from $low on");
	is(join(',', @tail), join(',', $low .. $high - 1),
		"$what: each of them once, in offset order");
	cmp_ok($prefix, '<', $low, "$what: the deleted records it had not fetched are not returned ($prefix returned)");
}
check_offsets('cursor', 40000, 50000, split(/\n/, $first), split(/\n/, $rest));

is($node->safe_psql('postgres',
		"SELECT low || '-' || high FROM kafka_fdw.watermarks('during')"),
	'40000-50000', 'kafka_fdw.watermarks() after the deletion');
is($node->safe_psql('postgres', 'SELECT count(*) FROM during'), '10000',
	'a new scan counts what remains');
is(scalar($broker->consume('during')), 10000, 'as kcat does');
is($node->safe_psql('postgres', sprintf($rows_sql, 'during')), kcat_rows('during'),
	'and reads the same records');

# --- deleted while one statement runs -----------------------------------
# The statement stops at offset 2000 until the test lets it go on (a row
# of a plpgsql barrier that waits for a flag, with a deadline), so that the
# records are deleted in the middle of the scan.
$node->safe_psql(
	'postgres', q{
CREATE TABLE barrier (go boolean);
INSERT INTO barrier VALUES (false);
CREATE FUNCTION barrier_at(o bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '120 s';
BEGIN
  IF o = 2000 THEN
    RAISE NOTICE 'scan at offset %', o;
    WHILE NOT (SELECT go FROM barrier) AND clock_timestamp() < deadline LOOP
      PERFORM pg_sleep(0.05);
    END LOOP;
  END IF;
  RETURN o;
END $$;
});
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		'-c', q{SELECT barrier_at(o) || '|' || split_part(v, '-', 1) FROM during2} ],
	'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(180));
ok(poll_until(sub { $h->pump_nb; $err =~ /scan at offset 2000/ }, 60),
	'the statement reached offset 2000');
is(delete_records('during2', 0, 40000), 40000, 'DeleteRecords up to 40000 while it runs');
$node->safe_psql('postgres', 'UPDATE barrier SET go = true');
ok($h->finish, 'the statement ends without error');
unlike($err, qr/ERROR/, 'no ERROR');
check_offsets('statement', 40000, 50000, split(/\n/, $out));
is($node->safe_psql('postgres', 'SELECT count(*) FROM during2'), '10000',
	'a new scan counts what remains');
is(scalar($broker->consume('during2')), 10000, 'as kcat does');

$s->quit;
$node->stop;
$broker->stop;
done_testing();
