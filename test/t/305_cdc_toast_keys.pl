
# Copyright (c) kafka_fdw contributors

# Change data capture never sends a value that the WAL does not carry as
# null: an unchanged TOASTed column of an update that changes the primary
# key, and the columns outside the replica identity in the old row of a
# key change or a delete, are left out, as for a plain update.  With
# REPLICA IDENTITY FULL the old row has every value, and the events carry
# them.  Read back with kcat.

use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $json = JSON::PP->new->utf8;

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
			@ev = map { { key => $_->{key}, value => $json->decode($_->{payload}) } }
			  grep { defined $_->{payload} } $broker->consume($topic);
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
is_deeply($k[1]{value}{after}, { id => 1, small => 'b' },
	'plain update: the unchanged TOASTed value is left out of after');
is_deeply($k[2]{value}{before}, { id => 1 },
	'key change: the delete of the old key has only the key in before, no made-up nulls');
is($k[3]{key}, '{"id":2}', 'key change: the create has the new key');
ok(!exists $k[3]{value}{after}{big},
	'key change: the unchanged TOASTed value is left out of the create, not null');
is_deeply($k[3]{value}{after}, { id => 2, small => 'b' },
	'key change: the create has every value the WAL carries');
is_deeply($k[4]{value}{before}, { id => 2 },
	'delete: before has the key only, no nulls for columns not in the WAL');

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

# no event of either topic has a null where the row had a value
my $nulls = 0;
for my $e (@k, @f)
{
	for my $img (grep { defined } @{ $e->{value} }{qw(before after)})
	{
		$nulls += grep { exists $img->{$_} && !defined $img->{$_} } qw(id big small);
	}
}
is($nulls, 0, 'no event sends a null for a column that is not null');

$node->stop;
done_testing();
