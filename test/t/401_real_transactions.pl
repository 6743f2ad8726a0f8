# Copyright (c) kafka_fdw contributors

# Transactional INSERT on a real Kafka cluster, as independent clients see
# it (kcat and python3-confluent-kafka, read_committed and
# read_uncommitted) and as a kafka_fdw scan sees it:
# - a rolled-back transaction that streamed its messages into Kafka
#   (transaction_hold_bytes '0') was really written and then aborted:
#   read_uncommitted consumers see it, read_committed ones and scans do not;
# - a committed transaction is visible to all of them, exactly;
# - the backend's transactional id is the one the README documents, and a
#   producer of another client that takes it over (init_transactions)
#   fences the backend: its next transactional INSERT or COMMIT fails with
#   an ERROR, and nothing of that transaction becomes visible.
#
# The embedded broker cannot answer this (it shows aborted transactions to
# read_committed consumers), so the test needs real Kafka.

use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'needs real Kafka (KFDW_TEST_KAFKA=real)'
  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { txn => 3 });
my $bootstrap = $broker->bootstrap;

my $node = kafka_fdw_node('real_txn');
# streams every message into the open Kafka transaction at once
create_kafka_server(
	$node, $broker, 'ktx',
	options => { transactional => 'true', transaction_hold_bytes => '0' },
	user_mapping => 1);
# holds messages until COMMIT (the default)
create_kafka_server($node, $broker, 'kheld',
	options => { transactional => 'true' }, user_mapping => 1);
create_kafka_server($node, $broker, 'kscan', user_mapping => 1);
$node->safe_psql(
	'postgres', q{
CREATE FOREIGN TABLE txn_out (k text OPTIONS (key 'true'), id int, tag text)
  SERVER ktx OPTIONS (topic 'txn');
CREATE FOREIGN TABLE txn_held (k text OPTIONS (key 'true'), id int, tag text)
  SERVER kheld OPTIONS (topic 'txn');
CREATE FOREIGN TABLE txn_in (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), k text OPTIONS (key 'true'), id int, tag text)
  SERVER kscan OPTIONS (topic 'txn');
});

# Every message of the topic read by python3-confluent-kafka with the given
# isolation level, as { partition, offset, key, payload }.
my $consume_script = <<'PY';
import json, sys, time
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING, KafkaError
bootstrap, topic, isolation = sys.argv[1:4]
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'kfdw-test-py',
              'enable.auto.commit': False, 'enable.partition.eof': True,
              'isolation.level': isolation})
parts = sorted(c.list_topics(topic, timeout=30).topics[topic].partitions)
c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
left = set(parts)
deadline = time.monotonic() + 60
while left and time.monotonic() < deadline:
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        if m.error().code() == KafkaError._PARTITION_EOF:
            left.discard(m.partition())
            continue
        sys.exit(str(m.error()))
    print(json.dumps({'partition': m.partition(), 'offset': m.offset(),
                      'key': None if m.key() is None else m.key().decode(),
                      'payload': None if m.value() is None else m.value().decode()}))
c.close()
if left:
    sys.exit('no end of partitions %s within 60 s' % sorted(left))
PY

sub py_consume
{
	my ($isolation) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ '/usr/bin/python3', '-c', $consume_script, $bootstrap, 'txn', $isolation ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(90))
	  or die "python consumer failed: $err";
	return map { JSON::PP->new->utf8->decode($_) } grep { /^\{/ } split /\n/, $out;
}

# Take over a transactional id with an independent producer: init_transactions
# bumps the id's epoch (fencing every older producer of it and aborting its
# open transaction), then one message tagged $tag is committed.
my $fence_script = <<'PY';
import json, sys
from confluent_kafka import Producer
bootstrap, txnid, tag = sys.argv[1:4]
p = Producer({'bootstrap.servers': bootstrap, 'transactional.id': txnid})
p.init_transactions(60)
p.begin_transaction()
p.produce('txn', key=b'fencer', value=json.dumps({'id': 0, 'tag': tag}).encode(), partition=0)
p.commit_transaction(60)
print('fenced')
PY

sub fence
{
	my ($txnid, $tag) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ '/usr/bin/python3', '-c', $fence_script, $bootstrap, $txnid, $tag ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(120))
	  or die "fencing producer failed: $err";
	return $out eq "fenced\n";
}

# The messages of one tag a client sees, as "key|id" sorted by id
sub tagged
{
	my ($tag, @msgs) = @_;
	my @rows;
	for my $m (@msgs)
	{
		next unless defined $m->{payload};
		my $v = eval { JSON::PP->new->utf8->decode($m->{payload}) } or next;
		next unless ($v->{tag} // '') eq $tag;
		push @rows, [ $v->{id}, ($m->{key} // '') . "|$v->{id}" ];
	}
	return join(',', map { $_->[1] } sort { $a->[0] <=> $b->[0] } @rows);
}

sub kcat_tagged
{
	my ($tag, $isolation) = @_;
	return tagged($tag, $broker->consume('txn', isolation => $isolation));
}

sub py_tagged
{
	my ($tag, $isolation) = @_;
	return tagged($tag, py_consume($isolation));
}

sub scan_tagged
{
	my ($tag) = @_;
	return join(',',
		split /\n/,
		$node->safe_psql('postgres',
			"SELECT coalesce(k, '') || '|' || id FROM txn_in WHERE tag = '$tag' ORDER BY id"));
}

# The error of a fenced backend: an ERROR (required), with the SQLSTATE
# kafka_fdw gives fencing (40001, see kfdw_errcode) and a message or detail
# that says why (librdkafka's "fenced" or the broker's "old epoch").
# librdkafka purges the queued messages of a fenced producer: the error
# gives the producer's fatal error, not the purge.

sub check_fenced
{
	my ($err, $what) = @_;
	note "fenced backend's error: $err";
	like($err, qr/^(psql:\S+ )?ERROR:  /m, "$what: ERROR");
	like($err, qr/ERROR:  40001: /, "$what: SQLSTATE 40001 (serialization_failure)");
	like($err, qr/fenced|old epoch/i, "$what: the error says the producer was fenced");
}

# "key|id" for ids from..to with keys prefix||id
sub expect_rows
{
	my ($prefix, $from, $to) = @_;
	return join(',', map { "$prefix$_|$_" } $from .. $to);
}

my $s1 = $node->background_psql('postgres', on_error_stop => 0);
$s1->query_safe('\set VERBOSITY verbose');

# --- a rolled-back transaction: written, then aborted -------------------
$s1->query_safe('BEGIN');
$s1->query_safe(
	"INSERT INTO txn_out SELECT 'r' || i, i, 'rolled back' FROM generate_series(1, 30) i");
is(kcat_tagged('rolled back', 'read_uncommitted'), expect_rows('r', 1, 30),
	'streamed messages of the open transaction are in Kafka (kcat, read_uncommitted)');
is(kcat_tagged('rolled back', 'read_committed'), '',
	'but not visible to read_committed while the transaction is open');
is(scan_tagged('rolled back'), '', 'nor to a scan');
$s1->query_safe('ROLLBACK');
is(kcat_tagged('rolled back', 'read_uncommitted'), expect_rows('r', 1, 30),
	'after ROLLBACK the aborted messages are still there for read_uncommitted (kcat)');
is(py_tagged('rolled back', 'read_uncommitted'), expect_rows('r', 1, 30),
	'and for read_uncommitted (python)');
is(kcat_tagged('rolled back', 'read_committed'), '',
	'a read_committed consumer does not see them (kcat)');
is(py_tagged('rolled back', 'read_committed'), '',
	'a read_committed consumer does not see them (python)');
is(scan_tagged('rolled back'), '', 'a kafka_fdw scan does not see them');

# --- a committed transaction: visible to every reader, exactly ----------
$s1->query_safe('BEGIN');
$s1->query_safe(
	"INSERT INTO txn_out SELECT 'c' || i, i, 'committed' FROM generate_series(1, 40) i");
$s1->query_safe(
	"INSERT INTO txn_out SELECT 'c' || i, i, 'committed' FROM generate_series(41, 50) i");
$s1->query_safe('COMMIT');
is(kcat_tagged('committed', 'read_committed'), expect_rows('c', 1, 50),
	'the committed transaction is visible to read_committed (kcat)');
is(py_tagged('committed', 'read_committed'), expect_rows('c', 1, 50),
	'the committed transaction is visible to read_committed (python)');
is(scan_tagged('committed'), expect_rows('c', 1, 50),
	'and to a kafka_fdw scan, keys and values');

# the scan returns exactly what read_committed clients read, offsets too
my @rc = sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} }
  $broker->consume('txn', isolation => 'read_committed');
is(scalar @rc, 50, 'read_committed: 50 messages in all');
my $scan_all = $node->safe_psql('postgres',
	q{SELECT p || '|' || o || '|' || k || '|' || id || '|' || tag FROM txn_in ORDER BY p, o});
is($scan_all,
	join("\n", map {
			my $v = JSON::PP->new->utf8->decode($_->{payload});
			"$_->{partition}|$_->{offset}|$_->{key}|$v->{id}|$v->{tag}"
		  } @rc),
	'the scan returns the partitions, offsets, keys and values kcat reads');
is($node->safe_psql('postgres', 'SELECT count(*) FROM txn_in'), '50',
	'count(*) over the topic: only the committed messages');
# aborted messages and transaction markers take offsets: a LIMIT must still
# return as many rows as asked while there are
my %per_part;
$per_part{ $_->{partition} }++ for @rc;
my ($big) = sort { $per_part{$b} <=> $per_part{$a} } keys %per_part;
my $n = $per_part{$big};
is($node->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT o FROM txn_in WHERE p = $big LIMIT $n) s"),
	$n, "LIMIT $n on partition $big (with an aborted transaction) returns $n rows");

# --- the backend's transactional id -------------------------------------
# kafka_fdw-<system id>-<pid>-<backend start, epoch seconds>-<server>-<user>
my $txnid_sql = q{
SELECT format('kafka_fdw-%s-%s-%s-%s-%s',
  (SELECT system_identifier FROM pg_control_system()),
  pg_backend_pid(),
  (SELECT floor(extract(epoch FROM backend_start))::bigint
     FROM pg_stat_activity WHERE pid = pg_backend_pid()),
  (SELECT oid FROM pg_foreign_server WHERE srvname = '%s'),
  (SELECT oid FROM pg_roles WHERE rolname = current_user))};
(my $txnid_ktx_sql = $txnid_sql) =~ s/'%s'\)/'ktx')/;
(my $txnid_held_sql = $txnid_sql) =~ s/'%s'\)/'kheld')/;
my $txnid = $s1->query_safe($txnid_ktx_sql);
like($txnid, qr/^kafka_fdw-\d+-\d+-\d+-\d+-\d+$/, "transactional id $txnid");
my ($list) = $broker->kafka_sh('tool', 'org.apache.kafka.tools.TransactionsCommand',
	'--bootstrap-server', $bootstrap, 'list');
like($list, qr/^\Q$txnid\E\s/m,
	'the cluster knows the transactional id computed from SQL');

# --- fenced between transactions ----------------------------------------
ok(fence($txnid, 'fencer one'), 'another producer takes over the transactional id');
$s1->query_safe('BEGIN');
$s1->query(
	"INSERT INTO txn_out SELECT 'f' || i, i, 'after fence' FROM generate_series(1, 5) i");
my $ins_err = $s1->{stderr};
$s1->{stderr} = '';
$s1->query('COMMIT');
my $commit_err = $s1->{stderr};
$s1->{stderr} = '';
check_fenced($ins_err ne '' ? $ins_err : $commit_err,
	'fenced between transactions, next INSERT or COMMIT');
is(kcat_tagged('after fence', 'read_committed'), '',
	'nothing of the fenced transaction is visible to read_committed (kcat)');
is(py_tagged('after fence', 'read_committed'), '',
	'nothing of the fenced transaction is visible to read_committed (python)');
is(scan_tagged('after fence'), '', 'nor to a scan');
is(kcat_tagged('fencer one', 'read_committed'), 'fencer|0',
	"the fencing producer's own transaction committed");

# --- fenced while a transaction is open ---------------------------------
# the session goes on: its next transaction uses a new producer
$s1->query_safe('BEGIN');
$s1->query_safe(
	"INSERT INTO txn_out SELECT 'o' || i, i, 'open when fenced' FROM generate_series(1, 10) i");
is(kcat_tagged('open when fenced', 'read_uncommitted'), expect_rows('o', 1, 10),
	'the open transaction streamed its messages');
$txnid = $s1->query_safe($txnid_ktx_sql);
ok(fence($txnid, 'fencer two'), 'another producer takes over the id while it is open');
$s1->query(
	"INSERT INTO txn_out SELECT 'o' || i, i, 'open when fenced' FROM generate_series(11, 15) i");
$ins_err = $s1->{stderr};
$s1->{stderr} = '';
$s1->query('COMMIT');
$commit_err = $s1->{stderr};
$s1->{stderr} = '';
check_fenced($ins_err ne '' ? $ins_err : $commit_err,
	'fenced in an open transaction, next INSERT or COMMIT');
is(kcat_tagged('open when fenced', 'read_committed'), '',
	'nothing of that transaction is visible to read_committed (kcat)');
is(py_tagged('open when fenced', 'read_committed'), '',
	'nothing of that transaction is visible to read_committed (python)');
is(scan_tagged('open when fenced'), '', 'nor to a scan');
like(kcat_tagged('open when fenced', 'read_uncommitted'), qr/^\Q${\ expect_rows('o', 1, 10)}\E/,
	'its streamed messages were written and aborted by the cluster');

# --- fenced with held messages: COMMIT fails ----------------------------
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO txn_held VALUES ('h1', 1, 'held warm-up')");
$s1->query_safe('COMMIT');
is(kcat_tagged('held warm-up', 'read_committed'), 'h1|1',
	'the holding server committed once');
my $txnid_held = $s1->query_safe($txnid_held_sql);
isnt($txnid_held, $txnid, 'each server has its own transactional id');
ok(fence($txnid_held, 'fencer three'), 'another producer takes over its id');
$s1->query_safe('BEGIN');
$s1->query_safe(
	"INSERT INTO txn_held SELECT 'h' || i, i, 'held and fenced' FROM generate_series(1, 5) i");
$s1->query('COMMIT');
my $err3 = $s1->{stderr};
$s1->{stderr} = '';
check_fenced($err3, 'fenced with held messages, COMMIT');
is(kcat_tagged('held and fenced', 'read_uncommitted'), '',
	'nothing of it reached Kafka, even read_uncommitted');
is(scan_tagged('held and fenced'), '', 'nor a scan');

# --- afterwards the session publishes again -----------------------------
$s1->query_safe('BEGIN');
$s1->query_safe("INSERT INTO txn_out VALUES ('a1', 1, 'after fencing')");
$s1->query_safe("INSERT INTO txn_held VALUES ('a2', 2, 'after fencing')");
$s1->query_safe('COMMIT');
is(kcat_tagged('after fencing', 'read_committed'), 'a1|1,a2|2',
	'a later transaction of the same session commits through both servers');
is(scan_tagged('after fencing'), 'a1|1,a2|2', 'and a scan sees it');

$s1->quit;
$node->stop;
$broker->stop;
done_testing();
