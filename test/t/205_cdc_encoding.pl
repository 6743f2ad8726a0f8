
# Copyright (c) kafka_fdw contributors

# CDC events read back as written whatever DateStyle, IntervalStyle and
# extra_float_digits the server, the database or the stream's owner set:
# a stream encodes values with the settings INSERT uses (json_encode.c),
# as a default session's to_json() writes them.

use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

my $json = JSON::PP->new->utf8->allow_bignum;
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

# what a default session writes
my $want = $json->decode($node->safe_psql('postgres',
	"SET datestyle = ISO; SET intervalstyle = postgres; SET extra_float_digits = 1; "
	. "SELECT to_json(v) FROM vals v WHERE id = 1"));
foreach my $m (@msgs)
{
	my $after = $json->decode($m->{payload})->{after};
	my $c = delete $after->{c};
	delete $after->{id};
	my %w = %$want;
	delete @w{qw(id c)};
	is_deeply($after, \%w, "$c event: values as a default session writes them");
}
unlike(join("\n", map { $_->{payload} } @msgs), qr/31\.01\.2017|31\/01\/2017|P1Y2M/,
	'no date or interval in the server\'s style');

$node->stop;
done_testing();
