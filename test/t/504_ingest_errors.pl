
# Copyright (c) kafka_fdw contributors

# Ingest streams and bad messages (option on_error):
# - stop (the default): a message that is not JSON (in a strict source), or
#   one whose row violates a CHECK of the target, stops the stream: state
#   'stopped', last_error names the cause, topic, partition and offset; the
#   rows before it are in and none after; ingest_resume without options
#   stops at the same message again (nothing doubled), with {"on_error":
#   "skip"} it goes on past it;
# - skip: every bad message (five kinds) is skipped and counted in
#   messages_skipped, every good one is in the target exactly once;
# - dead_letter: the dead-letter table gets each bad message's raw key and
#   value, stream, topic, partition, offset, timestamp and the error; the
#   good ones are in the target; and in every snapshot taken while the
#   stream runs, each partition's stored next offset equals its rows plus
#   its dead letters: dead letters commit with their batch.

use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(
	topics => { e_json => 1, e_chk => 1, e_skip => 2, e_dl => 2 });
my $node = kafka_fdw_node('ingerr', cdc => 1);
create_kafka_server($node, $broker, 'k', user_mapping => 1);

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub good { my ($i, $v) = @_; return sprintf('{"id":%d,"v":%d}', $i, $v // $i); }

# a source (strict json, with partition and offset) and a target
# (part, off, id, v with CHECK v >= 0) per topic
for my $t (qw(e_json e_chk e_skip e_dl))
{
	my $pk = $t =~ /^e_(json|chk)$/ ? ' PRIMARY KEY' : '';
	q1(qq{
CREATE FOREIGN TABLE s_$t (
  part int OPTIONS (partition 'true'),
  off bigint OPTIONS (offset 'true'),
  id int, v int
) SERVER k OPTIONS (topic '$t', format 'json', strict 'true');
CREATE TABLE t_$t (part int, off bigint, id int$pk,
                   v int CONSTRAINT v_not_negative CHECK (v >= 0));
});
}

sub ids_of { return q1("SELECT string_agg(id::text, ',' ORDER BY id) FROM $_[0]"); }

# --- stop: a message that is not JSON ----------------------------------
$broker->produce('e_json',
	[ (map { +{ value => good($_) } } 0 .. 4),
	  { value => 'not json {' },
	  (map { +{ value => good($_) } } 6 .. 9) ]);
$broker->produce('e_chk',
	[ (map { +{ value => good($_) } } 0 .. 2),
	  { value => good(3, -1) },
	  (map { +{ value => good($_) } } 4 .. 6) ]);
q1(q{
SELECT kafka_fdw.ingest_create('j', 's_e_json', 't_e_json');
SELECT kafka_fdw.ingest_create('c', 's_e_chk', 't_e_chk');
});

for my $s ([ 'j', 'not JSON' ], [ 'c', 'a CHECK violation' ])
{
	ok( ingest2_wait($node,
			"SELECT state = 'stopped' AND last_error IS NOT NULL FROM kafka_fdw.ingest_status WHERE name = '$s->[0]'"),
		"stream $s->[0] stops at $s->[1]");
}
my $st = ingest2_status($node, 'j');
is(ids_of('t_e_json'), '0,1,2,3,4', 'the rows before the bad message are in, none after');
like($st->{last_error}, qr/\be_json\b/, 'last_error names the topic');
like($st->{last_error}, qr/partition\D{0,3}0\b.*offset\D{0,3}5\b/s,
	'last_error names the partition and offset');
like($st->{last_error}, qr/invalid JSON/i, 'last_error names the cause');
ok(defined $st->{last_error_at}, 'last_error_at is set');
is_deeply($st->{worker_pids} // [], [], 'no worker runs');
is(q1("SELECT next_offset FROM kafka_fdw.ingest_offsets WHERE name = 'j' AND partition = 0"),
	'5', 'the stored offset is the bad message');

$st = ingest2_status($node, 'c');
is(ids_of('t_e_chk'), '0,1,2', 'CHECK: the rows before the bad message are in, none after');
like($st->{last_error}, qr/v_not_negative/, 'last_error names the constraint');
like($st->{last_error}, qr/\be_chk\b.*partition\D{0,3}0\b.*offset\D{0,3}3\b/s,
	'last_error names topic, partition and offset');

# resume without options: the same message stops it again
my $err_at = $st->{last_error_at};
q1("SELECT kafka_fdw.ingest_resume('c')");
ok( ingest2_wait($node,
		"SELECT state = 'stopped' AND last_error_at > '$err_at' FROM kafka_fdw.ingest_status WHERE name = 'c'"),
	'resumed with on_error stop, the stream stops at the same message again');
is(ids_of('t_e_chk'), '0,1,2', 'nothing doubled, nothing past it');
like(ingest2_status($node, 'c')->{last_error}, qr/offset\D{0,3}3\b/, 'the same offset');

# resume with on_error skip: past it
q1(q{SELECT kafka_fdw.ingest_resume('j', '{"on_error": "skip"}')});
q1(q{SELECT kafka_fdw.ingest_resume('c', '{"on_error": "skip"}')});
ok( ingest2_wait($node,
		"SELECT count(*) = 9 FROM t_e_json"), 'resumed with skip, the stream goes on');
ok(ingest2_wait($node, "SELECT count(*) = 6 FROM t_e_chk"), 'the CHECK stream too');
is(ids_of('t_e_json'), '0,1,2,3,4,6,7,8,9', 'every good message once');
is(ids_of('t_e_chk'), '0,1,2,4,5,6', 'every good message once (CHECK)');
is(q1("SELECT options->>'on_error' FROM kafka_fdw.ingest_streams WHERE name = 'j'"),
	'skip', 'the options given to ingest_resume are merged into the stream');
$st = ingest2_status($node, 'j');
is($st->{state}, 'running', 'state running');
is($st->{messages_skipped}, 1, 'messages_skipped counts the skipped message');
# a strict source: an unknown key is junk too, skipped now
$broker->produce('e_json',
	[ { value => good(10) }, { value => '{"id":11,"v":1,"zzz":1}' }, { value => good(12) } ]);
ok(ingest2_wait($node, "SELECT count(*) = 11 FROM t_e_json"),
	'new messages keep coming in');
is(ids_of('t_e_json'), '0,1,2,3,4,6,7,8,9,10,12', 'the unknown key (strict) is skipped');
ok( ingest2_wait($node,
		"SELECT messages_skipped = 2 FROM kafka_fdw.ingest_status WHERE name = 'j'", 30),
	'messages_skipped is 2');

# --- skip: five kinds of bad messages among 1,200 ------------------------
my @kinds = ('not json', '{"id":1,"v":1,"unknown":true}', '{"id":"one","v":1}',
	'{"id":1,"v":-1}', '[1,2,3]');
sub skip_batch
{
	my ($from, $to, $topic, %o) = @_;
	my @m;
	for my $i ($from .. $to)
	{
		my $bad = $i % ($o{every} // 50) == 7;
		push @m, {
			partition => $i % 2,
			key => "k$i",
			value => $bad ? $kinds[ int($i / ($o{every} // 50)) % @kinds ] : good($i) };
	}
	return \@m;
}
$broker->produce('e_skip', skip_batch(0, 599, 'e_skip'));
q1(q{SELECT kafka_fdw.ingest_create('s', 's_e_skip', 't_e_skip', 'append',
                                     '{"on_error": "skip", "batch.rows": 100}')});
ok(ingest2_wait($node, "SELECT count(*) > 0 FROM t_e_skip"), 'the skip stream runs');
$broker->produce('e_skip', skip_batch(600, 1199, 'e_skip'));

# what to expect, from the topic as an independent client reads it
my (@want, $nbad);
for my $m ($broker->consume('e_skip'))
{
	if ($m->{payload} =~ /^\{"id":(\d+),"v":(\d+)\}$/) { push @want, [ $m->{partition}, $m->{offset}, $1 ]; }
	else { $nbad++; }
}
is(scalar(@want) + $nbad, 1200, 'the topic holds the 1,200 messages');
@want = sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @want;
my $want = join(',', map { join(':', @$_) } @want);
ok(ingest2_wait($node, "SELECT lag = 0 AND messages_skipped = $nbad FROM kafka_fdw.ingest_status WHERE name = 's'"),
	"the skip stream catches up, $nbad messages skipped");
is(q1("SELECT string_agg(part || ':' || off || ':' || id, ',' ORDER BY part, off) FROM t_e_skip"),
	$want, 'every good message is in exactly once, none of the bad ones');
$st = ingest2_status($node, 's');
is($st->{rows_ingested}, scalar(@want), 'rows_ingested counts the good ones');
is($st->{state}, 'running', 'the stream still runs');
is($st->{last_error}, undef, 'skipping is no error') or diag explain $st;

# --- dead_letter -------------------------------------------------------
q1(q{
CREATE TABLE dl (stream text, topic text, "partition" integer, "offset" bigint,
                 key text, value text, "timestamp" timestamptz, error text);
-- in one snapshot: per partition, the stored next offset = rows + dead letters
CREATE FUNCTION sample_dl(total bigint, secs int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  samples int := 0; partial int := 0; bad int := 0; n bigint; ok boolean;
  t0 timestamptz := clock_timestamp(); first_bad text;
BEGIN
  LOOP
    SELECT (SELECT count(*) FROM t_e_dl) + (SELECT count(*) FROM dl),
           bool_and(coalesce(o.next_offset, 0)
                    = (SELECT count(*) FROM t_e_dl t WHERE t.part = p.p)
                    + (SELECT count(*) FROM dl d WHERE d."partition" = p.p)),
           string_agg(p.p || ':' || coalesce(o.next_offset, 0) || '='
                      || (SELECT count(*) FROM t_e_dl t WHERE t.part = p.p) || '+'
                      || (SELECT count(*) FROM dl d WHERE d."partition" = p.p), ' ')
      INTO n, ok, first_bad
      FROM generate_series(0, 1) p(p)
      LEFT JOIN kafka_fdw.ingest_offsets o ON o.name = 'd' AND o."partition" = p.p;
    samples := samples + 1;
    IF NOT ok THEN
      bad := bad + 1;
      RAISE WARNING 'sample_dl: offsets and rows disagree: %', first_bad;
    END IF;
    IF n > 0 AND n < total THEN partial := partial + 1; END IF;
    EXIT WHEN n >= total OR clock_timestamp() - t0 > make_interval(secs => secs);
    PERFORM pg_sleep(0.001);
  END LOOP;
  RETURN format('samples=%s partial=%s bad=%s n=%s', samples, partial, bad, n);
END $$;
});
my $ndl = 3000;
$broker->produce('e_dl', skip_batch(0, $ndl - 1, 'e_dl', every => 40));
# the sampler runs from before the stream starts, so that it sees it work
my ($sample, $sample_err) = ('', '');
my $sampler = IPC::Run::start(
	[ $node->config_data('--bindir') . '/psql', '-XAtq', '-d', $node->connstr('postgres'),
	  '-c', "SELECT sample_dl($ndl, 150)" ],
	'>', \$sample, '2>', \$sample_err);
q1(q{SELECT kafka_fdw.ingest_create('d', 's_e_dl', 't_e_dl', 'append',
       '{"on_error": "dead_letter", "dead_letter.table": "dl", "batch.rows": 10}')});
$sampler->finish;
chomp $sample;
diag("dead letters, consistency samples while ingesting: $sample");
like($sample, qr/n=$ndl$/, 'every message is a row or a dead letter');
like($sample, qr/ bad=0 /, 'in every snapshot, the stored offsets count exactly the rows and dead letters: no dead letter without its batch');
like($sample, qr/ partial=[1-9]/, 'some snapshots were taken mid-way');

my (@want_rows, @want_dl);
for my $m ($broker->consume('e_dl'))
{
	if ($m->{payload} =~ /^\{"id":(\d+),"v":(\d+)\}$/) { push @want_rows, "$m->{partition}:$m->{offset}:$1"; }
	else { push @want_dl, join('|', $m->{partition}, $m->{offset}, $m->{key}, $m->{payload}, $m->{timestamp}); }
}
my $by_pos = sub { my ($pa, $oa) = split /[:|]/, $a; my ($pb, $ob) = split /[:|]/, $b; $pa <=> $pb || $oa <=> $ob };
is(q1("SELECT string_agg(part || ':' || off || ':' || id, ',' ORDER BY part, off) FROM t_e_dl"),
	join(',', sort $by_pos @want_rows), 'the good messages are in the target, once each');
is(q1(q{SELECT string_agg(concat_ws('|', "partition", "offset", key, value,
                                      (extract(epoch FROM "timestamp") * 1000)::bigint), E'\n'
                          ORDER BY "partition", "offset") FROM dl}),
	join("\n", sort $by_pos @want_dl),
	'each bad message is a dead letter: position, raw key and value, timestamp');
is(q1("SELECT count(*) FROM dl WHERE stream = 'd' AND topic = 'e_dl' AND error <> ''"),
	scalar(@want_dl), 'each dead letter names its stream, its topic and an error');
is(q1(q{SELECT string_agg(DISTINCT CASE
           WHEN value = 'not json' THEN (error ~* 'json')::text
           WHEN value LIKE '%"v":-1%' THEN (error ~ 'v_not_negative')::text
           WHEN value LIKE '%unknown%' THEN (error ~ 'matches no column')::text
           WHEN value LIKE '%"one"%' THEN (error ~ 'integer')::text
           ELSE (error <> '')::text END, ',') FROM dl}),
	'true', 'the error says why (JSON, the constraint, the unknown key, the type)');
ok( ingest2_wait($node,
		"SELECT messages_skipped = " . scalar(@want_dl) . " AND lag = 0 FROM kafka_fdw.ingest_status WHERE name = 'd'", 30),
	'messages_skipped counts the dead letters');
is(ingest2_status($node, 'd')->{state}, 'running', 'the dead-letter stream runs');

q1("SELECT kafka_fdw.ingest_drop(name) FROM kafka_fdw.ingest_streams");
ok(!$node->log_contains('TRAP|server process .* was terminated'), 'no crash in the log');
done_testing();
