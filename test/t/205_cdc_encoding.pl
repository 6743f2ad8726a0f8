
# Copyright (c) kafka_fdw contributors

# CDC events carry Debezium's encoding of each value (days for a date,
# microseconds for an interval, a month being 30.4375 days, the shortest
# double that reads back, a range as its text in ISO style) whatever
# DateStyle, IntervalStyle and extra_float_digits the server, the database
# or the stream's owner set.

use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { 'e1.public.vals' => 1 });

my $node = kafka_fdw_node('cdc_encoding', cdc => 1,
	conf => [ "datestyle = 'German'", "intervalstyle = 'iso_8601'",
		"extra_float_digits = -15" ]);
create_kafka_server($node, $broker, 'k');
$node->safe_psql('postgres', q{
ALTER DATABASE postgres SET datestyle = 'SQL, DMY';
CREATE TABLE vals (id int PRIMARY KEY, d date, iv interval, f8 float8,
  r daterange, c text);
CREATE PUBLICATION pe FOR TABLE vals;
INSERT INTO vals VALUES
  (1, '2017-01-31', '1 year 2 mons 3 days 04:05:06.789', 1.2345678901234567,
   '[2017-01-01,2017-02-01)', 'snapshot');
});
$node->safe_psql('postgres', "SELECT kafka_fdw.cdc_create('e1', 'k', 'pe')");
ok( $node->poll_query_until(
		'postgres',
		"SELECT state = 'streaming' AND snapshot_done FROM kafka_fdw.cdc_status WHERE name = 'e1'"
	),
	'stream e1 is streaming after its snapshot');
$node->safe_psql('postgres', q{
INSERT INTO vals VALUES
  (2, '2017-01-31', '1 year 2 mons 3 days 04:05:06.789', 1.2345678901234567,
   '[2017-01-01,2017-02-01)', 'streamed');
});

my @msgs;
poll_until(sub { @msgs = $broker->consume('e1.public.vals'); @msgs >= 2 });
is(scalar @msgs, 2, 'a snapshot read and a create');

# Debezium's values: io.debezium.time.Date (days since 1970-01-01),
# io.debezium.time.MicroDuration ((14 * 30.4375 + 3) days, 04:05:06.789 in
# microseconds), a double, a range as its ISO text
my %want = (
	d => 17197,
	iv => 37091106789000,
	r => '[2017-01-01,2017-02-01)');
foreach my $m (@msgs)
{
	my $after = cdc_payload($m->{payload})->{after};
	my $c = delete $after->{c};
	delete $after->{id};
	my $f8 = delete $after->{f8};
	is_deeply($after, \%want, "$c event: Debezium's values, not the server's style");
	cmp_ok($f8, '==', 1.2345678901234567, "$c event: the double read back exactly");
	like($m->{payload}, qr/"f8":1\.2345678901234567[,}]/,
		"$c event: the double with every digit, whatever extra_float_digits");
}
# and the schema names the logical types of those values
my ($after_schema) = grep { $_->{field} eq 'after' }
  @{ JSON::PP->new->utf8->decode($msgs[0]{payload})->{schema}{fields} };
is_deeply({ map { $_->{field} => [ $_->{type}, $_->{name} // '' ] } @{ $after_schema->{fields} } },
	{ id => [ 'int32', '' ], d => [ 'int32', 'io.debezium.time.Date' ],
	  iv => [ 'int64', 'io.debezium.time.MicroDuration' ], f8 => [ 'double', '' ],
	  r => [ 'string', '' ], c => [ 'string', '' ] },
	'the schema gives each field its Debezium type');
unlike(join("\n", map { $_->{payload} } @msgs), qr/01\.2017|\/2017|P1Y2M/,
	'no date or interval in the server\'s style');

$node->stop;
done_testing();
