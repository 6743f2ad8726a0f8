
# Copyright (c) kafka_fdw contributors

# What INSERT publishes reads back as written, whatever the session's
# DateStyle, IntervalStyle and extra_float_digits: the json and csv values
# are written as pg_dump writes them (ISO dates, postgres intervals, floats
# with every digit).  A default session reads back exactly the inserted
# values through the same tables, and kcat sees the bytes that a default
# session's to_json() and COPY ... (FORMAT csv) give.  CSV values with the
# delimiter, quotes, escapes, line ends, the null string and empty strings
# are quoted and escaped as COPY does.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(
	topics => {
		enc_json => 1, enc_csv => 1,
		enc_q1 => 1, enc_q2 => 1, enc_q3 => 1, enc_q4 => 1
	});

my $node = kafka_fdw_node('insert_encoding');
create_kafka_server($node, $broker, 'k', user_mapping => 1);

# the values, in a local table; every type whose text depends on a setting
my $cols = 'd, ts, tstz, iv, iv2, f4, f8, n, ad, c, r';
$node->safe_psql(
	'postgres', q{
CREATE TYPE comp AS (d date, iv interval, f float8, ts timestamp);
CREATE TABLE src (id int, d date, ts timestamp, tstz timestamptz,
  iv interval, iv2 interval, f4 real, f8 double precision, n numeric,
  ad date[], c comp, r daterange);
INSERT INTO src VALUES
  (1, '2017-01-31', '2017-01-31 13:14:15.123456', '2017-01-31 13:14:15.5+02',
   '1 year 2 mons 3 days 04:05:06.789', '-1 days +02:00:00',
   1.2345678, 1.2345678901234567, 12345.678900,
   '{2017-01-31,2018-12-01,NULL}',
   ROW('2017-01-31', '2 days 03:04:05', 0.1, '1999-12-31 23:59:59.999999'),
   '[2017-01-01,2017-02-01)'),
  (2, '1999-12-31', 'infinity', '-infinity',
   '-3 mons -00:00:01.5', '0', 'NaN', -1.5e-300, 'NaN', '{}',
   ROW(NULL, '-1 year', 'Infinity', NULL), 'empty');
CREATE FOREIGN TABLE enc_json (id int, d date, ts timestamp, tstz timestamptz,
  iv interval, iv2 interval, f4 real, f8 double precision, n numeric,
  ad date[], c comp, r daterange)
  SERVER k OPTIONS (topic 'enc_json', format 'json');
CREATE FOREIGN TABLE enc_csv (id int, d date, ts timestamp, tstz timestamptz,
  iv interval, iv2 interval, f4 real, f8 double precision, n numeric,
  ad date[], c comp, r daterange)
  SERVER k OPTIONS (topic 'enc_csv', format 'csv');
});

# the settings under which rows are inserted; ids 10, 20, ... for each
my @settings = (
	"SET datestyle = 'German'",
	"SET datestyle = 'SQL, DMY'",
	"SET datestyle = 'Postgres, MDY'",
	"SET intervalstyle = 'sql_standard'",
	"SET intervalstyle = 'iso_8601'",
	"SET extra_float_digits = -15",
	"SET datestyle = 'German'; SET intervalstyle = 'iso_8601'; SET extra_float_digits = -15",
);
my $n = 0;
foreach my $set (@settings)
{
	$n += 10;
	foreach my $t ('enc_json', 'enc_csv')
	{
		# a batch (INSERT ... SELECT), and a row at a time (RETURNING)
		my ($ret, $out, $err) = $node->psql('postgres',
			"$set; INSERT INTO $t SELECT id + $n, $cols FROM src;\n"
			. "INSERT INTO $t SELECT id + $n + 5, $cols FROM src RETURNING id;");
		is($ret, 0, "$t: INSERT under $set") or diag($err);
	}
}

# read back through the tables, in a default session
my $expected = join("\n",
	map { $node->safe_psql('postgres',
		"SELECT id + $_, $cols FROM src ORDER BY id") } map { ($_, $_ + 5) }
	  map { $_ * 10 } 1 .. scalar(@settings));
foreach my $t ('enc_json', 'enc_csv')
{
	my ($ret, $out, $err) =
	  $node->psql('postgres', "SELECT id, $cols FROM $t ORDER BY id");
	is($err, '', "$t: a default session reads every message");
	is($out, $expected, "$t: a default session reads back every value as inserted");
}

# the bytes, as an independent client reads them: what a default session's
# to_json() and COPY (FORMAT csv) write
my %want_json;
my %want_csv;
foreach my $row (split /\n/,
	$node->safe_psql('postgres', "SELECT id, to_json(s) FROM src s ORDER BY id"))
{
	my ($id, $j) = split /\|/, $row, 2;
	$j =~ s/^\{"id":\d+,//;
	$want_json{$id} = $j;
}
foreach my $row (split /\n/,
	$node->safe_psql('postgres',
		"COPY (SELECT id, $cols FROM src ORDER BY id) TO STDOUT (FORMAT csv)"))
{
	my ($id, $rest) = split /,/, $row, 2;
	$want_csv{$id} = $rest;
}

my @json_msgs = $broker->consume('enc_json');
my @csv_msgs = $broker->consume('enc_csv');
is(scalar @json_msgs, 4 * @settings, 'kcat reads every json message');
is(scalar @csv_msgs, 4 * @settings, 'kcat reads every csv message');
my ($json_ok, $csv_ok) = (0, 0);
foreach my $m (@json_msgs)
{
	my ($id, $rest) = $m->{payload} =~ /^\{"id":(\d+),(.*)$/s;
	my $src = $id % 10 > 5 ? $id % 10 - 5 : $id % 10;
	$json_ok++
	  if is($rest, $want_json{$src}, "json message $m->{offset} as to_json() writes it");
}
foreach my $m (@csv_msgs)
{
	my ($id, $rest) = split /,/, $m->{payload}, 2;
	my $src = $id % 10 > 5 ? $id % 10 - 5 : $id % 10;
	$csv_ok++
	  if is($rest, $want_csv{$src}, "csv message $m->{offset} as COPY writes it");
}
is($json_ok, 4 * @settings, 'every json message as to_json() writes it');
is($csv_ok, 4 * @settings, 'every csv message as COPY writes it');
unlike(join("\n", map { $_->{payload} } @json_msgs, @csv_msgs),
	qr/31\.01\.2017|31\/01\/2017|Jan 31|P1Y2M|\+1-2/,
	'no message has a date or interval in the session style');

# CSV quoting: the delimiter, quotes, escapes, line ends, the null string,
# empty strings and NULL, with several quote/escape/null options; what a
# default session reads back, and the bytes that COPY writes
$node->safe_psql(
	'postgres', q{
CREATE TABLE vals (id int, a text, b text);
INSERT INTO vals VALUES
  (1, 'x,y', 'z'), (2, 'it''s', 'say "hi"'), (3, E'line1\nline2', E'cr\r'),
  (4, 'NULL', ''), (5, NULL, 'null'), (6, E'back\\slash', E'both\\"'''),
  (7, '\.', ',');
CREATE FOREIGN TABLE enc_q1 (id int, a text, b text)
  SERVER k OPTIONS (topic 'enc_q1', format 'csv', quote '''', escape '''', null 'NULL');
CREATE FOREIGN TABLE enc_q2 (id int, a text, b text)
  SERVER k OPTIONS (topic 'enc_q2', format 'csv', escape '\');
CREATE FOREIGN TABLE enc_q3 (id int, a text, b text)
  SERVER k OPTIONS (topic 'enc_q3', format 'csv', delimiter ';', null 'null');
INSERT INTO enc_q1 SELECT * FROM vals;
INSERT INTO enc_q2 SELECT * FROM vals;
INSERT INTO enc_q3 SELECT * FROM vals;
});
my $vals = $node->safe_psql('postgres',
	"SELECT id, a IS NULL, b IS NULL, quote_literal(a), quote_literal(b) FROM vals ORDER BY id");
my %copy_opts = (
	enc_q1 => "QUOTE '''', ESCAPE '''', NULL 'NULL'",
	enc_q2 => "ESCAPE '\\'",
	enc_q3 => "DELIMITER ';', NULL 'null'");
foreach my $t (sort keys %copy_opts)
{
	is( $node->safe_psql('postgres',
			"SELECT id, a IS NULL, b IS NULL, quote_literal(a), quote_literal(b) FROM $t ORDER BY id"),
		$vals, "$t: every value reads back as inserted");
	my $copy = $node->safe_psql('postgres',
		"COPY (SELECT * FROM vals ORDER BY id) TO STDOUT (FORMAT csv, $copy_opts{$t})");
	# a record per message: COPY's lines, where a quoted line end splits none
	is(join("\n", map { $_->{payload} } $broker->consume($t)),
		$copy, "$t: the messages are COPY's lines");
}

# quote '''' and the default escape: COPY's escape defaults to the quote,
# so a quote inside a quoted field is doubled.
$node->safe_psql(
	'postgres', q{
CREATE FOREIGN TABLE enc_q4 (id int, a text, b text)
  SERVER k OPTIONS (topic 'enc_q4', format 'csv', quote '''');
INSERT INTO enc_q4 SELECT * FROM vals;
});
is( $node->safe_psql('postgres',
		"SELECT id, a IS NULL, b IS NULL, quote_literal(a), quote_literal(b) FROM enc_q4 ORDER BY id"),
	$vals, "enc_q4: every value reads back as inserted");
is(join("\n", map { $_->{payload} } $broker->consume('enc_q4')),
	$node->safe_psql('postgres',
		"COPY (SELECT * FROM vals ORDER BY id) TO STDOUT (FORMAT csv, QUOTE '''')"),
	"enc_q4: the messages are COPY's lines");

$node->stop;
done_testing();
