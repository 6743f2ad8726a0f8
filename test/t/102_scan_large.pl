
# Copyright (c) kafka_fdw contributors

# Large topics: a partition whose start was deleted by retention (low
# watermark > 0) is read from what remains, with no error; the memory of a
# backend that scans a large topic stays bounded.

use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;

my $broker = KafkaTestBroker->new(topics => { ret => 1, big8 => 8 }, brokers => 1);
my $bootstrap = $broker->bootstrap;

my $node = PostgreSQL::Test::Cluster->new('scan_large');
$node->init;
$node->start;
$node->safe_psql(
	'postgres', qq{
CREATE EXTENSION kafka_fdw;
CREATE SERVER k FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '$bootstrap');
CREATE USER MAPPING FOR PUBLIC SERVER k;
CREATE FOREIGN TABLE ret (o bigint OPTIONS (offset 'true'), v text)
  SERVER k OPTIONS (format 'raw');
CREATE FOREIGN TABLE big8 (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), id int, pad text)
  SERVER k;
});

#
# Retention: 7 MB into one partition; the broker keeps about 5 MB
#
my $pad = 'r' x 1000;
$broker->produce('ret', [ map { { value => "$_:$pad" } } 0 .. 6999 ]);
my ($low, $high) = split /\|/,
  $node->safe_psql('postgres', "SELECT low, high FROM kafka_fdw.watermarks('ret')");
is($high, 7000, 'high watermark after 7000 messages');
cmp_ok($low, '>', 0, 'retention deleted the start of the partition');

is( $node->safe_psql(
		'postgres', 'SELECT count(*), min(o), max(o) FROM ret'),
	($high - $low) . "|$low|" . ($high - 1),
	'the scan reads from the low watermark to the end');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM ret WHERE v <> o || ':' || repeat('r', 1000)"),
	'0', 'each message is the one produced at its offset');
is( $node->safe_psql(
		'postgres', 'SELECT count(*), min(o) FROM ret WHERE o >= 0 AND o < ' . ($low + 10)),
	"10|$low", 'a range that starts below the low watermark reads what remains');
is($node->safe_psql('postgres', "SELECT count(*) FROM ret WHERE o < $low"),
	'0', 'a range that retention deleted entirely is empty');

#
# Memory: 8 partitions of about 5 MB, scanned repeatedly in one query
#
my $fill = 'm' x 1000;
for my $p (0 .. 7)
{
	$broker->produce('big8',
		[ map { { value => qq({"id": $_, "pad": "$fill"}), partition => $p } } 1 .. 5000 ]);
}
my $total = $node->safe_psql('postgres',
	"SELECT sum(high - low) FROM kafka_fdw.watermarks('big8')");
cmp_ok($total, '>=', 8 * 4000, "big8 holds $total messages (about 40 MB)");

my ($stdin, $stdout, $stderr) = ("SELECT pg_backend_pid();\n", '', '');
my $psql = IPC::Run::start(
	[ 'psql', '-XAt', '-d', $node->connstr('postgres') ],
	'<', \$stdin, '>', \$stdout, '2>', \$stderr);

sub wait_for_output
{
	my ($pattern) = @_;
	my $deadline = time + 300;
	while ($stdout !~ $pattern && time < $deadline)
	{
		$psql->pump_nb;
		usleep(10_000);
	}
	return $stdout =~ $pattern;
}

sub vm_hwm_kb
{
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/status" or die "no /proc/$pid/status: $!";
	my ($kb) = map { /^VmHWM:\s+(\d+)/ ? $1 : () } <$fh>;
	close $fh;
	return $kb;
}

wait_for_output(qr/^\d+\n/);
my ($pid) = $stdout =~ /^(\d+)/;
# a first small scan loads librdkafka and the caches
$stdin .= "SELECT count(*) FROM ret WHERE o = $low;\n";
wait_for_output(qr/^1$/m);
my $before = vm_hwm_kb($pid);
$stdin .= "SELECT count(*), sum(id), sum(length(pad)) FROM (SELECT * FROM big8 "
  . "UNION ALL SELECT * FROM big8 UNION ALL SELECT * FROM big8) s;\n";
wait_for_output(qr/^\d+\|\d+\|\d+$/m);
my ($count, $sum, $padlen) = $stdout =~ /^(\d+)\|(\d+)\|(\d+)$/m;
is($count, 3 * $total, 'three scans of big8 return every message');
is($padlen, 3 * $total * 1000, 'and every value, parsed');
my $after = vm_hwm_kb($pid);
my $grown_mb = ($after - $before) / 1024;
note("VmHWM before $before kB, after $after kB");
cmp_ok($grown_mb, '<', 50,
	'reading 120 MB of messages raises peak memory by less than 50 MB');
$stdin .= "\\q\n";
eval { $psql->finish } or $psql->kill_kill;

$node->stop;
done_testing();
