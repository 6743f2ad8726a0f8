
# Copyright (c) kafka_fdw contributors

# The test cluster (the embedded broker, or real Kafka with
# KFDW_TEST_KAFKA=real) and its Perl helpers: messages produced with the
# helper are read back by kcat with their keys, values, headers and order;
# control commands create topics and take brokers down and up.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(topics => { t1 => 1, t4 => 4 }, brokers => 2);
# real Kafka runs at least three brokers
my @ids = $broker->is_real ? (1, 2, 3) : (1, 2);
like($broker->bootstrap,
	qr/^127\.0\.0\.1:\d+(?:,127\.0\.0\.1:\d+){@{[ $#ids ]}}$/,
	scalar(@ids) . ' brokers on loopback');

# metadata: the pre-created topics, and no auto-creation for a consumer
my $md = $broker->metadata('t4');
ok($md, 'metadata of t4');
is(scalar @{ $md->{topics}[0]{partitions} }, 4, 't4 has 4 partitions');
$md = $broker->metadata('no_such_topic');
ok(defined $md->{topics}[0]{error}, 'a consumer does not auto-create a topic')
  or diag explain $md;

# produce with the helper, consume with kcat: count, order and contents
my @sent = map { { key => "k$_", value => "value $_" } } 1 .. 100;
is($broker->produce('t1', \@sent), 100, '100 messages delivered');
my @got = $broker->consume('t1');
is(scalar @got, 100, 'kcat reads 100 messages');
is_deeply([ map { $_->{payload} } @got ], [ map { "value $_" } 1 .. 100 ],
	'payloads in produce order');
is_deeply([ map { $_->{key} } @got ], [ map { "k$_" } 1 .. 100 ],
	'keys in produce order');
is_deeply([ map { $_->{offset} } @got ], [ 0 .. 99 ], 'offsets 0..99');
ok((grep { $_->{timestamp} > 1_000_000_000_000 } @got) == 100,
	'every message has a timestamp in milliseconds');

# null key and value, headers, explicit partitions
$broker->produce(
	't4',
	[
		{ key => undef, value => 'no key', partition => 2 },
		{ key => 'no value', value => undef, partition => 2 },
		{
			key => 'h',
			value => 'with headers',
			partition => 3,
			headers => [ [ 'a', '1' ], [ 'b', undef ], [ 'a', '2' ] ]
		},
	]);
@got = $broker->consume('t4');
is(scalar @got, 3, 'three messages in t4');
my ($nokey) = grep { defined $_->{payload} && $_->{payload} eq 'no key' } @got;
ok($nokey && !defined $nokey->{key} && $nokey->{partition} == 2,
	'null key read back as undef, in partition 2');
my ($noval) = grep { defined $_->{key} && $_->{key} eq 'no value' } @got;
ok($noval && !defined $noval->{payload}, 'null value read back as undef');
my ($hdr) = grep { defined $_->{key} && $_->{key} eq 'h' } @got;
is_deeply($hdr->{headers}, [ [ 'a', '1' ], [ 'b', undef ], [ 'a', '2' ] ],
	'headers read back in order, duplicates and null kept');
is($hdr->{partition}, 3, 'explicit partition honoured');
is(( $broker->consume('t4', partition => 2) )[1]{key}, 'no value',
	'consume of one partition');

# a topic created through the control channel
$broker->create_topic('made_later', 3);
$md = $broker->metadata('made_later');
is(scalar @{ $md->{topics}[0]{partitions} }, 3, 'topic created at run time');
is(scalar($broker->consume('made_later')), 0, 'a new topic is empty');
eval { $broker->consume('never_created', timeout => 20) };
like($@, qr/kcat consume of "never_created" failed/,
	'consuming an unknown topic fails (no auto-creation)');
eval { $broker->create_topic('bad', 0) };
like($@, $broker->is_real ? qr/INVALID_PARTITIONS/ : qr/failed: ERR/,
	'bad partition count rejected');
eval { $broker->down(7) };
like($@, qr/no broker "?7/, 'unknown broker id rejected');

SKIP:
{
	skip 'latency is a fault of the embedded broker only', 2
	  if $broker->is_real;

	# latency: every request now takes at least the round-trip time
	$broker->rtt(1, 800);
	$broker->rtt(2, 800);
	my $start = time;
	ok(defined $broker->metadata('t1', timeout => 20), 'metadata with latency');
	cmp_ok(time - $start, '>=', 0.8, 'latency of 800 ms observed');
	$broker->rtt(1, 0);
	$broker->rtt(2, 0);
}

# take every broker down: metadata fails; up again: it succeeds
$broker->down($_) for @ids;
ok(poll_until(sub { !defined $broker->metadata('t1', timeout => 2) }),
	'metadata fails with every broker down');
# (on real Kafka all at once: one broker alone has no controller quorum)
if ($broker->is_real) { $broker->up_all; }
else { $broker->up($_) for @ids; }
ok(poll_until(sub { defined $broker->metadata('t1', timeout => 2) }, 120),
	'metadata succeeds once the brokers are up');
ok( poll_until(
		sub {
			my $m = $broker->metadata('t1', timeout => 2);
			$m && $m->{topics}[0]{partitions}[0]{leader} >= 0;
		},
		120),
	't1 has a leader again');
is(scalar($broker->consume('t1')), 100, 'messages survive down/up');

$broker->stop;
ok(!defined $broker->metadata('t1', timeout => 2), 'stopped broker is gone');

done_testing();
