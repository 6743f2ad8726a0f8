
# Copyright (c) kafka_fdw contributors

# Change data capture: a stream's snapshot and its inserts, updates,
# deletes and tombstones arrive in Kafka in Debezium's envelope, in the
# schema/payload form of Kafka Connect's JSON converter, with Debezium's
# values, source block and headers; truncates are skipped as Debezium skips
# them; an unchanged TOASTed value is Debezium's placeholder; DDL and new
# tables followed; cdc_drop leaves no slot; cdc_create says clearly what is
# wrong, its options included.

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

# Every message of a topic, values decoded to their payload (undef for a
# tombstone), keys to their payload's text (the raw key kept in rawkey);
# both must be in the {"schema", "payload"} form
sub events
{
	my ($topic) = @_;
	my @msgs = $broker->consume($topic);
	for my $m (@msgs)
	{
		$m->{value} = cdc_payload($m->{payload});
		$m->{rawkey} = $m->{key};
		$m->{key} = cdc_key($m->{key});
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
INSERT INTO events VALUES ('three');
INSERT INTO unpublished VALUES (1);
});

my @items = wait_events('s1.public.items', 7);
is(scalar @items, 7, 'items: 3 snapshot reads, insert, update, delete, tombstone');

my %by_key;
push @{ $by_key{ $_->{key} // 'null' } }, $_ for @items;
is_deeply([ sort keys %by_key ], [ '{"id":1}', '{"id":2}', '{"id":3}', '{"id":4}' ],
	'keys are the primary key as a JSON object');
is_deeply($json->decode($items[0]{rawkey})->{schema},
	{ type => 'struct', optional => JSON::PP::false, name => 's1.public.items.Key',
	  fields => [ { type => 'int32', optional => JSON::PP::false,
			field => 'id' } ] },
	'the key\'s schema is the table\'s Key struct');

# per key, in order
is_deeply([ map { $_->{value} ? $_->{value}{op} : 'tombstone' } @{ $by_key{'{"id":1}'} } ],
	[ 'r', 'u' ], 'id 1: read then update');
is_deeply([ map { $_->{value} ? $_->{value}{op} : 'tombstone' } @{ $by_key{'{"id":2}'} } ],
	[ 'r', 'd', 'tombstone' ], 'id 2: read, delete, tombstone');
is_deeply([ map { $_->{value}{op} } @{ $by_key{'{"id":4}'} } ],
	['c'], 'id 4: create');

my ($read1) = grep { $_->{value}{op} eq 'r' } @{ $by_key{'{"id":1}'} };
# numeric without typmod: VariableScaleDecimal, 110 (0x6e) at scale 2;
# jsonb as its text; timestamptz in UTC with six digits; bytea in base64
is_deeply($read1->{value}{after},
	{ id => 1, name => 'apple', price => { scale => 2, value => 'bg==' },
	  doc => '{"c": "red"}', tags => [ 'a', 'b' ],
	  at => '2024-01-02T03:04:05.000000Z', raw => 'AP8=' },
	'snapshot row with Debezium\'s values of its types');
is($read1->{value}{before}, undef, 'snapshot read has no before');
like($read1->{value}{source}{snapshot},
	qr/^(first|first_in_data_collection|true|last_in_data_collection|last)$/,
	'snapshot read marked as snapshot');
my $envelope = $json->decode($read1->{payload})->{schema};
is($envelope->{name}, 's1.public.items.Envelope', 'value schema: the Envelope');
is_deeply([ map { $_->{field} } @{ $envelope->{fields} } ],
	[qw(before after source transaction op ts_ms ts_us ts_ns)],
	'value schema: the envelope\'s fields in Debezium\'s order');
my ($price) = grep { $_->{field} eq 'price' } @{ $envelope->{fields}[1]{fields} };
is($price->{name}, 'io.debezium.data.VariableScaleDecimal',
	'value schema: numeric without typmod is a VariableScaleDecimal');

my ($upd) = grep { $_->{value}{op} eq 'u' } @{ $by_key{'{"id":1}'} };
is($upd->{value}{after}{name}, 'green apple', 'update: after has the new value');
is($upd->{value}{before}, undef, 'update with default replica identity: no before');

my $src = $upd->{value}{source};
is($src->{connector}, 'kafka_fdw', 'source.connector');
is($src->{name}, 's1', 'source.name is the topic prefix');
is($src->{db}, 'postgres', 'source.db');
is($src->{schema}, 'public', 'source.schema');
is($src->{table}, 'items', 'source.table');
is($src->{snapshot}, 'false', 'streamed change: snapshot false');
like($src->{txId}, qr/^\d+$/, 'source.txId is a number');
like($src->{lsn}, qr/^\d+$/, 'source.lsn is a number');
like($src->{ts_ms}, qr/^\d{13}$/, 'source.ts_ms in milliseconds');
is($src->{ts_us}, $src->{ts_ms} * 1000 + $src->{ts_us} % 1000,
	'source.ts_us: the commit time in microseconds');
is($src->{ts_ns}, $src->{ts_us} * 1000, 'source.ts_ns: the same in nanoseconds');
like($src->{sequence}, qr/^\[("\d+"|null),"$src->{lsn}"\]$/,
	'source.sequence: [last commit LSN, this LSN] as a string');
ok(exists $src->{origin} && exists $src->{origin_lsn} && exists $src->{xmin},
	'source has origin, origin_lsn and xmin, as Debezium');
like($upd->{value}{ts_ms}, qr/^\d{13}$/, 'ts_ms in milliseconds');
like($upd->{value}{ts_ns}, qr/^\d{19}$/, 'ts_ns in nanoseconds');
is($upd->{value}{ts_us}, int($upd->{value}{ts_ns} / 1000), 'ts_us and ts_ns agree');
ok(exists $upd->{value}{transaction} && !defined $upd->{value}{transaction},
	'envelope has transaction, null without transaction metadata');
my %hdr = map { @$_ } @{ $upd->{headers} // [] };
is_deeply([ @hdr{qw(__debezium.context.connectorLogicalName
		__debezium.context.taskId __debezium.context.connectorName)} ],
	[ 's1', '0', 'kafka_fdw' ], 'headers: the connector context, as Debezium');
like($hdr{'__debezium.context.runId'} // '',
	qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
	'headers: a random UUID for the run');
ok(!exists $hdr{'__debezium.newkey'} && !exists $hdr{'__debezium.oldkey'},
	'headers: no key-change header on an update that keeps the key');

my ($ins) = @{ $by_key{'{"id":4}'} };
is_deeply($ins->{value}{after}{price},
	{ scale => 9, value => 'J+QbMka+ybFuOYEV' },
	'numeric exact to the last digit: the bytes of 12345678901234567890123456789, scale 9');
is($ins->{value}{after}{doc},
	$node->safe_psql('postgres', 'SELECT doc FROM items WHERE id = 4'),
	'jsonb as its text, as Debezium sends it');
is_deeply($json->decode($ins->{value}{after}{doc}),
	{ nested => { x => [ 1, 2, 3 ] }, s => 'q"uote' }, 'and that text is the document');
is_deeply($ins->{value}{after}{tags}, [ 'x', 'y z' ], 'array as JSON array');
is($ins->{value}{after}{at}, '2024-05-06T07:08:09.123456Z', 'timestamptz in UTC, ISO 8601');
is($ins->{value}{after}{raw}, 'aGVsbG8=', 'bytea in base64');

my ($del) = grep { $_->{value} && $_->{value}{op} eq 'd' } @{ $by_key{'{"id":2}'} };
is($del->{value}{after}, undef, 'delete: after is null');
is_deeply($del->{value}{before},
	{ id => 2, map { $_ => undef } qw(name price doc tags at raw) },
	'delete: before has the key, and null for the columns the WAL lacks');
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

# a table without key: null keys; the truncate skipped, as by Debezium
my @events = wait_events('s1.public.events', 4);
is_deeply([ map { [ $_->{value}{op}, $_->{value}{after}{what} ] } @events ],
	[ [ 'r', 'before the stream' ], [ 'c', 'one' ], [ 'c', 'two' ], [ 'c', 'three' ] ],
	'events: read, two creates, no truncate, the create after it');
ok(!(grep { defined $_->{rawkey} } @events), 'table without key: null keys');

# exactly one snapshot event is the first one, one the last one
my @all_reads = grep { $_->{value} && $_->{value}{op} eq 'r' } (@items, @events);
is(scalar(grep { $_->{value}{source}{snapshot} eq 'last' } @all_reads), 1,
	'one snapshot event is marked last');
is(scalar(grep { $_->{value}{source}{snapshot} eq 'first' } @all_reads), 1,
	'one snapshot event is marked first');

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
is($big[1]{value}{after}{payload}, '__debezium_unavailable_value',
	'unchanged TOASTed value: Debezium\'s placeholder in after');
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
                            options => '{"tombstones.on.delete": false}');
});
# committed right after cdc_create: never lost, even before the worker runs
$node->safe_psql('postgres',
	"INSERT INTO events2 VALUES (1, 'right after'); DELETE FROM events2 WHERE id = 1;");
my @e2 = wait_events('x2.public.events2', 2);
is_deeply([ map { $_->{value} ? $_->{value}{op} : 'tombstone' } @e2 ], [ 'c', 'd' ],
	'no snapshot: change right after cdc_create arrives; no tombstone');
is($e2[0]{value}{source}{name}, 'x2', 'source.name is the topic prefix, not the stream');
is($e2[0]{value}{source}{snapshot}, 'false', 'no snapshot: snapshot false');
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
	"\\set VERBOSITY verbose\nSELECT kafka_fdw.cdc_create('s3', 'k', 'p1', options => '{\"nope\": 1}')");
like($stderr, qr/ERROR:  22023: unknown option "nope" of cdc_create/,
	'unknown option: an ERROR, SQLSTATE 22023');
like($stderr, qr/HINT:  Valid options are: schemas\.enable, time\.precision\.mode, .*tombstones\.on\.delete, .*message\.prefix\.exclude\.list\./,
	'unknown option: the hint names the valid ones');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT kafka_fdw.cdc_create('s3', 'k', 'p1', options => '{\"tombstones\": false}')");
like($stderr, qr/unknown option "tombstones"/,
	'the old option "tombstones" is unknown: it is tombstones.on.delete now');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT kafka_fdw.cdc_create('s3', 'k', 'p1', options => '{\"time.precision.mode\": \"bogus\"}')");
like($stderr, qr/ERROR:  22023: invalid value "bogus" for option "time\.precision\.mode" of cdc_create/,
	'a bad value: an ERROR, SQLSTATE 22023');
like($stderr, qr/HINT:  Valid values are: adaptive, adaptive_time_microseconds, connect, isostring\./,
	'a bad value: the hint names the valid values');
($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT kafka_fdw.cdc_create('s3', 'k', 'p1', options => '{\"skipped.operations\": \"c,x\"}')");
like($stderr, qr/invalid value "c,x" for option "skipped\.operations"/,
	'skipped.operations: an unknown operation is refused');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM kafka_fdw.cdc_streams WHERE name = 's3'"), '0',
	'refused options leave no stream');
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
