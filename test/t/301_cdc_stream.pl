
# Copyright (c) kafka_fdw contributors

# Change data capture: a stream's snapshot and its inserts, updates,
# deletes, tombstones and truncates arrive in Kafka in Debezium's envelope,
# with exact types, TOAST handled, DDL and new tables followed; cdc_drop
# leaves no slot; cdc_create says clearly what is wrong.

use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

my $json = JSON::PP->new->utf8->allow_bignum;

# the mock broker does not create topics: every topic a stream uses exists
my $broker = KafkaTestBroker->new(
	topics => {
		's1.public.items' => 3,
		's1.public.events' => 1,
		's1.public.big' => 1,
		's1.public.bigfull' => 1,
		's1.public.late' => 1,
		's1.public.filtered' => 1,
		'x2.public.events2' => 1,
		's5.public.mine' => 1,
		'x6.public.events2' => 1,
	});

my $node = kafka_fdw_node('cdc', cdc => 1);

# Every message of a topic, values decoded (undef for a tombstone)
sub events
{
	my ($topic) = @_;
	my @msgs = $broker->consume($topic);
	for my $m (@msgs)
	{
		$m->{value} = defined $m->{payload} ? $json->decode($m->{payload}) : undef;
		$m->{keyobj} = defined $m->{key} ? $json->decode($m->{key}) : undef;
	}
	return @msgs;
}

# Wait until a topic holds at least n messages, then return them all
sub wait_events
{
	my ($topic, $n) = @_;
	my @msgs;
	poll_until(sub { @msgs = events($topic); @msgs >= $n })
	  or diag "topic $topic has " . scalar(@msgs) . " messages, expected $n";
	return @msgs;
}

create_kafka_server($node, $broker, 'k');
$node->safe_psql('postgres', qq{
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric,
                    doc jsonb, tags text[], at timestamptz, raw bytea);
CREATE TABLE events (what text);
CREATE TABLE big (id int PRIMARY KEY, note text, payload text);
ALTER TABLE big ALTER COLUMN payload SET STORAGE EXTERNAL;
CREATE TABLE bigfull (id int PRIMARY KEY, note text, payload text);
ALTER TABLE bigfull ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE bigfull REPLICA IDENTITY FULL;
CREATE TABLE unpublished (id int);
INSERT INTO items VALUES
  (1, 'apple', 1.10, '{"c": "red"}', '{a,b}', '2024-01-02 03:04:05+00', '\\x00ff'),
  (2, 'pear', 2.20, NULL, '{}', NULL, NULL),
  (3, 'plum', 3.30, '[1, 2]', NULL, NULL, NULL);
INSERT INTO events VALUES ('before the stream');
CREATE TABLE filtered (id int PRIMARY KEY, secret text, v int);
INSERT INTO filtered VALUES (1, 'hidden', 5), (2, 'hidden', 50);
CREATE PUBLICATION p1 FOR TABLE items, events, big, bigfull,
  filtered (id, v) WHERE (v > 10);
});

# --- the stream, with its initial snapshot -------------------------------
$node->safe_psql('postgres',
	"SELECT kafka_fdw.cdc_create('s1', 'k', 'p1')");
ok( $node->poll_query_until(
		'postgres',
		"SELECT state = 'streaming' AND snapshot_done FROM kafka_fdw.cdc_status WHERE name = 's1'"
	),
	'stream s1 is streaming after its snapshot');

# changes right after the snapshot
$node->safe_psql('postgres', q{
INSERT INTO items VALUES (4, 'fig', 12345678901234567890.123456789,
  '{"nested": {"x": [1, 2, 3]}, "s": "q\"uote"}', '{x,"y z"}',
  '2024-05-06 07:08:09.123456+00', 'hello');
UPDATE items SET name = 'green apple' WHERE id = 1;
DELETE FROM items WHERE id = 2;
INSERT INTO events VALUES ('one'), ('two');
TRUNCATE events;
INSERT INTO unpublished VALUES (1);
});

my @items = wait_events('s1.public.items', 7);
is(scalar @items, 7, 'items: 3 snapshot reads, insert, update, delete, tombstone');

my %by_key;
push @{ $by_key{ $_->{key} // 'null' } }, $_ for @items;
is_deeply([ sort keys %by_key ], [ '{"id":1}', '{"id":2}', '{"id":3}', '{"id":4}' ],
	'keys are the primary key as a JSON object');

# per key, in order
is_deeply([ map { $_->{value} ? $_->{value}{op} : 'tombstone' } @{ $by_key{'{"id":1}'} } ],
	[ 'r', 'u' ], 'id 1: read then update');
is_deeply([ map { $_->{value} ? $_->{value}{op} : 'tombstone' } @{ $by_key{'{"id":2}'} } ],
	[ 'r', 'd', 'tombstone' ], 'id 2: read, delete, tombstone');
is_deeply([ map { $_->{value}{op} } @{ $by_key{'{"id":4}'} } ],
	['c'], 'id 4: create');

my ($read1) = grep { $_->{value}{op} eq 'r' } @{ $by_key{'{"id":1}'} };
my %after1 = %{ $read1->{value}{after} };
delete $after1{price};		# checked on the raw text below
is_deeply(\%after1,
	{ id => 1, name => 'apple', doc => { c => 'red' },
	  tags => [ 'a', 'b' ], at => '2024-01-02T03:04:05+00:00', raw => 'AP8=' },
	'snapshot row with its types');
is($read1->{value}{before}, undef, 'snapshot read has no before');
like($read1->{payload}, qr/"price":1\.10[,}]/, 'numeric unquoted, with its scale');
ok($read1->{value}{source}{snapshot} eq 'true' || $read1->{value}{source}{snapshot} eq 'last',
	'snapshot read marked as snapshot');

my ($upd) = grep { $_->{value}{op} eq 'u' } @{ $by_key{'{"id":1}'} };
is($upd->{value}{after}{name}, 'green apple', 'update: after has the new value');
is($upd->{value}{before}, undef, 'update with default replica identity: no before');

my $src = $upd->{value}{source};
is($src->{connector}, 'kafka_fdw', 'source.connector');
is($src->{name}, 's1', 'source.name is the stream');
is($src->{db}, 'postgres', 'source.db');
is($src->{schema}, 'public', 'source.schema');
is($src->{table}, 'items', 'source.table');
is($src->{snapshot}, 'false', 'streamed change: snapshot false');
like($src->{txId}, qr/^\d+$/, 'source.txId is a number');
like($src->{lsn}, qr/^\d+$/, 'source.lsn is a number');
like($src->{ts_ms}, qr/^\d{13}$/, 'source.ts_ms in milliseconds');
like($upd->{value}{ts_ms}, qr/^\d{13}$/, 'ts_ms in milliseconds');
ok(exists $upd->{value}{transaction}, 'envelope has transaction, as Debezium');

my ($ins) = @{ $by_key{'{"id":4}'} };
like($ins->{payload}, qr/"price":12345678901234567890\.123456789[,}]/,
	'numeric exact to the last digit');
is_deeply($ins->{value}{after}{doc}, { nested => { x => [ 1, 2, 3 ] }, s => 'q"uote' },
	'jsonb embedded as JSON');
is_deeply($ins->{value}{after}{tags}, [ 'x', 'y z' ], 'array as JSON array');
is($ins->{value}{after}{at}, '2024-05-06T07:08:09.123456+00:00', 'timestamptz in ISO 8601');
is($ins->{value}{after}{raw}, 'aGVsbG8=', 'bytea in base64');

my ($del) = grep { $_->{value} && $_->{value}{op} eq 'd' } @{ $by_key{'{"id":2}'} };
is($del->{value}{after}, undef, 'delete: after is null');
is($del->{value}{before}{id}, 2, 'delete: before has the key');
ok($del->{value}{source}{lsn} > $read1->{value}{source}{lsn},
	'changes after the snapshot have later LSNs');

# partition by key: a key's messages share a partition
my %parts;
$parts{ $_->{key} }{ $_->{partition} } = 1 for @items;
ok(!(grep { keys %{ $parts{$_} } != 1 } keys %parts), 'each key stays in one partition');

# row filter and column list, in the snapshot and in the stream
$node->safe_psql('postgres',
	"INSERT INTO filtered VALUES (3, 'hidden', 7), (4, 'hidden', 70)");
my @filtered = wait_events('s1.public.filtered', 2);
is_deeply([ map { [ $_->{value}{op}, $_->{value}{after} ] } @filtered ],
	[ [ 'r', { id => 2, v => 50 } ], [ 'c', { id => 4, v => 70 } ] ],
	'row filter and column list of the publication apply');

# a table without key: null keys; truncate gives op t
my @events = wait_events('s1.public.events', 4);
is_deeply([ map { $_->{value}{op} } @events ], [ 'r', 'c', 'c', 't' ],
	'events: read, two creates, truncate');
ok(!(grep { defined $_->{key} } @events), 'table without key: null keys');
is($events[3]{value}{source}{table}, 'events', 'truncate names its table');

# exactly one snapshot event is the last one
my @all_reads = grep { $_->{value} && $_->{value}{op} eq 'r' } (@items, @events);
is(scalar(grep { $_->{value}{source}{snapshot} eq 'last' } @all_reads), 1,
	'one snapshot event is marked last');

# --- TOAST ---------------------------------------------------------------
my $long = join('', map { chr(65 + ($_ * 7919) % 26) } 1 .. 20000);
$node->safe_psql('postgres', qq{
INSERT INTO big VALUES (1, 'n1', '$long');
INSERT INTO bigfull VALUES (1, 'n1', '$long');
UPDATE big SET note = 'n2' WHERE id = 1;
UPDATE bigfull SET note = 'n2' WHERE id = 1;
});
my @big = wait_events('s1.public.big', 2);
is(length($big[0]{value}{after}{payload}), 20000, 'TOASTed value in the insert');
is($big[1]{value}{after}{note}, 'n2', 'update of the other column');
ok(!exists $big[1]{value}{after}{payload},
	'unchanged TOASTed value left out of after');
my @bigfull = wait_events('s1.public.bigfull', 2);
is($bigfull[1]{value}{after}{payload}, $long,
	'REPLICA IDENTITY FULL: unchanged TOASTed value carried over');
is($bigfull[1]{value}{before}{note}, 'n1', 'REPLICA IDENTITY FULL: before has the old row');
is($bigfull[1]{key}, '{"id":1}', 'REPLICA IDENTITY FULL: key is the primary key');

# --- DDL, and a table added to the publication ---------------------------
$node->safe_psql('postgres', q{
ALTER TABLE items ADD COLUMN extra int;
INSERT INTO items (id, name, extra) VALUES (5, 'kiwi', 55);
ALTER TABLE items DROP COLUMN name;
INSERT INTO items (id, extra) VALUES (6, 66);
CREATE TABLE late (id int PRIMARY KEY, v text);
ALTER PUBLICATION p1 ADD TABLE late;
INSERT INTO late VALUES (1, 'picked up');
});
@items = wait_events('s1.public.items', 9);
my ($five) = grep { ($_->{key} // '') eq '{"id":5}' } @items;
is($five->{value}{after}{extra}, 55, 'added column in later events');
my ($six) = grep { ($_->{key} // '') eq '{"id":6}' } @items;
ok(!exists $six->{value}{after}{name}, 'dropped column gone from later events');
my @late = wait_events('s1.public.late', 1);
is($late[0]{value}{after}{v}, 'picked up', 'table added to the publication is streamed');

# --- a second stream: named arguments, no snapshot, no tombstones --------
$node->safe_psql('postgres', q{
CREATE TABLE events2 (id int PRIMARY KEY, v text);
INSERT INTO events2 VALUES (100, 'before');
CREATE PUBLICATION p2 FOR TABLE events2;
SELECT kafka_fdw.cdc_create(name => 's2', server => 'k', publication => 'p2',
                            topic_prefix => 'x2', snapshot => false,
                            options => '{"tombstones": false}');
});
# committed right after cdc_create: never lost, even before the worker runs
$node->safe_psql('postgres',
	"INSERT INTO events2 VALUES (1, 'right after'); DELETE FROM events2 WHERE id = 1;");
my @e2 = wait_events('x2.public.events2', 2);
is_deeply([ map { $_->{value} ? $_->{value}{op} : 'tombstone' } @e2 ], [ 'c', 'd' ],
	'no snapshot: change right after cdc_create arrives; no tombstone');
is($node->safe_psql('postgres',
	"SELECT topic_prefix, snapshot FROM kafka_fdw.cdc_status WHERE name = 's2'"),
	'x2|f', 'status shows the second stream');

# a stream restored by pg_restore (its row, naming another database's slot)
# starts with a new slot and a new snapshot
$node->safe_psql('postgres', q{
INSERT INTO kafka_fdw.cdc_streams
  (name, server, publication, slot_name, topic_prefix, snapshot, snapshot_done, owner)
VALUES ('s6', 'k', 'p2', 'kafka_fdw_1_s6', 'x6', true, true, current_user::regrole);
});
ok( $node->poll_query_until('postgres',
		"SELECT state = 'streaming' AND slot_name LIKE 'kafka_fdw_%_s6' AND slot_name <> 'kafka_fdw_1_s6' FROM kafka_fdw.cdc_status WHERE name = 's6'"),
	'restored stream runs with a slot of this database');
$node->safe_psql('postgres', "INSERT INTO events2 VALUES (6, 'after restore')");
my @e6 = wait_events('x6.public.events2', 2);
is_deeply([ map { [ $_->{value}{op}, $_->{value}{after}{id} ] } @e6 ],
	[ [ 'r', 100 ], [ 'c', 6 ] ], 'restored stream: snapshot, then changes');
$node->safe_psql('postgres', "SELECT kafka_fdw.cdc_drop('s6')");

# --- errors of cdc_create ------------------------------------------------
my ($ret, $stdout, $stderr);
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT kafka_fdw.cdc_create('s3', 'nosuch', 'p1')");
like($stderr, qr/server "nosuch" does not exist.*\n.*HINT:  Create it/, 'missing server');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT kafka_fdw.cdc_create('s3', 'k', 'nopub')");
like($stderr, qr/publication "nopub" does not exist.*\n.*HINT:/, 'missing publication');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT kafka_fdw.cdc_create('s1', 'k', 'p1')");
like($stderr, qr/stream "s1" already exists.*\n.*HINT:/, 'duplicate name');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT kafka_fdw.cdc_create('Bad-Name', 'k', 'p1')");
like($stderr, qr/invalid stream name "Bad-Name"/, 'invalid name');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT kafka_fdw.cdc_create('s3', 'k', 'p1', options => '{\"nope\": 1}')");
like($stderr, qr/unknown option "nope"/, 'unknown option');
$node->safe_psql('postgres', q{
CREATE ROLE regress_cdc_user LOGIN;
GRANT USAGE ON FOREIGN SERVER k TO regress_cdc_user;
CREATE ROLE regress_cdc_repl LOGIN REPLICATION;
GRANT USAGE ON FOREIGN SERVER k TO regress_cdc_repl;
});
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET ROLE regress_cdc_user; SELECT kafka_fdw.cdc_create('s3', 'k', 'p1')");
like($stderr, qr/permission denied to create stream "s3".*\n.*DETAIL:  Only superusers and roles with the REPLICATION attribute/,
	'role without REPLICATION');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET ROLE regress_cdc_repl; SELECT kafka_fdw.cdc_create('s3', 'k', 'p1')");
like($stderr, qr/permission denied to stream table public\.\w+/,
	'REPLICATION role that does not own the tables');
# a REPLICATION role streams the tables it owns, and drops its stream
$node->safe_psql('postgres', q{
GRANT CREATE ON DATABASE postgres TO regress_cdc_repl;
GRANT CREATE ON SCHEMA public TO regress_cdc_repl;
SET ROLE regress_cdc_repl;
CREATE TABLE mine (id int PRIMARY KEY);
CREATE PUBLICATION pmine FOR TABLE mine;
});
$node->safe_psql('postgres', q{
SET ROLE regress_cdc_repl;
SELECT kafka_fdw.cdc_create('s5', 'k', 'pmine', snapshot => false);
});
$node->safe_psql('postgres', "SET ROLE regress_cdc_repl; INSERT INTO mine VALUES (1)");
my @mine = wait_events('s5.public.mine', 1);
is($mine[0]{key}, '{"id":1}', 'a REPLICATION role streams its own tables');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET ROLE regress_cdc_user; SELECT kafka_fdw.cdc_drop('s5')");
like($stderr, qr/permission denied to drop stream "s5"/, 'others may not drop it');
$node->safe_psql('postgres', "SET ROLE regress_cdc_repl; SELECT kafka_fdw.cdc_drop('s5')");
is($node->safe_psql('postgres',
	"SELECT count(*) FROM kafka_fdw.cdc_streams WHERE name = 's5'"), '0',
	'its owner drops it');

($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT kafka_fdw.cdc_drop('nosuch')");
like($stderr, qr/stream "nosuch" does not exist/, 'drop of a missing stream');

# a rolled-back cdc_create leaves no stream and no slot
$node->safe_psql('postgres', q{
BEGIN;
SELECT kafka_fdw.cdc_create('s4', 'k', 'p2', snapshot => false);
ROLLBACK;
});
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'kafka_fdw_%_s4'"),
	'0', 'rolled-back cdc_create leaves no slot');
$node->safe_psql('postgres', q{
BEGIN;
SAVEPOINT a;
SELECT kafka_fdw.cdc_create('s4', 'k', 'p2', snapshot => false);
ROLLBACK TO SAVEPOINT a;
COMMIT;
});
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'kafka_fdw_%_s4'"),
	'0', 'cdc_create rolled back to a savepoint leaves no slot');

# --- drop ----------------------------------------------------------------
$node->safe_psql('postgres', "SELECT kafka_fdw.cdc_drop('s1')");
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'kafka_fdw_%_s1'"),
	'0', 'cdc_drop leaves no slot');
is($node->safe_psql('postgres', "SELECT name FROM kafka_fdw.cdc_status"),
	's2', 'dropped stream gone from cdc_status');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kafka_fdw cdc worker'"),
	'worker of the dropped stream stopped');

# --- without preloading, or without wal_level logical --------------------
my $plain = kafka_fdw_node('plain');
create_kafka_server($plain, $broker, 'k');
$plain->safe_psql('postgres', qq{
CREATE TABLE t (id int PRIMARY KEY);
CREATE PUBLICATION p FOR TABLE t;
});
($ret, $stdout, $stderr) = $plain->psql('postgres',
	"SELECT kafka_fdw.cdc_create('s', 'k', 'p')");
like($stderr, qr/kafka_fdw is not loaded through shared_preload_libraries.*\n.*\n.*HINT:  Add kafka_fdw to shared_preload_libraries/,
	'library not preloaded');
$plain->append_conf('postgresql.conf', "shared_preload_libraries = 'kafka_fdw'");
$plain->restart;
($ret, $stdout, $stderr) = $plain->psql('postgres',
	"SELECT kafka_fdw.cdc_create('s', 'k', 'p')");
like($stderr, qr/change data capture requires wal_level "logical".*\n.*HINT:  Set wal_level = logical/,
	'wal_level not logical');
$plain->stop;

$node->stop;
done_testing();
