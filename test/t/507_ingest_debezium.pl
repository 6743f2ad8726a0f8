
# Copyright (c) kafka_fdw contributors

# PostgreSQL -> Kafka -> PostgreSQL in SQL alone: a kafka_fdw CDC stream of
# a mixed workload (inserts, updates, a key change, deletes, an unchanged
# TOASTed value, a truncate, types of several kinds) is ingested on a
# second server by a stream in the debezium mode, from events in both
# JSON forms (schemas.enable true and false); each copy equals the source,
# row for row.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(
	topics => { 'ds.public.items' => 3, 'dn.public.items' => 3, kc => 1 });

my $src = kafka_fdw_node('src', cdc => 1);
my $dst = kafka_fdw_node('dst', cdc => 1);
create_kafka_server($src, $broker, 'k', user_mapping => 1);
create_kafka_server($dst, $broker, 'k', user_mapping => 1);

my $table = q{
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2),
                    ratio float8, at timestamptz, day date, flag boolean,
                    doc jsonb, tags text[], raw bytea, u uuid, note text,
                    n bigint DEFAULT 0)};
$src->safe_psql('postgres', $table . q{;
ALTER TABLE items ALTER COLUMN note SET STORAGE EXTERNAL;
CREATE PUBLICATION p FOR TABLE items;
INSERT INTO items
SELECT i, 'name ' || i, i * 1.25, i / 3.0, '2024-01-02 03:04:05.123456+00'::timestamptz + i * interval '1 hour',
       '2024-02-29'::date + i, i % 2 = 0, jsonb_build_object('i', i, 'tags', jsonb_build_array('x', i)),
       ARRAY['a' || i, 'b'], decode(lpad(to_hex(i), 4, '0'), 'hex'),
       md5(i::text)::uuid, repeat('toast ' || i, 2000), i
  FROM generate_series(1, 200) i;
});
# both JSON forms; truncates sent (Debezium skips them by default)
$src->safe_psql('postgres', q{
SELECT kafka_fdw.cdc_create('ds', 'k', 'p', options => '{"skipped.operations": "none"}');
SELECT kafka_fdw.cdc_create('dn', 'k', 'p', options => '{"skipped.operations": "none", "schemas.enable": false}');
});

$dst->safe_psql('postgres', $table . q{;
CREATE TABLE items2 (LIKE items INCLUDING ALL);
CREATE FOREIGN TABLE ds_items (v text) SERVER k OPTIONS (topic 'ds.public.items', format 'raw');
CREATE FOREIGN TABLE dn_items (v text) SERVER k OPTIONS (topic 'dn.public.items', format 'raw');
SELECT kafka_fdw.ingest_create('from_ds', 'ds_items', 'items', 'debezium');
SELECT kafka_fdw.ingest_create('from_dn', 'dn_items', 'items2', 'debezium');
});

# the same rows on both sides, in one text: the comparison a user makes
my $rows = q{SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\n' ORDER BY id)), '')
               FROM %s t};

sub wait_equal
{
	my ($what) = @_;
	my $want = $src->safe_psql('postgres', sprintf($rows, 'items'));
	for my $copy ('items', 'items2')
	{
		my $ok = $dst->poll_query_until('postgres',
			sprintf($rows, $copy), $want);
		ok($ok, "$what: $copy on the second server equals the source ($want)");
		next if $ok;
		diag $dst->safe_psql('postgres',
			'SELECT name, state, rows_ingested, last_error FROM kafka_fdw.ingest_status');
		# the rows that differ, on each side
		my $each = q{SELECT t::text FROM %s t ORDER BY id};
		my %s = map { $_ => 1 } split /\n/, $src->safe_psql('postgres', sprintf($each, 'items'));
		my %c = map { $_ => 1 } split /\n/, $dst->safe_psql('postgres', sprintf($each, $copy));
		diag "only in the source: " . substr($_, 0, 300) for grep { !$c{$_} } sort keys %s;
		diag "only in $copy: " . substr($_, 0, 300) for grep { !$s{$_} } sort keys %c;
	}
}

wait_equal('snapshot');

# updates (one of the TOASTed column left unchanged: the placeholder keeps
# the stored value), a key change, deletes, new rows
$src->safe_psql('postgres', q{
UPDATE items SET name = 'renamed ' || id, price = price + 1 WHERE id % 3 = 0;
UPDATE items SET note = 'short ' || id WHERE id % 7 = 0;
UPDATE items SET id = id + 1000 WHERE id = 5;
DELETE FROM items WHERE id % 10 = 1;
INSERT INTO items (id, name, price, tags) VALUES (500, 'late', NULL, '{}');
UPDATE items SET doc = NULL, raw = '\x', flag = NULL WHERE id = 500;
});
wait_equal('updates, a key change, deletes');
is($dst->safe_psql('postgres', q{SELECT name || ' ' || left(note, 8) FROM items WHERE id = 3}),
	'renamed 3 toast 3t', 'an unchanged TOASTed value kept its stored value');

is($dst->safe_psql('postgres', q{SELECT left(note, 8) FROM items WHERE id = 1005}),
	'toast 5t', 'the new key of a key change kept the unchanged TOASTed value');

# a truncate, then what follows it once it is applied (a truncate is
# ordered with the changes of its own partition only: README)
$src->safe_psql('postgres', 'TRUNCATE items');
for my $copy ('items', 'items2')
{
	ok($dst->poll_query_until('postgres', "SELECT count(*) = 0 FROM $copy"),
		"the truncate empties $copy");
}
$src->safe_psql('postgres', q{
INSERT INTO items (id, name) VALUES (1, 'after truncate'), (2, 'again');
});
wait_equal('truncate');

# key changes in both orders, from events written by hand on one
# partition: the delete of the old key first (the row moves), and the
# create of the new key first (it takes the old row's values); a header in
# Kafka Connect's simple form ("Struct{...}") is not read
my $placeholder = '__debezium_unavailable_value';
sub event
{
	my ($op, $before, $after, $header) = @_;
	my $key = defined $after ? $after->{id} : $before->{id};
	my %m = (
		key => JSON::PP->new->canonical->encode({ id => $key }),
		value => JSON::PP->new->canonical->encode(
			{ op => $op, before => $before, after => $after,
			  source => { connector => 'postgresql' }, ts_ms => 0 }),
		partition => 0);
	$m{headers} = $header if $header;
	return \%m;
}
$dst->safe_psql('postgres', q{
CREATE TABLE kc (id int PRIMARY KEY, note text, n int);
CREATE FOREIGN TABLE kc_in (v text) SERVER k OPTIONS (topic 'kc', format 'raw');
SELECT kafka_fdw.ingest_create('kc', 'kc_in', 'kc', 'debezium');
});
$broker->produce('kc', [
	event('c', undef, { id => 5, note => 'five', n => 1 }),
	event('c', undef, { id => 6, note => 'six', n => 1 }),
	event('c', undef, { id => 7, note => 'seven', n => 1 }),
	event('d', { id => 5 }, undef, { '__debezium.newkey' => '{"id":1005}' }),
	event('c', undef, { id => 1005, note => $placeholder, n => 2 },
		{ '__debezium.oldkey' => '{"id":5}' }),
	event('c', undef, { id => 1006, note => $placeholder, n => 2 },
		{ '__debezium.oldkey' => '{"id":6}' }),
	event('d', { id => 6 }, undef, { '__debezium.newkey' => '{"id":1006}' }),
	event('c', undef, { id => 1007, note => $placeholder, n => 2 },
		{ '__debezium.oldkey' => 'Struct{id=7}' }),
	event('d', { id => 7 }, undef, { '__debezium.newkey' => 'Struct{id=1007}' }),
]);
ok( $dst->poll_query_until('postgres',
		q{SELECT string_agg(id || ':' || coalesce(note, 'null') || ':' || n, ' ' ORDER BY id) FROM kc},
		'1005:five:2 1006:six:2 1007:null:2'),
	'key changes in both orders keep the values the create lacks')
  or diag $dst->safe_psql('postgres', 'SELECT * FROM kc ORDER BY id'),
  $dst->safe_psql('postgres', 'SELECT name, state, last_error FROM kafka_fdw.ingest_status');

$broker->stop;
done_testing();
