
# Copyright (c) kafka_fdw contributors

# Change data capture writes what Debezium writes for values the WAL does
# not carry: an unchanged TOASTed column is the placeholder
# "__debezium_unavailable_value", in a plain update and in the create of an
# update that changes the primary key, never null; the columns outside the
# replica identity in the old row of a key change or a delete are null.  A
# key change is a delete and a create, naming each other's key in the
# __debezium.newkey and __debezium.oldkey headers.  With REPLICA IDENTITY
# FULL the old row has every value, and the events carry them.  Read back
# with kcat.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

# one partition each: the topic's order is the order of the changes
my $broker = KafkaTestBroker->new(
	topics => { 't.public.toast_k' => 1, 't.public.toast_f' => 1 });
my $node = kafka_fdw_node('cdctoast', cdc => 1);

# The change events of a topic (tombstones left out), in order
sub events
{
	my ($topic, $n) = @_;
	my @ev;
	poll_until(
		sub {
			@ev = map {
				{ key => cdc_key($_->{key}), value => cdc_payload($_->{payload}),
				  headers => { map { @$_ } @{ $_->{headers} // [] } } }
			} grep { defined $_->{payload} } $broker->consume($topic);
			return @ev >= $n;
		})
	  or diag "topic $topic has " . scalar(@ev) . " events, expected $n";
	return @ev;
}

create_kafka_server($node, $broker, 'k');
$node->safe_psql('postgres', q{
CREATE TABLE toast_k (id int PRIMARY KEY, big text, small text);
ALTER TABLE toast_k ALTER big SET STORAGE EXTERNAL;
CREATE TABLE toast_f (id int PRIMARY KEY, big text, small text);
ALTER TABLE toast_f ALTER big SET STORAGE EXTERNAL;
ALTER TABLE toast_f REPLICA IDENTITY FULL;
CREATE PUBLICATION p FOR TABLE toast_k, toast_f;
SELECT kafka_fdw.cdc_create('t', 'k', 'p', snapshot => false);
});
ok( $node->poll_query_until('postgres',
		"SELECT state = 'streaming' FROM kafka_fdw.cdc_status WHERE name = 't'"),
	'stream t is streaming');

my $x = 'x' x 5000;
my $unavailable = '__debezium_unavailable_value';
for my $t ('toast_k', 'toast_f')
{
	$node->safe_psql('postgres', qq{
INSERT INTO $t VALUES (1, repeat('x', 5000), 'a');
UPDATE $t SET small = 'b';
UPDATE $t SET id = 2 WHERE id = 1;
DELETE FROM $t WHERE id = 2;
});
}

# --- REPLICA IDENTITY DEFAULT ----------------------------------------------
my @k = events('t.public.toast_k', 5);
is_deeply([ map { $_->{value}{op} } @k ], [qw(c u d c d)],
	'default identity: create, update, delete + create of the new key, delete');
is($k[0]{value}{after}{big}, $x, 'the insert carries the TOASTed value');
is_deeply($k[1]{value}{after}, { id => 1, big => $unavailable, small => 'b' },
	'plain update: the unchanged TOASTed value is the placeholder in after');
is_deeply($k[2]{value}{before}, { id => 1, big => undef, small => undef },
	'key change: the delete of the old key has the key in before, null for the rest');
is($k[2]{key}, '{"id":1}', 'key change: the delete has the old key');
is($k[2]{headers}{'__debezium.newkey'}, '{"id":2}',
	'key change: the delete names the new key in __debezium.newkey');
is($k[3]{key}, '{"id":2}', 'key change: the create has the new key');
is($k[3]{headers}{'__debezium.oldkey'}, '{"id":1}',
	'key change: the create names the old key in __debezium.oldkey');
is_deeply($k[3]{value}{after}, { id => 2, big => $unavailable, small => 'b' },
	'key change: the create has every value the WAL carries, the placeholder for the TOASTed one');
is_deeply($k[4]{value}{before}, { id => 2, big => undef, small => undef },
	'delete: before has the key, null for the columns not in the WAL');
ok(!exists $k[4]{headers}{'__debezium.newkey'} && !exists $k[1]{headers}{'__debezium.oldkey'},
	'no key header on a plain delete or update');

# --- REPLICA IDENTITY FULL -------------------------------------------------
my @f = events('t.public.toast_f', 5);
is_deeply([ map { $_->{value}{op} } @f ], [qw(c u d c d)],
	'full identity: create, update, delete + create of the new key, delete');
is_deeply($f[1]{value}{before}, { id => 1, big => $x, small => 'a' },
	'full identity, update: before is the whole old row');
is_deeply($f[1]{value}{after}, { id => 1, big => $x, small => 'b' },
	'full identity, update: the unchanged TOASTed value comes from the old row');
is_deeply($f[2]{value}{before}, { id => 1, big => $x, small => 'b' },
	'full identity, key change: the delete has the whole old row');
is_deeply($f[3]{value}{after}, { id => 2, big => $x, small => 'b' },
	'full identity, key change: the create has the TOASTed value');
is_deeply($f[4]{value}{before}, { id => 2, big => $x, small => 'b' },
	'full identity, delete: before is the whole row');

is($f[2]{headers}{'__debezium.newkey'} . ' ' . $f[3]{headers}{'__debezium.oldkey'},
	'{"id":2} {"id":1}', 'full identity, key change: the key headers');

# no after image of either topic has a null (the rows have none), and under
# REPLICA IDENTITY FULL nothing is the placeholder
my $nulls = 0;
for my $e (@k, @f)
{
	my $img = $e->{value}{after} or next;
	$nulls += grep { !defined $img->{$_} } qw(id big small);
}
is($nulls, 0, 'no event sends a null for a column that is not null');
my $placeholders = grep { defined && $_ eq $unavailable }
  map { values %{ $_ // {} } } map { @{ $_->{value} }{qw(before after)} } @f;
is($placeholders, 0, 'full identity: every value is the real one, no placeholder');

$node->stop;
done_testing();
