
# Copyright (c) kafka_fdw contributors

# Administering ingest streams:
# - ingest_create's bad input, one case per error code of the spec: an
#   unknown option (the error names the valid ones), a bad option value, a
#   bad mode (22023), a source that is not a kafka_fdw foreign table, a
#   target that is a view (42809), upsert without a primary key (42P10), a
#   duplicate name (42710), no common column (42703), an unknown stream for
#   pause, resume and drop (42704); none leaves a stream behind;
# - ingest_status: counts, lag 0, partition_lag, last_batch_at, the worker;
# - pause (no worker, no new rows while messages arrive, lag shows them),
#   resume (they come), drop (worker gone, stream and offsets gone);
# - privileges: a non-superuser owner needs INSERT, UPDATE and DELETE on
#   the target and USAGE on the server (42501 otherwise); a trigger of the
#   target runs as the owner in a security-restricted operation (current_user
#   is the owner; CREATE TEMP TABLE fails, and last_error says so, to the
#   owner only);
# - dependencies: DROP of the source, the target or the server is refused
#   while a stream uses them; with CASCADE the stream goes away;
# - a server restart: the stream resumes from ingest_offsets (nothing lost
#   or doubled);
# - workers = 3 on a 6-partition topic: three worker pids, every message
#   exactly once;
# - latency: with batch.ms 100 a single message is visible in the target
#   well within a second (asserted with a generous bound).

use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use KafkaTestBroker;
use KafkaFdwTest;

my $broker = KafkaTestBroker->new(
	topics => { a1 => 2, apriv => 1, adep => 1, arst => 2, a6 => 6, alat => 1 });
my $node = kafka_fdw_node('ingadm', cdc => 1);
create_kafka_server($node, $broker, 'k', user_mapping => 1);
create_kafka_server($node, $broker, 'k2', user_mapping => 1);
ingest2_create_try($node);

sub q1 { return $node->safe_psql('postgres', $_[0]); }
sub try { (my $s = $_[0]) =~ s/'/''/g; return q1("SELECT ingest2_try('$s')"); }

# messages {"id": FROM..TO} spread over PARTS partitions
sub msgs
{
	my ($from, $to, $parts) = @_;
	return [ map { +{ partition => $_ % ($parts // 1), value => qq({"id":$_,"v":"m$_"}) } } $from .. $to ];
}

# a source on TOPIC (server SERVER) and a target (part, off, id, v)
sub pair
{
	my ($src, $tgt, $topic, $server) = @_;
	$server //= 'k';
	q1(qq{
CREATE FOREIGN TABLE $src (part int OPTIONS (partition 'true'), off bigint OPTIONS (offset 'true'),
                           id int, v text) SERVER $server OPTIONS (topic '$topic');
CREATE TABLE $tgt (part int, off bigint, id int, v text);
});
	return;
}

sub pid_alive
{
	my ($pid) = @_;
	return q1("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") == 1;
}

# --- bad input ---------------------------------------------------------
pair('s1', 't1', 'a1');
q1(q{
CREATE TABLE plain (part int, off bigint, id int, v text);
CREATE VIEW tv AS SELECT * FROM t1;
CREATE TABLE nopk (id int, v text);
CREATE TABLE nocommon (x int, y text);
CREATE TABLE withpk (id int PRIMARY KEY, v text);
});
my $r = try(q{SELECT kafka_fdw.ingest_create('x', 's1', 't1', 'append', '{"bogus": 1}')});
like($r, qr/^22023: .*bogus/, 'an unknown option is 22023 and named');
like($r, qr/batch\.rows/, 'the error names the valid options') or diag $r;
like($r, qr/on_error.*workers|workers.*on_error/s, '(all of them)') or diag $r;
for my $case (
	[ q{'{"on_error": "ignore"}'}, 'a bad on_error' ],
	[ q{'{"on_error": "dead_letter"}'}, 'dead_letter without dead_letter.table' ],
	[ q{'{"workers": 0}'}, 'workers 0' ],
	[ q{'{"workers": 65}'}, 'workers 65' ],
	[ q{'{"batch.rows": "many"}'}, 'batch.rows not an integer' ],
	[ q{'{"batch.ms": -1}'}, 'batch.ms negative' ],
	[ q{'{"start": "not a time"}'}, 'start neither earliest, latest nor a time' ],
	[ q{'{"start": "2026-13-45 00:00+00"}'}, 'start a time out of range' ],
	[ q{'{"start": "infinity"}'}, 'start an infinite time' ])
{
	like(try("SELECT kafka_fdw.ingest_create('x', 's1', 't1', 'append', $case->[0])"),
		qr/^22023: /, "$case->[1] is 22023");
}
like(try(q{SELECT kafka_fdw.ingest_create('x', 's1', 't1', 'merge')}),
	qr/^22023: .*merge/, 'a bad mode is 22023');
like(try(q{SELECT kafka_fdw.ingest_create('x', 'plain', 't1')}),
	qr/^42809: /, 'a source that is not a kafka_fdw foreign table is 42809');
like(try(q{SELECT kafka_fdw.ingest_create('x', 's1', 'tv')}),
	qr/^42809: /, 'a view as target is 42809');
like(try(q{SELECT kafka_fdw.ingest_create('x', 's1', 's1')}),
	qr/^42809: /, 'a foreign table as target is 42809');
like(try(q{SELECT kafka_fdw.ingest_create('x', 's1', 'nopk', 'upsert')}),
	qr/^42P10: /, 'upsert without a primary key is 42P10');
like(try(q{SELECT kafka_fdw.ingest_create('x', 's1', 'nocommon')}),
	qr/^42703: /, 'no common column is 42703');
is(try(q{SELECT kafka_fdw.ingest_create('dup', 's1', 'withpk', 'upsert', '{"start": "latest"}')}),
	'ok', 'a good stream');
like(try(q{SELECT kafka_fdw.ingest_create('dup', 's1', 't1')}),
	qr/^42710: .*dup/, 'a duplicate name is 42710');
for my $f (qw(ingest_pause ingest_resume ingest_drop))
{
	like(try("SELECT kafka_fdw.$f('nope')"), qr/^42704: .*nope/,
		"$f of an unknown stream is 42704");
}
q1("SELECT kafka_fdw.ingest_drop('dup')");
is( try(q{SELECT kafka_fdw.ingest_create('ts', 's1', 'plain', 'append', '{"start": "2999-01-01 00:00+00"}')}),
	'ok', 'a timestamp is a good start');
q1("SELECT kafka_fdw.ingest_drop('ts')");
is(q1("SELECT count(*) FROM kafka_fdw.ingest_streams"), '0',
	'no failed ingest_create left a stream');

# --- status ------------------------------------------------------------
$broker->produce('a1', msgs(1, 100, 2));
q1(q{SELECT kafka_fdw.ingest_create('a', 's1', 't1', 'append', '{"batch.ms": 100}')});
ok(ingest2_wait($node, "SELECT lag = 0 AND rows_ingested = 100 FROM kafka_fdw.ingest_status WHERE name = 'a'"),
	'stream a ingests the 100 messages, lag 0');
my $st = ingest2_status($node, 'a');
is($st->{state}, 'running', 'state running');
is($st->{paused} ? 1 : 0, 0, 'not paused');
is($st->{workers}, 1, 'one worker');
is($st->{messages_ingested}, 100, 'messages_ingested');
is($st->{messages_skipped}, 0, 'messages_skipped');
is($st->{mode}, 'append', 'mode');
is("$st->{source}/$st->{target}", 's1/t1', 'source and target');
is_deeply($st->{partition_lag}, { 0 => 0, 1 => 0 }, 'partition_lag');
ok(q1("SELECT last_batch_at BETWEEN now() - interval '2 min' AND now() FROM kafka_fdw.ingest_status WHERE name = 'a'") eq 't',
	'last_batch_at is recent');
is($st->{last_error}, undef, 'no error');
is(scalar @{ $st->{worker_pids} // [] }, 1, 'one worker pid');
my $pid = $st->{worker_pids}[0];
ok(pid_alive($pid), 'the worker is a process of the server');
is(q1("SELECT count(*), count(DISTINCT (part, off)) FROM t1"), '100|100', 'every message once');

# --- pause, resume -----------------------------------------------------
q1("SELECT kafka_fdw.ingest_pause('a')");
ok( ingest2_wait($node,
		"SELECT state = 'stopped' AND paused AND coalesce(cardinality(worker_pids), 0) = 0 FROM kafka_fdw.ingest_status WHERE name = 'a'", 30),
	'paused: state stopped, no worker');
ok(poll_until(sub { !pid_alive($pid) }, 30), 'the worker exited');
is(q1("SELECT paused FROM kafka_fdw.ingest_streams WHERE name = 'a'"), 't', 'ingest_streams.paused');
$broker->produce('a1', msgs(101, 140, 2));
# no worker runs: the lag is Kafka's high watermarks now minus the offsets
ok(ingest2_wait($node, "SELECT lag = 40 FROM kafka_fdw.ingest_status WHERE name = 'a'", 10),
	'a paused stream shows its lag');
is(q1("SELECT (SELECT sum(value::bigint) FROM jsonb_each_text(partition_lag)) FROM kafka_fdw.ingest_status WHERE name = 'a'"),
	'40', 'partition_lag adds up to the lag');
ok(!poll_until(sub { q1("SELECT count(*) FROM t1") != 100 }, 3),
	'paused: no new rows while messages wait (3 s)');
q1("SELECT kafka_fdw.ingest_resume('a')");
ok(ingest2_wait($node, "SELECT count(*) = 140 FROM t1", 60), 'resumed: the messages come');
$st = ingest2_status($node, 'a');
is("$st->{state}/" . ($st->{paused} ? 'paused' : 'not paused'), 'running/not paused',
	'running again');
is(q1("SELECT count(*), count(DISTINCT (part, off)) FROM t1"), '140|140', 'every message once');

# --- drop --------------------------------------------------------------
$pid = $st->{worker_pids}[0];
q1("SELECT kafka_fdw.ingest_drop('a')");
is(q1("SELECT (SELECT count(*) FROM kafka_fdw.ingest_streams WHERE name = 'a') || '/' ||
              (SELECT count(*) FROM kafka_fdw.ingest_offsets WHERE name = 'a') || '/' ||
              (SELECT count(*) FROM kafka_fdw.ingest_status WHERE name = 'a')"),
	'0/0/0', 'drop: the stream, its offsets and its status are gone');
ok(poll_until(sub { !pid_alive($pid) }, 30), 'drop: the worker is gone');
is(q1("SELECT count(*) FROM t1"), '140', 'the target keeps its rows');

# --- privileges --------------------------------------------------------
q1(q{
CREATE ROLE alice LOGIN;
CREATE ROLE carol LOGIN;
CREATE FOREIGN TABLE sp (id int, v text) SERVER k OPTIONS (topic 'apriv');
GRANT SELECT ON sp TO alice;
CREATE TABLE tp (id int PRIMARY KEY, v text, who text);
-- SELECT too: INSERT ... ON CONFLICT DO UPDATE reads the row
GRANT SELECT, INSERT ON tp TO alice;
CREATE FUNCTION tp_who() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.who := current_user;
  IF NEW.v = 'temp' THEN
    CREATE TEMP TABLE ingest_trigger_temp (x int);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER tp_who BEFORE INSERT OR UPDATE ON tp FOR EACH ROW EXECUTE FUNCTION tp_who();
});
sub as_alice { return try("SET ROLE alice; $_[0]"); }
like(as_alice(q{SELECT kafka_fdw.ingest_create('p', 'sp', 'tp', 'upsert')}),
	qr/^42501: /, 'INSERT alone on the target: 42501');
q1('GRANT UPDATE ON tp TO alice');
like(as_alice(q{SELECT kafka_fdw.ingest_create('p', 'sp', 'tp', 'upsert')}),
	qr/^42501: /, 'no DELETE on the target: 42501');
q1('GRANT DELETE ON tp TO alice');
like(as_alice(q{SELECT kafka_fdw.ingest_create('p', 'sp', 'tp', 'upsert')}),
	qr/^42501: .*server/, 'no USAGE on the server: 42501');
q1('GRANT USAGE ON FOREIGN SERVER k TO alice');
is(as_alice(q{SELECT kafka_fdw.ingest_create('p', 'sp', 'tp', 'upsert')}), 'ok',
	'with INSERT, UPDATE, DELETE and USAGE alice creates the stream');
is(q1("SELECT owner FROM kafka_fdw.ingest_streams WHERE name = 'p'"), 'alice',
	'alice owns it');
$broker->produce('apriv', [ { key => '1', value => '{"id":1,"v":"a"}' },
		{ key => '2', value => '{"id":2,"v":"b"}' } ]);
ok(ingest2_wait($node, "SELECT count(*) = 2 FROM tp"), 'the stream of alice ingests');
is(q1("SELECT string_agg(id || ':' || who, ',' ORDER BY id) FROM tp"), '1:alice,2:alice',
	'the trigger runs as the owner');
$broker->produce('apriv', [ { key => '3', value => '{"id":3,"v":"temp"}' } ]);
ok( ingest2_wait($node,
		"SELECT last_error ~ 'security-restricted' FROM kafka_fdw.ingest_status WHERE name = 'p'", 60),
	'a trigger creating a temp table fails: security-restricted operation')
  or diag explain ingest2_status($node, 'p');
is(q1("SELECT count(*) FROM tp WHERE id = 3"), '0', 'its row is not in');
is(try(q{SET ROLE carol; DO $$ BEGIN IF (SELECT last_error FROM kafka_fdw.ingest_status WHERE name = 'p') IS NOT NULL THEN RAISE 'carol sees it'; END IF; END $$}),
	'ok', 'another role does not see last_error');
is(as_alice(q{DO $$ BEGIN IF (SELECT last_error FROM kafka_fdw.ingest_status WHERE name = 'p') IS NULL THEN RAISE 'alice does not see it'; END IF; END $$}),
	'ok', 'the owner sees last_error');
like(try(q{SET ROLE carol; SELECT kafka_fdw.ingest_drop('p')}), qr/^42501: /,
	'another role cannot drop the stream');
is(as_alice(q{SELECT kafka_fdw.ingest_drop('p')}), 'ok', 'the owner drops it');

# --- dependencies ------------------------------------------------------
pair('sd', 'td', 'adep', 'k2');
q1(q{
CREATE TABLE td2 (LIKE td);
CREATE TABLE td3 (LIKE td);
SELECT kafka_fdw.ingest_create('d1', 'sd', 'td');
SELECT kafka_fdw.ingest_create('d2', 'sd', 'td2');
});
like(try('DROP TABLE td'), qr/^2BP01: /, 'DROP of a target is refused');
like(try('DROP FOREIGN TABLE sd'), qr/^2BP01: /, 'DROP of a source is refused');
like(try('DROP SERVER k2'), qr/^2BP01: /, 'DROP of the server is refused');
ok(ingest2_wait($node, "SELECT cardinality(worker_pids) = 1 FROM kafka_fdw.ingest_status WHERE name = 'd1'"),
	'd1 runs');
$pid = ingest2_status($node, 'd1')->{worker_pids}[0];
q1('DROP TABLE td CASCADE');
is(q1("SELECT string_agg(name, ',' ORDER BY name) FROM kafka_fdw.ingest_streams"), 'd2',
	'DROP TABLE ... CASCADE drops the stream of the target');
ok(poll_until(sub { !pid_alive($pid) }, 30), 'and its worker');
q1('DROP FOREIGN TABLE sd CASCADE');
is(q1("SELECT count(*) FROM kafka_fdw.ingest_streams"), '0',
	'DROP FOREIGN TABLE ... CASCADE drops the stream of the source');
q1(q{
CREATE FOREIGN TABLE sd3 (id int, v text) SERVER k2 OPTIONS (topic 'adep');
SELECT kafka_fdw.ingest_create('d3', 'sd3', 'td3');
});
q1('DROP SERVER k2 CASCADE');
is(q1("SELECT count(*) FROM kafka_fdw.ingest_streams"), '0',
	'DROP SERVER ... CASCADE drops the stream');
is(q1("SELECT count(*) FROM kafka_fdw.ingest_offsets"), '0', 'no offsets are left');

# --- restart -----------------------------------------------------------
pair('sr', 'tr', 'arst');
$broker->produce('arst', msgs(1, 500, 2));
q1(q{SELECT kafka_fdw.ingest_create('r', 'sr', 'tr')});
ok(ingest2_wait($node, "SELECT count(*) = 500 FROM tr"), 'stream r ingests 500 messages');
$node->restart;
$broker->produce('arst', msgs(501, 1000, 2));
ok(ingest2_wait($node, "SELECT count(*) >= 1000 FROM tr"), 'after a restart the stream goes on');
ok(ingest2_wait($node, "SELECT lag = 0 FROM kafka_fdw.ingest_status WHERE name = 'r'"), 'lag 0');
is(q1("SELECT count(*), count(DISTINCT (part, off)), count(DISTINCT id) FROM tr"), '1000|1000|1000',
	'every message once across the restart');
is(q1("SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition) FROM kafka_fdw.ingest_offsets WHERE name = 'r'"),
	'0:500,1:500', 'ingest_offsets');
q1("SELECT kafka_fdw.ingest_drop('r')");

# --- three workers on six partitions -----------------------------------
pair('s6', 't6', 'a6');
q1(q{SELECT kafka_fdw.ingest_create('w', 's6', 't6', 'append', '{"workers": 3}')});
ok( ingest2_wait($node,
		"SELECT workers = 3 AND cardinality(worker_pids) = 3 FROM kafka_fdw.ingest_status WHERE name = 'w'"),
	'three workers');
my @pids = @{ ingest2_status($node, 'w')->{worker_pids} };
is(scalar(keys %{ { map { $_ => 1 } @pids } }), 3, 'three distinct pids');
is(scalar(grep { pid_alive($_) } @pids), 3, 'all three are processes of the server');
$broker->produce('a6', msgs(1, 1800, 6));
ok(ingest2_wait($node, "SELECT lag = 0 AND rows_ingested = 1800 FROM kafka_fdw.ingest_status WHERE name = 'w'"),
	'the three workers ingest 1,800 messages');
is(q1("SELECT count(*), count(DISTINCT (part, off)), count(DISTINCT id) FROM t6"), '1800|1800|1800',
	'every message exactly once');
is(q1("SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition) FROM kafka_fdw.ingest_offsets WHERE name = 'w'"),
	'0:300,1:300,2:300,3:300,4:300,5:300', 'an offset per partition');
q1("SELECT kafka_fdw.ingest_drop('w')");
ok(poll_until(sub { !grep { pid_alive($_) } @pids }, 30), 'drop stops the three workers');

# --- latency -----------------------------------------------------------
q1(q{
CREATE FOREIGN TABLE sl (ts timestamptz OPTIONS (timestamp 'true'), id int)
  SERVER k OPTIONS (topic 'alat');
CREATE TABLE tl (ts timestamptz, id int);
-- wait (10 ms polls, at most 30 s) for row ID; answers ms from its message time
CREATE FUNCTION wait_row(want int) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); mts timestamptz;
BEGIN
  LOOP
    SELECT ts INTO mts FROM tl WHERE id = want;
    IF FOUND THEN
      RETURN round(extract(epoch FROM clock_timestamp() - mts) * 1000);
    END IF;
    IF clock_timestamp() - t0 > interval '30 s' THEN RETURN NULL; END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
SELECT kafka_fdw.ingest_create('l', 'sl', 'tl', 'append', '{"batch.ms": 100}');
});
$broker->produce('alat', [ { value => '{"id":0}' } ]);
ok(ingest2_wait($node, "SELECT count(*) = 1 FROM tl"), 'latency stream runs');
my @lat;
for my $id (1 .. 5)
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ $node->installed_command('psql'), '-XAtq', '-d', $node->connstr('postgres'),
		  '-c', "SELECT wait_row($id)" ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(60));
	$broker->produce('alat', [ { value => qq({"id":$id}) } ]);
	$h->finish;
	chomp $out;
	push @lat, $out eq '' ? 'none' : $out;
}
diag("message time to row visible (ms): @lat");
is(scalar(grep { /^\d+$/ && $_ < 2500 } @lat), 5,
	'with batch.ms 100 each single message is visible within 2.5 s');
q1("SELECT kafka_fdw.ingest_drop('l')");

ok(!$node->log_contains('TRAP|server process .* was terminated'), 'no crash in the log');
done_testing();
