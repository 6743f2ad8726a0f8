
# Copyright (c) kafka_fdw contributors

# A topic that does not exist on a real cluster that does not create topics
# (auto.create.topics.enable=false): SELECT, INSERT and a CDC stream each
# give a clear error naming the topic, the stream in cdc_status.last_error
# and not only in the log; once the topic exists, all three work.

use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use KafkaTestBroker;
use KafkaFdwTest;

plan skip_all => 'needs real Kafka (KFDW_TEST_KAFKA=real)'
  unless ($ENV{KFDW_TEST_KAFKA} // 'mock') eq 'real';

my $broker = KafkaTestBroker->new(topics => { present => 1 });
my $node = kafka_fdw_node('missing', cdc => 1);
create_kafka_server($node, $broker, 'k',
	options => { connect_timeout_ms => 5000, 'message.timeout.ms' => 10000 });

$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE absent (p int OPTIONS (partition 'true'),
  o bigint OPTIONS (offset 'true'), v text)
  SERVER k OPTIONS (topic 'no_such_topic', format 'raw');
CREATE FOREIGN TABLE absent_json (id int) SERVER k OPTIONS (topic 'no_such_json');
});

# SELECT
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM absent',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($rc, 0, 'SELECT of a missing topic fails');
like($err, qr/ERROR:  HV00R: .*"no_such_topic"/,
	'SELECT: the error names the topic, SQLSTATE HV00R (table not found)')
  or diag $err;

# INSERT: nothing reported published, the topic not created by the attempt
($rc, $out, $err) = $node->psql('postgres',
	"INSERT INTO absent_json SELECT g FROM generate_series(1, 10) g",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($rc, 0, 'INSERT into a missing topic fails');
like($err, qr/ERROR:  [0-9A-Z]{5}: .*"no_such_json"/, 'INSERT: the error names the topic')
  or diag $err;
like($err, qr/Unknown topic or partition|does not exist|not found/i,
	'INSERT: and says the topic does not exist')
  or diag $err;
my $md = $broker->metadata('no_such_json');
ok(defined $md && defined $md->{topics}[0]{error},
	'the failed INSERT did not create the topic');

# CDC into a topic that does not exist
$node->safe_psql('postgres', q{
CREATE TABLE items (id int PRIMARY KEY, name text);
CREATE PUBLICATION pi FOR TABLE items;
SELECT kafka_fdw.cdc_create('s', 'k', 'pi', topic_prefix => 'nowhere', snapshot => false);
INSERT INTO items VALUES (1, 'one'), (2, 'two');
});
ok( $node->poll_query_until('postgres',
		q{SELECT last_error ~ 'nowhere\.public\.items' FROM kafka_fdw.cdc_status WHERE name = 's'}),
	'CDC: cdc_status.last_error names the missing topic');
my $status = $node->safe_psql('postgres',
	q{SELECT state || ' | ' || last_error FROM kafka_fdw.cdc_status WHERE name = 's'});
like($status, qr/Unknown topic or partition|does not exist/i,
	'CDC: last_error says why') or diag $status;
unlike($status, qr/^streaming \|/, 'CDC: the stream does not claim to be streaming')
  or diag $status;

# once the topics exist, everything works, and the stream loses nothing
$broker->create_topic('no_such_topic', 1);
$broker->create_topic('no_such_json', 1);
$broker->create_topic('nowhere.public.items', 1);
is($node->safe_psql('postgres', 'SELECT count(*) FROM absent'), '0',
	'SELECT works once the topic exists');
$node->safe_psql('postgres', 'INSERT INTO absent_json VALUES (7)');
is_deeply([ map { $_->{payload} } $broker->consume('no_such_json') ],
	[ '{"id":7}' ], 'INSERT works once the topic exists');
ok( poll_until(
		sub {
			my @ids;
			for my $m ($broker->consume('nowhere.public.items'))
			{
				next unless defined $m->{payload};
				my $v = cdc_payload($m->{payload});
				push @ids, $v->{after}{id} if $v->{op} eq 'c';
			}
			"@ids" eq '1 2';
		},
		120),
	'CDC delivers the changes made while the topic was missing, in order');

done_testing();
