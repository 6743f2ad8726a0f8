
# Copyright (c) kafka_fdw contributors

# kafka_fdw.debezium_decode is the inverse of kafka_fdw's CDC encoder: a
# table with every type the Debezium comparison uses (test/debezium/
# workload/schema.sql's "types", plus TOASTed text, bytea and text[]
# columns) is streamed by CDC in six configurations of Debezium's options
# (schemas on and off, each time.precision.mode, decimal.handling.mode and
# binary.handling.mode, interval.handling.mode string, hstore.handling.mode
# map, a custom placeholder): snapshot reads, inserts of edge values, an
# update leaving TOASTed values unchanged, a key change and a delete.  The
# messages are read back through a raw foreign table of each topic, each is
# decoded for a copy of the table and applied to it (c/r/u upsert keeping
# the columns the event leaves out, d delete, others skipped), and the copy
# must equal the source row by row, column by column.
#
# Where a mode loses information the comparison says so, and compares what
# the mode keeps (the README's "Decoding Debezium events" lists the same):
#   - numeric NaN under decimal.handling.mode=precise is null (Java's
#     BigDecimal has no NaN);
#   - decimal.handling.mode=double keeps a double's precision;
#   - interval.handling.mode=numeric is microseconds with a month of
#     30.4375 days: the interval comes back as days and time;
#   - time.precision.mode=connect keeps milliseconds of time and timestamp;
#   - timetz is sent in UTC: the same time, its zone +00;
#   - debezium_decode's row is jsonb: a json column comes back normalized
#     (keys sorted), and a json null as the column's null;
#   - xml is sent as its output function writes it, without an XML
#     declaration that says only version 1.0.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

# name, cdc_create options, debezium_decode options, what is lossy
my @modes = (
	{ name => 'dflt', cdc => {}, decode => {}, lossy => [qw(nan interval)] },
	{
		name => 'noschema',
		cdc => { 'schemas.enable' => 'false' },
		decode => {},
		lossy => [qw(nan interval)]
	},
	{
		name => 'connect',
		cdc => {
			'time.precision.mode' => 'connect',
			'decimal.handling.mode' => 'double',
			'binary.handling.mode' => 'base64',
			'interval.handling.mode' => 'string',
			'hstore.handling.mode' => 'map',
			'unavailable.value.placeholder' => 'custom text',
			'skipped.operations' => 'none',
			'tombstones.on.delete' => 'false',
		},
		decode => { 'unavailable.value.placeholder' => 'custom text' },
		lossy => [qw(double millis)]
	},
	{
		name => 'isostring',
		cdc => {
			'time.precision.mode' => 'isostring',
			'decimal.handling.mode' => 'string',
			'binary.handling.mode' => 'hex',
			'provide.transaction.metadata' => 'true',
		},
		decode => { 'binary.handling.mode' => 'hex' },
		lossy => [qw(interval)]
	},
	{
		name => 'adaptive_us',
		cdc => {
			'time.precision.mode' => 'adaptive_time_microseconds',
			'binary.handling.mode' => 'base64-url-safe',
		},
		decode => {},
		lossy => [qw(nan interval)]
	},
	{
		name => 'noschema2',
		cdc => {
			'schemas.enable' => 'false',
			'time.precision.mode' => 'isostring',
			'decimal.handling.mode' => 'string',
			'binary.handling.mode' => 'hex',
			'interval.handling.mode' => 'string',
			'hstore.handling.mode' => 'map',
		},
		decode => {
			'time.precision.mode' => 'isostring',
			'decimal.handling.mode' => 'string',
			'binary.handling.mode' => 'hex',
		},
		lossy => []
	},
);

my %topics = map { ("$_->{name}.public.types" => 1) } @modes;
$topics{'isostring.transaction'} = 1;
my $broker = KafkaTestBroker->new(topics => \%topics);
my $node = kafka_fdw_node('dbzdec', cdc => 1);
create_kafka_server($node, $broker, 'k');

sub json_of
{
	my ($h) = @_;
	return '{' . join(',', map { qq{"$_":"$h->{$_}"} } sort keys %$h) . '}';
}

$node->safe_psql('postgres', q{
CREATE EXTENSION hstore;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE types (
  id int PRIMARY KEY,
  i2 smallint, i4 integer, i8 bigint,
  n numeric, n52 numeric(5,2), n100 numeric(10,0), n380 numeric(38,10),
  r real, d double precision, m money,
  t text, vc varchar(20), vcn varchar, c char(5), nm name, ch "char",
  b bytea, u uuid, bo boolean,
  dt date,
  tm time, tm0 time(0), tm3 time(3), tm6 time(6), ttz timetz, ttz3 timetz(3),
  ts timestamp, ts0 timestamp(0), ts1 timestamp(1), ts3 timestamp(3),
  ts4 timestamp(4), ts6 timestamp(6),
  tstz timestamptz, tstz0 timestamptz(0), tstz3 timestamptz(3),
  tstz6 timestamptz(6),
  iv interval, iv0 interval second(0),
  j json, jb jsonb, x xml,
  ip inet, ip6 inet, cid cidr, mac macaddr, mac8 macaddr8,
  bt1 bit(1), bt8 bit(8), bt12 bit(12), vb varbit, vb5 varbit(5),
  ai int[], ai8 bigint[], at text[], an numeric[], au uuid[], adt date[],
  ats timestamptz[], ab bool[], avc varchar[],
  e mood, dom posint, hs hstore, pt point,
  rng int4range, rng8 int8range, num_r numrange, tsr tsrange,
  tstzr tstzrange, dr daterange,
  oi oid,
  big text, bigb bytea, biga text[]
);
ALTER TABLE types ALTER big SET STORAGE EXTERNAL, ALTER bigb SET STORAGE EXTERNAL,
  ALTER biga SET STORAGE EXTERNAL;

-- the snapshot's rows (schema.sql's)
INSERT INTO types (id, i2, i4, i8, n, n52, n100, n380, r, d, m, t, vc, vcn, c, nm, ch,
  b, u, bo, dt, tm, tm0, tm3, tm6, ttz, ttz3, ts, ts0, ts1, ts3, ts4, ts6,
  tstz, tstz0, tstz3, tstz6, iv, iv0, j, jb, x, ip, ip6, cid, mac, mac8,
  bt1, bt8, bt12, vb, vb5, ai, ai8, at, an, au, adt, ats, ab, avc,
  e, dom, hs, pt, rng, rng8, num_r, tsr, tstzr, dr, oi, big, bigb, biga)
VALUES (1, 1, 2, 3, 12.345, 1.5, 42, 1234567890.0123456789, 1.5, 2.25, 12.34,
  'snap', 'v', 'free', 'c', 'nm', 'q',
  '\x0102', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, '2020-02-29',
  '13:14:15.123456', '13:14:15', '13:14:15.123', '13:14:15.654321',
  '13:14:15.5+02', '01:02:03.456-05:30',
  '2020-02-29 13:14:15.123456', '2020-02-29 13:14:15', '2020-02-29 13:14:15.1',
  '2020-02-29 13:14:15.123', '2020-02-29 13:14:15.1234', '2020-02-29 13:14:15.123456',
  '2020-02-29 13:14:15.123456+01', '2020-02-29 13:14:15+01',
  '2020-02-29 13:14:15.1+01', '2020-02-29 13:14:15.000001+00',
  '1 year 2 mons 3 days 04:05:06.789', '10 seconds',
  '{"a": 1}', '{"b": [1, 2]}', '<a>x</a>',
  '192.168.1.1/24', '2001:db8::1', '10.0.0.0/8', '08:00:2b:01:02:03',
  '08:00:2b:01:02:03:04:05',
  B'1', B'10100101', B'101000001111', B'101', B'11',
  '{1,2,NULL}', '{9223372036854775807}', '{"a","b c"}', '{1.5,2}',
  '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{2020-01-01}',
  '{"2020-01-01 00:00:00+00"}', '{t,f}', '{x,y}',
  'ok', 5, 'k=>v, "x y"=>NULL', '(1.5,2)', '[1,5)', '[10,20]', '(1.5,2.5]',
  '[2020-01-01 00:00,2020-01-02 00:00)', '[2020-01-01 00:00+00,)', '[2020-01-01,2020-02-01)',
  42, repeat('x', 10000), convert_to(repeat('y', 10000), 'UTF8'),
  ARRAY[repeat('z', 10000)]);
INSERT INTO types (id, i2, n, n52, r, d, dt, ts, tstz, tm, iv, j, jb, bt8, m, t)
VALUES (2, -1, 'NaN', -1.25, 'NaN', 'Infinity', 'infinity', 'infinity',
  '-infinity', '00:00:00', '-1 mons -2 days', 'null', '[]', B'00000001',
  -0.01, E'quote " backslash \\ tab \t newline \n unicode é €');
INSERT INTO types (id, r, d, n, n52, dt, ts, tstz, n100, i8, i4, i2)
VALUES (3, '-Infinity', '-Infinity', '123456789012345678901234567890.123456789',
  'NaN', '-infinity', '-infinity', 'infinity', 9999999999,
  9223372036854775807, -2147483648, 32767);
CREATE PUBLICATION p FOR TABLE types;
});

for my $m (@modes)
{
	$node->safe_psql('postgres',
		"SELECT kafka_fdw.cdc_create('$m->{name}', 'k', 'p', options => '"
		  . json_of($m->{cdc}) . "')");
}
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = " . scalar(@modes)
		  . " FROM kafka_fdw.cdc_status WHERE state = 'streaming' AND snapshot_done"),
	'every stream has sent its snapshot');

# the changes (changes.sql's inserts of edge values, with ids)
$node->safe_psql('postgres', q{
INSERT INTO types (id, i2, n, n52, r, d, dt, ts, tstz, tm, iv, j, jb, bt8, m)
VALUES (4, -1, 'NaN', -1.25, 'NaN', 'Infinity', 'infinity', 'infinity',
  '-infinity', '00:00:00', '-1 mons -2 days', 'null', '[]', B'00000001', -0.01);
INSERT INTO types (id, r, d, n, dt, ts, tstz, n100, i8, n52)
VALUES (5, '-Infinity', '-Infinity', '123456789012345678901234567890.123456789',
  '-infinity', '-infinity', 'infinity', 9999999999, 9223372036854775807, 'NaN');
INSERT INTO types (id, dt, ts, ts0, ts3, tstz, tstz3, tm, tm3, ttz, iv, iv0, m)
VALUES (6, '1969-12-31', '1900-01-01 00:00:00.000001', '1970-01-01 00:00:00',
  '1969-12-31 23:59:59.999', '1900-01-01 00:00:00+00',
  '1969-12-31 23:59:59.999-03', '23:59:59.999999', '00:00:00.001',
  '00:00:00+14', '-178 years', '-1 second', -92233720368547758.08);
INSERT INTO types (id, t, vc, c, nm, ch, b, j, jb, x, hs, at, pt, e, dom, ai, an, rng, num_r, dt, adt)
VALUES (7, E'multi\nline \\ "q" \u263a', '', 'ab', 'streamed_name', '\001',
  '\x00ff7f80', '{"z": 1, "a": [true, null, 1.50]}',
  '{"z": 1, "a": [true, null, 1.50]}', '<?xml version="1.0"?><r a="1">t</r>',
  'a=>1, b=>2, c=>3, "d e"=>"f g", h=>NULL', '{"",NULL,"x,y"}',
  '(-0.5,1e10)', 'happy', 2147483647, '{}', '{1.10,-0,-12345.678}', 'empty', '[1.5,)',
  '0044-03-15 BC', '{1999-12-31,NULL}');
-- TOASTed values left unchanged, a key change, a delete
UPDATE types SET t = 'upd', nm = 'upd_name', hs = 'p=>q' WHERE id = 1;
UPDATE types SET id = 100 WHERE id = 2;
DELETE FROM types WHERE id = 3;
INSERT INTO types (id, t) VALUES (999, 'the end');
});

my @cols = split /\n/, $node->safe_psql('postgres',
	"SELECT attname FROM pg_attribute WHERE attrelid = 'types'::regclass AND attnum > 0 ORDER BY attnum");

# The upsert of a decoded row ev into copy c: the columns r has, the others kept
my $set = join(",\n  ",
	map { qq{"$_" = CASE WHEN ev ? '$_' THEN EXCLUDED."$_" ELSE c."$_" END} }
	grep { $_ ne 'id' && $_ ne 'hs' } @cols);

$node->safe_psql('postgres', q{
CREATE FUNCTION dbz_us(i interval) RETURNS numeric LANGUAGE sql AS $$
  SELECT ((extract(year FROM i) * 12 + extract(month FROM i)) * 30.4375
          + extract(day FROM i)) * 86400000000
         + (extract(hour FROM i) * 3600 + extract(minute FROM i) * 60
            + extract(second FROM i)) * 1000000 $$;
CREATE FUNCTION hs_of(j jsonb) RETURNS hstore LANGUAGE sql AS $$
  SELECT CASE WHEN jsonb_typeof(j) = 'object' THEN
    (SELECT hstore(array_agg(k), array_agg(v)) FROM jsonb_each_text(j) AS e(k, v)) END $$;
});

# Equality of column $c of source s and copy c, as far as the mode keeps it
sub same
{
	my ($c, $lossy) = @_;
	my %l = map { $_ => 1 } @$lossy;
	my ($s, $d) = (qq{s."$c"}, qq{c."$c"});

	if ($c eq 'pt')
	{
		($s, $d) = ("${s}::text", "${d}::text");
	}
	elsif ($c eq 'j')
	{
		# the decoded row is jsonb: a json column's text comes back as
		# jsonb writes it (keys sorted, spaces normalized), and a json
		# null is null to jsonb_populate_record
		($s, $d) = ("NULLIF(${s}::jsonb, 'null')", "${d}::jsonb");
	}
	elsif ($c eq 'x')
	{
		# as xml's output function writes it (CDC sends that text): an
		# XML declaration of version 1.0 alone is left out
		($s, $d) = ("format('%s', $s)", "format('%s', $d)");
	}
	elsif ($c =~ /^ttz/)
	{
		$s = "($s AT TIME ZONE 'UTC')";
	}
	elsif ($c =~ /^n\d*$/ && $l{nan})
	{
		$s = "NULLIF($s, 'NaN')";
	}
	elsif ($c =~ /^n\d*$/ && $l{double})
	{
		($s, $d) = ("${s}::float8", "${d}::float8");
	}
	elsif ($c eq 'an' && $l{double})
	{
		($s, $d) = ("${s}::float8[]", "${d}::float8[]");
	}
	elsif ($c eq 'm' && $l{double})
	{
		($s, $d) = ("${s}::numeric::float8", "${d}::numeric::float8");
	}
	elsif ($c =~ /^iv/ && $l{interval})
	{
		return "abs(trunc(dbz_us($s)) - dbz_us($d)) <= 1 OR ($s IS NULL AND $d IS NULL)";
	}
	elsif ($c =~ /^ts\d?$/ && $l{millis})
	{
		$s = "date_trunc('milliseconds', $s)";
	}
	elsif ($c =~ /^tm/ && $l{millis})
	{
		$s = "date_trunc('milliseconds', '2000-01-01'::timestamp + $s)::time";
	}
	return "$s IS NOT DISTINCT FROM $d";
}

for my $m (@modes)
{
	my $name = $m->{name};
	my $topic = "$name.public.types";

	$node->safe_psql('postgres', qq{
CREATE FOREIGN TABLE "m_$name" (offs bigint OPTIONS (offset 'true'),
  k text OPTIONS (key 'true'), v text) SERVER k OPTIONS (topic '$topic', format 'raw')});
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(*) > 0 FROM "m_$name" WHERE k LIKE '%"id":999\}%'}),
		"$name: the stream has sent the last change");

	my $options = json_of($m->{decode});
	my $ops = $node->safe_psql('postgres', qq{
CREATE TABLE "copy_$name" (LIKE types INCLUDING ALL);
CREATE TABLE "ops_$name" (op text);
DO \$\$
DECLARE
  msg record;
  d record;
  ev jsonb;
BEGIN
  FOR msg IN SELECT k, v FROM "m_$name" ORDER BY offs LOOP
    d := kafka_fdw.debezium_decode(msg.v, 'copy_$name', msg.k, '$options');
    INSERT INTO "ops_$name" VALUES (coalesce(d.op, 'none'));
    ev := d.row;
    IF d.op IN ('c', 'r', 'u') THEN
      INSERT INTO "copy_$name" AS c
        SELECT * FROM jsonb_populate_record(NULL::"copy_$name", ev - 'hs')
        ON CONFLICT (id) DO UPDATE SET
  $set;
      IF ev ? 'hs' THEN
        UPDATE "copy_$name" SET hs = hs_of(ev->'hs') WHERE id = (ev->>'id')::int;
      END IF;
    ELSIF d.op = 'd' THEN
      DELETE FROM "copy_$name" WHERE id = (ev->>'id')::int;
    END IF;
  END LOOP;
END
\$\$;
SELECT string_agg(op || '=' || n, ' ' ORDER BY op) FROM
  (SELECT op, count(*) AS n FROM "ops_$name" GROUP BY op) o;
});
	my $tombstones =
	  ($m->{cdc}{'tombstones.on.delete'} // 'true') eq 'false' ? '' : ' none=2';
	is($ops, "c=6 d=2$tombstones r=3 u=1",
		"$name: the events decode to their ops (tombstones to none)");

	my $cmp = join(",\n    ",
		map { "CASE WHEN NOT (" . same($_, $m->{lossy}) . ") THEN '$_' END" } @cols);
	my $diff = $node->safe_psql('postgres', qq{
SELECT string_agg(format('id %s: %s', coalesce(s.id, c.id), x.diffs), '; ' ORDER BY coalesce(s.id, c.id))
FROM types s FULL JOIN "copy_$name" c ON s.id = c.id,
  LATERAL (SELECT CASE WHEN s.id IS NULL THEN 'not in the source'
                       WHEN c.id IS NULL THEN 'not in the copy'
                       ELSE array_to_string(ARRAY[
    $cmp], ', ') END AS diffs) x
WHERE x.diffs <> ''});
	is($diff, '', "$name: the copy equals the source, row by row");

	# the TOASTed values the update left unchanged were kept, not replaced
	is( $node->safe_psql('postgres',
			qq{SELECT length(big), length(bigb), length(biga[1]), t FROM "copy_$name" WHERE id = 1}),
		'10000|10000|10000|upd',
		"$name: unchanged TOASTed text, bytea and text[] kept by the update");
}

# transaction metadata (BEGIN, END) is no row change
is( $node->safe_psql('postgres', q{
CREATE FOREIGN TABLE m_txn (k text OPTIONS (key 'true'), v text)
  SERVER k OPTIONS (topic 'isostring.transaction', format 'raw');
SELECT count(*) > 0 AND bool_and(d.op IS NULL) FROM m_txn,
  LATERAL kafka_fdw.debezium_decode(v, 'types', k) d}),
	't', 'transaction metadata events decode to no op');

done_testing();
