
# Copyright (c) kafka_fdw contributors

# Ingest streams in upsert mode: a topic with keys becomes a table.
# - one-column primary key, the source's key column named otherwise: the
#   row is the value's; updates of a key keep its last value; a tombstone
#   (null value, produced by an independent client) deletes the row, its
#   key read as a JSON object ({"id": 7}) or as the key's text ("7"); a key
#   updated several times, deleted and inserted again within one batch;
#   the table equals "last value per key, minus the keys whose last message
#   is a tombstone", computed from the topic as an independent client reads
#   it, both for the messages waiting when the stream starts and for those
#   that come while it runs;
# - replay: a second stream from earliest into an empty table gives the
#   same table (a compacted topic read again);
# - a composite primary key, the message key a JSON object (tombstones with
#   the fields in another order);
# - a source whose key column has the primary key's name.

use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { u1 => 3, u2 => 2, u3 => 1 });
my $node = kafka_fdw_node('ingups', cdc => 1);
create_kafka_server($node, $broker, 'k', user_mapping => 1);

sub q1 { return $node->safe_psql('postgres', $_[0]); }

q1(q{
CREATE FOREIGN TABLE su (k text OPTIONS (key 'true'), id int, v text)
  SERVER k OPTIONS (topic 'u1');
CREATE TABLE tu (id int PRIMARY KEY, v text);
CREATE TABLE tu2 (LIKE tu INCLUDING ALL);

CREATE FOREIGN TABLE sc (k jsonb OPTIONS (key 'true'), region text, id int, v text)
  SERVER k OPTIONS (topic 'u2');
CREATE TABLE tc (region text, id int, v text, PRIMARY KEY (region, id));

CREATE FOREIGN TABLE sm (id text OPTIONS (key 'true'), v text)
  SERVER k OPTIONS (topic 'u3');
CREATE TABLE tm (id text PRIMARY KEY, v text);
});

# "last value per key, minus tombstoned keys" from TOPIC as kcat reads it:
# KEYOF maps a message to its primary key's text (as the table dump shows
# it), VALOF a value to the dump of its row
sub expected
{
	my ($topic, $keyof, $valof) = @_;
	my (%last, %part_of);
	for my $m ($broker->consume($topic))
	{
		my $k = $keyof->($m);
		die "key $k in partitions $part_of{$k} and $m->{partition}"
		  if defined $part_of{$k} && $part_of{$k} != $m->{partition};
		$part_of{$k} = $m->{partition};
		$last{$k} = defined $m->{payload} ? $valof->($m->{payload}) : undef;
	}
	return join("\n", map { $last{$_} } sort grep { defined $last{$_} } keys %last);
}

# wait until stream NAME has read all of its topic's COUNT messages (the
# offsets are contiguous: no transactions), then for lag 0
sub caught_up
{
	my ($name, $count) = @_;
	return ingest2_wait($node,
		"SELECT coalesce(sum(next_offset), 0) = $count FROM kafka_fdw.ingest_offsets WHERE name = '$name'")
	  && ingest2_wait($node, "SELECT lag = 0 FROM kafka_fdw.ingest_status WHERE name = '$name'", 30);
}

# --- one-column key ----------------------------------------------------
my $seq = 0;
srand(505);
sub round_u1
{
	my ($n) = @_;
	my @m;
	# key 1: updated 5 times, deleted, inserted again, all in one batch
	push @m, map { +{ key => '1', partition => 1, value => qq({"id":1,"v":"one-$_"}) } } 1 .. 5;
	push @m, { key => '{"id":1}', partition => 1, value => undef };
	push @m, { key => '1', partition => 1, value => qq({"id":1,"v":"one-again-) . ++$seq . '"}' };
	for (1 .. $n)
	{
		my $id = 2 + int(rand(40));
		my $r = rand();
		my $key = $r < 0.07 ? qq({"id":$id}) : "$id";
		push @m, { key => $key, partition => $id % 3,
			value => $r < 0.15 ? undef : qq({"id":$id,"v":"v) . ++$seq . '"}' };
	}
	return \@m;
}
my $keyof_u1 = sub {
	my $k = $_[0]{key};
	return sprintf('%05d', $k =~ /^\{/ ? decode_json($k)->{id} : $k);
};
my $valof_u1 = sub { my $v = decode_json($_[0]); return "$v->{id}|$v->{v}"; };
sub dump_u1 { return q1("SELECT string_agg(id || '|' || v, E'\\n' ORDER BY id) FROM $_[0]"); }

$broker->produce('u1', round_u1(400));
q1(q{SELECT kafka_fdw.ingest_create('u1', 'su', 'tu', 'upsert')});
my $want = expected('u1', $keyof_u1, $valof_u1);
ok(caught_up('u1', 407), 'the stream reads the backlog');
is(dump_u1('tu'), $want,
	'backlog: last value per key, minus tombstoned keys');
like(dump_u1('tu'), qr/^1\|one-again-\d+$/m,
	'a key updated, deleted and inserted again in one batch keeps its last value');
is(ingest2_status($node, 'u1')->{state}, 'running', 'the stream runs');

$broker->produce('u1', round_u1(400));
# a tombstone for a key that never had a row, and one for a key that has
$broker->produce('u1', [ { key => '999', partition => 0, value => undef } ]);
$want = expected('u1', $keyof_u1, $valof_u1);
my $nkeys = () = $want =~ /^/mg;
ok(caught_up('u1', 815), 'the stream follows the topic');
is(dump_u1('tu'), $want, 'live: last value per key, minus tombstoned keys');
diag("u1: $nkeys keys left of 41, from " . scalar(() = $broker->consume('u1')) . " messages");
ok($nkeys > 5 && $nkeys < 41, 'some keys were deleted, some not');
is(ingest2_status($node, 'u1')->{last_error}, undef, 'no error');

# --- replay from earliest into an empty table --------------------------
q1(q{SELECT kafka_fdw.ingest_create('u1b', 'su', 'tu2', 'upsert', '{"start": "earliest"}')});
ok(caught_up('u1b', 815), 'the replay stream catches up');
is(dump_u1('tu2'), $want, 'the replay gives the same table');

# --- composite key, the message key a JSON object ----------------------
my @u2;
for my $i (1 .. 300)
{
	my $region = (qw(eu us ap))[ $i % 3 ];
	my $id = $i % 11;
	my $part = $id % 2;
	if ($i % 7 == 0)
	{
		# the key's fields in another order
		push @u2, { key => qq({"id":$id,"region":"$region"}), partition => $part, value => undef };
	}
	else
	{
		push @u2, { key => qq({"region":"$region","id":$id}), partition => $part,
			value => qq({"region":"$region","id":$id,"v":"c$i"}) };
	}
}
$broker->produce('u2', \@u2);
q1(q{SELECT kafka_fdw.ingest_create('u2', 'sc', 'tc', 'upsert', '{"batch.rows": 50}')});
my $want_c = expected('u2',
	sub { my $k = decode_json($_[0]{key}); sprintf('%s|%05d', $k->{region}, $k->{id}) },
	sub { my $v = decode_json($_[0]); "$v->{region}|$v->{id}|$v->{v}" });
ok(caught_up('u2', 300), 'the composite-key stream catches up');
is(q1("SELECT string_agg(region || '|' || id || '|' || v, E'\\n' ORDER BY region, id) FROM tc"),
	$want_c, 'composite key: last value per key, minus tombstoned keys');
ok(q1("SELECT count(*) FROM tc") < 33, 'some of the 33 keys were deleted');

# --- the source's key column has the primary key's name ----------------
my @u3;
for my $i (1 .. 60)
{
	my $id = 'user-' . ($i % 6);
	push @u3, { key => $id, value => $i % 5 == 0 ? undef : qq({"v":"m$i"}) };
}
$broker->produce('u3', \@u3);
q1(q{SELECT kafka_fdw.ingest_create('u3', 'sm', 'tm', 'upsert')});
my $want_m = expected('u3', sub { $_[0]{key} },
	sub { decode_json($_[0])->{v} });
ok(caught_up('u3', 60), 'the key-column stream catches up');
my %last;
for my $m (@u3) { $last{ $m->{key} } = defined $m->{value} ? $m->{key} . '|' . decode_json($m->{value})->{v} : undef; }
is(q1("SELECT string_agg(id || '|' || v, E'\\n' ORDER BY id) FROM tm"),
	join("\n", map { $last{$_} } sort grep { defined $last{$_} } keys %last),
	'key column named as the primary key: rows keyed by the message key, tombstones delete');
is(scalar(() = $want_m =~ /^/mg), scalar(grep { defined $last{$_} } keys %last),
	'(the independent read of the topic agrees)');

for my $s (qw(u1 u1b u2 u3))
{
	is(ingest2_status($node, $s)->{last_error}, undef, "stream $s: no error");
}
q1("SELECT kafka_fdw.ingest_drop(name) FROM kafka_fdw.ingest_streams");
done_testing();
